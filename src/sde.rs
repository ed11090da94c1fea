//! Forward SDEs of score-based generative modelling (docs/score-model.md §3).
//!
//! Follows \[S21\] Song et al. 2021, *Score-Based Generative Modeling through SDEs*, code `yang-song/score_sde_pytorch`
//! file `sde_lib.py` (classes `VESDE`, `VPSDE`). Equation numbers refer to the ICLR paper:
//!
//! - **VE** (Eq. 9 / 30): `dx = √(d[σ²(t)]/dt) dw`, `σ(t) = σ_min (σ_max/σ_min)^t`.
//! - **VP** (Eq. 11 / 32–33): `dx = −½β(t) x dt + √β(t) dw`, `β(t) = β_min + t(β_max − β_min)`.
//!
//! Time runs over `t ∈ [0, T]` with `T = 1`; samplers stop at `sampling_eps()` (\[S21\] `run_lib.py`).
//!
//! All scalar coefficients are computed on the host in `f64` and only the final products touch tensors, so the tensors
//! keep their dtype (f32 in training, f64 in the tests). Randomness never comes from candle's RNG
//! (docs/score-model.md §1): [`Sde::prior_sampling`] takes a host [`RngCore`] and uploads its draws with
//! `Tensor::from_vec`.

use candle_core::{DType, Device, Shape, Tensor};
use rand_core::RngCore;

use crate::{Error, Result};

/// A forward SDE `dx = f(x, t) dt + g(t) dw` with a Gaussian perturbation kernel (\[S21\] `sde_lib.SDE`).
pub trait Sde {
    /// End time `T` of the forward process (\[S21\] `SDE.T`, always 1 here).
    fn t_max(&self) -> f64 {
        1.0
    }

    /// Number of discretization steps `N` (\[S21\] `SDE.N`).
    fn n(&self) -> usize;

    /// Drift and diffusion `(f(x, t), g(t))` of the forward SDE (\[S21\] `SDE.sde`; Eq. 5).
    fn sde(&self, x: &Tensor, t: f64) -> Result<(Tensor, f64)>;

    /// Mean and standard deviation of the perturbation kernel `p_0t(x(t) | x(0))` (\[S21\] `SDE.marginal_prob`;
    /// Eq. 29 VE, Eq. 33 VP). `x0` is `[B, …]`, `t` is `[B]` (any float dtype); returns `(mean [B, …], std [B])`,
    /// both in `x0`'s dtype.
    fn marginal_prob(&self, x0: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)>;

    /// A sample of the prior `p_T` (\[S21\] `SDE.prior_sampling`): `f32` normals drawn on the host from `rng` by
    /// Box–Muller (see [`standard_normals`]) and scaled; never candle's RNG (docs/score-model.md §1).
    fn prior_sampling(&self, shape: &Shape, rng: &mut impl RngCore, dev: &Device)
        -> Result<Tensor>;

    /// The discrete-time step `x_{i+1} = x_i + f_i(x_i) + G_i z_i` underlying the SMLD (VE) and DDPM (VP) samplers
    /// (\[S21\] `SDE.discretize`, overridden in `VESDE`/`VPSDE`; Eqs. 45–47), with `i = ⌊t(N−1)/T⌋` as in \[S21\].
    /// Returns `(f_i, G_i)`.
    fn discretize(&self, x: &Tensor, t: f64) -> Result<(Tensor, f64)>;

    /// Smallest time used by samplers and the DSM loss: 1e-5 for VE, 1e-3 for VP (\[S21\] `run_lib.py`, configs).
    fn sampling_eps(&self) -> f64;
}

/// `n` i.i.d. standard normals as `f32`, drawn as Box–Muller pairs from the top 53 bits of `rng.next_u64()`
/// (uniforms `u₁ ∈ (0, 1]`, `u₂ ∈ [0, 1)`; `z = √(−2 ln u₁)·(cos 2πu₂, sin 2πu₂)`). Computed in f64, so the draws
/// depend only on the RNG words, not on a `rand_distr` version. An odd `n` discards the last sine variate.
pub fn standard_normals(rng: &mut impl RngCore, n: usize) -> Vec<f32> {
    standard_normals_scaled(rng, n, 1.0)
}

