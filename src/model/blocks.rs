//! Building blocks of NCSN++-lite (docs/score-model.md §4): convolutions with \[S21\] initialization,
//! GroupNorm, host-seeded dropout and \[S21\] `layerspp.ResnetBlockBigGANpp`.

use std::f64::consts::FRAC_1_SQRT_2;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use super::conv::Conv;
use super::init::weight_and_bias;
use super::kernels::fused::{mul_mask, residual_out};
use super::kernels::norm::GroupNormAct;
use crate::{Error, Result};

/// Inverted dropout with a mask from the host RNG (docs/score-model.md §1: never candle's RNG, which cannot be seeded
/// on the CPU): each element is kept with probability `1 − p` and scaled by `1/(1 − p)`, as `torch.nn.Dropout` in train
/// mode.
///
/// One `u32` per element from `rng` (`fill_bytes`, little-endian), dropped when below `⌊p·2³²⌉`; the draws therefore
/// depend only on the RNG state and the element count. `p = 0` returns `x` without touching `rng`.
pub fn dropout(x: &Tensor, p: f64, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return Err(Error::Config(format!("dropout probability {p} ≥ 1")));
    }
    let _p = crate::prof::scope("dropout fwd (mask + mul)");
    let n = x.elem_count();
    let threshold = (p * 4_294_967_296.0).round().min(u32::MAX as f64) as u32;
    let keep = (1.0 / (1.0 - p)) as f32;
    let mut bytes = vec![0u8; 4 * n];
    rng.fill_bytes(&mut bytes);
    let mask: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| {
            let u = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if u < threshold {
                0.0
            } else {
                keep
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    mul_mask(x, &mask)
}

/// Resampling inside a [`ResnetBlockBigGAN`] (\[S21\] `up`/`down` flags, `fir = False`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Same resolution.
    Plain,
    /// Nearest-neighbour ×2 (\[S21\] `up_or_down_sampling.naive_upsample_2d`).
    Up,
    /// 2×2 average pool (\[S21\] `up_or_down_sampling.naive_downsample_2d`).
    Down,
}

impl Sampling {
    fn apply(self, x: &Tensor) -> Result<Tensor> {
        let _p = (self != Sampling::Plain).then(|| crate::prof::scope("resample fwd"));
        Ok(match self {
            Sampling::Plain => x.clone(),
            Sampling::Up => {
                let (_, _, h, w) = x.dims4()?;
                x.upsample_nearest2d(2 * h, 2 * w)?
            }
            Sampling::Down => x.avg_pool2d(2)?,
        })
    }
}

/// \[S21\] `layerspp.ResnetBlockBigGANpp` with `fir = False` (docs/score-model.md §4):
///
/// ```text
/// h = SiLU(GN₀(x));  up: h, x ← nearest×2;  down: h, x ← avgpool 2×2
/// h = Conv3x3₀(h) + Dense(SiLU(temb))[:, :, None, None]
/// h = Conv3x3₁(Dropout(SiLU(GN₁(h))))                     (Conv3x3₁ initialized at scale 1e-10)
/// x = Conv1x1(x)  if C_in ≠ C_out or up or down
/// out = (x + h)/√2  (skip_rescale; else x + h)
/// ```
///
/// Variables under the block's prefix: `gn0`, `conv0`, `dense`, `gn1`, `conv1`, `skip` (the \[S21\] `GroupNorm_0`,
/// `Conv_0`, `Dense_0`, `GroupNorm_1`, `Conv_1`, `Conv_2`).
#[derive(Debug, Clone)]
pub struct ResnetBlockBigGAN {
    /// GroupNorm₀ + SiLU.
    gn0: GroupNormAct,
    conv0: Conv,
    dense_w: Tensor,
    dense_b: Tensor,
    /// GroupNorm₁ + SiLU.
    gn1: GroupNormAct,
    conv1: Conv,
    skip: Option<Conv>,
    sampling: Sampling,
    dropout: f64,
    skip_rescale: bool,
}

