//! Probability-flow ODE sampler (\[S21\] Eq. 13, `sampling.py` `get_ode_sampler`), fixed-step in σ.
//!
//! `dx/dt = f − ½g²∇ₓ log p_t` (\[S21\] Eq. 13) is, for VE with `σ` as the time variable and the Tweedie relation
//! `∇ₓ log p = (D − x)/σ²`, the EDM ODE `dx/dσ = (x − D(x; σ))/σ` (\[K22\] Eq. 1 with σ(t) = t, Eq. 3). A VP model
//! integrates the same ODE through its σ-parametrized denoiser. We integrate it from `x = σ_0 z` down the grid with:
//!
//! - **RK4** (classical 4-stage Runge–Kutta): `M` steps between `M + 1` positive levels `σ_0 = σ_max … σ_M = σ_min`,
//!   NFE = 4M; optionally a final denoising `x ← D(x; σ_min)` (\[S21\] `denoise`), NFE + 1.
//! - **Heun**: `M` positive levels plus `σ_M = 0`, the last step Euler; NFE = 2M − 1. This is the \[K22\] sampler
//!   with `S_churn = 0` and uses its step function [`heun_step`] (no second copy).
//!
//! The grid is the \[K22\] ρ-grid (default, ρ = 7) or a uniform grid in the SDE's `t` (\[S21\]'s time variable).
//! \[S21\]'s adaptive RK45 (`scipy.integrate.solve_ivp`, rtol = atol = 1e-5) is not implemented.

use candle_core::Tensor;

use super::driver::{Chunk, Sampler};
use super::edm_heun::{heun_step, ode_slope};
use super::grid::{check_sigma_opt, sigma_levels, SigmaGrid};
use crate::edm::RHO;
use crate::precond::{Denoiser, ScoreFn};
use crate::{Error, Result};

/// Integration method of the [`OdeSampler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OdeMethod {
    /// Classical RK4, 4 evaluations per step.
    Rk4,
    /// \[K22\] Heun (2nd order), 2 per step, Euler into σ = 0.
    Heun,
}

/// Fixed-step probability-flow ODE sampler.
#[derive(Debug, Clone, PartialEq)]
pub struct OdeSampler {
    pub method: OdeMethod,
    /// Steps M.
    pub steps: usize,
    pub grid: SigmaGrid,
    /// Lowest σ; `None` = the model's σ_min. Clamped to `sigma_range()`.
    pub sigma_min: Option<f64>,
    /// Highest σ; `None` = the model's σ_max. Clamped to `sigma_range()`.
    pub sigma_max: Option<f64>,
    /// RK4 only: finish with `x ← D(x; σ_min)` (one more evaluation). Heun's last Euler step already ends at σ = 0.
    pub denoise_final: bool,
}

impl Default for OdeSampler {
    /// RK4, M = 50 (NFE 200), ρ-grid with ρ = 7, model σ range, no final denoising (docs/samplers.md §8 NFE table).
    fn default() -> Self {
        OdeSampler {
            method: OdeMethod::Rk4,
            steps: 50,
            grid: SigmaGrid::Karras { rho: RHO },
            sigma_min: None,
            sigma_max: None,
            denoise_final: false,
        }
    }
}

impl OdeSampler {
    /// `method` with `steps` steps, other settings default.
    pub fn new(method: OdeMethod, steps: usize) -> Self {
        OdeSampler {
            method,
            steps,
            ..Default::default()
        }
    }

    /// The σ levels visited with model `m` (f64): `M + 1` positive levels for RK4; `M` positive levels and a final
    /// 0 for Heun.
    pub fn sigmas<M: ScoreFn + Denoiser>(&self, m: &M) -> Result<Vec<f64>> {
        match self.method {
            OdeMethod::Rk4 => {
                sigma_levels(m, self.grid, self.steps + 1, self.sigma_min, self.sigma_max)
            }
            OdeMethod::Heun => {
                let mut s = sigma_levels(m, self.grid, self.steps, self.sigma_min, self.sigma_max)?;
                s.push(0.0);
                Ok(s)
            }
        }
    }

