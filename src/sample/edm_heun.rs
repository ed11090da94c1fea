//! EDM second-order Heun sampler (\[K22\] Alg. 2, code `generate.py` `edm_sampler`), deterministic (Alg. 1) when
//! `S_churn = 0`.
//!
//! Schedule (\[K22\] Eq. 5, f64): `σ_i = (σ_max^{1/ρ} + i/(N−1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`, `i < N`, `σ_N = 0`,
//! with σ_min, σ_max clamped to the model's trained range ([`Denoiser::sigma_range`]; VE: `[σ_min, σ_max]` of the SDE),
//! so one VE-trained network is sampled by PC and by Heun alike (docs/samplers.md §7). Start `x = σ_0 z`. Each step:
//!
//! - churn `γ = min(S_churn/N, √2 − 1)` if `S_min ≤ σ_i ≤ S_max`, else 0; `σ̂ = σ_i(1 + γ)`,
//!   `x̂ = x + √(σ̂² − σ_i²)·S_noise·z`;
//! - Euler `d = (x̂ − D(x̂; σ̂))/σ̂`, `x' = x̂ + (σ_{i+1} − σ̂)d`;
//! - if `σ_{i+1} > 0` (i.e. `i < N − 1`), the trapezoidal correction `d' = (x' − D(x'; σ_{i+1}))/σ_{i+1}`,
//!   `x' = x̂ + (σ_{i+1} − σ̂)(d + d')/2`.
//!
//! NFE = 2N − 1. The step is [`heun_step`], shared with the probability-flow ODE sampler's Heun method (`ode.rs`):
//! `dx/dσ = (x − D(x; σ))/σ` is the ODE both integrate (\[K22\] Eq. 1 with σ(t) = t and Eq. 3).
//!
//! Unlike `edm_sampler`, no normals are drawn at steps with γ = 0 (there they are multiplied by 0): the output is
//! the same and deterministic runs cost no host RNG time.

use candle_core::Tensor;

use super::driver::{Chunk, Sampler};
use super::grid::{check_sigma_opt, sigma_levels, SigmaGrid};
use crate::edm::RHO;
use crate::precond::{Denoiser, ScoreFn};
use crate::{Error, Result};

/// One \[K22\] Alg. 2 step from `(x̂, σ̂)` to `σ_next`: Euler, plus the second-order correction unless
/// `σ_next = 0` (where `d'` is undefined and the Euler step returns `D(x̂; σ̂)`). Two network evaluations, one when
/// `σ_next = 0`.
pub fn heun_step<M: Denoiser + ?Sized>(
    m: &M,
    x_hat: &Tensor,
    sigma_hat: f64,
    sigma_next: f64,
    cond: &Tensor,
) -> Result<Tensor> {
    let h = sigma_next - sigma_hat;
    let d = ode_slope(m, x_hat, sigma_hat, cond)?;
    let x_euler = (x_hat + d.affine(h, 0.0)?)?;
    if sigma_next <= 0.0 {
        return Ok(x_euler);
    }
    let d2 = ode_slope(m, &x_euler, sigma_next, cond)?;
    Ok((x_hat + (d + d2)?.affine(0.5 * h, 0.0)?)?)
}

/// `dx/dσ = (x − D(x; σ))/σ`, the probability-flow ODE in σ (\[K22\] Eq. 1 + Eq. 3; \[S21\] Eq. 13 for VE).
pub(crate) fn ode_slope<M: Denoiser + ?Sized>(
    m: &M,
    x: &Tensor,
    sigma: f64,
    cond: &Tensor,
) -> Result<Tensor> {
    let den = m.denoise(x, sigma, cond)?;
    Ok((x - den)?.affine(1.0 / sigma, 0.0)?)
}

/// The stochastic part of \[K22\] Alg. 2: before step i, where `S_min ≤ σ_i ≤ S_max`, noise is added to raise σ_i
/// by the factor 1 + γ, γ = min(S_churn/N, √2 − 1), with S_noise inflating it; the Heun step then removes more
/// noise than was added. Fresh noise at every step lets the sampler correct its own and the network's errors, at
/// the cost of more steps (\[K22\] §4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    pub s_churn: f64,
    pub s_min: f64,
    pub s_max: f64,
    pub s_noise: f64,
}

impl Default for Churn {
    /// \[K22\]'s ImageNet settings: S_churn = 40, S_min = 0.05, S_max = 50, S_noise = 1.003.
    fn default() -> Self {
        Churn {
            s_churn: 40.0,
            s_min: 0.05,
            s_max: 50.0,
            s_noise: 1.003,
        }
    }
}

impl std::str::FromStr for Churn {
    type Err = Error;
    /// `S_CHURN,S_MIN,S_MAX[,S_NOISE]` (S_noise defaults to 1.003).
    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "churn '{text}': expected S_CHURN,S_MIN,S_MAX[,S_NOISE] with S_CHURN ≥ 0, 0 ≤ S_MIN < S_MAX and \
                 S_NOISE ≥ 1, e.g. 40,0.05,50"
            ))
        };
        let v: Vec<f64> = text
            .split(',')
            .map(|x| x.trim().parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        let c = match v.as_slice() {
            [a, b, c] => Churn {
                s_churn: *a,
                s_min: *b,
                s_max: *c,
                ..Churn::default()
            },
            [a, b, c, d] => Churn {
                s_churn: *a,
                s_min: *b,
                s_max: *c,
                s_noise: *d,
            },
            _ => return Err(bad()),
        };
        let ok = c.s_churn >= 0.0
            && c.s_churn.is_finite()
            && c.s_min >= 0.0
            && c.s_max > c.s_min
            && c.s_noise >= 1.0
            && c.s_noise.is_finite();
        if !ok {
            return Err(bad());
        }
        Ok(c)
    }
}

