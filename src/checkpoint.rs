//! Checkpoints: one safetensors file with tensors and string metadata, written atomically (docs/score-model.md §7).
//!
//! Tensor names: `params.<name>` (trained weights), `ema.<name>` (EMA shadows), `adam.m.<name>`, `adam.v.<name>`
//! (optimiser moments), `const.<name>` (fixed, non-trained tensors such as the Fourier projection `W`). An
//! *inference* checkpoint ([`CheckpointKind::Inference`], written by [`Checkpoint::inference`]) keeps only the EMA
//! weights (as `ema.*`) and the constants.
//!
//! Metadata (all strings): `format_version`, `kind`, `crate_version`, `model_config` (TOML), `train_config` (TOML,
//! training checkpoints), `norm_stats` (JSON of the dataset's [`NormStats`]), `step`, `adam_t`, `ema_updates`,
//! `rng.data`, `rng.noise` ("seed stream word_pos"), `sigma_max_source`, plus free-form provenance under `info.*`.
//!
//! Writing goes through [`crate::io::write_atomic`] (`<file>.tmp`, `fsync`, rename, `fsync` of the directory), so a
//! reader (or a run killed at any moment) sees the old file or the new one, never half of one.
//!
//! Loading for inference ([`load_score_model`]) rebuilds the network the checkpoint's config describes and checks
//! every tensor against it before any weight is used: samplers, notebooks and benchmarks load models here, without
//! the trainer.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::data::transform::NormStats;
use crate::io::{read_bytes, write_atomic};
use crate::model::{ModelConfig, NcsnppUnet};
use crate::precond::ScoreModel;
use crate::rng::RngState;
use crate::train::config::TrainConfig;
use crate::{Error, Result};

/// `info.*` key naming the directory (its last component) of the dataset a run was trained on: how
/// [`crate::sample::training_dataset`] finds that dataset again.
pub const DATASET_DIR_KEY: &str = "dataset_dir_name";

/// Version tag of the checkpoint layout described in the module docs.
pub const FORMAT_VERSION: &str = "clustermaps-checkpoint-1";

/// What a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// Everything needed to continue training bit for bit.
    Train,
    /// EMA weights, constants, configs and normalisation only (what samplers need).
    Inference,
}

impl CheckpointKind {
    fn as_str(self) -> &'static str {
        match self {
            CheckpointKind::Train => "train",
            CheckpointKind::Inference => "inference",
        }
    }
}

/// The metadata of a checkpoint, parsed.
#[derive(Debug, Clone)]
pub struct CheckpointMeta {
    pub kind: CheckpointKind,
    pub model: ModelConfig,
    pub train: Option<TrainConfig>,
    pub norm_stats: NormStats,
    pub step: u64,
    pub adam_t: u64,
    pub ema_updates: u64,
    pub rng_data: Option<RngState>,
    pub rng_noise: Option<RngState>,
    /// How σ_max was obtained (e.g. "technique1 exact 87.31 on 2000 maps, rounded up").
    pub sigma_max_source: String,
    /// Free-form provenance (`info.*` keys without the prefix): wall time, dataset, losses, machine.
    pub info: BTreeMap<String, String>,
}

