//! Posterior samples for the clusters of a dataset split from a checkpoint: what `clustermaps sample` and notebook
//! 03 run (docs/samplers.md §9).
//!
//! [`SampleSession::open`] loads the inference model (EMA weights) and opens the dataset, checking that they fit
//! each other (map size, channel counts) and comparing normalisation statistics; [`SampleSession::sample`] draws
//! `S` samples for `N` consecutive clusters of a split with one sampler and returns a [`SampleResult`] (samples in
//! standardized and physical units, the conditions and the truth in physical units, NFE and timing), which
//! [`SampleResult::write`] saves as `.npy` files and a JSON sidecar. [`sample_clusters`] does both steps.
//!
//! **Normalisation:** conditions are standardized with the *checkpoint's* statistics (those the network was trained
//! with) and samples are mapped back to physical units with them. A dataset whose own `stats.json` differs is
//! still sampled, with a warning: its inputs may come from another generator configuration or observation model
//! than the training data, and the posterior is then conditioned on inputs the model has not seen.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use super::driver::{SampleOpts, Sampler};
use super::edm_heun::Churn;
use super::kind::{AnySampler, SamplerKind};
use crate::checkpoint::{load_score_model, Checkpoint, CheckpointMeta, DATASET_DIR_KEY};
use crate::data::dataset::{ArrayKind, Dataset, Manifest, OpenOptions};
use crate::data::transform::{ChannelStats, Group, NormStats};
use crate::precond::ScoreModel;
use crate::resources::MemoryEstimate;
use crate::{Error, Result};

/// What to sample once a [`SampleSession`] is open: `clusters` consecutive clusters of `split` from index
/// `first`, `samples` posterior samples each, with one sampler.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSpec {
    /// Dataset split (`test` by default).
    pub split: String,
    /// Index of the first cluster; cluster `first + b` always gets the noise streams of condition index
    /// `first + b` ([`SampleOpts::cond_offset`]), however the clusters are grouped into calls.
    pub first: usize,
    /// Number of clusters N.
    pub clusters: usize,
    /// Posterior samples S per cluster.
    pub samples: usize,
    pub sampler: SamplerKind,
    /// Steps of the sampler (`None`: [`SamplerKind::default_steps`]).
    pub steps: Option<usize>,
    /// Churn of `heun-churn` (`None`: \[K22\]'s preset, [`Churn::default`]).
    pub churn: Option<Churn>,
    pub seed: u64,
    /// Rows per network call (`None`: 64 on a CPU, 512 on a GPU, docs/samplers.md §9).
    pub max_batch: Option<usize>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for SampleSpec {
    /// The CLI defaults: 4 test clusters × 8 samples, deterministic EDM Heun (N = 18), seed 0.
    fn default() -> Self {
        SampleSpec {
            split: "test".into(),
            first: 0,
            clusters: 4,
            samples: 8,
            sampler: SamplerKind::Heun,
            steps: None,
            churn: None,
            seed: 0,
            max_batch: None,
            progress: false,
        }
    }
}

/// A whole `clustermaps sample` request: where the model and data are, the device, and what to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    /// Any checkpoint (training or inference); its EMA weights are used.
    pub checkpoint: PathBuf,
    /// Dataset directory.
    pub data: PathBuf,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    pub device: String,
    pub spec: SampleSpec,
}

/// A checkpoint's inference model (EMA weights) on a device, with no dataset attached: it samples conditions given
/// as arrays in physical units, e.g. a test set regenerated in memory by `clustermaps reproduce`.
pub struct PosteriorModel {
    model: ScoreModel,
    meta: CheckpointMeta,
    checkpoint: PathBuf,
    device: Device,
}

/// A loaded model and an opened dataset that fit each other.
pub struct SampleSession {
    posterior: PosteriorModel,
    dataset: Dataset,
    warnings: Vec<String>,
}

