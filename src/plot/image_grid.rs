//! A grid of map panels (rows × columns of `[N, N]` maps): example clusters, posterior samples, residuals.
//!
//! Every column has one fixed colour scale and one colour bar, so panels in a column are directly comparable (the point
//! of showing several clusters or samples side by side). Maps are drawn pixel for pixel (nearest neighbour, integer
//! upscaling): smoothing would invent structure the model never saw. Row 0 of a map is drawn at the bottom, because the
//! maps' y coordinate (docs/mock-clusters.md §1) grows with the row index (matplotlib's `origin="lower"`).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::figure::{render, Draw, DrawError, DrawResult, Figure};
use super::style::{self, Colormap, LABEL_PX, LEGEND_PX, TICK_PX, TITLE_PX};
use super::text::{draw_label, fit_width, label_width, Label, Orient};
use crate::{Error, Result};

/// Approximate side of one panel in pixels; the real side is the nearest integer multiple of N above it.
const PANEL_TARGET_PX: usize = 300;
const GAP_PX: i32 = 12;
const MARGIN_PX: i32 = 24;
const ROW_LABEL_PX: i32 = 100;
const HEADER_PX: i32 = 64;
const TITLE_STRIP_PX: i32 = 70;
const BAR_GAP_PX: i32 = 18;
const BAR_PX: i32 = 24;
const TICK_LEN_PX: i32 = 8;
/// Room under a colour bar for tick labels and a two-line label.
const BAR_TEXT_PX: i32 = 130;

/// How a column maps values to colours. Limits are in data units and fixed by the caller, never autoscaled, so
/// the same quantity looks the same in every figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColorScale {
    /// log₁₀ between `min` and `max` (both > 0); values ≤ 0 take the bottom colour.
    Log { min: f64, max: f64 },
    /// Linear between `min` and `max`.
    Linear { min: f64, max: f64 },
}

impl ColorScale {
    /// Position in `[0, 1]` (unclamped) of value `v`; NaN stays NaN.
    fn position(&self, v: f64) -> f64 {
        match *self {
            ColorScale::Log { min, max } => {
                if v <= 0.0 {
                    0.0
                } else {
                    (v.log10() - min.log10()) / (max.log10() - min.log10())
                }
            }
            ColorScale::Linear { min, max } => (v - min) / (max - min),
        }
    }

    /// Tick positions in `[0, 1]` with their labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        match *self {
            ColorScale::Log { min, max } => style::log_ticks(min, max)
                .into_iter()
                .map(|v| (self.position(v), decade_label(v)))
                .collect(),
            ColorScale::Linear { min, max } => {
                let (ticks, step) = style::nice_ticks(min, max, 4);
                ticks
                    .into_iter()
                    .map(|v| (self.position(v), style::linear_tick_label(v, step)))
                    .collect()
            }
        }
    }

    fn validate(&self) -> Result<()> {
        let ok = match *self {
            ColorScale::Log { min, max } => min > 0.0 && max > min && max.is_finite(),
            ColorScale::Linear { min, max } => min.is_finite() && max.is_finite() && max > min,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "image grid: invalid colour scale {self:?}"
            )))
        }
    }
}

/// Colour-bar label of a log tick: `10ⁿ` at decades, `m×10ⁿ` in between.
fn decade_label(v: f64) -> String {
    let e = v.log10().round() as i32;
    if (v / 10f64.powi(e) - 1.0).abs() < 1e-6 {
        style::pow10_label(e)
    } else {
        style::log_tick_label(v)
    }
}

/// One column: its header, its colour-bar label (quantity and unit, markup of [`super::text`]), scale and map.
#[derive(Debug, Clone)]
pub struct ImageColumn {
    pub title: String,
    pub colorbar_label: String,
    pub scale: ColorScale,
    pub colormap: Colormap,
}

impl ImageColumn {
    /// A column with a logarithmic colour scale between `min` and `max`.
    pub fn log(title: &str, colorbar_label: &str, min: f64, max: f64, colormap: Colormap) -> Self {
        ImageColumn {
            title: title.to_string(),
            colorbar_label: colorbar_label.to_string(),
            scale: ColorScale::Log { min, max },
            colormap,
        }
    }
}

