//! Convolutions of NCSN++-lite with \[S21\] initialization (`layers.ddpm_conv3x3`, `ddpm_conv1x1`), and a fast CPU
//! convolution for them (design spec `score-model.md` §11; BENCHMARKS.md, "Training").
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
//! built per image in column tiles that stay in cache, each tile one `gemm` call (the crate candle uses) writing
//! into the output in place on top of the pre-filled bias. 1×1 stride-1 convolutions skip the copy (the image is its
//! own column matrix). The backward pass rebuilds each tile once and uses it for `∂W += ∂y·colsᵀ` (accumulated in
//! place), `∂x += col2im(Wᵀ·∂y)` and `∂bias`. Images are spread over the rayon threads (single-threaded gemms) when
//! the batch fills them, else processed one by one with a parallel gemm. The columns live only inside one op, so it
//! holds no more memory than candle's conv2d. With [`ConvImpl::Candle`], and on other devices, candle's conv2d
//! runs; tests compare both (values and all gradients) on random shapes.

use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Storage, Tensor, WithDType,
};
use candle_nn::VarBuilder;
use gemm::Parallelism;
use rayon::prelude::*;

use super::init::weight_and_bias;
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

/// Stride, zero padding and dilation of a 2-D convolution (the same on both axes, as candle's `conv2d`; groups = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl ConvGeom {
    /// Stride 1, no padding, no dilation (1×1 convolutions).
    pub const VALID: ConvGeom = ConvGeom {
        stride: 1,
        padding: 0,
        dilation: 1,
    };
    /// Stride 1, padding 1 (3×3 "same" convolutions).
    pub const SAME3: ConvGeom = ConvGeom {
        stride: 1,
        padding: 1,
        dilation: 1,
    };
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

/// Sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    g: ConvGeom,
}

impl Dims {
    fn new(x: &[usize], wt: &[usize], g: ConvGeom) -> candle_core::Result<Self> {
        let (&[b, c, h, w], &[co, ci, kh, kw]) = (x, wt) else {
            candle_core::bail!("fast-conv2d: rank-4 input and weight expected, got {x:?}, {wt:?}");
        };
        let out = |n: usize, k: usize| {
            (n + 2 * g.padding)
                .checked_sub(g.dilation * (k - 1) + 1)
                .map(|v| v / g.stride + 1)
        };
        match (ci == c, out(h, kh), out(w, kw)) {
            (true, Some(ho), Some(wo)) => Ok(Dims {
                b,
                c,
                h,
                w,
                co,
                kh,
                kw,
                ho,
                wo,
                g,
            }),
            _ => {
                candle_core::bail!("fast-conv2d: input {x:?} does not fit weight {wt:?} with {g:?}")
            }
        }
    }
    /// Rows of the column matrix, `C_in·k_h·k_w`.
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn hw(&self) -> usize {
        self.h * self.w
    }
    fn hwo(&self) -> usize {
        self.ho * self.wo
    }
    /// 1×1, stride 1, no padding: the image is its own column matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.g.stride == 1 && self.g.padding == 0
    }
    /// Output pixels per column tile: the tile `[K, n]` of the column matrix stays ≈ 1 MiB (f32), so it is still in
    /// cache when the gemm reads it back; at least one output row's worth and ≥ 256 columns.
    fn tile(&self) -> usize {
        if self.pointwise() {
            return self.hwo();
        }
        (TILE_ELEMS / self.k())
            .max(256)
            .max(self.wo)
            .min(self.hwo())
    }
    fn flops(&self) -> f64 {
        2.0 * (self.b * self.co * self.k() * self.hwo()) as f64
    }
}

/// Column-tile size in elements (see [`Dims::tile`]).
const TILE_ELEMS: usize = 256 * 1024;

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

/// For kernel offset `off = k·dilation − padding` along an axis of `n` input pixels: the output indices `o` in
/// `0..n_out` whose input index `o·stride + off` lies inside the image.
fn valid(off: isize, stride: usize, n: usize, n_out: usize) -> Range<usize> {
    let s = stride as isize;
    let lo = if off < 0 { (-off + s - 1) / s } else { 0 };
    let last = n as isize - 1 - off;
    let hi = if last < 0 { 0 } else { last / s + 1 };
    let (lo, hi) = (
        lo.min(n_out as isize) as usize,
        hi.min(n_out as isize) as usize,
    );
    lo..hi.max(lo)
}