    /// Integrates the ODE from `x` (at `sigmas[0]`) along `sigmas` (f64, decreasing), deterministic. Returns the
    /// state at the last level (then denoised if `denoise_final`, RK4). Used by [`Sampler::run_chunk`]; public so
    /// callers can map given latents (e.g. to check against a closed form).
    pub fn integrate<M: ScoreFn + Denoiser>(
        &self,
        m: &M,
        x: &Tensor,
        sigmas: &[f64],
        cond: &Tensor,
        mut on_step: impl FnMut(),
    ) -> Result<Tensor> {
        let ok_levels = sigmas.len() >= 2
            && sigmas.windows(2).all(|w| w[1] < w[0])
            && sigmas.iter().all(|s| s.is_finite())
            && match self.method {
                OdeMethod::Rk4 => sigmas[sigmas.len() - 1] > 0.0,
                OdeMethod::Heun => sigmas[sigmas.len() - 1] >= 0.0,
            };
        if !ok_levels {
            return Err(Error::Config(format!(
                "ode {:?} needs >= 2 finite, strictly decreasing sigmas ending > 0 (RK4) or >= 0 (Heun), got {sigmas:?}",
                self.method
            )));
        }
        let mut x = x.clone();
        for w in sigmas.windows(2) {
            x = match self.method {
                OdeMethod::Rk4 => rk4_step(m, &x, w[0], w[1], cond)?,
                OdeMethod::Heun => heun_step(m, &x, w[0], w[1], cond)?,
            };
            on_step();
        }
        if self.method == OdeMethod::Rk4 && self.denoise_final {
            x = m.denoise(&x, sigmas[sigmas.len() - 1], cond)?;
        }
        Ok(x)
    }
}

/// One classical RK4 step of `dx/dσ = (x − D(x; σ))/σ` from `s0` to `s1` (both > 0, so the midpoint is too).
pub fn rk4_step<M: Denoiser + ?Sized>(
    m: &M,
    x: &Tensor,
    s0: f64,
    s1: f64,
    cond: &Tensor,
) -> Result<Tensor> {
    let h = s1 - s0;
    let sm = s0 + 0.5 * h;
    let k1 = ode_slope(m, x, s0, cond)?;
    let k2 = ode_slope(m, &(x + k1.affine(0.5 * h, 0.0)?)?, sm, cond)?;
    let k3 = ode_slope(m, &(x + k2.affine(0.5 * h, 0.0)?)?, sm, cond)?;
    let k4 = ode_slope(m, &(x + k3.affine(h, 0.0)?)?, s1, cond)?;
    let incr = (((k1 + k4)? + (k2 + k3)?.affine(2.0, 0.0)?)?).affine(h / 6.0, 0.0)?;
    Ok((x + incr)?)
}

impl Sampler for OdeSampler {
    fn name(&self) -> String {
        let m = match self.method {
            OdeMethod::Rk4 => "ode-rk4",
            OdeMethod::Heun => "ode-heun",
        };
        let g = match self.grid {
            SigmaGrid::Karras { rho } => format!("rho={rho}"),
            SigmaGrid::UniformT => "uniform-t".into(),
        };
        let d = if self.method == OdeMethod::Rk4 && self.denoise_final {
            ", denoise"
        } else {
            ""
        };
        format!("{m}(M={}, {g}{d})", self.steps)
    }

    /// RK4: 4M (+1 with `denoise_final`); Heun: 2M − 1.
    fn nfe(&self) -> usize {
        match self.method {
            OdeMethod::Rk4 => 4 * self.steps + usize::from(self.denoise_final),
            OdeMethod::Heun => 2 * self.steps - 1,
        }
    }

    fn steps(&self) -> usize {
        self.steps
    }

    fn validate(&self) -> Result<()> {
        let min = match self.method {
            OdeMethod::Rk4 => 1,
            OdeMethod::Heun => 2,
        };
        if self.steps < min {
            return Err(Error::Config(format!(
                "ode sampler ({:?}) needs M >= {min} steps, got {}",
                self.method, self.steps
            )));
        }
        if let SigmaGrid::Karras { rho } = self.grid {
            if !(rho.is_finite() && rho > 0.0) {
                return Err(Error::Config(format!(
                    "ode sampler needs a finite rho > 0, got {rho}"
                )));
            }
        }
        check_sigma_opt("ode sigma_min", self.sigma_min)?;
        check_sigma_opt("ode sigma_max", self.sigma_max)
    }

    fn run_chunk<M: ScoreFn + Denoiser>(
        &self,
        m: &M,
        cond: &Tensor,
        chunk: &mut Chunk,
    ) -> Result<Tensor> {
        let sig = self.sigmas(m)?;
        let x = chunk.normal_scaled(sig[0])?;
        self.integrate(m, &x, &sig, cond, || chunk.step_done())
    }
}
