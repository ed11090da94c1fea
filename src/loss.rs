//! Training objectives (docs/score-model.md §5): denoising score matching with λ(t) = σ(t)² (\[S21\]
//! `losses.get_sde_loss_fn`, Eq. 7 with `likelihood_weighting = False`) and the EDM loss (\[K22\] `EDMLoss`, Eq. 2
//! with λ(σ) = 1/c_out²).
//!
//! Both take their random draws (times, σ's, noise) as arguments, so the caller owns all randomness
//! (docs/score-model.md §1) and the tests can plug in exact scores.

use candle_core::{DType, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::edm::EdmPrecond;
use crate::precond::{rows, ScoreModel};
use crate::sde::AnySde;
use crate::Result;

/// Reduction over the dimensions of one sample (\[S21\] `reduce_mean`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    /// `½Σ` over dimensions (\[S21\] default, `reduce_mean = False`).
    Sum,
    /// Mean over dimensions.
    Mean,
}

/// What the losses need from a model: per-row scaled scores and denoisers. [`ScoreModel`] implements it; tests
/// implement it with closed-form scores.
pub trait TrainableScore {
    fn sde(&self) -> &AnySde;
    /// `std(t_b)·s(x, t_b | y)` per row.
    fn scaled_score_rows(
        &self,
        x: &Tensor,
        ts: &[f64],
        cond: &Tensor,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor>;
    /// `D(x; σ_b, y)` per row.
    fn denoise_rows(
        &self,
        x: &Tensor,
        sigmas: &[f64],
        cond: &Tensor,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor>;
}

impl TrainableScore for ScoreModel {
    fn sde(&self) -> &AnySde {
        ScoreModel::sde(self)
    }
    fn scaled_score_rows(
        &self,
        x: &Tensor,
        ts: &[f64],
        cond: &Tensor,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        ScoreModel::scaled_score_rows(self, x, ts, cond, dropout)
    }
    fn denoise_rows(
        &self,
        x: &Tensor,
        sigmas: &[f64],
        cond: &Tensor,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        ScoreModel::denoise_rows(self, x, sigmas, cond, dropout)
    }
}

/// A loss value: the scalar to differentiate and the per-sample mean squared residual `[B]` (the per-dimension
/// loss, comparable across resolutions and reductions).
#[derive(Debug, Clone)]
pub struct LossOutput {
    pub loss: Tensor,
    pub per_dim: Tensor,
}

impl LossOutput {
    /// Host values `(loss, mean per-dimension loss)` in f64.
    pub fn values(&self) -> Result<(f64, f64)> {
        let l = self.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let p = self
            .per_dim
            .to_dtype(DType::F64)?
            .mean_all()?
            .to_scalar::<f64>()?;
        Ok((l, p))
    }
}

/// Sums squared residuals `[B, …]` into the loss: `Sum` → batch mean of `½Σ`, `Mean` → batch mean of the mean.
fn reduce(sq: &Tensor, reduce: Reduce) -> Result<LossOutput> {
    let b = sq.dim(0)?;
    let per_sample = sq.reshape((b, ()))?;
    let d = per_sample.dim(1)? as f64;
    let sum = per_sample.sum(1)?;
    let per_dim = (&sum / d)?;
    let loss = match reduce {
        Reduce::Sum => (sum.mean(0)? * 0.5)?,
        Reduce::Mean => per_dim.mean(0)?,
    };
    Ok(LossOutput { loss, per_dim })
}

/// Denoising score matching (\[S21\] `get_sde_loss_fn`): `x_t = mean(x0, t) + std(t)·z`, residual
/// `std(t)·s_θ(x_t, t | y) + z`, i.e. λ(t) = σ(t)² weighting. `ts` has one time per row, `z` is `N(0, I)` noise of
/// `x0`'s shape.
pub fn dsm_loss(
    model: &impl TrainableScore,
    x0: &Tensor,
    cond: &Tensor,
    ts: &[f64],
    z: &Tensor,
    how: Reduce,
    dropout: Option<&mut ChaCha8Rng>,
) -> Result<LossOutput> {
    let (a, std): (Vec<f64>, Vec<f64>) = ts.iter().map(|&t| model.sde().mean_coeff_std(t)).unzip();
    let x_t = (x0.broadcast_mul(&rows(&a, x0)?)? + z.broadcast_mul(&rows(&std, x0)?)?)?;
    let s = model.scaled_score_rows(&x_t, ts, cond, dropout)?;
    reduce(&(s + z)?.sqr()?, how)
}

/// \[K22\] `EDMLoss`: `x = x0 + σn`, `λ(σ)·‖D(x; σ, y) − x0‖²` with `λ = (σ² + σ_d²)/(σσ_d)²`, summed over
/// dimensions (`Sum`, without \[S21\]'s ½) or averaged (`Mean`), mean over the batch. The reported per-dimension
/// value is the unweighted `σ²‖D − x0‖²/σ² = ‖(D − x0)/σ‖²/D`, the DSM residual, so curves compare with
/// [`dsm_loss`].
// The arguments are the loss's inputs (model, preconditioning, data, condition, draws, reduction, dropout RNG);
// bundling them into a struct would only hide that.
#[allow(clippy::too_many_arguments)]
pub fn edm_loss(
    model: &impl TrainableScore,
    precond: &EdmPrecond,
    x0: &Tensor,
    cond: &Tensor,
    sigmas: &[f64],
    n: &Tensor,
    how: Reduce,
    dropout: Option<&mut ChaCha8Rng>,
) -> Result<LossOutput> {
    let x = (x0 + n.broadcast_mul(&rows(sigmas, x0)?)?)?;
    let d = model.denoise_rows(&x, sigmas, cond, dropout)?;
    let err = (d - x0)?;
    let w: Vec<f64> = sigmas
        .iter()
        .map(|&s| precond.loss_weight(s).sqrt())
        .collect();
    let weighted = err.broadcast_mul(&rows(&w, x0)?)?.sqr()?;
    let inv: Vec<f64> = sigmas.iter().map(|s| 1.0 / s).collect();
    let residual = err.broadcast_mul(&rows(&inv, x0)?)?.sqr()?;
    let b = weighted.dim(0)?;
    let per_sample = weighted.reshape((b, ()))?;
    let dims = per_sample.dim(1)? as f64;
    let sum = per_sample.sum(1)?;
    let loss = match how {
        Reduce::Sum => sum.mean(0)?,
        Reduce::Mean => (sum / dims)?.mean(0)?,
    };
    let per_dim = (residual.reshape((b, ()))?.sum(1)? / dims)?;
    Ok(LossOutput { loss, per_dim })
}
