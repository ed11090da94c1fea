//! Posterior calibration from S samples per cluster (docs/evaluation.md §6, beyond the paper): interval
//! coverage, rank histograms, spread–skill and z-scores.
//!
//! **Coverage from ranks.** With S samples the truth falls into one of S + 1 rank cells (r = number of samples below
//! it). For exchangeable truth and samples (a calibrated posterior), r is uniform on 0..=S whatever the distribution,
//! and the probability-integral transform u = (r + U)/(S + 1), U ~ U(0, 1), is exactly uniform on \[0, 1\]. The
//! empirical coverage of the central interval p is the mean over items of the fraction of the cell \[r/(S+1),
//! (r+1)/(S+1)\] inside \[(1 − p)/2, (1 + p)/2\] — the expected coverage of the interval whose ends are the order
//! statistics at the plotting positions (k+1)/(S+1), linearly interpolated. We use this rank form rather than intervals
//! between interpolated sample quantiles (the obvious reading of "central interval"), because those are biased for
//! small S: for S = 4 and a perfectly calibrated Gaussian posterior, numpy-style quantiles q((S−1)α) give 32 % coverage
//! at p = 0.5 and 58 % at p = 0.95, plotting-position quantiles q(α(S+1) − 1) give 53 % at p = 0.5 and saturate at
//! (S−1)/(S+1) = 60 % (simulated, 50 000 draws). The rank form is exactly nominal in expectation for every S ≥ 1 and
//! any distribution, needs no tail extrapolation and is invariant under the monotone transform between physical and log
//! space. Ties (truth equal to k samples) spread the item uniformly over the k + 1 tied ranks, for coverage and for the
//! rank histogram alike.
//!
//! *Limitation:* S samples cannot resolve tails beyond the extreme rank cells (width 1/(S+1)), so at p close to 1
//! an over-confident posterior looks only mildly under-covered (S = 4, samples half as wide: 84 % at p = 0.9);
//! the rank histogram's end bins show it plainly. Use large S for tail coverage.
//!
//! **Rank histograms** count r over items (fractional for ties); flatness is χ² against uniform with S degrees of
//! freedom, with its tail probability. Pixels are correlated, so χ²/dof ≫ 1 on many pixels can reflect correlation
//! as well as mis-calibration; read the shape: ∪ (`edge_ratio` > 1) = over-confident (samples too narrow),
//! ∩ (`edge_ratio` < 1) = over-dispersed, a slope (`mean_rank_offset` ≠ 0) = bias (> 0: truth above the samples).
//!
//! **Spread–skill and z-scores** are computed in log10 space (the network's space up to an affine map, under which
//! both are invariant): skill = RMSE of the posterior mean, spread = √(mean over items of the sample variance,
//! ddof = 1), ratio = skill / (√((S+1)/S) spread) ≈ 1 when calibrated (the factor accounts for the finite
//! ensemble, Fortin et al. 2014). z = (x_true − m)/(s √((S+1)/S)) with m, s the sample mean and std (ddof = 1)
//! follows Student's t with S − 1 dof for a calibrated Gaussian posterior (→ N(0, 1) for large S).

use serde::{Deserialize, Serialize};

use super::stats::chi2_sf;
use crate::{Error, Result};

/// Nominal central-interval probabilities reported by default.
pub const NOMINAL_LEVELS: [f64; 4] = [0.5, 0.68, 0.9, 0.95];

/// Rank bounds of `truth` among `samples`: (number strictly below, number below or equal). Without ties the two
/// differ by 0 and the rank is the first.
pub fn rank_bounds(truth: f64, samples: &[f64]) -> (usize, usize) {
    let lo = samples.iter().filter(|&&s| s < truth).count();
    let le = samples.iter().filter(|&&s| s <= truth).count();
    (lo, le)
}

/// Fraction of the truth's PIT range \[lo/(S+1), (le+1)/(S+1)\] inside the central interval of probability `p`.
pub fn covered_fraction(lo: usize, le: usize, n_samples: usize, p: f64) -> f64 {
    let m = (n_samples + 1) as f64;
    let (u0, u1) = (lo as f64 / m, (le + 1) as f64 / m);
    let (a, b) = (0.5 * (1.0 - p), 0.5 * (1.0 + p));
    ((u1.min(b) - u0.max(a)).max(0.0)) / (u1 - u0)
}

/// Checks the number of samples allows calibration (S ≥ 2).
pub fn check_samples(n_samples: usize) -> Result<()> {
    if n_samples < 2 {
        return Err(Error::Config(format!(
            "calibration needs at least 2 posterior samples per cluster, got S = {n_samples}"
        )));
    }
    Ok(())
}

