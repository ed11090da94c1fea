//! EDM preconditioning, training-σ distribution and sampling noise schedule (docs/score-model.md §2, §5;
//! docs/samplers.md §7), after \[K22\] Karras et al. 2022, *Elucidating the Design Space of Diffusion-Based Generative
//! Models*, code `NVlabs/edm` (`training/networks.py` `EDMPrecond`, `training/loss.py` `EDMLoss`, `generate.py`
//! `edm_sampler`).
//!
//! The denoiser is `D(x; σ) = c_skip(σ)·x + c_out(σ)·F_θ(c_in(σ)·x; c_noise(σ))` (\[K22\] Eq. 7, Table 1). With
//! `x = y + n`, `Var(y) = σ_d²`, `n ~ N(0, σ²I)`, \[K22\] Appendix B.6 chooses
//!
//! - `c_in = 1/√(σ² + σ_d²)` so that the network input has unit variance (Eq. 114–117),
//! - the effective training target `F_target = (y − c_skip·x)/c_out` to have unit variance (Eq. 118–123):
//!   `c_out² = (1 − c_skip)²σ_d² + c_skip²σ²`,
//! - `c_skip = σ_d²/(σ² + σ_d²)` minimizing that `c_out` (Eq. 124–131), giving `c_out = σσ_d/√(σ² + σ_d²)`,
//! - loss weight `λ = 1/c_out² = (σ² + σ_d²)/(σσ_d)²` so the effective loss weight is 1 (Eq. 132–144),
//! - `c_noise = ¼ ln σ` (Eq. 145).
//!
//! **σ_data = 1** (docs/score-model.md §5, §12): our targets are standardized to unit variance, so \[K22\]'s constants,
//! tuned for σ_d = 0.5, are rescaled by `σ_d/0.5` (P_mean shifted by `ln(σ_d/0.5)`, sampling σ_min = 0.002·σ_d/0.5).

use rand_core::RngCore;

use crate::sde::standard_normals_f64;
use crate::{Error, Result};

/// σ_data of \[K22\] (images in \[−1, 1\]); the reference point for rescaling its σ-constants.
pub const K22_SIGMA_DATA: f64 = 0.5;
/// Mean of ln σ of \[K22\]'s training distribution at σ_d = 0.5 (`EDMLoss.P_mean`).
pub const K22_P_MEAN: f64 = -1.2;
/// Standard deviation of ln σ of \[K22\]'s training distribution (`EDMLoss.P_std`).
pub const K22_P_STD: f64 = 1.2;
/// Lowest sampling σ of \[K22\] at σ_d = 0.5 (`edm_sampler` `sigma_min`).
pub const K22_SIGMA_MIN: f64 = 0.002;
/// Schedule exponent ρ of \[K22\] Eq. 5 (`edm_sampler` `rho`).
pub const RHO: f64 = 7.0;

/// EDM preconditioning (\[K22\] Table 1 "Ours", `EDMPrecond`); all coefficients are f64 functions of σ ≥ 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdmPrecond {
    /// Standard deviation of the training targets σ_d (docs/score-model.md §5: measured, default 1.0).
    pub sigma_data: f64,
}

impl Default for EdmPrecond {
    /// σ_data = 1.0: unit-variance (standardized) targets, docs/score-model.md §5.
    fn default() -> Self {
        EdmPrecond { sigma_data: 1.0 }
    }
}

impl EdmPrecond {
    /// Preconditioning for targets of standard deviation `sigma_data` (finite, > 0).
    pub fn new(sigma_data: f64) -> Result<Self> {
        if !(sigma_data.is_finite() && sigma_data > 0.0) {
            return Err(Error::Config(format!(
                "EDM sigma_data must be finite and > 0, got {sigma_data}"
            )));
        }
        Ok(EdmPrecond { sigma_data })
    }

    /// `c_skip(σ) = σ_d²/(σ² + σ_d²)` (\[K22\] Table 1, Eq. 131).
    pub fn c_skip(&self, sigma: f64) -> f64 {
        let sd2 = self.sigma_data * self.sigma_data;
        sd2 / (sigma * sigma + sd2)
    }

