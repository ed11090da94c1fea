//! Evaluation of posterior samples against the true maps: radial profiles, power spectra with bias b(k) and
//! cross-correlation r(k), aperture masses, pixel errors (the paper's metrics, \[H25\] §4) and posterior calibration
//! (docs/evaluation.md §6, beyond the paper). Pure numerics in physical units: no plotting, no I/O except
//! [`Evaluation::write`].
//!
//! One entry point, [`evaluate`], takes the truth `[N, C, H, W]` and samples `[N, S, C, H, W]` (physical units, as in
//! [`crate::sample::SampleResult`]), the clusters' metadata and the map geometry, and returns an [`Evaluation`]:
//! statistics per *group* — all clusters, then each of the four mass bins of docs/mock-clusters.md §8 that has at least
//! two clusters — and per channel. [`Claims`] condenses it into the paper's headline numbers with pass/fail flags.
//!
//! **How predictions are summarised** (the choices a reader of the numbers must know):
//! - *Samples* are summarised like the truth, one sample index at a time: the statistics over clusters of the maps
//!   of sample s (mean, std, percentiles) are computed exactly as for the truth, then averaged over s. Each sample set
//!   is then one realisation of the predicted population with the same N as the truth's, so the spreads compare like
//!   for like (the same finite-N estimator), which pooling clusters × samples would not guarantee.
//! - The *posterior-mean map* is the pixel-wise mean of the S physical samples. Profiles and aperture masses are
//!   linear in the map, so its profile is the mean of the sample profiles and its mean profile over clusters equals
//!   the samples' — only its spread differs (it is narrower: averaging removes posterior scatter).
//! - b(k) and r(k) are computed **per map pair** (sample s of cluster i against cluster i's truth) from the binned
//!   spectra of that pair, then averaged over pairs (mean, std, 16–84 %, standard error over clusters), as the paper
//!   shows averages of per-map ratios. Ratios of the averaged spectra ("stacked") are reported as well.
//! - Fractional errors (pred − true)/true of the mean profile and of its spread carry a bootstrap uncertainty:
//!   clusters are resampled with replacement ([`EvalOptions::bootstrap`] replicates, seeded), truth and prediction
//!   together, so the strong truth–prediction correlation is kept (independent standard errors would overstate the
//!   uncertainty of the difference).
//!
//! **Units.** Profiles in map units (M_sun kpc⁻² for Σ maps), radii in R200c or kpc; P(k) in (map unit)² Mpc² with
//! k = 2π/λ in rad Mpc⁻¹ (see [`spectra`]); aperture masses in map unit × kpc² (M_sun); calibration and log errors in
//! log10 (dex).
//!
//! **Files** written by [`Evaluation::write`] into one directory (all `.npy` are little-endian f64, C order; G
//! groups in the order of `evaluation.json`'s `groups`, C channels, B radial bins, K k bins, N clusters, S samples):
//!
//! | file | shape | content |
//! |---|---|---|
//! | `evaluation.json` | | the whole [`Evaluation`] except the per-cluster arrays |
//! | `claims.json` | | [`Claims`] |
//! | `profiles_r200c_edges.npy`, `profiles_kpc_edges.npy` | [B+1] | radial edges (R200c, kpc) |
//! | `profiles_r200c_truth.npy`, `profiles_kpc_truth.npy` | [N, C, B] | true profiles |
//! | `profiles_r200c_samples.npy`, `profiles_kpc_samples.npy` | [N, S, C, B] | sample profiles |
//! | `profiles_r200c_stats.npy`, `profiles_kpc_stats.npy` | [G, C, 3, 4, B] | (truth, samples, mean map) × (mean, std, p16, p84) |
//! | `spectra_k.npy` | [K] | mean \|k\| per bin \[rad Mpc⁻¹\] |
//! | `spectra_edges.npy` | [K+1] | k bin edges |
//! | `spectra_truth.npy`, `spectra_mean_map.npy` | [N, C, K] | P(k) of truth, of the posterior-mean map |
//! | `spectra_samples.npy`, `spectra_cross.npy` | [N, S, C, K] | P(k) of each sample, its cross spectrum with the truth |
//! | `spectra_cross_mean_map.npy` | [N, C, K] | cross spectrum of mean map and truth |
//! | `spectra_stats.npy` | [G, C, 5, 4, K] | (P_true, P_samples, P_mean_map, b, r) × (mean, std, p16, p84) |
//! | `apertures_radii_kpc.npy` | [N, 2] | (R500c, R200c) |
//! | `apertures_truth.npy` | [N, C, 2] | projected mass within (R500c, R200c) |
//! | `apertures_samples.npy` | [N, S, C, 2] | the same for each sample |

pub mod calibration;
pub mod claims;
mod inputs;
pub mod passes;
pub mod profiles;
pub mod report;
pub mod spectra;
pub mod stats;
#[cfg(test)]
mod tests;
mod write;

pub use calibration::{Calibration, RankHistogram, SpreadSkill, ZHistogram, NOMINAL_LEVELS};
pub use claims::{
    CalibrationTargets, ClaimRow, ClaimThresholds, Claims, CoverageCheck, PAPER_THRESHOLDS,
};
pub use passes::evaluate;
pub use profiles::{
    aperture_sum, default_edges_kpc, default_edges_r200c, disk_rect_area, disk_weights,
    AnnulusWeights,
};
pub use report::{
    ApertureRow, EvalOptions, Evaluation, GroupInfo, PerCluster, PixelRow, ProfileCalRow,
    ProfileReport, ProfileRow, RowKey, SpectraReport, SpectraRow,
};
pub use spectra::{bias, correlation, power_spectrum, Fft2, SpectrumBins};
pub use stats::{BinStats, Summary};
