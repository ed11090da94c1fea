//! Training of the conditional score model (docs/score-model.md §7): [`Trainer`] runs seeded steps of
//! DSM or EDM loss with AdamW, warm-up, global-norm clipping and EMA, validates at fixed noise levels and seeds,
//! logs every step, and writes atomic checkpoints from which a killed run resumes bit for bit.
//!
//! **Randomness** (docs/score-model.md §1, §7): the batch order of epoch `e` is a permutation drawn from `(seed, e)`
//! alone; the augmentation draws from the `data` stream; times, noise and dropout masks from the `noise` stream. Both
//! streams are saved in checkpoints ([`crate::rng::RngState`]), so a run interrupted at a checkpoint and resumed
//! reproduces the uninterrupted loss curve exactly (same device and thread count).
//!
//! **No host reads inside a step** (issue 15, item 4): loss, per-dimension loss and gradient norm stay on the
//! device as f64 scalars, clipping multiplies by a device-side scale ([`crate::optim::clip_scale_tensor`]), and
//! [`Trainer::fit`] reads the buffered values back in one transfer every `log_every` steps and before each
//! validation and checkpoint ([`Trainer::flush`]). A NaN/Inf loss or norm is found there: training stops with
//! [`Error::NonFinite`] before any checkpoint holds weights updated by that step, so the last checkpoint is intact
//! (the rows after it that a killed or stopped run wrote are cut back when the run is resumed). On the CPU the
//! values are the same bit for bit as reading them at every step; [`Trainer::step`] still does that (and refuses a
//! non-finite step before updating the weights).
//!
//! **Run directory** (`--out`): `run.toml` (the configuration), `train_log.csv` (every step: loss, per-dimension
//! loss, gradient norm, learning rate, seconds), `val_log.csv` (validation losses per noise level), `.npy` copies of
//! both (rewritten at each checkpoint), `ckpt-<step>.safetensors` (the last `keep_last` periodic checkpoints),
//! `last.safetensors` (newest full checkpoint) and `ema.safetensors` (newest inference checkpoint: EMA weights).

pub mod config;
pub mod data;
mod log;
pub mod memory;
mod run_dir;
pub mod stages;
pub mod warm;

pub use config::{Augment, LossKind, Precision, RunConfig, TrainConfig};
pub use data::{d4_apply, load_splits, round_up_2sig, sigma_max_rule, BatchOrder, SplitData};
pub use log::{StepStats, ValStats};
pub use stages::{stages_of, Stage};

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{
    self, build_net, check_constants, net_from_tensors, var_shapes, Checkpoint, CheckpointKind,
    CheckpointMeta,
};
use crate::data::dataset::{Dataset, Manifest, OpenOptions};
use crate::data::transform::NormStats;
use crate::edm::EdmPrecond;
use crate::ema::Ema;
use crate::io::{link_or_copy_atomic, write_atomic, OutputLock};
use crate::loss::{dsm_loss, edm_loss, LossOutput, Reduce};
use crate::model::SdeKind;
use crate::optim::{clip_scale_tensor, Adam, AdamState};
use crate::precond::ScoreModel;
use crate::progress::progress_bar;
use crate::rng::{normal_tensor, stream, uniforms, RngState};
use crate::{Error, Result};

/// Stream numbers of the run's generators (all seeded by `train.seed`).
const DATA_STREAM: u64 = 1;
const NOISE_STREAM: u64 = 2;
/// Validation noise uses streams `VAL_STREAM + j` for noise level `j`, restarted at every evaluation.
const VAL_STREAM: u64 = 1 << 20;

/// How [`Trainer::fit`] reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// An indicatif bar with loss, steps/s and ETA (terminals).
    Bar,
    /// One printed line every `log_every` steps (notebooks, log files).
    Lines,
    Quiet,
}

/// A step whose numbers are still on the device.
struct PendingStep {
    step: u64,
    lr: f64,
    /// f64 `[loss, loss per dimension, gradient norm]`.
    values: Tensor,
    /// Host seconds of the step (the wait for the device is charged to the step that reads it back).
    host_s: f64,
}

