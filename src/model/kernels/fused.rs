//! Fused element-wise tails of the residual and attention blocks (CPU, f32/f64; candle ops elsewhere).
//!
//! candle's autograd pays for every graph node in the backward pass: each gradient it accumulates is a fresh
//! `zeros_like` plus an `add` (two activation-sized allocations and passes), and a product `a·b` also computes the
//! gradient of the factor that needs none (a dropout mask). The training profile (BENCHMARKS.md) put this
//! "remainder" of the backward pass at ≈ 40 % of it. The blocks therefore end in one op each instead of three to
//! five:
//!
//! - [`residual_out`]: `s·(x + h + bias[c])` (the skip-rescaled residual sum; it was add, broadcast add, affine);
//! - [`mul_mask`]: `h·mask` with a constant mask (dropout), whose backward computes only `∂h = ∂y·mask`.
//!
//! [`add_channel_bias`] is the unfused per-channel bias every layer falls back to (candle ops on any device).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::Result;

/// `h + bias[c]` for `h [B, C, …]`, `bias [C]`. The bias is first broadcast to a `[B, C, 1, …]` tensor so that the
/// backward pass sums `dh` over the contiguous trailing axes, then over the small `[B, C]`: candle's CPU reduction over
/// the axes (0, 2, 3) at once is an order of magnitude slower (≈ 15 ms vs ≈ 1 ms for `[8, 32, 64, 64]`).
pub fn add_channel_bias(h: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (b, c) = (h.dim(0)?, h.dim(1)?);
    let mut shape = vec![b, c];
    shape.resize(h.rank(), 1);
    let bias = bias.unsqueeze(0)?.broadcast_as((b, c))?.reshape(shape)?;
    Ok(h.broadcast_add(&bias)?)
}

fn cpu_float(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

fn slice<'a, T: WithDType>(s: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("fused op: operands must be contiguous"),
    }
}

/// `scale·(x + h + bias[c])` for `x, h [B, C, …]`, `bias [C]`.
pub fn residual_out(x: &Tensor, h: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    if cpu_float(x) && x.dims() == h.dims() && x.rank() >= 2 && bias.dims() == [x.dim(1)?] {
        Ok(x.contiguous()?.apply_op3(
            &h.contiguous()?,
            &bias.contiguous()?,
            ResidualOut { scale },
        )?)
    } else {
        let _p = crate::prof::scope("residual-out fwd (candle ops)");
        let sum = add_channel_bias(&(x + h)?, bias)?;
        Ok(if scale == 1.0 {
            sum
        } else {
            sum.affine(scale, 0.0)?
        })
    }
}

struct ResidualOut {
    scale: f64,
}

fn residual_fwd<T: WithDType>(x: &[T], h: &[T], bias: &[T], hw: usize, scale: f64) -> Vec<T> {
    let c = bias.len();
    let s = T::from_f64(scale);
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(hw)
        .zip(x.par_chunks(hw).zip(h.par_chunks(hw)))
        .enumerate()
        .for_each(|(i, (y, (x, h)))| {
            let b = bias[i % c];
            for ((y, &x), &h) in y.iter_mut().zip(x).zip(h) {
                *y = s * (x + h + b);
            }
        });
    y
}

