//! The shared look of every figure: one font family, a few font sizes, perceptual colour maps and a fixed
//! colour per mass bin. Keeping these in one place is what makes figures from different notebooks and issues look
//! like one paper.

use plotters::style::RGBColor;

/// Font family of every text element. "sans-serif" resolves through fontconfig to DejaVu Sans on the CI image and
/// stays a generic family in SVG, so the SVG renders everywhere.
pub const FONT: &str = "sans-serif";

/// Figure title (pixels; figures are drawn at ≈ 2× screen size so PNGs print well).
pub const TITLE_PX: f64 = 38.0;
/// Axis labels, column headers, row labels, colour-bar labels.
pub const LABEL_PX: f64 = 32.0;
/// Tick labels.
pub const TICK_PX: f64 = 26.0;
/// Legend entries and in-panel annotations.
pub const LEGEND_PX: f64 = 26.0;
/// Width of data lines (fits, references).
pub const LINE_PX: u32 = 4;
/// Radius of scatter points.
pub const POINT_PX: u32 = 6;

/// Text colour: near-black reads better than pure black next to saturated colours.
pub const INK: RGBColor = RGBColor(25, 25, 25);
/// Colour of reference lines, edges and grids that must not compete with the data.
pub const GREY: RGBColor = RGBColor(110, 110, 110);
/// Light grid lines.
pub const GRID: RGBColor = RGBColor(225, 225, 225);
/// Pixels that are NaN or otherwise unplottable.
pub const MISSING: RGBColor = RGBColor(160, 160, 160);

/// Okabe & Ito (2008) colour-blind-safe palette (without black), for series that are not mass bins.
const OKABE_ITO: [RGBColor; 7] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermilion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(240, 228, 66),  // yellow
];

/// The colour of evaluation mass bin `bin` (0 = lightest clusters … 3 = heaviest), the same in every figure.
/// Cool-to-warm order so "heavier" reads as "warmer" without a legend.
pub fn mass_bin_color(bin: usize) -> RGBColor {
    const BINS: [RGBColor; 4] = [OKABE_ITO[0], OKABE_ITO[2], OKABE_ITO[3], OKABE_ITO[1]];
    BINS[bin.min(3)]
}

/// `c` blended with white by `f ∈ [0, 1]` (0: unchanged, 1: white): a faint version of a series colour for
/// raw data drawn under its smoothed curve.
pub fn lighten(c: RGBColor, f: f64) -> RGBColor {
    let mix = |v: u8| (v as f64 + (255.0 - v as f64) * f.clamp(0.0, 1.0)).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// The `i`-th colour of the generic series palette (cycles after seven).
pub fn series_color(i: usize) -> RGBColor {
    OKABE_ITO[i % OKABE_ITO.len()]
}

/// Perceptually uniform colour maps (matplotlib's, van der Walt & Smith 2015), stored as 17 sRGB stops sampled
/// every 16th entry of the 256-entry tables and interpolated linearly: the difference to the full table is below
/// 2/255 per channel, invisible, and keeps the crate free of a colour dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colormap {
    /// Dark purple → yellow. Default for observables (y, S_X).
    Viridis,
    /// Black → pale yellow. Default for mass maps (Σ_gas, Σ_DM).
    Magma,
}

const VIRIDIS: [[u8; 3]; 17] = [
    [68, 1, 84],
    [72, 24, 106],
    [71, 45, 123],
    [66, 64, 134],
    [59, 82, 139],
    [51, 99, 141],
    [44, 114, 142],
    [38, 130, 142],
    [33, 145, 140],
    [31, 159, 136],
    [39, 173, 129],
    [61, 188, 116],
    [92, 200, 99],
    [129, 211, 77],
    [170, 220, 50],
    [213, 226, 26],
    [253, 231, 37],
];

const MAGMA: [[u8; 3]; 17] = [
    [0, 0, 4],
    [10, 8, 34],
    [29, 17, 71],
    [54, 16, 107],
    [81, 18, 124],
    [106, 28, 129],
    [131, 38, 129],
    [156, 46, 127],
    [183, 55, 121],
    [207, 64, 112],
    [229, 80, 100],
    [244, 105, 92],
    [251, 135, 97],
    [254, 165, 113],
    [254, 194, 135],
    [253, 224, 161],
    [252, 253, 191],
];

impl Colormap {
    fn stops(self) -> &'static [[u8; 3]; 17] {
        match self {
            Colormap::Viridis => &VIRIDIS,
            Colormap::Magma => &MAGMA,
        }
    }

    /// Colour at `t ∈ [0, 1]` (clamped); NaN gives [`MISSING`].
    pub fn at(self, t: f64) -> RGBColor {
        if t.is_nan() {
            return MISSING;
        }
        let stops = self.stops();
        let x = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
        let i = (x.floor() as usize).min(stops.len() - 2);
        let f = x - i as f64;
        let mix = |c: usize| {
            let (a, b) = (stops[i][c] as f64, stops[i + 1][c] as f64);
            (a + f * (b - a)).round() as u8
        };
        RGBColor(mix(0), mix(1), mix(2))
    }
}

