//! Noise-level embeddings of the score network (docs/score-model.md §4).
//!
//! - [`GaussianFourierProjection`]: \[S21\] `layerspp.GaussianFourierProjection`, random Fourier features of the noise
//!   label (VE: `ln σ`, EDM: `¼ ln σ`), width `2·nf`.
//! - [`timestep_embedding`]: \[S21\] `layers.get_timestep_embedding` (the DDPM / Transformer sinusoidal embedding of
//!   `999·t`), width `nf`, for VP models.
//! - [`TimeEmbedding`]: either of the above followed by the two dense layers of \[S21\] `ncsnpp.NCSNpp`
//!   (`modules[1]`, `modules[2]`): `temb = Dense₁(SiLU(Dense₀(emb)))`, width `4·nf`.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Linear, Module, VarBuilder};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::config::{Embedding, ModelConfig};
use super::init::weight_and_bias;
use crate::sde::standard_normals_scaled;
use crate::{Error, Result};

/// ChaCha stream of the model seed that draws the Fourier matrix `W` (stream 0 is left to callers; the seeded
/// weight initializer uses streams with the top bit set).
pub const FOURIER_STREAM: u64 = 1;

/// Name of the Fourier matrix in checkpoints and in [`super::NcsnppUnet::constants`].
pub const FOURIER_W_NAME: &str = "temb.fourier.W";

/// \[S21\] `layerspp.GaussianFourierProjection(embedding_size = nf, scale)`: `emb(c) = [sin(2πcW), cos(2πcW)]` with a
/// fixed `W ~ N(0, scale²)` of size `nf`.
///
/// In \[S21\] `W` is an `nn.Parameter(requires_grad=False)`; here it is a plain constant tensor, never a `Var`, so no
/// optimiser can update it (docs/score-model.md §4). It is drawn on the host from `ChaCha8Rng::seed_from_u64(seed)`,
/// stream [`FOURIER_STREAM`], so it depends only on the model seed; checkpoints store it all the same.
#[derive(Debug, Clone)]
pub struct GaussianFourierProjection {
    /// `W`, shape `[nf]`.
    w: Tensor,
    /// `2π·W` as a row `[1, nf]` (the product order of \[S21\] is `c·W·2π`; folding `2π` into `W` once costs one f32
    /// rounding, far below the phase error of f32 arguments of O(10³) rad).
    w_2pi: Tensor,
}

impl GaussianFourierProjection {
    /// Draws `W ~ N(0, scale²)` of size `nf` from `seed` (stream [`FOURIER_STREAM`]).
    pub fn new(nf: usize, scale: f64, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(FOURIER_STREAM);
        let w = standard_normals_scaled(&mut rng, nf, scale);
        Self::from_weight(Tensor::from_vec(w, nf, device)?.to_dtype(dtype)?)
    }

    /// Uses a stored `W` (e.g. from a checkpoint); must be a finite vector.
    pub fn from_weight(w: Tensor) -> Result<Self> {
        if w.rank() != 1 {
            return Err(Error::Shape {
                what: FOURIER_W_NAME.into(),
                got: w.dims().to_vec(),
                expected: "[nf]".into(),
            });
        }
        let s = w.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        if !s.is_finite() {
            return Err(Error::NonFinite {
                what: FOURIER_W_NAME.into(),
                msg: "contains NaN or Inf".into(),
            });
        }
        let w = w.detach();
        let w_2pi = (&w * std::f64::consts::TAU)?.unsqueeze(0)?;
        Ok(GaussianFourierProjection { w, w_2pi })
    }

    /// The fixed matrix `W` (`[nf]`).
    pub fn weight(&self) -> &Tensor {
        &self.w
    }

    /// `[sin(2πcW), cos(2πcW)]`: `c` is `[B]`, the result `[B, 2nf]`.
    pub fn forward(&self, c: &Tensor) -> Result<Tensor> {
        let proj = c.unsqueeze(1)?.broadcast_mul(&self.w_2pi)?;
        Ok(Tensor::cat(&[&proj.sin()?, &proj.cos()?], 1)?)
    }
}

/// \[S21\] `layers.get_timestep_embedding(timesteps, dim, max_positions = 10000)`: with `h = dim/2` and
/// `f_i = exp(−i·ln(10⁴)/(h − 1))`, `emb(t) = [sin(t·f), cos(t·f)]` (zero-padded to `dim` if odd). `t` is `[B]`
/// (VP: `999·t`); returns `[B, dim]` in `t`'s dtype.
pub fn timestep_embedding(t: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    if half < 2 {
        return Err(Error::Config(format!(
            "timestep embedding dimension {dim} must be ≥ 4"
        )));
    }
    let step = (10_000f64).ln() / (half - 1) as f64;
    let freqs: Vec<f64> = (0..half).map(|i| (-(i as f64) * step).exp()).collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?.to_dtype(t.dtype())?;
    let arg = t.unsqueeze(1)?.broadcast_mul(&freqs)?;
    let emb = Tensor::cat(&[&arg.sin()?, &arg.cos()?], 1)?;
    if dim % 2 == 1 {
        Ok(emb.pad_with_zeros(D::Minus1, 0, 1)?)
    } else {
        Ok(emb)
    }
}

