//! The interfaces between a trained network and the samplers (docs/score-model.md §2, §5).
//!
//! Everything is parametrized by the noise level σ inside the network; the Tweedie relation
//! `D(x; σ, y) = x + σ² s(x; σ, y)` connects the denoiser and score views, so one VE-trained network can be sampled by
//! every sampler (the fair NFE comparison of docs/samplers.md §8).

use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

use crate::edm::EdmPrecond;
use crate::model::{ModelConfig, NcsnppUnet, PrecondKind, SdeKind};
use crate::sde::{AnySde, VeSde, VpSde};
use crate::{Error, Result};

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

/// The tensor shape a network was built for: channels of the target (`C_out`) and condition (`C_in`) and the image
/// size. The sampling driver checks conditions against it and shapes the samples by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelShape {
    pub target_channels: usize,
    pub cond_channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ModelShape {
    /// Square `size × size` maps.
    pub fn square(target_channels: usize, cond_channels: usize, size: usize) -> Self {
        ModelShape {
            target_channels,
            cond_channels,
            height: size,
            width: size,
        }
    }
}

impl From<&ModelConfig> for ModelShape {
    /// The shape the network of `cfg` was built for (`image_size²`, `target_channels`, `cond_channels`).
    fn from(cfg: &ModelConfig) -> Self {
        ModelShape::square(cfg.target_channels, cfg.cond_channels, cfg.image_size)
    }
}

/// A model that can tell the sampling driver its [`ModelShape`]. [`ScoreModel`] implements it from its
/// [`ModelConfig`] (`ModelShape::from(&cfg)`).
pub trait HasModelShape {
    fn model_shape(&self) -> ModelShape;
}

/// A network together with its preconditioning and SDE (docs/score-model.md §5):
/// `D(x; σ, y) = c_skip·x + c_out·F(c_in·x, y, c_noise)` for `Ve`/`Edm`, `s(x, t) = −F(x, 999t)/std(t)` for `Vp`.
/// Implements [`ScoreFn`] and [`Denoiser`], so every sampler can use it.
#[derive(Debug, Clone)]
pub struct ScoreModel {
    net: NcsnppUnet,
    sde: AnySde,
    edm: EdmPrecond,
}

/// Per-row coefficients `[B, 1, 1, 1]` in `x`'s dtype and device.
pub(crate) fn rows(v: &[f64], x: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_vec(v.to_vec(), (v.len(), 1, 1, 1), x.device())?.to_dtype(x.dtype())?)
}

fn labels(v: &[f64], x: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_vec(v.to_vec(), v.len(), x.device())?.to_dtype(x.dtype())?)
}

impl ScoreModel {
    /// Wraps a network; its config must name σ_max for VE/EDM (set by training, docs/score-model.md §3).
    pub fn new(net: NcsnppUnet) -> Result<Self> {
        let cfg = net.config().clone();
        let sde = sde_of(&cfg)?;
        let edm = EdmPrecond::new(cfg.sigma_data)?;
        Ok(ScoreModel { net, sde, edm })
    }

    /// The forward SDE (inherent, so callers need not pick between the [`ScoreFn`] and training traits).
    pub fn sde(&self) -> &AnySde {
        &self.sde
    }

    pub fn net(&self) -> &NcsnppUnet {
        &self.net
    }

    pub fn config(&self) -> &ModelConfig {
        self.net.config()
    }

    fn check_rows(&self, x: &Tensor, n: usize) -> Result<()> {
        let b = x.dim(0)?;
        if b != n {
            return Err(Error::Shape {
                what: "noise levels".into(),
                got: vec![n],
                expected: format!("[{b}] (one per row of x)"),
            });
        }
        Ok(())
    }