/// Shape of a position marker: `Plus` and `Cross` stay distinguishable in print without colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerShape {
    Plus,
    Cross,
}

/// A marked sky position `[x, y]` in kpc from the map centre (docs/mock-clusters.md §1 axes: x along columns, y along
/// rows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marker {
    pub at_kpc: [f64; 2],
    pub shape: MarkerShape,
    pub color: RGBColor,
}

/// One row: a label (e.g. mass bin and log M; may hold `\n`), one map per column, an optional circle of radius
/// `circle_kpc` about the map centre (e.g. R₅₀₀) and markers (e.g. DM and gas centres of a merger), drawn on
/// every panel of the row.
#[derive(Debug, Clone)]
pub struct ImageRow<'a> {
    pub label: String,
    pub maps: Vec<&'a [f64]>,
    pub circle_kpc: Option<f64>,
    pub markers: Vec<Marker>,
}

impl<'a> ImageRow<'a> {
    /// A row with maps only; add a circle and markers with the builder methods.
    pub fn new(label: &str, maps: Vec<&'a [f64]>) -> Self {
        ImageRow {
            label: label.to_string(),
            maps,
            circle_kpc: None,
            markers: vec![],
        }
    }

    pub fn circle(self, radius_kpc: f64) -> Self {
        ImageRow {
            circle_kpc: Some(radius_kpc),
            ..self
        }
    }

    pub fn marker(mut self, at_kpc: [f64; 2], shape: MarkerShape, color: RGBColor) -> Self {
        self.markers.push(Marker {
            at_kpc,
            shape,
            color,
        });
        self
    }
}

/// The whole grid. Maps are row-major `[n_pix, n_pix]` with square pixels of `pixel_kpc`; the map centre is the
/// geometric centre of the array (docs/mock-clusters.md §1). `scale_bar_kpc` draws a bar of that length in the first
/// panel of every row.
#[derive(Debug, Clone)]
pub struct ImageGrid<'a> {
    pub title: Option<String>,
    pub n_pix: usize,
    pub pixel_kpc: f64,
    pub columns: Vec<ImageColumn>,
    pub rows: Vec<ImageRow<'a>>,
    pub scale_bar_kpc: Option<f64>,
}

/// Renders an [`ImageGrid`].
pub fn image_grid(grid: &ImageGrid) -> Result<Figure> {
    grid.validate()?;
    render(grid)
}

