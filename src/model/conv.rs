//! Convolutions of NCSN++-lite with \[S21\] initialization (`layers.ddpm_conv3x3`, `ddpm_conv1x1`), and a faster CPU
//! path for them (design spec `score-model.md` §11).
//!
//! **Why not candle's conv2d on the CPU.** candle 0.11's CPU `conv2d` runs a tiled im2col + gemm with an
//! NCHW→NHWC copy per call; its backward computes ∂input with `conv_transpose2d`, a direct loop without gemm, and
//! ∂weight with a skinny conv2d. Measured on the 2-core box (loaded by other jobs, so absolute numbers are noisy)
//! for `[8, 32, 64, 64]`, 32 → 32 channels (0.6 GFLOP): conv2d forward ≈ 95–150 ms, `conv_transpose2d` ≈ 230–290
//! ms, ∂weight ≈ 90–150 ms, whereas a gemm of the same size takes ≈ 26 ms.
//!
//! **What we do instead** (CPU, f32/f64; [`ConvImpl::Auto`]): 3×3 convolutions as an explicit im2col and one batched
//! matmul,
//!
//! ```text
//! cols[b, 9c + 3k_y + k_x, y·W + x] = x[b, c, y + k_y − 1, x + k_x − 1]   (0 outside: "same" padding)
//! y[b] = W[C_out, 9C_in] · cols[b]
//! ```
//!
//! The whole convolution is one custom op: the forward pass builds the columns (one parallel copy) and multiplies;
//! the backward pass rebuilds them for `∂W = ∂y·colsᵀ` and maps `Wᵀ·∂y` back to the image with col2im (one
//! scatter-add), so forward, ∂input and ∂weight are all gemms and the `[B, 9C, H·W]` columns (9× the input) live only
//! during one op. 1×1 convolutions are a plain batched matmul. For the whole `cpu` preset at batch 8, 64², with
//! dropout (test `unet_cpu_preset_timing`, same machine, back to back): forward + backward 4.7 s with
//! [`ConvImpl::Auto`] against 7.9 s with [`ConvImpl::Candle`], peak RSS 1.34 GB against 1.25 GB. On other devices, and with
//! [`ConvImpl::Candle`], candle's conv2d is used; both paths compute the same function (tests compare forward and
//! gradients).

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Tensor, WithDType,
};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::init::weight_and_bias;
use crate::{Error, Result};

/// Which implementation runs 3×3 convolutions (process-wide; see [`set_conv_impl`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvImpl {
    /// im2col + matmul on the CPU for f32/f64, candle's `conv2d` elsewhere (the default).
    Auto,
    /// Always candle's `conv2d` (the reference; slower on the CPU, above all in the backward pass).
    Candle,
}

static CONV_IMPL: AtomicU8 = AtomicU8::new(0);

/// Selects the 3×3 convolution implementation for all networks of this process (for benchmarks and cross-checks;
/// both give the same results up to float rounding).
pub fn set_conv_impl(imp: ConvImpl) {
    CONV_IMPL.store(
        match imp {
            ConvImpl::Auto => 0,
            ConvImpl::Candle => 1,
        },
        Ordering::Relaxed,
    );
}

/// The current 3×3 convolution implementation.
pub fn conv_impl() -> ConvImpl {
    match CONV_IMPL.load(Ordering::Relaxed) {
        1 => ConvImpl::Candle,
        _ => ConvImpl::Auto,
    }
}

/// 3×3 "same" convolution without bias through candle's `conv2d`.
pub fn conv3x3_candle(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    Ok(x.conv2d(weight, 1, 1, 1, 1)?)
}

/// 3×3 "same" convolution without bias as im2col + batched matmul (CPU, f32/f64 only).
pub fn conv3x3_im2col(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let c = x.dims4()?.1;
    let (_, c_in, kh, kw) = weight.dims4()?;
    if (c_in, kh, kw) != (c, 3, 3) {
        return Err(Error::Shape {
            what: "conv3x3 weight".into(),
            got: weight.dims().to_vec(),
            expected: format!("[C_out, {c}, 3, 3]"),
        });
    }
    Ok(x.contiguous()?
        .apply_op2(&weight.contiguous()?, Conv3x3Im2col)?)
}

