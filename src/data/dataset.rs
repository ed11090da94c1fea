//! On-disk datasets (docs/mock-clusters.md §7): the layout the learning side reads, written by the mock generator and
//! droppable-in for real simulation maps.
//!
//! ```text
//! <dir>/
//!   manifest.toml          schema, geometry, channels + transforms, splits (sizes, seeds), source, cosmology
//!   stats.json             NormStats of the training split (transform.rs)
//!   {train,val,test}/
//!     inputs.npy           '<f4', C order, [N, C_in, H, W]: ch 0 = y, ch 1 = S_X, physical units
//!     targets.npy          '<f4', [N, C_out, H, W]: ch 0 = Σ_gas, ch 1 = Σ_DM [M_sun kpc⁻²]
//!     inputs_clean.npy     optional, same shape as inputs (realistic observations only)
//!     meta.csv             one row per cluster, in array order (meta.rs)
//! ```
//!
//! Writing ([`DatasetWriter`]) streams every array to `NAME.tmp` in index order and renames it into place when
//! complete; `manifest.toml` is written last, so a directory with a manifest is a complete dataset and an interrupted
//! run never looks like one. Reading ([`Dataset::open`]) validates the rules of docs/mock-clusters.md §7 and reports
//! the first violation as an [`Error`] naming the dataset, split, file and offending value.

mod validate;

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::MockConfig;
use super::cosmology::Cosmology;
use super::meta::{write_meta_csv, ClusterMeta};
use super::observe::{ObsConfig, ObsPreset};
use super::transform::{norm_stats, ChannelSpec, NormStats, StatsAccumulator};
use crate::io::{read_text, write_atomic, NpyF32Writer, NpyReader, OutputLock, LOCK_FILE};
use crate::{Error, Result};

/// Schema of `manifest.toml` written by this crate.
pub const SCHEMA: &str = "clustermaps-dataset-1";
/// Schemas this crate can read.
pub const KNOWN_SCHEMAS: [&str; 1] = [SCHEMA];
/// Split names a manifest may declare; `train` is required (it defines the normalisation).
pub const SPLIT_NAMES: [&str; 3] = ["train", "val", "test"];

pub const MANIFEST_FILE: &str = "manifest.toml";
pub const STATS_FILE: &str = "stats.json";
pub const META_FILE: &str = "meta.csv";

/// |a − b| ≤ tol; false if either is NaN (so a NaN never passes a tolerance check).
fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

// ---------------------------------------------------------------------------------------------------------------
// Manifest
// ---------------------------------------------------------------------------------------------------------------

/// `manifest.toml`: everything needed to interpret the arrays without reading code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: String,
    /// Dataset name (the preset for mocks); not the directory, so identical data gives identical bytes.
    pub name: String,
    pub geometry: MapGeometry,
    pub channels: Channels,
    pub splits: Vec<SplitInfo>,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosmology: Option<Cosmology>,
}

/// Map geometry (docs/mock-clusters.md §1): square maps of `n_pix`² pixels covering `side_kpc` physical kpc, centred on
/// the cluster at the corner shared by the four central pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapGeometry {
    pub n_pix: usize,
    pub side_kpc: f64,
    pub pixel_kpc: f64,
    /// Always "geometric".
    pub centre: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_arcmin: Option<f64>,
}

impl MapGeometry {
    /// The geometry of a map of `n_pix` pixels over `side_kpc`.
    pub fn new(n_pix: usize, side_kpc: f64) -> Self {
        MapGeometry {
            n_pix,
            side_kpc,
            pixel_kpc: side_kpc / n_pix as f64,
            centre: "geometric".to_string(),
            z: None,
            pixel_arcmin: None,
        }
    }
}

/// Channel declarations, in array order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    pub inputs: Vec<ChannelSpec>,
    pub targets: Vec<ChannelSpec>,
    /// Declared when every split carries `inputs_clean.npy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_clean: Option<Vec<ChannelSpec>>,
}

/// One declared split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitInfo {
    pub name: String,
    pub n_clusters: usize,
    /// Master seed of the split (mocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Cluster ids of the split are `id_offset + index` (mocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_offset: Option<u64>,
}

/// Where the maps come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Mock,
    Imported,
}

