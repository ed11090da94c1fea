//! What every x–y figure shares: a canvas of equal panels under an optional title, axes in the common style,
//! axis labels with sub/superscripts, and a legend drawn by us (so legend text takes the same markup as labels).

use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, DefaultFormatting, KeyPointHint, ValueFormatter};

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::figure::{DrawError, DrawResult};
use super::style::{self, GREY, INK, LABEL_PX, LEGEND_PX, LINE_PX, POINT_PX, TICK_PX, TITLE_PX};
use super::text::{draw_label, fit_width, label_height, label_width, Label, Orient};

/// Size of one x–y panel in pixels.
pub const PANEL_W: u32 = 800;
pub const PANEL_H: u32 = 640;
const TITLE_STRIP_PX: u32 = 70;
/// Room below the plotting area for tick labels and the axis label.
pub const X_AXIS_PX: u32 = 110;
/// Room above the plotting area (half a tick label sticks out over the top tick).
pub const MARGIN_TOP_PX: u32 = 24;
/// Room right of the plotting area (half a tick label sticks out past the last x tick).
pub const MARGIN_RIGHT_PX: u32 = 36;
/// Left edge of a panel to the (rotated) y-axis label.
const Y_LABEL_PAD_PX: i32 = 12;

/// Canvas size of `n` panels in rows of `cols`, with or without a title strip.
pub fn canvas_size(n: usize, cols: usize, titled: bool) -> (u32, u32) {
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols).max(1);
    let title = if titled { TITLE_STRIP_PX } else { 0 };
    (cols as u32 * PANEL_W, rows as u32 * PANEL_H + title)
}

/// Draws the title (if any) and returns the `n` panel areas, row by row.
pub fn panel_areas<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: Option<&str>,
    n: usize,
    cols: usize,
) -> Result<Vec<DrawingArea<DB, Shift>>, DrawError> {
    let body = match title {
        Some(t) => {
            let (strip, body) = root.split_vertically(TITLE_STRIP_PX);
            let (w, h) = strip.dim_in_pixel();
            let at = (w as i32 / 2, h as i32 / 2);
            // Shrunk (to at most 60 %) rather than cut off where a long title meets a narrow figure.
            let label = fit_width(&strip, Label::new(t, TITLE_PX), w as i32 - 24)?;
            draw_label(
                &strip,
                &label,
                at,
                (HPos::Center, VPos::Center),
                Orient::Horizontal,
            )?;
            body
        }
        None => root.clone(),
    };
    let cols = cols.clamp(1, n.max(1));
    let mut areas = body.split_evenly((n.div_ceil(cols).max(1), cols));
    areas.truncate(n);
    Ok(areas)
}

/// A linear axis over `range` whose ticks are exactly `ticks`. plotters' own f64 axis chooses its ticks itself
/// (so tick formatting could not know the step) and lacks the default formatter the mesh requires.
#[derive(Debug, Clone)]
pub struct LinearAxis {
    pub range: Range<f64>,
    pub ticks: Vec<f64>,
}

impl Ranged for LinearAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = (v - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            vec![]
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// The chart type built by [`chart_on`] from two axis descriptions.
pub type Chart2d<'a, DB, X, Y> = ChartContext<
    'a,
    DB,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

/// A chart on `area` with the plotting area placed so that the y tick labels (`y_ticks`, as the mesh will write
/// them) and the y-axis label just fit on its left: panels with short tick labels do not waste space and the
/// axis label stays next to its ticks.
pub fn chart_on<'a, DB, X, Y>(
    area: &'a DrawingArea<DB, Shift>,
    x: X,
    y: Y,
    y_ticks: &[String],
) -> Result<Chart2d<'a, DB, X, Y>, DrawError>
where
    DB: DrawingBackend,
    X: AsRangedCoord,
    Y: AsRangedCoord,
{
    let y_axis = y_axis_px(area, y_ticks)?;
    chart_in(area, x, y, y_axis, MARGIN_TOP_PX, X_AXIS_PX)
}

/// Width in pixels left of the plotting area that holds the y tick labels `y_ticks` and the y-axis label.
/// Charts stacked on a shared x axis take the largest of their widths, so their plotting areas line up.
pub fn y_axis_px<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    y_ticks: &[String],
) -> Result<u32, DrawError> {
    let mut widest = 0;
    for t in y_ticks {
        widest = widest.max(label_width(area, &Label::new(t, TICK_PX))?);
    }
    let label = label_height(&Label::new("M", LABEL_PX));
    Ok((Y_LABEL_PAD_PX + label + 16 + widest + TICK_MARK_PX + 10) as u32)
}

