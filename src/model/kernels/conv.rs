//! The convolution kernel of NCSN++-lite's layers ([`crate::model::conv::Conv`]): a fast CPU convolution and the
//! dispatch between it and candle's `conv2d` (BENCHMARKS.md, "Training").
//!
//! **Why not candle's conv2d on the CPU.** candle 0.11's CPU `conv2d` copies the input to NHWC and runs a tiled
//! im2col + gemm; its backward computes ∂input with `conv_transpose2d`, a direct loop without gemm, and ∂weight
//! with a skinny conv2d. On the 2-core box it reaches 4–19 % of the machine's peak forward and 2–8 % backward
//! (`benches/conv.rs`); its backward also fails when the stride does not divide `H + 2p − span` and `W + 2p − span`
//! alike (one `output_padding` for both axes).
//!
//! **[`FastConv2d`]** (CPU, f32/f64; [`ConvImpl::Auto`]): any conv2d with groups = 1 — kernel size, stride,
//! padding, dilation — as implicit im2col + gemm,
//!
//! ```text
//! cols[(c·k_h + k_y)·k_w + k_x, o_y·W_o + o_x] = x[c, o_y·s − p + k_y·d, o_x·s − p + k_x·d]   (0 outside)
//! y[b] = W[C_out, C_in·k_h·k_w] · cols(x[b]) + bias            (bias [C_out] or per sample [B, C_out])
//! ```
//!
//! built per image in column tiles that stay in cache (`im2col.rs`), each tile one `gemm` call (the crate candle uses) writing
//! into the output in place on top of the pre-filled bias. 1×1 stride-1 convolutions skip the copy (the image is its
//! own column matrix). The backward pass rebuilds each tile once and uses it for `∂W += ∂y·colsᵀ` (accumulated in
//! place), `∂x += col2im(Wᵀ·∂y)` and `∂bias`. Images are spread over the rayon threads (single-threaded gemms) when
//! the batch fills them, else processed one by one with a parallel gemm. The columns live only inside one op, so it
//! holds no more memory than candle's conv2d. With [`ConvImpl::Candle`], and on other devices, candle's conv2d
//! runs; tests compare both (values and all gradients) on random shapes.

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Storage, Tensor, WithDType,
};
use gemm::Parallelism;
use rayon::prelude::*;

use super::fused::add_channel_bias;
pub use super::im2col::ConvGeom;
use super::im2col::{col2im, im2col_tile, Dims};
use crate::{prof, Error, Result};

/// Which implementation runs the convolutions (process-wide; see [`set_conv_impl`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvImpl {
    /// [`FastConv2d`] on the CPU for f32/f64, candle's `conv2d` elsewhere (the default).
    Auto,
    /// Always candle's `conv2d` (the reference; slower on the CPU, above all in the backward pass).
    Candle,
}

static CONV_IMPL: AtomicU8 = AtomicU8::new(0);

/// Selects the convolution implementation for all networks of this process (for benchmarks and cross-checks;
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

/// The current convolution implementation.
pub fn conv_impl() -> ConvImpl {
    match CONV_IMPL.load(Ordering::Relaxed) {
        1 => ConvImpl::Candle,
        _ => ConvImpl::Auto,
    }
}

/// `conv2d(x, weight) (+ bias)` for `x [B, C_in, H, W]`, `weight [C_out, C_in, k_h, k_w]`, `bias [C_out]` or per
/// sample `[B, C_out]`, through
/// [`FastConv2d`] (CPU, f32/f64, [`ConvImpl::Auto`]) or candle's `conv2d` (+ [`add_channel_bias`]) otherwise. Both
/// are differentiable in all inputs.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    geom: ConvGeom,
) -> Result<Tensor> {
    let cpu_float = x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64);
    if cpu_float && conv_impl() == ConvImpl::Auto {
        conv2d_fast(x, weight, bias, geom)
    } else {
        conv2d_candle(x, weight, bias, geom)
    }
}

/// The reference: candle's `conv2d` (+ [`add_channel_bias`]).
pub fn conv2d_candle(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    geom: ConvGeom,
) -> Result<Tensor> {
    // Forward only: the backward pass of candle's conv2d runs inside candle's autograd, out of reach of a scope.
    let flops = if prof::enabled() {
        candle_conv_flops(x, weight, geom)?
    } else {
        0.0
    };
    let _p = prof::scope_flops("conv fwd (candle conv2d + bias)", flops);
    let y = x.conv2d(weight, geom.padding, geom.stride, geom.dilation, 1)?;
    match bias {
        Some(b) if b.rank() == 2 => {
            let (bb, c) = b.dims2()?;
            Ok(y.broadcast_add(&b.reshape((bb, c, 1, 1))?)?)
        }
        Some(b) => add_channel_bias(&y, b),
        None => Ok(y),
    }
}

