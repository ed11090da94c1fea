//! Line figures: curves y(x) on linear or logarithmic axes, with shaded uncertainty bands, dashed reference
//! lines and sub-panels stacked under a main panel on a shared x axis. One description covers training-loss
//! curves, radial profiles per mass bin with a (pred − true)/true panel, power spectra with b(k) and r(k)
//! panels, calibration curves and quality-vs-NFE plots.
//!
//! Everything is drawn inside its plotting area: explicit axis ranges clip curves and bands (plotters itself
//! does not clip), and points a logarithmic axis cannot show (≤ 0) or that are not finite break a curve
//! instead of failing the figure.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::chart::{self, Corner, LinearAxis, PixelRect, Swatch};
use super::figure::{render, Draw, DrawError, DrawResult, Figure};
use super::style::{self, GREY, LABEL_PX, LINE_PX, POINT_PX, TICK_PX};
use super::text::{draw_label, label_width, Label, Orient};
use crate::{Error, Result};

/// Height of a stacked sub-panel's plotting area (≈ 1/3 of a main panel's).
const SUB_PLOT_PX: u32 = 184;
/// Gap between stacked plotting areas; holds the upper one's x tick marks.
const STACK_GAP_PX: u32 = 20;
/// Extra room above the plotting areas of a row in which some panel has a title.
const PANEL_TITLE_PX: u32 = 48;
/// Opacity of series bands and of the horizontal shade.
const BAND_ALPHA: f64 = 0.2;
const SHADE_ALPHA: f64 = 0.14;
/// Preferred tick counts (intervals) of main and sub-panel y axes and of the x axis.
const MAIN_Y_TICKS: usize = 5;
const SUB_Y_TICKS: usize = 3;
const X_TICKS: usize = 6;
/// Padding of automatic ranges, as a fraction of the (log) span on each side.
const Y_PAD: f64 = 0.05;
const X_PAD_POINTS: f64 = 0.04;

/// How an axis maps values to positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    #[default]
    Linear,
    /// log₁₀; values ≤ 0 are not drawn.
    Log,
}

/// One axis: label (markup, with unit), scale and an optional fixed range (otherwise fitted to the data,
/// bands and reference lines, with a little padding on y).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
    pub range: Option<(f64, f64)>,
}

impl Axis {
    /// A linear axis with an automatic range.
    pub fn linear(label: &str) -> Self {
        Axis {
            label: label.to_string(),
            scale: Scale::Linear,
            range: None,
        }
    }

    /// A logarithmic axis with an automatic range.
    pub fn log(label: &str) -> Self {
        Axis {
            scale: Scale::Log,
            ..Axis::linear(label)
        }
    }

    /// The same axis with the fixed range `[lo, hi]`.
    pub fn range(self, lo: f64, hi: f64) -> Self {
        Axis {
            range: Some((lo, hi)),
            ..self
        }
    }

    /// Whether `v` can be placed on this axis.
    fn accepts(&self, v: f64) -> bool {
        self.scale.accepts(v)
    }
}

impl Scale {
    fn accepts(self, v: f64) -> bool {
        v.is_finite() && (self == Scale::Linear || v > 0.0)
    }
}

/// One curve: `y(x)` joined by a line (solid or dashed), optionally with a marker at every point and a band
/// `[lo, hi]` shaded in its colour at low opacity. `x` must be in drawing order (usually increasing) for the
/// band to make sense. Points that are not finite, or not positive on a log axis, break the line there. A
/// labelled series without points is a legend entry only (e.g. "dashed = prediction" once for all bins).
#[derive(Debug, Clone)]
pub struct Series<'a> {
    /// Legend text (markup); `None` leaves the series out of the legend.
    pub label: Option<String>,
    pub x: &'a [f64],
    pub y: &'a [f64],
    pub color: RGBColor,
    pub dashed: bool,
    pub points: bool,
    /// Lower and upper edge at each `x` (e.g. a 16–84 % interval).
    pub band: Option<(&'a [f64], &'a [f64])>,
}

impl<'a> Series<'a> {
    /// A solid, unlabelled line without markers or band.
    pub fn new(x: &'a [f64], y: &'a [f64], color: RGBColor) -> Self {
        Series {
            label: None,
            x,
            y,
            color,
            dashed: false,
            points: false,
            band: None,
        }
    }

    /// The same series with a legend entry.
    pub fn label(self, label: &str) -> Self {
        Series {
            label: Some(label.to_string()),
            ..self
        }
    }

    /// The same series drawn dashed.
    pub fn dashed(self) -> Self {
        Series {
            dashed: true,
            ..self
        }
    }

    /// The same series with a marker at every point.
    pub fn points(self) -> Self {
        Series {
            points: true,
            ..self
        }
    }

    /// The same series with the band `[lo, hi]` (one value of each per point).
    pub fn band(self, lo: &'a [f64], hi: &'a [f64]) -> Self {
        Series {
            band: Some((lo, hi)),
            ..self
        }
    }

    fn swatch(&self) -> Swatch {
        match (self.dashed, self.points) {
            (false, false) => Swatch::Line(self.color),
            (true, false) => Swatch::Dashed(self.color),
            (false, true) => Swatch::LinePoint(self.color),
            (true, true) => Swatch::DashedPoint(self.color),
        }
    }
}

/// A dashed grey reference line at a constant x or y (a ratio of 1, zero residual, r = R₂₀₀c), with an
/// optional legend entry. A diagonal reference (calibration) is a dashed grey [`Series`] through two points.
#[derive(Debug, Clone, PartialEq)]
pub struct RefLine {
    pub at: f64,
    pub label: Option<String>,
}

