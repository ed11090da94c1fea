//! The example-maps figure of a posterior: per cluster, the two inputs, the truth, three samples, the posterior
//! mean and the relative spread std/mean of one target channel (the paper's Figs. 2–3 layout, with the spread
//! added). Used by `clustermaps reproduce`, notebook 03 and notebook 04.

use super::figure::Figure;
use super::image_grid::{image_grid, ImageColumn, ImageGrid, ImageRow};
use super::style::Colormap;
use crate::data::dataset::MapGeometry;
use crate::data::ClusterMeta;
use crate::sample::SampleResult;
use crate::{Error, Result};

/// Colour limits (M_sun kpc⁻²) of target channel `c` of the mock targets (gas, DM): the same in every figure, so
/// panels can be compared across figures (notebook 01 uses them too).
pub fn target_limits(c: usize) -> (f64, f64) {
    if c == 0 {
        (1e4, 1e9)
    } else {
        (1e6, 1e10)
    }
}

/// Colour limits of a mock input channel by name: `y` (Compton y) and `S_X` (erg s⁻¹ cm⁻² arcmin⁻²), fixed like
/// [`target_limits`] so that inputs compare across figures; a wide range for any other channel.
pub fn input_limits(channel: &str) -> (f64, f64) {
    match channel {
        "y" => (1e-8, 3e-4),
        "S_X" => (1e-18, 1e-11),
        _ => (1e-18, 1.0),
    }
}

/// Markup name of target channel `c` (`gas`, `DM`; `ch c` for a third one).
pub fn target_name(c: usize) -> String {
    match c {
        0 => "gas".into(),
        1 => "DM".into(),
        _ => format!("ch {c}"),
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// The maps of one row: inputs, truth, up to three samples, posterior mean and std/mean of target `c` of
/// cluster `b` (`mean`, `std` from [`SampleResult::mean_std`]).
fn posterior_row(p: &SampleResult, mean: &[f32], std: &[f32], b: usize, c: usize) -> Vec<Vec<f64>> {
    let (_, s, nc, h, w) = p.dims();
    let plane = h * w;
    let k = (b * nc + c) * plane;
    let n_in = p.input_channels.len();
    let mut maps: Vec<Vec<f64>> = (0..n_in).map(|i| f64s(p.input_map(b, i))).collect();
    maps.push(f64s(p.truth_map(b, c)));
    maps.extend((0..s.min(3)).map(|j| f64s(p.sample_map(b, j, c))));
    maps.push(f64s(&mean[k..k + plane]));
    maps.push(
        mean[k..k + plane]
            .iter()
            .zip(&std[k..k + plane])
            .map(|(&m, &s)| s as f64 / m as f64)
            .collect(),
    );
    maps
}

/// Columns for target `c`: the mock inputs (y, S_X) and then the target's maps.
fn posterior_columns(p: &SampleResult, c: usize) -> Vec<ImageColumn> {
    let name = target_name(c);
    let (lo, hi) = target_limits(c);
    let unit = format!("Σ_{{{name}}} [M_⊙ kpc^{{-2}}]");
    let mut cols: Vec<ImageColumn> = p
        .input_channels
        .iter()
        .map(|ch| {
            let (lo, hi) = input_limits(ch);
            let unit = match ch.as_str() {
                "y" => "Compton y",
                "S_X" => "S_X [erg s^{-1} cm^{-2}\narcmin^{-2}]",
                other => other,
            };
            ImageColumn::log(&format!("{ch} (input)"), unit, lo, hi, Colormap::Viridis)
        })
        .collect();
    cols.push(ImageColumn::log(
        &format!("Σ_{{{name}}} (true)"),
        &unit,
        lo,
        hi,
        Colormap::Magma,
    ));
    for s in 1..=p.shape[1].min(3) {
        cols.push(ImageColumn::log(
            &format!("sample {s}"),
            &unit,
            lo,
            hi,
            Colormap::Magma,
        ));
    }
    cols.push(ImageColumn::log(
        "posterior mean",
        &unit,
        lo,
        hi,
        Colormap::Magma,
    ));
    cols.push(ImageColumn::log(
        "posterior std / mean",
        "σ / μ",
        0.01,
        10.0,
        Colormap::Viridis,
    ));
    cols
}

/// The posterior figure of target channel `c` for the clusters at positions `rows` of `p` (row labels give the
/// cluster's index in its split and log₁₀ M200c; a circle marks R500c). `meta[b]` belongs to row `b` of `p`.
pub fn posterior_maps(
    p: &SampleResult,
    meta: &[ClusterMeta],
    geometry: &MapGeometry,
    c: usize,
    rows: &[usize],
) -> Result<Figure> {
    let (n, _, nc, _, _) = p.dims();
    if meta.len() != n {
        return Err(Error::Config(format!(
            "posterior maps: {} metadata rows for {n} clusters",
            meta.len()
        )));
    }
    if c >= nc || rows.iter().any(|&b| b >= n) || rows.is_empty() {
        return Err(Error::Config(format!(
            "posterior maps: channel {c} of {nc} and rows {rows:?} of {n} clusters"
        )));
    }
    let (mean, std) = p.mean_std();
    let maps: Vec<Vec<Vec<f64>>> = rows
        .iter()
        .map(|&b| posterior_row(p, &mean, &std, b, c))
        .collect();
    let image_rows: Vec<ImageRow> = rows
        .iter()
        .zip(&maps)
        .map(|(&b, m)| {
            let mt = &meta[b];
            let label = format!(
                "{} {}\nlog_{{10}} M_{{200c}} = {:.2}",
                p.split,
                p.indices[b],
                mt.m200c_msun.log10()
            );
            let row = ImageRow::new(&label, m.iter().map(|v| v.as_slice()).collect());
            if mt.r500c_kpc.is_finite() {
                row.circle(mt.r500c_kpc)
            } else {
                row
            }
        })
        .collect();
    let name = target_name(c);
    image_grid(&ImageGrid {
        title: Some(format!(
            "Σ_{{{name}}}: {} posterior samples per cluster, {} (NFE {})",
            p.shape[1], p.sampler, p.nfe
        )),
        n_pix: geometry.n_pix,
        pixel_kpc: geometry.pixel_kpc,
        columns: posterior_columns(p, c),
        rows: image_rows,
        scale_bar_kpc: Some(1000.0),
    })
}