/// `n` draws of `N(0, scale²)` as `f32`: [`standard_normals_f64`] multiplied by `scale` in f64 before rounding.
pub fn standard_normals_scaled(rng: &mut impl RngCore, n: usize, scale: f64) -> Vec<f32> {
    standard_normals_f64(rng, n)
        .into_iter()
        .map(|z| (scale * z) as f32)
        .collect()
}

/// `n` i.i.d. standard normals in f64, the Box–Muller stream behind [`standard_normals`] (same RNG words, same
/// values before rounding to f32). Used for host scalars such as EDM training σ's.
pub fn standard_normals_f64(rng: &mut impl RngCore, n: usize) -> Vec<f64> {
    const TWO_POW_M53: f64 = 1.0 / (1u64 << 53) as f64;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1 = 1.0 - (rng.next_u64() >> 11) as f64 * TWO_POW_M53;
        let u2 = (rng.next_u64() >> 11) as f64 * TWO_POW_M53;
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        out.push(r * c);
        if out.len() < n {
            out.push(r * s);
        }
    }
    out
}

/// Checks that a scalar time is finite and inside `[0, t_max]`.
fn check_t(t: f64, t_max: f64) -> Result<()> {
    if !t.is_finite() {
        return Err(Error::NonFinite {
            what: "SDE time t".into(),
            msg: format!("t = {t}"),
        });
    }
    if !(0.0..=t_max).contains(&t) {
        return Err(Error::invalid(
            "SDE time t",
            format!("t = {t} outside [0, {t_max}]"),
        ));
    }
    Ok(())
}

/// Reads the `[B]` time tensor of `marginal_prob` to the host as f64 and validates it against `x0`.
fn times_for(x0: &Tensor, t: &Tensor, t_max: f64) -> Result<Vec<f64>> {
    if x0.rank() == 0 {
        return Err(Error::Shape {
            what: "marginal_prob x0".into(),
            got: x0.dims().to_vec(),
            expected: "[B, …] (rank ≥ 1)".into(),
        });
    }
    let b = x0.dim(0)?;
    if t.dims() != [b] {
        return Err(Error::Shape {
            what: "marginal_prob t".into(),
            got: t.dims().to_vec(),
            expected: format!("[{b}] (one time per row of x0)"),
        });
    }
    let ts = t.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    for &ti in &ts {
        check_t(ti, t_max)?;
    }
    Ok(ts)
}

/// Per-row coefficients `[B]` reshaped to `[B, 1, …, 1]` (rank of `x`) in `x`'s dtype and device.
fn row_coeffs(coeffs: &[f64], x: &Tensor) -> Result<Tensor> {
    let mut dims = vec![1usize; x.rank()];
    dims[0] = coeffs.len();
    Ok(Tensor::from_slice(coeffs, dims, x.device())?.to_dtype(x.dtype())?)
}

/// Index `i = ⌊t(N−1)/T⌋` of \[S21\] `discretize` (torch `.long()` truncation), clamped to `N−1`.
fn step_index(t: f64, t_max: f64, n: usize) -> usize {
    ((t * (n - 1) as f64 / t_max).floor() as usize).min(n - 1)
}

/// Variance-exploding SDE (\[S21\] `sde_lib.VESDE`; Eq. 9 / 30): `f = 0`, `g(t) = σ(t)√(2 ln(σ_max/σ_min))`,
/// `σ(t) = σ_min (σ_max/σ_min)^t`. The default family of \[H25\]; σ_max comes from Technique 1 \[SE20\]
/// (docs/score-model.md §3).
#[derive(Debug, Clone, PartialEq)]
pub struct VeSde {
    sigma_min: f64,
    sigma_max: f64,
    n: usize,
}

impl VeSde {
    /// \[S21\] default σ_min (\[S21\] `configs/default_*`; docs/score-model.md §3).
    pub const DEFAULT_SIGMA_MIN: f64 = 0.01;
    /// \[S21\] default number of discretization steps.
    pub const DEFAULT_N: usize = 1000;

    /// A VE SDE; requires `0 < σ_min < σ_max` (finite) and `N ≥ 2`.
    pub fn new(sigma_min: f64, sigma_max: f64, n: usize) -> Result<Self> {
        if !(sigma_min.is_finite()
            && sigma_max.is_finite()
            && sigma_min > 0.0
            && sigma_min < sigma_max)
        {
            return Err(Error::Config(format!(
                "VE SDE needs 0 < sigma_min < sigma_max (finite), got sigma_min = {sigma_min}, sigma_max = {sigma_max}"
            )));
        }
        if n < 2 {
            return Err(Error::Config(format!(
                "VE SDE needs N >= 2 discretization steps, got {n}"
            )));
        }
        Ok(VeSde {
            sigma_min,
            sigma_max,
            n,
        })
    }

