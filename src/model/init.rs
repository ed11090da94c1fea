//! Weight initialization of the NCSN++-lite network (docs/score-model.md §4) and a seeded `VarMap` backend.
//!
//! \[S21\] `layers.default_init(scale)` is `variance_scaling(scale, 'fan_avg', 'uniform')` (ported from JAX, the
//! initialization of DDPM): `W ~ U(−b, b)` with `b = √(3·scale/fan_avg)`, `fan_avg = (fan_in + fan_out)/2`, where for
//! a weight of shape `[out, in, k, k]` `fan_in = in·k²` and `fan_out = out·k²` (`_compute_fans` with the receptive
//! field). `scale = 0` means `1e-10`, so "zero-initialized" layers are tiny but not exactly zero (as in \[S21\]).
//! Biases start at zero (`nn.init.zeros_`).
//!
//! `VarBuilder::from_varmap` draws `Init::Uniform` from candle's RNG, which cannot be seeded on the CPU
//! (docs/score-model.md §1). [`seeded_var_builder`] is a drop-in replacement that fills a [`VarMap`] from a host
//! `ChaCha8Rng` instead, one stream per variable name, so the initial weights depend only on `ModelConfig::seed` and
//! the variable's name (not on the construction order, device or thread count).

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::sde::standard_normals_f64;
use crate::Result;

/// \[S21\] `default_init(scale)` for a weight of shape `[out, in, (k, k)]`: `Init::Uniform{−b, b}` with
/// `b = √(3·scale/fan_avg)`; `scale = 0` is replaced by `1e-10` as in \[S21\].
pub fn default_init(shape: &[usize], scale: f64) -> Init {
    let scale = if scale == 0.0 { 1e-10 } else { scale };
    let receptive: usize = shape.iter().skip(2).product();
    let fan_in = (shape.get(1).copied().unwrap_or(1) * receptive) as f64;
    let fan_out = (shape.first().copied().unwrap_or(1) * receptive) as f64;
    let bound = (3.0 * scale / (0.5 * (fan_in + fan_out))).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// A weight `[out, in, (k, k)]` with \[S21\] `default_init(scale)` and a zero bias `[out]`, at `vb/weight`, `vb/bias`.
pub(crate) fn weight_and_bias(
    shape: &[usize],
    scale: f64,
    vb: &VarBuilder,
) -> Result<(Tensor, Tensor)> {
    let w = vb.get_with_hints(shape, "weight", default_init(shape, scale))?;
    let b = vb.get_with_hints(shape[0], "bias", Init::Const(0.0))?;
    Ok((w, b))
}

/// A `VarBuilder` that creates missing variables in `varmap` with values drawn on the host (docs/score-model.md §1):
/// variable `name` gets its own `ChaCha8Rng::seed_from_u64(seed)` stream (FNV-1a hash of the name with the top bit set,
/// so it never meets stream 1 of the Fourier features). Supports `Init::Const`, `Uniform` and `Randn` (all the network
/// uses). Existing variables are returned as they are (shape-checked), exactly like `VarBuilder::from_varmap`.
pub fn seeded_var_builder(
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(SeededVarMap {
            varmap: varmap.clone(),
            seed,
        }),
        dtype,
        device.clone(),
    )
}

/// The RNG stream of variable `name` in [`seeded_var_builder`].
fn stream_of(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h | (1 << 63)
}

struct SeededVarMap {
    varmap: VarMap,
    seed: u64,
}

impl SeededVarMap {
    /// Host draws of `init` for `n` elements, in f64.
    fn draw(&self, name: &str, init: Init, n: usize) -> candle_core::Result<Vec<f64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream_of(name));
        const TWO_POW_M53: f64 = 1.0 / (1u64 << 53) as f64;
        Ok(match init {
            Init::Const(v) => vec![v; n],
            Init::Uniform { lo, up } => (0..n)
                .map(|_| lo + (up - lo) * ((rng.next_u64() >> 11) as f64 * TWO_POW_M53))
                .collect(),
            Init::Randn { mean, stdev } => standard_normals_f64(&mut rng, n)
                .into_iter()
                .map(|z| mean + stdev * z)
                .collect(),
            Init::Kaiming { .. } => {
                candle_core::bail!("seeded_var_builder: Init::Kaiming is not supported ({name})")
            }
        })
    }
}

impl candle_nn::var_builder::SimpleBackend for SeededVarMap {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let values = self.draw(name, h, s.elem_count())?;
        let t = Tensor::from_vec(values, s, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)?;
        let var = Var::from_tensor(&t)?;
        let t = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("seeded_var_builder: get_unchecked({name}) needs a shape; use get")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_init_bounds() {
        // conv 3×3, 64 → 128: fan_avg = (64·9 + 128·9)/2 = 864, b = √(3/864).
        match default_init(&[128, 64, 3, 3], 1.0) {
            Init::Uniform { lo, up } => {
                assert!((up - (3.0f64 / 864.0).sqrt()).abs() < 1e-15);
                assert_eq!(lo, -up);
            }
            other => panic!("{other:?}"),
        }
        // linear 256 → 64 with scale 0 → 1e-10.
        match default_init(&[64, 256], 0.0) {
            Init::Uniform { up, .. } => assert!((up - (3e-10f64 / 160.0).sqrt()).abs() < 1e-20),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seeded_init_is_reproducible_and_order_independent() {
        let draw = |names: &[&str], seed: u64| {
            let vm = VarMap::new();
            let vb = seeded_var_builder(&vm, seed, DType::F32, &Device::Cpu);
            for n in names {
                vb.pp(*n)
                    .get_with_hints((3, 4), "weight", Init::Uniform { lo: -1.0, up: 1.0 })
                    .unwrap();
            }
            let a = vb.pp("a").get((3, 4), "weight").unwrap();
            (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vm)
        };
        let (a1, vm) = draw(&["a", "b"], 7);
        let (a2, _) = draw(&["b", "a"], 7);
        let (a3, _) = draw(&["a", "b"], 8);
        assert_eq!(a1, a2);
        assert_ne!(a1, a3);
        assert!(a1.iter().all(|v| (-1.0..1.0).contains(v)));
        let b = vm.data().lock().unwrap()["b.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_ne!(a1, b);
        assert_eq!(vm.all_vars().len(), 2);
    }
}
