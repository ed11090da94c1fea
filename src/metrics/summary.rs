//! [`evaluate`]: every metric of this module for a set of clusters with posterior samples, grouped by mass bin, and
//! [`Claims`]: the paper's headline statements checked against thresholds.
//!
//! Work is split in two passes so that N = 1000 clusters stay fast on two cores: a parallel pass over clusters
//! (rayon) computes everything that needs pixels — profiles, aperture masses, FFTs, pixel errors and pixel
//! calibration sums — into small per-cluster arrays; a second pass computes group statistics from those arrays only.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::calibration::{
    check_samples, CalibAccumulator, Calibration, SpreadAccumulator, SpreadSkill, NOMINAL_LEVELS,
};
use super::profiles::{
    aperture_sum, bin_centres, check_edges, clip_edges, default_edges_kpc, default_edges_r200c,
    disk_weights, AnnulusWeights,
};
use super::spectra::{Fft2, SpectrumBins};
use super::stats::{mean_std, BinStats, Summary};
use crate::data::dataset::{write_file_atomic, write_npy_f64, Geometry};
use crate::data::meta::{ClusterMeta, MASS_BIN_EDGES};
use crate::{Error, Result};

/// Schema tag of `evaluation.json`.
pub const SCHEMA: &str = "clustermaps-metrics-1";

/// Settings of [`evaluate`]; `Default` gives the documented defaults (also for fields missing when deserialising).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalOptions {
    /// Radial edges in R/R200c ([`default_edges_r200c`]: 0.05–1.58, 0.1 dex).
    pub edges_r200c: Vec<f64>,
    /// Radial edges in kpc ([`default_edges_kpc`]: 50–1995 kpc, 0.1 dex).
    pub edges_kpc: Vec<f64>,
    /// Nominal central-interval probabilities for coverage.
    pub levels: Vec<f64>,
    /// Bootstrap replicates over clusters for the fractional-error uncertainties (≥ 2; default 200).
    pub bootstrap: usize,
    /// Seed of the bootstrap (default 0).
    pub seed: u64,
    /// Pixel rank histograms use every `rank_thin`-th pixel in each direction (default 4).
    pub rank_thin: usize,
    /// Per-channel floors for the log10 metrics (log10 max(x, floor), as the `log10` transform of the dataset);
    /// `None`: every pixel must be positive.
    pub log_floors: Option<Vec<f64>>,
    /// Radial range \[R200c\] of the profile claims (default 0.1–1).
    pub claim_range_r200c: [f64; 2],
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            edges_r200c: default_edges_r200c(),
            edges_kpc: default_edges_kpc(),
            levels: NOMINAL_LEVELS.to_vec(),
            bootstrap: 200,
            seed: 0,
            rank_thin: 4,
            log_floors: None,
            claim_range_r200c: [0.1, 1.0],
        }
    }
}

/// A group of clusters the statistics are computed over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// `all` or `bin0` … `bin3`.
    pub label: String,
    /// The mass bin (mock spec §8), `None` for all clusters.
    pub mass_bin: Option<u8>,
    pub n_clusters: usize,
    /// Nominal log10(M200c/M_sun) range of the bin (the edges; `all`: the outer edges).
    pub log10_m200c: [f64; 2],
    /// Indices (into the evaluated arrays) of the group's clusters.
    pub clusters: Vec<usize>,
}

/// Which group and channel a row of statistics belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowKey {
    pub group: String,
    pub mass_bin: Option<u8>,
    pub channel: String,
    pub n_clusters: usize,
}

/// Radial-profile statistics of one group and channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileRow {
    #[serde(flatten)]
    pub key: RowKey,
    /// Over clusters, of the true profiles.
    pub truth: BinStats,
    /// Over clusters for each sample index, averaged over sample indices (module doc).
    pub samples: BinStats,
    /// Over clusters, of the posterior-mean map's profiles (its mean equals `samples.mean`).
    pub mean_map: BinStats,
    /// (samples.mean − truth.mean)/truth.mean per bin, and its bootstrap standard error.
    pub frac_mean: Vec<f64>,
    pub frac_mean_err: Vec<f64>,
    /// (samples.std − truth.std)/truth.std per bin, and its bootstrap standard error.
    pub frac_std: Vec<f64>,
    pub frac_std_err: Vec<f64>,
    /// (mean_map.std − truth.std)/truth.std per bin, and its bootstrap standard error.
    pub frac_std_mean_map: Vec<f64>,
    pub frac_std_mean_map_err: Vec<f64>,
}

/// Radial profiles in one radial unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileReport {
    /// `R200c` or `kpc`.
    pub unit: String,
    /// The edges used (after clipping), in `unit`.
    pub edges: Vec<f64>,
    /// Geometric bin centres.
    pub centres: Vec<f64>,
    /// Requested outer edges dropped because their annulus leaves the map for the largest cluster.
    pub dropped_edges: Vec<f64>,
    pub rows: Vec<ProfileRow>,
}

/// Power-spectrum statistics of one group and channel (per k bin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectraRow {
    #[serde(flatten)]
    pub key: RowKey,
    /// P(k) of the truth over clusters.
    pub truth: BinStats,
    /// P(k) of the samples, per sample index over clusters, averaged over sample indices.
    pub samples: BinStats,
    /// P(k) of the posterior-mean maps over clusters.
    pub mean_map: BinStats,
    /// b(k) over all (cluster, sample) pairs, and the standard error of its mean over clusters.
    pub bias: BinStats,
    pub bias_sem: Vec<f64>,
    /// r(k) over all pairs, and its standard error over clusters.
    pub corr: BinStats,
    pub corr_sem: Vec<f64>,
    /// b(k), r(k) of the posterior-mean map against the truth, over clusters.
    pub bias_mean_map: BinStats,
    pub corr_mean_map: BinStats,
    /// √(⟨P_pred⟩/⟨P_true⟩) and ⟨P_×⟩/√(⟨P_pred⟩⟨P_true⟩) from spectra averaged over all pairs.
    pub bias_stacked: Vec<f64>,
    pub corr_stacked: Vec<f64>,
}