/// Posterior samples of N clusters, with everything needed to plot and report them.
#[derive(Debug, Clone)]
pub struct SampleResult {
    pub split: String,
    /// Dataset indices of the N clusters (within the split).
    pub indices: Vec<usize>,
    /// `[N, S, C_out, H, W]`.
    pub shape: [usize; 5],
    /// Samples in the standardized log space of the network, `[N, S, C_out, H, W]`.
    pub samples_norm: Vec<f32>,
    /// Samples in physical units (inverse of the checkpoint's normalisation), `[N, S, C_out, H, W]`.
    pub samples: Vec<f32>,
    /// The conditions in physical units, `[N, C_in, H, W]` (as read from the dataset).
    pub inputs: Vec<f32>,
    /// The true targets in physical units, `[N, C_out, H, W]`.
    pub truth: Vec<f32>,
    /// Names of the input and target channels (dataset manifest).
    pub input_channels: Vec<String>,
    pub target_channels: Vec<String>,
    pub sampler_kind: SamplerKind,
    /// Sampler description with its settings, e.g. `heun(N=18, S_churn=0)`.
    pub sampler: String,
    pub steps: usize,
    /// Network evaluations per sample.
    pub nfe: usize,
    pub seed: u64,
    pub max_batch: usize,
    /// Wall time of the sampling itself (model loading and file I/O excluded).
    pub seconds: f64,
    /// `N·S / seconds`.
    pub samples_per_s: f64,
    pub device: String,
    pub checkpoint: PathBuf,
    /// Training step of the checkpoint.
    pub step: u64,
    /// Sample pixels whose transformed value t lies outside the `[min, max]` the training targets spanned
    /// (`stats.json`); many of them mean an undertrained model or inputs unlike the training data.
    pub outside_training_range: usize,
    /// Sample pixels so far out that their physical value does not fit an f32 (|t| ≳ 38 decades): they are stored
    /// saturated at the nearest representable value in the physical outputs (never in `samples_norm`).
    pub saturated: usize,
    /// Problems worth telling the user (normalisation mismatch, dataset warnings, samples outside the training
    /// range). The session's warnings come first.
    pub warnings: Vec<String>,
}

/// Opens the session of `req` and draws its samples (no files written; see [`SampleResult::write`]).
pub fn sample_clusters(req: &SampleRequest) -> Result<SampleResult> {
    SampleSession::open(&req.checkpoint, &req.data, &req.device)?.sample(&req.spec)
}

impl PosteriorModel {
    /// Loads the EMA model of `checkpoint` on `device` (`cpu`, `cuda`, `cuda:N` or `auto`).
    pub fn load(checkpoint: &Path, device: &str) -> Result<Self> {
        let device = crate::device::open_device(device)?;
        // No `exists()` pre-check: it reads a symlink loop or an unreadable directory as "missing"; opening the
        // file reports what is really wrong.
        let (model, meta) = load_score_model(checkpoint, &device)?;
        let st = &meta.norm_stats;
        let m = &meta.model;
        if (st.inputs.len(), st.targets.len()) != (m.cond_channels, m.target_channels) {
            return Err(Error::checkpoint(
                checkpoint,
                format!(
                    "normalisation statistics for {} input and {} target channels, but the model has {} and {}",
                    st.inputs.len(),
                    st.targets.len(),
                    m.cond_channels,
                    m.target_channels
                ),
            ));
        }
        Ok(PosteriorModel {
            model,
            meta,
            checkpoint: checkpoint.to_path_buf(),
            device,
        })
    }

    pub fn model(&self) -> &ScoreModel {
        &self.model
    }

