//! Self-attention over pixels (docs/score-model.md §4): \[S21\] `layerspp.AttnBlockpp` (the DDPM block
//! `layers.AttnBlock` with `skip_rescale`).

use std::f64::consts::FRAC_1_SQRT_2;

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

use super::init::weight_and_bias;
use super::kernels::fused::{add_channel_bias, residual_out};
use super::kernels::norm::GroupNormAct;
use crate::Result;

/// \[S21\] `layerspp.AttnBlockpp(channels, skip_rescale, init_scale = 0)`:
///
/// ```text
/// h = GN(x);  q, k, v = NIN₀(h), NIN₁(h), NIN₂(h)               (1×1 "network in network", C → C)
/// w[b, i, j] = softmax_j(q_i · k_j / √C)   over the H·W pixels
/// out = (x + NIN₃(Σ_j w[b, i, j] v_j))/√2                         (skip_rescale; NIN₃ initialized at 1e-10)
/// ```
///
/// Initialization as \[S21\] `layers.NIN`: `default_init(0.1)` for q, k, v (the `NIN` default `init_scale = 0.1`),
/// `default_init(0 → 1e-10)` for the output projection, zero biases. Variables under the block's prefix: `gn`, `q`,
/// `k`, `v`, `out`, each NIN a `weight [C_out, C_in]` and `bias [C_out]` (\[S21\] stores `W` transposed, `[in, out]`).
///
/// Everything stays channel-first, `[B, C, N]` with `N = H·W`: the projections are `[C, C] × [B, C, N]`
/// batched matmuls, the scores `qᵀk` and the mix `v·wᵀ` use transposed views, so the block makes no layout copies and
/// its backward pass is all gemms. q, k and v come from one matmul with the stacked `[3C, C]` weight; the `1/√C`
/// factor is folded into the q rows of that weight.
#[derive(Debug, Clone)]
pub struct AttnBlock {
    gn: GroupNormAct,
    q: (Tensor, Tensor),
    k: (Tensor, Tensor),
    v: (Tensor, Tensor),
    out: (Tensor, Tensor),
    channels: usize,
    skip_rescale: bool,
}

impl AttnBlock {
    pub fn new(channels: usize, skip_rescale: bool, vb: VarBuilder) -> Result<Self> {
        let c = channels;
        Ok(AttnBlock {
            gn: GroupNormAct::new(c, false, vb.pp("gn"))?,
            q: weight_and_bias(&[c, c], 0.1, &vb.pp("q"))?,
            k: weight_and_bias(&[c, c], 0.1, &vb.pp("k"))?,
            v: weight_and_bias(&[c, c], 0.1, &vb.pp("v"))?,
            out: weight_and_bias(&[c, c], 0.0, &vb.pp("out"))?,
            channels,
            skip_rescale,
        })
    }

    /// `x [B, C, H, W]` → `[B, C, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let _p = crate::prof::scope("attention fwd (incl. its GN)");
        let (b, c, hh, ww) = x.dims4()?;
        let n = hh * ww;
        let h = self.gn.forward(x)?.reshape((b, c, n))?;
        let scale = 1.0 / (self.channels as f64).sqrt();
        let w_qkv = Tensor::cat(&[&self.q.0.affine(scale, 0.0)?, &self.k.0, &self.v.0], 0)?;
        let b_qkv = Tensor::cat(&[&self.q.1.affine(scale, 0.0)?, &self.k.1, &self.v.1], 0)?;
        let qkv = add_channel_bias(&w_qkv.broadcast_matmul(&h)?, &b_qkv)?; // [B, 3C, N]
        let q = qkv.narrow(1, 0, c)?;
        let k = qkv.narrow(1, c, c)?;
        let v = qkv.narrow(1, 2 * c, c)?;
        let w = softmax_last_dim(&q.t()?.matmul(&k)?)?; // [B, N(i), N(j)]
        let a = v.matmul(&w.t()?)?; // [B, C, N(i)]
        let o = self.out.0.broadcast_matmul(&a)?.reshape((b, c, hh, ww))?;
        let scale = if self.skip_rescale {
            FRAC_1_SQRT_2
        } else {
            1.0
        };
        residual_out(x, &o, &self.out.1, scale)
    }
}

