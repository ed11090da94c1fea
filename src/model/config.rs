//! [`ModelConfig`]: the architecture, preconditioning and SDE of a score model (docs/score-model.md §6).
//!
//! Serde struct read from and written to TOML (the `[model]` table of a run config and the `model_config` metadata of
//! every checkpoint). Presets: [`ModelConfig::paper`] (= `Default`, the paper-like NCSN++-lite), [`ModelConfig::cpu`]
//! (sized for a 2-core machine) and [`ModelConfig::tiny`] (tests).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Noise embedding of the network (docs/score-model.md §4): Gaussian Fourier features of the noise label (VE, EDM) or
/// the DDPM sinusoidal positional embedding of `999·t` (VP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Embedding {
    Fourier,
    Positional,
}

/// Up/down-sampling inside the BigGAN residual blocks (docs/score-model.md §4). Only `naive` (nearest ×2 / 2×2 average
/// pool) exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resample {
    Naive,
}

/// How the network output is turned into a denoiser / score (docs/score-model.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecondKind {
    /// \[S21\] NCSN++ `scale_by_sigma`: `D = x + σ·F(x, ln σ)`.
    Ve,
    /// \[S21\] DDPM++: `score = −F(x, 999t)/std(t)`.
    Vp,
    /// \[K22\] `EDMPrecond` with `σ_data`.
    Edm,
}

/// Which forward SDE (docs/score-model.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdeKind {
    Ve,
    Vp,
}

/// The forward SDE's parameters (docs/score-model.md §3, `[model.sde]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SdeConfig {
    pub kind: SdeKind,
    /// VE: smallest noise level σ_min.
    pub sigma_min: f64,
    /// VE: largest noise level σ_max; `None` → Technique 1 \[SE20\] on the training targets at the start of training
    /// (`train::sigma_max_rule`), then written here so inference never recomputes it.
    pub sigma_max: Option<f64>,
    /// Discretization steps N of the SMLD/DDPM samplers.
    pub n: usize,
    /// VP: β_min.
    pub beta_min: f64,
    /// VP: β_max.
    pub beta_max: f64,
}

impl Default for SdeConfig {
    /// VE, σ_min = 0.01, σ_max from Technique 1, N = 1000 (\[S21\] `ve/` configs); VP β ∈ \[0.1, 20\].
    fn default() -> Self {
        SdeConfig {
            kind: SdeKind::Ve,
            sigma_min: 0.01,
            sigma_max: None,
            n: 1000,
            beta_min: 0.1,
            beta_max: 20.0,
        }
    }
}

/// Largest map size a model may be built for.
pub const MAX_IMAGE_SIZE: usize = 4096;
/// Largest base width `nf`.
pub const MAX_NF: usize = 1024;
/// Largest entry of `ch_mult`, and the most levels.
pub const MAX_CH_MULT: usize = 16;
pub const MAX_LEVELS: usize = 8;
/// Most residual blocks per level.
pub const MAX_RES_BLOCKS: usize = 16;
/// Most condition or target channels.
pub const MAX_CHANNELS: usize = 64;
/// Largest discretization `sde.n`.
pub const MAX_SDE_STEPS: usize = 100_000;

/// `Err` with the reason when `v` is above 2^63 − 1: TOML integers are signed 64-bit, so such a value (a seed,
/// say) could be used but not written into `run.toml`, a checkpoint or a manifest.
pub fn fits_toml(v: u64) -> std::result::Result<(), String> {
    if v > i64::MAX as u64 {
        Err(format!(
            "{v} is above 2^63 − 1, the largest integer TOML holds"
        ))
    } else {
        Ok(())
    }
}

/// Architecture of the conditional NCSN++-lite U-Net plus its preconditioning and SDE (docs/score-model.md §4–§6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Height = width of the maps the network is built for (a multiple of `2^(levels−1)`).
    pub image_size: usize,
    /// Channels of the target x0 (gas, DM).
    pub target_channels: usize,
    /// Channels of the condition y (Compton-y, X-ray SB).
    pub cond_channels: usize,
    /// Base channel width `nf`.
    pub nf: usize,
    /// Channel multiplier per resolution level (level 0 = full resolution).
    pub ch_mult: Vec<usize>,
    /// Residual blocks per level on the way down (`+1` on the way up).
    pub num_res_blocks: usize,
    /// Resolutions (in pixels) that get a self-attention block after each residual block.
    pub attn_resolutions: Vec<usize>,
    /// Dropout probability inside residual blocks (train path only; masks from the trainer's RNG).
    pub dropout: f64,
    /// Standard deviation of the fixed Gaussian Fourier projection `W ~ N(0, scale²)`.
    pub fourier_scale: f64,
    pub embedding: Embedding,
    /// Divide every residual sum by √2 (\[S21\] `skip_rescale`).
    pub skip_rescale: bool,
    pub resample: Resample,
    pub precond: PrecondKind,
    /// Standard deviation of the standardized targets (EDM preconditioning only).
    pub sigma_data: f64,
    /// Seed of the fixed (non-trained) Fourier projection matrix `W` and of the initial weights.
    pub seed: u64,
    pub sde: SdeConfig,
}

