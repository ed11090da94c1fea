//! The memory a training run will need, estimated from its configuration and the dataset's split sizes before any
//! pixel is read ([`crate::resources`] compares it with what the machine has).
//!
//! The factors were measured: peak resident set size of `clustermaps train` for 3 steps on CPU, against
//! [`crate::model::ActivationCount`] of the model, fitted to `RSS ≈ base + weights + data + B·(1.5·maps + 6.8·attention)·4 bytes`
//! (tiny at 16², 32², 64² and 128², cpu at 32²: within 10 %) and rounded up, so the estimate errs on the high side
//! by 10–50 %. Autograd keeps every layer's output for the backward pass, and the backward pass holds gradients of
//! the same size while it runs; attention keeps its N×N scores, their exponentials and the softmax.

use crate::model::{activation_count, param_count};
use crate::resources::MemoryEstimate;

use super::config::RunConfig;

/// Program, thread stacks, allocator slack and the statistics accumulators of the pixel scan.
const BASE_BYTES: f64 = 48.0 * (1u64 << 20) as f64;
/// Copies of the weights: parameters, gradients, two Adam moments, EMA, the EMA model of validation and the
/// tensors of a checkpoint being written.
const WEIGHT_COPIES: f64 = 10.0;
/// Bytes per feature-map element of a training step (forward outputs kept for backward, and their gradients).
const MAP_BYTES: f64 = 2.0 * 4.0;
/// Bytes per attention-score element of a training step (scores, exponentials, softmax and their gradients).
const SCORE_BYTES: f64 = 7.5 * 4.0;

/// What training `cfg` on a dataset of `n_pix`² maps with `n_train` training and `n_val` validation clusters (the
/// whole val split: it is read before being cut to `val_clusters`) will hold at its peak. `on_cpu`: activations
/// live in host memory (on a GPU they are the device's business, and only the host side is estimated).
pub fn training_memory(
    cfg: &RunConfig,
    n_train: usize,
    n_val: usize,
    on_cpu: bool,
) -> MemoryEstimate {
    let m = &cfg.model;
    let px = (m.image_size * m.image_size) as f64;
    let channels = (m.cond_channels + m.target_channels) as f64;
    let val = if cfg.train.val_clusters > 0 { n_val } else { 0 };
    let mut e = MemoryEstimate::new();
    e.add("program and buffers", BASE_BYTES);
    e.add(
        "training data",
        (n_train + val) as f64 * channels * px * 4.0,
    );
    // Technique 1 holds the first maps as f64 and their Gram matrix.
    let sigma_maps = n_train.min(cfg.train.sigma_max_maps) as f64;
    if m.sde.sigma_max.is_none() {
        e.add(
            "σ_max rule",
            sigma_maps * m.target_channels as f64 * px * 8.0 + sigma_maps * sigma_maps * 8.0,
        );
    }
    e.add(
        "weights, gradients, optimiser, EMA",
        param_count(m) as f64 * 4.0 * WEIGHT_COPIES,
    );
    if on_cpu {
        let a = activation_count(m);
        let label = format!("batch {}", cfg.train.batch_size);
        let b = cfg.train.batch_size as f64;
        a.add_to(&mut e, b, &label, MAP_BYTES, a.attention, SCORE_BYTES);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: f64 = (1u64 << 30) as f64;

    /// The README's CPU run fits a 24 GiB machine comfortably; `tiny` on 256² maps (16 384 attention tokens) does
    /// not fit anything reasonable.
    #[test]
    fn estimates_separate_sane_runs_from_absurd_ones() {
        let mut cpu = RunConfig::preset("cpu").unwrap();
        cpu.fit_to_data(64, 2, 2, true).unwrap();
        let e = training_memory(&cpu, 8000, 1000, true);
        assert!(e.total() > 0.5 * GIB && e.total() < 6.0 * GIB, "{e}");
        let mut tiny = RunConfig::preset("tiny").unwrap();
        tiny.fit_to_data(256, 2, 2, true).unwrap();
        let e = training_memory(&tiny, 48, 8, true);
        assert!(e.total() > 100.0 * GIB, "{e}");
        assert!(
            e.to_string().contains("attention scores (16384 tokens"),
            "{e}"
        );
        // On a GPU the activations are not host memory.
        assert!(training_memory(&tiny, 48, 8, false).total() < GIB);
    }
}
