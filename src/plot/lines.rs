//! Line figures: curves y(x) on linear or logarithmic axes, with shaded uncertainty bands, dashed reference
//! lines and sub-panels stacked under a main panel on a shared x axis. One description covers training-loss
//! curves, radial profiles per mass bin with a (pred − true)/true panel, power spectra with b(k) and r(k)
//! panels, calibration curves and quality-vs-NFE plots.
//!
//! Everything is drawn inside its plotting area: explicit axis ranges clip curves and bands (plotters itself
//! does not clip), and points a logarithmic axis cannot show (≤ 0) or that are not finite break a curve
//! instead of failing the figure.

use plotters::prelude::*;

use super::chart::{Corner, Swatch};
use super::figure::{render, Figure};
use crate::{Error, Result};

mod axes;
mod draw;
#[cfg(test)]
mod tests;

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
/// [`canvas_size`](crate::plot::chart::canvas_size)'s rows by what those need, so main plots keep their size.
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