/// Provenance: generator, spec version and the configurations that produced the maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub kind: SourceKind,
    /// Version of this crate that wrote the dataset.
    pub generator_version: String,
    /// Mock generator version (`config::SPEC_VERSION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<String>,
    /// Dataset preset (tiny, dev, full64, full128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obs_preset: Option<ObsPreset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obs: Option<ObsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockConfig>,
    /// Free text for imported data (simulation, code, reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Manifest {
    /// A manifest for imported maps with the given channels and split sizes (train/val/test order).
    pub fn imported(
        name: &str,
        geometry: MapGeometry,
        inputs: Vec<ChannelSpec>,
        targets: Vec<ChannelSpec>,
        splits: &[(&str, usize)],
    ) -> Self {
        Manifest {
            schema: SCHEMA.to_string(),
            name: name.to_string(),
            geometry,
            channels: Channels {
                inputs,
                targets,
                inputs_clean: None,
            },
            splits: splits
                .iter()
                .map(|&(name, n)| SplitInfo {
                    name: name.to_string(),
                    n_clusters: n,
                    seed: None,
                    id_offset: None,
                })
                .collect(),
            source: Source {
                kind: SourceKind::Imported,
                generator_version: env!("CARGO_PKG_VERSION").to_string(),
                spec_version: None,
                preset: None,
                obs_preset: None,
                obs: None,
                mock: None,
                description: None,
            },
            cosmology: None,
        }
    }

    /// Reads and validates `<dir>/manifest.toml` (rule 1 and the manifest half of rule 4).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = read_text(&path)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let m: Manifest = toml::from_str(text).map_err(|e| Error::format(&path, e.to_string()))?;
        m.validate(&path)?;
        Ok(m)
    }

    /// Writes `<dir>/manifest.toml` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let text = toml::to_string(self).map_err(|e| Error::format(&path, e.to_string()))?;
        write_atomic(&path, text.as_bytes())
    }

    /// The declared split called `name`.
    pub fn split(&self, name: &str) -> Option<&SplitInfo> {
        self.splits.iter().find(|s| s.name == name)
    }

    /// Internal consistency: known schema, geometry (`pixel_kpc × n_pix = side_kpc` to 1e-6), channels and
    /// splits. `path` names the manifest in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid(path.display().to_string(), msg));
        if !KNOWN_SCHEMAS.contains(&self.schema.as_str()) {
            return bad(format!(
                "unknown schema '{}' (this build reads {})",
                self.schema,
                KNOWN_SCHEMAS.join(", ")
            ));
        }
        let g = &self.geometry;
        if g.n_pix == 0 || !(g.side_kpc > 0.0 && g.side_kpc.is_finite()) {
            return bad(format!(
                "geometry: n_pix {} and side_kpc {} must be positive",
                g.n_pix, g.side_kpc
            ));
        }
        let side = g.pixel_kpc * g.n_pix as f64;
        if !close(side, g.side_kpc, 1e-6 * g.side_kpc) {
            return bad(format!(
                "geometry: pixel_kpc {} × n_pix {} = {side} kpc, but side_kpc = {} kpc",
                g.pixel_kpc, g.n_pix, g.side_kpc
            ));
        }
        if g.centre != "geometric" {
            return bad(format!(
                "geometry: centre '{}', expected 'geometric' (cluster centre at the corner of the four central pixels)",
                g.centre
            ));
        }
        let groups = [
            ("inputs", Some(&self.channels.inputs)),
            ("targets", Some(&self.channels.targets)),
            ("inputs_clean", self.channels.inputs_clean.as_ref()),
        ];
        for (group, channels) in groups {
            let Some(channels) = channels else { continue };
            if channels.is_empty() {
                return bad(format!("channels.{group}: no channels declared"));
            }
            for (i, ch) in channels.iter().enumerate() {
                if channels[..i].iter().any(|c| c.name == ch.name) {
                    return bad(format!(
                        "channels.{group}: channel '{}' declared twice",
                        ch.name
                    ));
                }
                ch.transform
                    .validate(&ch.name)
                    .or_else(|e| bad(format!("channels.{group}: {e}")))?;
            }
        }
        if let Some(clean) = &self.channels.inputs_clean {
            if clean.len() != self.channels.inputs.len() {
                return bad(format!(
                    "channels.inputs_clean has {} channels, channels.inputs {}",
                    clean.len(),
                    self.channels.inputs.len()
                ));
            }
        }
        for (i, s) in self.splits.iter().enumerate() {
            if !SPLIT_NAMES.contains(&s.name.as_str()) {
                return bad(format!(
                    "unknown split '{}' (expected one of {})",
                    s.name,
                    SPLIT_NAMES.join(", ")
                ));
            }
            if self.splits[..i].iter().any(|t| t.name == s.name) {
                return bad(format!("split '{}' declared twice", s.name));
            }
        }
        match self.split("train") {
            Some(t) if t.n_clusters > 0 => Ok(()),
            _ => bad(
                "a non-empty 'train' split is required (it defines the normalisation)".to_string(),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------------------------

/// Which array of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayKind {
    Inputs,
    Targets,
    InputsClean,
}

impl ArrayKind {
    pub fn file_name(self) -> &'static str {
        match self {
            ArrayKind::Inputs => "inputs.npy",
            ArrayKind::Targets => "targets.npy",
            ArrayKind::InputsClean => "inputs_clean.npy",
        }
    }
}

