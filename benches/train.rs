//! Training throughput and peak memory of the score model on the CPU (BENCHMARKS.md, "Training"); the PyTorch
//! counterpart is `benches/reference/bench_train.py`, and `benches/run_train_bench.sh` runs both and joins them.
//!
//! ```text
//! cargo bench --bench train                                   # all configs, fast (im2col) convolutions
//! cargo bench --bench train -- --conv candle --configs cpu:16 # candle's conv2d instead
//! cargo bench --bench train -- --list-params                  # `preset name shape kind` of every tensor
//! cargo bench --bench train -- --help
//! ```
//!
//! What it measures, per configuration (preset × batch size; default `tiny:32,cpu:16,cpu:32,paper:16,paper:32`, the
//! presets at their own size: tiny 16², cpu and paper 64²), each in a fresh child process (this binary re-invoked
//! with `--child`) so that peak memory is that configuration's own:
//!
//! - **forward** (`fwd_*`): the EMA network built from plain tensors (no autograd graph, as the samplers use it),
//!   `NcsnppUnet::forward(x, y, ln σ, None)` (eval: no dropout) on a fixed batch with σ log-uniform in
//!   [σ_min, σ_max]: batch × timed passes / wall time.
//! - **training** (`train_*`): full `Trainer::step()`s: batch gather, time/noise/dropout draws, VE DSM loss
//!   (sum reduction), backward, global-norm clipping 1.0, Adam, EMA. Data: synthetic standardized N(0, 1) maps, one
//!   batch worth (`SplitData::from_standardized`), no validation. The run configuration is the preset's with the
//!   PyTorch script's settings: σ_max = 100 (so Technique 1 is not run), lr 2e-4, warm-up 5000 steps, EMA 0.999,
//!   and no D4 augmentation (the PyTorch step has none; it is a permutation copy of one batch, < 1 % of a step).
//! - **memory** (`/proc/self/status`): `rss_start_mib` is `VmRSS` at the start of the child; `rss_base_mib` the
//!   process baseline, after a library warm-up (a throwaway `tiny` trainer: one step and one forward pass at batch 2,
//!   dropped; it starts the rayon pool) and before the benchmarked data and network exist, as in `bench_train.py`;
//!   `rss_built_mib` the RSS once the trainer (weights, Adam moments, EMA) and the inputs exist; `peak_rss_fwd_mib`
//!   the high-water mark (`VmHWM`) after the forward phase, `peak_rss_mib` at the end, `peak_rss_delta_mib` =
//!   peak − base (the number to compare across runtimes).
//!
//! Each phase runs `--warmup` untimed passes, then timed passes until both `--min-steps` and `--min-time` are met
//! (or `--max-steps`). Defaults come from `CLUSTERMAPS_BENCH_{WARMUP,MIN_STEPS,MIN_TIME,MAX_STEPS,THREADS}` when set,
//! else 1, 3, 10 s, 200 and 2 threads (`RAYON_NUM_THREADS` of the children: rayon and candle's gemm both read it).
//!
//! Output: a JSON array (stdout and `--out`), field names as `bench_train.py` where they mean the same, and a
//! Markdown table (stderr and `--md`). Progress goes to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use clap::Parser;
use serde::{Deserialize, Serialize};

use clustermaps::data::transform::NormStats;
use clustermaps::model::kernels::conv::{set_conv_impl, ConvImpl};
use clustermaps::model::{forward_flops, param_count, ModelConfig, NcsnppUnet};
use clustermaps::rng::{normal_tensor, stream, uniforms};
use clustermaps::sde::standard_normals;
use clustermaps::train::{Augment, RunConfig, SplitData, Trainer};

const DEFAULT_CONFIGS: &str = "tiny:32,cpu:16,cpu:32,paper:16,paper:32";
const PRESETS: [&str; 3] = ["paper", "cpu", "tiny"];
/// The PyTorch reference's σ_max and training settings (`unet_torch.py`: `ModelConfig`, `TrainConfig`).
const SIGMA_MAX: f64 = 100.0;
const LR: f64 = 2e-4;
const WARMUP: u64 = 5000;
const EMA_DECAY: f64 = 0.999;

