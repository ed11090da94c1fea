//! Training-side tests (docs/score-model.md §10): losses against closed forms, a tiny U-Net learning an exact
//! score, checkpoints (round trip, validation, atomicity) and bit-exact resume.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use clustermaps::checkpoint::{self, Checkpoint};
use clustermaps::data::transform::NormStats;
use clustermaps::edm::EdmPrecond;
use clustermaps::loss::{dsm_loss, edm_loss, Reduce, TrainableScore};
use clustermaps::model::ModelConfig;
use clustermaps::precond::ScoreFn;
use clustermaps::rng::{normal_tensor, stream};
use clustermaps::sde::{AnySde, VeSde};
use clustermaps::train::{RunConfig, SplitData, TrainConfig, Trainer};
use clustermaps::Error;
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------------------------------------------
// Closed-form scores
// ---------------------------------------------------------------------------------------------------------------

/// Per-pixel Gaussian data `x0 ~ N(m, s²)` under a VE SDE: `p_t = N(m, s² + σ²)`, exact score
/// `−(x − m)/(s² + σ²)`, Bayes denoiser `(s²x + σ²m)/(s² + σ²)`. `scale` multiplies the score (1 = exact).
struct GaussianScore {
    sde: AnySde,
    m: f64,
    s: f64,
    scale: f64,
}

impl TrainableScore for GaussianScore {
    fn sde(&self) -> &AnySde {
        &self.sde
    }
    fn scaled_score_rows(
        &self,
        x: &Tensor,
        ts: &[f64],
        _c: &Tensor,
        _d: Option<&mut ChaCha8Rng>,
    ) -> clustermaps::Result<Tensor> {
        let k: Vec<f32> = ts
            .iter()
            .map(|&t| {
                let sig = self.sde.sigma_equiv(t);
                (-self.scale * sig / (self.s * self.s + sig * sig)) as f32
            })
            .collect();
        let k = Tensor::from_vec(k, (ts.len(), 1, 1, 1), x.device())?;
        Ok(x.affine(1.0, -self.m)?.broadcast_mul(&k)?)
    }
    fn denoise_rows(
        &self,
        x: &Tensor,
        sig: &[f64],
        _c: &Tensor,
        _d: Option<&mut ChaCha8Rng>,
    ) -> clustermaps::Result<Tensor> {
        let s2 = self.s * self.s;
        let a: Vec<f32> = sig.iter().map(|&g| (s2 / (s2 + g * g)) as f32).collect();
        let b: Vec<f32> = sig
            .iter()
            .map(|&g| (g * g * self.m / (s2 + g * g)) as f32)
            .collect();
        let n = sig.len();
        let a = Tensor::from_vec(a, (n, 1, 1, 1), x.device())?;
        let b = Tensor::from_vec(b, (n, 1, 1, 1), x.device())?;
        Ok(x.broadcast_mul(&a)?.broadcast_add(&b)?)
    }
}

