//! Adam/AdamW with visible, checkpointable moments, a linear learning-rate warm-up and global-norm gradient clipping
//! (docs/score-model.md §7, §11, §12).
//!
//! candle 0.11's `candle_nn::AdamW` keeps its first and second moments in a private `VarAdamW`, so a training run
//! cannot save and restore them, and a resumed run would not reproduce the uninterrupted one. [`Adam`] is the same
//! optimiser with the moments exposed ([`Adam::state`], [`Adam::load_state`], [`Adam::set_moments`]).
//!
//! **Update rule.** Decoupled weight decay of Loshchilov & Hutter 2019, *Decoupled Weight Decay Regularization*
//! (ICLR), Algorithm 2, in the form of PyTorch `torch.optim.AdamW` (non-AMSGrad) and candle's `AdamW::step`. With
//! step count `t` (1 on the first update), learning rate `η_t` from the schedule, gradient `g` (already multiplied by
//! the clip scale):
//!
//! ```text
//! θ ← θ·(1 − η_t·λ)                          (decoupled weight decay, applied to θ_{t−1})
//! m ← β₁·m + (1 − β₁)·g
//! v ← β₂·v + (1 − β₂)·g²
//! m̂ = m/(1 − β₁ᵗ),  v̂ = v/(1 − β₂ᵗ)           (bias correction, Kingma & Ba 2015 Alg. 1)
//! θ ← θ − η_t·m̂/(√v̂ + ε)
//! ```
//!
//! The arithmetic order is candle's (`m̂`, `v̂` formed explicitly), so with `weight_decay = 0` and no warm-up this
//! reproduces `candle_nn::AdamW` bit for bit.
//!
//! **Schedule.** `η_t = lr·min(s/warmup, 1)` where `s` is the number of updates already taken (0 for the first update,
//! so the first update has learning rate 0 exactly as in \[S21\] `losses.optimization_manager`); `warmup = 0`
//! disables the warm-up.
//!
//! **Clipping.** [`clip_grad_norm`] follows `torch.nn.utils.clip_grad_norm_`: `‖g‖ = √Σᵢ‖gᵢ‖²` over all parameters,
//! scale `min(1, max_norm/(‖g‖ + 10⁻⁶))`; a negative `max_norm` disables clipping.
//!
//! **On the device.** Reading the norm back to the host to form the scale would stop the host at every step until the
//! GPU has caught up. [`Adam::grad_norm_tensor`] and [`clip_scale_tensor`] compute both as f64 scalars on the
//! parameters' device, and [`Adam::step_scaled`] multiplies the gradients by that tensor. The arithmetic is the
//! host's, operation for operation (f32 squared sums widened to f64, summed in order from 0, `√`, `+ 10⁻⁶`, an IEEE
//! division, `min(1, ·)`, the scale rounded to f32 before multiplying), so on the CPU the result is the same bit for
//! bit as [`Adam::step`] with the host scale.

use std::collections::{HashMap, HashSet};

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use crate::{Error, Result};

/// `torch.nn.utils.clip_grad_norm_`'s guard added to the norm before dividing.
pub const CLIP_EPS: f64 = 1e-6;

/// Hyper-parameters of [`Adam`]; defaults from \[S21\] `configs/default_*_configs.py` (docs/score-model.md §6
/// `TrainConfig`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    /// Peak learning rate (after warm-up). Default 2e-4.
    pub lr: f64,
    /// First-moment decay β₁. Default 0.9.
    pub beta1: f64,
    /// Second-moment decay β₂. Default 0.999.
    pub beta2: f64,
    /// ε added to `√v̂`. Default 1e-8.
    pub eps: f64,
    /// Decoupled weight decay λ (multiplied by the scheduled learning rate). Default 0, as \[S21\] (candle's
    /// `ParamsAdamW::default()` has 0.01).
    pub weight_decay: f64,
    /// Linear warm-up length in updates; 0 disables warm-up. Default 5000.
    pub warmup: u64,
}

impl Default for AdamParams {
    fn default() -> Self {
        AdamParams {
            lr: 2e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            warmup: 5000,
        }
    }
}

