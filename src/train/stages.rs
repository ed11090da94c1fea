//! Provenance of a set of weights: every checkpoint carries `info.stages`, a JSON list with one entry per training
//! stage the weights have been through (steps, batch, maps seen, device, wall time, validation loss). A
//! warm-started run ([`super::warm`]) copies the earlier stages from its initial checkpoint and appends its own,
//! updated at each save, so a shipped model says how it was trained however many campaigns it took.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointMeta;
use crate::{Error, Result};

/// `info.*` key holding the JSON list of [`Stage`]s of a checkpoint's weights.
pub const STAGES_KEY: &str = "stages";
/// `info.*` key of a warm-started run: the stages before it (JSON), kept across `--resume`.
pub(crate) const PRIOR_STAGES_KEY: &str = "prior_stages";
/// `info.*` key naming the checkpoint a run was warm-started from.
pub const INIT_KEY: &str = "init_from";

/// One training stage in the history of a set of weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Optimiser steps of this stage.
    pub steps: u64,
    /// Maps per step (0 when the stage's configuration is unknown).
    pub batch_size: usize,
    /// Training maps drawn in this stage (`steps × batch_size`).
    pub maps: u64,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Training seconds of the stage (all of its resumed sessions).
    pub wall_s: f64,
    /// Validation DSM loss per dimension at the stage's last evaluation, if any.
    pub val_loss_per_dim: Option<f64>,
    /// Name of the dataset trained on.
    pub dataset: String,
    /// The checkpoint the stage started from (file name), if warm-started.
    pub init: Option<String>,
}

/// The stages of a checkpoint's weights: its `info.stages`, or, for a checkpoint written before stages were
/// recorded, one stage read off its metadata.
pub fn stages_of(meta: &CheckpointMeta, path: &Path) -> Result<Vec<Stage>> {
    if let Some(text) = meta.info.get(STAGES_KEY) {
        return serde_json::from_str(text).map_err(|e| {
            Error::checkpoint(path, format!("info.{STAGES_KEY} is not a stage list: {e}"))
        });
    }
    let batch = meta.train.as_ref().map_or(0, |t| t.batch_size);
    let info = |k: &str| meta.info.get(k).cloned().unwrap_or_default();
    Ok(vec![Stage {
        steps: meta.step,
        batch_size: batch,
        maps: meta.step * batch as u64,
        device: info("device"),
        wall_s: info("train_wall_s").parse().unwrap_or(0.0),
        val_loss_per_dim: info("val_loss_per_dim").parse().ok(),
        dataset: info("dataset"),
        init: None,
    }])
}

/// Total optimiser steps and maps over a list of stages.
pub fn totals(stages: &[Stage]) -> (u64, u64) {
    stages
        .iter()
        .fold((0, 0), |(s, m), st| (s + st.steps, m + st.maps))
}