/// `10ⁿ` with Unicode superscripts (rendered by the font, so it works in PNG and SVG alike).
pub fn pow10_label(exponent: i32) -> String {
    format!("10{}", superscript(exponent))
}

/// An integer in Unicode superscript digits, with a true minus sign.
pub fn superscript(n: i32) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let sign = if n < 0 { "⁻" } else { "" };
    let digits: String = n
        .unsigned_abs()
        .to_string()
        .bytes()
        .map(|b| DIGITS[(b - b'0') as usize])
        .collect();
    format!("{sign}{digits}")
}

/// A tick label for a value on a logarithmic axis: plain decimals between 0.01 and 10⁴ (so "2", "0.5", "300"),
/// `10ⁿ` for exact decades outside that range and `m×10ⁿ` otherwise.
pub fn log_tick_label(v: f64) -> String {
    if !(v.is_finite() && v > 0.0) {
        return String::new();
    }
    let e = v.log10().floor() as i32;
    let m = v / 10f64.powi(e);
    let (m, e) = if m >= 9.9995 { (1.0, e + 1) } else { (m, e) };
    if (-2..4).contains(&e) {
        return trim_decimal(v, (-e).max(0) as usize + 1);
    }
    if (m - 1.0).abs() < 1e-3 {
        pow10_label(e)
    } else {
        format!("{}×{}", trim_decimal(m, 1), pow10_label(e))
    }
}

/// A tick label for a linear axis: as many decimals as the step between ticks needs (0.25 → 2), true minus sign.
pub fn linear_tick_label(v: f64, step: f64) -> String {
    let decimals = (0..6)
        .find(|&d| {
            let scaled = step.abs() * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(6) as usize;
    let v = if v.abs() < step.abs() * 1e-9 { 0.0 } else { v };
    format!("{v:.decimals$}").replace('-', "−")
}

/// `v` with at most `decimals` decimals, trailing zeros removed.
fn trim_decimal(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    s.replace('-', "−")
}

/// "Nice" tick positions (1, 2, 2.5 or 5 × 10ⁿ steps) covering `[lo, hi]` with about `target` ticks.
/// Returns the ticks and the step.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    ticks_with_steps(lo, hi, target, &[1.0, 2.0, 2.5, 5.0], 0.0)
}

/// As [`nice_ticks`] for counts: integer steps of 1, 2 or 5 × 10ⁿ only.
pub fn count_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    ticks_with_steps(lo, hi, target, &[1.0, 2.0, 5.0], 1.0)
}

fn ticks_with_steps(
    lo: f64,
    hi: f64,
    target: usize,
    mantissas: &[f64],
    min_step: f64,
) -> (Vec<f64>, f64) {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return (vec![lo], 1.0);
    }
    let raw = ((hi - lo) / target.max(1) as f64).max(min_step);
    let mag = 10f64.powf(raw.log10().floor());
    let step = mantissas
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    ((first..=last).map(|k| k as f64 * step).collect(), step)
}

/// Tick positions for a logarithmic axis on `[lo, hi]`: decades, plus 2× and 5× when the range spans less
/// than two decades (otherwise a short axis would carry a single label).
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo) {
        return vec![];
    }
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let mantissas: &[f64] = if hi / lo < 100.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let stride = ((e1 - e0) / 8 + 1) as usize;
    (e0..=e1)
        .step_by(stride)
        .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|v| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colormap_ends_and_clamping() {
        assert_eq!(Colormap::Viridis.at(0.0), RGBColor(68, 1, 84));
        assert_eq!(Colormap::Viridis.at(1.0), RGBColor(253, 231, 37));
        assert_eq!(Colormap::Magma.at(-3.0), Colormap::Magma.at(0.0));
        assert_eq!(Colormap::Magma.at(f64::NAN), MISSING);
    }

    #[test]
    fn labels_use_true_superscripts() {
        assert_eq!(pow10_label(-6), "10⁻⁶");
        assert_eq!(pow10_label(14), "10¹⁴");
        assert_eq!(log_tick_label(2.0), "2");
        assert_eq!(log_tick_label(0.05), "0.05");
        assert_eq!(log_tick_label(1e44), "10⁴⁴");
        assert_eq!(log_tick_label(2e44), "2×10⁴⁴");
        assert_eq!(linear_tick_label(-0.5, 0.5), "−0.5");
        assert_eq!(linear_tick_label(14.25, 0.25), "14.25");
        assert_eq!(linear_tick_label(200.0, 50.0), "200");
        assert_eq!(linear_tick_label(1e-17, 0.1), "0.0");
    }

    #[test]
    fn tick_helpers() {
        let (t, s) = nice_ticks(0.0, 1.0, 5);
        assert_eq!(s, 0.2);
        assert_eq!(t.len(), 6);
        assert_eq!(count_ticks(0.0, 13.0, 5), (vec![0.0, 5.0, 10.0], 5.0));
        assert_eq!(count_ticks(0.0, 1.3, 5).1, 1.0);
        assert_eq!(log_ticks(1e-6, 1e-3), vec![1e-6, 1e-5, 1e-4, 1e-3]);
        assert_eq!(log_ticks(1.0, 20.0), vec![1.0, 2.0, 5.0, 10.0, 20.0]);
    }
}