fn mean_and_sem(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// docs/score-model.md §10 `dsm_loss_analytic`: with the exact score the per-dimension DSM loss is `s²/(s² + σ²)`; a
/// score scaled by 0.9 is rejected (paired with the same noise, its excess loss `0.01·σ²/(s² + σ²)` is many standard
/// errors above zero where σ is not negligible against s).
#[test]
fn dsm_loss_analytic() {
    let dev = Device::Cpu;
    let sde = AnySde::Ve(VeSde::new(0.01, 50.0, 1000).unwrap());
    let (m, s) = (0.7, 0.8);
    let (b, d) = (64usize, 256usize);
    let per_dim = |scale: f64, t: f64, x0: &Tensor, z: &Tensor, how: Reduce| {
        let model = GaussianScore {
            sde: sde.clone(),
            m,
            s,
            scale,
        };
        let y = x0.zeros_like().unwrap();
        dsm_loss(&model, x0, &y, &vec![t; b], z, how, None).unwrap()
    };
    for t in [0.2, 0.5, 0.8] {
        let sig = sde.sigma_equiv(t);
        let floor = s * s / (s * s + sig * sig);
        let mut rng = stream(11, (t * 100.0) as u64);
        let x0 = (normal_tensor(&mut rng, (b, 1, 16, 16), &dev).unwrap() * s)
            .unwrap()
            .affine(1.0, m)
            .unwrap();
        let z = normal_tensor(&mut rng, (b, 1, 16, 16), &dev).unwrap();
        let exact = per_dim(1.0, t, &x0, &z, Reduce::Mean);
        let per: Vec<f64> = exact
            .per_dim
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(per.len(), b);
        let (mean, sem) = mean_and_sem(&per);
        assert!(
            (mean - floor).abs() < 3.0 * sem,
            "t={t}: loss {mean} vs floor {floor} ± {sem}"
        );
        // Sum reduction is ½Σ over dimensions, batch-averaged.
        let (l, p) = per_dim(1.0, t, &x0, &z, Reduce::Sum).values().unwrap();
        assert!((l - 0.5 * p * d as f64).abs() < 1e-3 * l, "{l} vs {p}");
        if t >= 0.5 {
            let wrong: Vec<f64> = per_dim(0.9, t, &x0, &z, Reduce::Mean)
                .per_dim
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1()
                .unwrap();
            let diff: Vec<f64> = wrong.iter().zip(&per).map(|(w, e)| w - e).collect();
            let (dm, ds) = mean_and_sem(&diff);
            assert!(
                dm > 3.0 * ds,
                "t={t}: a 0.9× score was not rejected (excess {dm} ± {ds})"
            );
        }
    }
}

/// docs/score-model.md §10 `edm_identities` (Monte-Carlo part): for `x0 ~ N(0, σ_d²)` the Bayes denoiser is `c_skip·x`
/// (F ≡ 0), whose EDM loss is `λ·c_out²` = 1 per dimension at every σ.
#[test]
fn edm_loss_at_bayes_optimum_is_one_per_dim() {
    let dev = Device::Cpu;
    let pre = EdmPrecond::new(1.0).unwrap();
    let model = GaussianScore {
        sde: AnySde::Ve(VeSde::new(0.002, 80.0, 1000).unwrap()),
        m: 0.0,
        s: 1.0,
        scale: 1.0,
    };
    let (b, d) = (128usize, 64usize);
    for sig in [0.01, 0.3, 1.0, 7.0, 60.0] {
        let mut rng = stream(5, (sig * 1000.0) as u64);
        let x0 = normal_tensor(&mut rng, (b, 1, 8, 8), &dev).unwrap();
        let n = normal_tensor(&mut rng, (b, 1, 8, 8), &dev).unwrap();
        let out = edm_loss(&model, &pre, &x0, &x0, &vec![sig; b], &n, Reduce::Sum, None).unwrap();
        // Per-sample weighted sums: recompute from the loss of single rows for the MC error.
        let per: Vec<f64> = (0..b)
            .map(|i| {
                let xi = x0.narrow(0, i, 1).unwrap();
                let ni = n.narrow(0, i, 1).unwrap();
                edm_loss(&model, &pre, &xi, &xi, &[sig], &ni, Reduce::Sum, None)
                    .unwrap()
                    .values()
                    .unwrap()
                    .0
            })
            .collect();
        let (mean, sem) = mean_and_sem(&per);
        assert!((out.values().unwrap().0 - mean).abs() < 1e-3 * mean);
        assert!(
            (mean - d as f64).abs() < 3.0 * sem,
            "σ={sig}: {mean} vs {d} ± {sem}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Tiny runs on synthetic conditional-Gaussian data
// ---------------------------------------------------------------------------------------------------------------

/// `x0 = a·y + b + s·ε` per pixel and channel, `y ~ N(0, 1)`: the posterior `p(x0 | y) = N(a·y + b, s²)` is known.
const A: f32 = 0.8;
const B: f32 = 0.3;
const S: f32 = 0.5;

fn gaussian_split(n: usize, px: usize, seed: u64) -> SplitData {
    let mut rng = stream(seed, 0);
    let d = 2 * px * px;
    let y = clustermaps::sde::standard_normals(&mut rng, n * d);
    let e = clustermaps::sde::standard_normals(&mut rng, n * d);
    let x: Vec<f32> = y.iter().zip(&e).map(|(y, e)| A * y + B + S * e).collect();
    SplitData::from_standardized(y, [n, 2, px, px], x, [n, 2, px, px]).unwrap()
}

fn dummy_stats() -> NormStats {
    serde_json::from_str(
        r#"{"split":"train","n_clusters":0,"n_pixels":0,"percentile_method":"none","inputs":[],"targets":[]}"#,
    )
    .unwrap()
}

fn tiny_run(px: usize) -> RunConfig {
    let mut model = ModelConfig::tiny();
    model.image_size = px;
    model.attn_resolutions = vec![px / 2];
    let train = TrainConfig {
        val_clusters: 8,
        ..TrainConfig::tiny()
    };
    RunConfig { model, train }
}

fn trainer(cfg: RunConfig, px: usize) -> Trainer {
    let train = gaussian_split(256, px, 1);
    let val = gaussian_split(8, px, 2);
    Trainer::from_data(cfg, train, Some(val), dummy_stats(), Device::Cpu).unwrap()
}

/// Relative score error `E‖σ(s_θ − s*)‖² / E‖σs*‖²` of the EMA... of the *current* network at noise level σ.
fn relative_score_error(t: &Trainer, sigma: f64, use_ema: bool) -> f64 {
    let dev = Device::Cpu;
    let model = if use_ema {
        t.ema_model().unwrap()
    } else {
        t.model().clone()
    };
    let data = gaussian_split(64, 8, 99);
    let idx: Vec<usize> = (0..64).collect();
    let (x0, y) = data.batch(&idx, &[0; 64], &dev).unwrap();
    let mut rng = stream(3, (sigma * 100.0) as u64);
    let z = normal_tensor(&mut rng, x0.shape(), &dev).unwrap();
    let xt = (&x0 + (&z * sigma).unwrap()).unwrap();
    let sde = model.sde().clone();
    let tt = sde.t_of_sigma_equiv(sigma);
    let s_theta = (model.score(&xt, tt, &y).unwrap() * sigma).unwrap();
    let mean = y.affine(A as f64, B as f64).unwrap();
    let s2 = (S * S) as f64;
    let s_star = ((&xt - mean).unwrap() * (-sigma / (s2 + sigma * sigma))).unwrap();
    let num = (&s_theta - &s_star)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    let den = s_star
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    num / den
}

/// docs/score-model.md §10 `dsm_trains_to_score`: a tiny U-Net on 8×8 conditional Gaussian data approaches the exact
/// conditional score within a few hundred steps.
#[test]
fn dsm_trains_to_score() {
    let mut cfg = tiny_run(8);
    cfg.train.n_iters = 400;
    cfg.train.batch_size = 16;
    cfg.train.lr = 2e-3;
    cfg.train.warmup = 20;
    cfg.train.val_clusters = 0;
    cfg.train.ema_decay = 0.95;
    let mut t = trainer(cfg, 8);
    let sigmas = [0.1, 1.0, 5.0];
    let before: Vec<f64> = sigmas
        .iter()
        .map(|&s| relative_score_error(&t, s, false))
        .collect();
    t.fit(400, clustermaps::train::Progress::Quiet).unwrap();
    let after: Vec<f64> = sigmas
        .iter()
        .map(|&s| relative_score_error(&t, s, true))
        .collect();
    println!("relative score error before {before:?} after {after:?}");
    for ((s, b), a) in sigmas.iter().zip(&before).zip(&after) {
        assert!(*a < 0.15, "σ={s}: relative score error {a} ≥ 0.15");
        assert!(*a * 5.0 < *b, "σ={s}: error fell only from {b} to {a}");
    }
}

fn params_bits(t: &Trainer) -> Vec<(String, Vec<u32>)> {
    let (p, e) = t.weights().unwrap();
    p.into_iter()
        .chain(e.into_iter().map(|(k, v)| (format!("ema.{k}"), v)))
        .map(|(k, v)| {
            (
                k,
                v.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect(),
            )
        })
        .collect()
}

fn loss_bits(t: &Trainer) -> Vec<(u64, u64, u64)> {
    t.history()
        .iter()
        .map(|r| (r.step, r.loss.to_bits(), r.grad_norm.to_bits()))
        .collect()
}

/// docs/score-model.md §10 `resume_determinism` and `checkpoint_roundtrip`: 40 steps uninterrupted equal 20 steps, a
/// checkpoint, a fresh trainer resumed from it and 20 more — loss sequence and final weights bit for bit. Dropout on,
/// so the RNG streams are exercised.
#[test]
fn resume_reproduces_the_uninterrupted_run_bit_for_bit() {
    let mut cfg = tiny_run(16);
    cfg.model.dropout = 0.1;
    cfg.train.checkpoint_every = 20;
    cfg.train.val_every = 10;
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));

    let mut a = trainer(cfg.clone(), 16);
    a.attach_run_dir(&dir_a).unwrap();
    a.fit(40, clustermaps::train::Progress::Quiet).unwrap();

    let mut b = trainer(cfg.clone(), 16);
    b.attach_run_dir(&dir_b).unwrap();
    b.fit(20, clustermaps::train::Progress::Quiet).unwrap();
    let ck_path = dir_b.join(checkpoint::periodic_name(20));
    drop(b);

    // Round trip: what was saved is what loads (tensors bit-identical, metadata equal).
    let ck = Checkpoint::load(&ck_path, &Device::Cpu).unwrap();
    let again = Checkpoint::from_bytes(&ck.to_bytes().unwrap(), &ck_path, &Device::Cpu).unwrap();
    assert_eq!(ck.tensors.len(), again.tensors.len());
    for (k, v) in &ck.tensors {
        let w = &again.tensors[k];
        let (v, w) = (
            v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            w.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(
            v.iter().zip(&w).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{k}"
        );
    }
    assert_eq!(ck.meta.model, again.meta.model);
    assert_eq!(ck.meta.train, again.meta.train);
    assert_eq!(ck.meta.rng_noise, again.meta.rng_noise);
    assert_eq!(ck.meta.step, 20);
    assert!(ck.meta.model.sde.sigma_max.is_some());

    let train = gaussian_split(256, 16, 1);
    let val = gaussian_split(8, 16, 2);
    let mut c = Trainer::resume_from(
        &ck,
        &ck_path,
        None,
        train,
        Some(val),
        dummy_stats(),
        Device::Cpu,
    )
    .unwrap();
    c.attach_run_dir(&dir_b).unwrap();
    assert_eq!(c.step_count(), 20);
    assert_eq!(
        c.history().len(),
        20,
        "the log is read back up to the checkpoint"
    );
    c.fit(40, clustermaps::train::Progress::Quiet).unwrap();

    assert_eq!(loss_bits(&a), loss_bits(&c));
    assert_eq!(params_bits(&a), params_bits(&c));
    assert_eq!(a.val_history(), c.val_history());
    let log_a = std::fs::read_to_string(dir_a.join("train_log.csv")).unwrap();
    let log_c = std::fs::read_to_string(dir_b.join("train_log.csv")).unwrap();
    let strip = |s: &str| {
        s.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&log_a),
        strip(&log_c),
        "CSV logs differ (apart from timings)"
    );
    for f in [
        "last.safetensors",
        "ema.safetensors",
        "train_log.npy",
        "val_log.npy",
        "run.toml",
    ] {
        assert!(dir_b.join(f).exists(), "{f}");
    }
    // keep_last = 2 periodic checkpoints (steps 20 and 40).
    assert_eq!(checkpoint::list_periodic(&dir_b).unwrap().len(), 2);
}

fn write_tiny_checkpoint(dir: &Path) -> (std::path::PathBuf, RunConfig) {
    let mut cfg = tiny_run(16);
    cfg.train.checkpoint_every = 3;
    let mut t = trainer(cfg.clone(), 16);
    t.attach_run_dir(dir).unwrap();
    t.fit(3, clustermaps::train::Progress::Quiet).unwrap();
    (dir.join(checkpoint::periodic_name(3)), cfg)
}

/// docs/score-model.md §10 `checkpoint_roundtrip` (error half): truncated file, wrong-shape tensor, NaN weight, another
/// architecture, and an inference checkpoint each give their own clear error.
#[test]
fn bad_checkpoints_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, cfg) = write_tiny_checkpoint(tmp.path());
    let dev = Device::Cpu;
    let bytes = std::fs::read(&path).unwrap();

    let trunc = tmp.path().join("truncated.safetensors");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    let e = Checkpoint::load(&trunc, &dev).unwrap_err();
    assert!(matches!(e, Error::Checkpoint { .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");

    let e = Checkpoint::load(&tmp.path().join("absent.safetensors"), &dev).unwrap_err();
    assert!(matches!(e, Error::MissingFile(_)), "{e}");

    let ck = Checkpoint::load(&path, &dev).unwrap();
    let train = || gaussian_split(256, 16, 1);

    // Another architecture: nf 16 → 24; the error names the first mismatching tensor and both shapes.
    let mut other = cfg.clone();
    other.model.nf = 24;
    let e = Trainer::resume_from(
        &ck,
        &path,
        Some(other),
        train(),
        None,
        dummy_stats(),
        dev.clone(),
    )
    .err()
    .unwrap();
    match &e {
        Error::ConfigMismatch {
            tensor,
            got,
            expected,
            ..
        } => {
            assert!(tensor.starts_with("params."), "{e}");
            assert_ne!(got, expected);
        }
        _ => panic!("expected ConfigMismatch, got {e}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("has shape") && msg.contains("the model expects"),
        "{msg}"
    );

    // A wrong-shape tensor written into the file.
    let mut bad = ck.clone();
    let (name, t) = bad
        .tensors
        .iter()
        .find(|(k, _)| k.starts_with("ema."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    bad.tensors.insert(
        name.clone(),
        Tensor::zeros(t.elem_count() + 1, DType::F32, &dev).unwrap(),
    );
    let p = tmp.path().join("shape.safetensors");
    bad.save(&p).unwrap();
    let e = clustermaps::checkpoint::load_score_model(&p, &dev)
        .err()
        .unwrap();
    assert!(
        matches!(e, Error::ConfigMismatch { .. }) && e.to_string().contains(&name),
        "{e}"
    );

    // A NaN weight.
    let mut nan = ck.clone();
    let (name, t) = nan
        .tensors
        .iter()
        .find(|(k, _)| k.starts_with("params."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    nan.tensors
        .insert(name.clone(), (t.ones_like().unwrap() * f64::NAN).unwrap());
    let p = tmp.path().join("nan.safetensors");
    nan.save(&p).unwrap();
    let e = Checkpoint::load(&p, &dev).unwrap_err();
    assert!(
        matches!(e, Error::NonFinite { .. }) && e.to_string().contains(&name),
        "{e}"
    );

    // An inference checkpoint loads for sampling but cannot resume training.
    let inf = tmp.path().join("ema.safetensors");
    let (model, meta) = clustermaps::checkpoint::load_score_model(&inf, &dev).unwrap();
    assert_eq!(meta.step, 3);
    assert_eq!(model.config(), &ck.meta.model);
    let ick = Checkpoint::load(&inf, &dev).unwrap();
    let e = Trainer::resume_from(&ick, &inf, None, train(), None, dummy_stats(), dev.clone())
        .err()
        .unwrap();
    assert!(e.to_string().contains("inference checkpoint"), "{e}");

    // Another dataset normalisation.
    let mut stats = dummy_stats();
    stats.n_clusters = 7;
    let e = Trainer::resume_from(&ck, &path, None, train(), None, stats, dev)
        .err()
        .unwrap();
    assert!(e.to_string().contains("normalisation"), "{e}");
}

/// docs/score-model.md §10 `atomic_checkpoint`: a leftover temp file and a truncated newest checkpoint are skipped (and
/// reported); resume uses the last good one.
#[test]
fn resume_skips_temp_and_truncated_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = write_tiny_checkpoint(tmp.path());
    std::fs::write(tmp.path().join(".ckpt-00000009.tmp"), b"partial").unwrap();
    std::fs::write(tmp.path().join("ckpt-00000009.safetensors.tmp"), b"partial").unwrap();
    let good = std::fs::read(&path).unwrap();
    std::fs::write(tmp.path().join(checkpoint::periodic_name(6)), &good[..100]).unwrap();
    let (found, warnings) = checkpoint::latest_valid(tmp.path(), &Device::Cpu).unwrap();
    let (p, ck) = found.unwrap();
    assert_eq!(p, path);
    assert_eq!(ck.meta.step, 3);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("ckpt-00000006"), "{warnings:?}");
}

#[test]
fn non_finite_training_data_is_refused() {
    let mut d = gaussian_split(4, 8, 1);
    d.targets[17] = f32::NAN;
    let e = SplitData::from_standardized(
        d.inputs.clone(),
        [4, 2, 8, 8],
        d.targets.clone(),
        [4, 2, 8, 8],
    )
    .unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }), "{e}");
    let e = SplitData::from_standardized(d.inputs, [4, 2, 8, 8], vec![0.0; 10], [4, 2, 8, 8])
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let _ = HashMap::<String, Tensor>::new();
}

/// Presets adapt to the dataset's map size (attention at the same depth; one more level at 128²,
/// docs/score-model.md §6); a configuration file must already agree.
#[test]
fn presets_fit_the_data() {
    let mut tiny = RunConfig::preset("tiny").unwrap();
    tiny.fit_to_data(32, 2, 2, true).unwrap();
    assert_eq!(
        (tiny.model.image_size, tiny.model.attn_resolutions.clone()),
        (32, vec![16])
    );
    let mut cpu = RunConfig::preset("cpu").unwrap();
    cpu.fit_to_data(128, 2, 2, true).unwrap();
    assert_eq!(cpu.model.ch_mult, vec![1, 1, 2, 2]);
    assert_eq!(cpu.model.attn_resolutions, vec![16]);
    let mut file = RunConfig::preset("cpu").unwrap();
    let e = file.fit_to_data(32, 2, 2, false).unwrap_err();
    assert!(
        e.to_string().contains("64×64") && e.to_string().contains("32×32"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Warm start (`train --init`)
// ---------------------------------------------------------------------------------------------------------------

/// A conditional-Gaussian split with `cond` condition channels (the first two as in [`gaussian_split`]).
fn split_with_cond(n: usize, px: usize, cond: usize, seed: u64) -> SplitData {
    let base = gaussian_split(n, px, seed);
    let idx: Vec<usize> = (0..n).collect();
    let (x, y) = base.batch(&idx, &vec![0; n], &Device::Cpu).unwrap();
    let extra = normal_tensor(&mut stream(seed, 7), (n, cond - 2, px, px), &Device::Cpu).unwrap();
    let y = Tensor::cat(&[&y, &extra], 1).unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    SplitData::from_standardized(flat(&y), [n, cond, px, px], flat(&x), [n, 2, px, px]).unwrap()
}

/// The warm-started run starts at the checkpoint's weights (parameters = its EMA for an inference checkpoint),
/// its EMA update count, step 0 and a fresh optimiser; its checkpoints list both stages.
#[test]
fn warm_start_loads_weights_and_accumulates_stages() {
    let dir = tempfile::tempdir().unwrap();
    let (path, cfg) = write_tiny_checkpoint(dir.path());
    let ck = Checkpoint::load(&path, &Device::Cpu).unwrap().inference();
    let ema_path = dir.path().join("ema.safetensors");
    let mut t = trainer(cfg.clone(), 16);
    t.warm_start(&ck, &ema_path).unwrap();
    let (params, ema) = t.weights().unwrap();
    for (name, w) in ck.group("ema.") {
        let same = |x: &Tensor| {
            (x - &w)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!(same(&params[&name]), 0.0, "params.{name}");
        assert_eq!(same(&ema[&name]), 0.0, "ema.{name}");
    }
    assert_eq!(t.step_count(), 0);
    t.fit(2, clustermaps::train::Progress::Quiet).unwrap();
    let stages = t.stages().unwrap();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert_eq!((stages[0].steps, stages[1].steps), (3, 2));
    assert_eq!(stages[1].init.as_deref(), Some("ema.safetensors"));
    let meta = t.checkpoint().unwrap().meta;
    assert_eq!(
        meta.ema_updates,
        3 + 2,
        "EMA keeps counting from the checkpoint's updates"
    );
    assert_eq!(meta.info["total_steps"], "5");
    let bs = cfg.train.batch_size as u64;
    assert_eq!(meta.info["total_maps"], (5 * bs).to_string());
}

/// A model with an extra condition channel, warm-started from a two-channel checkpoint, computes exactly what the
/// two-channel model computes at step 0, whatever the new channel holds.
#[test]
fn warm_start_with_an_extra_condition_channel_reproduces_the_old_model() {
    let dir = tempfile::tempdir().unwrap();
    let (path, cfg) = write_tiny_checkpoint(dir.path());
    let ck = Checkpoint::load(&path, &Device::Cpu).unwrap();
    let old = trainer(cfg.clone(), 16);
    let mut old_t = old;
    old_t.warm_start(&ck, &path).unwrap();
    let mut cfg3 = cfg.clone();
    cfg3.model.cond_channels = 3;
    let data3 = split_with_cond(32, 16, 3, 5);
    let mut t3 = Trainer::from_data(cfg3, data3.clone(), None, dummy_stats(), Device::Cpu).unwrap();
    t3.warm_start(&ck, &path).unwrap();
    let idx: Vec<usize> = (0..4).collect();
    let (x0, y3) = data3.batch(&idx, &[0; 4], &Device::Cpu).unwrap();
    let y2 = y3.narrow(1, 0, 2).unwrap();
    let z = normal_tensor(&mut stream(9, 0), x0.shape(), &Device::Cpu).unwrap();
    let sig = [0.05, 0.5, 5.0, 50.0];
    let xt = (&x0
        + z.broadcast_mul(
            &Tensor::new(&sig.map(|s| s as f32), &Device::Cpu)
                .unwrap()
                .reshape((4, 1, 1, 1))
                .unwrap(),
        )
        .unwrap())
    .unwrap();
    for use_ema in [false, true] {
        let (m2, m3) = if use_ema {
            (old_t.ema_model().unwrap(), t3.ema_model().unwrap())
        } else {
            (old_t.model().clone(), t3.model().clone())
        };
        let d2 = m2.denoise_rows(&xt, &sig, &y2, None).unwrap();
        let d3 = m3.denoise_rows(&xt, &sig, &y3, None).unwrap();
        let diff = (d2 - d3)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff <= 1e-5, "ema={use_ema}: max difference {diff}");
    }
    // The new channel's weights start at zero and train from there.
    t3.fit(3, clustermaps::train::Progress::Quiet).unwrap();
    let (p, _) = t3.weights().unwrap();
    let w = &p[clustermaps::model::NcsnppUnet::INPUT_CONV_WEIGHT];
    let new_ch = w
        .narrow(1, 4, 1)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(new_ch > 0.0, "the new channel's weights stayed at zero");
}

/// What a warm start cannot do is refused with the reason: another preconditioning, fewer condition channels,
/// another target count, a network of another width.
#[test]
fn warm_start_refuses_incompatible_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (path, cfg) = write_tiny_checkpoint(dir.path());
    let ck = Checkpoint::load(&path, &Device::Cpu).unwrap();
    let err = |c: RunConfig| {
        let mut t = Trainer::from_data(
            c,
            gaussian_split(32, 16, 5),
            None,
            dummy_stats(),
            Device::Cpu,
        )
        .unwrap();
        t.warm_start(&ck, &path).unwrap_err().to_string()
    };
    let mut c = cfg.clone();
    c.model.precond = clustermaps::model::PrecondKind::Edm;
    c.train.loss = clustermaps::train::LossKind::Edm;
    let e = err(c);
    assert!(e.contains("precond"), "{e}");
    let mut c = cfg.clone();
    c.model.nf *= 2;
    let e = err(c);
    assert!(e.contains("shape") || e.contains("expected"), "{e}");
    let mut small = cfg.clone();
    small.model.cond_channels = 1;
    let data3 = split_with_cond(32, 16, 3, 5);
    let idx: Vec<usize> = (0..32).collect();
    let (x, y) = data3.batch(&idx, &[0; 32], &Device::Cpu).unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let y1 = y.narrow(1, 0, 1).unwrap();
    let data1 = SplitData::from_standardized(flat(&y1), [32, 1, 16, 16], flat(&x), [32, 2, 16, 16])
        .unwrap();
    let mut t = Trainer::from_data(small, data1, None, dummy_stats(), Device::Cpu).unwrap();
    let e = t.warm_start(&ck, &path).unwrap_err().to_string();
    assert!(e.contains("condition channels"), "{e}");
}