/// Running coverage and rank counts over items (pixels, profile bins, apertures), mergeable across threads.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibAccumulator {
    n_samples: usize,
    levels: Vec<f64>,
    covered: Vec<f64>,
    n_cov: f64,
    ranks: Vec<f64>,
}

impl CalibAccumulator {
    /// An empty accumulator for `n_samples` samples and the nominal `levels`.
    pub fn new(n_samples: usize, levels: &[f64]) -> Self {
        CalibAccumulator {
            n_samples,
            levels: levels.to_vec(),
            covered: vec![0.0; levels.len()],
            n_cov: 0.0,
            ranks: vec![0.0; n_samples + 1],
        }
    }

    /// Adds one item to the coverage and, if `rank`, to the rank histogram.
    pub fn push(&mut self, truth: f64, samples: &[f64], rank: bool) {
        let (lo, le) = rank_bounds(truth, samples);
        for (c, &p) in self.covered.iter_mut().zip(&self.levels) {
            *c += covered_fraction(lo, le, self.n_samples, p);
        }
        self.n_cov += 1.0;
        if rank {
            let w = 1.0 / (le - lo + 1) as f64;
            for r in &mut self.ranks[lo..=le] {
                *r += w;
            }
        }
    }

    /// Adds another accumulator's counts (same S and levels).
    pub fn merge(&mut self, other: &CalibAccumulator) {
        for (a, b) in self.covered.iter_mut().zip(&other.covered) {
            *a += b;
        }
        for (a, b) in self.ranks.iter_mut().zip(&other.ranks) {
            *a += b;
        }
        self.n_cov += other.n_cov;
    }

    /// Number of items added.
    pub fn items(&self) -> f64 {
        self.n_cov
    }