/// A checkpoint in memory: parsed metadata and tensors by full name (`params.…`, `ema.…`, …).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// Tensors under `prefix` (e.g. `"ema."`), with the prefix stripped.
    pub fn group(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
            .collect()
    }

    /// The inference checkpoint of this one: EMA weights and constants, configs, normalisation, provenance.
    pub fn inference(&self) -> Checkpoint {
        let tensors = self
            .tensors
            .iter()
            .filter(|(k, _)| k.starts_with("ema.") || k.starts_with("const."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut meta = self.meta.clone();
        meta.kind = CheckpointKind::Inference;
        meta.rng_data = None;
        meta.rng_noise = None;
        Checkpoint { meta, tensors }
    }

    /// The string metadata written into the file.
    fn meta_map(&self) -> Result<HashMap<String, String>> {
        let m = &self.meta;
        let mut out = HashMap::new();
        out.insert("format_version".into(), FORMAT_VERSION.into());
        out.insert("kind".into(), m.kind.as_str().into());
        out.insert("crate_version".into(), env!("CARGO_PKG_VERSION").into());
        out.insert("model_config".into(), m.model.to_toml_string()?);
        if let Some(t) = &m.train {
            let text =
                toml::to_string(t).map_err(|e| Error::Config(format!("train config: {e}")))?;
            out.insert("train_config".into(), text);
        }
        let stats = serde_json::to_string(&m.norm_stats)
            .map_err(|e| Error::Config(format!("norm stats to JSON: {e}")))?;
        out.insert("norm_stats".into(), stats);
        out.insert("step".into(), m.step.to_string());
        out.insert("adam_t".into(), m.adam_t.to_string());
        out.insert("ema_updates".into(), m.ema_updates.to_string());
        if let Some(r) = &m.rng_data {
            out.insert("rng.data".into(), r.to_meta());
        }
        if let Some(r) = &m.rng_noise {
            out.insert("rng.noise".into(), r.to_meta());
        }
        out.insert("sigma_max_source".into(), m.sigma_max_source.clone());
        for (k, v) in &m.info {
            out.insert(format!("info.{k}"), v.clone());
        }
        Ok(out)
    }

    /// Serializes to safetensors bytes (tensors sorted by name; all moved to the CPU first).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut names: Vec<&String> = self.tensors.keys().collect();
        names.sort();
        let cpu: Vec<(String, Tensor)> = names
            .into_iter()
            .map(|k| {
                Ok((
                    k.clone(),
                    self.tensors[k].to_device(&Device::Cpu)?.contiguous()?,
                ))
            })
            .collect::<Result<_>>()?;
        safetensors::serialize(
            cpu.iter().map(|(k, t)| (k.as_str(), t)),
            Some(self.meta_map()?),
        )
        .map_err(|e| Error::Config(format!("serializing checkpoint: {e}")))
    }

    /// Writes the checkpoint atomically to `path` (temp file, fsync, rename, fsync of the directory).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)
    }

    /// Reads and validates a checkpoint: format version, parseable metadata, finite values. Tensors land on `dev`.
    pub fn load(path: &Path, dev: &Device) -> Result<Checkpoint> {
        let bytes = read_bytes(path)?;
        Self::from_bytes(&bytes, path, dev)
    }

    /// The metadata of a checkpoint file (model and training configs, normalisation, step, provenance) without
    /// converting its tensors: e.g. to find the dataset a checkpoint was trained on before loading it.
    pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
        let bytes = read_bytes(path)?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::checkpoint(path, format!("unreadable header: {e}")))?;
        parse_meta(&header.metadata().clone().unwrap_or_default(), path)
    }

    /// As [`Checkpoint::load`] from bytes already in memory (`path` only names the source in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path, dev: &Device) -> Result<Checkpoint> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
            Error::checkpoint(
                path,
                format!("not a readable safetensors file (truncated or corrupt?): {e}"),
            )
        })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::checkpoint(path, format!("unreadable header: {e}")))?;
        let raw = header.metadata().clone().unwrap_or_default();
        let meta = parse_meta(&raw, path)?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let t = candle_core::safetensors::Load::load(&view, &Device::Cpu)?;
            check_finite(&t, &name, path)?;
            tensors.insert(name, t.to_device(dev)?);
        }
        Ok(Checkpoint { meta, tensors })
    }
}