impl RefLine {
    /// An unlabelled reference line at `at`.
    pub fn at(at: f64) -> Self {
        RefLine { at, label: None }
    }

    /// A reference line at `at` with a legend entry.
    pub fn labelled(at: f64, label: &str) -> Self {
        RefLine {
            at,
            label: Some(label.to_string()),
        }
    }
}

/// A short panel stacked under a [`LinePanel`], sharing its x axis (range, ticks, vertical lines): ratio,
/// residual, bias or correlation panels. Its y label should be short (it is shrunk to the panel height).
#[derive(Debug, Clone)]
pub struct SubPanel<'a> {
    pub y: Axis,
    pub series: Vec<Series<'a>>,
    /// Horizontal reference lines.
    pub hlines: Vec<RefLine>,
    /// A grey band `y ∈ [lo, hi]` across the panel (e.g. ±5 % around zero).
    pub shade_y: Option<(f64, f64)>,
    /// Legend corner; `None` picks the corner covering the least of the drawn curves.
    pub legend: Option<Corner>,
}

impl<'a> SubPanel<'a> {
    /// An empty sub-panel with y axis `y`.
    pub fn new(y: Axis) -> Self {
        SubPanel {
            y,
            series: vec![],
            hlines: vec![],
            shade_y: None,
            legend: None,
        }
    }

    /// A relative-difference panel: linear y axis `y_label` (e.g. "ΔΣ/Σ"), a line at zero and the band
    /// `±tolerance` shaded (0.05 for ±5 %).
    pub fn relative(y_label: &str, series: Vec<Series<'a>>, tolerance: f64) -> Self {
        SubPanel {
            series,
            hlines: vec![RefLine::at(0.0)],
            shade_y: Some((-tolerance, tolerance)),
            ..SubPanel::new(Axis::linear(y_label))
        }
    }
}

/// One panel: a main plot of curves with, optionally, sub-panels stacked below it on the same x axis.
#[derive(Debug, Clone)]
pub struct LinePanel<'a> {
    /// Heading above the panel (markup).
    pub title: Option<String>,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series<'a>>,
    /// Horizontal reference lines of the main plot.
    pub hlines: Vec<RefLine>,
    /// Vertical reference lines, drawn through the main plot and every sub-panel.
    pub vlines: Vec<RefLine>,
    /// A grey band `y ∈ [lo, hi]` across the main plot.
    pub shade_y: Option<(f64, f64)>,
    /// Legend corner; `None` picks the corner covering the least of the drawn curves.
    pub legend: Option<Corner>,
    /// Sub-panels from top to bottom; the x axis is labelled under the last one.
    pub below: Vec<SubPanel<'a>>,
}

impl<'a> LinePanel<'a> {
    /// An empty panel with axes `x` and `y`, automatic legend and no sub-panels.
    pub fn new(x: Axis, y: Axis) -> Self {
        LinePanel {
            title: None,
            x,
            y,
            series: vec![],
            hlines: vec![],
            vlines: vec![],
            shade_y: None,
            legend: None,
            below: vec![],
        }
    }

    /// The main plot followed by the sub-panels, as one list of plots sharing the x axis.
    fn plots(&self) -> Vec<Plot<'_, 'a>> {
        let main = Plot {
            y: &self.y,
            series: &self.series,
            hlines: &self.hlines,
            shade_y: self.shade_y,
            legend: self.legend,
            sub: false,
        };
        std::iter::once(main)
            .chain(self.below.iter().map(|s| Plot {
                y: &s.y,
                series: &s.series,
                hlines: &s.hlines,
                shade_y: s.shade_y,
                legend: s.legend,
                sub: true,
            }))
            .collect()
    }
}

/// A figure of line panels in rows of `cols`. Rows with sub-panels or panel titles are taller than
/// [`chart::canvas_size`]'s rows by what those need, so main plots keep their size.
#[derive(Debug, Clone)]
pub struct LineFigure<'a> {
    pub title: Option<String>,
    pub cols: usize,
    pub panels: Vec<LinePanel<'a>>,
}

/// Renders a [`LineFigure`].
pub fn line_figure(f: &LineFigure) -> Result<Figure> {
    f.validate()?;
    render(f)
}

/// One plotting area of a panel: the main plot or a sub-panel.
#[derive(Clone, Copy)]
struct Plot<'p, 'a> {
    y: &'p Axis,
    series: &'p [Series<'a>],
    hlines: &'p [RefLine],
    shade_y: Option<(f64, f64)>,
    legend: Option<Corner>,
    sub: bool,
}

impl Plot<'_, '_> {
    /// The points of `s` that both axes can show.
    fn points<'s>(&self, s: &'s Series, x: &Axis) -> impl Iterator<Item = (f64, f64)> + 's {
        let (xs, ys) = (x.scale, self.y.scale);
        s.x.iter()
            .zip(s.y)
            .map(|(&a, &b)| (a, b))
            .filter(move |&(a, b)| xs.accepts(a) && ys.accepts(b))
    }

    /// The band edges of `s` that both axes can show, as `(x, lo, hi)`.
    fn band<'s>(&self, s: &'s Series, x: &Axis) -> impl Iterator<Item = (f64, f64, f64)> + 's {
        let (xs, ys) = (x.scale, self.y.scale);
        let (lo, hi) = s.band.unwrap_or((&[], &[]));
        s.x.iter()
            .zip(lo.iter().zip(hi))
            .map(|(&a, (&l, &h))| (a, l, h))
            .filter(move |&(a, l, h)| xs.accepts(a) && ys.accepts(l) && ys.accepts(h))
    }
}