    /// Empirical coverage per level (0 when no items were added).
    pub fn coverage(&self) -> Vec<f64> {
        self.covered
            .iter()
            .map(|c| {
                if self.n_cov > 0.0 {
                    c / self.n_cov
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Coverage and rank histogram.
    pub fn finish(&self) -> Calibration {
        Calibration {
            levels: self.levels.clone(),
            n_items: self.n_cov as u64,
            coverage: self.coverage(),
            ranks: RankHistogram::from_counts(self.ranks.clone()),
        }
    }
}

/// Coverage per nominal level and the rank histogram of one set of items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Nominal central-interval probabilities p.
    pub levels: Vec<f64>,
    /// Items in the coverage (the rank histogram may use a thinned subset, see its `n`).
    pub n_items: u64,
    /// Empirical coverage per level.
    pub coverage: Vec<f64>,
    pub ranks: RankHistogram,
}

/// Histogram of the truth's rank among S samples (S + 1 bins) and its flatness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankHistogram {
    /// Counts of rank 0..=S (fractional where ties were split).
    pub counts: Vec<f64>,
    /// Total count.
    pub n: f64,
    /// Σ (O − E)²/E against the uniform E = n/(S+1).
    pub chi2: f64,
    /// Degrees of freedom S.
    pub dof: usize,
    pub chi2_per_dof: f64,
    /// P(χ²_dof > chi2) (1 for an empty histogram).
    pub p_value: f64,
    /// (counts\[0\] + counts\[S\]) / (2E): > 1 ∪-shaped (over-confident), < 1 ∩-shaped (over-dispersed).
    pub edge_ratio: f64,
    /// mean rank / S − ½: > 0 the truth tends to lie above the samples, < 0 below.
    pub mean_rank_offset: f64,
}

impl RankHistogram {
    /// Statistics of rank counts 0..=S.
    pub fn from_counts(counts: Vec<f64>) -> Self {
        let s = counts.len() - 1;
        let n: f64 = counts.iter().sum();
        if n <= 0.0 {
            return RankHistogram {
                counts,
                n: 0.0,
                chi2: 0.0,
                dof: s,
                chi2_per_dof: 0.0,
                p_value: 1.0,
                edge_ratio: 1.0,
                mean_rank_offset: 0.0,
            };
        }
        let e = n / (s + 1) as f64;
        let chi2: f64 = counts.iter().map(|o| (o - e) * (o - e) / e).sum();
        let mean_rank = counts
            .iter()
            .enumerate()
            .map(|(r, c)| r as f64 * c)
            .sum::<f64>()
            / n;
        RankHistogram {
            chi2,
            dof: s,
            chi2_per_dof: chi2 / s as f64,
            p_value: chi2_sf(chi2, s),
            edge_ratio: (counts[0] + counts[s]) / (2.0 * e),
            mean_rank_offset: mean_rank / s as f64 - 0.5,
            counts,
            n,
        }
    }
}

/// Running sums for spread–skill and z-scores in log space, mergeable.
#[derive(Debug, Clone, PartialEq)]
pub struct SpreadAccumulator {
    n_samples: usize,
    n: f64,
    sq_err: f64,
    var: f64,
    z: ZAccumulator,
}

/// z-score histogram edges: −5 to 5 in steps of 0.25.
pub const Z_EDGES: (f64, f64, usize) = (-5.0, 5.0, 40);

#[derive(Debug, Clone, PartialEq)]
struct ZAccumulator {
    counts: Vec<u64>,
    under: u64,
    over: u64,
    n: u64,
    zero_spread: u64,
    sum: f64,
    sum_sq: f64,
    within1: u64,
    within2: u64,
}

impl SpreadAccumulator {
    /// An empty accumulator for `n_samples` (≥ 2) samples.
    pub fn new(n_samples: usize) -> Self {
        SpreadAccumulator {
            n_samples,
            n: 0.0,
            sq_err: 0.0,
            var: 0.0,
            z: ZAccumulator {
                counts: vec![0; Z_EDGES.2],
                under: 0,
                over: 0,
                n: 0,
                zero_spread: 0,
                sum: 0.0,
                sum_sq: 0.0,
                within1: 0,
                within2: 0,
            },
        }
    }

    /// Adds one item: the truth and the samples, both already in log space.
    pub fn push(&mut self, truth: f64, samples: &[f64]) {
        let s = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / s;
        let var = samples.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (s - 1.0);
        let err = truth - mean;
        self.n += 1.0;
        self.sq_err += err * err;
        self.var += var;
        let z = &mut self.z;
        if var > 0.0 {
            let zv = err / (var * (s + 1.0) / s).sqrt();
            z.n += 1;
            z.sum += zv;
            z.sum_sq += zv * zv;
            z.within1 += (zv.abs() < 1.0) as u64;
            z.within2 += (zv.abs() < 2.0) as u64;
            let (lo, hi, nb) = Z_EDGES;
            if zv < lo {
                z.under += 1;
            } else if zv >= hi {
                z.over += 1;
            } else {
                let b = (((zv - lo) / (hi - lo) * nb as f64) as usize).min(nb - 1);
                z.counts[b] += 1;
            }
        } else {
            z.zero_spread += 1;
        }
    }

    /// Adds another accumulator's sums.
    pub fn merge(&mut self, o: &SpreadAccumulator) {
        self.n += o.n;
        self.sq_err += o.sq_err;
        self.var += o.var;
        let (a, b) = (&mut self.z, &o.z);
        for (x, y) in a.counts.iter_mut().zip(&b.counts) {
            *x += y;
        }
        a.under += b.under;
        a.over += b.over;
        a.n += b.n;
        a.zero_spread += b.zero_spread;
        a.sum += b.sum;
        a.sum_sq += b.sum_sq;
        a.within1 += b.within1;
        a.within2 += b.within2;
    }

    /// Spread–skill and z-score summary.
    pub fn finish(&self) -> SpreadSkill {
        let n = self.n.max(1.0);
        let rmse = (self.sq_err / n).sqrt();
        let spread = (self.var / n).sqrt();
        let s = self.n_samples as f64;
        let denom = ((s + 1.0) / s).sqrt() * spread;
        let z = &self.z;
        let zn = z.n.max(1) as f64;
        let zmean = z.sum / zn;
        let (lo, hi, nb) = Z_EDGES;
        SpreadSkill {
            n_items: self.n as u64,
            rmse,
            spread,
            ratio: (denom > 0.0).then(|| rmse / denom),
            z: ZHistogram {
                edges: (0..=nb)
                    .map(|k| lo + (hi - lo) * k as f64 / nb as f64)
                    .collect(),
                counts: z.counts.clone(),
                underflow: z.under,
                overflow: z.over,
                n: z.n,
                zero_spread: z.zero_spread,
                mean: zmean,
                std: if z.n > 1 {
                    ((z.sum_sq - zn * zmean * zmean) / (zn - 1.0))
                        .max(0.0)
                        .sqrt()
                } else {
                    0.0
                },
                frac_within_1: z.within1 as f64 / zn,
                frac_within_2: z.within2 as f64 / zn,
            },
        }
    }
}

/// Spread–skill in log10 space and the z-score histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpreadSkill {
    pub n_items: u64,
    /// RMSE of the posterior mean (log10 units, dex).
    pub rmse: f64,
    /// √(mean sample variance), ddof = 1 (dex).
    pub spread: f64,
    /// rmse / (√((S+1)/S) spread); `None` when the samples have no spread at all.
    pub ratio: Option<f64>,
    pub z: ZHistogram,
}

/// Histogram of z = (x_true − m)/(s √((S+1)/S)) over items with s > 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZHistogram {
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
    pub underflow: u64,
    pub overflow: u64,
    /// Items with s > 0 (those histogrammed, including under/overflow).
    pub n: u64,
    /// Items skipped because all samples were equal (s = 0).
    pub zero_spread: u64,
    pub mean: f64,
    pub std: f64,
    pub frac_within_1: f64,
    pub frac_within_2: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;
    use crate::sde::standard_normals_f64;

