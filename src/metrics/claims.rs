//! [`Claims`]: the paper's headline accuracy statements (\[H25\] abstract and §5) checked against an
//! [`Evaluation`] with pass/fail flags per group and channel.

use serde::{Deserialize, Serialize};

use super::report::{Evaluation, RowKey};
use crate::{Error, Result};

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

/// What an honest posterior must show beyond the paper's claims (the truth is exchangeable with a sample):
/// r(k) between a sample and the truth equal to r(k) between two samples, and central intervals covering their
/// nominal share of pixels, profile bins and aperture masses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationTargets {
    /// Max mean over k < k_Nyq/2 of |r_sample-truth(k) − r_sample-sample(k)| (0.02).
    pub corr_gap: f64,
    /// Max |coverage − nominal| at each of `levels` (0.05).
    pub coverage: f64,
    /// Nominal levels judged (0.5, 0.68, 0.9); each must be among the evaluation's levels.
    pub levels: Vec<f64>,
}

impl Default for CalibrationTargets {
    fn default() -> Self {
        CalibrationTargets {
            corr_gap: 0.02,
            coverage: 0.05,
            levels: vec![0.5, 0.68, 0.9],
        }
    }
}

/// Coverage of one kind of item at the judged levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageCheck {
    /// Empirical coverage at each of [`CalibrationTargets::levels`].
    pub coverage: Vec<f64>,
    /// Max |coverage − nominal| over the levels.
    pub max_abs_error: f64,
    pub met: bool,
}

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
    /// Mean over k < k_Nyq/2 of |1 − r(k)| between two samples of the same cluster.
    pub corr_sample_sample_low_k: f64,
    /// Mean over k < k_Nyq/2 of |r_sample-truth(k) − r_sample-sample(k)|.
    pub corr_gap_low_k: f64,
    pub met_corr_gap: bool,
    /// Coverage of pixels (log10 values), of the R200c-binned profile bins over the claim range and of the
    /// projected masses within R500c and R200c.
    pub coverage_pixels: CoverageCheck,
    pub coverage_profiles: CoverageCheck,
    pub coverage_apertures: CoverageCheck,
    /// χ²/dof of the pixel rank histogram against uniform (thinned pixels; pixels are correlated, so read it as a
    /// shape measure) and its edge ratio (> 1: ∪-shaped, over-confident).
    pub pixel_rank_chi2_per_dof: f64,
    pub pixel_rank_edge_ratio: f64,
    /// The gap and all three coverages met.
    pub calibrated: bool,
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
    pub calibration_targets: CalibrationTargets,
    pub all_calibrated: bool,
}

impl Claims {
    /// The claims of an evaluation with the paper's thresholds.
    pub fn from_evaluation(ev: &Evaluation) -> Result<Self> {
        Self::with_thresholds(ev, PAPER_THRESHOLDS)
    }

    /// The claims with custom thresholds (and the default [`CalibrationTargets`]).
    pub fn with_thresholds(ev: &Evaluation, thresholds: ClaimThresholds) -> Result<Self> {
        Self::with_targets(ev, thresholds, CalibrationTargets::default())
    }

    /// The claims with custom thresholds and calibration targets.
    pub fn with_targets(
        ev: &Evaluation,
        thresholds: ClaimThresholds,
        targets: CalibrationTargets,
    ) -> Result<Self> {
        let level_index: Vec<usize> = targets
            .levels
            .iter()
            .map(|p| {
                ev.options
                    .levels
                    .iter()
                    .position(|q| (q - p).abs() < 1e-9)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "calibration target level {p} is not among the evaluated levels {:?}",
                            ev.options.levels
                        ))
                    })
            })
            .collect::<Result<_>>()?;
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
            let rss = &sp.corr_sample_sample.mean;
            let rss_l = mean_abs(&low, &|k| 1.0 - rss[k]);
            let gap = mean_abs(&low, &|k| sp.corr.mean[k] - rss[k]);
            let check = |coverages: &[&[f64]]| {
                let coverage: Vec<f64> = level_index
                    .iter()
                    .map(|&l| coverages.iter().map(|c| c[l]).sum::<f64>() / coverages.len() as f64)
                    .collect();
                let max_abs_error = coverage
                    .iter()
                    .zip(&targets.levels)
                    .map(|(c, p)| (c - p).abs())
                    .fold(0.0, f64::max);
                CoverageCheck {
                    met: max_abs_error <= targets.coverage,
                    coverage,
                    max_abs_error,
                }
            };
            let same = |k: &RowKey| k.group == p.key.group && k.channel == p.key.channel;
            let px = ev
                .pixels
                .iter()
                .find(|r| same(&r.key))
                .ok_or_else(|| missing("pixel", &p.key))?;
            let pc = ev
                .profile_calibration
                .iter()
                .find(|r| same(&r.key))
                .ok_or_else(|| missing("profile calibration", &p.key))?;
            let in_range: Vec<&[f64]> = bins
                .iter()
                .map(|&b| pc.coverage_per_bin[b].as_slice())
                .collect();
            let ap: Vec<&[f64]> = ev
                .apertures
                .iter()
                .filter(|r| same(&r.key))
                .map(|r| r.calibration.coverage.as_slice())
                .collect();
            if ap.is_empty() {
                return Err(missing("aperture", &p.key));
            }
            let (cov_px, cov_pr, cov_ap) = (
                check(&[px.calibration.coverage.as_slice()]),
                check(&in_range),
                check(&ap),
            );
            let met_gap = gap <= targets.corr_gap;
            let calibrated = met_gap && cov_px.met && cov_pr.met && cov_ap.met;
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
                corr_sample_sample_low_k: rss_l,
                corr_gap_low_k: gap,
                met_corr_gap: met_gap,
                coverage_pixels: cov_px,
                coverage_profiles: cov_pr,
                coverage_apertures: cov_ap,
                pixel_rank_chi2_per_dof: px.calibration.ranks.chi2_per_dof,
                pixel_rank_edge_ratio: px.calibration.ranks.edge_ratio,
                calibrated,
            });
        }
        Ok(Claims {
            thresholds,
            range_r200c: [lo, hi],
            n_profile_bins: bins.len(),
            k_split,
            all_met: rows.iter().all(|r| r.met),
            all_calibrated: rows.iter().all(|r| r.calibrated),
            calibration_targets: targets,
            rows,
        })
    }
}

fn missing(what: &str, key: &RowKey) -> Error {
    Error::Config(format!(
        "claims: the evaluation has no {what} row for group {}, channel '{}'",
        key.group, key.channel
    ))
}

impl Evaluation {
    /// The [`Claims`] of this evaluation with the paper's thresholds.
    pub fn claims(&self) -> Result<Claims> {
        Claims::from_evaluation(self)
    }
}