/// Softmax over the last dimension, differentiable (`candle_nn::ops::softmax_last_dim` has no backward). The
/// subtracted row maximum is detached: softmax does not depend on it, so its gradient is zero anyway.
fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&s)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    /// The block against a direct per-pixel evaluation of the \[S21\] einsum formulation, in f64.
    #[test]
    fn attention_matches_reference_loops() {
        let dev = Device::Cpu;
        let (b, c, hh, ww) = (2usize, 8usize, 3usize, 4usize);
        let vm = VarMap::new();
        let vb = super::super::init::seeded_var_builder(&vm, 1, DType::F64, &dev);
        let blk = AttnBlock::new(c, true, vb).unwrap();
        // Give the output projection and the biases O(1) values so the test sees them.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for (name, var) in vm.data().lock().unwrap().iter() {
            if name.starts_with("out") || name.ends_with("bias") {
                let z = crate::sde::standard_normals_f64(&mut rng, var.elem_count());
                var.set(&Tensor::from_vec(z, var.shape(), &dev).unwrap())
                    .unwrap();
            }
        }
        let blk_vals = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let xv = crate::sde::standard_normals_f64(&mut rng, b * c * hh * ww);
        let x = Tensor::from_vec(xv.clone(), (b, c, hh, ww), &dev).unwrap();
        let y = blk_vals(&blk.forward(&x).unwrap());
        let hn = blk_vals(&blk.gn.forward(&x).unwrap());
        let n = hh * ww;
        let (wq, bq) = (blk_vals(&blk.q.0), blk_vals(&blk.q.1));
        let (wk, bk) = (blk_vals(&blk.k.0), blk_vals(&blk.k.1));
        let (wv, bv) = (blk_vals(&blk.v.0), blk_vals(&blk.v.1));
        let (wo, bo) = (blk_vals(&blk.out.0), blk_vals(&blk.out.1));
        let nin =
            |w: &[f64], bias: &[f64], src: &dyn Fn(usize, usize) -> f64, co: usize, p: usize| {
                bias[co] + (0..c).map(|ci| w[co * c + ci] * src(ci, p)).sum::<f64>()
            };
        for bi in 0..b {
            let hsrc = |ci: usize, p: usize| hn[(bi * c + ci) * n + p];
            let q: Vec<Vec<f64>> = (0..n)
                .map(|p| (0..c).map(|co| nin(&wq, &bq, &hsrc, co, p)).collect())
                .collect();
            let k: Vec<Vec<f64>> = (0..n)
                .map(|p| (0..c).map(|co| nin(&wk, &bk, &hsrc, co, p)).collect())
                .collect();
            let v: Vec<Vec<f64>> = (0..n)
                .map(|p| (0..c).map(|co| nin(&wv, &bv, &hsrc, co, p)).collect())
                .collect();
            let mut att = vec![vec![0.0; c]; n];
            for i in 0..n {
                let s: Vec<f64> = (0..n)
                    .map(|j| (0..c).map(|d| q[i][d] * k[j][d]).sum::<f64>() / (c as f64).sqrt())
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for j in 0..n {
                    for d in 0..c {
                        att[i][d] += e[j] / z * v[j][d];
                    }
                }
            }
            let asrc = |ci: usize, p: usize| att[p][ci];
            for co in 0..c {
                for p in 0..n {
                    let o = nin(&wo, &bo, &asrc, co, p);
                    let idx = (bi * c + co) * n + p;
                    let want = (xv[idx] + o) * FRAC_1_SQRT_2;
                    assert!((y[idx] - want).abs() < 1e-10, "{} vs {want}", y[idx]);
                }
            }
        }
    }
}
