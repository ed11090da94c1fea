//! Predictor–corrector sampling (\[S21\] §4.2 Alg. 1; App. G Alg. 2–5; code `sampling.py` `get_pc_sampler` with
//! `ReverseDiffusionPredictor` and `LangevinCorrector`): the sampler of the paper we reproduce (\[H25\]).
//!
//! For each `t_i` in `linspace(1, ε, N)`: **corrector first, then predictor** (the order of `get_pc_sampler`'s loop
//! body), starting from the prior `x ~ p_T`, and the result is the noise-free mean `x_mean` of the last predictor
//! step (`noise_removal = True`, \[S21\] configs).
//!
//! - Predictor `reverse_diffusion` (\[S21\] App. E, Eq. 46): `(f, G) = discretize(x, t)`, `x_mean = x − f + G²s`,
//!   `x = x_mean + G z`.
//! - Corrector `langevin` (\[S21\] App. G Alg. 4 VE / Alg. 5 VP), `n_steps_each` times:
//!   `ε = 2α(snr·‖z‖/‖s‖)²`, `x_mean = x + ε s`, `x = x_mean + √(2ε) z`, with `α = 1` (VE) or `α_i = 1 − β_i` (VP).
//!
//! **Deviation (docs/samplers.md §5, docs/score-model.md §12):** \[S21\] averages ‖s‖ and ‖z‖ over the batch before
//! forming ε, which makes a sample depend on its batch mates (and on `max_batch`). We use per-sample norms by default;
//! `batch_mean_snr = true` reproduces \[S21\] exactly (its samples then depend on the chunking).

use candle_core::{DType, Tensor};

use super::driver::{Chunk, Sampler};
use super::grid::{prior_std, sde_with_n, time_grid};
use crate::precond::{Denoiser, ScoreFn};
use crate::sde::{AnySde, Sde};
use crate::{Error, Result};

/// \[S21\] predictor–corrector sampler (reverse-diffusion predictor + Langevin corrector).
#[derive(Debug, Clone, PartialEq)]
pub struct PredictorCorrector {
    /// Number of noise levels N (`linspace(1, ε, N)`); the SMLD/DDPM discretization uses this N.
    pub n: usize,
    /// Signal-to-noise ratio of the Langevin corrector: 0.16 (\[S21\] CIFAR-10 VE; 0.17 CelebA, 0.15 FFHQ, 0.075
    /// LSUN).
    pub snr: f64,
    /// Corrector steps per noise level (\[S21\] `n_steps_each`, 1); 0 gives the reverse-diffusion sampler alone.
    pub corrector_steps: usize,
    /// Form the Langevin step from batch-mean norms as \[S21\] does (couples samples in a chunk).
    pub batch_mean_snr: bool,
    /// Return the noise-free `x_mean` of the last predictor step (\[S21\] `noise_removal`, default true).
    pub noise_removal: bool,
}

impl Default for PredictorCorrector {
    /// N = 1000, snr = 0.16, one corrector step, per-sample norms, noise removal.
    fn default() -> Self {
        PredictorCorrector {
            n: 1000,
            snr: 0.16,
            corrector_steps: 1,
            batch_mean_snr: false,
            noise_removal: true,
        }
    }
}

impl PredictorCorrector {
    /// The default sampler with `n` noise levels.
    pub fn new(n: usize) -> Self {
        PredictorCorrector {
            n,
            ..Default::default()
        }
    }

    /// One Langevin corrector step (\[S21\] `LangevinCorrector.update_fn`): returns `(x, x_mean)`.
    fn langevin<M: ScoreFn>(
        &self,
        m: &M,
        x: &Tensor,
        t: f64,
        alpha: f64,
        cond: &Tensor,
        chunk: &mut Chunk,
    ) -> Result<(Tensor, Tensor)> {
        let grad = m.score(x, t, cond)?;
        let z = chunk.normal()?;
        let c = 2.0 * alpha * self.snr * self.snr;
        if self.batch_mean_snr {
            // [S21]: grad_norm = ‖s_b‖.mean(), noise_norm = ‖z_b‖.mean(), one step for the whole batch.
            let gn = scalar(&row_norms(&grad)?.mean_all()?)?;
            let zn = scalar(&row_norms(&z)?.mean_all()?)?;
            let step = c * (zn / gn).powi(2);
            let x_mean = (x + grad.affine(step, 0.0)?)?;
            let x = (&x_mean + z.affine((2.0 * step).sqrt(), 0.0)?)?;
            Ok((x, x_mean))
        } else {
            // Per sample: ε_r = 2α snr² ‖z_r‖²/‖s_r‖², kept on the device as [R, 1, 1, 1].
            let step = (row_sq_norms(&z)? / row_sq_norms(&grad)?)?.affine(c, 0.0)?;
            let x_mean = (x + grad.broadcast_mul(&step)?)?;
            let x = (&x_mean + z.broadcast_mul(&step.affine(2.0, 0.0)?.sqrt()?)?)?;
            Ok((x, x_mean))
        }
    }