#[derive(Parser, Debug)]
#[command(about = "Training/forward throughput and peak memory of the score network (CPU)")]
struct Args {
    /// Comma-separated preset:batch list.
    #[arg(long, default_value = DEFAULT_CONFIGS)]
    configs: String,
    /// 3×3 convolutions: `auto` (im2col + gemm, the crate's default) or `candle` (candle's conv2d).
    #[arg(long, default_value = "auto")]
    conv: String,
    /// Threads of the children (RAYON_NUM_THREADS) [env CLUSTERMAPS_BENCH_THREADS, else 2].
    #[arg(long)]
    threads: Option<usize>,
    /// Untimed passes per phase [env CLUSTERMAPS_BENCH_WARMUP, else 1].
    #[arg(long)]
    warmup: Option<usize>,
    /// At least this many timed passes [env CLUSTERMAPS_BENCH_MIN_STEPS, else 3].
    #[arg(long)]
    min_steps: Option<usize>,
    /// And at least this many seconds [env CLUSTERMAPS_BENCH_MIN_TIME, else 10].
    #[arg(long)]
    min_time: Option<f64>,
    /// At most this many timed passes [env CLUSTERMAPS_BENCH_MAX_STEPS, else 200].
    #[arg(long)]
    max_steps: Option<usize>,
    /// Skip the forward-only measurement.
    #[arg(long)]
    no_fwd: bool,
    /// Record the per-op-kind profile (`clustermaps::prof`) of the timed passes into the JSON (`fwd_profile`,
    /// `train_profile`) and print it.
    #[arg(long)]
    profile: bool,
    /// Also write the JSON array to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the Markdown table to this file.
    #[arg(long)]
    md: Option<PathBuf>,
    /// Print `preset name d0,d1,... kind` for every tensor of every preset (kind `param` or `const`) and exit; the
    /// input of `benches/reference/unet_torch.py --compare`.
    #[arg(long)]
    list_params: bool,
    /// Internal: run one configuration (JSON spec) and print its JSON record.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One configuration, as passed to a child.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Spec {
    preset: String,
    batch: usize,
    conv: String,
    threads: usize,
    warmup: usize,
    min_steps: usize,
    min_time: f64,
    max_steps: usize,
    fwd: bool,
    #[serde(default)]
    profile: bool,
}

/// One op kind of a profile, per timed pass (see `clustermaps::prof`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProfRow {
    kind: String,
    s_per_pass: f64,
    calls_per_pass: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    gflops: Option<f64>,
}

/// Turns profiling on after `warmup` calls of a timed loop; returns the per-pass table.
fn profile_rows(passes: usize) -> Vec<ProfRow> {
    clustermaps::prof::enable(false);
    let n = passes.max(1) as f64;
    clustermaps::prof::snapshot()
        .into_iter()
        .map(|(k, e)| ProfRow {
            kind: k.to_string(),
            s_per_pass: round(e.seconds / n, 4),
            calls_per_pass: round(e.calls as f64 / n, 2),
            gflops: (e.flops > 0.0).then(|| round(e.flops / e.seconds / 1e9, 2)),
        })
        .collect()
}

fn print_profile(title: &str, rows: &[ProfRow], pass_s: f64) {
    eprintln!("[bench] {title}: {pass_s:.3} s per pass");
    for r in rows {
        eprintln!(
            "  {:40} {:8.4} s {:5.1} %  {:7.1} calls  {}",
            r.kind,
            r.s_per_pass,
            100.0 * r.s_per_pass / pass_s,
            r.calls_per_pass,
            r.gflops
                .map_or(String::new(), |g| format!("{g:.1} GFLOP/s"))
        );
    }
}

