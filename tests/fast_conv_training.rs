//! A short training run with the fast CPU convolution (`ConvImpl::Auto`, the default) follows the run with candle's
//! own conv2d (`ConvImpl::Candle`) step for step. Its own test binary: the convolution choice is process-wide and
//! would otherwise race with the bit-for-bit resume test in `tests/training.rs`.

mod common;

use candle_core::Device;
use clustermaps::model::kernels::conv::{set_conv_impl, ConvImpl};
use clustermaps::model::ModelConfig;
use clustermaps::train::{RunConfig, TrainConfig, Trainer};
use common::{dummy_stats, gaussian_split};

fn losses(imp: ConvImpl, steps: usize) -> Vec<f64> {
    set_conv_impl(imp);
    let mut model = ModelConfig::tiny();
    model.dropout = 0.1;
    let cfg = RunConfig {
        model,
        train: TrainConfig::tiny(),
    };
    let mut t = Trainer::from_data(
        cfg,
        gaussian_split(64, 16, 1),
        None,
        dummy_stats(),
        Device::Cpu,
    )
    .unwrap();
    let out = (0..steps).map(|_| t.step().unwrap().loss).collect();
    set_conv_impl(ConvImpl::Auto);
    out
}

/// 30 steps of the tiny preset (16², batch 8, dropout 0.1, lr 1e-3): every step's loss within 1e-3 relative of the
/// reference run's, and the loss falls in both.
#[test]
fn fast_conv_follows_the_candle_conv_loss_curve() {
    let steps = 30;
    let fast = losses(ConvImpl::Auto, steps);
    let reference = losses(ConvImpl::Candle, steps);
    let worst = fast
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs() / b.abs())
        .fold(0.0, f64::max);
    eprintln!("fast {fast:?}\nreference {reference:?}\nworst relative difference {worst:.2e}");
    assert!(
        worst < 1e-3,
        "loss curves differ by up to {worst:.2e} (relative)"
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&fast[steps - 5..]) < mean(&fast[..5]));
}