    /// σ_min = 0.01 and N = 1000 (\[S21\] defaults) with the given σ_max (Technique 1, docs/score-model.md §3).
    pub fn with_sigma_max(sigma_max: f64) -> Result<Self> {
        Self::new(Self::DEFAULT_SIGMA_MIN, sigma_max, Self::DEFAULT_N)
    }

    /// σ_min.
    pub fn sigma_min(&self) -> f64 {
        self.sigma_min
    }

    /// σ_max.
    pub fn sigma_max(&self) -> f64 {
        self.sigma_max
    }

    /// `σ(t) = σ_min (σ_max/σ_min)^t` (\[S21\] Eq. 30), evaluated as `exp(ln σ_min + t ln(σ_max/σ_min))`.
    pub fn sigma(&self, t: f64) -> f64 {
        (self.sigma_min.ln() + t * (self.sigma_max / self.sigma_min).ln()).exp()
    }

    /// Inverse of [`VeSde::sigma`]: `t(σ) = ln(σ/σ_min) / ln(σ_max/σ_min)`.
    pub fn t_of_sigma(&self, sigma: f64) -> f64 {
        (sigma / self.sigma_min).ln() / (self.sigma_max / self.sigma_min).ln()
    }

    /// Diffusion `g(t) = σ(t)√(2 ln(σ_max/σ_min))` = `√(dσ²/dt)` (\[S21\] `VESDE.sde`).
    pub fn diffusion(&self, t: f64) -> f64 {
        self.sigma(t) * (2.0 * (self.sigma_max / self.sigma_min).ln()).sqrt()
    }

    /// Marginal coefficients `(mean_coeff, std) = (1, σ(t))`: `x(t) = x0 + σ(t) z`.
    pub fn mean_coeff_std(&self, t: f64) -> (f64, f64) {
        (1.0, self.sigma(t))
    }

    /// `σ_i = exp(linspace(ln σ_min, ln σ_max, N))_i` (\[S21\] `VESDE.discrete_sigmas`); `σ_{−1} = 0` is
    /// handled by [`Sde::discretize`].
    pub fn discrete_sigma(&self, i: usize) -> f64 {
        let (a, b) = (self.sigma_min.ln(), self.sigma_max.ln());
        (a + (b - a) * i as f64 / (self.n - 1) as f64).exp()
    }
}

impl Sde for VeSde {
    fn n(&self) -> usize {
        self.n
    }

    /// `f = 0`, `g(t) = σ(t)√(2 ln(σ_max/σ_min))` (\[S21\] `VESDE.sde`).
    fn sde(&self, x: &Tensor, t: f64) -> Result<(Tensor, f64)> {
        check_t(t, self.t_max())?;
        Ok((x.zeros_like()?, self.diffusion(t)))
    }

    /// `mean = x0`, `std = σ(t)` (\[S21\] `VESDE.marginal_prob`; Eq. 29).
    fn marginal_prob(&self, x0: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let ts = times_for(x0, t, self.t_max())?;
        let std: Vec<f64> = ts.iter().map(|&ti| self.sigma(ti)).collect();
        let std = Tensor::from_vec(std, ts.len(), x0.device())?.to_dtype(x0.dtype())?;
        Ok((x0.clone(), std))
    }

    /// `σ_max · z`, `z ~ N(0, I)` (\[S21\] `VESDE.prior_sampling`).
    fn prior_sampling(
        &self,
        shape: &Shape,
        rng: &mut impl RngCore,
        dev: &Device,
    ) -> Result<Tensor> {
        let v = standard_normals_scaled(rng, shape.elem_count(), self.sigma_max);
        Ok(Tensor::from_vec(v, shape.clone(), dev)?)
    }

