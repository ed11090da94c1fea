//! Euler–Maruyama on the reverse-time SDE (\[S21\] Eq. 6, `sampling.py` `EulerMaruyamaPredictor` run by
//! `get_pc_sampler` with `corrector = None`).
//!
//! The reverse SDE `dx = [f(x, t) − g(t)² ∇ₓ log p_t(x | y)] dt + g(t) dw̄` is stepped over `t_i = linspace(1, ε, N)`
//! with \[S21\]'s fixed `dt = −1/N` (not the grid spacing `(1 − ε)/(N − 1)`; kept for fidelity, the two differ by
//! 1/N relative): `x_mean = x + (f − g²s)dt`, `x = x_mean + g√|dt| z`. The last `x_mean` is returned
//! (`noise_removal`).

use candle_core::Tensor;

use super::driver::{Chunk, Sampler};
use super::grid::{prior_std, time_grid};
use crate::precond::{Denoiser, ScoreFn};
use crate::sde::Sde;
use crate::{Error, Result};

/// \[S21\] Euler–Maruyama reverse-SDE sampler.
#[derive(Debug, Clone, PartialEq)]
pub struct EulerMaruyama {
    /// Steps N.
    pub n: usize,
    /// Return the noise-free `x_mean` of the last step (\[S21\] `noise_removal`, default true).
    pub noise_removal: bool,
}

impl Default for EulerMaruyama {
    /// N = 1000 with noise removal.
    fn default() -> Self {
        EulerMaruyama {
            n: 1000,
            noise_removal: true,
        }
    }
}

impl EulerMaruyama {
    /// `n` steps, noise removal on.
    pub fn new(n: usize) -> Self {
        EulerMaruyama {
            n,
            ..Default::default()
        }
    }
}

impl Sampler for EulerMaruyama {
    fn name(&self) -> String {
        format!("em(N={})", self.n)
    }

    /// One score evaluation per step: N.
    fn nfe(&self) -> usize {
        self.n
    }

    fn steps(&self) -> usize {
        self.n
    }

    fn validate(&self) -> Result<()> {
        if self.n < 2 {
            return Err(Error::Config(format!(
                "em sampler needs N >= 2 steps, got {}",
                self.n
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
        let sde = m.sde();
        let dt = -1.0 / self.n as f64;
        let mut x = chunk.normal_scaled(prior_std(sde))?;
        let mut x_mean = x.clone();
        for t in time_grid(sde, self.n) {
            let z = chunk.normal()?;
            let (f, g) = sde.sde(&x, t)?;
            let s = m.score(&x, t, cond)?;
            // Reverse drift f − g²s ([S21] SDE.reverse, probability_flow = False), times dt.
            x_mean = ((&x + f.affine(dt, 0.0)?)? - s.affine(g * g * dt, 0.0)?)?;
            x = (&x_mean + z.affine(g * (-dt).sqrt(), 0.0)?)?;
            chunk.step_done();
        }
        Ok(if self.noise_removal { x_mean } else { x })
    }
}
