//! Exponential moving average of named parameter tensors (docs/score-model.md §7), after \[S21\] Song et
//! al. 2021, code `yang-song/score_sde_pytorch` `models/ema.py` `ExponentialMovingAverage` (with
//! `use_num_updates=True`, as \[S21\] constructs it).
//!
//! After the `n`-th update (n = 1, 2, …) the shadow `e` of every parameter `p` moves by
//!
//! ```text
//! d_n = min(decay, (1 + n)/(10 + n))
//! e ← e − (1 − d_n)·(e − p)
//! ```
//!
//! computed detached from the autograd graph. The warm-up factor `(1 + n)/(10 + n)` keeps early averages from being
//! dominated by the random initialisation. With constant `p`, `e_k = p + (e_0 − p)·Π_{n=1..k} d_n`.
//!
//! Default decay 0.999 (VE, docs/score-model.md §6 `ema_decay`; \[S21\] uses 0.9999 for VP/DDPM++). Shadows are keyed
//! by the `VarMap` names, so evaluation can build a second network from `VarBuilder::from_tensors(ema.tensors(), …)`
//! while the training `VarMap` is never swapped.

use std::collections::HashMap;

use candle_core::{Tensor, Var};

use crate::{Error, Result};

/// Default EMA decay (docs/score-model.md §6, VE).
pub const DEFAULT_DECAY: f64 = 0.999;

/// Decay used by the `n`-th update (n ≥ 1): `min(decay, (1 + n)/(10 + n))` (\[S21\] `ema.py`).
pub fn decay_at(decay: f64, n: u64) -> f64 {
    let n = n as f64;
    decay.min((1.0 + n) / (10.0 + n))
}

/// A snapshot of the EMA for checkpoints.
#[derive(Debug, Clone)]
pub struct EmaState {
    /// Number of updates applied so far.
    pub num_updates: u64,
    /// Shadow tensors by parameter name.
    pub shadow: HashMap<String, Tensor>,
}

/// Exponential moving average of named tensors.
#[derive(Debug, Clone)]
pub struct Ema {
    decay: f64,
    num_updates: u64,
    shadow: HashMap<String, Tensor>,
}

/// A detached copy with its own storage (a `Var`'s tensor is overwritten in place by `Var::set`, so sharing its
/// storage would make the shadow follow the parameter).
fn own(t: &Tensor) -> Result<Tensor> {
    Ok(t.detach().copy()?)
}