/// `W[C_out, 9C] · im2col(x)[b]` for contiguous CPU tensors (the forward product of [`Conv3x3Im2col`]).
fn im2col_matmul<T: WithDType>(
    x: &[T],
    weight: &[T],
    (b, c, h, w): (usize, usize, usize, usize),
    c_out: usize,
) -> candle_core::Result<Vec<T>> {
    let cols = Tensor::from_vec(im2col(x, h, w), (b, 9 * c, h * w), &Device::Cpu)?;
    let wm = Tensor::from_slice(weight, (c_out, 9 * c), &Device::Cpu)?;
    wm.broadcast_matmul(&cols)?.flatten_all()?.to_vec1::<T>()
}

/// 3×3 "same" convolution `(x [B, C, H, W], W [C_out, C, 3, 3]) → [B, C_out, H, W]` as one op whose forward and
/// backward are gemms on im2col columns. The columns are rebuilt in the backward pass instead of being kept from
/// the forward pass, so the op holds no more memory than candle's conv2d (keeping them tripled the peak RSS of a
/// `cpu`-preset training step at batch 8: 3.5 GB instead of 1.25 GB).
struct Conv3x3Im2col;

impl CustomOp2 for Conv3x3Im2col {
    fn name(&self) -> &'static str {
        "conv3x3-im2col"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims4()?;
        let c_out = l2.dims()[0];
        let shape = Shape::from((dims.0, c_out, dims.2, dims.3));
        match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(k)) => {
                let y = im2col_matmul(contiguous(x, l1)?, contiguous(k, l2)?, dims, c_out)?;
                Ok((CpuStorage::F32(y), shape))
            }
            (CpuStorage::F64(x), CpuStorage::F64(k)) => {
                let y = im2col_matmul(contiguous(x, l1)?, contiguous(k, l2)?, dims, c_out)?;
                Ok((CpuStorage::F64(y), shape))
            }
            _ => candle_core::bail!("conv3x3-im2col: f32 or f64 inputs of one dtype expected"),
        }
    }

    /// `∂W = Σ_b ∂y[b] · cols[b]ᵀ`, `∂x = col2im(Wᵀ · ∂y[b])`. Inputs are detached (as candle's own backward does),
    /// so the gradients carry no graph.
    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let c_out = weight.dim(0)?;
        let g = grad.detach().contiguous()?.reshape((b, c_out, h * w))?;
        let cols = x.detach().apply_op1_no_bwd(&Im2col)?;
        let dw = g.matmul(&cols.t()?)?.sum(0)?.reshape(weight.shape())?;
        drop(cols);
        let wt = weight.detach().reshape((c_out, 9 * c))?.t()?;
        let dcols = wt.broadcast_matmul(&g)?;
        let dx = dcols.apply_op1_no_bwd(&Col2im { h, w })?;
        Ok((Some(dx), Some(dw)))
    }
}

/// A 3×3 ("same" padding) or 1×1 convolution with \[S21\] `ddpm_conv3x3` / `ddpm_conv1x1` initialization
/// (`default_init(init_scale)` weight, zero bias).
///
/// 3×3 convolutions run as [`conv3x3_im2col`] or [`conv3x3_candle`] (see [`ConvImpl`]); 1×1 convolutions as a batched
/// matmul (`[C_out, C_in] × [B, C_in, H·W]`).
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    kernel: usize,
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
        if kernel != 1 && kernel != 3 {
            return Err(Error::Config(format!(
                "conv kernel {kernel} (only 1 and 3 exist)"
            )));
        }
        let (weight, bias) = weight_and_bias(&[c_out, c_in, kernel, kernel], init_scale, &vb)?;
        Ok(Conv {
            weight,
            bias,
            kernel,
        })
    }

    /// The convolution without its bias (`[B, C_out, H, W]`).
    pub fn forward_no_bias(&self, x: &Tensor) -> Result<Tensor> {
        if self.kernel == 3 {
            let cpu_float = x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64);
            if cpu_float && conv_impl() == ConvImpl::Auto {
                conv3x3_im2col(x, &self.weight)
            } else {
                conv3x3_candle(x, &self.weight)
            }
        } else {
            let (b, c, h, w) = x.dims4()?;
            let c_out = self.weight.dim(0)?;
            let wm = self.weight.reshape((c_out, c))?;
            let y = wm.broadcast_matmul(&x.reshape((b, c, h * w))?)?;
            Ok(y.reshape((b, c_out, h, w))?)
        }
    }

    /// The bias `[C_out]` (for callers that fold it into another per-channel addition).
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// `conv(x) + bias`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        add_channel_bias(&self.forward_no_bias(x)?, &self.bias)
    }
}

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