impl LineFigure<'_> {
    fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::Config(format!("line figure: {msg}")));
        if self.panels.is_empty() {
            return fail("no panels".into());
        }
        for (i, p) in self.panels.iter().enumerate() {
            let panel = format!(
                "panel {} ('{}')",
                i + 1,
                p.title.as_deref().unwrap_or(&p.y.label)
            );
            check_axis(&p.x, "x").or_else(|m| fail(format!("{panel}: {m}")))?;
            for v in &p.vlines {
                if !p.x.accepts(v.at) {
                    return fail(format!(
                        "{panel}: vertical line at {} is not on the x axis",
                        v.at
                    ));
                }
            }
            for (k, plot) in p.plots().iter().enumerate() {
                let name = if k == 0 {
                    panel.clone()
                } else {
                    format!("{panel}, sub-panel {k} ('{}')", plot.y.label)
                };
                check_plot(plot, &p.x).or_else(|m| fail(format!("{name}: {m}")))?;
            }
        }
        Ok(())
    }
}

/// An explicit range must be finite and increasing (and positive on a log axis).
fn check_axis(axis: &Axis, which: &str) -> std::result::Result<(), String> {
    match axis.range {
        Some((lo, hi)) if !(axis.accepts(lo) && axis.accepts(hi) && lo < hi) => Err(format!(
            "{which} range ({lo}, {hi}) must be finite and increasing{}",
            if axis.scale == Scale::Log {
                ", with lo > 0 on a log axis"
            } else {
                ""
            }
        )),
        _ => Ok(()),
    }
}

fn check_plot(plot: &Plot, x: &Axis) -> std::result::Result<(), String> {
    check_axis(plot.y, "y")?;
    if plot.series.is_empty() {
        return Err("no series".into());
    }
    for (j, s) in plot.series.iter().enumerate() {
        let name = s.label.clone().unwrap_or_else(|| format!("#{}", j + 1));
        if s.x.len() != s.y.len() {
            return Err(format!(
                "series '{name}' has {} x values but {} y values",
                s.x.len(),
                s.y.len()
            ));
        }
        if let Some((lo, hi)) = s.band {
            if lo.len() != s.x.len() || hi.len() != s.x.len() {
                return Err(format!(
                    "series '{name}' has {} points but its band has {} lower and {} upper values",
                    s.x.len(),
                    lo.len(),
                    hi.len()
                ));
            }
        }
    }
    if plot
        .series
        .iter()
        .all(|s| plot.points(s, x).next().is_none())
    {
        return Err(format!(
            "no point with finite x and y{}",
            if x.scale == Scale::Log || plot.y.scale == Scale::Log {
                " (positive on log axes)"
            } else {
                ""
            }
        ));
    }
    for h in plot.hlines {
        if !plot.y.accepts(h.at) {
            return Err(format!("horizontal line at {} is not on the y axis", h.at));
        }
    }
    if let Some((lo, hi)) = plot.shade_y {
        if !(plot.y.accepts(lo) && plot.y.accepts(hi) && lo < hi) {
            return Err(format!(
                "shaded band ({lo}, {hi}) must be increasing and on the y axis"
            ));
        }
    }
    Ok(())
}