    /// SMLD discretization (\[S21\] `VESDE.discretize`; Eq. 45): `f_i = 0`, `G_i = √(σ_i² − σ_{i−1}²)`, `σ_{−1} = 0`.
    fn discretize(&self, x: &Tensor, t: f64) -> Result<(Tensor, f64)> {
        check_t(t, self.t_max())?;
        let i = step_index(t, self.t_max(), self.n);
        let s = self.discrete_sigma(i);
        let s_prev = if i == 0 {
            0.0
        } else {
            self.discrete_sigma(i - 1)
        };
        Ok((x.zeros_like()?, (s * s - s_prev * s_prev).sqrt()))
    }

    fn sampling_eps(&self) -> f64 {
        1e-5
    }
}

/// Variance-preserving SDE (\[S21\] `sde_lib.VPSDE`; Eq. 11 / 32): `f = −½β(t)x`, `g = √β(t)`,
/// `β(t) = β_min + t(β_max − β_min)`. The continuous limit of DDPM.
#[derive(Debug, Clone, PartialEq)]
pub struct VpSde {
    beta_min: f64,
    beta_max: f64,
    n: usize,
}

impl Default for VpSde {
    /// β_min = 0.1, β_max = 20, N = 1000 (\[S21\] defaults, docs/score-model.md §3).
    fn default() -> Self {
        VpSde {
            beta_min: 0.1,
            beta_max: 20.0,
            n: 1000,
        }
    }
}

impl VpSde {
    /// A VP SDE; requires `0 ≤ β_min ≤ β_max` (finite), `β_max > 0`, `N ≥ 2` and `β_max/N < 1` (so that the
    /// DDPM step `√(1 − β_i)` is real).
    pub fn new(beta_min: f64, beta_max: f64, n: usize) -> Result<Self> {
        if !(beta_min.is_finite()
            && beta_max.is_finite()
            && beta_min >= 0.0
            && beta_min <= beta_max
            && beta_max > 0.0)
        {
            return Err(Error::Config(format!(
                "VP SDE needs 0 <= beta_min <= beta_max, beta_max > 0 (finite), got beta_min = {beta_min}, beta_max = {beta_max}"
            )));
        }
        if n < 2 || beta_max / n as f64 >= 1.0 {
            return Err(Error::Config(format!(
                "VP SDE needs N >= 2 and beta_max / N < 1, got N = {n}, beta_max = {beta_max}"
            )));
        }
        Ok(VpSde {
            beta_min,
            beta_max,
            n,
        })
    }

    /// β_min.
    pub fn beta_min(&self) -> f64 {
        self.beta_min
    }

    /// β_max.
    pub fn beta_max(&self) -> f64 {
        self.beta_max
    }

    /// `β(t) = β_min + t(β_max − β_min)`.
    pub fn beta(&self, t: f64) -> f64 {
        self.beta_min + t * (self.beta_max - self.beta_min)
    }

    /// `log a(t) = −¼t²(β_max − β_min) − ½tβ_min` = `−½∫₀ᵗ β(s) ds` (\[S21\] `VPSDE.marginal_prob`; Eq. 33).
    pub fn log_mean_coeff(&self, t: f64) -> f64 {
        -0.25 * t * t * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
    }

    /// Marginal coefficients `(a(t), √(1 − a(t)²))`: `x(t) = a(t)x0 + std(t)z` (\[S21\] Eq. 33).
    /// `1 − a²` is evaluated as `−expm1(2 log a)`, accurate at small t.
    pub fn mean_coeff_std(&self, t: f64) -> (f64, f64) {
        let la = self.log_mean_coeff(t);
        (la.exp(), (-(2.0 * la).exp_m1()).sqrt())
    }

    /// `β_i = linspace(β_min/N, β_max/N, N)_i` (\[S21\] `VPSDE.discrete_betas`).
    pub fn discrete_beta(&self, i: usize) -> f64 {
        let n = self.n as f64;
        let (a, b) = (self.beta_min / n, self.beta_max / n);
        a + (b - a) * i as f64 / (n - 1.0)
    }
}

impl Sde for VpSde {
    fn n(&self) -> usize {
        self.n
    }

    /// `f = −½β(t)x`, `g = √β(t)` (\[S21\] `VPSDE.sde`).
    fn sde(&self, x: &Tensor, t: f64) -> Result<(Tensor, f64)> {
        check_t(t, self.t_max())?;
        let beta = self.beta(t);
        Ok((x.affine(-0.5 * beta, 0.0)?, beta.sqrt()))
    }

