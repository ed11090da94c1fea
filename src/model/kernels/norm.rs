//! GroupNorm (optionally fused with SiLU) for the NCSN++-lite blocks (docs/score-model.md §4).
//!
//! \[S21\] uses `nn.GroupNorm(num_groups = min(C/4, 32), C, eps = 1e-6)` everywhere, followed by SiLU except inside
//! the attention block. candle 0.11 composes `candle_nn::GroupNorm` from ~8 tensor ops, SiLU adds more, and their
//! backward passes sum the affine gradients over the (batch, pixel) axes with candle's slow strided reduction: on the
//! 2-core CPU, GroupNorm + SiLU forward and backward of a `[8, 32, 64, 64]` activation took ≈ 300 ms (≈ 0.6 of the
//! 3×3 convolution next to it), about a third of a training step of the `cpu` preset. [`GroupNormAct`] computes the
//! same function as one CPU op per direction: statistics in f64, one pass forward, two passes backward with the
//! standard analytic gradient
//!
//! ```text
//! x̂ = (x − μ)·r,  r = 1/√(σ² + ε)   per (sample, group);   z = γ_c x̂ + β_c;   y = SiLU(z) or z
//! dz = dy·SiLU'(z),  SiLU'(z) = s(1 + z(1 − s)),  s = sigmoid(z)
//! dγ_c = Σ dz·x̂,  dβ_c = Σ dz      (over samples and pixels)
//! dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)),  dx̂ = γ_c dz   (means over the group)
//! ```
//!
//! On other devices (CUDA) it falls back to `candle_nn::GroupNorm` (+ `silu`), which computes the same function.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, WithDType};
use candle_nn::{Init, Module, VarBuilder};
use rayon::prelude::*;

use crate::Result;

/// \[S21\] GroupNorm epsilon.
pub const GN_EPS: f64 = 1e-6;

/// Number of groups of \[S21\] NCSN++ GroupNorm: `min(C/4, 32)` (at least 1).
pub fn num_groups(channels: usize) -> usize {
    (channels / 4).clamp(1, 32)
}

/// `GroupNorm(min(C/4, 32) groups, eps 1e-6)` with affine `weight`/`bias` (initialized 1 and 0, the names of
/// `candle_nn::group_norm`), optionally followed by SiLU.
#[derive(Debug, Clone)]
pub struct GroupNormAct {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    silu: bool,
}

impl GroupNormAct {
    pub fn new(channels: usize, silu: bool, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        Ok(GroupNormAct {
            weight,
            bias,
            groups: num_groups(channels),
            silu,
        })
    }

    /// `x [B, C, …]` → same shape. Fused CPU op for f32/f64 on the CPU, candle ops elsewhere.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
            self.forward_fused(x)
        } else {
            self.forward_composite(x)
        }
    }

    /// The fused CPU op (public within the crate for tests).
    pub(crate) fn forward_fused(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.weight.dim(0)?;
        if x.rank() < 3 || x.dim(1)? != c {
            return Err(crate::Error::Shape {
                what: "GroupNorm input".into(),
                got: x.dims().to_vec(),
                expected: format!("[B, {c}, …]"),
            });
        }
        let wb = Tensor::cat(&[&self.weight, &self.bias], 0)?;
        let op = GnFwd {
            groups: self.groups,
            silu: self.silu,
        };
        Ok(x.contiguous()?.apply_op2(&wb, op)?)
    }

    /// `candle_nn::GroupNorm` (+ SiLU): the reference and the non-CPU path.
    pub(crate) fn forward_composite(&self, x: &Tensor) -> Result<Tensor> {
        let _p = crate::prof::scope("groupnorm(+silu) fwd (candle ops)");
        let c = self.weight.dim(0)?;
        let gn = candle_nn::GroupNorm::new(
            self.weight.clone(),
            self.bias.clone(),
            c,
            self.groups,
            GN_EPS,
        )?;
        let y = gn.forward(x)?;
        Ok(if self.silu { y.silu()? } else { y })
    }
}