    /// `D(x; σ_b, y)` with one σ per row (training and validation), VE/EDM parametrization. For `Vp` the VE state
    /// `x` is mapped to the VP time with the same σ, `x_vp = a·x`, and `D = x + σ² a s_vp(a x)`.
    pub fn denoise_rows(
        &self,
        x: &Tensor,
        sigmas: &[f64],
        cond: &Tensor,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        self.check_rows(x, sigmas.len())?;
        if let Some(s) = sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::invalid(
                "noise level σ",
                format!("{s} must be finite and > 0"),
            ));
        }
        match self.config().precond {
            PrecondKind::Ve => {
                let lbl: Vec<f64> = sigmas.iter().map(|s| s.ln()).collect();
                let f = self.net.forward(x, cond, &labels(&lbl, x)?, dropout)?;
                Ok((x + f.broadcast_mul(&rows(sigmas, x)?)?)?)
            }
            PrecondKind::Edm => {
                let e = &self.edm;
                let c = |g: fn(&EdmPrecond, f64) -> f64| -> Vec<f64> {
                    sigmas.iter().map(|&s| g(e, s)).collect()
                };
                let x_in = x.broadcast_mul(&rows(&c(EdmPrecond::c_in), x)?)?;
                let f =
                    self.net
                        .forward(&x_in, cond, &labels(&c(EdmPrecond::c_noise), x)?, dropout)?;
                let skip = x.broadcast_mul(&rows(&c(EdmPrecond::c_skip), x)?)?;
                Ok((skip + f.broadcast_mul(&rows(&c(EdmPrecond::c_out), x)?)?)?)
            }
            PrecondKind::Vp => {
                let ts: Vec<f64> = sigmas
                    .iter()
                    .map(|&s| self.sde.t_of_sigma_equiv(s))
                    .collect();
                let a: Vec<f64> = ts.iter().map(|&t| self.sde.mean_coeff_std(t).0).collect();
                let x_vp = x.broadcast_mul(&rows(&a, x)?)?;
                let s_std = self.scaled_score_rows(&x_vp, &ts, cond, dropout)?;
                // D = x + σ²·a·s_vp = x + σ²·a·(std·s_vp)/std.
                let k: Vec<f64> = ts
                    .iter()
                    .zip(sigmas)
                    .zip(&a)
                    .map(|((&t, &s), &a)| s * s * a / self.sde.mean_coeff_std(t).1)
                    .collect();
                Ok((x + s_std.broadcast_mul(&rows(&k, x)?)?)?)
            }
        }
    }

    /// `std(t_b)·s(x, t_b | y)` per row: the quantity the DSM loss compares with `−z` (\[S21\] `get_sde_loss_fn`).
    /// Computed without dividing and re-multiplying by σ where the preconditioning allows (VE: exactly `F`).
    pub fn scaled_score_rows(
        &self,
        x: &Tensor,
        ts: &[f64],
        cond: &Tensor,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        self.check_rows(x, ts.len())?;
        match self.config().precond {
            PrecondKind::Ve => {
                let lbl: Vec<f64> = ts.iter().map(|&t| self.sde.sigma_equiv(t).ln()).collect();
                self.net.forward(x, cond, &labels(&lbl, x)?, dropout)
            }
            PrecondKind::Vp => {
                let lbl: Vec<f64> = ts.iter().map(|&t| 999.0 * t).collect();
                Ok(self
                    .net
                    .forward(x, cond, &labels(&lbl, x)?, dropout)?
                    .neg()?)
            }
            PrecondKind::Edm => {
                let sig: Vec<f64> = ts.iter().map(|&t| self.sde.sigma_equiv(t)).collect();
                let d = self.denoise_rows(x, &sig, cond, dropout)?;
                let inv: Vec<f64> = sig.iter().map(|s| 1.0 / s).collect();
                Ok((d - x)?.broadcast_mul(&rows(&inv, x)?)?)
            }
        }
    }
}

/// The SDE named by a model config (VE needs σ_max).
pub fn sde_of(cfg: &ModelConfig) -> Result<AnySde> {
    let s = &cfg.sde;
    Ok(match s.kind {
        SdeKind::Ve => {
            let sigma_max = s.sigma_max.ok_or_else(|| {
                Error::Config(
                    "model.sde.sigma_max is not set (training sets it by Technique 1; a config for inference must \
                     name it)"
                        .into(),
                )
            })?;
            AnySde::Ve(VeSde::new(s.sigma_min, sigma_max, s.n)?)
        }
        SdeKind::Vp => AnySde::Vp(VpSde::new(s.beta_min, s.beta_max, s.n)?),
    })
}

impl ScoreFn for ScoreModel {
    fn sde(&self) -> &AnySde {
        &self.sde
    }

    /// `s(x, t | y)` for the whole batch at one `t`.
    fn score(&self, x: &Tensor, t: f64, cond: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let s = self.scaled_score_rows(x, &vec![t; b], cond, None)?;
        let (_, std) = self.sde.mean_coeff_std(t);
        Ok((s * (1.0 / std))?)
    }
}

impl Denoiser for ScoreModel {
    fn denoise(&self, x: &Tensor, sigma: f64, cond: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        self.denoise_rows(x, &vec![sigma; b], cond, None)
    }

    fn sigma_range(&self) -> (f64, f64) {
        match &self.sde {
            AnySde::Ve(s) => (s.sigma_min(), s.sigma_max()),
            AnySde::Vp(_) => (
                self.sde
                    .sigma_equiv(crate::sde::Sde::sampling_eps(&self.sde)),
                self.sde.sigma_equiv(1.0),
            ),
        }
    }
}

impl HasModelShape for ScoreModel {
    fn model_shape(&self) -> ModelShape {
        ModelShape::from(self.config())
    }
}
