//! Training must not keep old steps alive. Gradients of variables leave candle's backward pass attached to the
//! autograd graph (∂W of a conv or matmul is an op on the layer's input), so an optimiser that stored them in its
//! moments without detaching chained every step's activations to the next: on a GPU, where all gradients come
//! from candle's own ops, memory grew by the whole step (≈ 10 GB per step of 64 maps) until the device ran out.
//!
//! Runs in its own test binary because it switches the whole process to candle's conv2d (the GPU code path).

use candle_core::Device;
use clustermaps::model::kernels::conv::{set_conv_impl, ConvImpl};
use clustermaps::model::ModelConfig;
use clustermaps::rng::stream;
use clustermaps::train::{RunConfig, SplitData, TrainConfig, Trainer};

/// Resident set size of this process in MiB (Linux).
fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

fn split(n: usize, px: usize, seed: u64) -> SplitData {
    let mut rng = stream(seed, 0);
    let d = 2 * px * px;
    let y = clustermaps::sde::standard_normals(&mut rng, n * d);
    let x = clustermaps::sde::standard_normals(&mut rng, n * d);
    SplitData::from_standardized(y, [n, 2, px, px], x, [n, 2, px, px]).unwrap()
}

#[test]
fn memory_does_not_grow_with_steps_on_the_candle_op_path() {
    if !std::path::Path::new("/proc/self/status").exists() {
        return;
    }
    set_conv_impl(ConvImpl::Candle);
    let px = 16;
    let mut model = ModelConfig::tiny();
    model.image_size = px;
    model.attn_resolutions = vec![px / 2];
    let cfg = RunConfig {
        model,
        train: TrainConfig {
            batch_size: 32,
            val_clusters: 4,
            ..TrainConfig::tiny()
        },
    };
    let stats = serde_json::from_str(
        r#"{"split":"train","n_clusters":0,"n_pixels":0,"percentile_method":"none","inputs":[],"targets":[]}"#,
    )
    .unwrap();
    let mut t = Trainer::from_data(cfg, split(64, px, 1), None, stats, Device::Cpu).unwrap();
    for _ in 0..5 {
        t.step().unwrap();
    }
    let before = rss_mib();
    let steps = 30;
    for _ in 0..steps {
        t.step().unwrap();
    }
    let growth = rss_mib() - before;
    eprintln!("growth {growth:.1} MiB over {steps} steps");
    assert!(
        growth < 40.0,
        "resident memory grew by {growth:.0} MiB over {steps} training steps: old steps are kept alive"
    );
}