/// The contiguous slice of a storage, or an error.
fn contiguous<'a, T: WithDType>(s: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("im2col/col2im: input must be contiguous"),
    }
}

/// `[B, C, H, W]` → `[B, 9C, H·W]` (see the module doc); its adjoint is [`Col2im`].
struct Im2col;

fn im2col<T: WithDType>(x: &[T], h: usize, w: usize) -> Vec<T> {
    let hw = h * w;
    let mut out = vec![T::zero(); 9 * x.len()];
    out.par_chunks_mut(9 * hw)
        .zip(x.par_chunks(hw))
        .for_each(|(o, xc)| {
            for ky in 0..3 {
                for kx in 0..3 {
                    let row = &mut o[(3 * ky + kx) * hw..][..hw];
                    for y in 0..h {
                        // Source row y + ky − 1; rows outside the image stay zero.
                        let Some(sy) = (y + ky).checked_sub(1).filter(|&s| s < h) else {
                            continue;
                        };
                        let src = &xc[sy * w..][..w];
                        let dst = &mut row[y * w..][..w];
                        match kx {
                            0 => dst[1..].copy_from_slice(&src[..w - 1]),
                            1 => dst.copy_from_slice(src),
                            _ => dst[..w - 1].copy_from_slice(&src[1..]),
                        }
                    }
                }
            }
        });
    out
}

impl CustomOp1 for Im2col {
    fn name(&self) -> &'static str {
        "im2col3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let shape = Shape::from((b, 9 * c, h * w));
        match s {
            CpuStorage::F32(x) => Ok((CpuStorage::F32(im2col(contiguous(x, l)?, h, w)), shape)),
            CpuStorage::F64(x) => Ok((CpuStorage::F64(im2col(contiguous(x, l)?, h, w)), shape)),
            _ => candle_core::bail!("im2col3x3: f32 or f64 expected"),
        }
    }
}

/// Adjoint of [`Im2col`]: `[B, 9C, H·W]` → `[B, C, H, W]`, summing the nine shifted copies.
struct Col2im {
    h: usize,
    w: usize,
}

fn col2im<T: WithDType>(g: &[T], h: usize, w: usize) -> Vec<T> {
    let hw = h * w;
    let mut out = vec![T::zero(); g.len() / 9];
    out.par_chunks_mut(hw)
        .zip(g.par_chunks(9 * hw))
        .for_each(|(dx, gc)| {
            for ky in 0..3 {
                for kx in 0..3 {
                    let row = &gc[(3 * ky + kx) * hw..][..hw];
                    for y in 0..h {
                        let Some(sy) = (y + ky).checked_sub(1).filter(|&s| s < h) else {
                            continue;
                        };
                        let src = &row[y * w..][..w];
                        let dst = &mut dx[sy * w..][..w];
                        match kx {
                            0 => dst[..w - 1]
                                .iter_mut()
                                .zip(&src[1..])
                                .for_each(|(d, &s)| *d += s),
                            1 => dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s),
                            _ => dst[1..]
                                .iter_mut()
                                .zip(&src[..w - 1])
                                .for_each(|(d, &s)| *d += s),
                        }
                    }
                }
            }
        });
    out
}