/// One configuration's results (field names as `bench_train.py` where the meaning is the same).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    runtime: String,
    conv: String,
    preset: String,
    image: usize,
    batch: usize,
    params: usize,
    threads: usize,
    candle: String,
    rss_start_mib: f64,
    rss_base_mib: f64,
    rss_built_mib: f64,
    fwd_gflop_per_img: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    fwd_imgs_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    fwd_s_per_pass: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    fwd_passes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    fwd_gflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    peak_rss_fwd_mib: Option<f64>,
    train_imgs_per_s: f64,
    train_s_per_step: f64,
    train_s_per_step_min: f64,
    steps_timed: usize,
    warmup_steps: usize,
    last_loss_per_dim: f64,
    peak_rss_mib: f64,
    peak_rss_delta_mib: f64,
    cpu: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    wall_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    fwd_profile: Option<Vec<ProfRow>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    train_profile: Option<Vec<ProfRow>>,
}

type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// A `/proc/self/status` field in MiB (`VmRSS`, `VmHWM`; NaN where unavailable).
fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// candle-core's version from the lock file this bench was built with.
fn candle_version() -> String {
    let lock = include_str!("../Cargo.lock");
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"candle-core\"" {
            if let Some(v) = lines
                .next()
                .and_then(|v| v.trim().strip_prefix("version = "))
            {
                return v.trim_matches('"').to_string();
            }
        }
    }
    "unknown".into()
}

/// Runs `f` `warmup` times, then until both minimums are met (at most `max` times); the per-call seconds.
fn timed_loop(
    spec: &Spec,
    warmup: usize,
    mut f: impl FnMut() -> BoxResult<()>,
) -> BoxResult<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < spec.max_steps.max(1)
        && (times.len() < spec.min_steps.max(1) || start.elapsed().as_secs_f64() < spec.min_time)
    {
        let t0 = Instant::now();
        f()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    Ok(times)
}

fn dummy_stats() -> NormStats {
    serde_json::from_str(
        r#"{"split":"train","n_clusters":0,"n_pixels":0,"percentile_method":"none","inputs":[],"targets":[]}"#,
    )
    .expect("static NormStats JSON")
}

/// The run configuration of a benchmark step: the preset, with the PyTorch reference's settings.
fn run_config(preset: &str, batch: usize) -> BoxResult<RunConfig> {
    let mut cfg = RunConfig::preset(preset)?;
    cfg.model.sde.sigma_max = Some(SIGMA_MAX);
    let t = &mut cfg.train;
    t.batch_size = batch;
    t.lr = LR;
    t.warmup = WARMUP;
    t.ema_decay = EMA_DECAY;
    t.augment = Augment::None;
    t.val_clusters = 0;
    cfg.validate()?;
    Ok(cfg)
}

/// A `SplitData` of `n` standardized N(0, 1) maps for `m`.
fn gaussian_split(m: &ModelConfig, n: usize, seed: u64) -> BoxResult<SplitData> {
    let s = m.image_size;
    let mut rng = stream(seed, 1);
    let inputs = standard_normals(&mut rng, n * m.cond_channels * s * s);
    let targets = standard_normals(&mut rng, n * m.target_channels * s * s);
    Ok(SplitData::from_standardized(
        inputs,
        [n, m.cond_channels, s, s],
        targets,
        [n, m.target_channels, s, s],
    )?)
}

/// Library warm-up before the baseline: a `tiny` trainer, one step and one EMA forward pass at batch 2, dropped.
fn warm_up_library() -> BoxResult<()> {
    let cfg = run_config("tiny", 2)?;
    let m = cfg.model.clone();
    let mut t = Trainer::from_data(
        cfg,
        gaussian_split(&m, 2, 99)?,
        None,
        dummy_stats(),
        Device::Cpu,
    )?;
    t.step()?;
    let s = m.image_size;
    let x = Tensor::zeros((2, m.target_channels, s, s), DType::F32, &Device::Cpu)?;
    let y = Tensor::zeros((2, m.cond_channels, s, s), DType::F32, &Device::Cpu)?;
    let l = Tensor::zeros(2, DType::F32, &Device::Cpu)?;
    t.ema_model()?.net().forward(&x, &y, &l, None)?;
    Ok(())
}