/// `[lo, hi]` of `values`, or `None` when there are none.
fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// `[lo, hi]` widened by `pad` of its span (log span on a log axis) on each side; a single value is widened to
/// a visible range.
fn padded(scale: Scale, (lo, hi): (f64, f64), pad: f64) -> (f64, f64) {
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
fn x_range(p: &LinePanel, plots: &[Plot]) -> (f64, f64) {
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
fn y_range(plot: &Plot, x: &Axis, (x0, x1): (f64, f64)) -> (f64, f64) {
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
struct AxisPlan {
    scale: Scale,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    labels: Vec<String>,
}

impl AxisPlan {
    /// About `target` nice ticks on a linear axis; decades (with 2 and 5 on short ranges) on a log axis, or
    /// linear ticks on a log axis spanning less than a factor of a few.
    fn new(scale: Scale, (lo, hi): (f64, f64), target: usize) -> Self {
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
    fn frac(&self, v: f64) -> Option<f64> {
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
    fn unit_axis(&self) -> LinearAxis {
        LinearAxis {
            range: 0.0..1.0,
            ticks: self.ticks.iter().filter_map(|v| self.frac(*v)).collect(),
        }
    }

    /// The label of the tick at unit position `u`.
    fn label_at(&self, u: f64) -> String {
        self.ticks
            .iter()
            .zip(&self.labels)
            .find(|(v, _)| self.frac(**v).is_some_and(|f| (f - u).abs() < 1e-9))
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    }

    /// Whether the tick labels, side by side, fill at most 60 % of `width` pixels.
    fn fits<DB: DrawingBackend>(
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
    fn fitted_x<DB: DrawingBackend>(
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

    fn keep(&self, indices: &[usize]) -> Self {
        AxisPlan {
            ticks: indices.iter().map(|&i| self.ticks[i]).collect(),
            labels: indices.iter().map(|&i| self.labels[i].clone()).collect(),
            ..self.clone()
        }
    }
}

fn is_decade(v: f64) -> bool {
    let e = v.log10();
    (e - e.round()).abs() < 1e-9
}

/// Liang–Barsky: the part of segment `a`–`b` inside the unit square, if any.
fn clip_segment(a: (f64, f64), b: (f64, f64)) -> Option<((f64, f64), (f64, f64))> {
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
fn clip_polyline(points: &[Option<(f64, f64)>]) -> Vec<Vec<(f64, f64)>> {
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
fn clip_polygon(poly: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
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
fn runs<T: Copy>(items: impl Iterator<Item = Option<T>>) -> Vec<Vec<T>> {
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

/// Sizes of the stacked plotting areas of one cell.
#[derive(Debug, Clone, Copy)]
struct Stack {
    /// Room above the main plot (margin plus the panel-title strip of the row).
    top: u32,
    subs: usize,
}

impl Stack {
    /// Pixel heights of the areas of the main plot and of each sub-panel, top to bottom, in a cell `h` tall.
    fn heights(&self, h: u32) -> Vec<u32> {
        let subs: Vec<u32> = (0..self.subs)
            .map(|k| {
                SUB_PLOT_PX
                    + if k + 1 == self.subs {
                        chart::X_AXIS_PX
                    } else {
                        STACK_GAP_PX
                    }
            })
            .collect();
        let main = h.saturating_sub(subs.iter().sum());
        std::iter::once(main).chain(subs).collect()
    }

    /// Room above and below the plotting area of plot `k` (0 = main).
    fn frame(&self, k: usize) -> (u32, u32) {
        let top = if k == 0 { self.top } else { 0 };
        let below = if k == self.subs {
            chart::X_AXIS_PX
        } else {
            STACK_GAP_PX
        };
        (top, below)
    }
}

/// What one plot drew, for placing its legend: pixel samples along the curves and reference lines.
type Drawn = Vec<(i32, i32)>;

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &LinePanel,
    title_px: u32,
) -> DrawResult {
    let plots = p.plots();
    let stack = Stack {
        top: chart::MARGIN_TOP_PX + title_px,
        subs: p.below.len(),
    };
    let xr = x_range(p, &plots);
    let ys: Vec<AxisPlan> = plots
        .iter()
        .map(|pl| {
            let target = if pl.sub { SUB_Y_TICKS } else { MAIN_Y_TICKS };
            AxisPlan::new(pl.y.scale, y_range(pl, &p.x, xr), target)
        })
        .collect();
    let mut y_axis = 0;
    for y in &ys {
        y_axis = y_axis.max(chart::y_axis_px(area, &y.labels)?);
    }
    let plot_w = area.dim_in_pixel().0 as i32 - y_axis as i32 - chart::MARGIN_RIGHT_PX as i32;
    let x = AxisPlan::fitted_x(area, p.x.scale, xr, plot_w)?;

    let mut rest = area.clone();
    let heights = stack.heights(area.dim_in_pixel().1);
    for (k, ((plot, y), h)) in plots.iter().zip(&ys).zip(heights).enumerate() {
        let (cell, below) = rest.split_vertically(h);
        rest = below;
        let (top, bottom) = stack.frame(k);
        let mut ctx = chart::chart_in(&cell, x.unit_axis(), y.unit_axis(), y_axis, top, bottom)?;
        let last = k == stack.subs;
        let fx = |u: &f64| if last { x.label_at(*u) } else { String::new() };
        chart::draw_mesh(&mut ctx, &fx, &|v| y.label_at(*v))?;
        let frame = ctx.plotting_area().get_pixel_range();
        let to_px = |u: f64, v: f64| ctx.backend_coord(&(u, v));
        let drawn = draw_plot(&cell, plot, p, &x, y, &to_px, &frame)?;

        let mut legend: Vec<(Swatch, String)> = plot
            .series
            .iter()
            .filter_map(|s| s.label.clone().map(|l| (s.swatch(), l)))
            .collect();
        let vlines: &[RefLine] = if k == 0 { &p.vlines } else { &[] };
        legend.extend(
            plot.hlines
                .iter()
                .chain(vlines)
                .filter_map(|r| r.label.clone().map(|l| (Swatch::Dashed(GREY), l))),
        );
        let corner = match plot.legend {
            Some(c) => c,
            None => best_corner(&cell, &frame, &legend, &drawn)?,
        };
        chart::draw_legend(&cell, &frame, &legend, corner)?;
        chart::y_axis_label(&cell, &frame, &plot.y.label)?;
        if last {
            chart::x_axis_label(&cell, &frame, &p.x.label)?;
        }
        if let (0, Some(t)) = (k, &p.title) {
            let (bx, by) = cell.get_base_pixel();
            let at = (
                (frame.0.start + frame.0.end) / 2 - bx,
                frame.1.start - by - 14,
            );
            let label = Label::new(t, LABEL_PX);
            draw_label(
                &cell,
                &label,
                at,
                (HPos::Center, VPos::Bottom),
                Orient::Horizontal,
            )?;
        }
    }
    Ok(())
}

/// Draws the shade, bands, reference lines, curves and markers of one plot (in that order, so data stays on
/// top) and returns pixel samples of what covers the plotting area.
fn draw_plot<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    plot: &Plot,
    p: &LinePanel,
    x: &AxisPlan,
    y: &AxisPlan,
    to_px: &dyn Fn(f64, f64) -> (i32, i32),
    frame: &PixelRect,
) -> std::result::Result<Drawn, DrawError> {
    let (bx, by) = area.get_base_pixel();
    let local = |(u, v): (f64, f64)| {
        let (px, py) = to_px(u, v);
        (px - bx, py - by)
    };
    let mut drawn = Drawn::new();

    if let Some((lo, hi)) = plot.shade_y {
        let (v0, v1) = (y.frac(lo), y.frac(hi));
        if let (Some(v0), Some(v1)) = (v0, v1) {
            let (v0, v1) = (v0.clamp(0.0, 1.0), v1.clamp(0.0, 1.0));
            if v1 > v0 {
                let rect = [local((0.0, v0)), local((1.0, v1))];
                area.draw(&Rectangle::new(rect, GREY.mix(SHADE_ALPHA).filled()))?;
            }
        }
    }
    for s in plot.series.iter().filter(|s| s.band.is_some()) {
        let band = plot.band(s, &p.x).map(|(a, l, h)| {
            let u = x.frac(a)?;
            Some((u, y.frac(l)?, y.frac(h)?))
        });
        for run in runs(band) {
            let poly: Vec<(f64, f64)> = run
                .iter()
                .map(|&(u, _, h)| (u, h))
                .chain(run.iter().rev().map(|&(u, l, _)| (u, l)))
                .collect();
            let pixels = dedup(clip_polygon(poly).into_iter().map(local));
            if pixels.len() >= 3 {
                area.draw(&Polygon::new(pixels, s.color.mix(BAND_ALPHA).filled()))?;
            }
        }
    }

    let path = |pts: &[Option<(f64, f64)>],
                color: RGBColor,
                width: u32,
                dashed: bool,
                drawn: &mut Drawn|
     -> DrawResult {
        for piece in clip_polyline(pts) {
            let pixels = dedup(piece.into_iter().map(local));
            if pixels.len() < 2 {
                continue;
            }
            sample_path(&pixels, (bx, by), drawn);
            let style = color.stroke_width(width);
            if dashed {
                area.draw(&DashedPathElement::new(pixels, 12, 8, style))?;
            } else {
                area.draw(&PathElement::new(pixels, style))?;
            }
        }
        Ok(())
    };
    for h in plot.hlines {
        let v = y.frac(h.at);
        path(
            &[v.map(|v| (0.0, v)), v.map(|v| (1.0, v))],
            GREY,
            LINE_PX - 1,
            true,
            &mut drawn,
        )?;
    }
    for l in &p.vlines {
        let u = x.frac(l.at);
        path(
            &[u.map(|u| (u, 0.0)), u.map(|u| (u, 1.0))],
            GREY,
            LINE_PX - 1,
            true,
            &mut drawn,
        )?;
    }
    for s in plot.series {
        let pts: Vec<Option<(f64, f64)>> =
            s.x.iter()
                .zip(s.y)
                .map(|(&a, &b)| Some((x.frac(a)?, y.frac(b)?)))
                .collect();
        path(&pts, s.color, LINE_PX, s.dashed, &mut drawn)?;
        if s.points {
            let inside =
                |&(u, v): &(f64, f64)| (0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&v);
            for &uv in pts.iter().flatten().filter(|uv| inside(uv)) {
                let c = local(uv);
                drawn.push((c.0 + bx, c.1 + by));
                area.draw(&Circle::new(c, POINT_PX, s.color.filled()))?;
            }
        }
    }
    // Keep only samples inside the frame (markers on the edge may stick out).
    drawn.retain(|(px, py)| frame.0.contains(px) && frame.1.contains(py));
    Ok(drawn)
}

/// Pixel points without consecutive repeats (plotters draws a zero-length segment of a thick line as a spike).
fn dedup(points: impl Iterator<Item = (i32, i32)>) -> Vec<(i32, i32)> {
    let mut out: Vec<(i32, i32)> = Vec::new();
    for p in points {
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    out
}

/// Samples every few pixels along a pixel path (area-relative, shifted back to absolute by `base`).
fn sample_path(pixels: &[(i32, i32)], (bx, by): (i32, i32), out: &mut Drawn) {
    const STEP_PX: f64 = 4.0;
    for w in pixels.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (dx, dy) = ((b.0 - a.0) as f64, (b.1 - a.1) as f64);
        let n = (dx.hypot(dy) / STEP_PX).ceil().max(1.0) as i32;
        for i in 0..n {
            let t = i as f64 / n as f64;
            out.push((
                bx + a.0 + (t * dx).round() as i32,
                by + a.1 + (t * dy).round() as i32,
            ));
        }
    }
    if let Some(&(x, y)) = pixels.last() {
        out.push((bx + x, by + y));
    }
}

/// The corner whose legend box hides the fewest drawn samples (ties: upper right, upper left, lower left,
/// lower right).
fn best_corner<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    frame: &PixelRect,
    entries: &[(Swatch, String)],
    drawn: &Drawn,
) -> std::result::Result<Corner, DrawError> {
    const MARGIN_PX: i32 = 6;
    let mut best = (usize::MAX, Corner::UpperRight);
    for corner in [
        Corner::UpperRight,
        Corner::UpperLeft,
        Corner::LowerLeft,
        Corner::LowerRight,
    ] {
        let Some((xs, ys)) = chart::legend_bounds(area, frame, entries, corner)? else {
            return Ok(corner);
        };
        let hidden = drawn
            .iter()
            .filter(|(px, py)| {
                (xs.start - MARGIN_PX..xs.end + MARGIN_PX).contains(px)
                    && (ys.start - MARGIN_PX..ys.end + MARGIN_PX).contains(py)
            })
            .count();
        if hidden < best.0 {
            best = (hidden, corner);
        }
    }
    Ok(best.1)
}

impl LineFigure<'_> {
    fn cols(&self) -> usize {
        self.cols.clamp(1, self.panels.len().max(1))
    }

    /// Per row: extra height over [`chart::PANEL_H`] for sub-panels, and the panel-title strip (0 if untitled).
    fn rows(&self) -> Vec<(u32, u32)> {
        self.panels
            .chunks(self.cols())
            .map(|row| {
                let subs = row.iter().map(|p| p.below.len()).max().unwrap_or(0) as u32;
                let title = if row.iter().any(|p| p.title.is_some()) {
                    PANEL_TITLE_PX
                } else {
                    0
                };
                (subs * (SUB_PLOT_PX + STACK_GAP_PX) + title, title)
            })
            .collect()
    }
}

impl Draw for LineFigure<'_> {
    fn name(&self) -> &str {
        "line figure"
    }

    fn size(&self) -> (u32, u32) {
        let (w, h) = chart::canvas_size(self.panels.len(), self.cols, self.title.is_some());
        (w, h + self.rows().iter().map(|r| r.0).sum::<u32>())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let body = chart::panel_areas(root, self.title.as_deref(), 1, 1)?;
        let mut rest = body[0].clone();
        for ((extra, title), row) in self.rows().into_iter().zip(self.panels.chunks(self.cols())) {
            let (strip, below) = rest.split_vertically(chart::PANEL_H + extra);
            rest = below;
            let cells = strip.split_evenly((1, self.cols()));
            for (cell, p) in cells.iter().zip(row) {
                draw_panel(cell, p, title)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A projected NFW-like profile Σ(r) ∝ 1 / (x (1 + x)²) with x = r / r_s, in arbitrary units.
    fn profile(r: &[f64], rs: f64, norm: f64) -> Vec<f64> {
        r.iter()
            .map(|r| norm / ((r / rs) * (1.0 + r / rs).powi(2)))
            .collect()
    }

    fn log_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64))
            .collect()
    }

    /// PNG width and height from the IHDR chunk.
    fn png_dims(png: &[u8]) -> (u32, u32) {
        let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }

    struct Data {
        r: Vec<f64>,
        truth: Vec<Vec<f64>>,
        pred: Vec<Vec<f64>>,
        lo: Vec<Vec<f64>>,
        hi: Vec<Vec<f64>>,
        rel: Vec<Vec<f64>>,
        rel_lo: Vec<Vec<f64>>,
        rel_hi: Vec<Vec<f64>>,
        k: Vec<f64>,
        pk_true: Vec<f64>,
        pk_pred: Vec<f64>,
        bias: Vec<f64>,
        corr: Vec<f64>,
        steps: Vec<f64>,
        loss: Vec<f64>,
        val: Vec<f64>,
        nominal: Vec<f64>,
        coverage: Vec<f64>,
    }

    fn data() -> Data {
        let r = log_grid(0.02, 2.0, 40);
        let mut d = Data {
            r: r.clone(),
            truth: vec![],
            pred: vec![],
            lo: vec![],
            hi: vec![],
            rel: vec![],
            rel_lo: vec![],
            rel_hi: vec![],
            k: log_grid(0.03, 3.0, 30),
            pk_true: vec![],
            pk_pred: vec![],
            bias: vec![],
            corr: vec![],
            steps: (0..=200).map(|i| i as f64 * 500.0).collect(),
            loss: vec![],
            val: vec![],
            nominal: (0..=10).map(|i| i as f64 / 10.0).collect(),
            coverage: vec![],
        };
        for bin in 0..4 {
            let norm = 3e14 * 1.8f64.powi(bin);
            let truth = profile(&r, 0.25 - 0.03 * bin as f64, norm);
            let wiggle = |i: usize| 0.025 * ((i as f64 * 0.3 + bin as f64).sin() - 0.5 * r[i]);
            let pred: Vec<f64> = truth
                .iter()
                .enumerate()
                .map(|(i, t)| t * (1.0 + wiggle(i)))
                .collect();
            let width = |i: usize| 0.02 + 0.03 * r[i];
            d.lo.push(
                pred.iter()
                    .enumerate()
                    .map(|(i, p)| p * (1.0 - width(i)))
                    .collect(),
            );
            d.hi.push(
                pred.iter()
                    .enumerate()
                    .map(|(i, p)| p * (1.0 + width(i)))
                    .collect(),
            );
            d.rel.push((0..r.len()).map(wiggle).collect());
            d.rel_lo
                .push((0..r.len()).map(|i| wiggle(i) - width(i)).collect());
            d.rel_hi
                .push((0..r.len()).map(|i| wiggle(i) + width(i)).collect());
            d.truth.push(truth);
            d.pred.push(pred);
        }
        for &k in &d.k {
            let pk = 2e4 * k.powf(-1.2) * (-(k / 1.5f64).powi(2)).exp() + 1.0;
            d.pk_true.push(pk);
            let b = 1.0 - 0.08 * (k / 3.0).powi(2) + 0.01 * (5.0 * k).sin();
            d.bias.push(b);
            d.pk_pred.push(pk * b * b);
            d.corr.push(1.0 - 0.15 * (k / 3.0).powf(1.5));
        }
        for (i, &s) in d.steps.iter().enumerate() {
            let base = 0.08 + 0.9 * (-s / 8000.0).exp();
            let noise = 0.03 * (0.9 * i as f64).sin() + 0.02 * (2.3 * i as f64).cos();
            d.loss.push(base * (1.0 + noise));
            d.val.push(base * 1.05 + 0.003);
        }
        d.coverage = d
            .nominal
            .iter()
            .map(|p| p + 0.06 * (std::f64::consts::PI * p).sin())
            .collect();
        d
    }

    const DIAGONAL: [f64; 2] = [0.0, 1.0];

    fn example(d: &Data) -> LineFigure<'_> {
        let mut profiles = LinePanel::new(
            Axis::log("r / R_{200c}"),
            Axis::log("Σ_{DM} [M_⊙ kpc^{-2}]"),
        );
        profiles.title = Some("Radial profiles".into());
        let mut rel = vec![];
        for bin in 0..4 {
            let c = style::mass_bin_color(bin);
            profiles
                .series
                .push(Series::new(&d.r, &d.truth[bin], c).label(&format!("bin {}", bin + 1)));
            profiles.series.push(
                Series::new(&d.r, &d.pred[bin], c)
                    .dashed()
                    .band(&d.lo[bin], &d.hi[bin]),
            );
            rel.push(Series::new(&d.r, &d.rel[bin], c).band(&d.rel_lo[bin], &d.rel_hi[bin]));
        }
        // Legend-only entries (no points) explain the line styles once for all bins.
        profiles
            .series
            .push(Series::new(&[], &[], style::INK).label("truth"));
        profiles.series.push(
            Series::new(&[], &[], style::INK)
                .dashed()
                .label("posterior mean"),
        );
        profiles.vlines = vec![RefLine::labelled(1.0, "R_{200c}")];
        // A fixed range that the outer bands exceed: they are clipped at the frame.
        let mut relative = SubPanel::relative("ΔΣ/Σ", rel, 0.05);
        relative.y = relative.y.range(-0.1, 0.1);
        profiles.below = vec![relative];

        let mut spectra = LinePanel::new(Axis::log("k [kpc^{-1}]"), Axis::log("P(k)"));
        spectra.title = Some("Power spectra".into());
        spectra.series = vec![
            Series::new(&d.k, &d.pk_true, style::INK).label("truth"),
            Series::new(&d.k, &d.pk_pred, style::series_color(1))
                .dashed()
                .label("posterior mean"),
        ];
        let mut bias = SubPanel::new(Axis::linear("b(k)"));
        bias.series = vec![Series::new(&d.k, &d.bias, style::series_color(1))];
        bias.hlines = vec![RefLine::at(1.0)];
        let mut corr = SubPanel::new(Axis::linear("r(k)"));
        corr.series = vec![Series::new(&d.k, &d.corr, style::series_color(1))];
        corr.hlines = vec![RefLine::at(1.0)];
        spectra.below = vec![bias, corr];

        let mut loss = LinePanel::new(Axis::linear("training step"), Axis::log("loss"));
        loss.series = vec![
            Series::new(&d.steps, &d.loss, style::series_color(0)).label("train"),
            Series::new(&d.steps, &d.val, style::series_color(1)).label("validation"),
        ];

        let mut calibration = LinePanel::new(
            Axis::linear("nominal coverage").range(0.0, 1.0),
            Axis::linear("empirical coverage").range(0.0, 1.0),
        );
        calibration.series = vec![
            Series::new(&DIAGONAL, &DIAGONAL, GREY)
                .dashed()
                .label("ideal"),
            Series::new(&d.nominal, &d.coverage, style::series_color(2))
                .points()
                .label("Σ_{DM}"),
        ];
        LineFigure {
            title: Some("Line figure check".into()),
            cols: 2,
            panels: vec![profiles, spectra, loss, calibration],
        }
    }

    #[test]
    fn renders_stacked_panels_with_bands() {
        let d = data();
        let mut f = example(&d);
        f.panels.truncate(2);
        f.title = None;
        let fig = line_figure(&f).unwrap();
        assert_eq!(&fig.png()[..8], b"\x89PNG\r\n\x1a\n");
        assert!(fig.svg().contains("<svg") && fig.svg().contains("<polygon"));
        // One row: two sub-panels (the power spectrum's) and a panel-title strip on top of the plain size.
        let (w, h) = chart::canvas_size(2, 2, false);
        let expected = (w, h + 2 * (SUB_PLOT_PX + STACK_GAP_PX) + PANEL_TITLE_PX);
        assert_eq!(fig.size(), expected);
        assert_eq!(png_dims(fig.png()), expected);

        // Without sub-panels and titles the canvas is exactly `canvas_size`'s.
        let plain = LineFigure {
            title: Some("t".into()),
            cols: 1,
            panels: vec![example(&d).panels.swap_remove(2)],
        };
        let fig = line_figure(&plain).unwrap();
        assert_eq!(png_dims(fig.png()), chart::canvas_size(1, 1, true));
    }

    #[test]
    fn bad_inputs_are_config_errors() {
        let d = data();
        let err = |f: &LineFigure| match line_figure(f) {
            Err(Error::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        };
        let good = example(&d);
        assert!(err(&LineFigure {
            panels: vec![],
            ..good.clone()
        })
        .contains("no panels"));

        let mut f = good.clone();
        f.panels[0].series[0].y = &d.r[..5];
        let m = err(&f);
        assert!(
            m.contains("panel 1 ('Radial profiles')") && m.contains("'bin 1'"),
            "{m}"
        );
        assert!(m.contains("40 x values but 5 y values"), "{m}");

        let mut f = good.clone();
        f.panels[0].below[0].series[2].band = Some((&d.r[..3], &d.r));
        let m = err(&f);
        assert!(
            m.contains("sub-panel 1 ('ΔΣ/Σ')") && m.contains("'#3'"),
            "{m}"
        );

        let mut f = good.clone();
        f.panels[1].below[1].series.clear();
        assert!(err(&f).contains("sub-panel 2 ('r(k)'): no series"));

        let nan = [f64::NAN; 3];
        let neg = [-1.0, 0.0, -3.0];
        let mut f = good.clone();
        f.panels[2].series = vec![Series::new(&nan, &nan, GREY)];
        assert!(err(&f).contains("no point with finite x and y"));
        f.panels[2].series = vec![Series::new(&d.r[..3], &neg, GREY)];
        assert!(err(&f).contains("positive on log axes"));

        let mut f = good.clone();
        f.panels[3].x = Axis::log("x").range(0.0, 1.0);
        assert!(err(&f).contains("x range (0, 1)"));
        let mut f = good.clone();
        f.panels[2].hlines = vec![RefLine::at(-1.0)];
        assert!(err(&f).contains("horizontal line at -1"));
        let mut f = good;
        f.panels[0].below[0].shade_y = Some((0.1, -0.1));
        assert!(err(&f).contains("shaded band"));
    }

    #[test]
    fn log_axes_skip_unplottable_points() {
        let x = [0.0, 1.0, 2.0, 3.0, 4.0, f64::NAN, 6.0];
        let y = [5.0, -1.0, 2.0, 0.0, 8.0, 3.0, f64::INFINITY];
        let mut panel = LinePanel::new(Axis::log("x"), Axis::log("y"));
        panel.series = vec![Series::new(&x, &y, GREY).points().band(&y, &y)];
        let f = LineFigure {
            title: None,
            cols: 1,
            panels: vec![panel],
        };
        let fig = line_figure(&f).unwrap();
        assert!(!fig.png().is_empty() && fig.svg().contains("<svg"));

        // The range comes from the two points both log axes can show, (2, 2) and (4, 8).
        let plots = f.panels[0].plots();
        let (x0, x1) = x_range(&f.panels[0], &plots);
        assert!(x0 < 2.0 && x0 > 1.8 && x1 > 4.0 && x1 < 4.4, "{x0} {x1}");
        let (y0, y1) = y_range(&plots[0], &f.panels[0].x, (x0, x1));
        assert!(y0 < 2.0 && y0 > 1.6 && y1 > 8.0 && y1 < 10.0, "{y0} {y1}");
    }

    #[test]
    fn clipping() {
        assert_eq!(
            clip_segment((-1.0, 0.5), (2.0, 0.5)),
            Some(((0.0, 0.5), (1.0, 0.5)))
        );
        assert_eq!(clip_segment((-1.0, 2.0), (-0.5, 3.0)), None);
        let pieces = clip_polyline(&[
            Some((0.1, 0.1)),
            Some((0.5, 1.5)),
            Some((0.9, 0.1)),
            None,
            Some((0.2, 0.2)),
            Some((0.3, 0.3)),
        ]);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[2], vec![(0.2, 0.2), (0.3, 0.3)]);
        let square = clip_polygon(vec![(-1.0, -1.0), (2.0, -1.0), (2.0, 2.0), (-1.0, 2.0)]);
        let area: f64 = (0..square.len())
            .map(|i| {
                let (a, b) = (square[i], square[(i + 1) % square.len()]);
                a.0 * b.1 - b.0 * a.1
            })
            .sum::<f64>()
            / 2.0;
        assert!((area - 1.0).abs() < 1e-12);
        assert_eq!(
            runs([Some(1), None, None, Some(2), Some(3), None].into_iter()),
            vec![vec![1], vec![2, 3]]
        );
    }

    #[test]
    fn axis_plans() {
        let a = AxisPlan::new(Scale::Linear, (0.0, 100_000.0), 6);
        assert_eq!(a.labels.first().map(String::as_str), Some("0"));
        assert_eq!(a.label_at(a.frac(a.ticks[1]).unwrap()), a.labels[1]);
        let short_log = AxisPlan::new(Scale::Log, (1.1, 1.9), 5);
        assert!(short_log.ticks.len() >= 2, "{:?}", short_log.ticks);
        assert_eq!(AxisPlan::new(Scale::Log, (1.0, 1e3), 5).labels[1], "10");
        assert_eq!(AxisPlan::new(Scale::Log, (1.0, 1e4), 5).labels[1], "10¹");
        assert_eq!(padded(Scale::Linear, (0.0, 0.0), 0.05), (-1.0, 1.0));

        // Wide labels ("1200000") on a narrow axis: fewer ticks, never fewer than two.
        let mut svg = String::new();
        let area = SVGBackend::with_string(&mut svg, (800, 600)).into_drawing_area();
        let x = AxisPlan::fitted_x(&area, Scale::Linear, (0.0, 1.2e6), 300).unwrap();
        assert!(
            x.fits(&area, 300).unwrap() && x.ticks.len() >= 2,
            "{:?}",
            x.labels
        );
        let x = AxisPlan::fitted_x(&area, Scale::Log, (1e-30, 1e30), 100).unwrap();
        assert!(x.ticks.len() >= 2, "{:?}", x.labels);
        assert_eq!(padded(Scale::Log, (3.0, 3.0), 0.05), (1.5, 6.0));
    }

    /// Writes `target/plot-check/lines.{png,svg}` for a look by eye: `cargo test --release --lib
    /// plot::lines::tests::example_figure -- --ignored`.
    #[test]
    #[ignore]
    fn example_figure() {
        let d = data();
        let fig = line_figure(&example(&d)).unwrap();
        let stem = concat!(env!("CARGO_MANIFEST_DIR"), "/target/plot-check/lines");
        fig.save(stem).unwrap();
    }
}
