//! The checks [`super::evaluate`] runs before computing anything: shapes and lengths, options, metadata and pixel
//! values, each failure an error that names the cluster, sample, channel or pixel at fault (never a NaN result).

use rayon::prelude::*;

use super::calibration::check_samples;
use super::profiles::check_edges;
use super::report::EvalOptions;
use crate::data::dataset::MapGeometry;
use crate::data::meta::ClusterMeta;
use crate::{Error, Result};

/// Index helpers for `[N, S, C, H, W]` samples and `[N, C, H, W]` truth.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    pub(super) n: usize,
    pub(super) s: usize,
    pub(super) c: usize,
    pub(super) hw: usize,
    pub(super) side: usize,
}

impl Dims {
    pub(super) fn truth(&self, i: usize, c: usize) -> std::ops::Range<usize> {
        let o = (i * self.c + c) * self.hw;
        o..o + self.hw
    }
    pub(super) fn sample(&self, i: usize, s: usize, c: usize) -> std::ops::Range<usize> {
        let o = ((i * self.s + s) * self.c + c) * self.hw;
        o..o + self.hw
    }
}

pub(super) fn check_shapes(
    truth: &[f32],
    samples: &[f32],
    shape: [usize; 5],
    meta: &[ClusterMeta],
    geometry: &MapGeometry,
    channels: &[String],
) -> Result<Dims> {
    let [n, s, c, h, w] = shape;
    let bad = |what: &str, got: Vec<usize>, expected: String| {
        Err(Error::Shape {
            what: what.to_string(),
            got,
            expected,
        })
    };
    if n == 0 || c == 0 || h == 0 || w == 0 {
        return bad(
            "samples",
            shape.to_vec(),
            "[N, S, C, H, W] with N, C, H, W ≥ 1".into(),
        );
    }
    if n < 2 {
        return bad(
            "truth",
            shape.to_vec(),
            "N ≥ 2 clusters: profile and spectrum statistics are taken over clusters".into(),
        );
    }
    check_samples(s)?;
    if h != w || h != geometry.n_pix {
        return bad(
            "samples",
            shape.to_vec(),
            format!(
                "square maps of the geometry's {0}×{0} pixels",
                geometry.n_pix
            ),
        );
    }
    if c != channels.len() {
        return bad(
            "samples",
            shape.to_vec(),
            format!("C = {} channels ({:?})", channels.len(), channels),
        );
    }
    let px = geometry.side_kpc / geometry.n_pix as f64;
    if !(geometry.pixel_kpc.is_finite() && geometry.pixel_kpc > 0.0)
        || (geometry.pixel_kpc / px - 1.0).abs() > 1e-6
    {
        return Err(Error::Config(format!(
            "geometry: pixel_kpc = {} does not equal side_kpc / n_pix = {px}",
            geometry.pixel_kpc
        )));
    }
    if truth.len() != n * c * h * w {
        return bad(
            "truth",
            vec![truth.len()],
            format!(
                "N·C·H·W = {} values for [N, C, H, W] = [{n}, {c}, {h}, {w}]",
                n * c * h * w
            ),
        );
    }
    if samples.len() != n * s * c * h * w {
        return bad(
            "samples",
            vec![samples.len()],
            format!(
                "N·S·C·H·W = {} values for shape {shape:?}",
                n * s * c * h * w
            ),
        );
    }
    if meta.len() != n {
        return bad(
            "meta",
            vec![meta.len()],
            format!("one ClusterMeta row per cluster, N = {n}"),
        );
    }
    Ok(Dims {
        n,
        s,
        c,
        hw: h * w,
        side: w,
    })
}

pub(super) fn check_options(o: &EvalOptions, channels: &[String]) -> Result<()> {
    check_edges(&o.edges_r200c)?;
    check_edges(&o.edges_kpc)?;
    let z = &o.pixel_zones_r200c;
    if z.iter().any(|e| !(e.is_finite() && *e > 0.0)) || z.windows(2).any(|w| w[1] <= w[0]) {
        return Err(Error::Config(format!(
            "pixel_zones_r200c {z:?}: zone edges must be positive, finite and increasing"
        )));
    }
    if o.levels.is_empty() || o.levels.iter().any(|p| !(*p > 0.0 && *p < 1.0)) {
        return Err(Error::Config(format!(
            "coverage levels {:?} must lie in (0, 1)",
            o.levels
        )));
    }
    if o.bootstrap < 2 {
        return Err(Error::Config(format!(
            "bootstrap = {}: need at least 2 replicates",
            o.bootstrap
        )));
    }
    if o.rank_thin == 0 {
        return Err(Error::Config("rank_thin must be ≥ 1".into()));
    }
    let [a, b] = o.claim_range_r200c;
    if !(a >= 0.0 && b > a && b.is_finite()) {
        return Err(Error::Config(format!(
            "claim_range_r200c {:?} must be 0 ≤ lo < hi",
            o.claim_range_r200c
        )));
    }
    if let Some(f) = &o.log_floors {
        if f.len() != channels.len() || f.iter().any(|v| !(*v > 0.0 && v.is_finite())) {
            return Err(Error::Config(format!(
                "log_floors {f:?}: need one positive finite floor per channel ({channels:?})"
            )));
        }
    }
    Ok(())
}

pub(super) fn check_meta(meta: &[ClusterMeta]) -> Result<()> {
    for (i, m) in meta.iter().enumerate() {
        for (name, v) in [("r200c_kpc", m.r200c_kpc), ("r500c_kpc", m.r500c_kpc)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::invalid(
                    "meta",
                    format!(
                        "cluster {i} (id {}): {name} = {v}; radial profiles and apertures need positive, finite \
                         R200c and R500c (fill them in meta.csv)",
                        m.id
                    ),
                ));
            }
        }
        if m.mass_bin > 3 {
            return Err(Error::invalid(
                "meta",
                format!(
                    "cluster {i} (id {}): mass_bin = {} (0..=3)",
                    m.id, m.mass_bin
                ),
            ));
        }
    }
    Ok(())
}

/// First bad value of one map: non-finite, or ≤ 0 when `positive`.
fn check_map(map: &[f32], positive: bool, side: usize) -> Option<String> {
    let (p, v) = map
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite() || (positive && **v <= 0.0))?;
    let what = if v.is_nan() {
        "is NaN".to_string()
    } else if v.is_infinite() {
        format!("is {v}")
    } else {
        format!("is {v} ≤ 0, but log10 metrics need positive values (set EvalOptions::log_floors)")
    };
    Some(format!("pixel (row {}, col {}) {what}", p / side, p % side))
}

pub(super) fn check_values(
    truth: &[f32],
    samples: &[f32],
    d: Dims,
    meta: &[ClusterMeta],
    channels: &[String],
    positive: bool,
) -> Result<()> {
    let first = (0..d.n)
        .into_par_iter()
        .map(|i| {
            for (c, name) in channels.iter().enumerate() {
                if let Some(msg) = check_map(&truth[d.truth(i, c)], positive, d.side) {
                    return Some(Error::NonFinite {
                        what: "truth".into(),
                        msg: format!("cluster {i} (id {}), channel '{name}': {msg}", meta[i].id),
                    });
                }
                for s in 0..d.s {
                    if let Some(msg) = check_map(&samples[d.sample(i, s, c)], positive, d.side) {
                        return Some(Error::NonFinite {
                            what: "samples".into(),
                            msg: format!(
                                "cluster {i} (id {}), sample {s}, channel '{name}': {msg}",
                                meta[i].id
                            ),
                        });
                    }
                }
            }
            None
        })
        .collect::<Vec<_>>();
    match first.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
