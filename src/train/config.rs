//! [`TrainConfig`] and [`RunConfig`] (docs/score-model.md §6): what a training run does, read from the
//! `[train]` table of a run TOML; presets `paper`, `cpu` and `tiny` to match the model presets.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::loss::Reduce;
use crate::model::{ModelConfig, PrecondKind};
use crate::optim::AdamParams;
use crate::{Error, Result};

/// Most optimiser steps of a run (a paper run takes 2·10⁵).
pub const MAX_STEPS: u64 = 1_000_000_000;
/// Largest batch.
pub const MAX_BATCH: usize = 1 << 16;

/// Which training objective (docs/score-model.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Denoising score matching with λ(t) = σ(t)² (\[S21\] `get_sde_loss_fn`).
    Dsm,
    /// \[K22\] `EDMLoss` (needs `precond = "edm"`).
    Edm,
}

/// Data augmentation applied identically to condition and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Augment {
    None,
    /// A random element of the dihedral group D4 (4 rotations × optional mirror): projected clusters have no
    /// preferred orientation.
    D4,
}

/// Float math of a training run's matrix products on a GPU (issue 15, item 5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE f32 everywhere (the default; the only mode on the CPU).
    #[default]
    F32,
    /// f32 tensors, but cuBLAS may round the inputs of f32 matrix products to TF32 on tensor cores (candle's
    /// `set_gemm_reduced_precision_f32`, process-wide, set when a trainer opens on CUDA). Ignored on the CPU.
    /// cuDNN's convolutions follow cuDNN's own default (TF32 allowed on Ampere and later) unless the environment
    /// sets `NVIDIA_TF32_OVERRIDE=0`.
    Tf32,
}

impl Precision {
    fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

/// Hyper-parameters of a training run. Defaults from \[S21\] `configs/default_*_configs.py` and
/// `ve/cifar10_ncsnpp_continuous.py` where they exist (docs/score-model.md §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub batch_size: usize,
    /// Total number of optimiser steps of the run (`--steps` overrides).
    pub n_iters: u64,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Linear learning-rate warm-up in steps (`lr·min(step/warmup, 1)`).
    pub warmup: u64,
    /// Global L2 gradient-norm clip; negative disables.
    pub grad_clip: f64,
    pub ema_decay: f64,
    /// Smallest diffusion time of the DSM loss (\[S21\] `eps`).
    pub t_eps: f64,
    pub reduce: Reduce,
    pub loss: LossKind,
    pub augment: Augment,
    /// Seed of batch order, augmentation, noise and dropout.
    pub seed: u64,
    /// Steps between log lines (the CSV gets every step).
    pub log_every: u64,
    pub checkpoint_every: u64,
    /// Periodic checkpoints kept besides `last` and `ema`.
    pub keep_last: usize,
    /// Steps between validation losses (0: only at checkpoints).
    pub val_every: u64,
    /// Validation clusters: the first `val_clusters` of the `val` split (0 disables validation).
    pub val_clusters: usize,
    /// Diffusion times at which the validation loss is measured (fixed noise seeds).
    pub val_times: Vec<f64>,
    /// Training maps used by Technique 1 for σ_max (docs/score-model.md §3).
    pub sigma_max_maps: usize,
    /// EDM loss only: share of each batch whose noise level is drawn log-uniformly on
    /// `[large_sigma_min, model.sde.sigma_max]` instead of from the \[K22\] log-normal
    /// ([`crate::edm::TrainingSigmas`]: more training where large-scale modes are decided). 0 = plain \[K22\].
    pub large_sigma_share: f64,
    /// Lower end of the log-uniform part (see `large_sigma_share`).
    pub large_sigma_min: f64,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    pub device: String,
    /// `f32` (default) or `tf32` ([`Precision`]); left out of written configurations when `f32`, so they read as
    /// before.
    #[serde(skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

impl Default for TrainConfig {
    /// The paper-like run (batch 64, 200 k steps), docs/score-model.md §6.
    fn default() -> Self {
        TrainConfig {
            batch_size: 64,
            n_iters: 200_000,
            lr: 2e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            warmup: 5000,
            grad_clip: 1.0,
            ema_decay: 0.999,
            t_eps: 1e-5,
            reduce: Reduce::Sum,
            loss: LossKind::Dsm,
            augment: Augment::D4,
            seed: 42,
            log_every: 50,
            checkpoint_every: 1000,
            keep_last: 3,
            val_every: 1000,
            val_clusters: 256,
            val_times: vec![0.1, 0.3, 0.5, 0.7, 0.9],
            sigma_max_maps: 2000,
            large_sigma_share: 0.0,
            large_sigma_min: 1.0,
            device: "auto".into(),
            precision: Precision::F32,
        }
    }
}

impl TrainConfig {
    /// Paper-like training ([`TrainConfig::default`]), for a GPU.
    pub fn paper() -> Self {
        Self::default()
    }