impl ResnetBlockBigGAN {
    /// A block `in_ch → out_ch` with time-embedding width `temb_dim` (4nf).
    pub fn new(
        in_ch: usize,
        out_ch: usize,
        temb_dim: usize,
        sampling: Sampling,
        dropout: f64,
        skip_rescale: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let gn0 = GroupNormAct::new(in_ch, true, vb.pp("gn0"))?;
        let conv0 = Conv::new(in_ch, out_ch, 3, 1.0, vb.pp("conv0"))?;
        let (dense_w, dense_b) = weight_and_bias(&[out_ch, temb_dim], 1.0, &vb.pp("dense"))?;
        let gn1 = GroupNormAct::new(out_ch, true, vb.pp("gn1"))?;
        let conv1 = Conv::new(out_ch, out_ch, 3, 0.0, vb.pp("conv1"))?;
        let skip = if in_ch != out_ch || sampling != Sampling::Plain {
            Some(Conv::new(in_ch, out_ch, 1, 1.0, vb.pp("skip"))?)
        } else {
            None
        };
        Ok(ResnetBlockBigGAN {
            gn0,
            conv0,
            dense_w,
            dense_b,
            gn1,
            conv1,
            skip,
            sampling,
            dropout,
            skip_rescale,
        })
    }

    /// `x [B, C_in, H, W]`, `act_temb = SiLU(temb) [B, 4nf]`; `rng` enables dropout (train path). Returns
    /// `[B, C_out, H', W']` with `H' = 2H` (up), `H/2` (down) or `H`.
    pub fn forward(
        &self,
        x: &Tensor,
        act_temb: &Tensor,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let h = self.gn0.forward(x)?;
        let h = self.sampling.apply(&h)?;
        let x = self.sampling.apply(x)?;
        // Conv_0's bias and Dense_0(act(temb)) are both per-(sample, channel) constants: one [B, C_out] bias, fused
        // into the convolution.
        let t = act_temb
            .matmul(&self.dense_w.t()?)?
            .broadcast_add(&(&self.dense_b + self.conv0.bias())?)?;
        let h = self.conv0.forward_with_bias(&h, &t)?;
        let mut h = self.gn1.forward(&h)?;
        if let Some(rng) = rng {
            h = dropout(&h, self.dropout, rng)?;
        }
        let h = self.conv1.forward_no_bias(&h)?;
        // Conv_1's and the skip's biases are added once, with the residual sum and its rescaling (one fused op).
        let (x, bias) = match &self.skip {
            Some(c) => (c.forward_no_bias(&x)?, (self.conv1.bias() + c.bias())?),
            None => (x, self.conv1.bias().clone()),
        };
        let scale = if self.skip_rescale {
            FRAC_1_SQRT_2
        } else {
            1.0
        };
        residual_out(&x, &h, &bias, scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use rand_core::SeedableRng;

    #[test]
    fn dropout_keeps_expected_fraction_and_scale() {
        let x = Tensor::ones((4, 8, 32, 32), DType::F32, &Device::Cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let y = dropout(&x, 0.1, &mut rng).unwrap();
        let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let kept = v.iter().filter(|&&a| a != 0.0).count() as f64 / v.len() as f64;
        assert!((kept - 0.9).abs() < 0.01, "{kept}");
        assert!(v.iter().all(|&a| a == 0.0 || (a - 1.0 / 0.9).abs() < 1e-6));
        let mean = v.iter().map(|&a| a as f64).sum::<f64>() / v.len() as f64;
        assert!((mean - 1.0).abs() < 0.02, "{mean}");
        let mut rng2 = ChaCha8Rng::seed_from_u64(1);
        let y2 = dropout(&x, 0.1, &mut rng2).unwrap();
        assert_eq!(v, y2.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let z = dropout(&x, 0.0, &mut rng2).unwrap();
        assert_eq!(
            z.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0; v.len()]
        );
    }
}
