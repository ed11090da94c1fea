//! Histograms of per-cluster quantities (mass, concentration, gas fraction, …), one panel per quantity, several
//! overlaid series per panel, optional vertical lines (e.g. the mass-bin edges).

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::chart::{self, Corner, LinearAxis, Swatch};
use super::figure::{render, Draw, DrawResult, Figure};
use super::style::{self, GREY, LINE_PX};
use crate::{Error, Result};

/// One set of values drawn as a translucent histogram with a solid outline.
#[derive(Debug, Clone)]
pub struct HistSeries<'a> {
    /// Legend text (markup); `None` leaves the series out of the legend.
    pub label: Option<String>,
    pub values: &'a [f64],
    pub color: RGBColor,
}

/// One panel. Values outside `[edges[0], edges[last]]` and NaNs are not counted.
#[derive(Debug, Clone)]
pub struct HistPanel<'a> {
    /// x-axis label (markup, with unit).
    pub x_label: String,
    /// Bin edges, increasing; see [`uniform_edges`] and [`integer_edges`].
    pub edges: Vec<f64>,
    pub series: Vec<HistSeries<'a>>,
    /// Vertical dashed lines at these x values, with one legend entry if `vline_label` is set.
    pub vlines: Vec<f64>,
    pub vline_label: Option<String>,
    pub legend: Corner,
}

impl<'a> HistPanel<'a> {
    /// A panel with one unlabelled series in the first palette colour.
    pub fn single(x_label: &str, values: &'a [f64], edges: Vec<f64>) -> Self {
        HistPanel {
            x_label: x_label.to_string(),
            edges,
            series: vec![HistSeries {
                label: None,
                values,
                color: style::series_color(0),
            }],
            vlines: vec![],
            vline_label: None,
            legend: Corner::UpperRight,
        }
    }
}

/// A figure of histogram panels in rows of `cols`, sharing the y label (e.g. "clusters").
#[derive(Debug, Clone)]
pub struct Histograms<'a> {
    pub title: Option<String>,
    pub y_label: String,
    pub cols: usize,
    pub panels: Vec<HistPanel<'a>>,
}

/// `n` equal bins on `[lo, hi]`.
pub fn uniform_edges(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let n = n.max(1);
    (0..=n)
        .map(|i| lo + (hi - lo) * i as f64 / n as f64)
        .collect()
}

/// Unit bins centred on the integers `lo..=hi` (for counts such as the number of subhalos).
pub fn integer_edges(lo: i64, hi: i64) -> Vec<f64> {
    (lo..=hi + 1).map(|k| k as f64 - 0.5).collect()
}

/// Number of `values` in each bin of `edges` (last bin closed on the right).
pub fn bin_counts(values: &[f64], edges: &[f64]) -> Vec<usize> {
    let mut counts = vec![0usize; edges.len().saturating_sub(1)];
    let (Some(&lo), Some(&hi)) = (edges.first(), edges.last()) else {
        return counts;
    };
    let last = counts.len().saturating_sub(1);
    for &v in values.iter().filter(|v| **v >= lo && **v <= hi) {
        let i = edges.partition_point(|e| *e <= v).saturating_sub(1);
        counts[i.min(last)] += 1;
    }
    counts
}

/// Renders [`Histograms`].
pub fn histograms(h: &Histograms) -> Result<Figure> {
    h.validate()?;
    render(h)
}

