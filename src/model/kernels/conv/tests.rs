//! Tests of the fast CPU convolution against candle's `conv2d`: values and every gradient on chosen and random
//! shapes, and the adjointness of im2col and col2im. `randn` and `rel_diff` serve the layer tests of `model::conv` too.

use super::*;
use crate::model::kernels::im2col::im2col;
use candle_core::{Device, Var};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

pub(crate) fn randn(shape: &[usize], seed: u64) -> Tensor {
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
pub(crate) fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
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