/// Multiply-adds × 2 of a convolution (for the profile's GFLOP/s).
fn candle_conv_flops(x: &Tensor, weight: &Tensor, geom: ConvGeom) -> Result<f64> {
    let ((b, _, h, w), (co, ci, kh, kw)) = (x.dims4()?, weight.dims4()?);
    let out =
        |n: usize, k: usize| (n + 2 * geom.padding - geom.dilation * (k - 1) - 1) / geom.stride + 1;
    Ok(2.0 * (b * co * ci * kh * kw * out(h, kh) * out(w, kw)) as f64)
}

/// [`FastConv2d`] (CPU f32/f64 tensors only; errors elsewhere).
pub fn conv2d_fast(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    geom: ConvGeom,
) -> Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    let (_, c_in, kh, kw) = weight.dims4()?;
    if c_in != c {
        return Err(Error::Shape {
            what: "conv2d weight".into(),
            got: weight.dims().to_vec(),
            expected: format!("[C_out, {c}, k_h, k_w]"),
        });
    }
    if geom.stride == 0 || geom.dilation == 0 {
        return Err(Error::Config(format!("conv2d: {geom:?}")));
    }
    let span = |k: usize| geom.dilation * (k - 1) + 1;
    if h + 2 * geom.padding < span(kh) || w + 2 * geom.padding < span(kw) {
        return Err(Error::Shape {
            what: "conv2d input (smaller than the kernel)".into(),
            got: x.dims().to_vec(),
            expected: format!("H, W ≥ kernel span − 2·padding for {geom:?}"),
        });
    }
    let op = FastConv2d { geom };
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    Ok(match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, op)?,
        None => x.apply_op2(&weight, op)?,
    })
}

/// Convolution as implicit-im2col + gemm on the CPU (the module doc): forward `y[b] = W · cols(x[b]) (+ bias)`, one
/// backward pass that rebuilds each column tile once and uses it for `∂W += ∂y[b] · colsᵀ`, `∂x[b] += col2im(Wᵀ · ∂y[b])`
/// and `∂bias += Σ ∂y[b]`. Applied as [`CustomOp2`] `(x, W)` or [`CustomOp3`] `(x, W, bias)`.
#[derive(Debug, Clone, Copy)]
pub struct FastConv2d {
    pub geom: ConvGeom,
}

/// The contiguous slice of a storage, or an error.
fn contiguous<'a, T: WithDType>(s: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("fast-conv2d: operands must be contiguous"),
    }
}