/// Writes a dataset split by split, cluster by cluster, in index order; computes `stats.json` from the training
/// split on the fly and writes the manifest last.
///
/// ```no_run
/// # use clustermaps::data::dataset::*;
/// # fn f(m: Manifest, rows: Vec<(clustermaps::data::ClusterMeta, Vec<f32>, Vec<f32>)>) -> clustermaps::Result<()> {
/// let mut w = DatasetWriter::create(std::path::Path::new("data/x"), m, false)?;
/// let mut s = w.begin_split("train")?;
/// for (meta, inputs, targets) in &rows {
///     s.push(meta, inputs, None, targets)?;
/// }
/// s.finish()?;
/// // ... the other declared splits ...
/// w.finish()?;
/// # Ok(()) }
/// ```
pub struct DatasetWriter {
    dir: PathBuf,
    manifest: Manifest,
    input_stats: StatsAccumulator,
    target_stats: StatsAccumulator,
    finished: Vec<String>,
    /// One writer per dataset directory, for the writer's life.
    _lock: OutputLock,
}

impl DatasetWriter {
    /// Validates `manifest`, locks `dir` (another writer gets [`Error::Busy`]) and prepares it: a non-empty
    /// directory is refused with [`Error::Exists`] unless `force`; with `force` the old manifest and stats are
    /// removed first (so the directory is not a valid dataset until this writer finishes) and dataset files are
    /// overwritten; unrelated files are left alone.
    pub fn create(dir: &Path, manifest: Manifest, force: bool) -> Result<Self> {
        manifest.validate(&dir.join(MANIFEST_FILE))?;
        let lock = OutputLock::directory(dir, "generate")?;
        prepare_dir(dir, force)?;
        Ok(DatasetWriter {
            dir: dir.to_path_buf(),
            input_stats: StatsAccumulator::new(&manifest.channels.inputs),
            target_stats: StatsAccumulator::new(&manifest.channels.targets),
            manifest,
            finished: Vec::new(),
            _lock: lock,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Starts writing the declared split `name`.
    pub fn begin_split(&mut self, name: &str) -> Result<SplitWriter<'_>> {
        let info = self.manifest.split(name).cloned().ok_or_else(|| {
            Error::invalid(
                self.dir.display().to_string(),
                format!("split '{name}' is not declared in the manifest"),
            )
        })?;
        if self.finished.contains(&info.name) {
            return Err(Error::invalid(
                self.dir.display().to_string(),
                format!("split '{name}' written twice"),
            ));
        }
        let split_dir = self.dir.join(name);
        fs::create_dir_all(&split_dir).map_err(|e| Error::io(&split_dir, e))?;
        let n = self.manifest.geometry.n_pix;
        let shape = |c: usize| [info.n_clusters, c, n, n];
        let ch = &self.manifest.channels;
        let inputs = NpyF32Writer::create(
            &split_dir.join(ArrayKind::Inputs.file_name()),
            &shape(ch.inputs.len()),
        )?;
        let targets = NpyF32Writer::create(
            &split_dir.join(ArrayKind::Targets.file_name()),
            &shape(ch.targets.len()),
        )?;
        let inputs_clean = match &ch.inputs_clean {
            Some(c) => Some(NpyF32Writer::create(
                &split_dir.join(ArrayKind::InputsClean.file_name()),
                &shape(c.len()),
            )?),
            None => None,
        };
        Ok(SplitWriter {
            info,
            dir: split_dir,
            inputs,
            targets,
            inputs_clean,
            meta: Vec::new(),
            parent: self,
        })
    }

    /// Checks every declared split was written, then writes `stats.json` and finally `manifest.toml`.
    pub fn finish(self) -> Result<NormStats> {
        if let Some(missing) = self
            .manifest
            .splits
            .iter()
            .find(|s| !self.finished.contains(&s.name))
        {
            return Err(Error::invalid(
                self.dir.display().to_string(),
                format!("split '{}' declared but never written", missing.name),
            ));
        }
        let stats = norm_stats(&self.input_stats, &self.target_stats)?;
        save_stats(&self.dir, &stats)?;
        self.manifest.save(&self.dir)?;
        Ok(stats)
    }
}

/// Refuses a non-empty directory (our own lock file aside) without `force`; with it, removes the files that mark a
/// complete dataset.
fn prepare_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() {
        let mut entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        if entries.any(|e| e.map_or(true, |e| e.file_name() != LOCK_FILE)) {
            if !force {
                return Err(Error::Exists(dir.to_path_buf()));
            }
            for f in [MANIFEST_FILE, STATS_FILE] {
                let p = dir.join(f);
                if p.exists() {
                    fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                }
            }
        }
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Writes `stats.json` atomically (pretty JSON, trailing newline).
pub fn save_stats(dir: &Path, stats: &NormStats) -> Result<()> {
    let path = dir.join(STATS_FILE);
    let mut text =
        serde_json::to_string_pretty(stats).map_err(|e| Error::format(&path, e.to_string()))?;
    text.push('\n');
    write_atomic(&path, text.as_bytes())
}

/// Streams one split; see [`DatasetWriter`]. Dropping it unfinished removes its temporary files.
pub struct SplitWriter<'a> {
    parent: &'a mut DatasetWriter,
    info: SplitInfo,
    dir: PathBuf,
    inputs: NpyF32Writer,
    targets: NpyF32Writer,
    inputs_clean: Option<NpyF32Writer>,
    meta: Vec<ClusterMeta>,
}

impl SplitWriter<'_> {
    /// Appends cluster number `meta.index` (must equal the number of clusters pushed so far). Arrays are
    /// `[C, H, W]` in physical units; `inputs_clean` must be given exactly when the manifest declares it.
    pub fn push(
        &mut self,
        meta: &ClusterMeta,
        inputs: &[f32],
        inputs_clean: Option<&[f32]>,
        targets: &[f32],
    ) -> Result<()> {
        let row = self.meta.len();
        if meta.index != row as u64 {
            return Err(Error::invalid(
                self.dir.display().to_string(),
                format!(
                    "cluster pushed with index {} at row {row}; rows must be in index order",
                    meta.index
                ),
            ));
        }
        self.inputs.push_row(inputs)?;
        self.targets.push_row(targets)?;
        match (&mut self.inputs_clean, inputs_clean) {
            (Some(w), Some(x)) => w.push_row(x)?,
            (None, None) => {}
            (w, _) => {
                return Err(Error::invalid(
                    self.dir.display().to_string(),
                    format!(
                        "row {row}: clean inputs {} but the manifest {} them",
                        if w.is_some() { "missing" } else { "given" },
                        if w.is_some() {
                            "declares"
                        } else {
                            "does not declare"
                        }
                    ),
                ))
            }
        }
        if self.info.name == "train" {
            self.parent.input_stats.push_cluster(inputs);
            self.parent.target_stats.push_cluster(targets);
        }
        self.meta.push(meta.clone());
        Ok(())
    }

    /// Number of clusters pushed so far.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Renames the arrays into place and writes `meta.csv`; errors if fewer clusters than declared were pushed.
    pub fn finish(self) -> Result<()> {
        let SplitWriter {
            parent,
            info,
            dir,
            inputs,
            targets,
            inputs_clean,
            meta,
        } = self;
        if meta.len() != info.n_clusters {
            return Err(Error::invalid(
                dir.display().to_string(),
                format!(
                    "{}: {} clusters written, manifest declares {}",
                    info.name,
                    meta.len(),
                    info.n_clusters
                ),
            ));
        }
        inputs.finish()?;
        targets.finish()?;
        match inputs_clean {
            Some(w) => w.finish()?,
            None => {
                // A forced overwrite of a realistic dataset by a clean one must not leave stale clean inputs.
                let stale = dir.join(ArrayKind::InputsClean.file_name());
                if stale.exists() {
                    fs::remove_file(&stale).map_err(|e| Error::io(&stale, e))?;
                }
            }
        }
        write_meta_csv(&dir.join(META_FILE), &meta)?;
        parent.finished.push(info.name);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading and validation
// ---------------------------------------------------------------------------------------------------------------

/// How much [`Dataset::open_with`] checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// Read every pixel: finiteness (rule 5), positivity (6), unit plausibility (7), and recompute the training
    /// statistics (9). Without it only structure is checked (rules 1–4, 8), which is fast at any size.
    pub scan_pixels: bool,
    /// Unit-plausibility findings (rule 7) become errors instead of warnings.
    pub strict: bool,
    /// Accept `stats.json` without comparing it to a recomputation.
    pub trust_stats: bool,
    /// With `scan_pixels`: the splits whose pixels are read (empty: all). The train split's statistics are
    /// recomputed whenever they are compared, whether listed or not.
    pub scan_splits: &'static [&'static str],
}

impl OpenOptions {
    /// Structure checks only (and `stats.json` read as stored, after a sanity check of its values): how sampling
    /// opens a dataset; the rows it samples are then checked by [`Dataset::check_rows`] with the same rules.
    pub const STRUCTURE_ONLY: OpenOptions = OpenOptions {
        scan_pixels: false,
        strict: false,
        trust_stats: true,
        scan_splits: &[],
    };