    /// One reverse-diffusion predictor step (\[S21\] `ReverseDiffusionPredictor.update_fn`): returns `(x, x_mean)`.
    fn reverse_diffusion<M: ScoreFn>(
        &self,
        m: &M,
        sde: &AnySde,
        x: &Tensor,
        t: f64,
        cond: &Tensor,
        chunk: &mut Chunk,
    ) -> Result<(Tensor, Tensor)> {
        let (f, g) = sde.discretize(x, t)?;
        let s = m.score(x, t, cond)?;
        let z = chunk.normal()?;
        let x_mean = ((x - f)? + s.affine(g * g, 0.0)?)?;
        let x = (&x_mean + z.affine(g, 0.0)?)?;
        Ok((x, x_mean))
    }
}

/// `Σ_{c,h,w} v²` per row, `[R, 1, 1, 1]`.
fn row_sq_norms(v: &Tensor) -> Result<Tensor> {
    Ok(v.sqr()?.sum_keepdim(3)?.sum_keepdim(2)?.sum_keepdim(1)?)
}

/// A 0-d tensor as f64 on the host.
fn scalar(v: &Tensor) -> Result<f64> {
    Ok(v.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// `‖v_r‖₂` per row, `[R, 1, 1, 1]`.
fn row_norms(v: &Tensor) -> Result<Tensor> {
    Ok(row_sq_norms(v)?.sqrt()?)
}

impl Sampler for PredictorCorrector {
    fn name(&self) -> String {
        let mut s = format!("pc(N={}, snr={}", self.n, self.snr);
        if self.corrector_steps != 1 {
            s += &format!(", corrector_steps={}", self.corrector_steps);
        }
        if self.batch_mean_snr {
            s += ", batch_mean_snr";
        }
        s + ")"
    }

    /// `N(1 + corrector_steps)` (\[S21\] `get_pc_sampler` returns `sde.N * (n_steps + 1)`).
    fn nfe(&self) -> usize {
        self.n * (1 + self.corrector_steps)
    }

    fn steps(&self) -> usize {
        self.n
    }

    fn validate(&self) -> Result<()> {
        if self.n < 2 {
            return Err(Error::Config(format!(
                "pc sampler needs N >= 2 noise levels, got {}",
                self.n
            )));
        }
        if !(self.snr.is_finite() && self.snr > 0.0) {
            return Err(Error::Config(format!(
                "pc sampler needs a finite snr > 0, got {}",
                self.snr
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
        let sde = sde_with_n(m.sde(), self.n)?;
        let mut x = chunk.normal_scaled(prior_std(&sde))?;
        let mut x_mean = x.clone();
        for t in time_grid(&sde, self.n) {
            // α_i = 1 − β_i for VP, read off the same discretization (G_i = √β_i) the predictor uses, so the index
            // rule i = ⌊t(N−1)⌋ lives only in sde.rs; 1 for VE ([S21] LangevinCorrector).
            let alpha = match &sde {
                AnySde::Vp(_) => 1.0 - sde.discretize(&x, t)?.1.powi(2),
                AnySde::Ve(_) => 1.0,
            };
            for _ in 0..self.corrector_steps {
                (x, _) = self.langevin(m, &x, t, alpha, cond, chunk)?;
            }
            (x, x_mean) = self.reverse_diffusion(m, &sde, &x, t, cond, chunk)?;
            chunk.step_done();
        }
        Ok(if self.noise_removal { x_mean } else { x })
    }
}
