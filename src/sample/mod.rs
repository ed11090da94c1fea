//! Posterior samplers for the conditional score model (docs/samplers.md).
//!
//! Four families, all generic over the [`ScoreFn`](crate::precond::ScoreFn) + [`Denoiser`](crate::precond::Denoiser)
//! interfaces of `precond.rs`, so the same VE-trained network can be sampled by every one of them (the fair
//! quality-vs-NFE comparison of docs/samplers.md):
//!
//! | sampler | source | NFE / sample |
//! |---|---|---|
//! | [`PredictorCorrector`] | \[S21\] `sampling.py` `get_pc_sampler` (`ReverseDiffusionPredictor` + `LangevinCorrector`) | N(1 + corrector steps) |
//! | [`EulerMaruyama`] | \[S21\] `EulerMaruyamaPredictor`, no corrector | N |
//! | [`OdeSampler`] | \[S21\] Eq. 13 probability-flow ODE, fixed-step RK4 or Heun in σ | 4M (+1) / 2M − 1 |
//! | [`EdmHeun`] | \[K22\] Alg. 2, `generate.py` `edm_sampler` | 2N − 1 |
//!
//! **One driver** ([`sample_with`], reached through [`Sampler::sample`]) does everything that is not the update rule:
//! it validates the condition against the model's [`ModelShape`](crate::precond::ModelShape), repeats it to
//! `[B·S, C_in, H, W]` rows, processes chunks of at most `max_batch` rows, and gives every row its own noise stream
//! (see [`row_rng`]). A sampler only implements [`Sampler::run_chunk`], drawing all its noise through [`Chunk`];
//! therefore a sample depends on `(seed, cond_offset + b, s)` and on nothing else — not on the chunking, not on which
//! other conditions share the call, not on the device (docs/score-model.md §1: host ChaCha, never candle's RNG).
//!
//! Samples come back in the standardized log space the network was trained in; [`to_physical`] maps them to physical
//! units with the training split's [`NormStats`](crate::data::transform::NormStats).
//!
//! [`run`] puts it together for a dataset: [`SampleSession`] loads a checkpoint and a dataset that fit each other
//! and samples consecutive clusters of a split; [`output`] writes and reads the `.npy` sets of `clustermaps sample`
//! as one unit; [`memory`] estimates a request's memory before it starts.

pub mod driver;
pub mod edm_heun;
pub mod em;
pub mod grid;
pub mod kind;
pub mod memory;
pub mod ode;
pub mod output;
pub mod pc;
pub mod run;
#[cfg(test)]
mod tests;

pub use driver::{check_cond, row_rng, sample_with, Chunk, CountingModel, SampleOpts, Sampler};
pub use edm_heun::{Churn, EdmHeun};
pub use em::EulerMaruyama;
pub use grid::SigmaGrid;
pub use kind::{AnySampler, SamplerChoice, SamplerKind};
pub use ode::{OdeMethod, OdeSampler};
pub use output::{FileDigest, SampleOutputs, SampleRecord, SampleSet, SampleTarget};
pub use pc::PredictorCorrector;
pub use run::{
    first_with_dataset, sample_clusters, to_physical, training_dataset, PosteriorModel,
    SampleRequest, SampleResult, SampleSession, SampleSpec,
};
