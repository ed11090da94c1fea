//! Mock dataset generation (docs/mock-clusters.md §3, §8): render every cluster of every split in parallel and stream
//! the results to disk in index order through [`DatasetWriter`].
//!
//! Reproducibility: cluster `i` of a split with master seed `S` is `Cluster::from_seed(cluster_seed(S, i))`, a
//! pure function; clusters are rendered in parallel in chunks but placed by index and written (and reduced into
//! the statistics) sequentially, and nothing thread- or time-dependent enters any file. The output is therefore
//! byte-identical for any thread count.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use super::config::{MockConfig, SPEC_VERSION};
use super::dataset::{
    Channels, DatasetWriter, Manifest, MapGeometry, Source, SourceKind, SplitInfo, SCHEMA,
};
use super::mock::{Cluster, Grid, RenderedCluster};
use super::observe::ObsConfig;
use super::rng::cluster_seed;
use super::transform::ChannelSpec;
use crate::resources::MemoryEstimate;
use crate::{Error, Result};

/// Master seed of the test split, fixed for every preset and independent of `--seed` (docs/mock-clusters.md §8), so
/// test clusters, figures and metrics are reproducible across presets. (The arXiv number of the paper.)
pub const TEST_SEED: u64 = 2_410_028_570;

/// Cluster ids are `id_offset + index`, with a per-split offset far above any split size, so ids are unique
/// across splits and a test cluster keeps its id in every preset.
pub const ID_OFFSET_TRAIN: u64 = 0;
pub const ID_OFFSET_VAL: u64 = 1_000_000_000;
pub const ID_OFFSET_TEST: u64 = 2_000_000_000;

/// Clusters rendered per parallel batch: bounds memory (≈ 100 MB at 128² with clean inputs) while keeping
/// every thread busy.
const CHUNK: usize = 256;

/// Largest map side the generator renders (the paper's maps are 128²).
pub const MAX_N_PIX: usize = 8192;

/// Dataset presets of docs/mock-clusters.md §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetPreset {
    /// 48 / 8 / 8 clusters at 32² (tests and CI; `--n-pix 16` allowed).
    Tiny,
    /// 1000 / 200 / 200 at 64².
    Dev,
    /// 8000 / 1000 / 1000 at 64² (paper runs).
    Full64,
    /// 8000 / 1000 / 1000 at 128².
    Full128,
}

impl DatasetPreset {
    pub const ALL: [DatasetPreset; 4] = [
        DatasetPreset::Tiny,
        DatasetPreset::Dev,
        DatasetPreset::Full64,
        DatasetPreset::Full128,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DatasetPreset::Tiny => "tiny",
            DatasetPreset::Dev => "dev",
            DatasetPreset::Full64 => "full64",
            DatasetPreset::Full128 => "full128",
        }
    }

    /// (train, val, test) sizes.
    pub fn sizes(self) -> [usize; 3] {
        match self {
            DatasetPreset::Tiny => [48, 8, 8],
            DatasetPreset::Dev => [1000, 200, 200],
            DatasetPreset::Full64 | DatasetPreset::Full128 => [8000, 1000, 1000],
        }
    }

    pub fn n_pix(self) -> usize {
        match self {
            DatasetPreset::Tiny => 32,
            DatasetPreset::Dev | DatasetPreset::Full64 => 64,
            DatasetPreset::Full128 => 128,
        }
    }
}

impl std::str::FromStr for DatasetPreset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown dataset preset '{s}' (expected {})",
                    Self::ALL.map(|p| p.name()).join(", ")
                )
            })
    }
}

impl std::fmt::Display for DatasetPreset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One split to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPlan {
    pub name: &'static str,
    pub n_clusters: usize,
    /// Master seed S of the split; cluster i has seed `cluster_seed(S, i)`.
    pub master_seed: u64,
    pub id_offset: u64,
}

/// Everything that determines a mock dataset's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    /// Name written into the manifest (the preset's name).
    pub name: String,
    /// Train, val, test sizes.
    pub sizes: [usize; 3],
    pub n_pix: usize,
    /// Train master seed; val uses seed + 1; test always [`TEST_SEED`].
    pub seed: u64,
    pub obs: ObsConfig,
    pub mock: MockConfig,
}