    /// `mean = a(t)x0`, `std = √(1 − a(t)²)`, `log a = −¼t²(β_max − β_min) − ½tβ_min` (\[S21\]
    /// `VPSDE.marginal_prob`; Eq. 33).
    fn marginal_prob(&self, x0: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let ts = times_for(x0, t, self.t_max())?;
        let (a, std): (Vec<f64>, Vec<f64>) = ts.iter().map(|&ti| self.mean_coeff_std(ti)).unzip();
        let mean = x0.broadcast_mul(&row_coeffs(&a, x0)?)?;
        let std = Tensor::from_vec(std, ts.len(), x0.device())?.to_dtype(x0.dtype())?;
        Ok((mean, std))
    }

    /// `z ~ N(0, I)` (\[S21\] `VPSDE.prior_sampling`).
    fn prior_sampling(
        &self,
        shape: &Shape,
        rng: &mut impl RngCore,
        dev: &Device,
    ) -> Result<Tensor> {
        let v = standard_normals(rng, shape.elem_count());
        Ok(Tensor::from_vec(v, shape.clone(), dev)?)
    }

    /// DDPM discretization (\[S21\] `VPSDE.discretize`; Eq. 47): `f_i = (√(1 − β_i) − 1)x`, `G_i = √β_i`.
    fn discretize(&self, x: &Tensor, t: f64) -> Result<(Tensor, f64)> {
        check_t(t, self.t_max())?;
        let beta = self.discrete_beta(step_index(t, self.t_max(), self.n));
        Ok((x.affine((1.0 - beta).sqrt() - 1.0, 0.0)?, beta.sqrt()))
    }

    fn sampling_eps(&self) -> f64 {
        1e-3
    }
}

/// Either SDE family, so that a model can hold "its" SDE as a value chosen from its config ([`Sde`] is generic
/// over the RNG in [`Sde::prior_sampling`] and therefore not object-safe). Every method delegates.
#[derive(Debug, Clone, PartialEq)]
pub enum AnySde {
    Ve(VeSde),
    Vp(VpSde),
}

impl AnySde {
    /// Variance-equivalent noise level `σ(t) = std(t)/mean_coeff(t)`: a state `x_t = a x0 + std z` of either
    /// family, divided by `a`, is a VE state at this σ (identity for VE).
    pub fn sigma_equiv(&self, t: f64) -> f64 {
        match self {
            AnySde::Ve(s) => s.sigma(t),
            AnySde::Vp(s) => {
                let (a, std) = s.mean_coeff_std(t);
                std / a
            }
        }
    }

    /// Marginal coefficients `(mean_coeff, std)` at time `t`.
    pub fn mean_coeff_std(&self, t: f64) -> (f64, f64) {
        match self {
            AnySde::Ve(s) => s.mean_coeff_std(t),
            AnySde::Vp(s) => s.mean_coeff_std(t),
        }
    }

    /// The time `t ∈ [0, 1]` at which [`AnySde::sigma_equiv`] equals `sigma` (clamped to the SDE's range).
    pub fn t_of_sigma_equiv(&self, sigma: f64) -> f64 {
        let t = match self {
            AnySde::Ve(s) => s.t_of_sigma(sigma),
            AnySde::Vp(s) => {
                // a² = 1/(1 + σ²) ⇒ ¼Δβ t² + ½β_min t − ½ln(1 + σ²) = 0; take the positive root.
                let (qa, qb, qc) = (
                    0.25 * (s.beta_max() - s.beta_min()),
                    0.5 * s.beta_min(),
                    -0.5 * sigma.powi(2).ln_1p(),
                );
                (-qb + (qb * qb - 4.0 * qa * qc).sqrt()) / (2.0 * qa)
            }
        };
        t.clamp(0.0, 1.0)
    }
}