    pub fn meta(&self) -> &CheckpointMeta {
        &self.meta
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn checkpoint(&self) -> &Path {
        &self.checkpoint
    }

    /// Default rows per network call on this device (docs/samplers.md §9).
    pub fn default_max_batch(&self) -> usize {
        if self.device.is_cpu() {
            64
        } else {
            512
        }
    }

    /// Names of the input and target channels the model was trained with (from its normalisation statistics).
    pub fn channel_names(&self) -> (Vec<String>, Vec<String>) {
        let names = |g: Group| -> Vec<String> {
            let st = self.meta.norm_stats.group(g);
            st.iter().map(|c| c.channel.name.clone()).collect()
        };
        (names(Group::Inputs), names(Group::Targets))
    }

    /// Peak memory of [`PosteriorModel::sample_physical`] for `spec` ([`super::memory::sampling_memory`]).
    pub fn memory_estimate(&self, spec: &SampleSpec) -> MemoryEstimate {
        let max_batch = spec.max_batch.unwrap_or_else(|| self.default_max_batch());
        super::memory::sampling_memory(
            self.model.config(),
            spec.clusters,
            spec.samples,
            max_batch,
            self.device.is_cpu(),
        )
    }

    /// Refuses `spec` when its memory estimate exceeds what the machine has ([`crate::resources::check_memory`]).
    pub fn check_memory(&self, spec: &SampleSpec) -> Result<()> {
        crate::resources::check_memory(
            &format!(
                "sampling {} clusters × {} samples",
                spec.clusters, spec.samples
            ),
            &self.memory_estimate(spec),
            "lower --clusters, --samples or --max-batch",
        )
    }

    /// `[C_in or C_out, H, W]` of one cluster's inputs or targets.
    fn row_len(&self, channels: usize) -> usize {
        let cfg = self.model.config();
        channels * cfg.image_size * cfg.image_size
    }

    /// Draws `spec.samples` posterior samples for each of the `spec.clusters` clusters whose conditions `inputs`
    /// (`[N, C_in, H, W]`, physical units) and true targets `truth` (`[N, C_out, H, W]`) are given; cluster `b`
    /// gets the noise streams of condition index `spec.first + b`. `spec.split` only labels the result.
    /// Non-finite inputs and arrays of the wrong length are errors.
    pub fn sample_physical(
        &self,
        inputs: Vec<f32>,
        truth: Vec<f32>,
        spec: &SampleSpec,
    ) -> Result<SampleResult> {
        let sampler: AnySampler = spec.sampler.build_with(spec.steps, spec.churn)?;
        if spec.samples == 0 {
            return Err(Error::Config("--samples must be at least 1".into()));
        }
        if spec.clusters == 0 {
            return Err(Error::Config("--clusters must be at least 1".into()));
        }
        self.check_memory(spec)?;
        let cfg = self.model.config();
        let (n, hw) = (spec.clusters, cfg.image_size);
        for (what, data, c) in [
            ("inputs", &inputs, cfg.cond_channels),
            ("truth", &truth, cfg.target_channels),
        ] {
            if data.len() != n * self.row_len(c) {
                return Err(Error::invalid(
                    "sampling request",
                    format!(
                        "{what} hold {} values, expected {n} clusters × {c} channels × {hw}×{hw} = {}",
                        data.len(),
                        n * self.row_len(c)
                    ),
                ));
            }
            if let Some(k) = data.iter().position(|v| !v.is_finite()) {
                let (row, pixel) = (k / self.row_len(c), k % (hw * hw));
                return Err(Error::invalid(
                    "sampling request",
                    format!(
                        "{what} hold a non-finite value ({}) at (cluster {}, ch {}, row {}, col {})",
                        data[k],
                        spec.first + row,
                        (k / (hw * hw)) % c,
                        pixel / hw,
                        pixel % hw
                    ),
                ));
            }
        }
        let shape = [n, cfg.cond_channels, hw, hw];
        let mut z = inputs.clone();
        self.meta.norm_stats.apply(Group::Inputs, &mut z, shape)?;
        let cond = Tensor::from_vec(z, shape.to_vec(), &self.device)?;
        let max_batch = spec.max_batch.unwrap_or_else(|| self.default_max_batch());
        let opts = SampleOpts {
            n_samples: spec.samples,
            seed: spec.seed,
            max_batch,
            cond_offset: spec.first as u64,
            progress: spec.progress,
        };
        let t0 = Instant::now();
        let x = sampler.sample(&self.model, &cond, &opts)?;
        let samples_norm = x
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        let d = x.dims();
        let shape = [d[0], d[1], d[2], d[3], d[4]];
        let range = RangeCheck::new(&self.meta.norm_stats, &samples_norm, shape);
        let physical = to_physical(
            &self.meta.norm_stats,
            &Tensor::from_vec(range.clamped.clone(), shape.to_vec(), &Device::Cpu)?,
        )?;
        let samples = physical.flatten_all()?.to_vec1::<f32>()?;
        let seconds = t0.elapsed().as_secs_f64();
        let warnings = range
            .warning(&sampler.name(), &self.meta.norm_stats)
            .into_iter()
            .collect();
        let total = (spec.clusters * spec.samples) as f64;
        let (input_channels, target_channels) = self.channel_names();
        Ok(SampleResult {
            split: spec.split.clone(),
            indices: (spec.first..spec.first + spec.clusters).collect(),
            shape,
            samples_norm,
            samples,
            inputs,
            truth,
            input_channels,
            target_channels,
            sampler_kind: spec.sampler,
            sampler: sampler.name(),
            steps: spec.steps.unwrap_or_else(|| spec.sampler.default_steps()),
            nfe: sampler.nfe(),
            seed: spec.seed,
            max_batch,
            seconds,
            samples_per_s: total / seconds.max(1e-12),
            device: crate::device::device_name(&self.device),
            checkpoint: self.checkpoint.clone(),
            step: self.meta.step,
            outside_training_range: range.outside,
            saturated: range.saturated,
            warnings,
        })
    }
}

/// The dataset `checkpoint` was trained on, if it is on disk: the directory its provenance names
/// ([`DATASET_DIR_KEY`], written by `clustermaps train`) under one of `roots`, else `fallback`; the first of these
/// that holds a dataset of the model's map size. `Ok(None)` when none does.
pub fn training_dataset(
    checkpoint: &Path,
    roots: &[&Path],
    fallback: Option<&Path>,
) -> Result<Option<PathBuf>> {
    let meta = Checkpoint::read_meta(checkpoint)?;
    let named = meta.info.get(DATASET_DIR_KEY).filter(|n| !n.is_empty());
    let candidates = named
        .into_iter()
        .flat_map(|name| roots.iter().map(move |r| r.join(name)))
        .chain(fallback.map(Path::to_path_buf));
    Ok(candidates
        .into_iter()
        .find(|d| Manifest::load(d).is_ok_and(|m| m.geometry.n_pix == meta.model.image_size)))
}

/// The first of `checkpoints` that exists and whose training dataset is on disk ([`training_dataset`]), with that
/// dataset: what to sample when several models may be around (a shipped one, a run still training).
pub fn first_with_dataset(
    checkpoints: &[&Path],
    roots: &[&Path],
    fallback: Option<&Path>,
) -> Option<(PathBuf, PathBuf)> {
    checkpoints.iter().filter(|c| c.exists()).find_map(|c| {
        let data = training_dataset(c, roots, fallback).ok().flatten()?;
        Some((c.to_path_buf(), data))
    })
}

impl SampleSession {
    /// Loads the checkpoint's EMA model on `device` and opens the dataset `data` (structure checks; pixels are read
    /// when sampled). Errors if the model and the dataset differ in map size or channel counts (naming both);
    /// collects warnings when their normalisation statistics or channel names differ.
    pub fn open(checkpoint: &Path, data: &Path, device: &str) -> Result<Self> {
        let posterior = PosteriorModel::load(checkpoint, device)?;
        let dataset = Dataset::open_with(data, &OpenOptions::STRUCTURE_ONLY)?;
        let mut warnings: Vec<String> = dataset
            .warnings()
            .iter()
            .map(|w| format!("dataset {}: {w}", data.display()))
            .collect();
        check_fit(&posterior.meta, &dataset, checkpoint, data)?;
        warnings.extend(compare_stats(
            &posterior.meta.norm_stats,
            &dataset.stats,
            checkpoint,
            data,
        ));
        Ok(SampleSession {
            posterior,
            dataset,
            warnings,
        })
    }