impl DatasetSpec {
    /// A preset with the default seed (1), clean observations and the default physics.
    pub fn preset(p: DatasetPreset) -> Self {
        DatasetSpec {
            name: p.name().to_string(),
            sizes: p.sizes(),
            n_pix: p.n_pix(),
            seed: 1,
            obs: ObsConfig::clean(),
            mock: MockConfig::default(),
        }
    }

    /// The three splits with their seeds and id offsets (docs/mock-clusters.md §8).
    pub fn splits(&self) -> [SplitPlan; 3] {
        let plan = |name, n_clusters, master_seed, id_offset| SplitPlan {
            name,
            n_clusters,
            master_seed,
            id_offset,
        };
        [
            plan("train", self.sizes[0], self.seed, ID_OFFSET_TRAIN),
            plan(
                "val",
                self.sizes[1],
                self.seed.wrapping_add(1),
                ID_OFFSET_VAL,
            ),
            plan("test", self.sizes[2], TEST_SEED, ID_OFFSET_TEST),
        ]
    }

    pub fn grid(&self) -> Grid {
        Grid::new(self.n_pix, self.mock.side_kpc)
    }

    /// Pixel side in arcmin at the clusters' redshift.
    pub fn pixel_arcmin(&self) -> f64 {
        self.grid().pixel_kpc() / self.mock.cosmology.kpc_per_arcmin(self.mock.z)
    }

    /// Rejects specs that would give an unusable or self-overlapping dataset, or that the manifest could not
    /// record (seeds above 2^63 − 1, which TOML cannot hold): before any cluster is rendered.
    pub fn validate(&self) -> Result<()> {
        self.mock.validate()?;
        self.obs.validate()?;
        crate::resources::at_most("n_pix", self.n_pix, MAX_N_PIX)?;
        if self.seed >= i64::MAX as u64 {
            return Err(Error::Config(format!(
                "seed {} too large: the train and val seeds (seed, seed + 1) must stay below 2^63, the largest \
                 integer the manifest (TOML) holds",
                self.seed
            )));
        }
        if self.n_pix < 2 || !self.n_pix.is_multiple_of(2) {
            return Err(Error::Config(format!(
                "n_pix must be even and ≥ 2 (the cluster sits on the corner of the four central pixels), got {}",
                self.n_pix
            )));
        }
        if self.sizes[0] == 0 {
            return Err(Error::Config("the train split must not be empty".into()));
        }
        if let Some(s) = self.sizes.iter().find(|&&n| n as u64 >= ID_OFFSET_VAL) {
            return Err(Error::Config(format!(
                "split size {s} too large: ids are split offset + index with offsets {ID_OFFSET_VAL} apart"
            )));
        }
        let [train, val, _] = self.splits();
        if train.master_seed == TEST_SEED || val.master_seed == TEST_SEED {
            return Err(Error::Config(format!(
                "seed {} would make train or val reuse the fixed test seed {TEST_SEED}",
                self.seed
            )));
        }
        Ok(())
    }

    /// Peak memory of [`generate_dataset`] with `threads` workers (0 = one per core): each worker's scratch maps
    /// (f64, over the map padded for the widest beam) and random-field grid, one chunk of rendered clusters
    /// waiting to be written, and the statistics histograms. Measured peak RSS at 64²–512² (tiny preset, clean
    /// and realistic, 1 and 2 threads) lies 10–50 % below it.
    pub fn memory_estimate(&self, threads: usize) -> MemoryEstimate {
        const MIB: f64 = (1u64 << 20) as f64;
        let threads = if threads == 0 {
            crate::resources::cores()
        } else {
            threads
        } as f64;
        let n = self.n_pix as f64;
        let pad = self.obs.padding_px(self.pixel_arcmin()) as f64;
        let padded = (n + 2.0 * pad).powi(2);
        let cells = (self.mock.numerics.field_cells as f64).powi(2);
        let m = self.manifest();
        let ch = &m.channels;
        let channels =
            ch.inputs.len() + ch.targets.len() + ch.inputs_clean.as_ref().map_or(0, |c| c.len());
        let chunk = self.sizes.iter().max().copied().unwrap_or(0).min(CHUNK) as f64;
        let mut e = MemoryEstimate::new();
        e.add("program and buffers", 16.0 * MIB);
        e.add(
            "statistics histograms",
            (ch.inputs.len() + ch.targets.len()) as f64 * 2.0 * MIB,
        );
        e.add(
            format!("{threads} workers' scratch maps"),
            threads * (160.0 * padded + 48.0 * cells + 4.0 * MIB),
        );
        e.add(
            format!("{chunk} rendered clusters"),
            chunk * channels as f64 * n * n * 4.0,
        );
        e
    }