    /// What `clustermaps train` checks: every pixel of the splits it reads (train, val) by the rules of
    /// `info --check`, and `stats.json` against a recomputation from train.
    pub const TRAINING: OpenOptions = OpenOptions {
        scan_pixels: true,
        strict: false,
        trust_stats: false,
        scan_splits: &["train", "val"],
    };
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            scan_pixels: true,
            strict: false,
            trust_stats: false,
            scan_splits: &[],
        }
    }
}

/// A validated dataset. Arrays stay on disk; read a whole split with [`Dataset::read`] or one cluster with
/// [`Dataset::read_cluster`].
#[derive(Debug, Clone)]
pub struct Dataset {
    dir: PathBuf,
    pub manifest: Manifest,
    pub stats: NormStats,
    splits: Vec<Split>,
    warnings: Vec<String>,
}

/// One split's metadata and file locations.
#[derive(Debug, Clone)]
pub struct Split {
    pub name: String,
    pub n_clusters: usize,
    pub meta: Vec<ClusterMeta>,
    pub has_inputs_clean: bool,
    dir: PathBuf,
}

impl Split {
    /// Path of one of the split's arrays.
    pub fn path(&self, kind: ArrayKind) -> PathBuf {
        self.dir.join(kind.file_name())
    }
}

/// A `[N, C, H, W]` f32 array in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Array4 {
    pub data: Vec<f32>,
    pub shape: [usize; 4],
}