/// Float element types of the fused kernels.
trait Real: WithDType {
    fn exp_(self) -> Self;
}
impl Real for f32 {
    /// A branch-free `exp` the compiler vectorizes (Cephes `expf`: range reduction `x = n ln 2 + r`, degree-6
    /// polynomial; relative error ≈ 1e-7, arguments clamped to ±87.3), instead of libm's scalar call, which bounded
    /// the SiLU in this op.
    #[inline(always)]
    fn exp_(self) -> Self {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_359_4;
        const LN2_LO: f32 = -2.121_944_4e-4;
        let x = self.clamp(-87.3, 87.3);
        // Round to nearest through the 1.5·2²³ trick (vectorizes, unlike `round`).
        let n = (x * LOG2E + 12_582_912.0) - 12_582_912.0;
        let r = x - n * LN2_HI - n * LN2_LO;
        let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
            + 1.666_666_5e-1)
            * r
            + 0.5;
        let e = p * r * r + r + 1.0;
        e * f32::from_bits(((n as i32 + 127) as u32) << 23)
    }
}
impl Real for f64 {
    fn exp_(self) -> Self {
        self.exp()
    }
}

/// The contiguous slice of a storage, or an error.
fn slice<'a, T: WithDType>(s: &'a [T], l: &Layout, what: &str) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("group-norm-act: {what} must be contiguous"),
    }
}

/// (B, C, H·W) of an input layout.
fn dims_of(l: &Layout) -> (usize, usize, usize) {
    let d = l.dims();
    (d[0], d[1], d[2..].iter().product())
}

/// Mean and `1/√(var + ε)` of one group, in f64 (two passes).
fn stats<T: Real>(x: &[T]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = sum_f64(x, |v| v) / n;
    let var = sum_f64(x, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + GN_EPS).sqrt())
}

/// `Σ f(x_i)` in f64 with eight independent partial sums (so the loop vectorizes instead of waiting on one chain).
#[inline(always)]
fn sum_f64<T: Real>(x: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut p = [0.0f64; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for (a, v) in p.iter_mut().zip(c) {
            *a += f(v.to_f64());
        }
    }
    p.iter().sum::<f64>() + it.remainder().iter().map(|v| f(v.to_f64())).sum::<f64>()
}

fn sigmoid<T: Real>(z: T) -> T {
    T::one() / (T::one() + (T::zero() - z).exp_())
}

struct GnFwd {
    groups: usize,
    silu: bool,
}

impl GnFwd {
    fn run<T: Real>(&self, x: &[T], wb: &[T], l: &Layout) -> Vec<T> {
        let (_, c, hw) = dims_of(l);
        let cg = c / self.groups;
        let n = cg * hw;
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .enumerate()
            .for_each(|(i, (yg, xg))| {
                let g = i % self.groups;
                let (mean, rstd) = stats(xg);
                for k in 0..cg {
                    let ch = g * cg + k;
                    let a = wb[ch].to_f64() * rstd;
                    let (a, b) = (T::from_f64(a), T::from_f64(wb[c + ch].to_f64() - mean * a));
                    let rows = k * hw..(k + 1) * hw;
                    let pairs = yg[rows.clone()].iter_mut().zip(&xg[rows]);
                    if self.silu {
                        for (yv, &xv) in pairs {
                            let z = xv * a + b;
                            *yv = z * sigmoid(z);
                        }
                    } else {
                        for (yv, &xv) in pairs {
                            *yv = xv * a + b;
                        }
                    }
                }
            });
        y
    }
}

impl CustomOp2 for GnFwd {
    fn name(&self) -> &'static str {
        "group-norm-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let _p = crate::prof::scope("groupnorm(+silu) fwd");
        let shape = l1.shape().clone();
        match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(wb)) => {
                let y = self.run(slice(x, l1, "x")?, slice(wb, l2, "weight")?, l1);
                Ok((CpuStorage::F32(y), shape))
            }
            (CpuStorage::F64(x), CpuStorage::F64(wb)) => {
                let y = self.run(slice(x, l1, "x")?, slice(wb, l2, "weight")?, l1);
                Ok((CpuStorage::F64(y), shape))
            }
            _ => candle_core::bail!("group-norm-act: f32 or f64 inputs of one dtype expected"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        wb: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let n = x.elem_count();
        let op = GnBwd {
            groups: self.groups,
            silu: self.silu,
        };
        let packed = x.apply_op3_no_bwd(wb, &grad.contiguous()?, &op)?;
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        // A copy: a view would keep the whole packed (activation-sized) buffer alive as long as the parameter
        // gradient, i.e. to the end of the backward pass.
        let dwb = packed.narrow(0, n, wb.elem_count())?.copy()?;
        Ok((Some(dx), Some(dwb)))
    }
}