impl Default for ModelConfig {
    /// The paper-like NCSN++-lite at 64² ([`ModelConfig::paper`]).
    fn default() -> Self {
        ModelConfig {
            image_size: 64,
            target_channels: 2,
            cond_channels: 2,
            nf: 64,
            ch_mult: vec![1, 2, 2, 2],
            num_res_blocks: 2,
            attn_resolutions: vec![16],
            dropout: 0.1,
            fourier_scale: 16.0,
            embedding: Embedding::Fourier,
            skip_rescale: true,
            resample: Resample::Naive,
            precond: PrecondKind::Ve,
            sigma_data: 1.0,
            seed: 42,
            sde: SdeConfig::default(),
        }
    }
}

impl ModelConfig {
    /// Paper-like NCSN++-lite: nf 64, ch_mult \[1, 2, 2, 2\], 2 residual blocks, attention at 16²
    /// (docs/score-model.md §6).
    pub fn paper() -> Self {
        Self::default()
    }

    /// Sized to train on a 2-core CPU in hours: nf 32, ch_mult \[1, 2, 2\], 2 residual blocks, attention at 16².
    pub fn cpu() -> Self {
        ModelConfig {
            nf: 32,
            ch_mult: vec![1, 2, 2],
            ..Self::default()
        }
    }

    /// For tests: 16², nf 16, ch_mult \[1, 2\], 1 residual block, attention at 8², no dropout.
    pub fn tiny() -> Self {
        ModelConfig {
            image_size: 16,
            nf: 16,
            ch_mult: vec![1, 2],
            num_res_blocks: 1,
            attn_resolutions: vec![8],
            dropout: 0.0,
            ..Self::default()
        }
    }