impl Dataset {
    // Opening (`Dataset::open`, `Dataset::open_with`) lives in `validate.rs`, beside the rules it applies.

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Non-fatal findings (f8 arrays converted, recomputed stats, unit plausibility without `strict`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn splits(&self) -> &[Split] {
        &self.splits
    }

    /// The split called `name`.
    pub fn split(&self, name: &str) -> Result<&Split> {
        self.splits.iter().find(|s| s.name == name).ok_or_else(|| {
            Error::invalid(
                self.dir.display().to_string(),
                format!(
                    "no split '{name}' (the dataset has {})",
                    self.splits
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// Metadata rows of a split, in array order.
    pub fn meta(&self, split: &str) -> Result<&[ClusterMeta]> {
        Ok(&self.split(split)?.meta)
    }

    /// Channel declarations of an array kind.
    pub fn channels(&self, kind: ArrayKind) -> &[ChannelSpec] {
        let ch = &self.manifest.channels;
        match kind {
            ArrayKind::Inputs => &ch.inputs,
            ArrayKind::Targets => &ch.targets,
            ArrayKind::InputsClean => ch.inputs_clean.as_deref().unwrap_or(&ch.inputs),
        }
    }

    /// A streaming reader over one array of a split (one cluster per row).
    pub fn reader(&self, split: &str, kind: ArrayKind) -> Result<NpyReader> {
        let s = self.split(split)?;
        if kind == ArrayKind::InputsClean && !s.has_inputs_clean {
            return Err(Error::MissingFile(s.path(kind)));
        }
        NpyReader::open(&s.path(kind))
    }

    /// A whole array of a split, in physical units.
    pub fn read(&self, split: &str, kind: ArrayKind) -> Result<Array4> {
        let r = self.reader(split, kind)?;
        let shape = array_shape(&r)?;
        Ok(Array4 {
            data: r.read_all()?,
            shape,
        })
    }

    /// The `[C, H, W]` array of cluster `index` of a split (reads only that cluster).
    pub fn read_cluster(&self, split: &str, kind: ArrayKind, index: usize) -> Result<Vec<f32>> {
        let mut r = self.reader(split, kind)?;
        if index >= r.rows() {
            return Err(Error::invalid(
                r.path().display().to_string(),
                format!("cluster {index} out of range ({} clusters)", r.rows()),
            ));
        }
        r.seek_row(index)?;
        let mut out = Vec::new();
        r.read_row(&mut out)?;
        Ok(out)
    }
}

fn array_shape(r: &NpyReader) -> Result<[usize; 4]> {
    r.shape().try_into().map_err(|_| Error::Shape {
        what: r.path().display().to_string(),
        got: r.shape().to_vec(),
        expected: "rank 4 [N,C,H,W]".to_string(),
    })
}

/// Reads `stats.json` from `dir`, if present, and checks its values ([`NormStats::check`]).
pub fn load_stats(dir: &Path) -> Result<Option<NormStats>> {
    let path = dir.join(STATS_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = read_text(&path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let stats: NormStats =
        serde_json::from_str(text).map_err(|e| Error::format(&path, e.to_string()))?;
    stats
        .check()
        .map_err(|e| Error::invalid(path.display().to_string(), e))?;
    Ok(Some(stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::transform::Transform;

    fn manifest() -> Manifest {
        let mut m = Manifest::imported(
            "t",
            MapGeometry::new(4, 5000.0),
            ChannelSpec::mock_clean_inputs(),
            ChannelSpec::mock_targets(),
            &[("train", 2), ("test", 1)],
        );
        m.source.mock = Some(MockConfig::default());
        m.source.obs = Some(ObsConfig::realistic());
        m.cosmology = Some(Cosmology::default());
        m.channels.inputs[0].transform = Transform::Slog10 { softening: 2.5e-6 };
        m
    }

    #[test]
    fn manifest_toml_round_trip() {
        let m = manifest();
        let text = toml::to_string(&m).unwrap();
        assert!(text.contains("[[channels.inputs]]"), "{text}");
        assert!(text.contains("[[splits]]"), "{text}");
        let back: Manifest = toml::from_str(&text).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn manifest_rules() {
        let p = Path::new("data/x/manifest.toml");
        let mut m = manifest();
        m.geometry.pixel_kpc = 39.0625;
        let e = m.validate(p).unwrap_err().to_string();
        assert!(
            e.contains("pixel_kpc 39.0625 × n_pix 4 = 156.25 kpc, but side_kpc = 5000 kpc"),
            "{e}"
        );
        let mut m = manifest();
        m.schema = "v0".into();
        assert!(m
            .validate(p)
            .unwrap_err()
            .to_string()
            .contains("unknown schema 'v0'"));
        let mut m = manifest();
        m.splits.remove(0);
        assert!(m
            .validate(p)
            .unwrap_err()
            .to_string()
            .contains("'train' split is required"));
    }

    #[test]
    fn non_empty_dir_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x"), b"keep").unwrap();
        let e = DatasetWriter::create(dir.path(), manifest(), false)
            .err()
            .unwrap();
        assert!(matches!(e, Error::Exists(_)), "{e}");
        DatasetWriter::create(dir.path(), manifest(), true).unwrap();
        assert!(dir.path().join("x").exists(), "unrelated files are kept");
    }
}
