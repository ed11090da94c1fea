//! Tests of the U-Net: output shape and zero output at initialisation, a gradient for every variable, seeded
//! initialisation and dropout, bit-identical rebuilds from tensors, input errors, parameter counts and the sizes table.

use std::collections::HashMap;

use super::*;
use crate::sde::standard_normals;
use rand_core::SeedableRng;

fn tiny(size: usize, target: usize) -> ModelConfig {
    ModelConfig {
        image_size: size,
        target_channels: target,
        attn_resolutions: vec![size / 2],
        ..ModelConfig::tiny()
    }
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    let v = standard_normals(&mut ChaCha8Rng::seed_from_u64(seed), n);
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn inputs(cfg: &ModelConfig, b: usize, seed: u64) -> (Tensor, Tensor, Tensor) {
    let s = cfg.image_size;
    let x = randn(&[b, cfg.target_channels, s, s], seed);
    let y = randn(&[b, cfg.cond_channels, s, s], seed + 1);
    let label = randn(&[b], seed + 2);
    (x, y, label)
}

fn build(cfg: &ModelConfig) -> (NcsnppUnet, VarMap) {
    let vm = VarMap::new();
    let net = NcsnppUnet::new_seeded(cfg, &vm, DType::F32, &Device::Cpu).unwrap();
    (net, vm)
}

/// Gives the zero-initialized layers (every `conv1`, attention `out`, `out.conv`) O(1)-scale weights and biases,
/// as training would, so that every path of the network influences the output.
fn perturb_zero_init(vm: &VarMap) {
    let mut rng = ChaCha8Rng::seed_from_u64(1234);
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let zero_init =
            name.contains("conv1.") || name.contains(".out.") || name.starts_with("out.conv");
        if zero_init || name.ends_with(".bias") {
            let var = &data[name];
            let fan = var.dims().iter().skip(1).product::<usize>().max(1) as f64;
            let z = standard_normals(&mut rng, var.elem_count());
            let z: Vec<f32> = z.iter().map(|v| v / fan.sqrt() as f32).collect();
            var.set(&Tensor::from_vec(z, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

#[test]
fn output_shape_equals_target_shape() {
    for size in [16, 32, 64] {
        for target in [1, 3] {
            let cfg = tiny(size, target);
            let (net, _) = build(&cfg);
            let (x, y, l) = inputs(&cfg, 2, 1);
            let out = net.forward(&x, &y, &l, None).unwrap();
            assert_eq!(out.dims(), x.dims(), "size {size}, target {target}");
        }
    }
    // f64 networks run the same code.
    let cfg = ModelConfig::tiny();
    let vm = VarMap::new();
    let net = NcsnppUnet::new_seeded(&cfg, &vm, DType::F64, &Device::Cpu).unwrap();
    let (x, y, l) = inputs(&cfg, 2, 1);
    let (x, y, l) = (
        x.to_dtype(DType::F64).unwrap(),
        y.to_dtype(DType::F64).unwrap(),
        l.to_dtype(DType::F64).unwrap(),
    );
    let out = net.forward(&x, &y, &l, None).unwrap();
    assert_eq!((out.dims(), out.dtype()), (x.dims(), DType::F64));
}

#[test]
fn output_is_near_zero_at_init() {
    // [S21] init_scale 0 → 1e-10: the output conv has |W| ≲ √(3e-10/fan_avg) ≈ 1e-6, applied to O(1)
    // activations over 9·nf taps, so |out| ~ 1e-5 (not exactly 0, as in [S21]).
    for cfg in [ModelConfig::tiny(), tiny(32, 2)] {
        let (net, _) = build(&cfg);
        let (x, y, l) = inputs(&cfg, 3, 5);
        let out = net.forward(&x, &y, &l, None).unwrap();
        let m = max_abs(&out);
        assert!(m < 1e-4, "max |out| = {m}");
        eprintln!("max |out| at init ({}²): {m:.3e}", cfg.image_size);
    }
}

#[test]
fn every_var_gets_a_gradient() {
    let cfg = ModelConfig {
        dropout: 0.1,
        ..ModelConfig::tiny()
    };
    let (net, vm) = build(&cfg);
    perturb_zero_init(&vm);
    let (x, y, l) = inputs(&cfg, 2, 7);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let out = net.forward(&x, &y, &l, Some(&mut rng)).unwrap();
    let r = randn(out.dims(), 11);
    let loss = (out * r).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    assert!(!data.is_empty());
    for (name, var) in data.iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert_eq!(g.dims(), var.dims(), "{name}");
        let n = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(n > 0.0 && n.is_finite(), "{name}: |grad|² = {n}");
    }
}

#[test]
fn fourier_w_is_a_constant_outside_the_varmap() {
    let cfg = ModelConfig::tiny();
    let (net, vm) = build(&cfg);
    assert!(vm
        .data()
        .lock()
        .unwrap()
        .keys()
        .all(|k| !k.contains("fourier")));
    let c = net.constants();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].0, "temb.fourier.W");
    assert_eq!(c[0].1.dims(), &[cfg.nf]);
    let (net2, _) = build(&cfg);
    assert_eq!(bits(&c[0].1), bits(&net2.constants()[0].1));
    let other = ModelConfig {
        seed: cfg.seed + 1,
        ..cfg.clone()
    };
    let (net3, _) = build(&other);
    assert_ne!(bits(&c[0].1), bits(&net3.constants()[0].1));
    // A plain (candle-RNG) VarMap builder draws the same W: it depends on the seed only.
    let vm4 = VarMap::new();
    let net4 = NcsnppUnet::new(
        &cfg,
        VarBuilder::from_varmap(&vm4, DType::F32, &Device::Cpu),
    )
    .unwrap();
    assert_eq!(bits(&c[0].1), bits(&net4.constants()[0].1));
    // Positional embedding: no constants.
    let vp = ModelConfig {
        embedding: Embedding::Positional,
        precond: crate::model::PrecondKind::Vp,
        sde: crate::model::SdeConfig {
            kind: crate::model::SdeKind::Vp,
            ..Default::default()
        },
        ..cfg
    };
    let (net5, vm5) = build(&vp);
    assert!(net5.constants().is_empty());
    assert_eq!(param_count(&vp), vm_elems(&vm5));
    let (x, y, _) = inputs(&vp, 2, 1);
    let l = Tensor::new(&[0.0f32, 999.0], &Device::Cpu).unwrap();
    assert_eq!(net5.forward(&x, &y, &l, None).unwrap().dims(), x.dims());
}

#[test]
fn seeded_init_is_reproducible() {
    let cfg = ModelConfig::tiny();
    let (_, a) = build(&cfg);
    let (_, b) = build(&cfg);
    let (_, c) = build(&ModelConfig { seed: 1, ..cfg });
    let (a, b, c) = (
        a.data().lock().unwrap(),
        b.data().lock().unwrap(),
        c.data().lock().unwrap(),
    );
    for (k, v) in a.iter() {
        assert_eq!(bits(v.as_tensor()), bits(b[k].as_tensor()), "{k}");
        // Random weights differ across seeds; biases (0) and GroupNorm affine (1, 0) are constants.
        let random = k.ends_with(".weight") && !k.contains("gn");
        assert_eq!(bits(v.as_tensor()) != bits(c[k].as_tensor()), random, "{k}");
    }
}

#[test]
fn dropout_is_seeded_and_only_on_train_path() {
    let cfg = ModelConfig {
        dropout: 0.1,
        ..ModelConfig::tiny()
    };
    let (net, vm) = build(&cfg);
    perturb_zero_init(&vm);
    let (x, y, l) = inputs(&cfg, 2, 3);
    let eval = net.forward(&x, &y, &l, None).unwrap();
    let t1 = net
        .forward(&x, &y, &l, Some(&mut ChaCha8Rng::seed_from_u64(5)))
        .unwrap();
    let t2 = net
        .forward(&x, &y, &l, Some(&mut ChaCha8Rng::seed_from_u64(5)))
        .unwrap();
    let t3 = net
        .forward(&x, &y, &l, Some(&mut ChaCha8Rng::seed_from_u64(6)))
        .unwrap();
    assert_eq!(bits(&t1), bits(&t2));
    assert_ne!(bits(&t1), bits(&t3));
    assert!(max_abs(&(&t1 - &eval).unwrap()) > 1e-3);
    assert_eq!(bits(&eval), bits(&net.forward(&x, &y, &l, None).unwrap()));
    // p = 0: the rng is ignored and untouched.
    let cfg0 = ModelConfig::tiny();
    let net0 = NcsnppUnet::new(
        &cfg0,
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let a = net0.forward(&x, &y, &l, Some(&mut rng)).unwrap();
    assert_eq!(bits(&a), bits(&eval));
    assert_eq!(rng.get_word_pos(), 0);
}

#[test]
fn from_tensors_roundtrip_is_bit_identical() {
    let cfg = ModelConfig::tiny();
    let (net, vm) = build(&cfg);
    perturb_zero_init(&vm);
    let (x, y, l) = inputs(&cfg, 2, 9);
    let a = net.forward(&x, &y, &l, None).unwrap();
    let ts: HashMap<String, Tensor> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().copy().unwrap()))
        .collect();
    let net2 = NcsnppUnet::new(
        &cfg,
        VarBuilder::from_tensors(ts.clone(), DType::F32, &Device::Cpu),
    )
    .unwrap();
    assert_eq!(bits(&a), bits(&net2.forward(&x, &y, &l, None).unwrap()));
    // A checkpoint's stored W is used in preference to the seed.
    let mut ts3 = ts;
    let w3 = (net.constants()[0].1.clone() * 2.0).unwrap();
    ts3.insert("temb.fourier.W".into(), w3.clone());
    let net3 = NcsnppUnet::new(
        &cfg,
        VarBuilder::from_tensors(ts3, DType::F32, &Device::Cpu),
    )
    .unwrap();
    assert_eq!(bits(&net3.constants()[0].1), bits(&w3));
    // A missing tensor is an error.
    assert!(NcsnppUnet::new(
        &cfg,
        VarBuilder::from_tensors(HashMap::new(), DType::F32, &Device::Cpu)
    )
    .is_err());
}

#[test]
fn bad_inputs_give_the_right_error() {
    let cfg = ModelConfig::tiny();
    let (net, _) = build(&cfg);
    let (x, y, l) = inputs(&cfg, 2, 1);
    let is_shape = |r: Result<Tensor>, what: &str| match r {
        Err(Error::Shape { what: w, .. }) => assert!(w.contains(what), "{w}"),
        other => panic!("expected a Shape error about {what}, got {other:?}"),
    };
    is_shape(net.forward(&x.flatten_all().unwrap(), &y, &l, None), "x");
    is_shape(net.forward(&x.narrow(1, 0, 1).unwrap(), &y, &l, None), "x");
    is_shape(net.forward(&x.narrow(3, 0, 8).unwrap(), &y, &l, None), "x");
    is_shape(
        net.forward(&x, &y.narrow(1, 0, 1).unwrap(), &l, None),
        "cond",
    );
    is_shape(
        net.forward(&x, &y.narrow(0, 0, 1).unwrap(), &l, None),
        "cond",
    );
    is_shape(net.forward(&x, &y.unsqueeze(0).unwrap(), &l, None), "cond");
    is_shape(
        net.forward(&x, &y, &l.narrow(0, 0, 1).unwrap(), None),
        "noise_label",
    );
    is_shape(
        net.forward(&x, &y, &l.unsqueeze(1).unwrap(), None),
        "noise_label",
    );
    let (x16, y16, l16) = inputs(&tiny(32, 2), 2, 1);
    is_shape(net.forward(&x16, &y16, &l16, None), "x");

    let nan_at = |t: &Tensor| {
        let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mid = v.len() / 2;
        v[mid] = f32::NAN;
        Tensor::from_vec(v, t.shape(), &Device::Cpu).unwrap()
    };
    let inf_label = Tensor::new(&[0.0f32, f32::NEG_INFINITY], &Device::Cpu).unwrap();
    for (r, what) in [
        (net.forward(&nan_at(&x), &y, &l, None), "x"),
        (net.forward(&x, &nan_at(&y), &l, None), "cond"),
        (net.forward(&x, &y, &inf_label, None), "noise_label"),
    ] {
        match r {
            Err(Error::NonFinite { what: w, .. }) => assert!(w.contains(what), "{w}"),
            other => panic!("expected NonFinite about {what}, got {other:?}"),
        }
    }
    match net.forward(&x.to_dtype(DType::F64).unwrap(), &y, &l, None) {
        Err(Error::Invalid { .. }) => {}
        other => panic!("expected Invalid (dtype), got {other:?}"),
    }
    let mut bad = cfg.clone();
    bad.nf = 6;
    assert!(matches!(
        NcsnppUnet::new(&bad, VarBuilder::zeros(DType::F32, &Device::Cpu)),
        Err(Error::Config(_))
    ));
}

fn vm_elems(vm: &VarMap) -> usize {
    vm.all_vars().iter().map(|v| v.elem_count()).sum()
}

fn paper128() -> ModelConfig {
    ModelConfig {
        image_size: 128,
        ch_mult: vec![1, 1, 2, 2, 2],
        ..ModelConfig::paper()
    }
}

#[test]
fn param_count_equals_varmap_size() {
    for cfg in [
        ModelConfig::tiny(),
        ModelConfig::cpu(),
        ModelConfig::paper(),
        paper128(),
        tiny(32, 3),
        ModelConfig {
            num_res_blocks: 1,
            ..ModelConfig::cpu()
        },
    ] {
        let vm = VarMap::new();
        NcsnppUnet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
        assert_eq!(
            param_count(&cfg),
            vm_elems(&vm),
            "{}",
            cfg.architecture_key()
        );
    }
}

/// Prints the sizes table of the module doc (`cargo test --release --lib sizes_table -- --nocapture`).
#[test]
fn sizes_table() {
    let rows = [
        ("paper @64²", ModelConfig::paper()),
        ("paper @128², ch_mult [1,1,2,2,2]", paper128()),
        ("cpu @64²", ModelConfig::cpu()),
        (
            "cpu-1rb @64²",
            ModelConfig {
                num_res_blocks: 1,
                ..ModelConfig::cpu()
            },
        ),
        ("tiny @16²", ModelConfig::tiny()),
    ];
    for (name, cfg) in rows {
        eprintln!(
            "| {name} | {} | {:.3} |",
            param_count(&cfg),
            forward_flops(&cfg) / 1e9
        );
    }
    // docs/score-model.md §6 and the PyTorch reference (benches/reference/unet_torch.py).
    assert_eq!(param_count(&ModelConfig::paper()), 9_881_154);
    assert_eq!(param_count(&ModelConfig::cpu()), 1_758_242);
    assert_eq!(param_count(&ModelConfig::tiny()), 190_370);
}

/// One forward + backward of the cpu preset at batch 8, 64² with dropout, with each convolution implementation
/// (timing only): `cargo test --release --lib unet_cpu_preset_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn unet_cpu_preset_timing() {
    use crate::model::kernels::conv::{set_conv_impl, ConvImpl};
    let cfg = ModelConfig::cpu();
    let (net, vm) = build(&cfg);
    perturb_zero_init(&vm);
    let (x, y, l) = inputs(&cfg, 8, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // CLUSTERMAPS_CONV=auto|candle runs only that implementation (e.g. to compare peak RSS).
    let imps = match std::env::var("CLUSTERMAPS_CONV").as_deref() {
        Ok("auto") => vec![ConvImpl::Auto],
        Ok("candle") => vec![ConvImpl::Candle],
        _ => vec![ConvImpl::Auto, ConvImpl::Candle, ConvImpl::Auto],
    };
    for imp in imps {
        set_conv_impl(imp);
        for rep in 0..2 {
            let t0 = std::time::Instant::now();
            let out = net.forward(&x, &y, &l, Some(&mut rng)).unwrap();
            let loss = out.sqr().unwrap().sum_all().unwrap();
            let t1 = std::time::Instant::now();
            let grads = loss.backward().unwrap();
            let t2 = std::time::Instant::now();
            drop(grads);
            let t_eval = std::time::Instant::now();
            net.forward(&x, &y, &l, None).unwrap();
            let fwd_eval = t_eval.elapsed().as_secs_f64();
            let (f, b) = ((t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
            eprintln!(
                "{imp:?} rep {rep}: forward(train) {f:.3} s, backward {b:.3} s, total {:.3} s; \
                 eval forward {fwd_eval:.3} s ({:.1} GFLOP/s)",
                f + b,
                8.0 * forward_flops(&cfg) / 1e9 / fwd_eval
            );
        }
    }
    set_conv_impl(ConvImpl::Auto);
}