/// A training run in memory.
pub struct Trainer {
    cfg: RunConfig,
    device: Device,
    varmap: VarMap,
    model: ScoreModel,
    adam: Adam,
    ema: Ema,
    train: SplitData,
    val: Option<SplitData>,
    order: BatchOrder,
    norm_stats: NormStats,
    rng_data: ChaCha8Rng,
    rng_noise: ChaCha8Rng,
    step: u64,
    sigma_max_source: String,
    history: Vec<StepStats>,
    /// Steps done but not yet read back ([`Trainer::flush`]).
    pending: Vec<PendingStep>,
    val_history: Vec<ValStats>,
    /// Training seconds of earlier sessions of this run (from the checkpoint) plus this one's so far.
    wall_before: f64,
    session_start: Instant,
    run_dir: Option<PathBuf>,
    /// Held while a run directory is attached: one writer per run directory.
    lock: Option<OutputLock>,
    info: BTreeMap<String, String>,
}

impl Trainer {
    /// A new run on in-memory data. `cfg.model` must fit the data ([`RunConfig::fit_to_data`]); σ_max is set by
    /// Technique 1 when the config leaves it open.
    pub fn from_data(
        mut cfg: RunConfig,
        train: SplitData,
        val: Option<SplitData>,
        norm_stats: NormStats,
        device: Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let sigma_max_source = if cfg.model.sde.kind == SdeKind::Ve
            && cfg.model.sde.sigma_max.is_none()
        {
            let (exact, rounded) = sigma_max_rule(&train, cfg.train.sigma_max_maps)?;
            cfg.model.sde.sigma_max = Some(rounded);
            format!(
                "technique 1: largest distance between {} training targets = {exact:.3}, rounded up to {rounded}",
                train.n.min(cfg.train.sigma_max_maps)
            )
        } else {
            "configuration".to_string()
        };
        if device.is_cuda() {
            // Process-wide in candle: the newest trainer on a GPU decides.
            candle_core::cuda::set_gemm_reduced_precision_f32(
                cfg.train.precision == Precision::Tf32,
            );
        }
        let (varmap, net) = build_net(&cfg.model, &device)?;
        let model = ScoreModel::new(net)?;
        let adam = Adam::from_varmap(&varmap, cfg.train.adam())?;
        let ema = Ema::from_vars(adam.vars(), cfg.train.ema_decay)?;
        let order = BatchOrder::new(cfg.train.seed, train.n, cfg.train.batch_size)?;
        let seed = cfg.train.seed;
        Ok(Trainer {
            device,
            varmap,
            model,
            adam,
            ema,
            order,
            rng_data: stream(seed, DATA_STREAM),
            rng_noise: stream(seed, NOISE_STREAM),
            step: 0,
            sigma_max_source,
            history: Vec::new(),
            pending: Vec::new(),
            val_history: Vec::new(),
            wall_before: 0.0,
            session_start: Instant::now(),
            run_dir: None,
            lock: None,
            info: BTreeMap::new(),
            cfg,
            train,
            val,
            norm_stats,
        })
    }

    /// A new run on a dataset directory's `train` (and `val`) split.
    pub fn new(cfg: RunConfig, ds: &Dataset, device: Device) -> Result<Self> {
        let (train, val) = load_splits(ds, cfg.train.val_clusters)?;
        let mut t = Self::from_data(cfg, train, val, ds.stats.clone(), device)?;
        t.info.insert("dataset".into(), ds.manifest.name.clone());
        Ok(t)
    }

    /// Continues a run from a training checkpoint. `cfg` (optional) may change training settings such as
    /// `n_iters`; its model must have the checkpoint's architecture (a mismatch names the tensor and both shapes).
    pub fn resume_from(
        ck: &Checkpoint,
        path: &Path,
        cfg: Option<RunConfig>,
        train: SplitData,
        val: Option<SplitData>,
        norm_stats: NormStats,
        device: Device,
    ) -> Result<Self> {
        if ck.meta.kind != CheckpointKind::Train {
            return Err(Error::checkpoint(
                path,
                "an inference checkpoint (EMA only) cannot resume training",
            ));
        }
        if ck.meta.norm_stats != norm_stats {
            return Err(Error::checkpoint(
                path,
                "was trained on a dataset with different normalisation statistics (stats.json); resume on the same \
                 dataset",
            ));
        }
        let stored_train = ck.meta.train.clone().expect("checked by parse_meta");
        let mut run = RunConfig {
            model: ck.meta.model.clone(),
            train: stored_train,
        };
        if let Some(c) = cfg {
            // Architecture from the caller's config (so a mismatch is reported tensor by tensor); σ_max from the run.
            let mut model = c.model;
            if model.sde.sigma_max.is_none() {
                model.sde.sigma_max = run.model.sde.sigma_max;
            }
            run = RunConfig {
                model,
                train: c.train,
            };
        }
        let mut t = Self::from_data(run, train, val, norm_stats, device)?;
        t.sigma_max_source = ck.meta.sigma_max_source.clone();
        t.load_state(ck, path)?;
        t.info = ck.meta.info.clone();
        t.wall_before = ck
            .meta
            .info
            .get("train_wall_s")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        Ok(t)
    }