    /// Sized for 2 CPU cores (≈ 8 s per step at 64²): batch 16, 20 k steps, 200 warm-up steps, a checkpoint and a
    /// validation on 32 maps every 100 steps (≈ 4 % overhead).
    pub fn cpu() -> Self {
        TrainConfig {
            batch_size: 16,
            n_iters: 20_000,
            warmup: 200,
            log_every: 10,
            checkpoint_every: 100,
            val_every: 100,
            val_clusters: 32,
            ..Self::default()
        }
    }

    /// For tests and quick demos: batch 8, 200 steps, no warm-up to speak of.
    pub fn tiny() -> Self {
        TrainConfig {
            batch_size: 8,
            n_iters: 200,
            lr: 1e-3,
            warmup: 10,
            ema_decay: 0.99,
            log_every: 10,
            checkpoint_every: 20,
            keep_last: 2,
            val_every: 20,
            val_clusters: 8,
            val_times: vec![0.25, 0.5, 0.75],
            sigma_max_maps: 500,
            ..Self::default()
        }
    }

    /// The optimiser's hyper-parameters.
    pub fn adam(&self) -> AdamParams {
        AdamParams {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            warmup: self.warmup,
        }
    }

    /// The EDM training noise-level distribution for `model` (σ_d and σ_max from it).
    pub fn training_sigmas(&self, model: &ModelConfig) -> crate::edm::TrainingSigmas {
        crate::edm::TrainingSigmas {
            lognormal: crate::edm::EdmSigmaDist::for_sigma_data(model.sigma_data),
            large_share: self.large_sigma_share,
            large_range: (
                self.large_sigma_min,
                model.sde.sigma_max.unwrap_or(self.large_sigma_min),
            ),
        }
    }

    /// Range-checks every field against `model`; messages name the field.
    pub fn validate(&self, model: &ModelConfig) -> Result<()> {
        let bad = |field: &str, msg: String| Err(Error::Config(format!("train.{field}: {msg}")));
        if self.batch_size == 0 {
            return bad("batch_size", "must be ≥ 1".into());
        }
        if self.n_iters == 0 {
            return bad("n_iters", "must be ≥ 1".into());
        }
        if self.n_iters > MAX_STEPS {
            return bad(
                "n_iters",
                format!("{} is above the limit of {MAX_STEPS}", self.n_iters),
            );
        }
        if self.batch_size > MAX_BATCH {
            return bad(
                "batch_size",
                format!("{} is above the limit of {MAX_BATCH}", self.batch_size),
            );
        }
        // Checked here rather than when run.toml and the first checkpoint are written, after the data is loaded.
        if let Err(msg) = crate::model::config::fits_toml(self.seed) {
            return bad("seed", msg);
        }
        self.adam()
            .validate()
            .map_err(|e| Error::Config(format!("train: {e}")))?;
        if !self.grad_clip.is_finite() || self.grad_clip == 0.0 {
            return bad(
                "grad_clip",
                format!("{} must be > 0 (or negative to disable)", self.grad_clip),
            );
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad("ema_decay", format!("{} outside [0, 1)", self.ema_decay));
        }
        if !(self.t_eps > 0.0 && self.t_eps < 0.5) {
            return bad("t_eps", format!("{} outside (0, 0.5)", self.t_eps));
        }
        if self.loss == LossKind::Edm && model.precond != PrecondKind::Edm {
            return bad("loss", "\"edm\" needs model.precond = \"edm\"".into());
        }
        if self.log_every == 0 || self.checkpoint_every == 0 {
            return bad("log_every/checkpoint_every", "must be ≥ 1".into());
        }
        if self.keep_last == 0 {
            return bad("keep_last", "must be ≥ 1".into());
        }
        if let Some(t) = self.val_times.iter().find(|t| !(**t > 0.0 && **t <= 1.0)) {
            return bad("val_times", format!("{t} outside (0, 1]"));
        }
        if self.val_clusters > 0 && self.val_times.is_empty() {
            return bad("val_times", "empty while val_clusters > 0".into());
        }
        if self.sigma_max_maps < 2 {
            return bad("sigma_max_maps", "must be ≥ 2".into());
        }
        if !(0.0..1.0).contains(&self.large_sigma_share) {
            return bad(
                "large_sigma_share",
                format!("{} outside [0, 1)", self.large_sigma_share),
            );
        }
        if self.large_sigma_share > 0.0 {
            if self.loss != LossKind::Edm {
                return bad(
                    "large_sigma_share",
                    "applies to loss = \"edm\" only (the DSM loss already draws t uniformly)"
                        .into(),
                );
            }
            let hi = model.sde.sigma_max.unwrap_or(f64::INFINITY);
            if !(self.large_sigma_min > 0.0 && self.large_sigma_min < hi) {
                return bad(
                    "large_sigma_min",
                    format!(
                        "{} must be > 0 and below model.sde.sigma_max",
                        self.large_sigma_min
                    ),
                );
            }
        }
        crate::device::parse_device(&self.device).map(|_| ())
    }
}

/// A run's complete configuration: the `[model]` and `[train]` tables of a run TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
}