    /// The model without the dataset.
    pub fn posterior(&self) -> &PosteriorModel {
        &self.posterior
    }

    pub fn model(&self) -> &ScoreModel {
        &self.posterior.model
    }

    pub fn meta(&self) -> &CheckpointMeta {
        &self.posterior.meta
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    pub fn device(&self) -> &Device {
        &self.posterior.device
    }

    /// Warnings found when opening (normalisation or channel-name mismatch, dataset findings).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Default rows per network call on this session's device (docs/samplers.md §9).
    pub fn default_max_batch(&self) -> usize {
        self.posterior.default_max_batch()
    }

    /// Checks that `clusters` clusters from `first` exist in `split`; returns the split's size.
    pub fn check_range(&self, split: &str, first: usize, clusters: usize) -> Result<usize> {
        let n = self.dataset.split(split)?.n_clusters;
        if clusters == 0 {
            return Err(Error::Config("--clusters must be at least 1".into()));
        }
        if first.checked_add(clusters).is_none_or(|end| end > n) {
            return Err(Error::invalid(
                "sampling request",
                format!("asked for {clusters} clusters from index {first} of split '{split}', which has {n} clusters"),
            ));
        }
        Ok(n)
    }

    /// Rows `first..first + n` of one array of `split`, physical units, `[n, C, H, W]` flattened.
    pub fn read_rows(
        &self,
        split: &str,
        kind: ArrayKind,
        first: usize,
        n: usize,
    ) -> Result<Vec<f32>> {
        let mut r = self.dataset.reader(split, kind)?;
        r.seek_row(first)?;
        let mut out = Vec::new();
        r.read_rows(n, &mut out)?;
        Ok(out)
    }

    /// The standardized conditions `[n, C_in, H, W]` of clusters `first..first + n` (checkpoint statistics) on the
    /// session's device, and the physical inputs they came from.
    pub fn conditions(&self, split: &str, first: usize, n: usize) -> Result<(Tensor, Vec<f32>)> {
        self.check_range(split, first, n)?;
        let phys = self.read_rows(split, ArrayKind::Inputs, first, n)?;
        let cfg = self.model().config();
        let shape = [n, cfg.cond_channels, cfg.image_size, cfg.image_size];
        let mut z = phys.clone();
        self.meta().norm_stats.apply(Group::Inputs, &mut z, shape)?;
        Ok((Tensor::from_vec(z, shape.to_vec(), self.device())?, phys))
    }

    /// Draws `spec.samples` posterior samples for each of `spec.clusters` clusters of the dataset.
    pub fn sample(&self, spec: &SampleSpec) -> Result<SampleResult> {
        self.check_range(&spec.split, spec.first, spec.clusters)?;
        // Memory first, then the pixel rules of `info --check` on exactly the clusters sampled, before any work.
        spec.sampler.build(spec.steps)?;
        self.posterior.check_memory(spec)?;
        self.dataset
            .check_rows(&spec.split, spec.first, spec.clusters)?;
        let inputs = self.read_rows(&spec.split, ArrayKind::Inputs, spec.first, spec.clusters)?;
        let truth = self.read_rows(&spec.split, ArrayKind::Targets, spec.first, spec.clusters)?;
        let mut r = self.posterior.sample_physical(inputs, truth, spec)?;
        let names = |k: ArrayKind| -> Vec<String> {
            self.dataset
                .channels(k)
                .iter()
                .map(|c| c.name.clone())
                .collect()
        };
        r.input_channels = names(ArrayKind::Inputs);
        r.target_channels = names(ArrayKind::Targets);
        let mut warnings = self.warnings.clone();
        warnings.append(&mut r.warnings);
        r.warnings = warnings;
        Ok(r)
    }
}

/// Transformed values beyond which a physical value no longer fits an f32 (10^±37.5 ≈ 3·10^±37; f32 spans
/// 1.2·10⁻³⁸ … 3.4·10³⁸ in normal numbers).
const T_LIMIT: f64 = 37.5;

/// Where standardized samples lie relative to the training targets' range, and the samples with their transformed
/// values clamped to `±T_LIMIT` so that the physical outputs stay finite and positive.
struct RangeCheck {
    clamped: Vec<f32>,
    outside: usize,
    saturated: usize,
    total: usize,
}

impl RangeCheck {
    fn new(stats: &NormStats, z: &[f32], shape: [usize; 5]) -> Self {
        let [_, _, c, h, w] = shape;
        let plane = h * w;
        let (mut outside, mut saturated) = (0, 0);
        let mut clamped = z.to_vec();
        if plane > 0 {
            for (k, block) in clamped.chunks_exact_mut(plane).enumerate() {
                let cs = &stats.targets[k % c];
                let (zlo, zhi) = ((-T_LIMIT - cs.mean) / cs.std, (T_LIMIT - cs.mean) / cs.std);
                for v in block {
                    let t = *v as f64 * cs.std + cs.mean;
                    if t < cs.min || t > cs.max {
                        outside += 1;
                    }
                    if (*v as f64) < zlo || (*v as f64) > zhi {
                        saturated += 1;
                        *v = (*v as f64).clamp(zlo, zhi) as f32;
                    }
                }
            }
        }
        RangeCheck {
            clamped,
            outside,
            saturated,
            total: z.len(),
        }
    }