impl CustomOp1 for Col2im {
    fn name(&self) -> &'static str {
        "col2im3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, c9, hw) = l.shape().dims3()?;
        if c9 % 9 != 0 || hw != self.h * self.w {
            candle_core::bail!("col2im3x3: bad input shape {:?}", l.dims());
        }
        let shape = Shape::from((b, c9 / 9, self.h, self.w));
        match s {
            CpuStorage::F32(g) => Ok((
                CpuStorage::F32(col2im(contiguous(g, l)?, self.h, self.w)),
                shape,
            )),
            CpuStorage::F64(g) => Ok((
                CpuStorage::F64(col2im(contiguous(g, l)?, self.h, self.w)),
                shape,
            )),
            _ => candle_core::bail!("col2im3x3: f32 or f64 expected"),
        }
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
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// im2col + matmul = candle conv2d: values, ∂x and ∂W, f64 and f32, including 1×1 and 1×N images.
    #[test]
    fn im2col_conv_matches_candle_conv2d() {
        for (dtype, tol) in [(DType::F64, 1e-11), (DType::F32, 1e-4)] {
            for &(b, c, co, h, w) in &[
                (2usize, 3usize, 5usize, 6usize, 6usize),
                (1, 4, 2, 1, 1),
                (3, 2, 3, 1, 7),
                (2, 5, 4, 9, 4),
            ] {
                let x =
                    Var::from_tensor(&randn(&[b, c, h, w], 1).to_dtype(dtype).unwrap()).unwrap();
                let k =
                    Var::from_tensor(&randn(&[co, c, 3, 3], 2).to_dtype(dtype).unwrap()).unwrap();
                let up = randn(&[b, co, h, w], 3).to_dtype(dtype).unwrap();
                let ya = conv3x3_im2col(&x, &k).unwrap();
                let yb = conv3x3_candle(&x, &k).unwrap();
                assert!(
                    max_diff(&ya, &yb) < tol,
                    "{dtype:?} {:?}: forward",
                    (b, c, co, h, w)
                );
                let ga = (&ya * &up).unwrap().sum_all().unwrap().backward().unwrap();
                let gb = (&yb * &up).unwrap().sum_all().unwrap().backward().unwrap();
                for (name, v) in [("x", &x), ("W", &k)] {
                    let d = max_diff(ga.get(v).unwrap(), gb.get(v).unwrap());
                    assert!(
                        d < tol * 10.0,
                        "{dtype:?} {:?}: d{name} differs by {d}",
                        (b, c, co, h, w)
                    );
                }
            }
        }
    }

    /// The col2im op is the adjoint of im2col: <im2col(x), g> = <x, col2im(g)>.
    #[test]
    fn col2im_is_adjoint_of_im2col() {
        let (h, w) = (5usize, 3usize);
        let x = randn(&[2, 3, h, w], 4);
        let g = randn(&[2, 27, h * w], 5);
        let cols = x.apply_op1_no_bwd(&Im2col).unwrap();
        let back = g.apply_op1_no_bwd(&Col2im { h, w }).unwrap();
        let lhs = (cols * &g)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let rhs = (x * back)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(
            (lhs - rhs).abs() < 1e-10 * (1.0 + lhs.abs()),
            "{lhs} vs {rhs}"
        );
    }

    #[test]
    fn conv1x1_matmul_equals_conv2d() {
        let dev = Device::Cpu;
        let vm = candle_nn::VarMap::new();
        let vb = super::super::init::seeded_var_builder(&vm, 5, DType::F64, &dev);
        let conv = Conv::new(6, 4, 1, 1.0, vb.pp("c")).unwrap();
        let x = Tensor::from_vec(
            crate::sde::standard_normals_f64(&mut ChaCha8Rng::seed_from_u64(2), 2 * 6 * 5 * 5),
            (2, 6, 5, 5),
            &dev,
        )
        .unwrap();
        let a = conv.forward_no_bias(&x).unwrap();
        let b = x.conv2d(&conv.weight, 0, 1, 1, 1).unwrap();
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f64>().unwrap() < 1e-12);
    }
}
