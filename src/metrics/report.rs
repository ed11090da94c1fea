//! What [`super::evaluate`] returns: the [`Evaluation`] with its report rows, one per group (all clusters, then each
//! populated mass bin) and channel, the per-cluster arrays behind them, and the options that produced it.

use serde::{Deserialize, Serialize};

use super::calibration::{Calibration, SpreadSkill, NOMINAL_LEVELS};
use super::profiles::{default_edges_kpc, default_edges_r200c};
use super::spectra::SpectrumBins;
use super::stats::{BinStats, Summary};
use crate::data::dataset::MapGeometry;

/// Schema tag of `evaluation.json`.
pub const SCHEMA: &str = "clustermaps-metrics-1";

/// Settings of [`super::evaluate`]; `Default` gives the documented defaults (also for fields missing when
/// deserialising).
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
    /// Inner edges \[R200c\] of the radial zones of the pixel calibration (`PixelRow::coverage_per_zone`); the
    /// first zone starts at the centre and the last runs to the map's edge (default 0.1, 0.25, 0.5, 1).
    pub pixel_zones_r200c: Vec<f64>,
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
            pixel_zones_r200c: vec![0.1, 0.25, 0.5, 1.0],
        }
    }
}

/// A group of clusters the statistics are computed over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// `all` or `bin0` … `bin3`.
    pub label: String,
    /// The mass bin (docs/mock-clusters.md §8), `None` for all clusters.
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
    /// r(k) between two samples of the same cluster, over all clusters and sample pairs s < s′, and its standard
    /// error over clusters. For a calibrated posterior the truth is exchangeable with a sample, so `corr` and
    /// `corr_sample_sample` have the same expectation: r < 1 then measures the posterior's honest width, and
    /// `corr` < `corr_sample_sample` says the samples agree with each other more than with the truth.
    pub corr_sample_sample: BinStats,
    pub corr_sample_sample_sem: Vec<f64>,
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
    /// Radial zones of the pixel calibration \[R200c\]: `[0, e₁)`, `[e₁, e₂)`, …, `[e_last, ∞)` with the edges of
    /// `EvalOptions::pixel_zones_r200c`; coverage per zone `[zone][level]` and the share of pixels in each zone.
    pub zone_edges_r200c: Vec<f64>,
    pub coverage_per_zone: Vec<Vec<f64>>,
    pub pixel_share_per_zone: Vec<f64>,
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

/// Everything [`super::evaluate`] measures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub schema: String,
    pub n_clusters: usize,
    pub n_samples: usize,
    pub channels: Vec<String>,
    pub geometry: MapGeometry,
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
    /// Wall time of [`super::evaluate`] \[s\].
    pub seconds: f64,
    #[serde(skip)]
    pub per_cluster: PerCluster,
}