/// A chart on `area` with explicit room for the y axis (left, see [`y_axis_px`]), above the plotting area and
/// below it (x tick labels and axis label: [`X_AXIS_PX`]; tick marks only: a few pixels).
pub fn chart_in<'a, DB, X, Y>(
    area: &'a DrawingArea<DB, Shift>,
    x: X,
    y: Y,
    y_axis_px: u32,
    top_px: u32,
    x_axis_px: u32,
) -> Result<Chart2d<'a, DB, X, Y>, DrawError>
where
    DB: DrawingBackend,
    X: AsRangedCoord,
    Y: AsRangedCoord,
{
    Ok(ChartBuilder::on(area)
        .margin_top(top_px)
        .margin_right(MARGIN_RIGHT_PX)
        .x_label_area_size(x_axis_px)
        .y_label_area_size(y_axis_px)
        .build_cartesian_2d(x, y)?)
}

/// Axis labels (markup) centred on the plotting area `plot` (absolute pixel ranges, as plotters reports them).
pub fn axis_labels<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    plot: &(Range<i32>, Range<i32>),
    x_label: &str,
    y_label: &str,
) -> DrawResult {
    x_axis_label(area, plot, x_label)?;
    y_axis_label(area, plot, y_label)
}

/// The x-axis label (markup) centred under the plotting area `plot` (absolute pixel ranges), below the tick
/// labels.
pub fn x_axis_label<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    plot: &(Range<i32>, Range<i32>),
    x_label: &str,
) -> DrawResult {
    let (bx, by) = area.get_base_pixel();
    let x_at = (
        (plot.0.start + plot.0.end) / 2 - bx,
        plot.1.end - by + (1.7 * TICK_PX) as i32 + 10,
    );
    draw_label(
        area,
        &Label::new(x_label, LABEL_PX),
        x_at,
        (HPos::Center, VPos::Top),
        Orient::Horizontal,
    )
}

/// The y-axis label (markup) at the left edge of `area`, centred on the plotting area `plot` (absolute pixel
/// ranges); shrunk (down to 60 %) where it is longer than the plotting area is tall, as on short sub-panels.
pub fn y_axis_label<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    plot: &(Range<i32>, Range<i32>),
    y_label: &str,
) -> DrawResult {
    let (_, by) = area.get_base_pixel();
    let label = fit_width(
        area,
        Label::new(y_label, LABEL_PX),
        plot.1.end - plot.1.start,
    )?;
    let y_at = (Y_LABEL_PAD_PX, (plot.1.start + plot.1.end) / 2 - by);
    draw_label(area, &label, y_at, (HPos::Center, VPos::Top), Orient::Up)
}

const TICK_MARK_PX: i32 = 8;

/// The common mesh: light decade/tick grid, ink axes, tick labels in the tick font. `fx`/`fy` format tick values.
pub fn draw_mesh<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    fx: &dyn Fn(&X::ValueType) -> String,
    fy: &dyn Fn(&Y::ValueType) -> String,
) -> DrawResult
where
    DB: DrawingBackend,
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    chart
        .configure_mesh()
        .bold_line_style(style::GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(INK.stroke_width(2))
        .label_style((style::FONT, TICK_PX).into_font().color(&INK))
        .x_label_formatter(fx)
        .y_label_formatter(fy)
        .set_all_tick_mark_size(TICK_MARK_PX)
        .draw()?;
    Ok(())
}

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Swatch {
    Point(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
    Bar(RGBColor),
    /// A solid line with a point on it (a curve drawn with markers).
    LinePoint(RGBColor),
    /// A dashed line with a point on it.
    DashedPoint(RGBColor),
}

/// Which corner of the plotting area a legend sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Corner {
    #[default]
    UpperLeft,
    UpperRight,
    LowerRight,
    LowerLeft,
}

const SWATCH_PX: i32 = 44;
const LEGEND_PAD_PX: i32 = 12;

/// A rectangle in absolute backend pixels, `(x range, y range)`, as plotters reports a plotting area.
pub type PixelRect = (Range<i32>, Range<i32>);