    /// A warning when more than 1 % of the sample pixels leave the training range, or any saturates.
    fn warning(&self, sampler: &str, stats: &NormStats) -> Option<String> {
        let frac = self.outside as f64 / self.total.max(1) as f64;
        if frac <= 0.01 && self.saturated == 0 {
            return None;
        }
        let ranges: Vec<String> = stats
            .targets
            .iter()
            .map(|c| format!("{} [{:.2}, {:.2}]", c.channel.name, c.min, c.max))
            .collect();
        let mut msg = format!(
            "{:.1} % of the sample pixels of {sampler} lie outside the range of the training targets (transformed \
             values {}): the model is undertrained, or the inputs are unlike its training data",
            100.0 * frac,
            ranges.join(", ")
        );
        if self.saturated > 0 {
            msg.push_str(&format!(
                "; {} pixels are beyond 10^±{T_LIMIT} and saturated there in the physical outputs (the _norm \
                 file keeps their values)",
                self.saturated
            ));
        }
        Some(msg)
    }
}

/// The model must have been built for the dataset's map size and channel counts.
fn check_fit(meta: &CheckpointMeta, ds: &Dataset, ckpt: &Path, data: &Path) -> Result<()> {
    let m = &meta.model;
    let n_pix = ds.manifest.geometry.n_pix;
    let (ci, co) = (
        ds.manifest.channels.inputs.len(),
        ds.manifest.channels.targets.len(),
    );
    if (m.image_size, m.cond_channels, m.target_channels) != (n_pix, ci, co) {
        return Err(Error::invalid("model and dataset do not fit", format!(
            "checkpoint {} holds a model for {s}×{s} maps with {} condition and {} target channels, but dataset {} \
             has {n_pix}×{n_pix} maps with {ci} input and {co} target channels; sample with a checkpoint trained on \
             this kind of data",
            ckpt.display(),
            m.cond_channels,
            m.target_channels,
            data.display(),
            s = m.image_size,
        )));
    }
    Ok(())
}

/// Shift of a channel's transformed mean, in checkpoint standard deviations, that [`compare_stats`] reports. Two
/// training splits from the same generator with other seeds differ by a few hundredths (0.01 σ at 8000 clusters,
/// ≈ 0.1 σ at a few dozen); another redshift, observation model or simulation shifts inputs by ≫ 0.2 σ.
pub const STATS_MEAN_SHIFT: f64 = 0.2;
/// Relative difference of a channel's standard deviation that [`compare_stats`] reports.
pub const STATS_STD_CHANGE: f64 = 0.2;

/// Warnings (empty when the statistics agree) about differences between the checkpoint's normalisation and the
/// dataset's `stats.json` that mean other data: channel names and transforms, means shifted by more than
/// [`STATS_MEAN_SHIFT`] checkpoint standard deviations, standard deviations changed by more than
/// [`STATS_STD_CHANGE`]. Smaller differences are what another seed of the same generator gives, not a warning.
pub fn compare_stats(ck: &NormStats, ds: &NormStats, ckpt: &Path, data: &Path) -> Vec<String> {
    let mut diffs = Vec::new();
    for (group, a, b) in [
        ("input", &ck.inputs, &ds.inputs),
        ("target", &ck.targets, &ds.targets),
    ] {
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            diffs.extend(channel_diff(group, i, x, y));
        }
    }
    if diffs.is_empty() {
        return vec![];
    }
    let mut out = vec![format!(
        "the normalisation statistics of dataset {} (stats.json, {} training clusters) differ from those checkpoint {} \
         was trained with ({} clusters); conditions are standardized and samples mapped back with the \
         checkpoint's, as the network expects, but the inputs may come from another generator or observation \
         model than its training data",
        data.display(),
        ds.n_clusters,
        ckpt.display(),
        ck.n_clusters
    )];
    out.extend(diffs.into_iter().map(|d| format!("  {d}")));
    out
}

fn channel_diff(group: &str, i: usize, ck: &ChannelStats, ds: &ChannelStats) -> Vec<String> {
    let mut v = Vec::new();
    let name = &ck.channel.name;
    if ck.channel.name != ds.channel.name {
        v.push(format!(
            "{group} channel {i}: named '{}' in the checkpoint, '{}' in the dataset",
            ck.channel.name, ds.channel.name
        ));
    }
    if ck.channel.transform != ds.channel.transform {
        v.push(format!(
            "{group} channel {i} ({name}): transform {:?} in the checkpoint, {:?} in the dataset",
            ck.channel.transform, ds.channel.transform
        ));
    }
    let shift = (ds.mean - ck.mean) / ck.std;
    if shift.abs() > STATS_MEAN_SHIFT || (ds.std / ck.std - 1.0).abs() > STATS_STD_CHANGE {
        v.push(format!(
            "{group} channel {i} ({name}): transformed mean {:.4} vs {:.4} ({:+.2} checkpoint std), std {:.4} vs \
             {:.4} (checkpoint vs dataset)",
            ck.mean, ds.mean, shift, ck.std, ds.std
        ));
    }
    v
}

impl SampleResult {
    /// `(N, S, C, H, W)`.
    pub fn dims(&self) -> (usize, usize, usize, usize, usize) {
        let [n, s, c, h, w] = self.shape;
        (n, s, c, h, w)
    }