fn parse_meta(raw: &HashMap<String, String>, path: &Path) -> Result<CheckpointMeta> {
    let get = |k: &str| -> Result<&String> {
        raw.get(k)
            .ok_or_else(|| Error::checkpoint(path, format!("metadata key '{k}' is missing")))
    };
    let version = get("format_version")?;
    if version != FORMAT_VERSION {
        return Err(Error::checkpoint(
            path,
            format!("format version '{version}', this build reads '{FORMAT_VERSION}'"),
        ));
    }
    let kind = match get("kind")?.as_str() {
        "train" => CheckpointKind::Train,
        "inference" => CheckpointKind::Inference,
        other => return Err(Error::checkpoint(path, format!("unknown kind '{other}'"))),
    };
    let num = |k: &str| -> Result<u64> {
        get(k)?
            .parse()
            .map_err(|_| Error::checkpoint(path, format!("metadata '{k}' is not an integer")))
    };
    let model = ModelConfig::from_toml_str(get("model_config")?)
        .map_err(|e| Error::checkpoint(path, format!("model_config: {e}")))?;
    let train = match raw.get("train_config") {
        Some(t) => Some(
            toml::from_str::<TrainConfig>(t)
                .map_err(|e| Error::checkpoint(path, format!("train_config: {e}")))?,
        ),
        None => None,
    };
    let norm_stats: NormStats = serde_json::from_str(get("norm_stats")?)
        .map_err(|e| Error::checkpoint(path, format!("norm_stats: {e}")))?;
    norm_stats
        .check()
        .map_err(|e| Error::checkpoint(path, format!("norm_stats: {e}")))?;
    let rng = |k: &str| -> Result<Option<RngState>> {
        raw.get(k)
            .map(|s| {
                RngState::from_meta(s).map_err(|e| Error::checkpoint(path, format!("{k}: {e}")))
            })
            .transpose()
    };
    let info = raw
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("info.").map(|n| (n.to_string(), v.clone())))
        .collect();
    let meta = CheckpointMeta {
        kind,
        model,
        train,
        norm_stats,
        step: num("step")?,
        adam_t: num("adam_t")?,
        ema_updates: num("ema_updates")?,
        rng_data: rng("rng.data")?,
        rng_noise: rng("rng.noise")?,
        sigma_max_source: raw.get("sigma_max_source").cloned().unwrap_or_default(),
        info,
    };
    if kind == CheckpointKind::Train
        && (meta.train.is_none() || meta.rng_data.is_none() || meta.rng_noise.is_none())
    {
        return Err(Error::checkpoint(
            path,
            "training checkpoint without train_config or RNG states",
        ));
    }
    Ok(meta)
}

fn check_finite(t: &Tensor, name: &str, path: &Path) -> Result<()> {
    let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite {
            what: format!("checkpoint {}: tensor {name}", path.display()),
            msg: format!("element {i} is {}", v[i]),
        });
    }
    Ok(())
}