impl ImageGrid<'_> {
    fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::Config(format!("image grid: {msg}")));
        if self.rows.is_empty() || self.columns.is_empty() || self.n_pix == 0 {
            return fail(format!(
                "{} rows, {} columns, n_pix {}: nothing to draw",
                self.rows.len(),
                self.columns.len(),
                self.n_pix
            ));
        }
        if self.pixel_kpc.is_nan() || self.pixel_kpc <= 0.0 {
            return fail(format!("pixel size {} kpc", self.pixel_kpc));
        }
        for c in &self.columns {
            c.scale.validate()?;
        }
        for (i, row) in self.rows.iter().enumerate() {
            if row.maps.len() != self.columns.len() {
                return fail(format!(
                    "row {i} has {} maps for {} columns",
                    row.maps.len(),
                    self.columns.len()
                ));
            }
            if let Some(m) = row.maps.iter().find(|m| m.len() != self.n_pix * self.n_pix) {
                return fail(format!(
                    "row {i}: a map has {} values, expected {}² = {}",
                    m.len(),
                    self.n_pix,
                    self.n_pix * self.n_pix
                ));
            }
        }
        Ok(())
    }

    /// Screen pixels per map pixel.
    fn zoom(&self) -> usize {
        PANEL_TARGET_PX.div_ceil(self.n_pix).max(1)
    }

    fn panel_px(&self) -> i32 {
        (self.n_pix * self.zoom()) as i32
    }

    fn title_px(&self) -> i32 {
        if self.title.is_some() {
            TITLE_STRIP_PX
        } else {
            0
        }
    }

    /// Upper-left corner of panel (row, col).
    fn panel_origin(&self, row: usize, col: usize) -> (i32, i32) {
        let step = self.panel_px() + GAP_PX;
        (
            MARGIN_PX + ROW_LABEL_PX + col as i32 * step,
            self.title_px() + HEADER_PX + row as i32 * step,
        )
    }

    /// RGB pixels of one map, upscaled, row 0 at the bottom.
    fn rgb(&self, map: &[f64], column: &ImageColumn) -> Vec<u8> {
        let (n, k) = (self.n_pix, self.zoom());
        let side = n * k;
        let mut buf = vec![0u8; side * side * 3];
        for (i, row) in map.chunks(n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let c = column.colormap.at(column.scale.position(v));
                for y in (n - 1 - i) * k..(n - i) * k {
                    for x in j * k..(j + 1) * k {
                        buf[(y * side + x) * 3..][..3].copy_from_slice(&[c.0, c.1, c.2]);
                    }
                }
            }
        }
        buf
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (r, c): (usize, usize),
    ) -> DrawResult {
        let (x0, y0) = self.panel_origin(r, c);
        let side = self.panel_px();
        let pixels = self.rgb(self.rows[r].maps[c], &self.columns[c]);
        if let Some(img) =
            BitMapElement::with_owned_buffer((x0, y0), (side as u32, side as u32), pixels)
        {
            root.draw(&img)?;
        }
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + side, y0 + side)],
            style::INK.stroke_width(1),
        ))?;
        let px_per_kpc = self.zoom() as f64 / self.pixel_kpc;
        let centre = (x0 + side / 2, y0 + side / 2);
        if let Some(r_kpc) = self.rows[r].circle_kpc.filter(|r| *r > 0.0) {
            let radius = (r_kpc * px_per_kpc).round() as i32;
            root.draw(&Circle::new(
                centre,
                radius,
                WHITE.mix(0.85).stroke_width(3),
            ))?;
        }
        for m in &self.rows[r].markers {
            // Screen y grows downwards while the map's y grows upwards (row 0 at the bottom).
            let at = (
                centre.0 + (m.at_kpc[0] * px_per_kpc).round() as i32,
                centre.1 - (m.at_kpc[1] * px_per_kpc).round() as i32,
            );
            draw_marker(root, at, m)?;
        }
        if c == 0 {
            if let Some(len) = self.scale_bar_kpc.filter(|l| *l > 0.0) {
                draw_scale_bar(root, (x0, y0 + side), len, px_per_kpc)?;
            }
        }
        Ok(())
    }

    fn draw_row_label<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        r: usize,
    ) -> DrawResult {
        let (x0, y0) = self.panel_origin(r, 0);
        let label = fit_width(
            root,
            Label::new(&self.rows[r].label, LABEL_PX),
            self.panel_px(),
        )?;
        let at = (x0 - ROW_LABEL_PX / 2, y0 + self.panel_px() / 2);
        draw_label(root, &label, at, (HPos::Center, VPos::Center), Orient::Up)
    }

    fn draw_header<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        c: usize,
    ) -> DrawResult {
        let (x0, y0) = self.panel_origin(0, c);
        let label = fit_width(
            root,
            Label::new(&self.columns[c].title, LABEL_PX),
            self.panel_px(),
        )?;
        let at = (x0 + self.panel_px() / 2, y0 - HEADER_PX / 2);
        draw_label(
            root,
            &label,
            at,
            (HPos::Center, VPos::Center),
            Orient::Horizontal,
        )
    }

    fn draw_colorbar<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        c: usize,
    ) -> DrawResult {
        let (px, py) = self.panel_origin(self.rows.len() - 1, c);
        let side = self.panel_px();
        let inset = side / 12;
        let (x0, y0, w) = (px + inset, py + side + BAR_GAP_PX, side - 2 * inset);
        let column = &self.columns[c];
        let mut rgb = Vec::with_capacity((w * BAR_PX * 3) as usize);
        for _ in 0..BAR_PX {
            for x in 0..w {
                let col = column.colormap.at(x as f64 / (w - 1).max(1) as f64);
                rgb.extend_from_slice(&[col.0, col.1, col.2]);
            }
        }
        if let Some(img) =
            BitMapElement::with_owned_buffer((x0, y0), (w as u32, BAR_PX as u32), rgb)
        {
            root.draw(&img)?;
        }
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + w, y0 + BAR_PX)],
            style::INK.stroke_width(1),
        ))?;
        let tick_y = y0 + BAR_PX;
        for (t, text) in thin_ticks(root, column.scale.ticks(), w)? {
            let x = x0 + (t * (w - 1) as f64).round() as i32;
            root.draw(&PathElement::new(
                vec![(x, tick_y), (x, tick_y + TICK_LEN_PX)],
                style::INK.stroke_width(2),
            ))?;
            let label = Label::new(&text, TICK_PX);
            draw_label(
                root,
                &label,
                (x, tick_y + TICK_LEN_PX + 2),
                (HPos::Center, VPos::Top),
                Orient::Horizontal,
            )?;
        }
        let label = fit_width(root, Label::new(&column.colorbar_label, LABEL_PX), side)?;
        let at = (
            px + side / 2,
            tick_y + TICK_LEN_PX + (1.5 * TICK_PX) as i32 + 6,
        );
        draw_label(
            root,
            &label,
            at,
            (HPos::Center, VPos::Top),
            Orient::Horizontal,
        )
    }
}

