//! Small descriptive statistics shared by every metric: mean, sample standard deviation, percentiles, a χ² tail
//! probability, and a seeded bootstrap over clusters.
//!
//! One convention everywhere, so numbers from different metrics compare: standard deviations use `n − 1`
//! (ddof = 1) and are 0 for a single value; percentiles interpolate linearly between order statistics at positions
//! `q (n − 1)` (numpy's default `linear` method).

use crate::data::rng::ln_gamma;
use serde::{Deserialize, Serialize};

/// Mean, standard deviation (ddof = 1) and the 16th / 84th percentiles of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mean: f64,
    pub std: f64,
    pub p16: f64,
    pub p84: f64,
}

impl Summary {
    /// Statistics of `values` (which must be non-empty and finite; callers validate their inputs).
    pub fn of(values: &[f64]) -> Self {
        let (mean, std) = mean_std(values);
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Summary {
            mean,
            std,
            p16: percentile_sorted(&sorted, 0.16),
            p84: percentile_sorted(&sorted, 0.84),
        }
    }

    /// The field-wise average of several summaries (e.g. one per posterior sample index).
    pub fn average(items: &[Summary]) -> Self {
        let n = items.len().max(1) as f64;
        let sum = |f: fn(&Summary) -> f64| items.iter().map(f).sum::<f64>() / n;
        Summary {
            mean: sum(|s| s.mean),
            std: sum(|s| s.std),
            p16: sum(|s| s.p16),
            p84: sum(|s| s.p84),
        }
    }
}

/// Per-bin [`Summary`]s stored as four parallel arrays (one entry per radial or k bin), the layout Python
/// users expect in JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BinStats {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub p16: Vec<f64>,
    pub p84: Vec<f64>,
}

impl BinStats {
    /// Collects per-bin summaries.
    pub fn from_summaries(items: impl IntoIterator<Item = Summary>) -> Self {
        let mut out = BinStats::default();
        for s in items {
            out.mean.push(s.mean);
            out.std.push(s.std);
            out.p16.push(s.p16);
            out.p84.push(s.p84);
        }
        out
    }

    /// The four arrays in the order `[mean, std, p16, p84]`, flattened (for `.npy` output).
    pub fn flat(&self) -> Vec<f64> {
        [&self.mean, &self.std, &self.p16, &self.p84]
            .into_iter()
            .flatten()
            .copied()
            .collect()
    }
}

/// Mean and standard deviation (ddof = 1; 0 for fewer than two values) in one pass of Welford's update.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let (mut mean, mut m2) = (0.0, 0.0);
    for (k, &v) in values.iter().enumerate() {
        let d = v - mean;
        mean += d / (k + 1) as f64;
        m2 += d * (v - mean);
    }
    let n = values.len();
    let std = if n > 1 {
        (m2 / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    (mean, std)
}

/// The `q`-quantile (0 ≤ q ≤ 1) of ascending `sorted` values: linear interpolation at position `q (n − 1)`.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let h = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
        }
    }
}

/// Upper tail probability P(χ²_dof > x) = Q(dof/2, x/2), the regularised upper incomplete gamma function
/// (series for x < a + 1, Lentz continued fraction otherwise; Numerical Recipes §6.2), relative accuracy ~1e-12.
pub fn chi2_sf(x: f64, dof: usize) -> f64 {
    if dof == 0 || x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(0.5 * dof as f64, 0.5 * x)
}

fn gamma_q(a: f64, x: f64) -> f64 {
    let ln_pre = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // P(a, x) = e^{−x} x^a / Γ(a+1) Σ x^n / ((a+1)…(a+n)).
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * ln_pre.exp()).clamp(0.0, 1.0)
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (ln_pre.exp() * h).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_numpy_conventions() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0, 5.0]);
        assert_eq!(s.mean, 3.0);
        assert!((s.std - 2.5f64.sqrt()).abs() < 1e-15);
        // numpy.percentile([1..5], 16) = 1 + 0.64 = 1.64; 84 → 4.36.
        assert!((s.p16 - 1.64).abs() < 1e-12 && (s.p84 - 4.36).abs() < 1e-12);
        assert_eq!(Summary::of(&[7.0]).std, 0.0);
    }

    #[test]
    fn chi2_tail_reference_values() {
        // scipy.stats.chi2.sf: (3.84146, 1) = 0.05, (18.307, 10) = 0.05, (2, 2) = e^{-1}, (100, 80) = 0.0645704 (series check).
        assert!((chi2_sf(3.841_458_820_694_124, 1) - 0.05).abs() < 1e-9);
        assert!((chi2_sf(18.307_038_053_275_146, 10) - 0.05).abs() < 1e-9);
        assert!((chi2_sf(2.0, 2) - (-1.0f64).exp()).abs() < 1e-12);
        assert!((chi2_sf(100.0, 80) - 0.064_570_369).abs() < 1e-8);
        assert_eq!(chi2_sf(0.0, 3), 1.0);
    }
}