impl Sde for AnySde {
    fn n(&self) -> usize {
        match self {
            AnySde::Ve(s) => s.n(),
            AnySde::Vp(s) => s.n(),
        }
    }
    fn sde(&self, x: &Tensor, t: f64) -> Result<(Tensor, f64)> {
        match self {
            AnySde::Ve(s) => s.sde(x, t),
            AnySde::Vp(s) => s.sde(x, t),
        }
    }
    fn marginal_prob(&self, x0: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            AnySde::Ve(s) => s.marginal_prob(x0, t),
            AnySde::Vp(s) => s.marginal_prob(x0, t),
        }
    }
    fn prior_sampling(
        &self,
        shape: &Shape,
        rng: &mut impl RngCore,
        dev: &Device,
    ) -> Result<Tensor> {
        match self {
            AnySde::Ve(s) => s.prior_sampling(shape, rng, dev),
            AnySde::Vp(s) => s.prior_sampling(shape, rng, dev),
        }
    }
    fn discretize(&self, x: &Tensor, t: f64) -> Result<(Tensor, f64)> {
        match self {
            AnySde::Ve(s) => s.discretize(x, t),
            AnySde::Vp(s) => s.discretize(x, t),
        }
    }
    fn sampling_eps(&self) -> f64 {
        match self {
            AnySde::Ve(s) => s.sampling_eps(),
            AnySde::Vp(s) => s.sampling_eps(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    const TS: [f64; 7] = [0.0, 1e-5, 0.1, 0.333, 0.5, 0.9, 1.0];

    fn ve() -> VeSde {
        VeSde::new(0.01, 90.0, 1000).unwrap()
    }

    fn x_f64(b: usize) -> Tensor {
        let v: Vec<f64> = (0..b * 2 * 3 * 3)
            .map(|k| (k as f64 * 0.37).sin() * 2.0 - 0.3)
            .collect();
        Tensor::from_vec(v, (b, 2, 3, 3), &Device::Cpu).unwrap()
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(1e-300)
    }

    #[test]
    fn sde_ve_marginal() {
        let s = ve();
        let x0 = x_f64(TS.len());
        let t = Tensor::new(&TS, &Device::Cpu).unwrap();
        let (mean, std) = s.marginal_prob(&x0, &t).unwrap();
        let diff = (mean - &x0).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f64>().unwrap(), 0.0, "VE mean must be x0");
        let std = std.to_vec1::<f64>().unwrap();
        for (&ti, &si) in TS.iter().zip(&std) {
            let expect = 0.01 * (90.0f64 / 0.01).powf(ti);
            assert!(rel(si, expect) < 1e-12, "t = {ti}: std {si} vs {expect}");
        }
        // f32 inputs keep their dtype.
        let (m32, s32) = s
            .marginal_prob(
                &x0.to_dtype(DType::F32).unwrap(),
                &t.to_dtype(DType::F32).unwrap(),
            )
            .unwrap();
        assert_eq!((m32.dtype(), s32.dtype()), (DType::F32, DType::F32));
    }

    /// max |t| of an f64 tensor.
    fn max_abs(t: &Tensor) -> f64 {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    #[test]
    fn ve_diffusion_matches_marginal_variance() {
        // Linear SDE dx = a x dt + g dw: dVar/dt = 2a Var + g². For VE a = 0, so g(t)² = dσ²/dt.
        let s = ve();
        let x = x_f64(1);
        let h = 1e-5;
        for &t in &[0.05, 0.25, 0.5, 0.75, 0.95] {
            let (drift, g) = s.sde(&x, t).unwrap();
            let dmax = max_abs(&drift);
            assert_eq!(dmax, 0.0, "VE drift must vanish");
            let var = |t: f64| (0.01 * (90.0f64 / 0.01).powf(t)).powi(2);
            let dvar = (var(t + h) - var(t - h)) / (2.0 * h);
            assert!(
                rel(g * g, dvar) < 1e-6,
                "t = {t}: g² = {} vs dσ²/dt = {dvar}",
                g * g
            );
        }
    }

    #[test]
    fn ve_discretize_telescopes() {
        let s = ve();
        let n = s.n();
        let x = x_f64(1);
        let sig = |i: usize| 0.01 * (90.0f64 / 0.01).powf(i as f64 / (n - 1) as f64);
        let mut sum = 0.0;
        for i in 0..n {
            // Mid-cell time so that ⌊t(N−1)⌋ = i without rounding ambiguity (last cell: t = 1).
            let t = if i == n - 1 {
                1.0
            } else {
                (i as f64 + 0.5) / (n - 1) as f64
            };
            let (f, g) = s.discretize(&x, t).unwrap();
            let fmax = max_abs(&f);
            assert_eq!(fmax, 0.0);
            let prev = if i == 0 { 0.0 } else { sig(i - 1) };
            let expect = sig(i) * sig(i) - prev * prev;
            assert!(
                rel(g * g, expect) < 1e-9,
                "i = {i}: G² = {} vs {expect}",
                g * g
            );
            sum += g * g;
        }
        assert!(
            rel(sum, 90.0 * 90.0) < 1e-9,
            "Σ G_i² = {sum} vs σ_max² = 8100"
        );
        assert!(
            rel(s.discretize(&x, 0.0).unwrap().1, 0.01) < 1e-12,
            "G_0 = σ_min"
        );
    }

    /// RK4 integration of dm/dt = −½β m, dv/dt = β(1 − v) from (1, 0) to t (independent of the closed form).
    fn vp_rk4(bmin: f64, bmax: f64, t: f64) -> (f64, f64) {
        let beta = |s: f64| bmin + s * (bmax - bmin);
        let rhs = |s: f64, m: f64, v: f64| (-0.5 * beta(s) * m, beta(s) * (1.0 - v));
        let steps = 20_000;
        let h = t / steps as f64;
        let (mut m, mut v) = (1.0, 0.0);
        for k in 0..steps {
            let s = k as f64 * h;
            let k1 = rhs(s, m, v);
            let k2 = rhs(s + h / 2.0, m + h / 2.0 * k1.0, v + h / 2.0 * k1.1);
            let k3 = rhs(s + h / 2.0, m + h / 2.0 * k2.0, v + h / 2.0 * k2.1);
            let k4 = rhs(s + h, m + h * k3.0, v + h * k3.1);
            m += h / 6.0 * (k1.0 + 2.0 * k2.0 + 2.0 * k3.0 + k4.0);
            v += h / 6.0 * (k1.1 + 2.0 * k2.1 + 2.0 * k3.1 + k4.1);
        }
        (m, v)
    }

    #[test]
    fn sde_vp_marginal() {
        let s = VpSde::default();
        let x0 = x_f64(TS.len());
        let t = Tensor::new(&TS, &Device::Cpu).unwrap();
        let (mean, std) = s.marginal_prob(&x0, &t).unwrap();
        let std = std.to_vec1::<f64>().unwrap();
        let x0v = x0.flatten_from(1).unwrap().to_vec2::<f64>().unwrap();
        let mv = mean.flatten_from(1).unwrap().to_vec2::<f64>().unwrap();
        for (b, &ti) in TS.iter().enumerate() {
            let (m_ref, v_ref) = vp_rk4(0.1, 20.0, ti);
            assert!(
                (std[b] * std[b] - v_ref).abs() < 1e-8,
                "t = {ti}: var {} vs {v_ref}",
                std[b] * std[b]
            );
            for (xm, x) in mv[b].iter().zip(&x0v[b]) {
                assert!(
                    (xm - m_ref * x).abs() < 1e-8,
                    "t = {ti}: mean {xm} vs {}",
                    m_ref * x
                );
            }
            // Variance preserving: a(t)² + std(t)² = 1.
            let (a, sd) = s.mean_coeff_std(ti);
            assert!((a * a + sd * sd - 1.0).abs() < 1e-12);
            assert!((sd - std[b]).abs() < 1e-15);
        }
    }

    #[test]
    fn vp_drift_diffusion_match_marginal() {
        // dm/dt = a(t)·m with f = a(t)x, and dVar/dt = 2a Var + g², checked by central differences.
        let s = VpSde::default();
        let x = Tensor::new(&[[1.0f64]], &Device::Cpu).unwrap();
        let h = 1e-5;
        for &t in &[0.05, 0.3, 0.6, 0.9] {
            let (f, g) = s.sde(&x, t).unwrap();
            let a = f.to_vec2::<f64>().unwrap()[0][0];
            assert!(rel(a, -0.5 * (0.1 + t * 19.9)) < 1e-14);
            assert!(rel(g * g, 0.1 + t * 19.9) < 1e-14);
            let (mp, sp) = s.mean_coeff_std(t + h);
            let (mm, sm) = s.mean_coeff_std(t - h);
            let (m0, s0) = s.mean_coeff_std(t);
            assert!(rel((mp - mm) / (2.0 * h), a * m0) < 1e-7);
            let dvar = (sp * sp - sm * sm) / (2.0 * h);
            assert!(rel(dvar, 2.0 * a * s0 * s0 + g * g) < 1e-7, "t = {t}");
        }
    }

    #[test]
    fn vp_discretize_table() {
        let s = VpSde::default();
        let n = s.n();
        let x = x_f64(2);
        let xs = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for &i in &[0usize, 1, 500, 998, 999] {
            let t = if i == n - 1 {
                1.0
            } else {
                (i as f64 + 0.5) / (n - 1) as f64
            };
            let beta = 0.1 / 1000.0 + (20.0 / 1000.0 - 0.1 / 1000.0) * i as f64 / 999.0;
            let (f, g) = s.discretize(&x, t).unwrap();
            assert!(rel(g, beta.sqrt()) < 1e-12, "i = {i}");
            let fv = f.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for (fi, xi) in fv.iter().zip(&xs) {
                assert!((fi - ((1.0 - beta).sqrt() - 1.0) * xi).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn prior_sampling_std_and_reproducibility() {
        let shape = Shape::from((8, 1, 64, 64));
        let dev = Device::Cpu;
        let ve = ve();
        let vp = VpSde::default();
        for (name, expect_std, draw) in [
            (
                "VE",
                90.0,
                Box::new(|r: &mut ChaCha8Rng| ve.prior_sampling(&shape, r, &dev).unwrap())
                    as Box<dyn Fn(&mut ChaCha8Rng) -> Tensor>,
            ),
            (
                "VP",
                1.0,
                Box::new(|r: &mut ChaCha8Rng| vp.prior_sampling(&shape, r, &dev).unwrap()),
            ),
        ] {
            let a = draw(&mut ChaCha8Rng::seed_from_u64(7));
            assert_eq!(a.dims(), &[8, 1, 64, 64]);
            assert_eq!(a.dtype(), DType::F32);
            let v = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let n = v.len() as f64;
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
            let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
            assert!(
                rel(var.sqrt(), expect_std) < 0.02,
                "{name}: std {} vs {expect_std}",
                var.sqrt()
            );
            assert!(
                mean.abs() < 5.0 * expect_std / n.sqrt(),
                "{name}: mean {mean}"
            );
            let b = draw(&mut ChaCha8Rng::seed_from_u64(7));
            let vb = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(
                v.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{name}: not reproducible"
            );
            let c = draw(&mut ChaCha8Rng::seed_from_u64(8));
            let vc = c.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(
                v.iter().zip(&vc).filter(|(x, y)| x == y).count() < 10,
                "{name}: seeds 7 and 8 agree"
            );
        }
    }

    #[test]
    fn standard_normals_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let v = standard_normals(&mut rng, 200_001);
        assert_eq!(v.len(), 200_001);
        let n = v.len() as f64;
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let m2 = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / n;
        let m4 = v.iter().map(|&x| (x as f64).powi(4)).sum::<f64>() / n;
        assert!(m.abs() < 5.0 / n.sqrt());
        assert!((m2 - 1.0).abs() < 5.0 * (2.0 / n).sqrt());
        assert!((m4 - 3.0).abs() < 5.0 * (96.0 / n).sqrt(), "kurtosis {m4}");
    }

    #[test]
    fn bad_inputs_are_rejected() {
        assert!(matches!(VeSde::new(1.0, 0.5, 1000), Err(Error::Config(_))));
        assert!(matches!(VeSde::new(0.01, 90.0, 1), Err(Error::Config(_))));
        assert!(matches!(VpSde::new(0.1, 20.0, 10), Err(Error::Config(_))));
        let s = ve();
        let x0 = x_f64(3);
        let t_bad_len = Tensor::new(&[0.5f64, 0.5], &Device::Cpu).unwrap();
        assert!(matches!(
            s.marginal_prob(&x0, &t_bad_len),
            Err(Error::Shape { .. })
        ));
        let t_nan = Tensor::new(&[0.5f64, f64::NAN, 0.1], &Device::Cpu).unwrap();
        assert!(matches!(
            s.marginal_prob(&x0, &t_nan),
            Err(Error::NonFinite { .. })
        ));
        let t_big = Tensor::new(&[0.5f64, 1.5, 0.1], &Device::Cpu).unwrap();
        assert!(matches!(
            VpSde::default().marginal_prob(&x0, &t_big),
            Err(Error::Invalid { .. })
        ));
        assert!(s.sde(&x0, -0.1).is_err());
        assert!(s.discretize(&x0, f64::INFINITY).is_err());
        assert!(rel(s.t_of_sigma(s.sigma(0.37)), 0.37) < 1e-12);
    }
}