    /// Overwrites weights, moments, EMA, RNG streams and step from a checkpoint, after checking every tensor.
    fn load_state(&mut self, ck: &Checkpoint, path: &Path) -> Result<()> {
        let expected = var_shapes(&self.varmap)?;
        let params = ck.group("params.");
        let ema = ck.group("ema.");
        let (m, v) = (ck.group("adam.m."), ck.group("adam.v."));
        checkpoint::check_tensors(&expected, &params, "params.", path)?;
        checkpoint::check_tensors(&expected, &ema, "ema.", path)?;
        checkpoint::check_tensors(&expected, &m, "adam.m.", path)?;
        checkpoint::check_tensors(&expected, &v, "adam.v.", path)?;
        check_constants(self.model.net(), ck, path)?;
        for (name, var) in self.adam.vars() {
            var.set(
                &params[name]
                    .to_device(&self.device)?
                    .to_dtype(var.dtype())?,
            )?;
        }
        self.adam.load_state(&AdamState {
            t: ck.meta.adam_t,
            m,
            v,
        })?;
        let mut ema_state = self.ema.state();
        ema_state.num_updates = ck.meta.ema_updates;
        ema_state.shadow = ema;
        self.ema.load_state(&ema_state)?;
        let (d, n) = (
            ck.meta.rng_data.expect("train ckpt"),
            ck.meta.rng_noise.expect("train ckpt"),
        );
        self.rng_data = d.restore();
        self.rng_noise = n.restore();
        self.step = ck.meta.step;
        Ok(())
    }

