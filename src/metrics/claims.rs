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

impl Evaluation {
    /// The [`Claims`] of this evaluation with the paper's thresholds.
    pub fn claims(&self) -> Result<Claims> {
        Claims::from_evaluation(self)
    }
}