    /// `c_out(σ) = σ·σ_d/√(σ² + σ_d²)` (\[K22\] Table 1, Eq. 138).
    pub fn c_out(&self, sigma: f64) -> f64 {
        sigma * self.sigma_data / (sigma * sigma + self.sigma_data * self.sigma_data).sqrt()
    }

    /// `c_in(σ) = 1/√(σ² + σ_d²)` (\[K22\] Table 1, Eq. 117).
    pub fn c_in(&self, sigma: f64) -> f64 {
        1.0 / (sigma * sigma + self.sigma_data * self.sigma_data).sqrt()
    }

    /// `c_noise(σ) = ¼ ln σ` (\[K22\] Table 1, Eq. 145); `−∞` at σ = 0.
    pub fn c_noise(&self, sigma: f64) -> f64 {
        0.25 * sigma.ln()
    }

    /// Loss weight `λ(σ) = (σ² + σ_d²)/(σ·σ_d)² = 1/c_out(σ)²` (\[K22\] Table 1, Eq. 144; `EDMLoss` `weight`).
    pub fn loss_weight(&self, sigma: f64) -> f64 {
        let sd = self.sigma_data;
        (sigma * sigma + sd * sd) / (sigma * sd).powi(2)
    }

    /// Sampling σ_min = 0.002·σ_d/0.5 (\[K22\] `edm_sampler` default, rescaled to σ_d; docs/score-model.md §5). σ_max
    /// for sampling is the Technique-1 value shared with the VE model (docs/score-model.md §5), not \[K22\]'s 80.
    pub fn sampling_sigma_min(&self) -> f64 {
        K22_SIGMA_MIN * self.sigma_data / K22_SIGMA_DATA
    }

    /// The training-σ distribution matching this σ_d ([`EdmSigmaDist::for_sigma_data`]).
    pub fn training_sigma_dist(&self) -> EdmSigmaDist {
        EdmSigmaDist::for_sigma_data(self.sigma_data)
    }
}

/// Log-normal training noise levels `ln σ ~ N(P_mean, P_std²)` (\[K22\] Table 1 "Ours", `EDMLoss`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdmSigmaDist {
    /// Mean of ln σ.
    pub p_mean: f64,
    /// Standard deviation of ln σ.
    pub p_std: f64,
}

impl EdmSigmaDist {
    /// \[K22\]'s P_mean = −1.2, P_std = 1.2 rescaled to targets of std `sigma_data`: P_mean = −1.2 + ln(σ_d/0.5)
    /// (docs/score-model.md §5), so σ scales with σ_d and `σ/σ_d` has \[K22\]'s distribution.
    pub fn for_sigma_data(sigma_data: f64) -> Self {
        EdmSigmaDist {
            p_mean: K22_P_MEAN + (sigma_data / K22_SIGMA_DATA).ln(),
            p_std: K22_P_STD,
        }
    }

    /// One σ = exp(P_mean + P_std·z), `z` a host Box–Muller normal ([`standard_normals_f64`]).
    pub fn sample(&self, rng: &mut impl RngCore) -> f64 {
        self.sample_n(rng, 1)[0]
    }

    /// `n` i.i.d. σ's (one per batch row). The normals are drawn in pairs; an odd `n` discards one variate.
    pub fn sample_n(&self, rng: &mut impl RngCore, n: usize) -> Vec<f64> {
        standard_normals_f64(rng, n)
            .into_iter()
            .map(|z| (self.p_mean + self.p_std * z).exp())
            .collect()
    }
}