    /// The manifest of the dataset this spec produces.
    pub fn manifest(&self) -> Manifest {
        let mut geometry = MapGeometry::new(self.n_pix, self.mock.side_kpc);
        geometry.z = Some(self.mock.z);
        geometry.pixel_arcmin = Some(self.pixel_arcmin());
        let clean_obs = self.obs.is_clean();
        Manifest {
            schema: SCHEMA.to_string(),
            name: self.name.clone(),
            geometry,
            channels: Channels {
                inputs: ChannelSpec::mock_inputs(&self.obs, self.pixel_arcmin()),
                targets: ChannelSpec::mock_targets(),
                inputs_clean: (!clean_obs).then(ChannelSpec::mock_clean_inputs),
            },
            splits: self
                .splits()
                .iter()
                .map(|p| SplitInfo {
                    name: p.name.to_string(),
                    n_clusters: p.n_clusters,
                    seed: Some(p.master_seed),
                    id_offset: Some(p.id_offset),
                })
                .collect(),
            source: Source {
                kind: SourceKind::Mock,
                generator_version: env!("CARGO_PKG_VERSION").to_string(),
                spec_version: Some(SPEC_VERSION.to_string()),
                preset: Some(self.name.clone()),
                obs_preset: Some(self.obs.preset),
                obs: Some(self.obs.clone()),
                mock: Some(self.mock.clone()),
                description: None,
            },
            cosmology: Some(self.mock.cosmology.clone()),
        }
    }

    /// Renders cluster `index` of `plan` with its dataset index, id and seed filled in: a pure function of
    /// (spec, split, index), so any single cluster can be regenerated without the rest of the dataset.
    pub fn render(&self, plan: &SplitPlan, index: usize) -> RenderedCluster {
        let seed = cluster_seed(plan.master_seed, index as u64);
        let mut r = Cluster::from_seed(seed, &self.mock).render(self.n_pix, &self.obs);
        r.meta.index = index as u64;
        r.meta.id = plan.id_offset + index as u64;
        r.meta.seed = Some(seed);
        r
    }
}

/// What [`generate_dataset`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSummary {
    pub clusters: usize,
    pub seconds: f64,
    pub clusters_per_s: f64,
}

