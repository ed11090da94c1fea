//! Warm start (`clustermaps train --init CKPT`): a new run whose weights and EMA begin where another run's ended,
//! with a fresh optimiser (moments zero, learning-rate warm-up again) and the new run's own seed streams.
//!
//! Why not `--resume`: a shipped checkpoint keeps only the EMA weights (no moments, no RNG state), and a campaign
//! that trains the shipped model a little more every day wants new batches and noise each time, not a replay.
//!
//! **More condition channels.** The condition enters the U-Net only through the first convolution, whose input
//! channels are `[target…, condition…]`. A model with extra condition channels (a lensing map, say) starts from a
//! checkpoint with fewer by copying every tensor and giving the new input channels zero weights, so at step 0 it
//! computes exactly what the old model did and learns what the new channels add.
//!
//! **Provenance** ([`super::stages`]): the stages of the initial checkpoint are kept in `info.prior_stages`, and
//! every checkpoint of the run lists them followed by the run itself.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use super::stages::{stages_of, Stage, INIT_KEY, PRIOR_STAGES_KEY};
use super::Trainer;
use crate::checkpoint::{self, check_constants, var_shapes, Checkpoint, CheckpointKind};
use crate::ema::EmaState;
use crate::model::NcsnppUnet;
use crate::{Error, Result};

/// `src` fitted to `shape`: equal shapes pass; the first convolution's weight `[out, in_old, k, k]` grows to
/// `[out, in_new, k, k]` with zeros for the new (condition) input channels.
fn fit_tensor(
    name: &str,
    prefix: &str,
    src: &Tensor,
    shape: &[usize],
    path: &Path,
) -> Result<Tensor> {
    let got = src.dims();
    if got == shape {
        return Ok(src.clone());
    }
    let grows_input = name == NcsnppUnet::INPUT_CONV_WEIGHT
        && got.len() == 4
        && shape.len() == 4
        && got[0] == shape[0]
        && got[2..] == shape[2..]
        && got[1] < shape[1];
    if !grows_input {
        return Err(Error::ConfigMismatch {
            path: path.to_path_buf(),
            tensor: format!("{prefix}{name}"),
            got: got.to_vec(),
            expected: shape.to_vec(),
        });
    }
    let extra = Tensor::zeros(
        (shape[0], shape[1] - got[1], shape[2], shape[3]),
        src.dtype(),
        src.device(),
    )?;
    Ok(Tensor::cat(&[src, &extra], 1)?)
}

/// A checkpoint group (`params.` or `ema.`) fitted to the model's variables, tensor by tensor.
fn fit_group(
    expected: &[(String, Vec<usize>)],
    group: &HashMap<String, Tensor>,
    prefix: &str,
    path: &Path,
) -> Result<HashMap<String, Tensor>> {
    // Names first (missing and unexpected tensors are listed), shapes after (with the input-channel exception).
    let names_only: Vec<(String, Vec<usize>)> = expected
        .iter()
        .map(|(n, _)| {
            (
                n.clone(),
                group.get(n).map_or_else(Vec::new, |t| t.dims().to_vec()),
            )
        })
        .collect();
    checkpoint::check_tensors(&names_only, group, prefix, path)?;
    expected
        .iter()
        .map(|(n, shape)| Ok((n.clone(), fit_tensor(n, prefix, &group[n], shape, path)?)))
        .collect()
}

impl Trainer {
    /// Starts this (fresh, step-0) run from the weights of `ck`: parameters from its `params.` (a training
    /// checkpoint) or its EMA weights (an inference checkpoint), EMA shadows from its `ema.` with its update count
    /// (so the EMA keeps its full decay instead of warming up again). The optimiser, the step counter and the seed
    /// streams stay fresh. The architecture must match, except for extra condition channels (module docs).
    pub fn warm_start(&mut self, ck: &Checkpoint, path: &Path) -> Result<()> {
        if self.step != 0 {
            return Err(Error::Config(format!(
                "a warm start needs a new run, this one is at step {}",
                self.step
            )));
        }
        let (old, new) = (&ck.meta.model, &self.cfg.model);
        if old.precond != new.precond || old.sigma_data != new.sigma_data {
            return Err(Error::checkpoint(
                path,
                format!(
                    "was trained with precond = {:?}, sigma_data = {}; the configuration asks for {:?}, {} (the \
                     weights would mean something else)",
                    old.precond, old.sigma_data, new.precond, new.sigma_data
                ),
            ));
        }
        if new.cond_channels < old.cond_channels || new.target_channels != old.target_channels {
            return Err(Error::checkpoint(
                path,
                format!(
                    "has {} condition and {} target channels; a warm start can add condition channels only (the \
                     configuration has {} and {})",
                    old.cond_channels, old.target_channels, new.cond_channels, new.target_channels
                ),
            ));
        }
        let expected = var_shapes(&self.varmap)?;
        let params_src = match ck.meta.kind {
            CheckpointKind::Train => ck.group("params."),
            CheckpointKind::Inference => ck.group("ema."),
        };
        let prefix = match ck.meta.kind {
            CheckpointKind::Train => "params.",
            CheckpointKind::Inference => "ema.",
        };
        let params = fit_group(&expected, &params_src, prefix, path)?;
        let ema = fit_group(&expected, &ck.group("ema."), "ema.", path)?;
        check_constants(self.model.net(), ck, path)?;
        for (name, var) in self.adam.vars() {
            var.set(&params[name].to_device(&self.device)?.to_dtype(DType::F32)?)?;
        }
        let shadow = ema
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_device(&self.device)?.to_dtype(DType::F32)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        self.ema.load_state(&EmaState {
            num_updates: ck.meta.ema_updates,
            shadow,
        })?;
        let prior = stages_of(&ck.meta, path)?;
        let file = path.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        self.info.insert(INIT_KEY.into(), file);
        self.info.insert(
            PRIOR_STAGES_KEY.into(),
            serde_json::to_string(&prior)
                .map_err(|e| Error::Config(format!("stages to JSON: {e}")))?,
        );
        Ok(())
    }

    /// The stages of this run's weights so far: those before a warm start, then this run.
    pub fn stages(&self) -> Result<Vec<Stage>> {
        let mut stages: Vec<Stage> = match self.info.get(PRIOR_STAGES_KEY) {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| Error::Config(format!("info.{PRIOR_STAGES_KEY}: {e}")))?,
            None => Vec::new(),
        };
        let batch = self.cfg.train.batch_size;
        stages.push(Stage {
            steps: self.step,
            batch_size: batch,
            maps: self.step * batch as u64,
            device: crate::device::device_name(&self.device),
            wall_s: (self.wall_s() * 10.0).round() / 10.0,
            val_loss_per_dim: self.val_history.last().map(|v| v.mean),
            dataset: self.info.get("dataset").cloned().unwrap_or_default(),
            init: self.info.get(INIT_KEY).cloned(),
        });
        Ok(stages)
    }
}
