//! From a panel's description to what is drawn: automatic ranges, tick plans on linear and logarithmic axes, and
//! clipping of curves and bands to the plotting area (plotters itself does not clip).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Axis, LinePanel, Plot, Scale};
use crate::plot::chart::LinearAxis;
use crate::plot::figure::DrawError;
use crate::plot::style::{self, TICK_PX};
use crate::plot::text::{label_width, Label};

/// Preferred tick count (intervals) of the x axis.
pub(super) const X_TICKS: usize = 6;
/// Padding of automatic ranges, as a fraction of the (log) span on each side.
pub(super) const Y_PAD: f64 = 0.05;
pub(super) const X_PAD_POINTS: f64 = 0.04;

/// `[lo, hi]` of `values`, or `None` when there are none.
pub(super) fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// `[lo, hi]` widened by `pad` of its span (log span on a log axis) on each side; a single value is widened to
/// a visible range.
pub(super) fn padded(scale: Scale, (lo, hi): (f64, f64), pad: f64) -> (f64, f64) {
    match scale {
        Scale::Linear if hi > lo => {
            let d = pad * (hi - lo);
            (lo - d, hi + d)
        }
        Scale::Linear => {
            let d = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
            (lo - d, hi + d)
        }
        Scale::Log if hi > lo => {
            let f = (hi / lo).powf(pad);
            (lo / f, hi * f)
        }
        Scale::Log => (lo / 2.0, hi * 2.0),
    }
}

/// The shared x range of a panel: fixed, or every drawable point, band and vertical line of all its plots.
pub(super) fn x_range(p: &LinePanel, plots: &[Plot]) -> (f64, f64) {
    if let Some(r) = p.x.range {
        return r;
    }
    let xs = plots.iter().flat_map(|pl| {
        pl.series.iter().flat_map(move |s| {
            pl.points(s, &p.x)
                .map(|(x, _)| x)
                .chain(pl.band(s, &p.x).map(|(x, _, _)| x))
        })
    });
    let data = extent(xs.chain(p.vlines.iter().map(|v| v.at))).unwrap_or((1.0, 10.0));
    let markers = plots.iter().flat_map(|pl| pl.series).any(|s| s.points);
    padded(p.x.scale, data, if markers { X_PAD_POINTS } else { 0.0 })
}

/// A plot's y range: fixed, or its drawable points, bands, reference lines and shade inside the x range.
pub(super) fn y_range(plot: &Plot, x: &Axis, (x0, x1): (f64, f64)) -> (f64, f64) {
    if let Some(r) = plot.y.range {
        return r;
    }
    let inside = |a: f64| a >= x0 && a <= x1;
    let ys = plot.series.iter().flat_map(|s| {
        plot.points(s, x)
            .filter(move |&(a, _)| inside(a))
            .map(|(_, b)| b)
            .chain(
                plot.band(s, x)
                    .filter(move |&(a, _, _)| inside(a))
                    .flat_map(|(_, l, h)| [l, h]),
            )
    });
    let refs = plot
        .hlines
        .iter()
        .map(|h| h.at)
        .chain(plot.shade_y.into_iter().flat_map(|(l, h)| [l, h]));
    let all = plot
        .series
        .iter()
        .flat_map(|s| plot.points(s, x).map(|(_, b)| b));
    let data = extent(ys.chain(refs.clone()))
        .or_else(|| extent(all.chain(refs)))
        .unwrap_or((1.0, 10.0));
    padded(plot.y.scale, data, Y_PAD)
}

/// An axis ready to draw: range, ticks and tick labels. Charts run on the unit interval (0 = `lo`, 1 = `hi`,
/// logarithmic or linear in between), so one chart type serves every scale.
#[derive(Debug, Clone)]
pub(super) struct AxisPlan {
    pub(super) scale: Scale,
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) ticks: Vec<f64>,
    pub(super) labels: Vec<String>,
}

impl AxisPlan {
    /// About `target` nice ticks on a linear axis; decades (with 2 and 5 on short ranges) on a log axis, or
    /// linear ticks on a log axis spanning less than a factor of a few.
    pub(super) fn new(scale: Scale, (lo, hi): (f64, f64), target: usize) -> Self {
        let (ticks, labels) = match scale {
            Scale::Log if style::log_ticks(lo, hi).len() >= 2 => {
                let ticks = style::log_ticks(lo, hi);
                // Decades all as 10ⁿ once one of them needs it, not "1000" next to "10⁴".
                let exponent = |v: f64| v.log10().round() as i32;
                let powers = ticks.iter().all(|v| is_decade(*v))
                    && ticks.iter().any(|v| !(-2..4).contains(&exponent(*v)));
                let labels = ticks
                    .iter()
                    .map(|v| {
                        if powers {
                            style::pow10_label(exponent(*v))
                        } else {
                            style::log_tick_label(*v)
                        }
                    })
                    .collect();
                (ticks, labels)
            }
            _ => {
                let (ticks, step) = style::nice_ticks(lo, hi, target);
                let ticks: Vec<f64> = ticks.into_iter().filter(|v| v.is_finite()).collect();
                let labels = ticks
                    .iter()
                    .map(|v| style::linear_tick_label(*v, step))
                    .collect();
                (ticks, labels)
            }
        };
        AxisPlan {
            scale,
            lo,
            hi,
            ticks,
            labels,
        }
    }