/// Walks row `r` (= `(c·k_h + k_y)·k_w + k_x`) of the column matrix over the output pixels `cols` and calls
/// `f(out_offset, input_index_or_none, len, step)` for each run: `len` output pixels starting at `out_offset`
/// (relative to `cols.start`) read input pixels `input, input + step, …` of channel `c`, or zeros when `None`.
fn walk_row(
    d: &Dims,
    r: usize,
    cols: Range<usize>,
    mut f: impl FnMut(usize, Option<usize>, usize),
) {
    let (ky, kx) = ((r / d.kw) % d.kh, r % d.kw);
    let g = d.g;
    let offy = (ky * g.dilation) as isize - g.padding as isize;
    let offx = (kx * g.dilation) as isize - g.padding as isize;
    let vx = valid(offx, g.stride, d.w, d.wo);
    let mut n = cols.start;
    while n < cols.end {
        let (oy, ox0) = (n / d.wo, n % d.wo);
        let ox1 = d.wo.min(ox0 + (cols.end - n));
        let at = n - cols.start;
        let iy = oy as isize * g.stride as isize + offy;
        if iy < 0 || iy >= d.h as isize {
            f(at, None, ox1 - ox0);
        } else {
            let (a, b) = (vx.start.clamp(ox0, ox1), vx.end.clamp(ox0, ox1));
            if a > ox0 {
                f(at, None, a - ox0);
            }
            if b > a {
                let ix = (a as isize * g.stride as isize + offx) as usize;
                f(at + a - ox0, Some(iy as usize * d.w + ix), b - a);
            }
            if ox1 > b {
                f(at + b - ox0, None, ox1 - b);
            }
        }
        n += ox1 - ox0;
    }
}

/// Rows `rows` of the column matrix of one image `x [C, H, W]` over output pixels `cols`, into `out`
/// (`[rows.len(), cols.len()]`, every element written).
fn im2col<T: WithDType>(x: &[T], d: &Dims, rows: Range<usize>, cols: Range<usize>, out: &mut [T]) {
    let nb = cols.len();
    let (s, kk) = (d.g.stride, d.kh * d.kw);
    for (i, r) in rows.enumerate() {
        let xc = &x[(r / kk) * d.hw()..][..d.hw()];
        let o = &mut out[i * nb..][..nb];
        walk_row(d, r, cols.clone(), |at, src, len| {
            let dst = &mut o[at..at + len];
            match src {
                None => dst.fill(T::zero()),
                Some(i0) if s == 1 => dst.copy_from_slice(&xc[i0..i0 + len]),
                Some(i0) => dst
                    .iter_mut()
                    .zip(xc[i0..].iter().step_by(s))
                    .for_each(|(d, &v)| *d = v),
            }
        });
    }
}

/// Adjoint of [`im2col`]: adds rows `rows` of `dcols` (`[rows.len(), cols.len()]`) into the image gradient
/// `dx [C, H, W]`.
fn col2im<T: WithDType>(
    dcols: &[T],
    d: &Dims,
    rows: Range<usize>,
    cols: Range<usize>,
    dx: &mut [T],
) {
    let nb = cols.len();
    let (s, kk, hw) = (d.g.stride, d.kh * d.kw, d.hw());
    let c0 = rows.start / kk;
    for (i, r) in rows.enumerate() {
        let dxc = &mut dx[(r / kk - c0) * hw..][..hw];
        let g = &dcols[i * nb..][..nb];
        walk_row(d, r, cols.clone(), |at, src, len| {
            if let Some(i0) = src {
                let g = &g[at..at + len];
                if s == 1 {
                    dxc[i0..i0 + len]
                        .iter_mut()
                        .zip(g)
                        .for_each(|(d, &v)| *d += v);
                } else {
                    dxc[i0..]
                        .iter_mut()
                        .step_by(s)
                        .zip(g)
                        .for_each(|(d, &v)| *d += v);
                }
            }
        });
    }
}