/// One configuration in this (fresh) process.
fn run_child(spec: &Spec) -> BoxResult<Record> {
    let rss_start = proc_status_mib("VmRSS");
    set_conv_impl(match spec.conv.as_str() {
        "auto" => ConvImpl::Auto,
        "candle" => ConvImpl::Candle,
        other => return Err(format!("--conv {other}: expected auto or candle").into()),
    });
    warm_up_library()?;
    let rss_base = proc_status_mib("VmRSS");
    let dev = Device::Cpu;
    let cfg = run_config(&spec.preset, spec.batch)?;
    let m = cfg.model.clone();
    let (b, s) = (spec.batch, m.image_size);

    // Training data: one batch of standardized N(0, 1) maps.
    let data = gaussian_split(&m, b, 0)?;
    let mut trainer = Trainer::from_data(cfg, data, None, dummy_stats(), dev.clone())?;

    // Forward inputs: x0 + σz, y, ln σ with σ log-uniform in [σ_min, σ_max].
    let mut rng = stream(0, 2);
    let (lo, hi) = (m.sde.sigma_min.ln(), SIGMA_MAX.ln());
    let sigmas: Vec<f32> = uniforms(&mut rng, b, lo, hi)
        .into_iter()
        .map(|l| l.exp() as f32)
        .collect();
    let sig = Tensor::from_vec(sigmas, b, &dev)?;
    let x0 = normal_tensor(&mut rng, (b, m.target_channels, s, s), &dev)?;
    let z = normal_tensor(&mut rng, (b, m.target_channels, s, s), &dev)?;
    let x = (x0 + z.broadcast_mul(&sig.reshape((b, 1, 1, 1))?)?)?;
    let y = normal_tensor(&mut rng, (b, m.cond_channels, s, s), &dev)?;
    let label = sig.log()?;
    let rss_built = proc_status_mib("VmRSS");

    let fwd_gflop = forward_flops(&m) / 1e9;
    let mut rec = Record {
        runtime: "candle".into(),
        conv: spec.conv.clone(),
        preset: spec.preset.clone(),
        image: s,
        batch: b,
        params: param_count(&m),
        threads: candle_core::utils::get_num_threads(),
        candle: candle_version(),
        rss_start_mib: round(rss_start, 1),
        rss_base_mib: round(rss_base, 1),
        rss_built_mib: round(rss_built, 1),
        fwd_gflop_per_img: round(fwd_gflop, 4),
        fwd_imgs_per_s: None,
        fwd_s_per_pass: None,
        fwd_passes: None,
        fwd_gflops: None,
        peak_rss_fwd_mib: None,
        train_imgs_per_s: 0.0,
        train_s_per_step: 0.0,
        train_s_per_step_min: 0.0,
        steps_timed: 0,
        warmup_steps: spec.warmup,
        last_loss_per_dim: f64::NAN,
        peak_rss_mib: 0.0,
        peak_rss_delta_mib: 0.0,
        cpu: cpu_model(),
        wall_s: None,
        fwd_profile: None,
        train_profile: None,
    };
    if rayon::current_num_threads() != rec.threads {
        eprintln!(
            "[bench] warning: rayon has {} threads, candle's gemm {}",
            rayon::current_num_threads(),
            rec.threads
        );
    }

    if spec.fwd {
        // The EMA network: plain tensors, so no autograd graph is recorded (the samplers' path).
        let ema = trainer.ema_model()?;
        let net = ema.net();
        let mut calls = 0;
        let times = timed_loop(spec, spec.warmup, || {
            if spec.profile && calls == spec.warmup {
                clustermaps::prof::reset();
                clustermaps::prof::enable(true);
            }
            calls += 1;
            let out = net.forward(&x, &y, &label, None)?;
            drop(out);
            Ok(())
        })?;
        let total: f64 = times.iter().sum();
        let ips = b as f64 * times.len() as f64 / total;
        rec.fwd_imgs_per_s = Some(round(ips, 3));
        rec.fwd_s_per_pass = Some(round(total / times.len() as f64, 4));
        rec.fwd_passes = Some(times.len());
        rec.fwd_gflops = Some(round(ips * fwd_gflop, 2));
        rec.peak_rss_fwd_mib = Some(round(proc_status_mib("VmHWM"), 1));
        if spec.profile {
            let rows = profile_rows(times.len());
            print_profile(
                &format!("{}:{} forward profile", spec.preset, b),
                &rows,
                total / times.len() as f64,
            );
            rec.fwd_profile = Some(rows);
        }
    }

    // `last_loss_per_dim` as bench_train.py: the step's loss (batch mean of ½Σ) over the dimensions of one sample,
    // ≈ 0.5 at initialization. (The trainer's own `loss_per_dim` is the mean squared residual, without the ½.)
    let dims = (m.target_channels * s * s) as f64;
    let mut last_loss = f64::NAN;
    let mut calls = 0;
    let mut step = || -> BoxResult<()> {
        if spec.profile && calls == spec.warmup {
            clustermaps::prof::reset();
            clustermaps::prof::enable(true);
        }
        calls += 1;
        let st = trainer.step()?;
        last_loss = st.loss / dims;
        Ok(())
    };
    let times = timed_loop(spec, spec.warmup, &mut step)?;
    let total: f64 = times.iter().sum();
    let peak = proc_status_mib("VmHWM");
    rec.train_imgs_per_s = round(b as f64 * times.len() as f64 / total, 3);
    rec.train_s_per_step = round(total / times.len() as f64, 4);
    rec.train_s_per_step_min = round(times.iter().cloned().fold(f64::INFINITY, f64::min), 4);
    rec.steps_timed = times.len();
    rec.last_loss_per_dim = round(last_loss, 4);
    rec.peak_rss_mib = round(peak, 1);
    rec.peak_rss_delta_mib = round(peak - rss_base, 1);
    if spec.profile {
        let rows = profile_rows(times.len());
        print_profile(
            &format!("{}:{} training-step profile", spec.preset, b),
            &rows,
            total / times.len() as f64,
        );
        rec.train_profile = Some(rows);
    }
    Ok(rec)
}