/// Backward of [`GnFwd`]: returns `[dx (flattened), dγ, dβ]` as one vector.
struct GnBwd {
    groups: usize,
    silu: bool,
}

impl GnBwd {
    fn run<T: Real>(&self, x: &[T], wb: &[T], dy: &[T], l: &Layout) -> Vec<T> {
        let (_, c, hw) = dims_of(l);
        let cg = c / self.groups;
        let n = cg * hw;
        let mut out = vec![T::zero(); x.len() + 2 * c];
        let (dx, dwb) = out.split_at_mut(x.len());
        // Per (sample, group): the group's partial dγ, dβ (cg each).
        let partial: Vec<Vec<f64>> = dx
            .par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .zip(dy.par_chunks(n))
            .enumerate()
            .map(|(i, ((dxg, xg), dyg))| {
                let g = i % self.groups;
                let (mean, rstd) = stats(xg);
                let (mean_t, rstd_t) = (T::from_f64(mean), T::from_f64(rstd));
                let mut dgb = vec![0.0f64; 2 * cg];
                let (mut s1, mut s2) = (0.0f64, 0.0f64);
                // Pass 1: dz into dx, the affine gradients and the two group means of dx̂.
                for k in 0..cg {
                    let ch = g * cg + k;
                    let (w, b) = (wb[ch], wb[c + ch]);
                    let rows = k * hw..(k + 1) * hw;
                    let dzr = &mut dxg[rows.clone()];
                    let (xr, gr) = (&xg[rows.clone()], &dyg[rows]);
                    // dz = dy·SiLU'(z) (or dy), written to dx; the sums of dz·x̂ and dz in eight f64 lanes.
                    if self.silu {
                        for ((dz, &xv), &gv) in dzr.iter_mut().zip(xr).zip(gr) {
                            let z = (xv - mean_t) * rstd_t * w + b;
                            let s = sigmoid(z);
                            *dz = gv * s * (T::one() + z * (T::one() - s));
                        }
                    } else {
                        dzr.copy_from_slice(gr);
                    }
                    let (mut pg, mut pb) = ([0.0f64; 8], [0.0f64; 8]);
                    let (mut dz8, mut x8) = (dzr.chunks_exact(8), xr.chunks_exact(8));
                    for (dc, xc) in (&mut dz8).zip(&mut x8) {
                        for j in 0..8 {
                            let d = dc[j].to_f64();
                            pg[j] += d * ((xc[j] - mean_t) * rstd_t).to_f64();
                            pb[j] += d;
                        }
                    }
                    let mut dgk: f64 = pg.iter().sum();
                    let mut dbk: f64 = pb.iter().sum();
                    for (&d, &xv) in dz8.remainder().iter().zip(x8.remainder()) {
                        dgk += d.to_f64() * ((xv - mean_t) * rstd_t).to_f64();
                        dbk += d.to_f64();
                    }
                    dgb[k] = dgk;
                    dgb[cg + k] = dbk;
                    s1 += w.to_f64() * dbk;
                    s2 += w.to_f64() * dgk;
                }
                // Pass 2: dx = r·(γ dz − mean(dx̂) − x̂·mean(dx̂·x̂)).
                let (m1, m2) = (T::from_f64(s1 / n as f64), T::from_f64(s2 / n as f64));
                for k in 0..cg {
                    let w = wb[g * cg + k];
                    let rows = k * hw..(k + 1) * hw;
                    for (dz, &xv) in dxg[rows.clone()].iter_mut().zip(&xg[rows]) {
                        let xh = (xv - mean_t) * rstd_t;
                        *dz = rstd_t * (w * *dz - m1 - xh * m2);
                    }
                }
                dgb
            })
            .collect();
        let mut acc = vec![0.0f64; 2 * c];
        for (i, p) in partial.iter().enumerate() {
            let g = i % self.groups;
            for k in 0..cg {
                acc[g * cg + k] += p[k];
                acc[c + g * cg + k] += p[cg + k];
            }
        }
        for (o, a) in dwb.iter_mut().zip(acc) {
            *o = T::from_f64(a);
        }
        out
    }
}