/// Column matrix of one image over output pixels `cols`, into `buf` (parallel over rows when `par`).
fn im2col_tile<T: WithDType>(x: &[T], d: &Dims, cols: Range<usize>, buf: &mut [T], par: bool) {
    let nb = cols.len();
    let buf = &mut buf[..d.k() * nb];
    if par {
        let rows_per = d.k().div_ceil(4 * rayon::current_num_threads()).max(1);
        buf.par_chunks_mut(rows_per * nb)
            .enumerate()
            .for_each(|(i, o)| {
                let r0 = i * rows_per;
                im2col(x, d, r0..r0 + o.len() / nb, cols.clone(), o)
            });
    } else {
        im2col(x, d, 0..d.k(), cols, buf);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        let n = shape.iter().product();
        let v = crate::sde::standard_normals_f64(&mut ChaCha8Rng::seed_from_u64(seed), n);
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_abs(a: &Tensor) -> f64 {
        a.abs()
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

    /// `max |a − b| / max |b|`.
    fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
        max_abs(&(a - b).unwrap()) / max_abs(b).max(1e-30)
    }

    /// One case: `(B, C_in, C_out, H, W, k_h, k_w, stride, padding, dilation, bias)`.
    type Case = (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        bool,
    );

    /// Fast conv against candle's conv2d: value, ∂x, ∂W and ∂bias (through a random upstream gradient), f64 and
    /// f32, relative to the largest reference element; also in the one-image-at-a-time path (batch 1, 3).
    fn check(case: Case, seed: u64) {
        let (b, c, co, h, w, kh, kw, s, p, dil, with_bias) = case;
        let geom = ConvGeom {
            stride: s,
            padding: p,
            dilation: dil,
        };
        for (dtype, tol) in [(DType::F64, 1e-11), (DType::F32, 1e-4)] {
            let var = |shape: &[usize], sd: u64| {
                Var::from_tensor(&randn(shape, sd).to_dtype(dtype).unwrap()).unwrap()
            };
            let x = var(&[b, c, h, w], seed);
            let k = var(&[co, c, kh, kw], seed + 1);
            // Every third case: a per-sample bias [B, C_out].
            let bias = if seed % 3 == 1 {
                var(&[b, co], seed + 2)
            } else {
                var(&[co], seed + 2)
            };
            let bias_ref = with_bias.then_some(bias.as_tensor());
            let ya = conv2d_fast(&x, &k, bias_ref, geom).unwrap();
            let yc = conv2d_candle(&x, &k, bias_ref, geom).unwrap();
            assert_eq!(ya.dims(), yc.dims(), "{case:?}");
            let d = rel_diff(&ya, &yc);
            assert!(d < tol, "{dtype:?} {case:?}: forward differs by {d}");
            // candle 0.11's conv2d backward fails when the stride does not divide `H + 2p − span` and `W + 2p − span`
            // alike (one `output_padding` for both axes in its conv_transpose2d): the gradient reference therefore
            // pads explicitly and crops to the rows and columns the convolution reads, then runs candle's conv2d
            // with padding 0 (same function, differentiable through pad and narrow).
            let (ho, wo) = (yc.dim(2).unwrap(), yc.dim(3).unwrap());
            let xp = x
                .pad_with_zeros(2, p, p)
                .unwrap()
                .pad_with_zeros(3, p, p)
                .unwrap()
                .narrow(2, 0, (ho - 1) * s + dil * (kh - 1) + 1)
                .unwrap()
                .narrow(3, 0, (wo - 1) * s + dil * (kw - 1) + 1)
                .unwrap();
            let geom0 = ConvGeom { padding: 0, ..geom };
            let yb = conv2d_candle(&xp, &k, bias_ref, geom0).unwrap();
            assert!(rel_diff(&yb, &yc) < tol, "{case:?}: reference paths differ");
            let up = randn(yb.dims(), seed + 3).to_dtype(dtype).unwrap();
            let ga = (&ya * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&yb * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let mut vars = vec![("x", &x), ("W", &k)];
            if with_bias {
                vars.push(("bias", &bias));
            }
            for (name, v) in vars {
                let d = rel_diff(ga.get(v).unwrap(), gb.get(v).unwrap());
                assert!(
                    d < tol,
                    "{dtype:?} {case:?}: d{name} differs by {d} (relative)"
                );
            }
        }
    }

    /// Hand-picked shapes: the U-Net's (3×3 same, 1×1), odd sizes, stride 2, padding 0/1/2, non-square kernels,
    /// dilation, 1×1 images, kernels as large as the image, batch 1 and odd batches (both parallel paths).
    #[test]
    fn fast_conv_matches_candle_conv2d_on_chosen_shapes() {
        let cases: &[Case] = &[
            (2, 3, 5, 6, 6, 3, 3, 1, 1, 1, false),
            (1, 4, 2, 1, 1, 3, 3, 1, 1, 1, true),
            (3, 2, 3, 1, 7, 3, 3, 1, 1, 1, false),
            (2, 5, 4, 9, 4, 3, 3, 1, 1, 1, true),
            (4, 5, 3, 7, 7, 3, 3, 2, 1, 1, true),
            (3, 3, 5, 13, 13, 3, 3, 2, 0, 1, false),
            (2, 6, 4, 13, 11, 1, 1, 1, 0, 1, true),
            (5, 3, 2, 8, 8, 1, 1, 2, 0, 1, true),
            (2, 3, 4, 7, 9, 2, 3, 1, 0, 1, true),
            (2, 2, 3, 10, 10, 5, 5, 2, 2, 1, false),
            (1, 3, 3, 9, 9, 3, 3, 1, 2, 2, true),
            (2, 4, 4, 5, 5, 5, 5, 1, 0, 1, true),
            (8, 16, 8, 32, 32, 3, 3, 1, 1, 1, true),
            (1, 16, 8, 32, 32, 3, 3, 1, 1, 1, true),
        ];
        for (i, &case) in cases.iter().enumerate() {
            check(case, 10 * i as u64);
        }
    }

    /// Random shapes: batch 1–5, 1–6 channels each way, 1–13 pixels a side, kernels 1–3, stride 1–2, padding
    /// 0–2 (skipping kernels larger than the padded image).
    #[test]
    fn fast_conv_matches_candle_conv2d_on_random_shapes() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut r = |n: u32| (rng.next_u32() % n) as usize;
        let mut done = 0;
        while done < 24 {
            let (kh, kw) = (1 + r(3), 1 + r(3));
            let case = (
                1 + r(5),
                1 + r(6),
                1 + r(6),
                1 + r(13),
                1 + r(13),
                kh,
                kw,
                1 + r(2),
                r(3),
                1,
                r(2) == 0,
            );
            if case.3 + 2 * case.8 < kh || case.4 + 2 * case.8 < kw {
                continue;
            }
            check(case, 1000 + done);
            done += 1;
        }
    }

    /// The column walk is the adjoint pair it should be: <im2col(x), g> = <x, col2im(g)>, over column tiles.
    #[test]
    fn col2im_is_adjoint_of_im2col() {
        let geom = ConvGeom {
            stride: 2,
            padding: 1,
            dilation: 1,
        };
        let d = Dims::new(&[1, 3, 7, 6], &[2, 3, 3, 2], geom).unwrap();
        let x = randn(&[3 * 7 * 6], 4).to_vec1::<f64>().unwrap();
        let g = randn(&[d.k() * d.hwo()], 5).to_vec1::<f64>().unwrap();
        let (mut lhs, mut back) = (0.0, vec![0.0; x.len()]);
        for cols in [0..5, 5..d.hwo()] {
            let mut buf = vec![f64::NAN; d.k() * cols.len()];
            im2col(&x, &d, 0..d.k(), cols.clone(), &mut buf);
            let gt: Vec<f64> = (0..d.k())
                .flat_map(|r| g[r * d.hwo()..][cols.clone()].to_vec())
                .collect();
            lhs += buf.iter().zip(&gt).map(|(a, b)| a * b).sum::<f64>();
            col2im(&gt, &d, 0..d.k(), cols, &mut back);
        }
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!(
            (lhs - rhs).abs() < 1e-10 * (1.0 + lhs.abs()),
            "{lhs} vs {rhs}"
        );
    }

    /// The [`Conv`] module (bias fused) against candle's conv2d + bias, for both kernels.
    #[test]
    fn conv_module_matches_reference() {
        let dev = Device::Cpu;
        let vm = candle_nn::VarMap::new();
        let vb = super::super::init::seeded_var_builder(&vm, 5, DType::F64, &dev);
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
