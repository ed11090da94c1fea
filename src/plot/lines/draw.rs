//! Drawing a [`LineFigure`]: stacked plotting areas per cell, curves, bands, reference lines, ticks, labels and
//! legends placed where they cover the fewest drawn pixels.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::axes::{clip_polygon, clip_polyline, runs, x_range, y_range, AxisPlan};
use super::{LineFigure, LinePanel, Plot, RefLine};
use crate::plot::chart::{self, Corner, PixelRect, Swatch};
use crate::plot::figure::{Draw, DrawError, DrawResult};
use crate::plot::style::{GREY, LABEL_PX, LINE_PX, POINT_PX};
use crate::plot::text::{draw_label, Label, Orient};

/// Height of a stacked sub-panel's plotting area (≈ 1/3 of a main panel's).
pub(super) const SUB_PLOT_PX: u32 = 184;
/// Gap between stacked plotting areas; holds the upper one's x tick marks.
pub(super) const STACK_GAP_PX: u32 = 20;
/// Extra room above the plotting areas of a row in which some panel has a title.
pub(super) const PANEL_TITLE_PX: u32 = 48;
/// Opacity of series bands and of the horizontal shade.
const BAND_ALPHA: f64 = 0.2;
const SHADE_ALPHA: f64 = 0.14;
/// Preferred tick counts (intervals) of main and sub-panel y axes.
const MAIN_Y_TICKS: usize = 5;
const SUB_Y_TICKS: usize = 3;

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