impl CustomOp3 for ResidualOut {
    fn name(&self) -> &'static str {
        "residual-out"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let _p = crate::prof::scope("residual-out fwd");
        let hw: usize = l1.dims()[2..].iter().product();
        let shape = l1.shape().clone();
        Ok(match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(h), CpuStorage::F32(b)) => (
                CpuStorage::F32(residual_fwd(
                    slice(x, l1)?,
                    slice(h, l2)?,
                    slice(b, l3)?,
                    hw,
                    self.scale,
                )),
                shape,
            ),
            (CpuStorage::F64(x), CpuStorage::F64(h), CpuStorage::F64(b)) => (
                CpuStorage::F64(residual_fwd(
                    slice(x, l1)?,
                    slice(h, l2)?,
                    slice(b, l3)?,
                    hw,
                    self.scale,
                )),
                shape,
            ),
            _ => candle_core::bail!("residual-out: f32 or f64 operands of one dtype expected"),
        })
    }

    /// `∂x = ∂h = s·∂y` (one tensor for both), `∂bias[c] = s·Σ ∂y[·, c, ·]`.
    fn bwd(
        &self,
        x: &Tensor,
        _h: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let _p = crate::prof::scope("residual-out bwd");
        let g = grad.detach();
        let (b, c) = (x.dim(0)?, x.dim(1)?);
        let hw: usize = x.dims()[2..].iter().product();
        let gs = if self.scale == 1.0 {
            g.clone()
        } else {
            g.affine(self.scale, 0.0)?
        };
        // Sum over the contiguous pixels first, then over the batch (see `add_channel_bias`).
        let db = gs.reshape((b, c, hw))?.sum(2)?.sum(0)?;
        Ok((Some(gs.clone()), Some(gs), Some(db)))
    }
}

/// `h·mask` for a constant `mask` of `h`'s shape (dropout); only `h` gets a gradient.
pub fn mul_mask(h: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if cpu_float(h) && h.dims() == mask.dims() && h.dtype() == mask.dtype() {
        Ok(h.contiguous()?.apply_op2(&mask.contiguous()?, MulMask)?)
    } else {
        Ok(h.mul(mask)?)
    }
}

struct MulMask;

fn mul_slices<T: WithDType>(a: &[T], b: &[T]) -> Vec<T> {
    let mut y = vec![T::zero(); a.len()];
    y.par_chunks_mut(1 << 16)
        .zip(a.par_chunks(1 << 16).zip(b.par_chunks(1 << 16)))
        .for_each(|(y, (a, b))| {
            for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                *y = a * b;
            }
        });
    y
}

impl CustomOp2 for MulMask {
    fn name(&self) -> &'static str {
        "mul-mask"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let shape = l1.shape().clone();
        Ok(match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => (
                CpuStorage::F32(mul_slices(slice(a, l1)?, slice(b, l2)?)),
                shape,
            ),
            (CpuStorage::F64(a), CpuStorage::F64(b)) => (
                CpuStorage::F64(mul_slices(slice(a, l1)?, slice(b, l2)?)),
                shape,
            ),
            _ => candle_core::bail!("mul-mask: f32 or f64 operands of one dtype expected"),
        })
    }

    fn bwd(
        &self,
        _h: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.detach().contiguous()?;
        Ok((Some(g.apply_op2_no_bwd(&mask.detach(), &MulMask)?), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        let n = shape.iter().product();
        let v = crate::sde::standard_normals_f64(&mut ChaCha8Rng::seed_from_u64(seed), n);
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// The fused ops against their candle compositions: values and every gradient.
    #[test]
    fn fused_ops_match_candle_compositions() {
        let x = Var::from_tensor(&randn(&[3, 5, 4, 7], 1)).unwrap();
        let h = Var::from_tensor(&randn(&[3, 5, 4, 7], 2)).unwrap();
        let b = Var::from_tensor(&randn(&[5], 3)).unwrap();
        let mask = randn(&[3, 5, 4, 7], 4);
        let up = randn(&[3, 5, 4, 7], 5);
        for scale in [1.0, std::f64::consts::FRAC_1_SQRT_2] {
            let ya = residual_out(&x, &mul_mask(&h, &mask).unwrap(), &b, scale).unwrap();
            let yb = add_channel_bias(&(x.as_tensor() + h.mul(&mask).unwrap()).unwrap(), &b)
                .unwrap()
                .affine(scale, 0.0)
                .unwrap();
            assert!(max_diff(&ya, &yb) < 1e-12);
            let ga = (&ya * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&yb * &up).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &h, &b] {
                assert!(max_diff(ga.get(v).unwrap(), gb.get(v).unwrap()) < 1e-11);
            }
        }
    }
}