impl Ema {
    /// An EMA with `decay ∈ [0, 1]` whose shadows start as copies of `params` (names must be unique).
    pub fn new<'a, S: AsRef<str> + 'a>(
        params: impl IntoIterator<Item = (S, &'a Tensor)>,
        decay: f64,
    ) -> Result<Self> {
        if !(0.0..=1.0).contains(&decay) {
            return Err(Error::Config(format!(
                "ema decay = {decay}, expected in [0, 1]"
            )));
        }
        let mut shadow = HashMap::new();
        for (name, t) in params {
            let name = name.as_ref().to_string();
            if shadow.insert(name.clone(), own(t)?).is_some() {
                return Err(Error::Config(format!(
                    "ema: parameter name {name:?} appears twice"
                )));
            }
        }
        Ok(Ema {
            decay,
            num_updates: 0,
            shadow,
        })
    }

    /// An EMA over named `Var`s (e.g. [`crate::optim::Adam::vars`]).
    pub fn from_vars(vars: &[(String, Var)], decay: f64) -> Result<Self> {
        Self::new(vars.iter().map(|(n, v)| (n.as_str(), v.as_tensor())), decay)
    }

    /// An EMA over every variable of a `VarMap`, keyed by its names.
    pub fn from_varmap(varmap: &candle_nn::VarMap, decay: f64) -> Result<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Config("ema: VarMap mutex poisoned".into()))?;
        Self::new(data.iter().map(|(n, v)| (n.as_str(), v.as_tensor())), decay)
    }

    /// The configured (maximum) decay.
    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// Number of updates applied so far.
    pub fn num_updates(&self) -> u64 {
        self.num_updates
    }

    /// Sets the update count (for resuming; it drives the warm-up decay).
    pub fn set_num_updates(&mut self, n: u64) {
        self.num_updates = n;
    }

    /// One update with the current `params`, which must be exactly the shadowed names with the same shapes;
    /// returns the decay used. Nothing is changed on error.
    pub fn update<'a, S: AsRef<str> + 'a>(
        &mut self,
        params: impl IntoIterator<Item = (S, &'a Tensor)>,
    ) -> Result<f64> {
        let d = decay_at(self.decay, self.num_updates + 1);
        let mut next = HashMap::with_capacity(self.shadow.len());
        for (name, p) in params {
            let name = name.as_ref();
            let e = self.shadow.get(name).ok_or_else(|| {
                Error::invalid("ema update", format!("unknown parameter {name:?}"))
            })?;
            if e.dims() != p.dims() {
                return Err(Error::Shape {
                    what: format!("ema update of {name}"),
                    got: p.dims().to_vec(),
                    expected: format!("{:?}", e.dims()),
                });
            }
            let p = p.detach().to_dtype(e.dtype())?.to_device(e.device())?;
            let new = (e - ((e - p)? * (1.0 - d))?)?;
            if next.insert(name.to_string(), new).is_some() {
                return Err(Error::invalid(
                    "ema update",
                    format!("parameter {name:?} given twice"),
                ));
            }
        }
        if let Some(missing) = self.shadow.keys().find(|k| !next.contains_key(*k)) {
            return Err(Error::invalid(
                "ema update",
                format!("no value for parameter {missing:?}"),
            ));
        }
        self.shadow = next;
        self.num_updates += 1;
        Ok(d)
    }

    /// [`update`](Self::update) from named `Var`s.
    pub fn update_vars(&mut self, vars: &[(String, Var)]) -> Result<f64> {
        self.update(vars.iter().map(|(n, v)| (n.as_str(), v.as_tensor())))
    }

    /// [`update`](Self::update) from every variable of a `VarMap`.
    pub fn update_varmap(&mut self, varmap: &candle_nn::VarMap) -> Result<f64> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Config("ema: VarMap mutex poisoned".into()))?;
        self.update(data.iter().map(|(n, v)| (n.as_str(), v.as_tensor())))
    }

    /// The shadow of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.shadow.get(name)
    }

    /// All shadows by name.
    pub fn shadow(&self) -> &HashMap<String, Tensor> {
        &self.shadow
    }

    /// An owned map of the EMA tensors by name, ready for `VarBuilder::from_tensors`.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.shadow.clone()
    }

    /// Replaces the shadow of an existing parameter `name` (same shape; stored as a detached copy).
    pub fn set(&mut self, name: &str, t: &Tensor) -> Result<()> {
        let e = self
            .shadow
            .get(name)
            .ok_or_else(|| Error::invalid("ema state", format!("unknown parameter {name:?}")))?;
        if e.dims() != t.dims() {
            return Err(Error::Shape {
                what: format!("ema shadow {name}"),
                got: t.dims().to_vec(),
                expected: format!("{:?}", e.dims()),
            });
        }
        let t = own(&t.to_dtype(e.dtype())?.to_device(e.device())?)?;
        self.shadow.insert(name.to_string(), t);
        Ok(())
    }

    /// Snapshot for checkpoints (shadows are immutable values; later updates do not alter it).
    pub fn state(&self) -> EmaState {
        EmaState {
            num_updates: self.num_updates,
            shadow: self.shadow.clone(),
        }
    }

    /// Restores a [`state`](Self::state) snapshot: exactly the shadowed names, same shapes; nothing is changed on
    /// error.
    pub fn load_state(&mut self, state: &EmaState) -> Result<()> {
        if let Some(extra) = state.shadow.keys().find(|k| !self.shadow.contains_key(*k)) {
            return Err(Error::invalid(
                "ema state",
                format!("unknown parameter {extra:?}"),
            ));
        }
        let mut next = self.clone();
        for name in self.shadow.keys() {
            let t = state.shadow.get(name).ok_or_else(|| {
                Error::invalid("ema state", format!("missing shadow of {name:?}"))
            })?;
            next.set(name, t)?;
        }
        next.num_updates = state.num_updates;
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn ema_update_closed_form() {
        let e0 = [1.0f32, -2.0, 0.5];
        let p = [3.0f32, 4.0, -1.0];
        let (te0, tp) = (t(&e0), t(&p));
        let tq = t(&[7.0]);
        let mut ema = Ema::new([("w", &te0), ("q", &tq)], 0.9).unwrap();
        let k = 25u64;
        let mut prod = 1.0f64;
        for n in 1..=k {
            let d = ema.update([("w", &tp), ("q", &tq)]).unwrap();
            let want = 0.9f64.min((1.0 + n as f64) / (10.0 + n as f64));
            assert_eq!(d, want);
            prod *= want;
        }
        assert_eq!(ema.num_updates(), k);
        // Here only the warm-up (1+n)/(10+n) acts (it exceeds 0.9 only for n > 80); the capped regime follows.
        let got = ema.get("w").unwrap().to_vec1::<f32>().unwrap();
        for i in 0..3 {
            let want = p[i] as f64 + (e0[i] as f64 - p[i] as f64) * prod;
            assert!((got[i] as f64 - want).abs() < 1e-6, "{got:?}");
        }
        assert_eq!(ema.get("q").unwrap().to_vec1::<f32>().unwrap(), vec![7.0]);

        // Capped regime: decay 0.5 < (1+n)/(10+n) from n = 9 on.
        let mut ema = Ema::new([("w", &te0)], 0.5).unwrap();
        let mut prod = 1.0f64;
        for n in 1..=12u64 {
            ema.update([("w", &tp)]).unwrap();
            prod *= decay_at(0.5, n);
        }
        assert_eq!(decay_at(0.5, 12), 0.5);
        let got = ema.get("w").unwrap().to_vec1::<f32>().unwrap();
        for i in 0..3 {
            let want = p[i] as f64 + (e0[i] as f64 - p[i] as f64) * prod;
            assert!((got[i] as f64 - want).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn shadow_does_not_follow_var() {
        let v = Var::from_vec(vec![1f32, 2.0], 2, &Device::Cpu).unwrap();
        let mut ema = Ema::from_vars(&[("v".into(), v.clone())], DEFAULT_DECAY).unwrap();
        v.set(&t(&[11.0, 12.0])).unwrap();
        assert_eq!(
            ema.get("v").unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0, 2.0]
        );
        let d = ema.update_vars(&[("v".into(), v.clone())]).unwrap();
        assert_eq!(d, 2.0 / 11.0);
        let got = ema.get("v").unwrap().to_vec1::<f32>().unwrap();
        let want = 1.0 + (1.0 - 2.0 / 11.0) * 10.0;
        assert!((got[0] as f64 - want).abs() < 1e-5, "{got:?}");
    }

    #[test]
    fn ema_state_roundtrip() {
        let (a, b) = (t(&[1.0, 2.0]), t(&[-1.0, 0.5, 3.0]));
        let (a1, b1) = (t(&[2.0, 0.0]), t(&[1.0, 1.0, 1.0]));
        let (a2, b2) = (t(&[-3.0, 5.0]), t(&[0.25, 9.0, -2.0]));
        let mut full = Ema::new([("a", &a), ("b", &b)], 0.95).unwrap();
        let mut part = full.clone();
        for _ in 0..4 {
            full.update([("a", &a1), ("b", &b1)]).unwrap();
            part.update([("a", &a1), ("b", &b1)]).unwrap();
        }
        // Save through host vectors, restore into a fresh EMA, continue.
        let s = part.state();
        let host: HashMap<String, Tensor> = s
            .shadow
            .iter()
            .map(|(k, v)| (k.clone(), t(&v.to_vec1::<f32>().unwrap())))
            .collect();
        let saved = EmaState {
            num_updates: s.num_updates,
            shadow: host,
        };
        let mut resumed = Ema::new([("a", &a), ("b", &b)], 0.95).unwrap();
        resumed.load_state(&saved).unwrap();
        assert_eq!(resumed.num_updates(), 4);
        for _ in 0..3 {
            full.update([("a", &a2), ("b", &b2)]).unwrap();
            resumed.update([("a", &a2), ("b", &b2)]).unwrap();
        }
        let bits = |e: &Ema, n: &str| {
            e.get(n)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|f| f.to_bits())
                .collect::<Vec<_>>()
        };
        for n in ["a", "b"] {
            assert_eq!(bits(&full, n), bits(&resumed, n));
        }
        assert_eq!(full.tensors().len(), 2);

        // Validation: wrong shape, missing and unknown names, bad decay.
        let mut bad = saved.clone();
        bad.shadow.insert("a".into(), t(&[1.0]));
        assert!(matches!(resumed.load_state(&bad), Err(Error::Shape { .. })));
        let mut bad = saved.clone();
        bad.shadow.remove("b");
        assert!(matches!(
            resumed.load_state(&bad),
            Err(Error::Invalid { .. })
        ));
        let mut bad = saved.clone();
        bad.shadow.insert("c".into(), t(&[1.0]));
        assert!(matches!(
            resumed.load_state(&bad),
            Err(Error::Invalid { .. })
        ));
        assert!(resumed.update([("a", &a2)]).is_err());
        assert_eq!(resumed.num_updates(), 7);
        assert!(Ema::new([("a", &a)], 1.5).is_err());
    }
}