/// The box a legend of `entries` would take in `corner` of the plotting area `plot`, as absolute pixel ranges
/// like `plot` (so callers can pick the corner that hides the least data); `None` when there are no entries.
pub fn legend_bounds<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    plot: &(Range<i32>, Range<i32>),
    entries: &[(Swatch, String)],
    corner: Corner,
) -> Result<Option<PixelRect>, DrawError> {
    if entries.is_empty() {
        return Ok(None);
    }
    let (w, h, _) = legend_layout(area, entries)?;
    let inset = 14;
    let x0 = match corner {
        Corner::UpperLeft | Corner::LowerLeft => plot.0.start + inset,
        Corner::UpperRight | Corner::LowerRight => plot.0.end - inset - w,
    };
    let y0 = match corner {
        Corner::UpperLeft | Corner::UpperRight => plot.1.start + inset,
        Corner::LowerLeft | Corner::LowerRight => plot.1.end - inset - h,
    };
    Ok(Some((x0..x0 + w, y0..y0 + h)))
}

/// Width, height and line pitch of the legend box of `entries`.
fn legend_layout<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(Swatch, String)],
) -> Result<(i32, i32, i32), DrawError> {
    let mut text_w = 0;
    let mut line_h = 0;
    for (_, t) in entries {
        let label = Label::new(t, LEGEND_PX);
        text_w = text_w.max(label_width(area, &label)?);
        line_h = line_h.max(label_height(&label));
    }
    let line_h = line_h + 10;
    let w = SWATCH_PX + 10 + text_w + 2 * LEGEND_PAD_PX;
    let h = line_h * entries.len() as i32 + 2 * LEGEND_PAD_PX - 10;
    Ok((w, h, line_h))
}

/// Draws a boxed legend of `(swatch, markup)` entries in `corner` of the plotting area `plot` (absolute ranges).
pub fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    plot: &(Range<i32>, Range<i32>),
    entries: &[(Swatch, String)],
    corner: Corner,
) -> DrawResult {
    let Some((xs, ys)) = legend_bounds(area, plot, entries, corner)? else {
        return Ok(());
    };
    let labels: Vec<Label> = entries
        .iter()
        .map(|(_, t)| Label::new(t, LEGEND_PX))
        .collect();
    let (_, _, line_h) = legend_layout(area, entries)?;
    let (bx, by) = area.get_base_pixel();
    let (x0, y0, w, h) = (
        xs.start - bx,
        ys.start - by,
        xs.len() as i32,
        ys.len() as i32,
    );
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + w, y0 + h)],
        WHITE.mix(0.9).filled(),
    ))?;
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + w, y0 + h)],
        GREY.stroke_width(1),
    ))?;
    for (k, ((swatch, _), label)) in entries.iter().zip(&labels).enumerate() {
        let cy = y0 + LEGEND_PAD_PX + k as i32 * line_h + label_height(label) / 2;
        draw_swatch(area, *swatch, (x0 + LEGEND_PAD_PX, cy))?;
        let at = (x0 + LEGEND_PAD_PX + SWATCH_PX + 10, cy);
        draw_label(
            area,
            label,
            at,
            (HPos::Left, VPos::Center),
            Orient::Horizontal,
        )?;
    }
    Ok(())
}

fn draw_swatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    swatch: Swatch,
    (x, y): (i32, i32),
) -> DrawResult {
    let ends = vec![(x, y), (x + SWATCH_PX, y)];
    match swatch {
        Swatch::Point(c) => area.draw(&Circle::new(
            (x + SWATCH_PX / 2, y),
            POINT_PX as i32 + 1,
            c.filled(),
        ))?,
        Swatch::Line(c) => area.draw(&PathElement::new(ends, c.stroke_width(LINE_PX)))?,
        Swatch::Dashed(c) => area.draw(&DashedPathElement::new(
            ends,
            10,
            7,
            c.stroke_width(LINE_PX),
        ))?,
        Swatch::LinePoint(c) => {
            draw_swatch(area, Swatch::Line(c), (x, y))?;
            draw_swatch(area, Swatch::Point(c), (x, y))?
        }
        Swatch::DashedPoint(c) => {
            draw_swatch(area, Swatch::Dashed(c), (x, y))?;
            draw_swatch(area, Swatch::Point(c), (x, y))?
        }
        Swatch::Bar(c) => {
            let rect = [(x + 4, y - 10), (x + SWATCH_PX - 4, y + 10)];
            area.draw(&Rectangle::new(rect, c.mix(0.35).filled()))?;
            area.draw(&Rectangle::new(rect, c.stroke_width(3)))?
        }
    }
    Ok(())
}