    /// Position of `v` on the unit interval (not clamped), `None` where the axis cannot show it.
    pub(super) fn frac(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        match self.scale {
            Scale::Linear => Some((v - self.lo) / (self.hi - self.lo)),
            Scale::Log if v > 0.0 => Some((v / self.lo).ln() / (self.hi / self.lo).ln()),
            Scale::Log => None,
        }
    }

    /// The chart axis: the unit interval with these ticks.
    pub(super) fn unit_axis(&self) -> LinearAxis {
        LinearAxis {
            range: 0.0..1.0,
            ticks: self.ticks.iter().filter_map(|v| self.frac(*v)).collect(),
        }
    }

    /// The label of the tick at unit position `u`.
    pub(super) fn label_at(&self, u: f64) -> String {
        self.ticks
            .iter()
            .zip(&self.labels)
            .find(|(v, _)| self.frac(**v).is_some_and(|f| (f - u).abs() < 1e-9))
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    }

    /// Whether the tick labels, side by side, fill at most 60 % of `width` pixels.
    pub(super) fn fits<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        width: i32,
    ) -> std::result::Result<bool, DrawError> {
        let mut total = 0;
        for l in &self.labels {
            total += label_width(area, &Label::new(l, TICK_PX))?;
        }
        Ok(total * 10 <= width * 6)
    }

    /// The x axis of a panel: as many ticks as fit side by side in `width` pixels.
    pub(super) fn fitted_x<DB: DrawingBackend>(
        area: &DrawingArea<DB, Shift>,
        scale: Scale,
        range: (f64, f64),
        width: i32,
    ) -> std::result::Result<Self, DrawError> {
        let mut plan = AxisPlan::new(scale, range, X_TICKS);
        let mut target = X_TICKS;
        while !plan.fits(area, width)? && plan.ticks.len() > 2 {
            let n = plan.ticks.len();
            // On a log axis with 2× and 5× ticks, the decades alone.
            let decades: Vec<usize> = match scale {
                Scale::Log => (0..n).filter(|&i| is_decade(plan.ticks[i])).collect(),
                Scale::Linear => vec![],
            };
            plan = if scale == Scale::Linear && target > 1 {
                target -= 1;
                AxisPlan::new(scale, range, target)
            } else if decades.len() >= 2 && decades.len() < n {
                plan.keep(&decades)
            } else {
                plan.keep(&(0..n).step_by(2).collect::<Vec<_>>())
            };
        }
        Ok(plan)
    }

    pub(super) fn keep(&self, indices: &[usize]) -> Self {
        AxisPlan {
            ticks: indices.iter().map(|&i| self.ticks[i]).collect(),
            labels: indices.iter().map(|&i| self.labels[i].clone()).collect(),
            ..self.clone()
        }
    }
}

pub(super) fn is_decade(v: f64) -> bool {
    let e = v.log10();
    (e - e.round()).abs() < 1e-9
}

/// Liang–Barsky: the part of segment `a`–`b` inside the unit square, if any.
pub(super) fn clip_segment(a: (f64, f64), b: (f64, f64)) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, a.0), (dx, 1.0 - a.0), (-dy, a.1), (dy, 1.0 - a.1)] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    (t0 <= t1).then(|| {
        let at = |t: f64| (a.0 + t * dx, a.1 + t * dy);
        (at(t0), at(t1))
    })
}

/// A polyline (`None` = gap) cut to the unit square: the visible pieces, each with at least two points.
pub(super) fn clip_polyline(points: &[Option<(f64, f64)>]) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let mut flush = |current: &mut Vec<(f64, f64)>| {
        if current.len() >= 2 {
            pieces.push(std::mem::take(current));
        }
        current.clear();
    };
    for w in points.windows(2) {
        let (Some(a), Some(b)) = (w[0], w[1]) else {
            flush(&mut current);
            continue;
        };
        match clip_segment(a, b) {
            Some((p, q)) => {
                if current.last() != Some(&p) {
                    flush(&mut current);
                    current.push(p);
                }
                current.push(q);
                if q != b {
                    flush(&mut current);
                }
            }
            None => flush(&mut current),
        }
    }
    flush(&mut current);
    pieces
}

/// Sutherland–Hodgman: polygon `poly` cut to the unit square.
pub(super) fn clip_polygon(poly: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    // Signed distance to each edge, positive inside.
    let edges: [fn((f64, f64)) -> f64; 4] = [|p| p.0, |p| 1.0 - p.0, |p| p.1, |p| 1.0 - p.1];
    let mut out = poly;
    for inside in edges {
        let input = std::mem::take(&mut out);
        for (k, &b) in input.iter().enumerate() {
            let a = input[(k + input.len() - 1) % input.len()];
            let (da, db) = (inside(a), inside(b));
            if (da >= 0.0) != (db >= 0.0) {
                let t = da / (da - db);
                out.push((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
            }
            if db >= 0.0 {
                out.push(b);
            }
        }
    }
    out
}

/// Splits `items` into maximal runs of `Some`.
pub(super) fn runs<T: Copy>(items: impl Iterator<Item = Option<T>>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    for it in items {
        match it {
            Some(v) => run.push(v),
            None if !run.is_empty() => out.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}
