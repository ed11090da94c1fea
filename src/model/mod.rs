//! The conditional NCSN++-lite score network (design spec `score-model.md` §4) and its configuration.

pub mod config;

pub use config::{Embedding, ModelConfig, PrecondKind, Resample, SdeConfig, SdeKind};