/// Whether to give each rayon task whole images (single-threaded gemms) rather than run the images one after the
/// other with a parallel gemm: when there are enough images to keep every thread busy.
fn split_images(b: usize) -> bool {
    let nt = rayon::current_num_threads();
    nt > 1 && b >= nt && (b.is_multiple_of(nt) || b >= 4 * nt)
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]` with row/column strides (elements) for each operand, `dst` row-major
/// with row stride `dst_rs`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_acc<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const T,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const T,
    (rhs_rs, rhs_cs): (usize, usize),
    par: Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        T::from_f64(1.0),
        T::from_f64(1.0),
        false,
        false,
        false,
        par,
    );
}

/// Forward pass of one image: `y [C_out, H_o·W_o] = W · cols(x) (+ bias)`.
fn fwd_image<T: WithDType>(
    x: &[T],
    wt: &[T],
    bias: Option<&[T]>,
    d: &Dims,
    y: &mut [T],
    buf: &mut Vec<T>,
    par: bool,
) {
    let (k, hwo, nb) = (d.k(), d.hwo(), d.tile());
    let gp = if par {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    if let Some(bias) = bias {
        for (row, &bv) in y.chunks_mut(hwo).zip(bias) {
            row.fill(bv);
        }
    }
    if d.pointwise() {
        // SAFETY: y is [co, hwo], wt [co, k], x [k, hwo] with k = c, hwo = hw; all in bounds.
        unsafe {
            gemm_acc(
                (d.co, hwo, k),
                y.as_mut_ptr(),
                hwo,
                bias.is_some(),
                wt.as_ptr(),
                (k, 1),
                x.as_ptr(),
                (hwo, 1),
                gp,
            )
        };
        return;
    }
    buf.resize(k * nb, T::zero());
    let mut n0 = 0;
    while n0 < hwo {
        let n1 = (n0 + nb).min(hwo);
        im2col_tile(x, d, n0..n1, buf, par);
        // SAFETY: the tile writes columns n0..n1 of y [co, hwo] (row stride hwo); buf holds [k, n1 − n0].
        unsafe {
            gemm_acc(
                (d.co, n1 - n0, k),
                y.as_mut_ptr().add(n0),
                hwo,
                bias.is_some(),
                wt.as_ptr(),
                (k, 1),
                buf.as_ptr(),
                (n1 - n0, 1),
                gp,
            )
        };
        n0 = n1;
    }
}

/// Forward pass over the batch.
fn fwd<T: WithDType>(x: &[T], wt: &[T], bias: Option<&[T]>, d: &Dims) -> Vec<T> {
    let _p = prof::scope_flops(
        if d.pointwise() {
            "conv 1x1 fwd"
        } else {
            "conv kxk fwd"
        },
        d.flops(),
    );
    let (img_in, img_out) = (d.c * d.hw(), d.co * d.hwo());
    let mut y = vec![T::zero(); d.b * img_out];
    // A `[B, C_out]` bias is per sample, a `[C_out]` one shared.
    let bias_of = |i: usize| {
        bias.map(|b| {
            if b.len() == d.co {
                b
            } else {
                &b[i * d.co..][..d.co]
            }
        })
    };
    if split_images(d.b) {
        y.par_chunks_mut(img_out)
            .zip(x.par_chunks(img_in))
            .enumerate()
            .for_each_init(Vec::new, |buf, (i, (yb, xb))| {
                fwd_image(xb, wt, bias_of(i), d, yb, buf, false)
            });
    } else {
        let mut buf = Vec::new();
        for (i, (yb, xb)) in y.chunks_mut(img_out).zip(x.chunks(img_in)).enumerate() {
            fwd_image(xb, wt, bias_of(i), d, yb, &mut buf, true);
        }
    }
    y
}

/// Per-task state of the backward pass: the `∂W` accumulator and the two column buffers.
struct BwdAcc<T> {
    dw: Vec<T>,
    cols: Vec<T>,
    dcols: Vec<T>,
}

impl<T: WithDType> BwdAcc<T> {
    fn new(d: &Dims) -> Self {
        BwdAcc {
            dw: vec![T::zero(); d.co * d.k()],
            cols: Vec::new(),
            dcols: Vec::new(),
        }
    }
}

/// `Σ v` with eight independent partial sums (vectorizable).
fn sum8<T: WithDType>(v: &[T]) -> T {
    let mut p = [T::zero(); 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for (a, &b) in p.iter_mut().zip(c) {
            *a += b;
        }
    }
    it.remainder()
        .iter()
        .fold(p.iter().fold(T::zero(), |a, &b| a + b), |a, &b| a + b)
}

/// Backward pass of one image: `∂W += ∂y · colsᵀ`, `∂x = col2im(Wᵀ · ∂y)` (into the zeroed `dx`),
/// `db[c] = Σ_pixels ∂y[c]` (this image's bias gradient).
#[allow(clippy::too_many_arguments)]
fn bwd_image<T: WithDType>(
    x: &[T],
    wt: &[T],
    g: &[T],
    d: &Dims,
    dx: &mut [T],
    db: &mut [T],
    acc: &mut BwdAcc<T>,
    par: bool,
) {
    let (k, hwo, nb) = (d.k(), d.hwo(), d.tile());
    let gp = if par {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    for (s, row) in db.iter_mut().zip(g.chunks(hwo)) {
        *s = sum8(row);
    }
    if d.pointwise() {
        let _p = prof::scope_flops("thread-s: conv 1x1 dW gemm", 2.0 * (d.co * k * hwo) as f64);
        // SAFETY: dw [co, k] += g [co, hwo] · xᵀ (x [k, hwo]); dx [k, hwo] = Wᵀ · g.
        unsafe {
            gemm_acc(
                (d.co, k, hwo),
                acc.dw.as_mut_ptr(),
                k,
                true,
                g.as_ptr(),
                (hwo, 1),
                x.as_ptr(),
                (1, hwo),
                gp,
            );
        }
        drop(_p);
        let _p = prof::scope_flops("thread-s: conv 1x1 dx gemm", 2.0 * (d.co * k * hwo) as f64);
        unsafe {
            gemm_acc(
                (k, hwo, d.co),
                dx.as_mut_ptr(),
                hwo,
                false,
                wt.as_ptr(),
                (1, k),
                g.as_ptr(),
                (hwo, 1),
                gp,
            );
        }
        return;
    }
    acc.cols.resize(k * nb, T::zero());
    acc.dcols.resize(k * nb, T::zero());
    let mut n0 = 0;
    while n0 < hwo {
        let n1 = (n0 + nb).min(hwo);
        let m = n1 - n0;
        let p = prof::scope_flops(
            "thread-s: conv kxk im2col+dW gemm",
            2.0 * (d.co * k * m) as f64,
        );
        im2col_tile(x, d, n0..n1, &mut acc.cols, par);
        // SAFETY: dw [co, k] += g[:, n0..n1] · colsᵀ, cols [k, m]; dcols [k, m] = Wᵀ · g[:, n0..n1].
        unsafe {
            gemm_acc(
                (d.co, k, m),
                acc.dw.as_mut_ptr(),
                k,
                true,
                g.as_ptr().add(n0),
                (hwo, 1),
                acc.cols.as_ptr(),
                (1, m),
                gp,
            );
        }
        drop(p);
        let _p = prof::scope_flops(
            "thread-s: conv kxk dx gemm+col2im",
            2.0 * (d.co * k * m) as f64,
        );
        unsafe {
            gemm_acc(
                (k, m, d.co),
                acc.dcols.as_mut_ptr(),
                m,
                false,
                wt.as_ptr(),
                (1, k),
                g.as_ptr().add(n0),
                (hwo, 1),
                gp,
            );
        }
        let kk = d.kh * d.kw;
        let dcols = &acc.dcols[..k * m];
        if par {
            dx.par_chunks_mut(d.hw())
                .zip(dcols.par_chunks(kk * m))
                .enumerate()
                .for_each(|(c, (dxc, dc))| col2im(dc, d, c * kk..(c + 1) * kk, n0..n1, dxc));
        } else {
            col2im(dcols, d, 0..k, n0..n1, dx);
        }
        n0 = n1;
    }
}

/// Backward pass over the batch: `(∂x, ∂W, ∂bias)`, the bias gradient per sample (`[B, C_out]`).
fn bwd<T: WithDType>(x: &[T], wt: &[T], g: &[T], d: &Dims) -> (Vec<T>, Vec<T>, Vec<T>) {
    let _p = prof::scope_flops(
        if d.pointwise() {
            "conv 1x1 bwd"
        } else {
            "conv kxk bwd"
        },
        2.0 * d.flops(),
    );
    let (img_in, img_out) = (d.c * d.hw(), d.co * d.hwo());
    let mut dx = vec![T::zero(); d.b * img_in];
    let mut db = vec![T::zero(); d.b * d.co];
    let dw = if split_images(d.b) {
        dx.par_chunks_mut(img_in)
            .zip(db.par_chunks_mut(d.co))
            .zip(x.par_chunks(img_in).zip(g.par_chunks(img_out)))
            .fold(
                || BwdAcc::new(d),
                |mut acc, ((dxb, dbb), (xb, gb))| {
                    bwd_image(xb, wt, gb, d, dxb, dbb, &mut acc, false);
                    acc
                },
            )
            .map(|a| a.dw)
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(s, &v)| *s += v);
                a
            })
            .unwrap_or_else(|| vec![T::zero(); d.co * d.k()])
    } else {
        let mut acc = BwdAcc::new(d);
        for ((dxb, dbb), (xb, gb)) in dx
            .chunks_mut(img_in)
            .zip(db.chunks_mut(d.co))
            .zip(x.chunks(img_in).zip(g.chunks(img_out)))
        {
            bwd_image(xb, wt, gb, d, dxb, dbb, &mut acc, true);
        }
        acc.dw
    };
    (dx, dw, db)
}

/// The forward op on CPU storages (bias optional).
fn cpu_fwd_any(
    geom: ConvGeom,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    bias: Option<(&CpuStorage, &Layout)>,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let d = Dims::new(l1.dims(), l2.dims(), geom)?;
    if let Some((_, lb)) = bias {
        if lb.dims() != [d.co] && lb.dims() != [d.b, d.co] {
            candle_core::bail!("fast-conv2d: bias {:?} for {} channels", lb.dims(), d.co);
        }
    }
    let shape = Shape::from((d.b, d.co, d.ho, d.wo));
    match (s1, s2, bias) {
        (CpuStorage::F32(x), CpuStorage::F32(w), None) => Ok((
            CpuStorage::F32(fwd(contiguous(x, l1)?, contiguous(w, l2)?, None, &d)),
            shape,
        )),
        (CpuStorage::F32(x), CpuStorage::F32(w), Some((CpuStorage::F32(b), lb))) => Ok((
            CpuStorage::F32(fwd(
                contiguous(x, l1)?,
                contiguous(w, l2)?,
                Some(contiguous(b, lb)?),
                &d,
            )),
            shape,
        )),
        (CpuStorage::F64(x), CpuStorage::F64(w), None) => Ok((
            CpuStorage::F64(fwd(contiguous(x, l1)?, contiguous(w, l2)?, None, &d)),
            shape,
        )),
        (CpuStorage::F64(x), CpuStorage::F64(w), Some((CpuStorage::F64(b), lb))) => Ok((
            CpuStorage::F64(fwd(
                contiguous(x, l1)?,
                contiguous(w, l2)?,
                Some(contiguous(b, lb)?),
                &d,
            )),
            shape,
        )),
        _ => candle_core::bail!("fast-conv2d: f32 or f64 operands of one dtype expected"),
    }
}

/// The backward op: gradients of `x`, `W`, bias from the forward inputs and `∂y` (detached tensors, no graph).
fn bwd_tensors(
    geom: ConvGeom,
    x: &Tensor,
    wt: &Tensor,
    grad: &Tensor,
    per_sample_bias: bool,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let (x, wt, grad) = (x.contiguous()?, wt.contiguous()?, grad.contiguous()?);
    let d = Dims::new(x.dims(), wt.dims(), geom)?;
    if grad.dims() != [d.b, d.co, d.ho, d.wo] {
        candle_core::bail!(
            "fast-conv2d: gradient {:?} for output {:?}",
            grad.dims(),
            (d.b, d.co, d.ho, d.wo)
        );
    }
    let (sx, lx) = x.storage_and_layout();
    let (sw, lw) = wt.storage_and_layout();
    let (sg, lg) = grad.storage_and_layout();
    let (dx, dw, db) = match (&*sx, &*sw, &*sg) {
        (
            Storage::Cpu(CpuStorage::F32(xs)),
            Storage::Cpu(CpuStorage::F32(ws)),
            Storage::Cpu(CpuStorage::F32(gs)),
        ) => {
            let (a, b, c) = bwd(
                contiguous(xs, lx)?,
                contiguous(ws, lw)?,
                contiguous(gs, lg)?,
                &d,
            );
            (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c))
        }
        (
            Storage::Cpu(CpuStorage::F64(xs)),
            Storage::Cpu(CpuStorage::F64(ws)),
            Storage::Cpu(CpuStorage::F64(gs)),
        ) => {
            let (a, b, c) = bwd(
                contiguous(xs, lx)?,
                contiguous(ws, lw)?,
                contiguous(gs, lg)?,
                &d,
            );
            (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c))
        }
        _ => candle_core::bail!("fast-conv2d: CPU f32 or f64 operands of one dtype expected"),
    };
    drop((sx, sw, sg));
    let dev = x.device();
    let t = |s: CpuStorage, shape: &[usize]| -> candle_core::Result<Tensor> {
        let n: usize = shape.iter().product();
        match s {
            CpuStorage::F32(v) => Tensor::from_vec(v, n, dev)?.reshape(shape),
            CpuStorage::F64(v) => Tensor::from_vec(v, n, dev)?.reshape(shape),
            _ => unreachable!(),
        }
    };
    let db = t(db, &[d.b, d.co])?;
    let db = if per_sample_bias { db } else { db.sum(0)? };
    Ok((t(dx, x.dims())?, t(dw, wt.dims())?, db))
}

impl CustomOp2 for FastConv2d {
    fn name(&self) -> &'static str {
        "fast-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        cpu_fwd_any(self.geom, (s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = bwd_tensors(
            self.geom,
            &x.detach(),
            &weight.detach(),
            &grad.detach(),
            false,
        )?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for FastConv2d {
    fn name(&self) -> &'static str {
        "fast-conv2d-bias"
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
        cpu_fwd_any(self.geom, (s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let per_sample = bias.rank() == 2;
        let (dx, dw, db) = bwd_tensors(
            self.geom,
            &x.detach(),
            &weight.detach(),
            &grad.detach(),
            per_sample,
        )?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

#[cfg(test)]
pub(crate) mod tests;
