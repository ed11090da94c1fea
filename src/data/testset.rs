//! The fixed test set, regenerated in memory (docs/mock-clusters.md §8): what `clustermaps reproduce` evaluates on.
//!
//! Test cluster `i` is `Cluster::from_seed(cluster_seed(TEST_SEED, i))` in every preset, so the first `n` clusters
//! of the test split are the same whether the full split or a prefix is rendered, and no dataset needs to be on
//! disk: a user with only the shipped checkpoint can regenerate exactly the clusters the committed figures were
//! made from. [`TestSet::fingerprint`] hashes the arrays and metadata so a test can check that the regenerated
//! set is the committed one, byte for byte.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::dataset::MapGeometry;
use super::generate::{DatasetPreset, DatasetSpec};
use super::meta::ClusterMeta;
use super::transform::ChannelSpec;
use crate::{Error, Result};

/// Clusters `first..first + n` of a preset's test split, in physical units.
#[derive(Debug, Clone)]
pub struct TestSet {
    /// The preset the clusters were rendered with (map size, observation model, physics).
    pub preset: DatasetPreset,
    /// Index of the first cluster within the test split.
    pub first: usize,
    pub meta: Vec<ClusterMeta>,
    /// `[N, C_in, H, W]`: observed SZ (Compton-y) and X-ray surface brightness.
    pub inputs: Vec<f32>,
    /// `[N, C_out, H, W]`: projected gas and DM surface densities.
    pub targets: Vec<f32>,
    pub geometry: MapGeometry,
    pub input_channels: Vec<ChannelSpec>,
    pub target_channels: Vec<ChannelSpec>,
}

impl TestSet {
    /// Renders test clusters `first..first + n` of `preset` (clean observations, default physics) with `threads`
    /// worker threads (0 = all cores); `progress(done, n)` is called after each cluster, from the workers.
    pub fn generate(
        preset: DatasetPreset,
        first: usize,
        n: usize,
        threads: usize,
        progress: impl Fn(usize, usize) + Sync,
    ) -> Result<TestSet> {
        let spec = DatasetSpec::preset(preset);
        let available = spec.sizes[2];
        if n == 0 || first.checked_add(n).is_none_or(|end| end > available) {
            return Err(Error::Config(format!(
                "asked for test clusters {first}..{} of preset {preset}, whose test split has {available}",
                first.saturating_add(n)
            )));
        }
        let plan = spec.splits()[2].clone();
        crate::resources::check_threads("--threads", threads)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Config(format!("cannot start {threads} worker threads: {e}")))?;
        let done = AtomicUsize::new(0);
        let rendered: Vec<_> = pool.install(|| {
            (first..first + n)
                .into_par_iter()
                .map(|i| {
                    let r = spec.render(&plan, i);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, n);
                    r
                })
                .collect()
        });
        let manifest = spec.manifest();
        Ok(TestSet {
            preset,
            first,
            meta: rendered.iter().map(|r| r.meta.clone()).collect(),
            inputs: rendered
                .iter()
                .flat_map(|r| r.inputs.iter().copied())
                .collect(),
            targets: rendered
                .iter()
                .flat_map(|r| r.targets.iter().copied())
                .collect(),
            geometry: manifest.geometry,
            input_channels: manifest.channels.inputs,
            target_channels: manifest.channels.targets,
        })
    }

    pub fn len(&self) -> usize {
        self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// A 64-bit FNV-1a hash (hex) of the inputs, targets (f32 bits, little endian) and metadata (JSON): equal
    /// fingerprints mean byte-identical test sets. FNV is no cryptographic hash; it only has to notice change.
    pub fn fingerprint(&self) -> String {
        let mut h = Fnv1a::default();
        for v in self.inputs.iter().chain(&self.targets) {
            h.write(&v.to_le_bytes());
        }
        for m in &self.meta {
            h.write(serde_json::to_string(m).unwrap_or_default().as_bytes());
        }
        format!("{:016x}", h.0)
    }
}

/// 64-bit FNV-1a.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_the_same_clusters_and_threads_do_not_matter() {
        let all = TestSet::generate(DatasetPreset::Tiny, 0, 3, 2, |_, _| {}).unwrap();
        let tail = TestSet::generate(DatasetPreset::Tiny, 1, 2, 1, |_, _| {}).unwrap();
        let plane = all.inputs.len() / 3;
        assert_eq!(&all.inputs[plane..], &tail.inputs[..]);
        assert_eq!(all.meta[1], tail.meta[0]);
        assert_eq!(all.meta[0].id, super::super::generate::ID_OFFSET_TEST);
        let again = TestSet::generate(DatasetPreset::Tiny, 0, 3, 1, |_, _| {}).unwrap();
        assert_eq!(all.fingerprint(), again.fingerprint());
        assert_ne!(all.fingerprint(), tail.fingerprint());
    }

    #[test]
    fn out_of_range_requests_are_refused() {
        let e = TestSet::generate(DatasetPreset::Tiny, 6, 3, 1, |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("test split has 8"), "{e}");
    }
}