    /// Truth and S samples i.i.d. N(0, 1) per item, samples scaled by `scale`.
    fn run(s: usize, items: usize, scale: f64, seed: u64) -> (Calibration, SpreadSkill) {
        let mut rng = stream(seed, 0);
        let mut acc = CalibAccumulator::new(s, &NOMINAL_LEVELS);
        let mut spread = SpreadAccumulator::new(s);
        for _ in 0..items {
            let v = standard_normals_f64(&mut rng, s + 1);
            let samples: Vec<f64> = v[1..].iter().map(|x| x * scale).collect();
            acc.push(v[0], &samples, true);
            spread.push(v[0], &samples);
        }
        (acc.finish(), spread.finish())
    }

    #[test]
    fn calibrated_samples_have_nominal_coverage_and_flat_ranks() {
        for s in [2usize, 4, 16] {
            let (cal, ss) = run(s, 40_000, 1.0, 11 + s as u64);
            for (p, c) in cal.levels.iter().zip(&cal.coverage) {
                assert!((c - p).abs() < 0.02, "S = {s}: coverage {c} at nominal {p}");
            }
            let r = &cal.ranks;
            assert!(r.chi2_per_dof < 3.0 && r.p_value > 1e-3, "S = {s}: {r:?}");
            assert!((r.edge_ratio - 1.0).abs() < 0.05, "S = {s}: {r:?}");
            let ratio = ss.ratio.unwrap();
            assert!((ratio - 1.0).abs() < 0.03, "S = {s}: spread-skill {ratio}");
            if s == 16 {
                assert!((ss.z.std - 1.0).abs() < 0.1, "{:?}", ss.z);
            }
        }
    }

    #[test]
    fn narrow_samples_are_flagged_over_confident() {
        let (cal, ss) = run(8, 20_000, 0.5, 5);
        // Well below nominal in the core; at p → 1 only the extreme rank cells can show it (module doc).
        for (p, c) in cal.levels.iter().zip(&cal.coverage) {
            let margin = if *p <= 0.7 { 0.15 } else { 0.05 };
            assert!(*c < p - margin, "coverage {c} should be well below {p}");
        }
        let r = &cal.ranks;
        assert!(r.edge_ratio > 2.0 && r.chi2_per_dof > 100.0, "{r:?}");
        // ∪-shape: both ends above every middle bin.
        let mid = r.counts[1..8].iter().cloned().fold(0.0, f64::max);
        assert!(r.counts[0] > mid && r.counts[8] > mid, "{:?}", r.counts);
        assert!(ss.ratio.unwrap() > 1.5);
    }

    #[test]
    fn ties_and_identical_samples() {
        // Truth equal to every sample: spread over all ranks, coverage exactly nominal, no spread.
        let mut acc = CalibAccumulator::new(3, &NOMINAL_LEVELS);
        let mut sp = SpreadAccumulator::new(3);
        acc.push(1.0, &[1.0, 1.0, 1.0], true);
        sp.push(1.0, &[1.0, 1.0, 1.0]);
        let cal = acc.finish();
        assert_eq!(cal.ranks.counts, vec![0.25; 4]);
        for (p, c) in cal.levels.iter().zip(&cal.coverage) {
            assert!((c - p).abs() < 1e-12);
        }
        let ss = sp.finish();
        assert_eq!(ss.ratio, None);
        assert_eq!(ss.z.zero_spread, 1);
        assert_eq!(rank_bounds(2.0, &[1.0, 2.0, 2.0, 3.0]), (1, 3));
        assert!(check_samples(1)
            .unwrap_err()
            .to_string()
            .contains("at least 2"));
    }

    #[test]
    fn biased_samples_tilt_the_ranks() {
        let mut rng = stream(9, 3);
        let mut acc = CalibAccumulator::new(4, &NOMINAL_LEVELS);
        for _ in 0..10_000 {
            let v = standard_normals_f64(&mut rng, 5);
            let samples: Vec<f64> = v[1..].iter().map(|x| x - 1.0).collect();
            acc.push(v[0], &samples, true);
        }
        assert!(acc.finish().ranks.mean_rank_offset > 0.15);
    }
}
