//! Labels with sub- and superscripts (`Σ_{gas} [M_⊙ kpc^{-2}]`), horizontal or rotated, drawn identically on
//! bitmap and SVG backends.
//!
//! plotters draws one font size per text element; a physics label needs several (M₂₀₀c has no Unicode subscript
//! "c"). So a label is split into runs, each measured with the real font and placed on a common baseline.
//! Markup: `_{…}` subscript, `^{…}` superscript (a single character needs no braces), `\n` new line; inside
//! scripts an ASCII `-` becomes a true minus sign.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{DrawError, DrawResult};
use super::style::{FONT, INK};

/// Size of a script relative to the surrounding text.
const SCRIPT_SCALE: f64 = 0.7;
/// Baseline shifts in units of the main font size (positive = down).
const SUB_SHIFT: f64 = 0.22;
const SUP_SHIFT: f64 = -0.36;
/// Baseline below the top of plotters' em box, per unit font size (plotters-svg uses 0.76 em, em = size/1.24).
const BASELINE: f64 = 0.76 / 1.24;
/// Distance between lines, per unit font size.
const LINE_HEIGHT: f64 = 1.2;

/// Reading direction of a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orient {
    Horizontal,
    /// Rotated by 90° counter-clockwise, reading bottom to top (y-axis labels).
    Up,
}

/// A label to draw: markup, font size in pixels, colour.
#[derive(Debug, Clone, Copy)]
pub struct Label<'a> {
    pub markup: &'a str,
    pub size: f64,
    pub color: RGBColor,
}

impl<'a> Label<'a> {
    pub fn new(markup: &'a str, size: f64) -> Self {
        Label {
            markup,
            size,
            color: INK,
        }
    }

    pub fn color(self, color: RGBColor) -> Self {
        Label { color, ..self }
    }
}

/// A piece of a line at one size and baseline.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    text: String,
    scale: f64,
    shift: f64,
}

/// Splits one line of markup into runs.
fn parse_line(line: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut plain = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let shift = match c {
            '_' => SUB_SHIFT,
            '^' => SUP_SHIFT,
            _ => {
                plain.push(c);
                continue;
            }
        };
        let script: String = if chars.peek() == Some(&'{') {
            chars.next();
            chars.by_ref().take_while(|&c| c != '}').collect()
        } else {
            chars.next().map(String::from).unwrap_or_default()
        };
        push_run(&mut runs, std::mem::take(&mut plain), 1.0, 0.0);
        push_run(&mut runs, script.replace('-', "−"), SCRIPT_SCALE, shift);
    }
    push_run(&mut runs, plain, 1.0, 0.0);
    runs
}

/// Appends a non-empty run. Spaces become no-break spaces: SVG collapses leading and trailing blanks of a
/// `<text>` element, which would glue runs together ("M₅₀₀\[kpc\]").
fn push_run(runs: &mut Vec<Run>, text: String, scale: f64, shift: f64) {
    if !text.is_empty() {
        let text = text.replace(' ', "\u{a0}");
        runs.push(Run { text, scale, shift });
    }
}

fn font<'a>(size: f64, color: &'a RGBColor, orient: Orient) -> TextStyle<'a> {
    let style = (FONT, size)
        .into_font()
        .color(color)
        .pos(Pos::new(HPos::Left, VPos::Top));
    match orient {
        Orient::Horizontal => style,
        Orient::Up => style.transform(FontTransform::Rotate270),
    }
}

/// Width in pixels of each run of a line, measured with the real font.
fn run_widths<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    runs: &[Run],
    size: f64,
) -> Result<Vec<i32>, DrawError> {
    runs.iter()
        .map(|r| {
            area.estimate_text_size(
                &r.text,
                &TextStyle::from((FONT, size * r.scale).into_font()),
            )
            .map(|(w, _)| w as i32)
            .map_err(DrawError::from)
        })
        .collect()
}

/// Width in pixels of the widest line of `label` (before any rotation).
pub fn label_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    label: &Label,
) -> Result<i32, DrawError> {
    let mut widest = 0;
    for line in label.markup.lines() {
        let w: i32 = run_widths(area, &parse_line(line), label.size)?
            .iter()
            .sum();
        widest = widest.max(w);
    }
    Ok(widest)
}

/// Height in pixels of `label`'s block of lines (before any rotation).
pub fn label_height(label: &Label) -> i32 {
    let lines = label.markup.lines().count().max(1) as f64;
    ((lines - 1.0) * LINE_HEIGHT * label.size + label.size / 1.24).ceil() as i32
}

/// `label` with its font shrunk (never grown, never below 60 %) so its widest line fits in `max_width` pixels.
pub fn fit_width<'a, DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    label: Label<'a>,
    max_width: i32,
) -> Result<Label<'a>, DrawError> {
    let w = label_width(area, &label)?;
    if w <= max_width || w == 0 {
        return Ok(label);
    }
    let size = (label.size * max_width as f64 / w as f64).max(0.6 * label.size);
    Ok(Label { size, ..label })
}

/// Draws `label` with its block anchored at `at` (area pixels): `h`/`v` say which point of the block (in its own,
/// unrotated frame) sits at `at`. Rotated labels are laid out horizontally and then turned about `at`.
pub fn draw_label<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    label: &Label,
    at: (i32, i32),
    (h, v): (HPos, VPos),
    orient: Orient,
) -> DrawResult {
    let block_h = label_height(label);
    let top = match v {
        VPos::Top => 0,
        VPos::Center => -block_h / 2,
        VPos::Bottom => -block_h,
    };
    for (k, line) in label.markup.lines().enumerate() {
        let runs = parse_line(line);
        let widths = run_widths(area, &runs, label.size)?;
        let total: i32 = widths.iter().sum();
        let mut x = match h {
            HPos::Left => 0,
            HPos::Center => -total / 2,
            HPos::Right => -total,
        };
        let baseline = top as f64 + k as f64 * LINE_HEIGHT * label.size + BASELINE * label.size;
        for (run, w) in runs.iter().zip(widths) {
            let size = label.size * run.scale;
            let y = (baseline + run.shift * label.size - BASELINE * size).round() as i32;
            let pos = match orient {
                Orient::Horizontal => (at.0 + x, at.1 + y),
                Orient::Up => (at.0 + y, at.1 - x),
            };
            area.draw(&Text::new(
                run.text.as_str(),
                pos,
                font(size, &label.color, orient),
            ))?;
            x += w;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scripts() {
        let runs = parse_line("Σ_{gas} [M_⊙ kpc^{-2}]");
        let texts: Vec<&str> = runs.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["Σ", "gas", "\u{a0}[M", "⊙", "\u{a0}kpc", "−2", "]"]);
        assert_eq!(runs[1].shift, SUB_SHIFT);
        assert_eq!(runs[5].shift, SUP_SHIFT);
        assert_eq!(runs[0].scale, 1.0);
        assert_eq!(parse_line("plain").len(), 1);
    }
}
