//! [`Evaluation::write`]: an evaluation as files, `evaluation.json`, `claims.json` and the `.npy` arrays listed in
//! the docs of [`crate::metrics`].

use std::path::{Path, PathBuf};

use super::report::{Evaluation, ProfileReport};
use crate::io::{write_atomic, write_npy};
use crate::{Error, Result};

impl Evaluation {
    /// Writes `evaluation.json`, `claims.json` and the `.npy` arrays listed in the module doc into `dir` (created
    /// if needed; existing files of the same names are replaced). Returns the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut written = Vec::new();
        let mut json =
            |name: &str, text: std::result::Result<String, serde_json::Error>| -> Result<()> {
                let path = dir.join(name);
                let text =
                    text.map_err(|e| Error::Config(format!("{name}: JSON encoding failed: {e}")))?;
                write_atomic(&path, format!("{text}\n").as_bytes())?;
                written.push(path);
                Ok(())
            };
        json("evaluation.json", serde_json::to_string_pretty(self))?;
        json("claims.json", serde_json::to_string_pretty(&self.claims()?))?;

        let (n, s, c) = (self.n_clusters, self.n_samples, self.channels.len());
        let b2 = self.profiles_r200c.edges.len() - 1;
        let bk = self.profiles_kpc.edges.len() - 1;
        let nk = self.spectra.bins.len();
        let g = self.groups.len();
        let pc = &self.per_cluster;
        let profile_stats = |rep: &ProfileReport| -> Vec<f64> {
            rep.rows
                .iter()
                .flat_map(|r| {
                    [&r.truth, &r.samples, &r.mean_map]
                        .into_iter()
                        .flat_map(|b| b.flat())
                })
                .collect()
        };
        let spectra_stats: Vec<f64> = self
            .spectra
            .rows
            .iter()
            .flat_map(|r| {
                [&r.truth, &r.samples, &r.mean_map, &r.bias, &r.corr]
                    .into_iter()
                    .flat_map(|b| b.flat())
            })
            .collect();
        let arrays: Vec<(&str, &[f64], Vec<usize>)> = vec![
            (
                "profiles_r200c_edges.npy",
                &self.profiles_r200c.edges,
                vec![b2 + 1],
            ),
            (
                "profiles_kpc_edges.npy",
                &self.profiles_kpc.edges,
                vec![bk + 1],
            ),
            (
                "profiles_r200c_truth.npy",
                &pc.profiles_r200c_truth,
                vec![n, c, b2],
            ),
            (
                "profiles_r200c_samples.npy",
                &pc.profiles_r200c_samples,
                vec![n, s, c, b2],
            ),
            (
                "profiles_kpc_truth.npy",
                &pc.profiles_kpc_truth,
                vec![n, c, bk],
            ),
            (
                "profiles_kpc_samples.npy",
                &pc.profiles_kpc_samples,
                vec![n, s, c, bk],
            ),
            ("spectra_k.npy", &self.spectra.bins.k_eff, vec![nk]),
            ("spectra_edges.npy", &self.spectra.bins.edges, vec![nk + 1]),
            ("spectra_truth.npy", &pc.power_truth, vec![n, c, nk]),
            ("spectra_samples.npy", &pc.power_samples, vec![n, s, c, nk]),
            ("spectra_cross.npy", &pc.cross, vec![n, s, c, nk]),
            ("spectra_mean_map.npy", &pc.power_mean_map, vec![n, c, nk]),
            (
                "spectra_cross_mean_map.npy",
                &pc.cross_mean_map,
                vec![n, c, nk],
            ),
            (
                "apertures_radii_kpc.npy",
                &pc.aperture_radii_kpc,
                vec![n, 2],
            ),
            ("apertures_truth.npy", &pc.apertures_truth, vec![n, c, 2]),
            (
                "apertures_samples.npy",
                &pc.apertures_samples,
                vec![n, s, c, 2],
            ),
        ];
        let stats: Vec<(&str, Vec<f64>, Vec<usize>)> = vec![
            (
                "profiles_r200c_stats.npy",
                profile_stats(&self.profiles_r200c),
                vec![g, c, 3, 4, b2],
            ),
            (
                "profiles_kpc_stats.npy",
                profile_stats(&self.profiles_kpc),
                vec![g, c, 3, 4, bk],
            ),
            ("spectra_stats.npy", spectra_stats, vec![g, c, 5, 4, nk]),
        ];
        for (name, data, shape) in arrays
            .into_iter()
            .chain(stats.iter().map(|(n, d, s)| (*n, d.as_slice(), s.clone())))
        {
            let path = dir.join(name);
            write_npy(&path, data, &shape)?;
            written.push(path);
        }
        Ok(written)
    }
}