impl std::fmt::Display for Churn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            self.s_churn, self.s_min, self.s_max, self.s_noise
        )
    }
}

/// \[K22\] EDM Heun sampler with optional stochastic churn.
#[derive(Debug, Clone, PartialEq)]
pub struct EdmHeun {
    /// Positive noise levels N (σ_N = 0 is appended); NFE = 2N − 1.
    pub n: usize,
    /// Schedule exponent ρ (\[K22\] Eq. 5; 7).
    pub rho: f64,
    /// Lowest σ; `None` = the model's σ_min. Clamped to `sigma_range()` either way.
    pub sigma_min: Option<f64>,
    /// Highest σ; `None` = the model's σ_max. Clamped to `sigma_range()`.
    pub sigma_max: Option<f64>,
    /// Total churn S_churn (0 = deterministic Alg. 1).
    pub s_churn: f64,
    /// Churn only where `S_min ≤ σ_i ≤ S_max`.
    pub s_min: f64,
    pub s_max: f64,
    /// Noise inflation S_noise of the churn.
    pub s_noise: f64,
}

impl Default for EdmHeun {
    /// N = 18, ρ = 7, σ range of the model, no churn (\[K22\] deterministic sampler; NFE 35).
    fn default() -> Self {
        EdmHeun {
            n: 18,
            rho: RHO,
            sigma_min: None,
            sigma_max: None,
            s_churn: 0.0,
            s_min: 0.0,
            s_max: f64::INFINITY,
            s_noise: 1.0,
        }
    }
}

impl EdmHeun {
    /// Deterministic Heun with `n` levels.
    pub fn new(n: usize) -> Self {
        EdmHeun {
            n,
            ..Default::default()
        }
    }

    /// The stochastic preset of docs/samplers.md §7 (\[K22\] ImageNet settings): S_churn = 40, S_min = 0.05, S_max =
    /// 50, S_noise = 1.003.
    pub fn stochastic(n: usize) -> Self {
        Self::with_churn(n, Churn::default())
    }

    /// Heun with `n` levels and the given churn.
    pub fn with_churn(n: usize, c: Churn) -> Self {
        EdmHeun {
            n,
            s_churn: c.s_churn,
            s_min: c.s_min,
            s_max: c.s_max,
            s_noise: c.s_noise,
            ..Default::default()
        }
    }

    /// The σ levels `σ_0 > … > σ_{N−1} > σ_N = 0` this sampler uses with model `m` (f64).
    pub fn sigmas<M: ScoreFn + Denoiser>(&self, m: &M) -> Result<Vec<f64>> {
        let mut s = sigma_levels(
            m,
            SigmaGrid::Karras { rho: self.rho },
            self.n,
            self.sigma_min,
            self.sigma_max,
        )?;
        s.push(0.0);
        Ok(s)
    }

    /// Churn factor γ_i of level σ_i.
    fn gamma(&self, sigma: f64) -> f64 {
        if self.s_churn > 0.0 && self.s_min <= sigma && sigma <= self.s_max {
            (self.s_churn / self.n as f64).min(std::f64::consts::SQRT_2 - 1.0)
        } else {
            0.0
        }
    }
}

impl Sampler for EdmHeun {
    fn name(&self) -> String {
        if self.s_churn > 0.0 {
            format!(
                "heun(N={}, churn={}, S_min={}, S_max={}, S_noise={})",
                self.n, self.s_churn, self.s_min, self.s_max, self.s_noise
            )
        } else {
            format!("heun(N={})", self.n)
        }
    }

    /// 2N − 1: two evaluations per step, one in the last (Euler to σ = 0).
    fn nfe(&self) -> usize {
        2 * self.n - 1
    }

    fn steps(&self) -> usize {
        self.n
    }

    fn validate(&self) -> Result<()> {
        if self.n < 2 {
            return Err(Error::Config(format!(
                "heun sampler needs N >= 2 noise levels, got {}",
                self.n
            )));
        }
        if !(self.rho.is_finite() && self.rho > 0.0) {
            return Err(Error::Config(format!(
                "heun sampler needs a finite rho > 0, got {}",
                self.rho
            )));
        }
        check_sigma_opt("heun sigma_min", self.sigma_min)?;
        check_sigma_opt("heun sigma_max", self.sigma_max)?;
        let churn_ok = self.s_churn.is_finite()
            && self.s_churn >= 0.0
            && self.s_noise.is_finite()
            && self.s_noise >= 0.0
            && !self.s_min.is_nan()
            && !self.s_max.is_nan();
        if !churn_ok {
            return Err(Error::Config(format!(
                "heun churn settings must be S_churn >= 0, S_noise >= 0 (finite), S_min/S_max not NaN; got \
                 S_churn = {}, S_noise = {}, S_min = {}, S_max = {}",
                self.s_churn, self.s_noise, self.s_min, self.s_max
            )));
        }
        Ok(())
    }

    fn run_chunk<M: ScoreFn + Denoiser>(
        &self,
        m: &M,
        cond: &Tensor,
        chunk: &mut Chunk,
    ) -> Result<Tensor> {
        let sig = self.sigmas(m)?;
        let mut x = chunk.normal_scaled(sig[0])?;
        for w in sig.windows(2) {
            let (s_cur, s_next) = (w[0], w[1]);
            let gamma = self.gamma(s_cur);
            let s_hat = s_cur * (1.0 + gamma);
            if gamma > 0.0 {
                let z = chunk.normal()?;
                let scale = (s_hat * s_hat - s_cur * s_cur).sqrt() * self.s_noise;
                x = (&x + z.affine(scale, 0.0)?)?;
            }
            x = heun_step(m, &x, s_hat, s_next, cond)?;
            chunk.step_done();
        }
        Ok(x)
    }
}
