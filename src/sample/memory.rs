//! The memory a sampling run will need, estimated from the model's configuration and the request before any
//! network call ([`crate::resources`] compares it with what the machine has).
//!
//! Inference keeps no autograd graph: per network call of `R` rows it holds the skip connections and the layer
//! being computed (≈ 0.25 of all feature maps, [`crate::model::ActivationCount::maps`]) and, inside an attention block, about
//! three N×N matrices (scores, exponentials, softmax) of the finest attention resolution. Fitted to the peak RSS
//! of `clustermaps sample` (tiny at 64² and 128², cpu at 32², 16 and 64 rows per call: within 25 %) and rounded
//! up. The outputs come on top: the samples in standardized and physical units, their clamped copy, the tensors
//! they are assembled from, and mean and spread.

use crate::model::{activation_count, param_count, ModelConfig};
use crate::resources::MemoryEstimate;

/// Program, thread stacks and allocator slack.
const BASE_BYTES: f64 = 48.0 * (1u64 << 20) as f64;
/// Bytes per feature-map element per row of a network call.
const MAP_BYTES: f64 = 0.3 * 4.0;
/// Bytes per element of the largest attention-score matrix per row of a network call.
const SCORE_BYTES: f64 = 3.5 * 4.0;
/// Copies of the `[N, S, C, H, W]` samples alive at the end of a run.
const SAMPLE_COPIES: f64 = 7.0;

/// What drawing `samples` posterior samples for each of `clusters` conditions of `model`, `max_batch` rows per
/// network call, will hold at its peak. `on_cpu`: activations live in host memory (on a GPU only the host side,
/// conditions and outputs, is estimated).
pub fn sampling_memory(
    model: &ModelConfig,
    clusters: usize,
    samples: usize,
    max_batch: usize,
    on_cpu: bool,
) -> MemoryEstimate {
    let px = (model.image_size * model.image_size) as f64;
    // f64 throughout: N·S of an absurd request must not overflow before it is refused.
    let rows = clusters as f64 * samples as f64;
    let per_call = rows.min(max_batch as f64);
    let mut e = MemoryEstimate::new();
    e.add("program and buffers", BASE_BYTES);
    e.add("weights", param_count(model) as f64 * 4.0 * 3.0);
    e.add(
        "conditions and truth",
        clusters as f64 * (model.cond_channels + model.target_channels) as f64 * px * 4.0 * 3.0,
    );
    e.add(
        format!("{clusters} × {samples} samples"),
        rows * model.target_channels as f64 * px * 4.0 * SAMPLE_COPIES,
    );
    if on_cpu {
        let a = activation_count(model);
        let label = format!("{} rows per call", per_call as u64);
        a.add_to(
            &mut e,
            per_call,
            &label,
            MAP_BYTES,
            a.attention_peak,
            SCORE_BYTES,
        );
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: f64 = (1u64 << 30) as f64;

    #[test]
    fn quick_reproduction_is_small_and_absurd_requests_are_huge() {
        let cpu = ModelConfig::cpu();
        // `clustermaps reproduce` (quick): 24 clusters × 4 samples at 64², 64 rows per call.
        let e = sampling_memory(&cpu, 24, 4, 64, true);
        assert!(e.total() < 2.0 * GIB, "{e}");
        // usize::MAX clusters × samples must give a finite, absurd number rather than overflow.
        let e = sampling_memory(&cpu, usize::MAX, usize::MAX, 64, true);
        assert!(e.total().is_finite() && e.total() > 1e6 * GIB, "{e}");
    }
}