/// A marker with a dark halo, so it reads on both ends of the colour map. Its arms leave the centre open: the
/// marked pixel (a DM or gas peak) stays visible.
fn draw_marker<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    m: &Marker,
) -> DrawResult {
    const INNER: i32 = 5;
    const OUTER: i32 = 14;
    let directions: [(i32, i32); 4] = match m.shape {
        MarkerShape::Plus => [(1, 0), (-1, 0), (0, 1), (0, -1)],
        MarkerShape::Cross => [(1, 1), (-1, -1), (1, -1), (-1, 1)],
    };
    // Diagonal arms are √2 longer per unit; shorten them so both shapes have the same size.
    let scale = |r: i32, (dx, dy): (i32, i32)| if dx != 0 && dy != 0 { r * 5 / 7 } else { r };
    for (color, width) in [(style::INK, 6), (m.color, 2)] {
        for d in directions {
            let (a, b) = (scale(INNER, d), scale(OUTER, d));
            let arm = vec![(x + a * d.0, y + a * d.1), (x + b * d.0, y + b * d.1)];
            root.draw(&PathElement::new(arm, color.stroke_width(width)))?;
        }
    }
    Ok(())
}

/// Every k-th tick, with the smallest k for which neighbouring labels on a bar `width` pixels wide do not touch.
fn thin_ticks<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    ticks: Vec<(f64, String)>,
    width: i32,
) -> std::result::Result<Vec<(f64, String)>, DrawError> {
    if ticks.len() < 2 {
        return Ok(ticks);
    }
    let mut widest = 0;
    for (_, text) in &ticks {
        widest = widest.max(label_width(root, &Label::new(text, TICK_PX))?);
    }
    let spacing = (ticks[1].0 - ticks[0].0).abs() * width as f64;
    let stride = ((widest + 10) as f64 / spacing.max(1.0)).ceil().max(1.0) as usize;
    Ok(ticks.into_iter().step_by(stride).collect())
}