impl AdamParams {
    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, field: &str, val: f64, range: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "adam {field} = {val}, expected {range}"
                )))
            }
        };
        check(
            self.lr.is_finite() && self.lr >= 0.0,
            "lr",
            self.lr,
            "finite and >= 0",
        )?;
        check(
            (0.0..1.0).contains(&self.beta1),
            "beta1",
            self.beta1,
            "in [0, 1)",
        )?;
        check(
            (0.0..1.0).contains(&self.beta2),
            "beta2",
            self.beta2,
            "in [0, 1)",
        )?;
        check(
            self.eps.is_finite() && self.eps > 0.0,
            "eps",
            self.eps,
            "finite and > 0",
        )?;
        check(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "weight_decay",
            self.weight_decay,
            "finite and >= 0",
        )
    }

    /// Scheduled learning rate `lr·min(step/warmup, 1)` for the update taken after `step` earlier updates
    /// (\[S21\] `optimization_manager`); `warmup = 0` gives `lr` at every step.
    pub fn lr_at(&self, step: u64) -> f64 {
        if self.warmup == 0 {
            self.lr
        } else {
            self.lr * (step as f64 / self.warmup as f64).min(1.0)
        }
    }
}

/// A snapshot of the optimiser's state for checkpoints: step count and both moments, keyed by parameter name.
#[derive(Debug, Clone)]
pub struct AdamState {
    /// Number of updates taken (`t` of the bias correction).
    pub t: u64,
    /// First moments `m`, by parameter name.
    pub m: HashMap<String, Tensor>,
    /// Second moments `v`, by parameter name.
    pub v: HashMap<String, Tensor>,
}

/// Adam with decoupled weight decay over named [`Var`]s, with public moments (see the module docs for the rule).
#[derive(Debug)]
pub struct Adam {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: u64,
    params: AdamParams,
}

/// What one [`Adam::step`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Step count after the update (1 after the first update).
    pub t: u64,
    /// Learning rate used by the update.
    pub lr: f64,
}

impl Adam {
    /// An optimiser over `vars` (unique names) with zero moments and `t = 0`.
    pub fn new(vars: Vec<(String, Var)>, params: AdamParams) -> Result<Self> {
        params.validate()?;
        let mut seen = HashSet::new();
        for (name, _) in &vars {
            if !seen.insert(name.as_str()) {
                return Err(Error::Config(format!(
                    "adam: parameter name {name:?} appears twice"
                )));
            }
        }
        let m = vars
            .iter()
            .map(|(_, var)| var.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Adam {
            vars,
            m,
            v,
            t: 0,
            params,
        })
    }

    /// An optimiser over every variable of a `VarMap`, sorted by name (so the order is deterministic).
    pub fn from_varmap(varmap: &candle_nn::VarMap, params: AdamParams) -> Result<Self> {
        let mut vars: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .map_err(|_| Error::Config("adam: VarMap mutex poisoned".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        Self::new(vars, params)
    }

    /// Hyper-parameters.
    pub fn params(&self) -> &AdamParams {
        &self.params
    }

    /// Replaces the hyper-parameters (e.g. a new peak learning rate); moments and `t` are kept.
    pub fn set_params(&mut self, params: AdamParams) -> Result<()> {
        params.validate()?;
        self.params = params;
        Ok(())
    }

    /// Number of updates taken so far (`t` of the bias correction).
    pub fn t(&self) -> u64 {
        self.t
    }

    /// Sets the step count (for resuming).
    pub fn set_t(&mut self, t: u64) {
        self.t = t;
    }

    /// The optimised variables with their names, in update order.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Learning rate the next update will use.
    pub fn current_lr(&self) -> f64 {
        self.params.lr_at(self.t)
    }

    /// First and second moments `(m, v)` of parameter `name`.
    pub fn moments(&self, name: &str) -> Option<(&Tensor, &Tensor)> {
        self.index(name).map(|i| (&self.m[i], &self.v[i]))
    }

    /// Replaces the moments of parameter `name` (shape must match the parameter; copied onto its device and dtype).
    pub fn set_moments(&mut self, name: &str, m: &Tensor, v: &Tensor) -> Result<()> {
        let i = self
            .index(name)
            .ok_or_else(|| Error::invalid("adam state", format!("no parameter named {name:?}")))?;
        let m = self.conform(i, "m", m)?;
        let v = self.conform(i, "v", v)?;
        self.m[i] = m;
        self.v[i] = v;
        Ok(())
    }

    /// Snapshot of `t` and the moments (the tensors are immutable values, so later steps do not alter it).
    pub fn state(&self) -> AdamState {
        let names = self.vars.iter().map(|(n, _)| n.clone());
        AdamState {
            t: self.t,
            m: names.clone().zip(self.m.iter().cloned()).collect(),
            v: names.zip(self.v.iter().cloned()).collect(),
        }
    }

    /// Restores a [`state`](Self::state) snapshot. Every parameter must have both moments with its shape, and no
    /// unknown names may appear; nothing is changed on error.
    pub fn load_state(&mut self, state: &AdamState) -> Result<()> {
        for (which, map) in [("m", &state.m), ("v", &state.v)] {
            if let Some(extra) = map.keys().find(|k| self.index(k).is_none()) {
                return Err(Error::invalid(
                    "adam state",
                    format!("moment {which} for unknown parameter {extra:?}"),
                ));
            }
        }
        let mut new_m = Vec::with_capacity(self.vars.len());
        let mut new_v = Vec::with_capacity(self.vars.len());
        for (i, (name, _)) in self.vars.iter().enumerate() {
            fn get<'s>(
                which: &str,
                name: &str,
                map: &'s HashMap<String, Tensor>,
            ) -> Result<&'s Tensor> {
                map.get(name).ok_or_else(|| {
                    Error::invalid("adam state", format!("missing moment {which} of {name:?}"))
                })
            }
            new_m.push(self.conform(i, "m", get("m", name, &state.m)?)?);
            new_v.push(self.conform(i, "v", get("v", name, &state.v)?)?);
        }
        self.m = new_m;
        self.v = new_v;
        self.t = state.t;
        Ok(())
    }