/// The noise-level embedding of \[S21\] `ncsnpp.NCSNpp`: features ([`GaussianFourierProjection`], width `2nf`, or
/// [`timestep_embedding`], width `nf`), then `Dense₀(→ 4nf)`, SiLU, `Dense₁(4nf → 4nf)`, both with
/// `default_init()` weights and zero biases. Residual blocks consume `SiLU(temb)` (each \[S21\] block applies `act`
/// before its own `Dense_0`; [`super::NcsnppUnet`] computes it once).
#[derive(Debug, Clone)]
pub struct TimeEmbedding {
    fourier: Option<GaussianFourierProjection>,
    nf: usize,
    dense0: Linear,
    dense1: Linear,
}

impl TimeEmbedding {
    /// Builds `temb.dense0`, `temb.dense1` under `vb` (the `temb` prefix is the caller's). The Fourier matrix is taken
    /// from `vb` at `fourier.W` when it holds one (a checkpoint loaded with `VarBuilder::from_tensors`), else drawn
    /// from `cfg.seed`; it never enters a `VarMap`.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let nf = cfg.nf;
        let (fourier, emb_dim) = match cfg.embedding {
            Embedding::Fourier => {
                let f = if vb.contains_tensor("fourier.W") {
                    let w = vb.get(nf, "fourier.W")?;
                    GaussianFourierProjection::from_weight(w)?
                } else {
                    GaussianFourierProjection::new(
                        nf,
                        cfg.fourier_scale,
                        cfg.seed,
                        vb.dtype(),
                        vb.device(),
                    )?
                };
                (Some(f), 2 * nf)
            }
            Embedding::Positional => (None, nf),
        };
        let (w0, b0) = weight_and_bias(&[4 * nf, emb_dim], 1.0, &vb.pp("dense0"))?;
        let (w1, b1) = weight_and_bias(&[4 * nf, 4 * nf], 1.0, &vb.pp("dense1"))?;
        Ok(TimeEmbedding {
            fourier,
            nf,
            dense0: Linear::new(w0, Some(b0)),
            dense1: Linear::new(w1, Some(b1)),
        })
    }

    /// The Fourier projection (`None` for the positional embedding).
    pub fn fourier(&self) -> Option<&GaussianFourierProjection> {
        self.fourier.as_ref()
    }

    /// `temb = Dense₁(SiLU(Dense₀(emb(label))))`: `label` is `[B]`, the result `[B, 4nf]` (before the blocks' SiLU).
    pub fn forward(&self, label: &Tensor) -> Result<Tensor> {
        let emb = match &self.fourier {
            Some(f) => f.forward(label)?,
            None => timestep_embedding(label, self.nf)?,
        };
        let h = self.dense0.forward(&emb)?.silu()?;
        Ok(self.dense1.forward(&h)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourier_features_match_definition() {
        let f = GaussianFourierProjection::new(8, 16.0, 3, DType::F64, &Device::Cpu).unwrap();
        let w = f.weight().to_vec1::<f64>().unwrap();
        let c = Tensor::new(&[0.5f64, -1.25], &Device::Cpu).unwrap();
        let e = f.forward(&c).unwrap().to_vec2::<f64>().unwrap();
        for (b, &cb) in [0.5f64, -1.25].iter().enumerate() {
            for (i, &wi) in w.iter().enumerate() {
                let a = std::f64::consts::TAU * cb * wi;
                assert!((e[b][i] - a.sin()).abs() < 1e-9);
                assert!((e[b][8 + i] - a.cos()).abs() < 1e-9);
            }
        }
        // Spread ≈ scale: the sample std of 8 draws of N(0, 16²) is well inside (4, 40).
        let sd = (w.iter().map(|v| v * v).sum::<f64>() / 8.0).sqrt();
        assert!(sd > 4.0 && sd < 40.0, "{sd}");
    }

    #[test]
    fn positional_embedding_matches_ddpm() {
        let t = Tensor::new(&[0.0f64, 999.0], &Device::Cpu).unwrap();
        let e = timestep_embedding(&t, 8).unwrap().to_vec2::<f64>().unwrap();
        let step = (10_000f64).ln() / 3.0;
        for (b, &tb) in [0.0f64, 999.0].iter().enumerate() {
            for i in 0..4 {
                let a = tb * (-(i as f64) * step).exp();
                assert!((e[b][i] - a.sin()).abs() < 1e-9);
                assert!((e[b][4 + i] - a.cos()).abs() < 1e-9);
            }
        }
    }
}
