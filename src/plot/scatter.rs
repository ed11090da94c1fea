//! Log–log scatter plots with power-law lines: scaling relations (Y–M, L_X–M, T–M) with their fits and the
//! self-similar expectations, and any later "measured vs expected" plot on logarithmic axes.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::chart::{self, Corner, Swatch};
use super::figure::{render, Draw, DrawResult, Figure};
use super::style::{self, LINE_PX, POINT_PX};
use crate::data::scaling::PowerLawFit;
use crate::{Error, Result};

/// A set of points in one colour (e.g. one mass bin). Pairs that are not finite and positive are skipped.
#[derive(Debug, Clone)]
pub struct PointSet<'a> {
    /// Legend text (markup); `None` leaves the set out of the legend.
    pub label: Option<String>,
    pub x: &'a [f64],
    pub y: &'a [f64],
    pub color: RGBColor,
}

/// A power law `y = y0 (x / x0)^slope`, drawn across the panel: solid for fits, dashed for expectations.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerLaw {
    pub label: String,
    pub slope: f64,
    pub x0: f64,
    pub y0: f64,
    pub color: RGBColor,
    pub dashed: bool,
}

impl PowerLaw {
    /// The fitted line of [`crate::data::scaling::fit_power_law`], solid.
    pub fn from_fit(fit: &PowerLawFit, label: &str, color: RGBColor) -> Self {
        PowerLaw {
            label: label.to_string(),
            slope: fit.slope,
            x0: fit.pivot,
            y0: 10f64.powf(fit.intercept),
            color,
            dashed: false,
        }
    }

    /// A dashed reference line of slope `slope` through `(x0, y0)` (usually the fit's value at its pivot, so the
    /// eye compares slopes, not normalisations).
    pub fn reference(label: &str, slope: f64, (x0, y0): (f64, f64), color: RGBColor) -> Self {
        PowerLaw {
            label: label.to_string(),
            slope,
            x0,
            y0,
            color,
            dashed: true,
        }
    }

    fn at(&self, x: f64) -> f64 {
        self.y0 * (x / self.x0).powf(self.slope)
    }

    fn swatch(&self) -> Swatch {
        if self.dashed {
            Swatch::Dashed(self.color)
        } else {
            Swatch::Line(self.color)
        }
    }
}

/// One log–log panel.
#[derive(Debug, Clone)]
pub struct ScatterPanel<'a> {
    /// Axis labels (markup, with units).
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<PointSet<'a>>,
    pub lines: Vec<PowerLaw>,
    /// Corners of the legends of the lines and of the point sets; the same corner gives one legend box.
    /// In a rising relation, lines upper left and points lower right keep both off the data.
    pub legend: Corner,
    pub points_legend: Corner,
}

/// A figure of log–log panels in rows of `cols`.
#[derive(Debug, Clone)]
pub struct LogLogScatter<'a> {
    pub title: Option<String>,
    pub cols: usize,
    pub panels: Vec<ScatterPanel<'a>>,
}

/// Renders a [`LogLogScatter`].
pub fn scatter_loglog(s: &LogLogScatter) -> Result<Figure> {
    s.validate()?;
    render(s)
}

impl LogLogScatter<'_> {
    fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::Config(format!("log–log scatter: {msg}")));
        if self.panels.is_empty() {
            return fail("no panels".into());
        }
        for p in &self.panels {
            if let Some(s) = p.points.iter().find(|s| s.x.len() != s.y.len()) {
                return fail(format!(
                    "'{}': {} x values but {} y values",
                    p.y_label,
                    s.x.len(),
                    s.y.len()
                ));
            }
            if p.points.iter().all(|s| valid_pairs(s).next().is_none()) {
                return fail(format!("'{}': no finite positive points", p.y_label));
            }
            if let Some(l) = p
                .lines
                .iter()
                .find(|l| !(l.x0 > 0.0 && l.y0 > 0.0 && l.slope.is_finite()))
            {
                return fail(format!(
                    "'{}': line '{}' is not a valid power law",
                    p.y_label, l.label
                ));
            }
        }
        Ok(())
    }
}

fn valid_pairs<'a>(s: &'a PointSet) -> impl Iterator<Item = (f64, f64)> + 'a {
    s.x.iter()
        .zip(s.y)
        .map(|(&x, &y)| (x, y))
        .filter(|(x, y)| x.is_finite() && y.is_finite() && *x > 0.0 && *y > 0.0)
}