    /// Global L2 norm `√Σᵢ‖gᵢ‖²` of the gradients of this optimiser's variables (missing gradients count as 0).
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        grad_global_norm(self.vars.iter().map(|(_, v)| v.as_tensor()), grads)
    }

    /// [`grad_norm`](Self::grad_norm) as an f64 scalar tensor on the parameters' device, detached (no host read).
    pub fn grad_norm_tensor(&self, grads: &GradStore) -> Result<Tensor> {
        let device = match self.vars.first() {
            Some((_, v)) => v.device().clone(),
            None => candle_core::Device::Cpu,
        };
        grad_norm_tensor(self.vars.iter().map(|(_, v)| v.as_tensor()), grads, &device)
    }

    /// Clips the gradients of this optimiser's variables in `grads` to global norm `max_norm` (see
    /// [`clip_grad_norm`]); returns the pre-clip norm.
    pub fn clip_grads(&self, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
        let vars: Vec<&Tensor> = self.vars.iter().map(|(_, v)| v.as_tensor()).collect();
        clip_grad_norm(vars, grads, max_norm)
    }

    /// One AdamW update with the gradients in `grads`, each multiplied by `grad_scale` first (the clip scale of
    /// [`clip_scale`]; pass 1.0 when the store is already clipped). Variables without a gradient are left untouched
    /// (their moments too), as in candle and PyTorch. `t` advances by one.
    pub fn step(&mut self, grads: &GradStore, grad_scale: f64) -> Result<StepInfo> {
        let gs = self.grads_of(grads);
        self.step_with(&gs, grad_scale)
    }

    /// As [`step`](Self::step) with the clip scale as a scalar tensor on the device ([`clip_scale_tensor`]; `None`:
    /// no scaling), so that no value leaves the device. Same result as `step` with the same scale read back.
    pub fn step_scaled(&mut self, grads: &GradStore, scale: Option<&Tensor>) -> Result<StepInfo> {
        let gs = self.grads_of(grads);
        self.update(&gs, GradScale::Device(scale))
    }

    fn grads_of(&self, grads: &GradStore) -> Vec<Option<Tensor>> {
        self.vars
            .iter()
            .map(|(_, v)| grads.get(v.as_tensor()).cloned())
            .collect()
    }

    /// As [`step`](Self::step) with explicit gradients, one per variable in [`vars`](Self::vars) order.
    pub fn step_with(&mut self, grads: &[Option<Tensor>], grad_scale: f64) -> Result<StepInfo> {
        self.update(grads, GradScale::Host(grad_scale))
    }

    fn update(&mut self, grads: &[Option<Tensor>], grad_scale: GradScale) -> Result<StepInfo> {
        if grads.len() != self.vars.len() {
            return Err(Error::Shape {
                what: "adam gradients".into(),
                got: vec![grads.len()],
                expected: format!("{} gradients, one per variable", self.vars.len()),
            });
        }
        let grad_scale = match grad_scale {
            GradScale::Host(s) if !s.is_finite() => {
                return Err(Error::NonFinite {
                    what: "adam grad_scale".into(),
                    msg: format!("{s}"),
                })
            }
            GradScale::Host(1.0) => None,
            // `g * s` is candle's affine `g·(s as f32) + 0`; the tensor path rounds the same way.
            GradScale::Host(s) => Some(ScaleBy::Host(s)),
            GradScale::Device(None) => None,
            GradScale::Device(Some(t)) => Some(ScaleBy::Device(t.to_dtype(DType::F32)?)),
        };
        let p = self.params;
        let lr = p.lr_at(self.t);
        self.t += 1;
        let t = i32::try_from(self.t).unwrap_or(i32::MAX);
        let scale_m = 1.0 / (1.0 - p.beta1.powi(t));
        let scale_v = 1.0 / (1.0 - p.beta2.powi(t));
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let theta = &self.vars[i].1;
            if g.dims() != theta.dims() {
                return Err(Error::Shape {
                    what: format!("gradient of {}", self.vars[i].0),
                    got: g.dims().to_vec(),
                    expected: format!("{:?}", theta.dims()),
                });
            }
            // Gradients of variables come out of candle's backward pass still attached to the autograd graph (the
            // ∂W of a conv or matmul is an op on the layer's input activation). Kept in the moments, they would chain
            // every step's activations to the next: all of them stay alive (on CUDA, where the gradients come from
            // candle's own ops, ≈ 10 GB per step of 64 maps of the `cpu` preset until the device ran out).
            let g = g.detach();
            let g = match &grad_scale {
                None => g,
                Some(ScaleBy::Host(s)) => (g * *s)?,
                // The product differs from the affine form only in the sign of a zero, which no use of `g` below
                // can see (`g·c + 0` and `g²` are +0 either way).
                Some(ScaleBy::Device(s)) => g.broadcast_mul(&s.to_dtype(g.dtype())?)?,
            };
            let next_m = ((&self.m[i] * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
            let next_v = ((&self.v[i] * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let decayed = (theta.as_tensor() * (1.0 - lr * p.weight_decay))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + p.eps)?)?;
            let next_theta = (decayed - (adjusted * lr)?)?;
            theta.set(&next_theta)?;
            self.m[i] = next_m;
            self.v[i] = next_v;
        }
        Ok(StepInfo { t: self.t, lr })
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.vars.iter().position(|(n, _)| n == name)
    }

    /// Checks `x` against parameter `i`'s shape and moves it to that parameter's device and dtype.
    fn conform(&self, i: usize, which: &str, x: &Tensor) -> Result<Tensor> {
        let (name, var) = &self.vars[i];
        if x.dims() != var.dims() {
            return Err(Error::Shape {
                what: format!("adam moment {which} of {name}"),
                got: x.dims().to_vec(),
                expected: format!("{:?}", var.dims()),
            });
        }
        Ok(x.to_device(var.device())?.to_dtype(var.dtype())?.detach())
    }
}