/// A white bar of `len_kpc` with its length written above, in the lower-left corner of the panel whose lower-left
/// corner is `corner`.
fn draw_scale_bar<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    corner: (i32, i32),
    len_kpc: f64,
    px_per_kpc: f64,
) -> DrawResult {
    let pad = 14;
    let (x0, y) = (corner.0 + pad, corner.1 - pad);
    let x1 = x0 + (len_kpc * px_per_kpc).round() as i32;
    root.draw(&Rectangle::new([(x0, y - 6), (x1, y)], WHITE.filled()))?;
    let text = if len_kpc >= 1000.0 {
        format!("{} Mpc", len_kpc / 1000.0)
    } else {
        format!("{len_kpc} kpc")
    };
    let label = Label::new(&text, LEGEND_PX).color(WHITE);
    draw_label(
        root,
        &label,
        ((x0 + x1) / 2, y - 12),
        (HPos::Center, VPos::Bottom),
        Orient::Horizontal,
    )
}

impl Draw for ImageGrid<'_> {
    fn name(&self) -> &str {
        "image grid"
    }

    fn size(&self) -> (u32, u32) {
        let (cols, rows) = (self.columns.len() as i32, self.rows.len() as i32);
        let step = self.panel_px() + GAP_PX;
        let width = MARGIN_PX + ROW_LABEL_PX + cols * step - GAP_PX + MARGIN_PX;
        let height =
            self.title_px() + HEADER_PX + rows * step - GAP_PX + BAR_GAP_PX + BAR_PX + BAR_TEXT_PX;
        (width as u32, height as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        if let Some(title) = &self.title {
            let at = (self.size().0 as i32 / 2, TITLE_STRIP_PX / 2);
            draw_label(
                root,
                &Label::new(title, TITLE_PX),
                at,
                (HPos::Center, VPos::Center),
                Orient::Horizontal,
            )?;
        }
        for c in 0..self.columns.len() {
            self.draw_header(root, c)?;
            self.draw_colorbar(root, c)?;
        }
        for r in 0..self.rows.len() {
            self.draw_row_label(root, r)?;
            for c in 0..self.columns.len() {
                self.draw_panel(root, (r, c))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian_map(n: usize, width: f64, peak: f64) -> Vec<f64> {
        let c = n as f64 / 2.0;
        (0..n * n)
            .map(|k| {
                let (i, j) = ((k / n) as f64 + 0.5 - c, (k % n) as f64 + 0.5 - c);
                peak * (-(i * i + j * j) / (2.0 * width * width)).exp() + peak * 1e-4
            })
            .collect()
    }

    #[test]
    fn renders_a_small_grid() {
        let n = 16;
        let (a, b) = (gaussian_map(n, 2.0, 1e-4), gaussian_map(n, 4.0, 1e8));
        let grid = ImageGrid {
            title: Some("test".into()),
            n_pix: n,
            pixel_kpc: 5000.0 / n as f64,
            columns: vec![
                ImageColumn::log("y", "y", 1e-8, 1e-4, Colormap::Viridis),
                ImageColumn::log("Σ_{DM}", "Σ_{DM} [M_⊙ kpc^{-2}]", 1e4, 1e8, Colormap::Magma),
            ],
            rows: vec![ImageRow::new("bin 0\nlog M = 14.2", vec![&a, &b])
                .circle(800.0)
                .marker([300.0, -200.0], MarkerShape::Cross, WHITE)],
            scale_bar_kpc: Some(1000.0),
        };
        let fig = image_grid(&grid).unwrap();
        assert_eq!(&fig.png()[..4], b"\x89PNG");
        assert!(fig.svg().contains("<svg"));
        assert!(
            fig.svg().contains("<image"),
            "panels must be embedded bitmaps, not one rect per pixel"
        );

        let bad = ImageGrid {
            rows: vec![ImageRow::new("", vec![&a])],
            ..grid
        };
        assert!(matches!(image_grid(&bad), Err(Error::Config(_))));
    }

    #[test]
    fn log_scale_positions() {
        let s = ColorScale::Log {
            min: 1e-6,
            max: 1e-2,
        };
        assert!((s.position(1e-4) - 0.5).abs() < 1e-12);
        assert_eq!(s.position(-1.0), 0.0);
        assert!(s.position(f64::NAN).is_nan());
        assert_eq!(s.ticks().len(), 5);
        assert_eq!(s.ticks()[0].1, "10⁻⁶");
    }
}