/// Power spectra: the binning and one row per group and channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpectraReport {
    /// k binning; `bins.k_nyquist / 2` separates the claims' low- and high-k ranges.
    pub bins: SpectrumBins,
    pub rows: Vec<SpectraRow>,
}

/// Projected mass within an aperture for one group, channel and aperture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApertureRow {
    #[serde(flatten)]
    pub key: RowKey,
    /// `R500c` or `R200c`.
    pub aperture: String,
    /// True projected mass over clusters (map unit × kpc²).
    pub truth: Summary,
    /// (M_sample − M_true)/M_true over all pairs, and the standard error of its mean over clusters.
    pub rel_err: Summary,
    pub rel_err_sem: f64,
    /// (M_mean_map − M_true)/M_true over clusters.
    pub rel_err_mean_map: Summary,
    /// Coverage and ranks of the true mass among the sample masses, over clusters.
    pub calibration: Calibration,
}

/// Pixel errors and pixel calibration of one group and channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelRow {
    #[serde(flatten)]
    pub key: RowKey,
    /// Mean over pixels (and samples) of (x_sample − x_true)², physical units².
    pub mse_samples: f64,
    /// Mean over pixels of (x̄ − x_true)² for the posterior-mean map, physical units².
    pub mse_mean_map: f64,
    /// The same in log10 (dex²); the log-space mean is the mean of log10 samples.
    pub mse_log10_samples: f64,
    pub mse_log10_mean: f64,
    /// Coverage over all pixels; ranks over the thinned pixels.
    pub calibration: Calibration,
    /// Spread–skill and z-scores in log10 over all pixels.
    pub spread_skill: SpreadSkill,
}

/// Calibration of the R200c-binned radial profiles of one group and channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileCalRow {
    #[serde(flatten)]
    pub key: RowKey,
    /// Pooled over clusters and all radial bins.
    pub pooled: Calibration,
    /// Coverage per radial bin, `[bin][level]`.
    pub coverage_per_bin: Vec<Vec<f64>>,
}

/// Per-cluster arrays (flattened, C order; shapes in the module doc), kept out of the JSON and written as `.npy`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerCluster {
    /// \[N, C, B\] and \[N, S, C, B\].
    pub profiles_r200c_truth: Vec<f64>,
    pub profiles_r200c_samples: Vec<f64>,
    pub profiles_kpc_truth: Vec<f64>,
    pub profiles_kpc_samples: Vec<f64>,
    /// \[N, C, K\] and \[N, S, C, K\].
    pub power_truth: Vec<f64>,
    pub power_samples: Vec<f64>,
    pub cross: Vec<f64>,
    pub power_mean_map: Vec<f64>,
    pub cross_mean_map: Vec<f64>,
    /// \[N, 2\]: (R500c, R200c) in kpc.
    pub aperture_radii_kpc: Vec<f64>,
    /// \[N, C, 2\] and \[N, S, C, 2\].
    pub apertures_truth: Vec<f64>,
    pub apertures_samples: Vec<f64>,
}

/// Everything [`evaluate`] measures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub schema: String,
    pub n_clusters: usize,
    pub n_samples: usize,
    pub channels: Vec<String>,
    pub geometry: Geometry,
    pub options: EvalOptions,
    /// Groups in row order: `all`, then the populated mass bins.
    pub groups: Vec<GroupInfo>,
    pub profiles_r200c: ProfileReport,
    pub profiles_kpc: ProfileReport,
    pub spectra: SpectraReport,
    pub apertures: Vec<ApertureRow>,
    pub pixels: Vec<PixelRow>,
    pub profile_calibration: Vec<ProfileCalRow>,
    /// What was dropped, clipped or skipped, in words.
    pub notes: Vec<String>,
    /// Wall time of [`evaluate`] \[s\].
    pub seconds: f64,
    #[serde(skip)]
    pub per_cluster: PerCluster,
}

// ---------------------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------------------

/// Index helpers for `[N, S, C, H, W]` samples and `[N, C, H, W]` truth.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    s: usize,
    c: usize,
    hw: usize,
    side: usize,
}

impl Dims {
    fn truth(&self, i: usize, c: usize) -> std::ops::Range<usize> {
        let o = (i * self.c + c) * self.hw;
        o..o + self.hw
    }
    fn sample(&self, i: usize, s: usize, c: usize) -> std::ops::Range<usize> {
        let o = ((i * self.s + s) * self.c + c) * self.hw;
        o..o + self.hw
    }
}

