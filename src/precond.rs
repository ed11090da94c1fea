//! The interfaces between a trained network and the samplers (design spec `score-model.md` §2, §5).
//!
//! Everything is parametrized by the noise level σ inside the network; the Tweedie relation
//! `D(x; σ, y) = x + σ² s(x; σ, y)` connects the denoiser and score views, so one VE-trained network can be sampled by
//! every sampler (the fair NFE comparison of spec §8).

use candle_core::Tensor;

use crate::sde::AnySde;
use crate::Result;

/// A conditional score `s(x, t | y) = ∇ₓ log p_t(x | y)` together with the forward SDE it belongs to (what the
/// reverse-SDE samplers of \[S21\] need: Euler–Maruyama, predictor–corrector, probability-flow ODE in `t`).
pub trait ScoreFn {
    /// The forward SDE whose marginals the score describes.
    fn sde(&self) -> &AnySde;
    /// `s(x, t | y)` for `x: [B, C_out, H, W]` at one time `t` for the whole batch, condition `y: [B, C_in, H, W]`.
    fn score(&self, x: &Tensor, t: f64, cond: &Tensor) -> Result<Tensor>;
}

/// A conditional denoiser `D(x; σ, y) ≈ E[x0 | x0 + σn = x, y]` (\[K22\] Eq. 2), in the VE/EDM parametrization.
pub trait Denoiser {
    /// `D(x; σ, y)` for `x: [B, C_out, H, W]` at one σ for the whole batch, condition `y: [B, C_in, H, W]`.
    fn denoise(&self, x: &Tensor, sigma: f64, cond: &Tensor) -> Result<Tensor>;
    /// The σ range the denoiser was trained on, `(σ_min, σ_max)`; samplers clamp their schedules to it.
    fn sigma_range(&self) -> (f64, f64);
}