/// Training noise levels with extra weight at large σ: a share `large_share` of the rows draws ln σ uniformly on
/// `[ln σ_lo, ln σ_hi]`, the rest from the \[K22\] log-normal.
///
/// Why: a map's large-scale modes are averages over many pixels, so they see per-pixel noise σ reduced by the
/// square root of the pixels they span (a 64² map's mean sees σ/64). Their posterior width is decided, and learned,
/// at σ far above the data scale, where the log-normal (ln σ ~ N(−0.51, 1.2²) at σ_d = 1) puts about 1 % of its
/// draws above σ = 10. With `large_share = 0` this is exactly the log-normal, drawing the same random numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingSigmas {
    pub lognormal: EdmSigmaDist,
    /// Share of rows drawn log-uniformly, in \[0, 1).
    pub large_share: f64,
    /// Range of the log-uniform part, `0 < lo < hi`.
    pub large_range: (f64, f64),
}

impl TrainingSigmas {
    /// `n` i.i.d. σ's: `n` log-normal draws, then (only if `large_share > 0`) `2n` uniforms that pick the rows
    /// replaced by log-uniform draws and place them.
    pub fn sample_n(&self, rng: &mut impl RngCore, n: usize) -> Vec<f64> {
        let mut sigmas = self.lognormal.sample_n(rng, n);
        if self.large_share > 0.0 {
            let u = crate::rng::uniforms(rng, 2 * n, 0.0, 1.0);
            let (lo, hi) = (self.large_range.0.ln(), self.large_range.1.ln());
            for (i, s) in sigmas.iter_mut().enumerate() {
                if u[2 * i] < self.large_share {
                    *s = (lo + (hi - lo) * u[2 * i + 1]).exp();
                }
            }
        }
        sigmas
    }

    /// Probability that a draw exceeds `sigma`.
    pub fn tail(&self, sigma: f64) -> f64 {
        let z = (sigma.ln() - self.lognormal.p_mean) / self.lognormal.p_std;
        let lognormal = 0.5 * crate::data::rng::erfc(z / std::f64::consts::SQRT_2);
        let (lo, hi) = (self.large_range.0.ln(), self.large_range.1.ln());
        let uniform = ((hi - sigma.ln()) / (hi - lo)).clamp(0.0, 1.0);
        (1.0 - self.large_share) * lognormal + self.large_share * uniform
    }
}