/// How [`Adam::update`] scales the gradients.
enum GradScale<'a> {
    Host(f64),
    Device(Option<&'a Tensor>),
}

/// A scale other than the identity, as applied.
enum ScaleBy {
    Host(f64),
    /// An f32 scalar tensor.
    Device(Tensor),
}

/// Global L2 norm `√Σᵢ‖gᵢ‖²` of the gradients of `vars` in `grads`, accumulated in f64 across tensors (missing
/// gradients count as 0).
pub fn grad_global_norm<'a>(
    vars: impl IntoIterator<Item = &'a Tensor>,
    grads: &GradStore,
) -> Result<f64> {
    Ok(grad_norm_tensor(vars, grads, &candle_core::Device::Cpu)?.to_scalar::<f64>()?)
}

/// [`grad_global_norm`] as a detached f64 scalar tensor, computed where the gradients live (`device` only serves
/// when there is no gradient at all). The squared sums are f32 reductions widened to f64 and summed in order
/// starting from 0, as the host loop did.
pub fn grad_norm_tensor<'a>(
    vars: impl IntoIterator<Item = &'a Tensor>,
    grads: &GradStore,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let squares = vars
        .into_iter()
        .filter_map(|var| grads.get(var))
        .map(|g| Ok(g.detach().sqr()?.sum_all()?.to_dtype(DType::F64)?))
        .collect::<Result<Vec<Tensor>>>()?;
    if squares.is_empty() {
        return Ok(Tensor::zeros((), DType::F64, device)?);
    }
    // One f64 vector summed by candle's sequential reduction (0 + s₀ + s₁ + …), not a tree of pairwise adds.
    Ok(Tensor::stack(&squares, 0)?.sum_all()?.sqrt()?)
}