/// `preset name d0,d1,... kind` lines for every tensor of every preset, sorted by name within a preset.
fn list_params() -> BoxResult<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for preset in PRESETS {
        let cfg = ModelConfig::preset(preset)?;
        let vm = VarMap::new();
        let net = NcsnppUnet::new_seeded(&cfg, &vm, DType::F32, &Device::Cpu)?;
        let mut rows: Vec<(String, Vec<usize>, &str)> = vm
            .data()
            .lock()
            .expect("VarMap mutex")
            .iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec(), "param"))
            .collect();
        let n: usize = rows.iter().map(|r| r.1.iter().product::<usize>()).sum();
        if n != param_count(&cfg) {
            return Err(format!(
                "{preset}: VarMap holds {n} parameters, param_count says {}",
                param_count(&cfg)
            )
            .into());
        }
        rows.extend(
            net.constants()
                .into_iter()
                .map(|(k, t)| (k, t.dims().to_vec(), "const")),
        );
        rows.sort();
        for (name, dims, kind) in rows {
            let shape: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            writeln!(out, "{preset} {name} {} {kind}", shape.join(","))?;
        }
    }
    Ok(())
}

fn markdown(records: &[Record]) -> String {
    let mut s = String::from(
        "| preset | image | batch | conv | threads | train img/s | s/step | steps | fwd img/s | fwd GFLOP/s | \
         base RSS MiB | peak RSS MiB | peak − base MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let opt = |v: Option<f64>, d: usize| v.map_or("–".to_string(), |v| format!("{v:.d$}"));
    for r in records {
        s += &format!(
            "| {} | {}² | {} | {} | {} | {:.2} | {:.3} | {} | {} | {} | {:.0} | {:.0} | {:.0} |\n",
            r.preset,
            r.image,
            r.batch,
            r.conv,
            r.threads,
            r.train_imgs_per_s,
            r.train_s_per_step,
            r.steps_timed,
            opt(r.fwd_imgs_per_s, 2),
            opt(r.fwd_gflops, 1),
            r.rss_base_mib,
            r.peak_rss_mib,
            r.peak_rss_delta_mib
        );
    }
    s
}

fn main() -> BoxResult<()> {
    let args = Args::parse();
    if let Some(child) = &args.child {
        let spec: Spec = serde_json::from_str(child)?;
        let rec = run_child(&spec)?;
        println!("{}", serde_json::to_string(&rec)?);
        return Ok(());
    }
    if args.list_params {
        return list_params();
    }
    if !matches!(args.conv.as_str(), "auto" | "candle") {
        return Err(format!("--conv {}: expected auto or candle", args.conv).into());
    }

    let threads = args
        .threads
        .unwrap_or_else(|| env_or("CLUSTERMAPS_BENCH_THREADS", 2usize));
    let warmup = args
        .warmup
        .unwrap_or_else(|| env_or("CLUSTERMAPS_BENCH_WARMUP", 1usize));
    let min_steps = args
        .min_steps
        .unwrap_or_else(|| env_or("CLUSTERMAPS_BENCH_MIN_STEPS", 3usize));
    let min_time = args
        .min_time
        .unwrap_or_else(|| env_or("CLUSTERMAPS_BENCH_MIN_TIME", 10.0f64));
    let max_steps = args
        .max_steps
        .unwrap_or_else(|| env_or("CLUSTERMAPS_BENCH_MAX_STEPS", 200usize));

    let mut specs = Vec::new();
    for item in args.configs.split(',').filter(|s| !s.trim().is_empty()) {
        let (preset, batch) = item.trim().split_once(':').unwrap_or((item.trim(), "32"));
        if !PRESETS.contains(&preset) {
            return Err(format!("config {item:?}: unknown preset (paper, cpu, tiny)").into());
        }
        let batch: usize = batch
            .parse()
            .map_err(|_| format!("config {item:?}: batch must be a positive integer"))?;
        specs.push(Spec {
            preset: preset.into(),
            batch,
            conv: args.conv.clone(),
            threads,
            warmup,
            min_steps,
            min_time,
            max_steps,
            fwd: !args.no_fwd,
            profile: args.profile,
        });
    }

    let exe = std::env::current_exe()?;
    let t_all = Instant::now();
    let mut records = Vec::new();
    for spec in &specs {
        let t0 = Instant::now();
        let out = Command::new(&exe)
            .arg("--child")
            .arg(serde_json::to_string(spec)?)
            .env("RAYON_NUM_THREADS", threads.to_string())
            .stderr(std::process::Stdio::inherit())
            .output()?;
        if !out.status.success() {
            std::io::stderr().write_all(&out.stderr)?;
            return Err(format!(
                "configuration {}:{} (conv {}) failed ({})",
                spec.preset, spec.batch, spec.conv, out.status
            )
            .into());
        }
        let stdout = String::from_utf8(out.stdout)?;
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or("child printed no JSON record")?;
        let mut rec: Record = serde_json::from_str(line)?;
        rec.wall_s = Some(round(t0.elapsed().as_secs_f64(), 1));
        eprintln!(
            "[bench] {:5} {}² b{:<3} conv {:6} params {:>9}  train {:8.2} img/s ({} steps, {:.2} s/step)  \
             fwd {:>8} img/s  peak {:.0} MiB (base {:.0})  ({:.0} s)",
            rec.preset,
            rec.image,
            rec.batch,
            rec.conv,
            rec.params,
            rec.train_imgs_per_s,
            rec.steps_timed,
            rec.train_s_per_step,
            rec.fwd_imgs_per_s
                .map_or("–".into(), |v| format!("{v:.2}")),
            rec.peak_rss_mib,
            rec.rss_base_mib,
            rec.wall_s.unwrap_or(0.0)
        );
        records.push(rec);
    }
    eprintln!("[bench] total {:.0} s", t_all.elapsed().as_secs_f64());

    let md = markdown(&records);
    eprint!("\n{md}");
    if let Some(p) = &args.md {
        std::fs::write(p, &md)?;
    }
    let json = serde_json::to_string_pretty(&records)?;
    println!("{json}");
    if let Some(p) = &args.out {
        std::fs::write(p, json + "\n")?;
    }
    Ok(())
}