/// Generates the dataset `spec` into `out_dir` with `threads` worker threads (0 = all cores).
///
/// Refuses a non-empty `out_dir` unless `force` ([`Error::Exists`]). `progress(done, total)` is called from the
/// worker threads after each rendered cluster (in no particular order; `done` is a running count over all
/// splits). Memory stays bounded: clusters are rendered in chunks of a few hundred and streamed to disk.
pub fn generate_dataset(
    spec: &DatasetSpec,
    out_dir: &Path,
    threads: usize,
    force: bool,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<GenerateSummary> {
    spec.validate()?;
    crate::resources::check_threads("--threads", threads)?;
    crate::resources::check_memory(
        &format!("generating {} at {}²", spec.name, spec.n_pix),
        &spec.memory_estimate(threads),
        "use a smaller --n-pix or fewer --threads",
    )?;
    let start = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Config(format!("cannot start {threads} worker threads: {e}")))?;
    let mut writer = DatasetWriter::create(out_dir, spec.manifest(), force)?;
    let total: usize = spec.sizes.iter().sum();
    let done = AtomicUsize::new(0);
    for plan in spec.splits() {
        let mut split = writer.begin_split(plan.name)?;
        for lo in (0..plan.n_clusters).step_by(CHUNK) {
            let hi = (lo + CHUNK).min(plan.n_clusters);
            let rendered: Vec<RenderedCluster> = pool.install(|| {
                (lo..hi)
                    .into_par_iter()
                    .map(|i| {
                        let r = spec.render(&plan, i);
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                        r
                    })
                    .collect()
            });
            for r in &rendered {
                split.push(&r.meta, &r.inputs, r.inputs_clean.as_deref(), &r.targets)?;
            }
        }
        split.finish()?;
    }
    writer.finish()?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(GenerateSummary {
        clusters: total,
        seconds,
        clusters_per_s: total as f64 / seconds.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_spec() {
        let t = DatasetSpec::preset(DatasetPreset::Tiny);
        assert_eq!((t.sizes, t.n_pix), ([48, 8, 8], 32));
        assert_eq!("full128".parse::<DatasetPreset>().unwrap().n_pix(), 128);
        assert!("huge"
            .parse::<DatasetPreset>()
            .unwrap_err()
            .contains("tiny, dev, full64, full128"));
        let mut s = DatasetSpec::preset(DatasetPreset::Dev);
        s.seed = 7;
        let [tr, va, te] = s.splits();
        assert_eq!(
            (tr.master_seed, va.master_seed, te.master_seed),
            (7, 8, TEST_SEED)
        );
        assert_eq!(
            (tr.id_offset, va.id_offset, te.id_offset),
            (0, ID_OFFSET_VAL, ID_OFFSET_TEST)
        );
    }

    /// `--n-pix 100000` is refused by its memory estimate (terabytes), `--n-pix 2^40` by the size bound, a seed
    /// above 2^63 before any cluster is rendered; the presets' estimates stay modest.
    #[test]
    fn absurd_sizes_and_seeds_are_refused_up_front() {
        const GIB: f64 = (1u64 << 30) as f64;
        let mut s = DatasetSpec::preset(DatasetPreset::Tiny);
        s.n_pix = 100_000;
        s.validate().unwrap_err();
        assert!(s.memory_estimate(2).total() > 1000.0 * GIB);
        s.n_pix = 1 << 40;
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.contains("n_pix = 1099511627776 is above the limit"),
            "{e}"
        );
        let mut s = DatasetSpec::preset(DatasetPreset::Tiny);
        s.seed = 1 << 63;
        assert!(s.validate().unwrap_err().to_string().contains("2^63"));
        for p in DatasetPreset::ALL {
            let mut s = DatasetSpec::preset(p);
            s.obs = ObsConfig::realistic();
            assert!(
                s.memory_estimate(8).total() < 2.0 * GIB,
                "{p}: {}",
                s.memory_estimate(8)
            );
        }
    }

    #[test]
    fn seeds_colliding_with_test_are_refused() {
        let mut s = DatasetSpec::preset(DatasetPreset::Tiny);
        s.seed = TEST_SEED - 1;
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("fixed test seed"));
        s.seed = 1;
        s.n_pix = 15;
        assert!(s.validate().unwrap_err().to_string().contains("even"));
    }

    #[test]
    fn realistic_manifest_declares_slog10_and_clean_inputs() {
        let mut s = DatasetSpec::preset(DatasetPreset::Full64);
        s.obs = ObsConfig::realistic();
        let m = s.manifest();
        assert_eq!(m.channels.inputs[0].transform.name(), "slog10");
        assert_eq!(m.channels.inputs[1].transform.name(), "slog10");
        // σ_pix ≈ 2.5e-6 at 64² (docs/mock-clusters.md §5).
        let sigma = m.channels.inputs[0].transform.parameter();
        assert!((sigma / 2.53e-6 - 1.0).abs() < 0.02, "{sigma}");
        assert!(m.channels.inputs_clean.is_some());
        m.validate(Path::new("manifest.toml")).unwrap();
        let clean = DatasetSpec::preset(DatasetPreset::Full64).manifest();
        assert_eq!(clean.channels.inputs[0].transform.name(), "log10");
        assert!(clean.channels.inputs_clean.is_none());
    }
}