/// Checks that `got` holds exactly the `expected` names with the expected shapes. The first problem is reported:
/// a shape mismatch names the tensor and both shapes ([`Error::ConfigMismatch`]); missing and unexpected names are
/// listed.
pub fn check_tensors(
    expected: &[(String, Vec<usize>)],
    got: &HashMap<String, Tensor>,
    prefix: &str,
    path: &Path,
) -> Result<()> {
    let mut missing = Vec::new();
    for (name, shape) in expected {
        match got.get(name) {
            None => missing.push(format!("{prefix}{name}")),
            Some(t) if t.dims() != shape.as_slice() => {
                return Err(Error::ConfigMismatch {
                    path: path.to_path_buf(),
                    tensor: format!("{prefix}{name}"),
                    got: t.dims().to_vec(),
                    expected: shape.clone(),
                })
            }
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<String> = got
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .map(|k| format!("{prefix}{k}"))
        .collect();
    extra.sort();
    if !missing.is_empty() || !extra.is_empty() {
        missing.sort();
        return Err(Error::checkpoint(
            path,
            format!(
                "does not fit the model config: missing tensors [{}], unexpected tensors [{}] (was it trained \
                 with another architecture?)",
                abbreviate(&missing),
                abbreviate(&extra)
            ),
        ));
    }
    Ok(())
}

fn abbreviate(names: &[String]) -> String {
    if names.len() <= 4 {
        names.join(", ")
    } else {
        format!("{}, … ({} in all)", names[..4].join(", "), names.len())
    }
}

/// File name of the periodic checkpoint at `step`.
pub fn periodic_name(step: u64) -> String {
    format!("ckpt-{step:08}.safetensors")
}

/// The periodic checkpoints in `dir` as `(step, path)`, oldest first (temp files and other names ignored).
pub fn list_periodic(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(step) = name
            .strip_prefix("ckpt-")
            .and_then(|r| r.strip_suffix(".safetensors"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((step, path));
        }
    }
    out.sort();
    Ok(out)
}

/// A checkpoint found on disk: its path and contents.
pub type Found = (PathBuf, Checkpoint);

/// The newest training checkpoint of `dir` that loads cleanly — the periodic ones newest first, then
/// `last.safetensors` — with one line per newer file that did not and why (a truncated file from a crash is
/// skipped, not fatal).
pub fn latest_valid(dir: &Path, dev: &Device) -> Result<(Option<Found>, Vec<String>)> {
    let mut skipped = Vec::new();
    let mut candidates: Vec<PathBuf> = list_periodic(dir)?
        .into_iter()
        .rev()
        .map(|(_, p)| p)
        .collect();
    let last = dir.join("last.safetensors");
    if last.exists() {
        candidates.push(last);
    }
    for path in candidates {
        match Checkpoint::load(&path, dev) {
            Ok(c) if c.meta.kind == CheckpointKind::Train => return Ok((Some((path, c)), skipped)),
            Ok(_) => skipped.push(format!(
                "{}: an inference checkpoint, not a training one",
                path.display()
            )),
            Err(e) => skipped.push(e.to_string()),
        }
    }
    Ok((None, skipped))
}

// ---------------------------------------------------------------------------------------------------------------
// Loading a model
// ---------------------------------------------------------------------------------------------------------------

/// Builds the network for `cfg` on a fresh `VarMap` on `dev`, initial weights drawn on the host from `cfg.seed`.
pub(crate) fn build_net(cfg: &ModelConfig, dev: &Device) -> Result<(VarMap, NcsnppUnet)> {
    let varmap = VarMap::new();
    let net = NcsnppUnet::new_seeded(cfg, &varmap, DType::F32, dev)?;
    Ok((varmap, net))
}

/// A network with the given weights (an EMA or a checkpoint's), for evaluation.
pub fn net_from_tensors(
    cfg: &ModelConfig,
    weights: HashMap<String, Tensor>,
    dev: &Device,
) -> Result<NcsnppUnet> {
    NcsnppUnet::new(cfg, VarBuilder::from_tensors(weights, DType::F32, dev))
}

/// Loads an inference model from any checkpoint (EMA weights), checking every tensor against the config.
pub fn load_score_model(path: &Path, dev: &Device) -> Result<(ScoreModel, CheckpointMeta)> {
    let ck = Checkpoint::load(path, dev)?;
    let cfg = ck.meta.model.clone();
    // Before building: a corrupt model_config could describe a network far larger than the file (allocated in
    // full by `build_net`); a merely different architecture is left to `check_tensors`, which names the tensor.
    let stored: usize = ck
        .tensors
        .iter()
        .filter(|(k, _)| k.starts_with("ema."))
        .map(|(_, t)| t.elem_count())
        .sum();
    let described = crate::model::param_count(&cfg);
    if described > 4 * stored + (1 << 20) {
        return Err(Error::checkpoint(
            path,
            format!(
                "model_config describes {described} parameters, but the file holds {stored} EMA weights (a corrupt \
                 or foreign configuration)"
            ),
        ));
    }
    let (varmap, net) = build_net(&cfg, dev)?;
    let expected = var_shapes(&varmap)?;
    let ema = ck.group("ema.");
    check_tensors(&expected, &ema, "ema.", path)?;
    check_constants(&net, &ck, path)?;
    let net = net_from_tensors(&cfg, ema, dev)?;
    Ok((ScoreModel::new(net)?, ck.meta))
}

/// Names and shapes of the variables of `varmap`, sorted by name (what a checkpoint's tensors must match).
pub(crate) fn var_shapes(varmap: &VarMap) -> Result<Vec<(String, Vec<usize>)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Config("VarMap mutex poisoned".into()))?;
    let mut v: Vec<(String, Vec<usize>)> = data
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    v.sort();
    Ok(v)
}

/// The fixed tensors stored in a checkpoint must equal those the config regenerates (same seed, same `W`).
pub(crate) fn check_constants(net: &NcsnppUnet, ck: &Checkpoint, path: &Path) -> Result<()> {
    for (name, t) in net.constants() {
        let key = format!("const.{name}");
        let stored = ck
            .tensors
            .get(&key)
            .ok_or_else(|| Error::checkpoint(path, format!("tensor {key} is missing")))?;
        if stored.dims() != t.dims() {
            return Err(Error::ConfigMismatch {
                path: path.to_path_buf(),
                tensor: key,
                got: stored.dims().to_vec(),
                expected: t.dims().to_vec(),
            });
        }
        let diff = (stored.to_dtype(DType::F32)? - t.to_dtype(DType::F32)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        if diff != 0.0 {
            return Err(Error::checkpoint(
                path,
                format!("{key} differs from the one model.seed generates (checkpoint from another seed?)"),
            ));
        }
    }
    Ok(())
}
