//! Convolutions of NCSN++-lite with \[S21\] initialization (`layers.ddpm_conv3x3`, `ddpm_conv1x1`). The arithmetic
//! runs in [`super::kernels::conv`] (the fast CPU kernel, or candle's `conv2d` elsewhere).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::init::weight_and_bias;
use super::kernels::conv::{conv2d, ConvGeom};
use crate::{Error, Result};

/// A 3×3 ("same" padding) or 1×1 convolution with \[S21\] `ddpm_conv3x3` / `ddpm_conv1x1` initialization
/// (`default_init(init_scale)` weight, zero bias), run by [`conv2d`].
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    geom: ConvGeom,
}

impl Conv {
    /// `weight [c_out, c_in, k, k]`, `bias [c_out]` at `vb/weight`, `vb/bias`; `kernel` is 1 or 3.
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        init_scale: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let geom = match kernel {
            1 => ConvGeom::VALID,
            3 => ConvGeom::SAME3,
            _ => {
                return Err(Error::Config(format!(
                    "conv kernel {kernel} (only 1 and 3 exist)"
                )))
            }
        };
        let (weight, bias) = weight_and_bias(&[c_out, c_in, kernel, kernel], init_scale, &vb)?;
        Ok(Conv { weight, bias, geom })
    }

    /// The convolution without its bias (`[B, C_out, H, W]`).
    pub fn forward_no_bias(&self, x: &Tensor) -> Result<Tensor> {
        conv2d(x, &self.weight, None, self.geom)
    }

    /// The bias `[C_out]` (for callers that fold it into another per-channel addition).
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// `conv(x) + bias` (the bias fused into the convolution on the fast path).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d(x, &self.weight, Some(&self.bias), self.geom)
    }

    /// `conv(x) + bias[b, c]` with a caller's bias (`[C_out]` or per sample `[B, C_out]`) instead of the module's
    /// own (fused into the convolution on the fast path).
    pub fn forward_with_bias(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        conv2d(x, &self.weight, Some(bias), self.geom)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;
    use crate::model::kernels::conv::tests::{randn, rel_diff};
    use crate::model::kernels::conv::{conv2d_candle, conv2d_fast};
    use crate::model::kernels::fused::add_channel_bias;

    /// The [`Conv`] module (bias fused) against candle's conv2d + bias, for both kernels.
    #[test]
    fn conv_module_matches_reference() {
        let dev = Device::Cpu;
        let vm = candle_nn::VarMap::new();
        let vb = crate::model::init::seeded_var_builder(&vm, 5, DType::F64, &dev);
        for k in [1, 3] {
            let conv = Conv::new(6, 4, k, 1.0, vb.pp(format!("c{k}"))).unwrap();
            let bias = (conv.bias() + 0.5).unwrap();
            let x = randn(&[2, 6, 5, 5], 2);
            let a = conv2d_fast(&x, &conv.weight, Some(&bias), conv.geom).unwrap();
            let b = x.conv2d(&conv.weight, k / 2, 1, 1, 1).unwrap();
            let b = add_channel_bias(&b, &bias).unwrap();
            assert!(rel_diff(&a, &b) < 1e-12);
            let c = conv.forward(&x).unwrap();
            let e = conv2d_candle(&x, &conv.weight, Some(conv.bias()), conv.geom).unwrap();
            assert!(rel_diff(&c, &e) < 1e-12);
        }
    }
}