impl RunConfig {
    /// A named preset (`paper`, `cpu`, `tiny`): model and training presets of the same name.
    pub fn preset(name: &str) -> Result<Self> {
        let train = match name {
            "paper" => TrainConfig::paper(),
            "cpu" => TrainConfig::cpu(),
            "tiny" => TrainConfig::tiny(),
            other => {
                return Err(Error::Config(format!(
                    "unknown config '{other}' (expected paper, cpu, tiny or a path to a .toml file)"
                )))
            }
        };
        Ok(RunConfig {
            model: ModelConfig::preset(name)?,
            train,
        })
    }

    /// A preset name or the path of a TOML file with `[model]` and `[train]` tables.
    pub fn from_arg(arg: &str) -> Result<Self> {
        if matches!(arg, "paper" | "cpu" | "tiny") {
            return Self::preset(arg);
        }
        let path = Path::new(arg);
        if !path.exists() {
            return Err(Error::Config(format!(
                "config '{arg}' is neither a preset (paper, cpu, tiny) nor an existing file"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text).map_err(|e| match e {
            Error::Config(msg) => Error::Config(format!("{}: {msg}", path.display())),
            e => e,
        })
    }

    /// Parses and validates a run TOML.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Config(format!("run config to TOML: {e}")))
    }

    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.train.validate(&self.model)
    }
}

impl RunConfig {
    /// Makes the model fit a dataset's map size and channel counts. Presets adapt (`image_size` and, at 128², one
    /// more full-resolution level in `ch_mult`, docs/score-model.md §6); a configuration file must already agree.
    pub fn fit_to_data(
        &mut self,
        n_pix: usize,
        cond: usize,
        target: usize,
        adapt: bool,
    ) -> Result<()> {
        let m = &mut self.model;
        if adapt {
            if n_pix >= 128 && m.image_size < 128 && m.ch_mult.len() >= 3 {
                // docs/score-model.md §6: one more full-resolution level at 128², attention stays at 16².
                m.ch_mult.insert(0, 1);
                m.image_size *= 2;
            }
            // Attention sits at the same depth of the U-Net, so its resolutions scale with the map size.
            if m.image_size != n_pix {
                let scaled: Vec<usize> = m
                    .attn_resolutions
                    .iter()
                    .map(|r| r * n_pix / m.image_size)
                    .filter(|r| *r > 0)
                    .collect();
                m.attn_resolutions = scaled;
            }
            m.image_size = n_pix;
            m.cond_channels = cond;
            m.target_channels = target;
        }
        if (m.image_size, m.cond_channels, m.target_channels) != (n_pix, cond, target) {
            return Err(Error::Config(format!(
                "model expects {}×{} maps with {} condition and {} target channels, the dataset has {n_pix}×{n_pix} \
                 with {cond} and {target}",
                m.image_size, m.image_size, m.cond_channels, m.target_channels
            )));
        }
        self.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_roundtrip_and_validate() {
        for name in ["paper", "cpu", "tiny"] {
            let cfg = RunConfig::preset(name).unwrap();
            cfg.validate().unwrap();
            let back = RunConfig::from_toml_str(&cfg.to_toml_string().unwrap()).unwrap();
            assert_eq!(back, cfg);
        }
        assert!(RunConfig::from_arg("no-such-preset").is_err());
    }

    #[test]
    fn bad_fields_are_named() {
        let err = RunConfig::from_toml_str("[train]\nbatch_size = 0\n").unwrap_err();
        assert!(err.to_string().contains("batch_size"), "{err}");
        let err = RunConfig::from_toml_str("[train]\nloss = \"edm\"\n").unwrap_err();
        assert!(err.to_string().contains("loss"), "{err}");
        let err = RunConfig::from_toml_str("[train]\nlearning_rate = 1.0\n").unwrap_err();
        assert!(err.to_string().contains("learning_rate"), "{err}");
        let err = RunConfig::from_toml_str("[train]\nlarge_sigma_share = 0.2\n").unwrap_err();
        assert!(err.to_string().contains("edm"), "{err}");
        let err = RunConfig::from_toml_str("[train]\nlarge_sigma_share = 1.5\n").unwrap_err();
        assert!(err.to_string().contains("large_sigma_share"), "{err}");
        let err = RunConfig::from_toml_str("[train]\ndevice = \"tpu\"\n").unwrap_err();
        assert!(err.to_string().contains("tpu"), "{err}");
        let mut cfg = RunConfig::preset("tiny").unwrap();
        cfg.train.seed = u64::MAX;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("train.seed") && err.contains("TOML"), "{err}");
        cfg.train.seed = 1;
        cfg.train.n_iters = u64::MAX;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("train.n_iters") && err.contains("limit"),
            "{err}"
        );
    }

    #[test]
    fn precision_parses_and_the_default_is_not_written() {
        let cfg = RunConfig::from_toml_str("[train]\nprecision = \"tf32\"\n").unwrap();
        assert_eq!(cfg.train.precision, Precision::Tf32);
        assert!(cfg
            .to_toml_string()
            .unwrap()
            .contains("precision = \"tf32\""));
        let text = RunConfig::preset("cpu").unwrap().to_toml_string().unwrap();
        assert!(!text.contains("precision"), "{text}");
        assert!(RunConfig::from_toml_str("[train]\nprecision = \"bf16\"\n").is_err());
    }
}