/// The \[K22\] Eq. 5 noise schedule, `n` levels from σ_max down to σ_min:
/// `σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`, `i = 0, …, n−1` (`edm_sampler` `t_steps`).
/// The sampler appends `σ_n = 0` itself. Requires `n ≥ 2`, `0 < σ_min < σ_max` (finite) and `ρ > 0`; ρ = 7 is
/// [`RHO`]. The endpoints are set exactly (the formula reproduces them only to rounding).
pub fn karras_sigmas(n: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Result<Vec<f64>> {
    if n < 2 {
        return Err(Error::Config(format!(
            "karras_sigmas needs n >= 2 levels, got {n}"
        )));
    }
    if !(sigma_min.is_finite() && sigma_max.is_finite() && sigma_min > 0.0 && sigma_min < sigma_max)
    {
        return Err(Error::Config(format!(
            "karras_sigmas needs 0 < sigma_min < sigma_max (finite), got {sigma_min}, {sigma_max}"
        )));
    }
    if !(rho.is_finite() && rho > 0.0) {
        return Err(Error::Config(format!(
            "karras_sigmas needs a finite rho > 0, got {rho}"
        )));
    }
    let (a, b) = (sigma_max.powf(1.0 / rho), sigma_min.powf(1.0 / rho));
    let mut out: Vec<f64> = (0..n)
        .map(|i| (a + i as f64 / (n - 1) as f64 * (b - a)).powf(rho))
        .collect();
    out[0] = sigma_max;
    out[n - 1] = sigma_min;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn sigma_grid() -> Vec<f64> {
        (0..=12)
            .map(|k| 10f64.powf(-3.0 + 0.5 * k as f64))
            .collect() // 1e-3 … 1e3
    }

    #[test]
    fn edm_identities() {
        for sd in [0.5, 1.0, 1.7] {
            let p = EdmPrecond::new(sd).unwrap();
            for s in sigma_grid() {
                let (cs, co, ci) = (p.c_skip(s), p.c_out(s), p.c_in(s));
                // Closed forms of [K22] Table 1, computed independently.
                assert!(
                    (cs - 1.0 / (1.0 + (s / sd).powi(2))).abs() < 1e-12,
                    "c_skip σ={s}"
                );
                assert!(
                    (co - s / (1.0 + (s / sd).powi(2)).sqrt()).abs() <= 1e-12 * s.max(1.0),
                    "c_out"
                );
                assert!((p.c_noise(s) - s.ln() / 4.0).abs() < 1e-12);
                // Unit-variance network input: c_in²(σ² + σ_d²) = 1.
                assert!(
                    (ci * ci * (s * s + sd * sd) - 1.0).abs() < 1e-12,
                    "c_in σ={s}"
                );
                // Unit-variance effective target: (1 − c_skip)²σ_d² + c_skip²σ² = c_out².
                let var_target = (1.0 - cs).powi(2) * sd * sd + cs * cs * s * s;
                assert!(
                    (var_target / (co * co) - 1.0).abs() < 1e-12,
                    "target var σ={s}"
                );
                // c_skip minimizes c_out²: stationarity and a strict minimum under perturbation.
                assert!((cs * (s * s + sd * sd) - sd * sd).abs() < 1e-12 * sd * sd);
                for d in [-1e-3, 1e-3] {
                    let c = cs + d;
                    assert!((1.0 - c).powi(2) * sd * sd + c * c * s * s > var_target);
                }
                // Effective loss weight 1: λ·c_out² = 1.
                assert!((p.loss_weight(s) * co * co - 1.0).abs() < 1e-12, "λ σ={s}");
            }
            assert_eq!(p.c_skip(0.0), 1.0);
            assert_eq!(p.c_out(0.0), 0.0);
        }
        assert!(EdmPrecond::new(0.0).is_err());
        assert!(EdmPrecond::new(f64::NAN).is_err());
        assert_eq!(EdmPrecond::default().sigma_data, 1.0);
    }

    #[test]
    fn edm_loss_at_zero_network_is_dimension() {
        // x0 ~ N(0, σ_d²) per dim: the Bayes denoiser is c_skip·x, i.e. F ≡ 0, and the weighted error per dim is
        // λ·c_out² = 1. MC: E[λ Σ_d (c_skip(x0 + σz) − x0)²] = D, within 3 MC std (each term is χ²₁, var 2).
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (dims, m) = (64usize, 400usize);
        for sd in [0.5, 1.0] {
            let p = EdmPrecond::new(sd).unwrap();
            for s in sigma_grid() {
                let z = standard_normals_f64(&mut rng, 2 * dims * m);
                let mut total = 0.0;
                for k in 0..m {
                    let mut l = 0.0;
                    for d in 0..dims {
                        let x0 = sd * z[2 * (k * dims + d)];
                        let x = x0 + s * z[2 * (k * dims + d) + 1];
                        let den = p.c_skip(s) * x; // + c_out·F with F ≡ 0
                        l += (den - x0).powi(2);
                    }
                    total += p.loss_weight(s) * l;
                }
                let mean = total / m as f64;
                let mc_std = (2.0 * dims as f64 / m as f64).sqrt();
                assert!(
                    (mean - dims as f64).abs() < 3.0 * mc_std,
                    "σ_d={sd} σ={s}: loss {mean} vs {dims}"
                );
            }
        }
    }

    #[test]
    fn karras_schedule() {
        let s = karras_sigmas(18, 0.004, 80.0, RHO).unwrap();
        assert_eq!(s.len(), 18);
        assert_eq!((s[0], s[17]), (80.0, 0.004));
        assert!(
            s.windows(2).all(|w| w[1] < w[0]),
            "not strictly decreasing: {s:?}"
        );
        // σ_i^{1/ρ} is equally spaced in i ([K22] Eq. 5).
        let r: Vec<f64> = s.iter().map(|x| x.powf(1.0 / RHO)).collect();
        let step = (r[17] - r[0]) / 17.0;
        for (i, ri) in r.iter().enumerate() {
            assert!((ri - (r[0] + i as f64 * step)).abs() < 1e-12, "i = {i}");
        }
        // Interior point against the formula written independently: i = 9.
        let mid = (80f64.powf(1.0 / 7.0)
            + 9.0 / 17.0 * (0.004f64.powf(1.0 / 7.0) - 80f64.powf(1.0 / 7.0)))
        .powi(7);
        assert!((s[9] / mid - 1.0).abs() < 1e-12);
        // ρ = 1 is a linspace.
        let lin = karras_sigmas(5, 1.0, 5.0, 1.0).unwrap();
        for (a, b) in lin.iter().zip([5.0, 4.0, 3.0, 2.0, 1.0]) {
            assert!((a - b).abs() < 1e-12);
        }
        assert_eq!(karras_sigmas(2, 0.1, 10.0, RHO).unwrap(), vec![10.0, 0.1]);
        assert!(karras_sigmas(1, 0.1, 10.0, RHO).is_err());
        assert!(karras_sigmas(10, 10.0, 0.1, RHO).is_err());
        assert!(karras_sigmas(10, 0.0, 10.0, RHO).is_err());
        assert!(karras_sigmas(10, 0.1, 10.0, 0.0).is_err());
    }

    #[test]
    fn training_sigma_distribution() {
        let k22 = EdmSigmaDist::for_sigma_data(0.5);
        assert_eq!((k22.p_mean, k22.p_std), (-1.2, 1.2));
        let p = EdmPrecond::default();
        let dist = p.training_sigma_dist();
        assert!((dist.p_mean - (-1.2 + 2f64.ln())).abs() < 1e-15);
        assert!((p.sampling_sigma_min() - 0.004).abs() < 1e-15);
        let n = 20_000;
        let s1 = dist.sample_n(&mut ChaCha8Rng::seed_from_u64(5), n);
        let s2 = dist.sample_n(&mut ChaCha8Rng::seed_from_u64(5), n);
        assert_eq!(s1, s2);
        assert!(s1.iter().all(|&s| s > 0.0 && s.is_finite()));
        let ln: Vec<f64> = s1.iter().map(|s| s.ln()).collect();
        let m = ln.iter().sum::<f64>() / n as f64;
        let sd = (ln.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!(
            (m - dist.p_mean).abs() < 4.0 * 1.2 / (n as f64).sqrt(),
            "mean ln σ {m}"
        );
        assert!((sd / 1.2 - 1.0).abs() < 0.03, "std ln σ {sd}");
        let one = dist.sample(&mut ChaCha8Rng::seed_from_u64(5));
        assert_eq!(one, s1[0]);
    }

    #[test]
    fn training_sigmas_with_a_large_share() {
        let lognormal = EdmPrecond::default().training_sigma_dist();
        let plain = TrainingSigmas {
            lognormal,
            large_share: 0.0,
            large_range: (1.0, 270.0),
        };
        // Share 0: the log-normal's draws, and the stream left where the log-normal leaves it.
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(3), ChaCha8Rng::seed_from_u64(3));
        assert_eq!(plain.sample_n(&mut a, 17), lognormal.sample_n(&mut b, 17));
        assert_eq!(a.next_u64(), b.next_u64());
        let mixed = TrainingSigmas {
            large_share: 0.25,
            ..plain
        };
        let n = 40_000;
        let s = mixed.sample_n(&mut ChaCha8Rng::seed_from_u64(4), n);
        assert!(s.iter().all(|&x| x > 0.0 && x.is_finite()));
        for cut in [0.5, 10.0, 100.0] {
            let frac = s.iter().filter(|&&x| x > cut).count() as f64 / n as f64;
            let p = mixed.tail(cut);
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!((frac - p).abs() < 5.0 * sd, "σ > {cut}: {frac} vs {p}");
        }
        // The point of it: about 1 % above σ = 10 for the log-normal, about 14 % with a quarter log-uniform.
        assert!(plain.tail(10.0) < 0.012 && mixed.tail(10.0) > 0.13);
    }
}