    /// Attaches a run directory: checkpoints and logs go there. Existing logs are cut back to the current step
    /// (rows written after the checkpoint a resumed run starts from are dropped; they will be recomputed). The
    /// directory is locked for as long as this trainer lives: a second trainer or process refuses it.
    pub fn attach_run_dir(&mut self, dir: &Path) -> Result<()> {
        let locked = self
            .lock
            .as_ref()
            .is_some_and(|l| l.path().parent() == Some(dir));
        if !locked {
            self.lock = Some(OutputLock::directory(dir, "train")?);
        }
        write_atomic(&dir.join("run.toml"), self.cfg.to_toml_string()?.as_bytes())?;
        self.history = log::read_train_log(dir, self.step)?;
        self.val_history = log::read_val_log(dir, self.step)?;
        log::rewrite_logs(
            dir,
            &self.history,
            &self.val_history,
            &self.cfg.train.val_times,
        )?;
        self.run_dir = Some(dir.to_path_buf());
        Ok(())
    }

    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }
    pub fn step_count(&self) -> u64 {
        self.step
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn history(&self) -> &[StepStats] {
        &self.history
    }
    pub fn val_history(&self) -> &[ValStats] {
        &self.val_history
    }
    pub fn sigma_max_source(&self) -> &str {
        &self.sigma_max_source
    }
    pub fn model(&self) -> &ScoreModel {
        &self.model
    }
    /// Provenance entries written into checkpoints (`info.*`).
    pub fn info_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.info
    }
    /// Training seconds of this run so far, across resumed sessions.
    pub fn wall_s(&self) -> f64 {
        self.wall_before + self.session_start.elapsed().as_secs_f64()
    }

    /// The parameters and the EMA weights by name (copies).
    pub fn weights(&self) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, Tensor>)> {
        let p = self
            .adam
            .vars()
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
            .collect::<Result<_>>()?;
        let e = self.ema.tensors().into_iter().collect();
        Ok((p, e))
    }

    /// One optimiser step (docs/score-model.md §7), read back at once: errors with [`Error::NonFinite`] on a NaN/Inf loss or
    /// gradient norm before touching the weights. [`Trainer::fit`] uses the deferred form instead.
    pub fn step(&mut self) -> Result<StepStats> {
        self.step_inner(true)?;
        self.flush()?;
        Ok(self.history.last().expect("flushed one step").clone())
    }

    /// One optimiser step whose numbers stay on the device until [`Trainer::flush`] (called here every `log_every`
    /// steps). A non-finite step updates the weights and is reported by the flush.
    pub fn step_deferred(&mut self) -> Result<()> {
        self.step_inner(false)?;
        if self.step.is_multiple_of(self.cfg.train.log_every) {
            self.flush()?;
        }
        Ok(())
    }

    fn step_inner(&mut self, check_now: bool) -> Result<()> {
        let t0 = Instant::now();
        let tc = &self.cfg.train;
        let b = tc.batch_size;
        let p = crate::prof::scope("step: batch");
        let rows = self.order.rows(self.step).to_vec();
        let elems = data::draw_d4(&mut self.rng_data, b, tc.augment == Augment::D4);
        let (x0, y) = self.train.batch(&rows, &elems, &self.device)?;
        drop(p);
        let p = crate::prof::scope("step: forward+loss");
        let out = self.loss(&x0, &y)?;
        // Detached: a buffered value must not keep the step's autograd graph (its activations) alive.
        let loss = out.loss.detach().to_dtype(DType::F64)?;
        let per_dim = out.per_dim.detach().to_dtype(DType::F64)?.mean_all()?;
        drop(p);
        let p = crate::prof::scope("step: backward");
        let grads = out.loss.backward()?;
        drop(p);
        let p = crate::prof::scope("step: grad norm");
        let grad_norm = self.adam.grad_norm_tensor(&grads)?;
        let scale = clip_scale_tensor(&grad_norm, self.cfg.train.grad_clip)?;
        let values = Tensor::stack(&[&loss, &per_dim, &grad_norm], 0)?;
        drop(p);
        if check_now {
            let v = values.to_vec1::<f64>()?;
            if let Some(e) = non_finite(self.step + 1, &v) {
                return Err(e);
            }
        }
        let p = crate::prof::scope("step: adam");
        let info = self.adam.step_scaled(&grads, scale.as_ref())?;
        drop(p);
        let p = crate::prof::scope("step: ema");
        self.ema.update_vars(self.adam.vars())?;
        drop(p);
        self.step += 1;
        self.pending.push(PendingStep {
            step: self.step,
            lr: info.lr,
            values,
            host_s: t0.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// Reads the buffered steps back (one device-to-host transfer), appends them to the history and to
    /// `train_log.csv`, and errors with [`Error::NonFinite`] at the first step with a NaN/Inf loss or gradient norm
    /// (the steps before it are kept and logged). Called by [`Trainer::fit`] every `log_every` steps and before
    /// validations and checkpoints; a no-op when nothing is pending.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let t0 = Instant::now();
        let pending = std::mem::take(&mut self.pending);
        let all: Vec<&Tensor> = pending.iter().map(|p| &p.values).collect();
        let values = Tensor::stack(&all, 0)?.to_vec2::<f64>()?;
        let wait = t0.elapsed().as_secs_f64();
        let n = pending.len();
        let mut rows = Vec::with_capacity(n);
        let mut bad = None;
        for (i, (p, v)) in pending.iter().zip(&values).enumerate() {
            if let Some(e) = non_finite(p.step, v) {
                bad = Some(e);
                break;
            }
            rows.push(StepStats {
                step: p.step,
                loss: v[0],
                loss_per_dim: v[1],
                grad_norm: v[2],
                lr: p.lr,
                step_s: p.host_s + if i + 1 == n { wait } else { 0.0 },
            });
        }
        if let Some(dir) = &self.run_dir {
            log::append_train_rows(dir, &rows)?;
        }
        self.history.extend(rows);
        bad.map_or(Ok(()), Err)
    }

    /// The loss of the configured kind on one batch, drawing times/σ's, noise and dropout from the noise stream.
    fn loss(&mut self, x0: &Tensor, y: &Tensor) -> Result<LossOutput> {
        let tc = &self.cfg.train;
        let b = x0.dim(0)?;
        match tc.loss {
            LossKind::Dsm => {
                let ts = uniforms(&mut self.rng_noise, b, tc.t_eps, 1.0);
                let z = normal_tensor(&mut self.rng_noise, x0.shape(), &self.device)?;
                dsm_loss(
                    &self.model,
                    x0,
                    y,
                    &ts,
                    &z,
                    tc.reduce,
                    Some(&mut self.rng_noise),
                )
            }
            LossKind::Edm => {
                let pre = EdmPrecond::new(self.cfg.model.sigma_data)?;
                let sigmas = tc
                    .training_sigmas(&self.cfg.model)
                    .sample_n(&mut self.rng_noise, b);
                let n = normal_tensor(&mut self.rng_noise, x0.shape(), &self.device)?;
                edm_loss(
                    &self.model,
                    &pre,
                    x0,
                    y,
                    &sigmas,
                    &n,
                    tc.reduce,
                    Some(&mut self.rng_noise),
                )
            }
        }
    }

    /// The EMA network as an inference [`ScoreModel`].
    pub fn ema_model(&self) -> Result<ScoreModel> {
        ScoreModel::new(net_from_tensors(
            &self.cfg.model,
            self.ema.tensors(),
            &self.device,
        )?)
    }

    /// Validation DSM loss per dimension of the EMA weights on the first `val_clusters` val maps at each of
    /// `val_times`, with noise from fixed seeds (identical at every evaluation) and no augmentation or dropout.
    pub fn validate(&mut self) -> Result<Option<ValStats>> {
        // The validation reads values back anyway; the flush also stops a run gone non-finite before it validates.
        self.flush()?;
        let Some(val) = &self.val else {
            return Ok(None);
        };
        let model = self.ema_model()?;
        let tc = &self.cfg.train;
        let idx: Vec<usize> = (0..val.n).collect();
        let mut per_time = Vec::with_capacity(tc.val_times.len());
        for (j, &t) in tc.val_times.iter().enumerate() {
            let mut rng = stream(tc.seed, VAL_STREAM + j as u64);
            let (mut sum, mut count) = (0.0, 0usize);
            for chunk in idx.chunks(tc.batch_size) {
                let (x0, y) = val.batch(chunk, &vec![0; chunk.len()], &self.device)?;
                let z = normal_tensor(&mut rng, x0.shape(), &self.device)?;
                let out = dsm_loss(
                    &model,
                    &x0,
                    &y,
                    &vec![t; chunk.len()],
                    &z,
                    Reduce::Mean,
                    None,
                )?;
                let v = out.per_dim.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                sum += v.iter().sum::<f64>();
                count += v.len();
            }
            per_time.push(sum / count as f64);
        }
        let mean = per_time.iter().sum::<f64>() / per_time.len() as f64;
        let stats = ValStats {
            step: self.step,
            per_time,
            mean,
        };
        if let Some(dir) = &self.run_dir {
            log::append_val_row(dir, &stats)?;
        }
        self.val_history.push(stats.clone());
        Ok(Some(stats))
    }

    /// The full training checkpoint of the current state.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let mut tensors = std::collections::HashMap::new();
        let st = self.adam.state();
        for (name, var) in self.adam.vars() {
            tensors.insert(format!("params.{name}"), var.as_tensor().copy()?);
            tensors.insert(format!("adam.m.{name}"), st.m[name].clone());
            tensors.insert(format!("adam.v.{name}"), st.v[name].clone());
        }
        for (name, t) in self.ema.tensors() {
            tensors.insert(format!("ema.{name}"), t);
        }
        for (name, t) in self.model.net().constants() {
            tensors.insert(format!("const.{name}"), t);
        }
        let mut info = self.info.clone();
        info.insert("train_wall_s".into(), format!("{:.1}", self.wall_s()));
        let all_stages = self.stages()?;
        let (steps, maps) = stages::totals(&all_stages);
        info.insert(
            stages::STAGES_KEY.into(),
            serde_json::to_string(&all_stages)
                .map_err(|e| Error::Config(format!("stages to JSON: {e}")))?,
        );
        info.insert("total_steps".into(), steps.to_string());
        info.insert("total_maps".into(), maps.to_string());
        info.insert("device".into(), crate::device::device_name(&self.device));
        if let Some(last) = self.history.last() {
            info.insert(
                "train_loss_per_dim".into(),
                format!("{:.6}", last.loss_per_dim),
            );
        }
        if let Some(v) = self.val_history.last() {
            info.insert("val_loss_per_dim".into(), format!("{:.6}", v.mean));
        }
        let seed = self.cfg.train.seed;
        Ok(Checkpoint {
            meta: CheckpointMeta {
                kind: CheckpointKind::Train,
                model: self.cfg.model.clone(),
                train: Some(self.cfg.train.clone()),
                norm_stats: self.norm_stats.clone(),
                step: self.step,
                adam_t: self.adam.t(),
                ema_updates: self.ema.num_updates(),
                rng_data: Some(RngState::capture(seed, &self.rng_data)),
                rng_noise: Some(RngState::capture(seed, &self.rng_noise)),
                sigma_max_source: self.sigma_max_source.clone(),
                info,
            },
            tensors,
        })
    }

    /// Reads pending steps back ([`Trainer::flush`]: a non-finite one is an error, and nothing is written), then
    /// writes `ckpt-<step>.safetensors`, `last.safetensors`, `ema.safetensors` and the `.npy` logs into the run
    /// directory and prunes old periodic checkpoints. Returns the periodic checkpoint's path.
    pub fn save_checkpoint(&mut self) -> Result<PathBuf> {
        self.flush()?;
        let dir = self.run_dir.as_ref().ok_or_else(|| {
            Error::Config("no run directory attached (Trainer::attach_run_dir)".into())
        })?;
        let ck = self.checkpoint()?;
        let path = dir.join(checkpoint::periodic_name(self.step));
        ck.save(&path)?;
        link_or_copy_atomic(&path, &dir.join("last.safetensors"))?;
        ck.inference().save(&dir.join("ema.safetensors"))?;
        log::write_npy_logs(dir, &self.history, &self.val_history)?;
        let all = checkpoint::list_periodic(dir)?;
        let keep = self.cfg.train.keep_last;
        for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
            let _ = fs::remove_file(old);
        }
        Ok(path)
    }

    /// Trains until `total_steps` steps are done (from wherever the run is), validating every `val_every` steps and
    /// checkpointing every `checkpoint_every` steps and at the end.
    pub fn fit(&mut self, total_steps: u64, progress: Progress) -> Result<()> {
        self.fit_for(total_steps, None, progress)
    }

    /// [`Trainer::fit`], but stops early, with a checkpoint, after the first step that ends `time_limit` seconds
    /// or more after the call began (a fixed budget on a lent GPU, say); `--resume` continues from there.
    pub fn fit_for(
        &mut self,
        total_steps: u64,
        time_limit: Option<f64>,
        progress: Progress,
    ) -> Result<()> {
        let start = self.step;
        if start >= total_steps {
            return Ok(());
        }
        let bar = match progress {
            Progress::Bar => {
                let pb = progress_bar(
                    total_steps,
                    "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} steps | {per_sec} | ETA {eta} | {msg}",
                );
                pb.set_position(start);
                pb.reset_eta();
                Some(pb)
            }
            _ => None,
        };
        let tc = self.cfg.train.clone();
        let t0 = Instant::now();
        let mut val_msg = String::new();
        while self.step < total_steps {
            self.step_deferred()?;
            let step = self.step;
            if tc.val_every > 0 && step.is_multiple_of(tc.val_every) {
                if let Some(v) = self.validate()? {
                    val_msg = format!(" | val {:.4}", v.mean);
                }
            }
            let out_of_time = time_limit.is_some_and(|l| t0.elapsed().as_secs_f64() >= l);
            let last = step == total_steps || out_of_time;
            if (step.is_multiple_of(tc.checkpoint_every) || last) && self.run_dir.is_some() {
                self.save_checkpoint()?;
            }
            if last {
                self.flush()?;
            }
            if let Some(pb) = &bar {
                pb.set_position(step);
            }
            // Numbers exist on the host only for flushed steps (every log_every steps, and the last one).
            if let Some(s) = self.history.last().filter(|s| s.step == step) {
                let window =
                    &self.history[self.history.len().saturating_sub(tc.log_every as usize)..];
                let avg = window.iter().map(|r| r.loss_per_dim).sum::<f64>() / window.len() as f64;
                let msg = format!("loss/dim {avg:.4}{val_msg}");
                if let Some(pb) = &bar {
                    pb.set_message(msg);
                } else if progress == Progress::Lines && (step.is_multiple_of(tc.log_every) || last)
                {
                    let done = (step - start) as f64;
                    let rate = done / t0.elapsed().as_secs_f64();
                    println!(
                        "step {:>6}/{total_steps} | {msg} | grad norm {:.3} | lr {:.2e} | {:.2} steps/s",
                        s.step, s.grad_norm, s.lr, rate
                    );
                }
            }
            if out_of_time {
                break;
            }
        }
        if let Some(pb) = bar {
            pb.finish();
        }
        Ok(())
    }
}