impl CustomOp3 for GnBwd {
    fn name(&self) -> &'static str {
        "group-norm-act-bwd"
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
        let _p = crate::prof::scope("groupnorm(+silu) bwd");
        let len = l1.shape().elem_count() + l2.shape().elem_count();
        match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(wb), CpuStorage::F32(dy)) => {
                let (x, wb, dy) = (
                    slice(x, l1, "x")?,
                    slice(wb, l2, "weight")?,
                    slice(dy, l3, "grad")?,
                );
                Ok((CpuStorage::F32(self.run(x, wb, dy, l1)), Shape::from(len)))
            }
            (CpuStorage::F64(x), CpuStorage::F64(wb), CpuStorage::F64(dy)) => {
                let (x, wb, dy) = (
                    slice(x, l1, "x")?,
                    slice(wb, l2, "weight")?,
                    slice(dy, l3, "grad")?,
                );
                Ok((CpuStorage::F64(self.run(x, wb, dy, l1)), Shape::from(len)))
            }
            _ => candle_core::bail!("group-norm-act-bwd: f32 or f64 inputs of one dtype expected"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;
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

    /// Fused op = candle_nn GroupNorm (+ SiLU), values and gradients for x, γ, β, in f64 and f32.
    #[test]
    fn fused_matches_composite() {
        for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 2e-4)] {
            for silu in [true, false] {
                for &(c, hw) in &[(8usize, 5usize), (48, 3), (12, 1)] {
                    let vm = VarMap::new();
                    let vb = VarBuilder::from_varmap(&vm, dtype, &Device::Cpu);
                    let gn = GroupNormAct::new(c, silu, vb).unwrap();
                    // Non-trivial affine parameters.
                    let w =
                        Var::from_tensor(&(randn(&[c], 4) + 1.0).unwrap().to_dtype(dtype).unwrap())
                            .unwrap();
                    let b = Var::from_tensor(&randn(&[c], 5).to_dtype(dtype).unwrap()).unwrap();
                    let gn = GroupNormAct {
                        weight: w.as_tensor().clone(),
                        bias: b.as_tensor().clone(),
                        ..gn
                    };
                    let x = Var::from_tensor(
                        &randn(&[3, c, hw, hw], 6)
                            .affine(2.0, 0.7)
                            .unwrap()
                            .to_dtype(dtype)
                            .unwrap(),
                    )
                    .unwrap();
                    let up = randn(&[3, c, hw, hw], 7).to_dtype(dtype).unwrap();
                    let yf = gn.forward_fused(&x).unwrap();
                    let yc = gn.forward_composite(&x).unwrap();
                    assert!(
                        max_diff(&yf, &yc) < tol,
                        "{dtype:?} silu {silu} c {c}: forward"
                    );
                    let gf = (&yf * &up).unwrap().sum_all().unwrap().backward().unwrap();
                    let gc = (&yc * &up).unwrap().sum_all().unwrap().backward().unwrap();
                    for (name, v) in [("x", &x), ("weight", &w), ("bias", &b)] {
                        let (a, e) = (gf.get(v).unwrap(), gc.get(v).unwrap());
                        let scale = 1.0 + max_diff(e, &e.zeros_like().unwrap());
                        assert!(
                            max_diff(a, e) < tol * scale,
                            "{dtype:?} silu {silu} c {c}: d{name} differs by {}",
                            max_diff(a, e)
                        );
                    }
                }
            }
        }
    }
}