    /// A preset by name: `paper`, `cpu` or `tiny`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "paper" => Ok(Self::paper()),
            "cpu" => Ok(Self::cpu()),
            "tiny" => Ok(Self::tiny()),
            other => Err(Error::Config(format!(
                "unknown model preset '{other}' (expected paper, cpu or tiny)"
            ))),
        }
    }

    /// Number of resolution levels (`ch_mult.len()`).
    pub fn levels(&self) -> usize {
        self.ch_mult.len()
    }

    /// Spatial size at level `i` (`image_size / 2^i`).
    pub fn resolution(&self, level: usize) -> usize {
        self.image_size >> level
    }

    /// Range-checks every field; messages name the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| Err(Error::Config(format!("model.{field}: {msg}")));
        // Upper bounds first: they keep every size computed from the config (parameter counts, memory estimates)
        // far from overflow, and no sensible model comes near them.
        let bounds = [
            ("image_size", self.image_size, MAX_IMAGE_SIZE),
            ("nf", self.nf, MAX_NF),
            ("ch_mult (levels)", self.ch_mult.len(), MAX_LEVELS),
            ("num_res_blocks", self.num_res_blocks, MAX_RES_BLOCKS),
            ("target_channels", self.target_channels, MAX_CHANNELS),
            ("cond_channels", self.cond_channels, MAX_CHANNELS),
            ("sde.n", self.sde.n, MAX_SDE_STEPS),
        ];
        for (field, v, max) in bounds {
            if v > max {
                return bad(field, format!("{v} is above the limit of {max}"));
            }
        }
        if let Some(m) = self.ch_mult.iter().find(|m| **m > MAX_CH_MULT) {
            return bad(
                "ch_mult",
                format!("entry {m} is above the limit of {MAX_CH_MULT}"),
            );
        }
        if let Err(msg) = fits_toml(self.seed) {
            return bad("seed", msg);
        }
        if self.target_channels == 0 {
            return bad("target_channels", "must be ≥ 1".into());
        }
        if self.cond_channels == 0 {
            return bad("cond_channels", "must be ≥ 1".into());
        }
        if self.nf < 4 || !self.nf.is_multiple_of(4) {
            return bad(
                "nf",
                format!("{} must be a multiple of 4 (GroupNorm)", self.nf),
            );
        }
        if self.ch_mult.is_empty() || self.ch_mult.contains(&0) {
            return bad(
                "ch_mult",
                format!("{:?} must be non-empty with entries ≥ 1", self.ch_mult),
            );
        }
        let stride = 1usize << (self.levels() - 1);
        if self.image_size == 0 || !self.image_size.is_multiple_of(stride) {
            return bad(
                "image_size",
                format!(
                    "{} must be a positive multiple of 2^(levels−1) = {stride} for ch_mult {:?}",
                    self.image_size, self.ch_mult
                ),
            );
        }
        if self.num_res_blocks == 0 {
            return bad("num_res_blocks", "must be ≥ 1".into());
        }
        // An entry matching no level would silently give a model without that attention.
        let levels: Vec<usize> = (0..self.levels()).map(|l| self.resolution(l)).collect();
        for (i, r) in self.attn_resolutions.iter().enumerate() {
            if !levels.contains(r) {
                return bad(
                    "attn_resolutions",
                    format!(
                        "{r} is not a resolution of this network (image_size {} with ch_mult {:?} has {levels:?})",
                        self.image_size, self.ch_mult
                    ),
                );
            }
            if self.attn_resolutions[..i].contains(r) {
                return bad("attn_resolutions", format!("{r} is listed twice"));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", format!("{} outside [0, 1)", self.dropout));
        }
        if !(self.fourier_scale.is_finite() && self.fourier_scale > 0.0) {
            return bad(
                "fourier_scale",
                format!("{} must be finite and > 0", self.fourier_scale),
            );
        }
        if !(self.sigma_data.is_finite() && self.sigma_data > 0.0) {
            return bad(
                "sigma_data",
                format!("{} must be finite and > 0", self.sigma_data),
            );
        }
        match (self.precond, self.embedding, self.sde.kind) {
            (PrecondKind::Vp, Embedding::Positional, SdeKind::Vp) => {}
            (PrecondKind::Vp, _, _) => {
                return bad(
                    "precond",
                    "\"vp\" needs embedding = \"positional\" and sde.kind = \"vp\"".into(),
                )
            }
            (_, Embedding::Positional, _) => {
                return bad(
                    "embedding",
                    "\"positional\" (labels 999·t) only fits precond = \"vp\"; use \"fourier\""
                        .into(),
                )
            }
            (PrecondKind::Ve | PrecondKind::Edm, Embedding::Fourier, SdeKind::Ve) => {}
            (_, _, SdeKind::Vp) => return bad("sde.kind", "\"vp\" needs precond = \"vp\"".into()),
        }
        let s = &self.sde;
        if !(s.sigma_min.is_finite() && s.sigma_min > 0.0) {
            return bad(
                "sde.sigma_min",
                format!("{} must be finite and > 0", s.sigma_min),
            );
        }
        if let Some(m) = s.sigma_max {
            if !(m.is_finite() && m > s.sigma_min) {
                return bad(
                    "sde.sigma_max",
                    format!("{m} must be finite and > sigma_min"),
                );
            }
        }
        if s.n < 2 {
            return bad("sde.n", format!("{} must be ≥ 2", s.n));
        }
        if !(s.beta_min > 0.0 && s.beta_max > s.beta_min && s.beta_max.is_finite()) {
            return bad(
                "sde.beta_min/beta_max",
                format!(
                    "need 0 < beta_min < beta_max, got {} and {}",
                    s.beta_min, s.beta_max
                ),
            );
        }
        Ok(())
    }

    /// Parses a `ModelConfig` from TOML text (unknown keys are errors) and validates it.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let cfg: ModelConfig =
            toml::from_str(text).map_err(|e| Error::Config(format!("model config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as TOML text (round-trips through [`ModelConfig::from_toml_str`]).
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Config(format!("model config to TOML: {e}")))
    }

    /// The fields that fix the shapes of the parameters; two configs with equal keys load each other's weights.
    pub fn architecture_key(&self) -> String {
        format!(
            "image {} | channels {}→{} | nf {} | ch_mult {:?} | res blocks {} | attn {:?} | embedding {:?}",
            self.image_size,
            self.cond_channels + self.target_channels,
            self.target_channels,
            self.nf,
            self.ch_mult,
            self.num_res_blocks,
            self.attn_resolutions,
            self.embedding
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_roundtrip_toml() {
        for name in ["paper", "cpu", "tiny"] {
            let cfg = ModelConfig::preset(name).unwrap();
            cfg.validate().unwrap();
            let text = cfg.to_toml_string().unwrap();
            assert_eq!(ModelConfig::from_toml_str(&text).unwrap(), cfg, "{name}");
        }
        assert!(ModelConfig::preset("huge").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let mut cfg = ModelConfig::tiny();
        cfg.image_size = 15;
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.contains("image_size"), "{msg}");
        let mut cfg = ModelConfig::tiny();
        cfg.embedding = Embedding::Positional;
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("embedding"));
        let err = ModelConfig::from_toml_str("nf = 32\nwidth = 3\n").unwrap_err();
        assert!(err.to_string().contains("width"), "{err}");
    }

    #[test]
    fn sizes_are_bounded_and_attention_must_exist() {
        type Edit = fn(&mut ModelConfig);
        let cases: [(Edit, &str); 4] = [
            (|c| c.nf = 100_000, "model.nf: 100000 is above the limit"),
            (
                |c| c.attn_resolutions = vec![12],
                "attn_resolutions: 12 is not a resolution of this network (image_size 16 with ch_mult [1, 2] has \
                 [16, 8])",
            ),
            (|c| c.seed = 1 << 63, "model.seed: 9223372036854775808 is above 2^63"),
            (|c| c.image_size = 1 << 40, "model.image_size: 1099511627776 is above"),
        ];
        for (edit, expected) in cases {
            let mut cfg = ModelConfig::tiny();
            edit(&mut cfg);
            let msg = cfg.validate().unwrap_err().to_string();
            assert!(msg.contains(expected), "{expected}: {msg}");
        }
    }
}