/// Clip scale `min(1, max_norm/(norm + 10⁻⁶))` of `torch.nn.utils.clip_grad_norm_`; 1 when `max_norm < 0`
/// (clipping disabled, docs/score-model.md §6 `grad_clip`).
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if max_norm < 0.0 {
        1.0
    } else {
        (max_norm / (norm + CLIP_EPS)).min(1.0)
    }
}

/// [`clip_scale`] of an f64 scalar norm tensor, on its device; `None` when clipping is disabled. Same value as the
/// host function (for a finite norm; a non-finite one aborts training anyway).
pub fn clip_scale_tensor(norm: &Tensor, max_norm: f64) -> Result<Option<Tensor>> {
    if max_norm < 0.0 {
        return Ok(None);
    }
    let numerator = Tensor::full(max_norm, (), norm.device())?;
    // `max_norm / (norm + ε)` as one IEEE division (a reciprocal times max_norm would round twice).
    let scale = numerator.div(&(norm + CLIP_EPS)?)?.minimum(1.0)?;
    Ok(Some(scale))
}

/// Scales the gradients of `vars` in `grads` so that their global norm is at most `max_norm`
/// (`torch.nn.utils.clip_grad_norm_`; a negative `max_norm` only measures). Returns the pre-clip norm; a non-finite
/// norm is returned unchanged and leaves the gradients as they were, so the caller can abort (docs/score-model.md §7).
pub fn clip_grad_norm<'a>(
    vars: impl IntoIterator<Item = &'a Tensor>,
    grads: &mut GradStore,
    max_norm: f64,
) -> Result<f64> {
    let vars: Vec<&Tensor> = vars.into_iter().collect();
    let norm = grad_global_norm(vars.iter().copied(), grads)?;
    if !norm.is_finite() {
        return Ok(norm);
    }
    let scale = clip_scale(norm, max_norm);
    if scale < 1.0 {
        for var in vars {
            if let Some(g) = grads.get(var) {
                let scaled = (g * scale)?;
                grads.insert(var, scaled);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Loss `½ Σ aᵢ (xᵢ − cᵢ)²` and its gradient `aᵢ (xᵢ − cᵢ)`.
    const A: [f64; 3] = [1.0, 4.0, 0.25];
    const C: [f64; 3] = [0.5, -1.0, 2.0];
    const X0: [f64; 3] = [1.0, 2.0, -3.0];

    fn quad_var() -> Var {
        let x0: Vec<f32> = X0.iter().map(|&x| x as f32).collect();
        Var::from_vec(x0, 3, &Device::Cpu).unwrap()
    }

    fn quad_grads(x: &Var) -> GradStore {
        let dev = Device::Cpu;
        let a = Tensor::new(&[A[0] as f32, A[1] as f32, A[2] as f32], &dev).unwrap();
        let c = Tensor::new(&[C[0] as f32, C[1] as f32, C[2] as f32], &dev).unwrap();
        let loss = ((x.as_tensor() - c).unwrap().sqr().unwrap() * a)
            .unwrap()
            .sum_all()
            .unwrap()
            .affine(0.5, 0.0)
            .unwrap();
        loss.backward().unwrap()
    }

    /// PyTorch `torch.optim.AdamW` (Loshchilov & Hutter 2019, Alg. 2) written out in f64, constant lr.
    fn reference(p: &AdamParams, steps: usize) -> Vec<f64> {
        let mut x = X0.to_vec();
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        for t in 1..=steps as i32 {
            for i in 0..3 {
                let g = A[i] * (x[i] - C[i]);
                x[i] *= 1.0 - p.lr * p.weight_decay;
                m[i] = p.beta1 * m[i] + (1.0 - p.beta1) * g;
                v[i] = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
                let m_hat = m[i] / (1.0 - p.beta1.powi(t));
                let v_hat = v[i] / (1.0 - p.beta2.powi(t));
                x[i] -= p.lr * m_hat / (v_hat.sqrt() + p.eps);
            }
        }
        x
    }

    fn run_ours(p: AdamParams, steps: usize) -> Vec<f64> {
        let x = quad_var();
        let mut opt = Adam::new(vec![("x".into(), x.clone())], p).unwrap();
        for k in 0..steps {
            let info = opt.step(&quad_grads(&x), 1.0).unwrap();
            assert_eq!(info.t, k as u64 + 1);
            assert_eq!(opt.t(), k as u64 + 1);
        }
        x.as_tensor()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn adamw_matches_reference_three_steps() {
        // Large ε so that its placement (outside √v̂) matters; large lr so that 3 steps move visibly.
        let p = AdamParams {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-2,
            weight_decay: 0.0,
            warmup: 0,
        };
        let got = run_ours(p, 3);
        assert_close(&got, &reference(&p, 3), 1e-6);
        // Sanity: the reference really moved the parameters (≈ 3·lr each).
        assert!(got.iter().zip(X0).all(|(g, x0)| (g - x0).abs() > 0.2));
    }

    #[test]
    fn adamw_weight_decay_matches_reference() {
        let p = AdamParams {
            lr: 0.05,
            beta1: 0.8,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.5,
            warmup: 0,
        };
        let got = run_ours(p, 3);
        let want = reference(&p, 3);
        assert_close(&got, &want, 1e-6);
        // The decay must matter at this tolerance.
        let no_wd = reference(
            &AdamParams {
                weight_decay: 0.0,
                ..p
            },
            3,
        );
        assert!(want.iter().zip(&no_wd).any(|(a, b)| (a - b).abs() > 1e-3));
    }

    #[test]
    fn adam_matches_candle() {
        use candle_nn::Optimizer;
        let p = AdamParams {
            lr: 0.01,
            weight_decay: 0.0,
            warmup: 0,
            ..Default::default()
        };
        let ours = quad_var();
        let theirs = quad_var();
        let mut opt = Adam::new(vec![("x".into(), ours.clone())], p).unwrap();
        let mut copt = candle_nn::AdamW::new(
            vec![theirs.clone()],
            candle_nn::ParamsAdamW {
                lr: p.lr,
                beta1: p.beta1,
                beta2: p.beta2,
                eps: p.eps,
                weight_decay: 0.0,
            },
        )
        .unwrap();
        for _ in 0..5 {
            opt.step(&quad_grads(&ours), 1.0).unwrap();
            copt.step(&quad_grads(&theirs)).unwrap();
        }
        let a = ours.as_tensor().to_vec1::<f32>().unwrap();
        let b = theirs.as_tensor().to_vec1::<f32>().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-7, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn warmup_schedule() {
        let p = AdamParams {
            lr: 2e-4,
            warmup: 4,
            ..Default::default()
        };
        let want = [0.0, 0.5e-4, 1e-4, 1.5e-4, 2e-4, 2e-4, 2e-4];
        for (s, w) in want.iter().enumerate() {
            assert!((p.lr_at(s as u64) - w).abs() < 1e-18, "step {s}");
        }
        assert_eq!(AdamParams { warmup: 0, ..p }.lr_at(0), 2e-4);
        // The optimiser uses lr_at(t) before the update: the first update has lr 0 and leaves θ unchanged.
        let x = quad_var();
        let mut opt = Adam::new(vec![("x".into(), x.clone())], p).unwrap();
        let lrs: Vec<f64> = (0..6)
            .map(|_| opt.step(&quad_grads(&x), 1.0).unwrap().lr)
            .collect();
        for (s, (l, w)) in lrs.iter().zip(&want).enumerate() {
            assert!((l - w).abs() < 1e-18, "step {s}: lr {l}, want {w}");
        }
        assert_eq!(opt.t(), 6);
        let y = quad_var();
        let mut opt = Adam::new(vec![("y".into(), y.clone())], p).unwrap();
        opt.step(&quad_grads(&y), 1.0).unwrap();
        assert_eq!(
            y.as_tensor().to_vec1::<f32>().unwrap(),
            quad_var().as_tensor().to_vec1::<f32>().unwrap()
        );
    }

    fn two_var_grads(scale: f32) -> (Var, Var, GradStore) {
        let dev = Device::Cpu;
        let a = Var::from_vec(vec![1f32, 2.0, 3.0], 3, &dev).unwrap();
        let b = Var::from_vec(vec![-1f32, 0.5], 2, &dev).unwrap();
        // loss = scale·(Σ aᵢ² + Σ bᵢ²)/2 → grads scale·a, scale·b; global norm scale·√15.25.
        let loss = ((a.as_tensor().sqr().unwrap().sum_all().unwrap()
            + b.as_tensor().sqr().unwrap().sum_all().unwrap())
        .unwrap()
            * (0.5 * scale as f64))
            .unwrap();
        let g = loss.backward().unwrap();
        (a, b, g)
    }

    #[test]
    fn grad_clip() {
        let norm0 = 15.25f64.sqrt();
        // Above the limit: clipped to max_norm, direction unchanged.
        let (a, b, mut g) = two_var_grads(2.0);
        let ga = g.get(&a).unwrap().to_vec1::<f32>().unwrap();
        let pre = clip_grad_norm([a.as_tensor(), b.as_tensor()], &mut g, 1.0).unwrap();
        assert!((pre - 2.0 * norm0).abs() < 1e-5);
        let post = grad_global_norm([a.as_tensor(), b.as_tensor()], &g).unwrap();
        assert!((post - 1.0).abs() < 1e-5, "post-clip norm {post}");
        let ca = g.get(&a).unwrap().to_vec1::<f32>().unwrap();
        let ratio = ca[0] / ga[0];
        for (c, o) in ca.iter().zip(&ga) {
            assert!((c / o - ratio).abs() < 1e-6);
        }
        assert!((f64::from(ratio) - 1.0 / (2.0 * norm0)).abs() < 1e-6);
        // Below the limit: untouched, bit for bit.
        let (a, b, mut g) = two_var_grads(0.1);
        let before: Vec<Vec<f32>> = [&a, &b]
            .iter()
            .map(|v| g.get(v).unwrap().to_vec1().unwrap())
            .collect();
        let pre = clip_grad_norm([a.as_tensor(), b.as_tensor()], &mut g, 1.0).unwrap();
        assert!((pre - 0.1 * norm0).abs() < 1e-6);
        let after: Vec<Vec<f32>> = [&a, &b]
            .iter()
            .map(|v| g.get(v).unwrap().to_vec1().unwrap())
            .collect();
        assert_eq!(before, after);
        // Negative max_norm disables clipping; scale formula as torch.
        let (a, b, mut g) = two_var_grads(2.0);
        let opt = Adam::new(
            vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            AdamParams::default(),
        )
        .unwrap();
        let pre = opt.clip_grads(&mut g, -1.0).unwrap();
        assert!((opt.grad_norm(&g).unwrap() - pre).abs() < 1e-12);
        assert_eq!(clip_scale(3.0, -1.0), 1.0);
        assert_eq!(clip_scale(4.0 - CLIP_EPS, 2.0), 0.5);
    }

    /// The device-side norm, clip scale and scaled step equal the host ones bit for bit (clipped and unclipped).
    #[test]
    fn device_clip_scale_matches_the_host_path() {
        let p = AdamParams {
            lr: 0.03,
            weight_decay: 0.1,
            warmup: 0,
            ..Default::default()
        };
        for max_norm in [0.5, 1e9, -1.0] {
            let (x, y) = (quad_var(), quad_var());
            let mut host = Adam::new(vec![("x".into(), x.clone())], p).unwrap();
            let mut dev = Adam::new(vec![("x".into(), y.clone())], p).unwrap();
            for _ in 0..4 {
                let (gx, gy) = (quad_grads(&x), quad_grads(&y));
                let norm = host.grad_norm(&gx).unwrap();
                let norm_t = dev.grad_norm_tensor(&gy).unwrap();
                assert_eq!(norm.to_bits(), norm_t.to_scalar::<f64>().unwrap().to_bits());
                let scale_t = clip_scale_tensor(&norm_t, max_norm).unwrap();
                let want = clip_scale(norm, max_norm);
                match &scale_t {
                    Some(s) => assert_eq!(s.to_scalar::<f64>().unwrap().to_bits(), want.to_bits()),
                    None => assert_eq!(want, 1.0),
                }
                host.step(&gx, want).unwrap();
                dev.step_scaled(&gy, scale_t.as_ref()).unwrap();
            }
            let bits = |v: &Var| -> Vec<u32> {
                v.as_tensor()
                    .to_vec1::<f32>()
                    .unwrap()
                    .into_iter()
                    .map(f32::to_bits)
                    .collect()
            };
            assert_eq!(bits(&x), bits(&y), "max_norm {max_norm}");
        }
    }

    /// Round trip through host vectors, as a checkpoint file would.
    fn through_host(s: &AdamState) -> AdamState {
        let host = |m: &HashMap<String, Tensor>| {
            m.iter()
                .map(|(k, t)| {
                    let data = t.to_vec1::<f32>().unwrap();
                    let n = data.len();
                    (k.clone(), Tensor::from_vec(data, n, &Device::Cpu).unwrap())
                })
                .collect()
        };
        AdamState {
            t: s.t,
            m: host(&s.m),
            v: host(&s.v),
        }
    }

    #[test]
    fn state_roundtrip_resume_is_bit_identical() {
        let p = AdamParams {
            lr: 0.03,
            weight_decay: 0.1,
            warmup: 2,
            ..Default::default()
        };
        // Uninterrupted: 6 steps with clipping.
        let x = quad_var();
        let mut opt = Adam::new(vec![("x".into(), x.clone())], p).unwrap();
        for _ in 0..6 {
            let mut g = quad_grads(&x);
            opt.clip_grads(&mut g, 1.5).unwrap();
            opt.step(&g, 1.0).unwrap();
        }
        let full = x.as_tensor().to_vec1::<f32>().unwrap();

        // Interrupted after 3: export params + state, rebuild a fresh optimiser, import, continue.
        let y = quad_var();
        let mut opt1 = Adam::new(vec![("x".into(), y.clone())], p).unwrap();
        for _ in 0..3 {
            let mut g = quad_grads(&y);
            opt1.clip_grads(&mut g, 1.5).unwrap();
            opt1.step(&g, 1.0).unwrap();
        }
        let saved_params = y.as_tensor().to_vec1::<f32>().unwrap();
        let saved = through_host(&opt1.state());
        assert_eq!(saved.t, 3);
        drop(opt1);
        let z = Var::from_vec(saved_params, 3, &Device::Cpu).unwrap();
        let mut opt2 = Adam::new(vec![("x".into(), z.clone())], p).unwrap();
        opt2.load_state(&saved).unwrap();
        assert_eq!(opt2.t(), 3);
        for _ in 0..3 {
            let mut g = quad_grads(&z);
            opt2.clip_grads(&mut g, 1.5).unwrap();
            opt2.step(&g, 1.0).unwrap();
        }
        let resumed = z.as_tensor().to_vec1::<f32>().unwrap();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&full), bits(&resumed));

        // Without the moments (fresh optimiser, only t restored) the continued run differs.
        let w = Var::from_vec(y.as_tensor().to_vec1::<f32>().unwrap(), 3, &Device::Cpu).unwrap();
        let mut opt3 = Adam::new(vec![("x".into(), w.clone())], p).unwrap();
        opt3.set_t(3);
        for _ in 0..3 {
            let mut g = quad_grads(&w);
            opt3.clip_grads(&mut g, 1.5).unwrap();
            opt3.step(&g, 1.0).unwrap();
        }
        assert_ne!(bits(&full), bits(&w.as_tensor().to_vec1::<f32>().unwrap()));
    }

    #[test]
    fn load_state_validates() {
        let x = quad_var();
        let mut opt = Adam::new(vec![("x".into(), x.clone())], AdamParams::default()).unwrap();
        let mut s = opt.state();
        s.m.insert(
            "x".into(),
            Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(matches!(opt.load_state(&s), Err(Error::Shape { .. })));
        let mut s = opt.state();
        s.v.remove("x");
        assert!(matches!(opt.load_state(&s), Err(Error::Invalid { .. })));
        let mut s = opt.state();
        s.v.insert(
            "y".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(matches!(opt.load_state(&s), Err(Error::Invalid { .. })));
        let ones = Tensor::ones(3, DType::F32, &Device::Cpu).unwrap();
        opt.set_moments("x", &ones, &ones).unwrap();
        let (m, v) = opt.moments("x").unwrap();
        assert_eq!(m.to_vec1::<f32>().unwrap(), vec![1.0; 3]);
        assert_eq!(v.to_vec1::<f32>().unwrap(), vec![1.0; 3]);
        assert!(Adam::new(
            vec![("x".into(), x.clone()), ("x".into(), quad_var())],
            AdamParams::default()
        )
        .is_err());
    }
}