/// The error for step `step` if its `[loss, loss per dimension, gradient norm]` are not all finite.
fn non_finite(step: u64, v: &[f64]) -> Option<Error> {
    (!v.iter().all(|x| x.is_finite())).then(|| Error::NonFinite {
        what: format!("training step {step}"),
        msg: format!(
            "loss = {}, gradient norm = {}; the last checkpoint is intact",
            v[0], v[2]
        ),
    })
}

/// What `clustermaps train` asks for; [`open_run`] turns it into a ready [`Trainer`].
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// Dataset directory (its `train` split is trained on, the first `val_clusters` of `val` validate).
    pub data: PathBuf,
    /// `tiny`, `cpu`, `paper` or the path of a run TOML.
    pub config: String,
    /// Run directory.
    pub out: PathBuf,
    /// Total steps (overrides `train.n_iters`).
    pub steps: Option<u64>,
    /// Device (overrides `train.device`).
    pub device: Option<String>,
    /// Continue from the newest valid checkpoint in `out`.
    pub resume: bool,
    /// Warm start: a new run beginning at this checkpoint's weights and EMA ([`Trainer::warm_start`]). With
    /// `resume`, used only when `out` holds no checkpoint yet (so one command starts a stage and continues it).
    pub init: Option<PathBuf>,
    /// Seed of batch order, augmentation and noise (overrides `train.seed`): each warm-started stage should draw
    /// new batches.
    pub seed: Option<u64>,
    /// Start a new run in `out` even though it holds another run's checkpoints or logged steps (they are deleted);
    /// with `resume`, only when none of its checkpoints is usable.
    pub force: bool,
}