    /// The map of sample `s` of cluster `b` (position in this result, not dataset index), channel `c`, physical.
    pub fn sample_map(&self, b: usize, s: usize, c: usize) -> &[f32] {
        let (_, ns, nc, h, w) = self.dims();
        let p = h * w;
        let k = (b * ns + s) * nc + c;
        &self.samples[k * p..(k + 1) * p]
    }

    /// The true map of cluster `b`, channel `c`, physical units.
    pub fn truth_map(&self, b: usize, c: usize) -> &[f32] {
        let (_, _, nc, h, w) = self.dims();
        let p = h * w;
        &self.truth[(b * nc + c) * p..(b * nc + c + 1) * p]
    }

    /// The input (condition) map of cluster `b`, channel `c`, physical units.
    pub fn input_map(&self, b: usize, c: usize) -> &[f32] {
        let (_, _, _, h, w) = self.dims();
        let p = h * w;
        let ci = self.input_channels.len();
        &self.inputs[(b * ci + c) * p..(b * ci + c + 1) * p]
    }

    /// Per-pixel mean and population standard deviation over the samples, physical units, `[N, C, H, W]` each
    /// (accumulated in f64).
    pub fn mean_std(&self) -> (Vec<f32>, Vec<f32>) {
        let (n, s, c, h, w) = self.dims();
        let chw = c * h * w;
        let (mut mean, mut std) = (vec![0f32; n * chw], vec![0f32; n * chw]);
        for b in 0..n {
            for k in 0..chw {
                let vals = (0..s).map(|j| self.samples[(b * s + j) * chw + k] as f64);
                let m = vals.clone().sum::<f64>() / s as f64;
                let var = vals.map(|v| (v - m) * (v - m)).sum::<f64>() / s as f64;
                mean[b * chw + k] = m as f32;
                std[b * chw + k] = var.sqrt() as f32;
            }
        }
        (mean, std)
    }
}

/// Standardized samples → physical units: [`NormStats::inverse`] (group `Targets`: undo the standardization, then
/// the per-channel log transform) on `[B, S, C, H, W]` (or `[N, C, H, W]`) samples. Returns f32 of the same shape on
/// the same device.
pub fn to_physical(stats: &NormStats, samples: &Tensor) -> Result<Tensor> {
    let d = samples.dims().to_vec();
    if !(d.len() == 4 || d.len() == 5) {
        return Err(Error::Shape {
            what: "samples to map to physical units".into(),
            got: d,
            expected: "[B, S, C, H, W] or [N, C, H, W]".into(),
        });
    }
    let k = d.len();
    let shape = [d[..k - 3].iter().product(), d[k - 3], d[k - 2], d[k - 1]];
    let mut v = samples
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1::<f32>()?;
    stats.inverse(Group::Targets, &mut v, shape)?;
    Ok(Tensor::from_vec(v, d, samples.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dataset-statistics warning fires for other data (a shifted mean, another spread), not for the
    /// hundredths of a σ another seed of the same generator gives.
    #[test]
    fn statistics_warnings_ignore_seed_noise() {
        let a: NormStats = serde_json::from_str(
            r#"{"split":"train","n_clusters":10,"n_pixels":100,"percentile_method":"x","inputs":[{"name":"y",
            "unit":"1","transform":"log10","floor":1e-10,"mean":-6.0,"std":1.0,"p01":-8.0,"p50":-6.0,"p99":-4.0,
            "min":-9.0,"max":-3.0}],"targets":[]}"#,
        )
        .unwrap();
        let (c, d) = (Path::new("c.safetensors"), Path::new("data"));
        let mut b = a.clone();
        b.inputs[0].mean += 0.01;
        b.inputs[0].std = 1.02;
        assert!(compare_stats(&a, &b, c, d).is_empty());
        b.inputs[0].mean = -5.5;
        let w = compare_stats(&a, &b, c, d);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[1].contains("(+0.50 checkpoint std)"), "{w:?}");
        let mut b = a.clone();
        b.inputs[0].std = 1.5;
        assert_eq!(compare_stats(&a, &b, c, d).len(), 2);
    }

    #[test]
    fn mean_and_population_std_over_samples() {
        // One cluster, two samples, one channel of 1 × 2 pixels: pixel 0 sees {1, 3}, pixel 1 sees {2, 6}.
        let r = SampleResult {
            split: "test".into(),
            indices: vec![5],
            shape: [1, 2, 1, 1, 2],
            samples_norm: vec![0.0; 4],
            samples: vec![1.0, 2.0, 3.0, 6.0],
            inputs: vec![],
            truth: vec![2.0, 4.0],
            input_channels: vec![],
            target_channels: vec!["a".into()],
            sampler_kind: SamplerKind::Heun,
            sampler: "heun(N=18)".into(),
            steps: 18,
            nfe: 35,
            seed: 0,
            max_batch: 64,
            seconds: 1.0,
            samples_per_s: 2.0,
            device: "cpu".into(),
            checkpoint: PathBuf::from("c.safetensors"),
            step: 1,
            outside_training_range: 0,
            saturated: 0,
            warnings: vec![],
        };
        let (mean, std) = r.mean_std();
        assert_eq!(mean, vec![2.0, 4.0]);
        assert_eq!(std, vec![1.0, 2.0]);
        assert_eq!(r.sample_map(0, 1, 0), &[3.0, 6.0]);
        assert_eq!(r.truth_map(0, 0), &[2.0, 4.0]);
        let rec = r.record();
        assert_eq!(
            (rec.indices, rec.nfe, rec.sampler_kind.as_str()),
            (vec![5], 35, "heun")
        );
    }
}
