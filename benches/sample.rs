//! Sampler throughput and NFE at 64² (BENCHMARKS.md, "Sampling").
//!
//! `cargo bench --bench sample [-- CHECKPOINT]` samples one 64² condition with every sampler family through the
//! same driver `clustermaps sample` uses, counts the network evaluations, and prints a Markdown table of samples/s,
//! milliseconds per NFE and the time per sample extrapolated to each sampler's default step count.
//!
//! The model is the checkpoint given as argument or in `CLUSTERMAPS_BENCH_CHECKPOINT`; without one, an untrained
//! network of the `cpu` preset at 64² (σ_max = 270) — speed does not depend on the weights. Environment:
//! `CLUSTERMAPS_BENCH_SAMPLES` (samples of the one condition, default 4), `CLUSTERMAPS_BENCH_FULL=1` (each
//! sampler's default steps instead of the short runs: PC-1000 takes hours on a CPU), `CLUSTERMAPS_BENCH_DEVICE`
//! (`cpu`, `cuda`, `auto`; default `auto`), `CLUSTERMAPS_BENCH_MAX_BATCH` (rows per network call).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use clustermaps::model::{param_count, ModelConfig, NcsnppUnet};
use clustermaps::precond::{Denoiser, ScoreModel};
use clustermaps::sample::{CountingModel, SampleOpts, Sampler, SamplerKind};

fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Short runs: enough steps to time the per-NFE cost, few enough to finish in minutes on a CPU.
fn short_steps(kind: SamplerKind) -> usize {
    match kind {
        SamplerKind::Pc => 10,
        SamplerKind::Em => 20,
        SamplerKind::OdeRk4 => 5,
        SamplerKind::OdeHeun | SamplerKind::Heun | SamplerKind::HeunChurn => 5,
    }
}

fn main() {
    // `cargo bench` passes `--bench` to harness-less benches; the first other argument is the checkpoint.
    let ckpt: Option<PathBuf> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .or_else(|| std::env::var("CLUSTERMAPS_BENCH_CHECKPOINT").ok())
        .map(PathBuf::from);
    let samples: usize = env_parse("CLUSTERMAPS_BENCH_SAMPLES").unwrap_or(4);
    let full = std::env::var("CLUSTERMAPS_BENCH_FULL").is_ok_and(|v| v == "1");
    let device_arg =
        std::env::var("CLUSTERMAPS_BENCH_DEVICE").unwrap_or_else(|_| "auto".to_string());
    let dev = clustermaps::device::open_device(&device_arg).expect("open the device");
    let max_batch: usize =
        env_parse("CLUSTERMAPS_BENCH_MAX_BATCH").unwrap_or(if dev.is_cpu() { 64 } else { 512 });

    let (model, source) = match &ckpt {
        Some(p) => {
            let (m, meta) =
                clustermaps::checkpoint::load_score_model(p, &dev).expect("load the checkpoint");
            (m, format!("{} (step {})", p.display(), meta.step))
        }
        None => {
            let mut cfg = ModelConfig::cpu();
            cfg.sde.sigma_max = Some(270.0);
            let net = NcsnppUnet::new_seeded(&cfg, &VarMap::new(), DType::F32, &dev)
                .expect("build the cpu-preset network");
            (
                ScoreModel::new(net).expect("score model"),
                "untrained `cpu` preset, σ_max = 270".to_string(),
            )
        }
    };
    let cfg = model.config().clone();
    let n = cfg.image_size;
    let cond_len = cfg.cond_channels * n * n;
    let cond: Vec<f32> = (0..cond_len).map(|i| (i as f32 * 0.37).sin()).collect();
    let cond = Tensor::from_vec(cond, (1, cfg.cond_channels, n, n), &dev).expect("condition");

    // Warm-up: one network call at the batch size of the runs (allocations, gemm packing).
    let x = Tensor::zeros((samples, cfg.target_channels, n, n), DType::F32, &dev).expect("zeros");
    let c = cond.repeat((samples, 1, 1, 1)).expect("repeat");
    model.denoise(&x, 1.0, &c).expect("warm-up call");

    let threads = rayon::current_num_threads();
    println!(
        "model: {source}; {} | {} parameters; device {}; {threads} threads; 1 condition × {samples} samples, \
         max_batch {max_batch}",
        cfg.architecture_key(),
        param_count(&cfg),
        clustermaps::device::device_name(&dev)
    );
    println!();
    println!(
        "| sampler | NFE | samples | seconds | samples/s | ms / NFE / sample | default | NFE | est. s / sample |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for kind in SamplerKind::ALL {
        let steps = if full {
            kind.default_steps()
        } else {
            short_steps(kind)
        };
        let sampler = kind.build(Some(steps)).expect("sampler");
        let counting = CountingModel::new(&model);
        let opts = SampleOpts {
            n_samples: samples,
            seed: 0,
            max_batch,
            cond_offset: 0,
            progress: false,
        };
        let t0 = Instant::now();
        sampler
            .sample(&counting, &cond, &opts)
            .expect("sampling failed");
        let secs = t0.elapsed().as_secs_f64();
        let chunks = samples.div_ceil(max_batch);
        let nfe = counting.calls() / chunks;
        assert_eq!(nfe, sampler.nfe(), "{}: counted NFE", sampler.name());
        let per_sample = secs / samples as f64;
        let default = kind.build(None).expect("default sampler");
        println!(
            "| {} | {nfe} | {samples} | {secs:.2} | {:.3} | {:.1} | {} | {} | {:.1} |",
            sampler.name(),
            samples as f64 / secs,
            1e3 * per_sample / nfe as f64,
            default.name(),
            default.nfe(),
            per_sample / nfe as f64 * default.nfe() as f64
        );
    }
}