/// Opens a new or resumed run. Before any pixel is read: the configuration is fitted to the dataset's map size and
/// validated, its memory estimated and checked against the machine ([`crate::resources`]), and the run directory
/// locked (one writer per run directory). A directory holding another run's progress is refused unless resuming
/// (or `force`); `resume` with checkpoints or logged steps but no usable checkpoint is refused, listing what was
/// tried, unless `force`. The dataset is then validated as `info --check` does (every pixel of train and val,
/// statistics recomputed and compared with `stats.json`), loaded and standardized, and the run directory attached.
/// Returns the trainer and messages worth showing (resume point, skipped checkpoints, σ_max, dataset warnings).
pub fn open_run(req: &RunRequest) -> Result<(Trainer, Vec<String>)> {
    let manifest = Manifest::load(&req.data)?;
    let mut cfg = RunConfig::from_arg(&req.config)?;
    let (in_ch, tg_ch) = (
        manifest.channels.inputs.len(),
        manifest.channels.targets.len(),
    );
    let preset = matches!(req.config.as_str(), "paper" | "cpu" | "tiny");
    cfg.fit_to_data(manifest.geometry.n_pix, in_ch, tg_ch, preset)?;
    if let Some(n) = req.steps {
        cfg.train.n_iters = n;
    }
    if let Some(d) = &req.device {
        cfg.train.device = d.clone();
    }
    if let Some(seed) = req.seed {
        cfg.train.seed = seed;
    }
    cfg.validate()?;
    let device = crate::device::open_device(&cfg.train.device)?;
    let split_size = |name: &str| manifest.split(name).map_or(0, |s| s.n_clusters);
    crate::resources::check_memory(
        &format!("training {} on {}", req.config, req.data.display()),
        &memory::training_memory(
            &cfg,
            split_size("train"),
            split_size("val"),
            device.is_cpu(),
        ),
        "lower train.batch_size, the model's size (nf, ch_mult, attn_resolutions) or the map size",
    )?;

    let lock = OutputLock::directory(&req.out, "train")?;
    let existing = run_dir::RunDir::scan(&req.out)?;
    if !req.resume && !req.force && existing.has_progress() {
        return Err(Error::Config(format!(
            "{} already holds a run ({}); pass --resume to continue it, --force to replace it with a new run, or \
             choose another --out",
            req.out.display(),
            existing.summary()
        )));
    }
    let ds = Dataset::open_with(&req.data, &OpenOptions::TRAINING)?;
    let mut notes: Vec<String> = ds
        .warnings()
        .iter()
        .map(|w| format!("warning: dataset {w}"))
        .collect();
    let mut data = Some(load_splits(&ds, cfg.train.val_clusters)?);
    let mut trainer = None;
    if req.resume {
        let (found, tried) = checkpoint::latest_valid(&req.out, &device)?;
        match found {
            Some((path, ck)) => {
                notes.extend(tried.iter().map(|t| format!("skipping unusable {t}")));
                if ck.meta.train.as_ref() != Some(&cfg.train) {
                    notes.push(
                        "the training settings differ from the checkpoint's; continuing with the ones given now"
                            .into(),
                    );
                }
                notes.push(format!(
                    "resuming from {} (step {})",
                    path.display(),
                    ck.meta.step
                ));
                let (train, val) = data.take().expect("loaded above");
                let t = Trainer::resume_from(
                    &ck,
                    &path,
                    Some(cfg.clone()),
                    train,
                    val,
                    ds.stats.clone(),
                    device.clone(),
                )?;
                trainer = Some(t);
            }
            None if existing.has_progress() && !req.force => {
                let tried = if tried.is_empty() {
                    "no checkpoint file".to_string()
                } else {
                    format!("tried {}", tried.join("; "))
                };
                return Err(Error::Config(format!(
                    "--resume: {} holds a run ({}) but no usable checkpoint: {tried}. Pass --force as well to start \
                     a new run there (its files are deleted), or choose another --out",
                    req.out.display(),
                    existing.summary()
                )));
            }
            None => {
                notes.extend(tried.iter().map(|t| format!("skipping unusable {t}")));
                notes.push(format!(
                    "no checkpoint in {}; starting a new run",
                    req.out.display()
                ));
            }
        }
    }
    if trainer.is_none() && existing.has_progress() {
        existing.clear()?;
        notes.push(format!(
            "--force: the run in {} ({}) was deleted; starting a new run",
            req.out.display(),
            existing.summary()
        ));
    }
    let mut trainer = match trainer {
        Some(t) => t,
        None => {
            let init = match &req.init {
                Some(p) => Some((p, Checkpoint::load(p, &device)?)),
                None => None,
            };
            if let Some((_, ck)) = &init {
                // The noise range is part of what the weights learned; keep the initial checkpoint's.
                if cfg.model.sde.sigma_max.is_none() {
                    cfg.model.sde.sigma_max = ck.meta.model.sde.sigma_max;
                }
            }
            let (train, val) = data.take().expect("loaded above");
            let mut t = Trainer::from_data(cfg, train, val, ds.stats.clone(), device)?;
            t.info.insert("dataset".into(), ds.manifest.name.clone());
            if let Some((path, ck)) = init {
                if ck.meta.norm_stats != ds.stats {
                    notes.push(format!(
                        "{} was trained on a dataset with other normalisation statistics; this run standardizes with \
                         the new dataset's (stats.json), so the first steps adapt to the shift",
                        path.display()
                    ));
                }
                t.warm_start(&ck, path)?;
                t.sigma_max_source = ck.meta.sigma_max_source.clone();
                let (steps, maps) = stages::totals(&stages::stages_of(&ck.meta, path)?);
                notes.push(format!(
                    "warm start from {} ({steps} steps, {maps} maps in earlier stages): weights and EMA loaded, \
                     fresh optimiser with warm-up, seed {}",
                    path.display(),
                    t.cfg.train.seed
                ));
            } else {
                notes.push(format!("sigma_max: {}", t.sigma_max_source));
            }
            t
        }
    };
    trainer
        .info
        .insert(checkpoint::DATASET_DIR_KEY.into(), dir_name(&req.data));
    trainer.lock = Some(lock);
    trainer.attach_run_dir(&req.out)?;
    Ok((trainer, notes))
}

fn dir_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