fn check_shapes(
    truth: &[f32],
    samples: &[f32],
    shape: [usize; 5],
    meta: &[ClusterMeta],
    geometry: &Geometry,
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

fn check_options(o: &EvalOptions, channels: &[String]) -> Result<()> {
    check_edges(&o.edges_r200c)?;
    check_edges(&o.edges_kpc)?;
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

fn check_meta(meta: &[ClusterMeta]) -> Result<()> {
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

fn check_values(
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

// ---------------------------------------------------------------------------------------------------------------
// Pass 1: per cluster
// ---------------------------------------------------------------------------------------------------------------

/// Per-cluster results; arrays indexed `[m][c][bin]` with m = 0 the truth and m = 1..=S the samples.
struct ClusterOut {
    prof_r200: Vec<f64>,
    prof_kpc: Vec<f64>,
    aper: Vec<f64>,
    power: Vec<f64>,
    /// `[s][c][k]`.
    cross: Vec<f64>,
    /// `[c][k]`.
    power_mean: Vec<f64>,
    cross_mean: Vec<f64>,
    pix_cal: Vec<CalibAccumulator>,
    pix_spread: Vec<SpreadAccumulator>,
    /// Per channel: Σ over pixels of (sample err² averaged over s, mean-map err², log sample err², log mean err²).
    sq_err: Vec<[f64; 4]>,
}

struct Shared<'a> {
    d: Dims,
    geometry: &'a Geometry,
    edges_r200: &'a [f64],
    kpc_weights: &'a AnnulusWeights,
    kbins: &'a SpectrumBins,
    floors: Option<&'a [f64]>,
    levels: &'a [f64],
    thin: usize,
}

fn cluster_pass(
    sh: &Shared,
    fft: &mut Fft2,
    i: usize,
    meta: &ClusterMeta,
    truth: &[f32],
    samples: &[f32],
) -> Result<ClusterOut> {
    let d = sh.d;
    let (nm, nc) = (d.s + 1, d.c);
    let edges: Vec<f64> = sh.edges_r200.iter().map(|e| e * meta.r200c_kpc).collect();
    let w200 = AnnulusWeights::new(sh.geometry, &edges)?;
    let (b200, bkpc, nk) = (w200.len(), sh.kpc_weights.len(), sh.kbins.len());
    let apertures = [
        disk_weights(sh.geometry, meta.r500c_kpc),
        disk_weights(sh.geometry, meta.r200c_kpc),
    ];
    let mut out = ClusterOut {
        prof_r200: vec![0.0; nm * nc * b200],
        prof_kpc: vec![0.0; nm * nc * bkpc],
        aper: vec![0.0; nm * nc * 2],
        power: vec![0.0; nm * nc * nk],
        cross: vec![0.0; d.s * nc * nk],
        power_mean: vec![0.0; nc * nk],
        cross_mean: vec![0.0; nc * nk],
        pix_cal: Vec::with_capacity(nc),
        pix_spread: Vec::with_capacity(nc),
        sq_err: Vec::with_capacity(nc),
    };
    for c in 0..nc {
        let t_map = &truth[d.truth(i, c)];
        let maps: Vec<&[f32]> = std::iter::once(t_map)
            .chain((0..d.s).map(|s| &samples[d.sample(i, s, c)]))
            .collect();
        let mut f_true = Vec::new();
        let mut f_mean = Vec::new();
        for (m, map) in maps.iter().enumerate() {
            let o = m * nc + c;
            w200.profile_into(map, &mut out.prof_r200[o * b200..(o + 1) * b200]);
            sh.kpc_weights
                .profile_into(map, &mut out.prof_kpc[o * bkpc..(o + 1) * bkpc]);
            for (a, w) in apertures.iter().enumerate() {
                out.aper[o * 2 + a] = aperture_sum(w, map);
            }
            let f = fft.forward(map);
            out.power[o * nk..(o + 1) * nk].copy_from_slice(&sh.kbins.power(&f));
            if m == 0 {
                f_true = f;
                f_mean = vec![Default::default(); f_true.len()];
            } else {
                let so = ((m - 1) * nc + c) * nk;
                out.cross[so..so + nk].copy_from_slice(&sh.kbins.cross(&f, &f_true));
                for (acc, v) in f_mean.iter_mut().zip(&f) {
                    *acc += v / d.s as f64;
                }
            }
        }
        out.power_mean[c * nk..(c + 1) * nk].copy_from_slice(&sh.kbins.power(&f_mean));
        out.cross_mean[c * nk..(c + 1) * nk].copy_from_slice(&sh.kbins.cross(&f_mean, &f_true));

        // Pixels: errors, calibration, spread-skill.
        let floor = sh.floors.map(|f| f[c]);
        let log = |x: f64| match floor {
            Some(fl) => x.max(fl).log10(),
            None => x.log10(),
        };
        let mut cal = CalibAccumulator::new(d.s, sh.levels);
        let mut spread = SpreadAccumulator::new(d.s);
        let mut sq = [0.0; 4];
        let mut phys = vec![0.0; d.s];
        let mut logs = vec![0.0; d.s];
        for (p, &t) in t_map.iter().enumerate() {
            let t = t as f64;
            for s in 0..d.s {
                phys[s] = maps[s + 1][p] as f64;
                logs[s] = log(phys[s]);
            }
            let lt = log(t);
            let mean = phys.iter().sum::<f64>() / d.s as f64;
            let lmean = logs.iter().sum::<f64>() / d.s as f64;
            sq[0] += phys.iter().map(|x| (x - t) * (x - t)).sum::<f64>() / d.s as f64;
            sq[1] += (mean - t) * (mean - t);
            sq[2] += logs.iter().map(|x| (x - lt) * (x - lt)).sum::<f64>() / d.s as f64;
            sq[3] += (lmean - lt) * (lmean - lt);
            let (row, col) = (p / d.side, p % d.side);
            cal.push(lt, &logs, row % sh.thin == 0 && col % sh.thin == 0);
            spread.push(lt, &logs);
        }
        out.pix_cal.push(cal);
        out.pix_spread.push(spread);
        out.sq_err.push(sq);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// Pass 2: group statistics
// ---------------------------------------------------------------------------------------------------------------

fn make_groups(meta: &[ClusterMeta], notes: &mut Vec<String>) -> Vec<GroupInfo> {
    let mut groups = vec![GroupInfo {
        label: "all".into(),
        mass_bin: None,
        n_clusters: meta.len(),
        log10_m200c: [MASS_BIN_EDGES[0], MASS_BIN_EDGES[4]],
        clusters: (0..meta.len()).collect(),
    }];
    for b in 0..4u8 {
        let clusters: Vec<usize> = (0..meta.len()).filter(|&i| meta[i].mass_bin == b).collect();
        if clusters.len() < 2 {
            notes.push(format!(
                "mass bin {b}: {} cluster(s), fewer than 2: no statistics for this bin",
                clusters.len()
            ));
            continue;
        }
        groups.push(GroupInfo {
            label: format!("bin{b}"),
            mass_bin: Some(b),
            n_clusters: clusters.len(),
            log10_m200c: [MASS_BIN_EDGES[b as usize], MASS_BIN_EDGES[b as usize + 1]],
            clusters,
        });
    }
    groups
}

fn key(g: &GroupInfo, channel: &str) -> RowKey {
    RowKey {
        group: g.label.clone(),
        mass_bin: g.mass_bin,
        channel: channel.to_string(),
        n_clusters: g.n_clusters,
    }
}

/// Values of one radial or k bin for the clusters of a group: truth `[n]`, samples `[s][n]`, mean map `[n]`.
struct BinValues {
    truth: Vec<f64>,
    samples: Vec<Vec<f64>>,
    mean_map: Vec<f64>,
}

/// Gathers bin `b` of channel `c` from per-cluster arrays `[m][c][bins]` (m = 0 truth, 1..=S samples).
fn gather(outs: &[&[f64]], s: usize, nc: usize, nb: usize, c: usize, b: usize) -> BinValues {
    let at = |o: &[f64], m: usize| o[(m * nc + c) * nb + b];
    let samples: Vec<Vec<f64>> = (1..=s)
        .map(|m| outs.iter().map(|o| at(o, m)).collect())
        .collect();
    let mean_map = (0..outs.len())
        .map(|k| samples.iter().map(|v| v[k]).sum::<f64>() / s as f64)
        .collect();
    BinValues {
        truth: outs.iter().map(|o| at(o, 0)).collect(),
        samples,
        mean_map,
    }
}

/// (frac mean, frac std, frac std of the mean map) of one resample `idx` (all clusters when `None`); `None` when the
/// truth has zero mean or spread there.
fn profile_fracs(v: &BinValues, idx: Option<&[usize]>) -> Option<[f64; 3]> {
    let pick = |x: &[f64]| -> Vec<f64> {
        match idx {
            Some(ix) => ix.iter().map(|&k| x[k]).collect(),
            None => x.to_vec(),
        }
    };
    let (tm, ts) = mean_std(&pick(&v.truth));
    if tm == 0.0 || ts == 0.0 {
        return None;
    }
    let (mut pm, mut ps) = (0.0, 0.0);
    for s in &v.samples {
        let (m, sd) = mean_std(&pick(s));
        pm += m / v.samples.len() as f64;
        ps += sd / v.samples.len() as f64;
    }
    let (_, ms) = mean_std(&pick(&v.mean_map));
    Some([(pm - tm) / tm, (ps - ts) / ts, (ms - ts) / ts])
}

#[allow(clippy::too_many_arguments)]
fn profile_report(
    unit: &str,
    edges: Vec<f64>,
    dropped: Vec<f64>,
    per_cluster: &[&[f64]],
    groups: &[GroupInfo],
    channels: &[String],
    s: usize,
    opts: &EvalOptions,
    notes: &mut Vec<String>,
) -> Result<ProfileReport> {
    let nb = edges.len() - 1;
    let nc = channels.len();
    let mut rows = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        let outs: Vec<&[f64]> = g.clusters.iter().map(|&i| per_cluster[i]).collect();
        // One set of bootstrap resamples per group, shared by channels and bins.
        let mut rng = crate::rng::stream(opts.seed, gi as u64);
        let n = outs.len();
        let resamples: Vec<Vec<usize>> = (0..opts.bootstrap)
            .map(|_| {
                (0..n)
                    .map(|_| crate::rng::below(&mut rng, n as u64) as usize)
                    .collect()
            })
            .collect();
        for (c, name) in channels.iter().enumerate() {
            let mut row = ProfileRow {
                key: key(g, name),
                truth: BinStats::default(),
                samples: BinStats::default(),
                mean_map: BinStats::default(),
                frac_mean: vec![],
                frac_mean_err: vec![],
                frac_std: vec![],
                frac_std_err: vec![],
                frac_std_mean_map: vec![],
                frac_std_mean_map_err: vec![],
            };
            let mut t_sum = Vec::new();
            let mut s_sum = Vec::new();
            let mut m_sum = Vec::new();
            for b in 0..nb {
                let v = gather(&outs, s, nc, nb, c, b);
                t_sum.push(Summary::of(&v.truth));
                let per_s: Vec<Summary> = v.samples.iter().map(|x| Summary::of(x)).collect();
                s_sum.push(Summary::average(&per_s));
                m_sum.push(Summary::of(&v.mean_map));
                let point = profile_fracs(&v, None).ok_or_else(|| {
                    Error::invalid(
                        "radial profiles",
                        format!(
                            "group {}, channel '{name}', bin {b} ({:.4}–{:.4} {unit}): the true profiles have zero \
                             mean or zero spread over clusters; fractional errors are undefined",
                            g.label,
                            edges[b],
                            edges[b + 1]
                        ),
                    )
                })?;
                let reps: Vec<[f64; 3]> = resamples
                    .iter()
                    .filter_map(|ix| profile_fracs(&v, Some(ix)))
                    .collect();
                let err = |k: usize| {
                    if reps.len() < 2 {
                        f64::INFINITY
                    } else {
                        mean_std(&reps.iter().map(|r| r[k]).collect::<Vec<_>>()).1
                    }
                };
                if reps.len() < 2 {
                    notes.push(format!(
                        "profiles ({unit}) group {}, channel '{name}', bin {b}: fewer than 2 usable bootstrap \
                         replicates, uncertainty reported as infinite",
                        g.label
                    ));
                }
                row.frac_mean.push(point[0]);
                row.frac_mean_err.push(err(0));
                row.frac_std.push(point[1]);
                row.frac_std_err.push(err(1));
                row.frac_std_mean_map.push(point[2]);
                row.frac_std_mean_map_err.push(err(2));
            }
            row.truth = BinStats::from_summaries(t_sum);
            row.samples = BinStats::from_summaries(s_sum);
            row.mean_map = BinStats::from_summaries(m_sum);
            rows.push(row);
        }
    }
    Ok(ProfileReport {
        unit: unit.into(),
        centres: bin_centres(&edges),
        edges,
        dropped_edges: dropped,
        rows,
    })
}

/// Mean over clusters of a per-pair quantity `[n][s]`, then its standard error over clusters.
fn sem_over_clusters(per_pair: &[Vec<f64>]) -> f64 {
    let per_cluster: Vec<f64> = per_pair
        .iter()
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
        .collect();
    mean_std(&per_cluster).1 / (per_cluster.len() as f64).sqrt()
}

#[allow(clippy::too_many_arguments)]
fn spectra_rows(
    outs_all: &[ClusterOut],
    groups: &[GroupInfo],
    channels: &[String],
    meta: &[ClusterMeta],
    s: usize,
    nk: usize,
) -> Result<Vec<SpectraRow>> {
    let nc = channels.len();
    let mut rows = Vec::new();
    for g in groups {
        let outs: Vec<&ClusterOut> = g.clusters.iter().map(|&i| &outs_all[i]).collect();
        for (c, name) in channels.iter().enumerate() {
            let mut stats: [Vec<Summary>; 7] = Default::default();
            let (mut bsem, mut rsem, mut bst, mut rst) = (vec![], vec![], vec![], vec![]);
            for k in 0..nk {
                let at = |o: &ClusterOut, m: usize| o.power[(m * nc + c) * nk + k];
                let pt: Vec<f64> = outs.iter().map(|o| at(o, 0)).collect();
                let per_s: Vec<Summary> = (1..=s)
                    .map(|m| Summary::of(&outs.iter().map(|o| at(o, m)).collect::<Vec<_>>()))
                    .collect();
                let pm: Vec<f64> = outs.iter().map(|o| o.power_mean[c * nk + k]).collect();
                let mut b_pairs = Vec::with_capacity(outs.len());
                let mut r_pairs = Vec::with_capacity(outs.len());
                let (mut bm, mut rm) = (Vec::new(), Vec::new());
                let (mut sum_p, mut sum_x) = (0.0, 0.0);
                for (j, o) in outs.iter().enumerate() {
                    let i = g.clusters[j];
                    let t = at(o, 0);
                    let zero = |what: &str, v: f64| {
                        Error::invalid(
                            "power spectra",
                            format!(
                                "cluster {i} (id {}), channel '{name}', k bin {k}: {what} = {v}, so b(k) and r(k) \
                                 are undefined (a constant map?)",
                                meta[i].id
                            ),
                        )
                    };
                    if t <= 0.0 {
                        return Err(zero("P_true", t));
                    }
                    let mut bv = Vec::with_capacity(s);
                    let mut rv = Vec::with_capacity(s);
                    for m in 1..=s {
                        let p = at(o, m);
                        if p <= 0.0 {
                            return Err(zero(&format!("P of sample {}", m - 1), p));
                        }
                        let x = o.cross[((m - 1) * nc + c) * nk + k];
                        bv.push((p / t).sqrt());
                        rv.push(x / (p * t).sqrt());
                        sum_p += p;
                        sum_x += x;
                    }
                    b_pairs.push(bv);
                    r_pairs.push(rv);
                    let p = o.power_mean[c * nk + k];
                    if p <= 0.0 {
                        return Err(zero("P of the posterior-mean map", p));
                    }
                    bm.push((p / t).sqrt());
                    rm.push(o.cross_mean[c * nk + k] / (p * t).sqrt());
                }
                let flat = |v: &[Vec<f64>]| v.iter().flatten().copied().collect::<Vec<f64>>();
                let mean_t = pt.iter().sum::<f64>() / pt.len() as f64;
                let npairs = (outs.len() * s) as f64;
                let (mp, mx) = (sum_p / npairs, sum_x / npairs);
                stats[0].push(Summary::of(&pt));
                stats[1].push(Summary::average(&per_s));
                stats[2].push(Summary::of(&pm));
                stats[3].push(Summary::of(&flat(&b_pairs)));
                stats[4].push(Summary::of(&flat(&r_pairs)));
                stats[5].push(Summary::of(&bm));
                stats[6].push(Summary::of(&rm));
                bsem.push(sem_over_clusters(&b_pairs));
                rsem.push(sem_over_clusters(&r_pairs));
                bst.push((mp / mean_t).sqrt());
                rst.push(mx / (mp * mean_t).sqrt());
            }
            let [t, sm, mm, b, r, bmm, rmm] = stats.map(BinStats::from_summaries);
            rows.push(SpectraRow {
                key: key(g, name),
                truth: t,
                samples: sm,
                mean_map: mm,
                bias: b,
                bias_sem: bsem,
                corr: r,
                corr_sem: rsem,
                bias_mean_map: bmm,
                corr_mean_map: rmm,
                bias_stacked: bst,
                corr_stacked: rst,
            });
        }
    }
    Ok(rows)
}

fn aperture_rows(
    outs_all: &[ClusterOut],
    groups: &[GroupInfo],
    channels: &[String],
    meta: &[ClusterMeta],
    s: usize,
    levels: &[f64],
) -> Result<Vec<ApertureRow>> {
    let nc = channels.len();
    let mut rows = Vec::new();
    for g in groups {
        for (c, name) in channels.iter().enumerate() {
            for (a, aperture) in ["R500c", "R200c"].into_iter().enumerate() {
                let at = |o: &ClusterOut, m: usize| o.aper[(m * nc + c) * 2 + a];
                let mut truth = Vec::new();
                let mut rel = Vec::new();
                let mut rel_mean = Vec::new();
                let mut cal = CalibAccumulator::new(s, levels);
                for &i in &g.clusters {
                    let o = &outs_all[i];
                    let t = at(o, 0);
                    if t == 0.0 {
                        return Err(Error::invalid(
                            "aperture masses",
                            format!(
                                "cluster {i} (id {}), channel '{name}': the true mass within {aperture} is 0, so \
                                 relative errors are undefined",
                                meta[i].id
                            ),
                        ));
                    }
                    let m: Vec<f64> = (1..=s).map(|m| at(o, m)).collect();
                    truth.push(t);
                    rel.push(m.iter().map(|x| (x - t) / t).collect::<Vec<f64>>());
                    rel_mean.push((m.iter().sum::<f64>() / s as f64 - t) / t);
                    cal.push(t, &m, true);
                }
                let flat: Vec<f64> = rel.iter().flatten().copied().collect();
                rows.push(ApertureRow {
                    key: key(g, name),
                    aperture: aperture.into(),
                    truth: Summary::of(&truth),
                    rel_err: Summary::of(&flat),
                    rel_err_sem: sem_over_clusters(&rel),
                    rel_err_mean_map: Summary::of(&rel_mean),
                    calibration: cal.finish(),
                });
            }
        }
    }
    Ok(rows)
}

fn pixel_rows(
    outs_all: &[ClusterOut],
    groups: &[GroupInfo],
    channels: &[String],
    d: Dims,
    levels: &[f64],
) -> Vec<PixelRow> {
    let mut rows = Vec::new();
    for g in groups {
        for (c, name) in channels.iter().enumerate() {
            let mut cal = CalibAccumulator::new(d.s, levels);
            let mut spread = SpreadAccumulator::new(d.s);
            let mut sq = [0.0; 4];
            for &i in &g.clusters {
                let o = &outs_all[i];
                cal.merge(&o.pix_cal[c]);
                spread.merge(&o.pix_spread[c]);
                for (a, b) in sq.iter_mut().zip(&o.sq_err[c]) {
                    *a += b;
                }
            }
            let n = (g.clusters.len() * d.hw) as f64;
            rows.push(PixelRow {
                key: key(g, name),
                mse_samples: sq[0] / n,
                mse_mean_map: sq[1] / n,
                mse_log10_samples: sq[2] / n,
                mse_log10_mean: sq[3] / n,
                calibration: cal.finish(),
                spread_skill: spread.finish(),
            });
        }
    }
    rows
}

fn profile_cal_rows(
    prof: &[&[f64]],
    groups: &[GroupInfo],
    channels: &[String],
    s: usize,
    nb: usize,
    levels: &[f64],
) -> Vec<ProfileCalRow> {
    let nc = channels.len();
    let mut rows = Vec::new();
    for g in groups {
        for (c, name) in channels.iter().enumerate() {
            let mut pooled = CalibAccumulator::new(s, levels);
            let mut per_bin = Vec::with_capacity(nb);
            for b in 0..nb {
                let mut acc = CalibAccumulator::new(s, levels);
                for &i in &g.clusters {
                    let o = prof[i];
                    let t = o[c * nb + b];
                    let m: Vec<f64> = (1..=s).map(|m| o[(m * nc + c) * nb + b]).collect();
                    acc.push(t, &m, true);
                }
                pooled.merge(&acc);
                per_bin.push(acc.coverage());
            }
            rows.push(ProfileCalRow {
                key: key(g, name),
                pooled: pooled.finish(),
                coverage_per_bin: per_bin,
            });
        }
    }
    rows
}

// ---------------------------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------------------------

/// Evaluates posterior samples against the truth.
///
/// - `truth`: `[N, C, H, W]`, `samples`: `[N, S, C, H, W]`, physical units, row-major; `shape` = `[N, S, C, H, W]`.
/// - `meta`: one row per cluster (R200c, R500c and `mass_bin` are used); `geometry`: the maps' geometry
///   (centre at the geometric map centre); `channels`: C names, used in reports and error messages.
///
/// Errors (never NaN results): wrong shapes or lengths, S < 2, NaN/Inf pixels or non-positive pixels without
/// [`EvalOptions::log_floors`] (the message names cluster, sample, channel and pixel), missing R200c/R500c, truth
/// maps without spread or power where a ratio needs it. Runs in parallel over clusters on rayon's global pool.
pub fn evaluate(
    truth: &[f32],
    samples: &[f32],
    shape: [usize; 5],
    meta: &[ClusterMeta],
    geometry: &Geometry,
    channels: &[String],
    opts: &EvalOptions,
) -> Result<Evaluation> {
    let start = Instant::now();
    let d = check_shapes(truth, samples, shape, meta, geometry, channels)?;
    check_options(opts, channels)?;
    check_meta(meta)?;
    check_values(truth, samples, d, meta, channels, opts.log_floors.is_none())?;
    let mut notes = Vec::new();

    let grid_half = 0.5 * geometry.side_kpc;
    let max_r200 = meta.iter().map(|m| m.r200c_kpc).fold(0.0, f64::max);
    let (edges_r200, dropped_r200) = clip_edges(&opts.edges_r200c, max_r200, grid_half)?;
    let (edges_kpc, dropped_kpc) = clip_edges(&opts.edges_kpc, 1.0, grid_half)?;
    for (unit, dropped) in [("R200c", &dropped_r200), ("kpc", &dropped_kpc)] {
        if !dropped.is_empty() {
            notes.push(format!(
                "radial edges {dropped:?} ({unit}) dropped: their annuli leave the map (half side {grid_half} kpc, \
                 largest R200c {max_r200:.0} kpc)"
            ));
        }
    }
    let outside = meta.iter().filter(|m| m.r200c_kpc > grid_half).count();
    if outside > 0 {
        notes.push(format!(
            "{outside} cluster(s) have R200c beyond the half side ({grid_half} kpc): their R200c aperture masses \
             cover only the part of the disk inside the map"
        ));
    }
    let kpc_weights = AnnulusWeights::new(geometry, &edges_kpc)?;
    let kbins = SpectrumBins::new(geometry)?;
    let shared = Shared {
        d,
        geometry,
        edges_r200: &edges_r200,
        kpc_weights: &kpc_weights,
        kbins: &kbins,
        floors: opts.log_floors.as_deref(),
        levels: &opts.levels,
        thin: opts.rank_thin,
    };

    let outs: Vec<ClusterOut> = (0..d.n)
        .into_par_iter()
        .map_init(
            || Fft2::new(d.side),
            |fft, i| cluster_pass(&shared, fft, i, &meta[i], truth, samples),
        )
        .collect::<Result<_>>()?;

    let groups = make_groups(meta, &mut notes);
    let s = d.s;
    let p200: Vec<&[f64]> = outs.iter().map(|o| o.prof_r200.as_slice()).collect();
    let pkpc: Vec<&[f64]> = outs.iter().map(|o| o.prof_kpc.as_slice()).collect();
    let nb200 = edges_r200.len() - 1;
    let profiles_r200c = profile_report(
        "R200c",
        edges_r200,
        dropped_r200,
        &p200,
        &groups,
        channels,
        s,
        opts,
        &mut notes,
    )?;
    let profiles_kpc = profile_report(
        "kpc",
        edges_kpc,
        dropped_kpc,
        &pkpc,
        &groups,
        channels,
        s,
        opts,
        &mut notes,
    )?;
    let spectra = SpectraReport {
        rows: spectra_rows(&outs, &groups, channels, meta, s, kbins.len())?,
        bins: kbins,
    };
    let apertures = aperture_rows(&outs, &groups, channels, meta, s, &opts.levels)?;
    let pixels = pixel_rows(&outs, &groups, channels, d, &opts.levels);
    let profile_calibration = profile_cal_rows(&p200, &groups, channels, s, nb200, &opts.levels);
    let per_cluster = collect_per_cluster(&outs, meta, d);

    Ok(Evaluation {
        schema: SCHEMA.into(),
        n_clusters: d.n,
        n_samples: s,
        channels: channels.to_vec(),
        geometry: geometry.clone(),
        options: opts.clone(),
        groups,
        profiles_r200c,
        profiles_kpc,
        spectra,
        apertures,
        pixels,
        profile_calibration,
        notes,
        seconds: start.elapsed().as_secs_f64(),
        per_cluster,
    })
}

/// Splits `[m][c][b]` per-cluster arrays into truth `[N, C, B]` and samples `[N, S, C, B]`.
fn split_truth_samples(
    parts: impl Iterator<Item = Vec<f64>>,
    per_map: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut t, mut s) = (Vec::new(), Vec::new());
    for p in parts {
        t.extend_from_slice(&p[..per_map]);
        s.extend_from_slice(&p[per_map..]);
    }
    (t, s)
}

fn collect_per_cluster(outs: &[ClusterOut], meta: &[ClusterMeta], d: Dims) -> PerCluster {
    let first = &outs[0];
    let per_map = |len: usize| len / (d.s + 1);
    let (prt, prs) = split_truth_samples(
        outs.iter().map(|o| o.prof_r200.clone()),
        per_map(first.prof_r200.len()),
    );
    let (pkt, pks) = split_truth_samples(
        outs.iter().map(|o| o.prof_kpc.clone()),
        per_map(first.prof_kpc.len()),
    );
    let (pt, ps) = split_truth_samples(
        outs.iter().map(|o| o.power.clone()),
        per_map(first.power.len()),
    );
    let (at, asm) = split_truth_samples(
        outs.iter().map(|o| o.aper.clone()),
        per_map(first.aper.len()),
    );
    PerCluster {
        profiles_r200c_truth: prt,
        profiles_r200c_samples: prs,
        profiles_kpc_truth: pkt,
        profiles_kpc_samples: pks,
        power_truth: pt,
        power_samples: ps,
        cross: outs.iter().flat_map(|o| o.cross.iter().copied()).collect(),
        power_mean_map: outs
            .iter()
            .flat_map(|o| o.power_mean.iter().copied())
            .collect(),
        cross_mean_map: outs
            .iter()
            .flat_map(|o| o.cross_mean.iter().copied())
            .collect(),
        aperture_radii_kpc: meta
            .iter()
            .flat_map(|m| [m.r500c_kpc, m.r200c_kpc])
            .collect(),
        apertures_truth: at,
        apertures_samples: asm,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------------------------------

/// The paper's accuracy statements (\[H25\] abstract and §5) as thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClaimThresholds {
    /// Max |fractional error| of the mean radial profile over the claim range (5 %).
    pub profile_mean: f64,
    /// Max |fractional error| of the profile spread (std over clusters) over the claim range (10 %).
    pub profile_std: f64,
    /// Mean |b(k) − 1| over k < k_Nyq/2 (0.05).
    pub bias: f64,
    /// Mean |1 − r(k)| over k < k_Nyq/2 (0.05).
    pub corr: f64,
}

/// The paper's thresholds.
pub const PAPER_THRESHOLDS: ClaimThresholds = ClaimThresholds {
    profile_mean: 0.05,
    profile_std: 0.10,
    bias: 0.05,
    corr: 0.05,
};

/// One group and channel of [`Claims`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRow {
    #[serde(flatten)]
    pub key: RowKey,
    /// max over the claim range of |frac_mean| and |frac_std| (samples vs truth, R200c profiles).
    pub profile_mean_max_abs: f64,
    pub profile_std_max_abs: f64,
    /// Mean over k bins of |⟨b⟩(k) − 1| and |1 − ⟨r⟩(k)| (⟨⟩: mean over pairs), below and above k_Nyq/2.
    pub bias_low_k: f64,
    pub bias_high_k: f64,
    pub corr_low_k: f64,
    pub corr_high_k: f64,
    pub met_profile_mean: bool,
    pub met_profile_std: bool,
    pub met_bias: bool,
    pub met_corr: bool,
    /// All four met (the high-k numbers are reported, not judged).
    pub met: bool,
}

/// The paper's headline claims, per group and channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub thresholds: ClaimThresholds,
    /// Radial range of the profile claims \[R200c\] and the profile bins inside it.
    pub range_r200c: [f64; 2],
    pub n_profile_bins: usize,
    /// k_Nyq/2 \[rad Mpc⁻¹\]: bins with mean |k| below it are "low k".
    pub k_split: f64,
    pub rows: Vec<ClaimRow>,
    pub all_met: bool,
}

impl Claims {
    /// The claims of an evaluation with the paper's thresholds.
    pub fn from_evaluation(ev: &Evaluation) -> Result<Self> {
        Self::with_thresholds(ev, PAPER_THRESHOLDS)
    }

    /// The claims with custom thresholds.
    pub fn with_thresholds(ev: &Evaluation, thresholds: ClaimThresholds) -> Result<Self> {
        let [lo, hi] = ev.options.claim_range_r200c;
        let e = &ev.profiles_r200c.edges;
        let tol = 1e-9;
        let bins: Vec<usize> = (0..e.len() - 1)
            .filter(|&b| e[b] >= lo * (1.0 - tol) && e[b + 1] <= hi * (1.0 + tol))
            .collect();
        if bins.is_empty() {
            return Err(Error::Config(format!(
                "claims: no radial bin lies within {lo}–{hi} R200c (edges {e:?})"
            )));
        }
        let k_split = 0.5 * ev.spectra.bins.k_nyquist;
        let low: Vec<usize> = (0..ev.spectra.bins.len())
            .filter(|&k| ev.spectra.bins.k_eff[k] < k_split)
            .collect();
        let high: Vec<usize> = (0..ev.spectra.bins.len())
            .filter(|&k| ev.spectra.bins.k_eff[k] >= k_split)
            .collect();
        let mean_abs = |ks: &[usize], f: &dyn Fn(usize) -> f64| {
            ks.iter().map(|&k| f(k).abs()).sum::<f64>() / ks.len().max(1) as f64
        };
        let mut rows = Vec::new();
        for (p, sp) in ev.profiles_r200c.rows.iter().zip(&ev.spectra.rows) {
            let max_abs = |v: &[f64]| bins.iter().map(|&b| v[b].abs()).fold(0.0, f64::max);
            let pm = max_abs(&p.frac_mean);
            let ps = max_abs(&p.frac_std);
            let bl = mean_abs(&low, &|k| sp.bias.mean[k] - 1.0);
            let bh = mean_abs(&high, &|k| sp.bias.mean[k] - 1.0);
            let rl = mean_abs(&low, &|k| 1.0 - sp.corr.mean[k]);
            let rh = mean_abs(&high, &|k| 1.0 - sp.corr.mean[k]);
            let (m1, m2, m3, m4) = (
                pm <= thresholds.profile_mean,
                ps <= thresholds.profile_std,
                bl <= thresholds.bias,
                rl <= thresholds.corr,
            );
            rows.push(ClaimRow {
                key: p.key.clone(),
                profile_mean_max_abs: pm,
                profile_std_max_abs: ps,
                bias_low_k: bl,
                bias_high_k: bh,
                corr_low_k: rl,
                corr_high_k: rh,
                met_profile_mean: m1,
                met_profile_std: m2,
                met_bias: m3,
                met_corr: m4,
                met: m1 && m2 && m3 && m4,
            });
        }
        Ok(Claims {
            thresholds,
            range_r200c: [lo, hi],
            n_profile_bins: bins.len(),
            k_split,
            all_met: rows.iter().all(|r| r.met),
            rows,
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------------------------

impl Evaluation {
    /// The [`Claims`] of this evaluation with the paper's thresholds.
    pub fn claims(&self) -> Result<Claims> {
        Claims::from_evaluation(self)
    }

    /// Writes `evaluation.json`, `claims.json` and the `.npy` arrays listed in the module doc into `dir` (created
    /// if needed; existing files of the same names are replaced). Returns the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut written = Vec::new();
        let mut json =
            |name: &str, text: std::result::Result<String, serde_json::Error>| -> Result<()> {
                let path = dir.join(name);
                let text =
                    text.map_err(|e| Error::Config(format!("{name}: JSON encoding failed: {e}")))?;
                write_file_atomic(&path, format!("{text}\n").as_bytes())?;
                written.push(path);
                Ok(())
            };
        json("evaluation.json", serde_json::to_string_pretty(self))?;
        json("claims.json", serde_json::to_string_pretty(&self.claims()?))?;

        let (n, s, c) = (self.n_clusters, self.n_samples, self.channels.len());
        let b2 = self.profiles_r200c.edges.len() - 1;
        let bk = self.profiles_kpc.edges.len() - 1;
        let nk = self.spectra.bins.len();
        let g = self.groups.len();
        let pc = &self.per_cluster;
        let profile_stats = |rep: &ProfileReport| -> Vec<f64> {
            rep.rows
                .iter()
                .flat_map(|r| {
                    [&r.truth, &r.samples, &r.mean_map]
                        .into_iter()
                        .flat_map(|b| b.flat())
                })
                .collect()
        };
        let spectra_stats: Vec<f64> = self
            .spectra
            .rows
            .iter()
            .flat_map(|r| {
                [&r.truth, &r.samples, &r.mean_map, &r.bias, &r.corr]
                    .into_iter()
                    .flat_map(|b| b.flat())
            })
            .collect();
        let arrays: Vec<(&str, &[f64], Vec<usize>)> = vec![
            (
                "profiles_r200c_edges.npy",
                &self.profiles_r200c.edges,
                vec![b2 + 1],
            ),
            (
                "profiles_kpc_edges.npy",
                &self.profiles_kpc.edges,
                vec![bk + 1],
            ),
            (
                "profiles_r200c_truth.npy",
                &pc.profiles_r200c_truth,
                vec![n, c, b2],
            ),
            (
                "profiles_r200c_samples.npy",
                &pc.profiles_r200c_samples,
                vec![n, s, c, b2],
            ),
            (
                "profiles_kpc_truth.npy",
                &pc.profiles_kpc_truth,
                vec![n, c, bk],
            ),
            (
                "profiles_kpc_samples.npy",
                &pc.profiles_kpc_samples,
                vec![n, s, c, bk],
            ),
            ("spectra_k.npy", &self.spectra.bins.k_eff, vec![nk]),
            ("spectra_edges.npy", &self.spectra.bins.edges, vec![nk + 1]),
            ("spectra_truth.npy", &pc.power_truth, vec![n, c, nk]),
            ("spectra_samples.npy", &pc.power_samples, vec![n, s, c, nk]),
            ("spectra_cross.npy", &pc.cross, vec![n, s, c, nk]),
            ("spectra_mean_map.npy", &pc.power_mean_map, vec![n, c, nk]),
            (
                "spectra_cross_mean_map.npy",
                &pc.cross_mean_map,
                vec![n, c, nk],
            ),
            (
                "apertures_radii_kpc.npy",
                &pc.aperture_radii_kpc,
                vec![n, 2],
            ),
            ("apertures_truth.npy", &pc.apertures_truth, vec![n, c, 2]),
            (
                "apertures_samples.npy",
                &pc.apertures_samples,
                vec![n, s, c, 2],
            ),
        ];
        let stats: Vec<(&str, Vec<f64>, Vec<usize>)> = vec![
            (
                "profiles_r200c_stats.npy",
                profile_stats(&self.profiles_r200c),
                vec![g, c, 3, 4, b2],
            ),
            (
                "profiles_kpc_stats.npy",
                profile_stats(&self.profiles_kpc),
                vec![g, c, 3, 4, bk],
            ),
            ("spectra_stats.npy", spectra_stats, vec![g, c, 5, 4, nk]),
        ];
        for (name, data, shape) in arrays
            .into_iter()
            .chain(stats.iter().map(|(n, d, s)| (*n, d.as_slice(), s.clone())))
        {
            let path = dir.join(name);
            write_npy_f64(&path, data, &shape)?;
            written.push(path);
        }
        Ok(written)
    }
}