impl Histograms<'_> {
    fn validate(&self) -> Result<()> {
        if self.panels.is_empty() {
            return Err(Error::Config("histograms: no panels".into()));
        }
        for p in &self.panels {
            let increasing = p.edges.windows(2).all(|w| w[0] < w[1]);
            if p.edges.len() < 2 || !increasing || p.edges.iter().any(|e| !e.is_finite()) {
                return Err(Error::Config(format!(
                    "histograms: panel '{}' needs ≥ 2 finite increasing edges, got {:?}",
                    p.x_label, p.edges
                )));
            }
        }
        Ok(())
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &HistPanel,
    y_label: &str,
) -> DrawResult {
    let counts: Vec<Vec<usize>> = p
        .series
        .iter()
        .map(|s| bin_counts(s.values, &p.edges))
        .collect();
    let top = counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let (x0, x1) = (p.edges[0], p.edges[p.edges.len() - 1]);
    // Headroom for the legend in an upper corner.
    let y_max = top * 1.3;
    let (x_ticks, x_step) = style::nice_ticks(x0, x1, 6);
    let (y_ticks, y_step) = style::count_ticks(0.0, y_max, 5);
    let y_labels: Vec<String> = y_ticks
        .iter()
        .map(|v| style::linear_tick_label(*v, y_step))
        .collect();
    let mut chart = chart::chart_on(
        area,
        LinearAxis {
            range: x0..x1,
            ticks: x_ticks,
        },
        LinearAxis {
            range: 0.0..y_max,
            ticks: y_ticks,
        },
        &y_labels,
    )?;
    chart::draw_mesh(
        &mut chart,
        &|v| style::linear_tick_label(*v, x_step),
        &|v| style::linear_tick_label(*v, y_step),
    )?;
    let mut legend = Vec::new();
    for (s, c) in p.series.iter().zip(&counts) {
        let bars = p
            .edges
            .windows(2)
            .zip(c)
            .map(|(e, &n)| (e[0], e[1], n as f64));
        chart.draw_series(
            bars.clone()
                .map(|(a, b, n)| Rectangle::new([(a, 0.0), (b, n)], s.color.mix(0.3).filled())),
        )?;
        chart.draw_series(std::iter::once(PathElement::new(
            step_outline(bars),
            s.color.stroke_width(3),
        )))?;
        if let Some(l) = &s.label {
            legend.push((Swatch::Bar(s.color), l.clone()));
        }
    }
    for &x in &p.vlines {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            [(x, 0.0), (x, y_max)],
            10,
            7,
            GREY.stroke_width(LINE_PX - 1),
        )))?;
    }
    if let Some(l) = &p.vline_label {
        legend.push((Swatch::Dashed(GREY), l.clone()));
    }
    let plot = chart.plotting_area().get_pixel_range();
    chart::axis_labels(area, &plot, &p.x_label, y_label)?;
    chart::draw_legend(area, &plot, &legend, p.legend)
}

/// The outline of a histogram: up, across, down for each bin, as one path without repeated or collinear
/// points (plotters joins thick lines through such points with visible kinks).
fn step_outline(bars: impl Iterator<Item = (f64, f64, f64)>) -> Vec<(f64, f64)> {
    let mut path: Vec<(f64, f64)> = Vec::new();
    let mut push = |p: (f64, f64)| {
        let n = path.len();
        if n >= 1 && path[n - 1] == p {
            return;
        }
        let collinear = n >= 2
            && ((path[n - 2].0 == path[n - 1].0 && path[n - 1].0 == p.0)
                || (path[n - 2].1 == path[n - 1].1 && path[n - 1].1 == p.1));
        if collinear {
            path[n - 1] = p;
        } else {
            path.push(p);
        }
    };
    let mut last_x = None;
    for (a, b, n) in bars {
        if last_x.is_none() {
            push((a, 0.0));
        }
        push((a, n));
        push((b, n));
        last_x = Some(b);
    }
    if let Some(b) = last_x {
        push((b, 0.0));
    }
    path
}

impl Draw for Histograms<'_> {
    fn name(&self) -> &str {
        "histograms"
    }

    fn size(&self) -> (u32, u32) {
        chart::canvas_size(self.panels.len(), self.cols, self.title.is_some())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let areas = chart::panel_areas(root, self.title.as_deref(), self.panels.len(), self.cols)?;
        for (area, p) in areas.iter().zip(&self.panels) {
            draw_panel(area, p, &self.y_label)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_edges() {
        let e = uniform_edges(0.0, 4.0, 4);
        assert_eq!(e, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            bin_counts(&[0.0, 0.5, 1.0, 3.9, 4.0, 4.1, f64::NAN, -1.0], &e),
            vec![2, 1, 0, 2]
        );
        assert_eq!(integer_edges(0, 2), vec![-0.5, 0.5, 1.5, 2.5]);
        let bars = [(0.0, 1.0, 2.0), (1.0, 2.0, 2.0), (2.0, 3.0, 0.0)];
        assert_eq!(
            step_outline(bars.into_iter()),
            vec![(0.0, 0.0), (0.0, 2.0), (2.0, 2.0), (2.0, 0.0), (3.0, 0.0)]
        );
    }

    #[test]
    fn renders_histograms_with_edges() {
        let v: Vec<f64> = (0..200)
            .map(|i| 14.0 + 1.3 * (i as f64 * 0.618).fract())
            .collect();
        let mut panel = HistPanel::single(
            "log_{10} M_{200c} [M_⊙]",
            &v,
            uniform_edges(14.0, 15.301, 20),
        );
        panel.vlines = vec![14.325, 14.651, 14.976];
        panel.vline_label = Some("mass-bin edges".into());
        let h = Histograms {
            title: None,
            y_label: "clusters".into(),
            cols: 2,
            panels: vec![panel.clone(), panel],
        };
        let fig = histograms(&h).unwrap();
        assert_eq!(&fig.png()[..4], b"\x89PNG");
        assert!(fig.svg().contains("<svg"));
        assert_eq!(fig.size(), chart::canvas_size(2, 2, false));
    }
}