/// `[lo, hi]` of positive values widened by `pad` of the log span on each side (at least a factor 1.2 overall).
fn log_extent(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let span = (hi / lo).log10().max(0.08);
    let f = 10f64.powf(pad * span);
    (lo / f, hi * f)
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &ScatterPanel) -> DrawResult {
    let pairs = || p.points.iter().flat_map(valid_pairs);
    let (x0, x1) = log_extent(pairs().map(|(x, _)| x), 0.05);
    let (y0, y1) = log_extent(pairs().map(|(_, y)| y), 0.08);
    let y1 = y1 * (y1 / y0).powf(0.15);
    let (x_ticks, y_ticks) = (style::log_ticks(x0, x1), style::log_ticks(y0, y1));
    let y_labels: Vec<String> = y_ticks.iter().map(|v| style::log_tick_label(*v)).collect();
    let mut chart = chart::chart_on(
        area,
        (x0..x1).log_scale().with_key_points(x_ticks),
        (y0..y1).log_scale().with_key_points(y_ticks),
        &y_labels,
    )?;
    chart::draw_mesh(&mut chart, &|v| style::log_tick_label(*v), &|v| {
        style::log_tick_label(*v)
    })?;

    let mut point_legend = Vec::new();
    for s in &p.points {
        chart.draw_series(
            valid_pairs(s).map(|xy| Circle::new(xy, POINT_PX, s.color.mix(0.75).filled())),
        )?;
        if let Some(l) = &s.label {
            point_legend.push((Swatch::Point(s.color), l.clone()));
        }
    }
    let mut line_legend = Vec::new();
    for line in &p.lines {
        let ends = vec![(x0, line.at(x0)), (x1, line.at(x1))];
        let style = line.color.stroke_width(LINE_PX);
        if line.dashed {
            chart.draw_series(std::iter::once(DashedPathElement::new(ends, 14, 9, style)))?;
        } else {
            chart.draw_series(std::iter::once(PathElement::new(ends, style)))?;
        }
        line_legend.push((line.swatch(), line.label.clone()));
    }
    let plot = chart.plotting_area().get_pixel_range();
    chart::axis_labels(area, &plot, &p.x_label, &p.y_label)?;
    if p.points_legend == p.legend {
        point_legend.extend(line_legend);
        return chart::draw_legend(area, &plot, &point_legend, p.legend);
    }
    chart::draw_legend(area, &plot, &line_legend, p.legend)?;
    chart::draw_legend(area, &plot, &point_legend, p.points_legend)
}

impl Draw for LogLogScatter<'_> {
    fn name(&self) -> &str {
        "log–log scatter"
    }

    fn size(&self) -> (u32, u32) {
        chart::canvas_size(self.panels.len(), self.cols, self.title.is_some())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let areas = chart::panel_areas(root, self.title.as_deref(), self.panels.len(), self.cols)?;
        for (area, p) in areas.iter().zip(&self.panels) {
            draw_panel(area, p)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::scaling::fit_power_law;

    #[test]
    fn renders_a_scaling_relation() {
        let m: Vec<f64> = (0..60)
            .map(|i| 1e14 * 10f64.powf(1.3 * i as f64 / 59.0))
            .collect();
        let y: Vec<f64> = m
            .iter()
            .enumerate()
            .map(|(i, m)| {
                20.0 * (m / 3e14).powf(1.79) * (1.0 + 0.1 * ((i * 7 % 5) as f64 - 2.0) / 2.0)
            })
            .collect();
        let fit = fit_power_law(&m, &y, 3e14).unwrap();
        let line = PowerLaw::from_fit(&fit, "fit", style::series_color(1));
        let reference = PowerLaw::reference("5/3", 5.0 / 3.0, (fit.pivot, line.y0), style::GREY);
        let s = LogLogScatter {
            title: Some("Y–M".into()),
            cols: 1,
            panels: vec![ScatterPanel {
                x_label: "M_{500c} [M_⊙]".into(),
                y_label: "Y_{500} [kpc^2]".into(),
                points: vec![PointSet {
                    label: Some("clusters".into()),
                    x: &m,
                    y: &y,
                    color: style::mass_bin_color(0),
                }],
                lines: vec![line, reference],
                legend: Corner::UpperLeft,
                points_legend: Corner::LowerRight,
            }],
        };
        let fig = scatter_loglog(&s).unwrap();
        assert_eq!(&fig.png()[..8], b"\x89PNG\r\n\x1a\n");
        assert!(fig.svg().contains("<svg"));

        let mut bad = s.clone();
        bad.panels[0].points[0].y = &y[..3];
        assert!(matches!(scatter_loglog(&bad), Err(Error::Config(_))));
    }
}
