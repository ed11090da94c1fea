//! The column matrix of a convolution (implicit im2col) and its adjoint (col2im), built in cache-sized tiles: the
//! data movement of [`super::conv::FastConv2d`], kept apart from the gemm calls and the candle op plumbing.
//!
//! ```text
//! cols[(c·k_h + k_y)·k_w + k_x, o_y·W_o + o_x] = x[c, o_y·s − p + k_y·d, o_x·s − p + k_x·d]   (0 outside)
//! ```

use std::ops::Range;

use candle_core::WithDType;
use rayon::prelude::*;

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

/// Sizes of one convolution.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    pub(super) b: usize,
    pub(super) c: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) co: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    pub(super) g: ConvGeom,
}

impl Dims {
    pub(super) fn new(x: &[usize], wt: &[usize], g: ConvGeom) -> candle_core::Result<Self> {
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
    pub(super) fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    pub(super) fn hw(&self) -> usize {
        self.h * self.w
    }
    pub(super) fn hwo(&self) -> usize {
        self.ho * self.wo
    }
    /// 1×1, stride 1, no padding: the image is its own column matrix.
    pub(super) fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.g.stride == 1 && self.g.padding == 0
    }
    /// Output pixels per column tile: the tile `[K, n]` of the column matrix stays ≈ 1 MiB (f32), so it is still in
    /// cache when the gemm reads it back; at least one output row's worth and ≥ 256 columns.
    pub(super) fn tile(&self) -> usize {
        if self.pointwise() {
            return self.hwo();
        }
        (TILE_ELEMS / self.k())
            .max(256)
            .max(self.wo)
            .min(self.hwo())
    }
    pub(super) fn flops(&self) -> f64 {
        2.0 * (self.b * self.co * self.k() * self.hwo()) as f64
    }
}

/// Column-tile size in elements (see [`Dims::tile`]).
const TILE_ELEMS: usize = 256 * 1024;

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
pub(super) fn im2col<T: WithDType>(
    x: &[T],
    d: &Dims,
    rows: Range<usize>,
    cols: Range<usize>,
    out: &mut [T],
) {
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
pub(super) fn col2im<T: WithDType>(
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
pub(super) fn im2col_tile<T: WithDType>(
    x: &[T],
    d: &Dims,
    cols: Range<usize>,
    buf: &mut [T],
    par: bool,
) {
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
