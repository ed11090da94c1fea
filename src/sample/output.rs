//! A sample set on disk: `FILE.npy` and its companions `FILE_mean.npy`, `FILE_std.npy`, `FILE_norm.npy`,
//! `FILE_indices.npy` and the record `FILE.json`, written and read as one unit.
//!
//! **Writing** ([`SampleTarget::claim`], then [`SampleResult::write_to`]): the set is claimed before any sampling —
//! locked against a second writer (`FILE.lock`, [`OutputLock`]), refused if it would overwrite an existing set
//! without `force`, refused if it lies inside a dataset or on a checkpoint being read. Every array is then staged
//! under its temp name (`NAME.tmp`); only when all are complete is the old record removed, the arrays renamed into
//! place, and the new record written last. A failure while staging (a full disk) leaves the old set untouched; a
//! crash between the renames leaves arrays without a record, which reads as an incomplete set.
//!
//! **Reading** ([`SampleSet::read`]): the record lists the byte size and SHA-256 of every companion, and every one
//! is checked, so a set mixed from two runs (or a file truncated or replaced since) is an error naming the file.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::run::SampleResult;
use crate::io::files::{remove_if_exists, rename_into_place, stage};
use crate::io::{npy_bytes, read_bytes, read_npy_f32, sha256_hex, write_atomic, OutputLock};
use crate::{Error, Result};

/// The files [`SampleResult::write`] produces for `--out FILE.npy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleOutputs {
    /// `FILE.npy`: samples in physical units, f32 `[N, S, C, H, W]`.
    pub samples: PathBuf,
    /// `FILE_mean.npy`: per-pixel posterior mean over the samples, physical units, f32 `[N, C, H, W]`.
    pub mean: PathBuf,
    /// `FILE_std.npy`: per-pixel posterior standard deviation (population, ddof = 0), f32 `[N, C, H, W]`.
    pub std: PathBuf,
    /// `FILE_norm.npy`: samples in standardized units, f32 `[N, S, C, H, W]`.
    pub norm: PathBuf,
    /// `FILE_indices.npy`: dataset indices of the clusters, f64 `[N]`.
    pub indices: PathBuf,
    /// `FILE.json`: provenance, timing and the sizes and hashes of the other files ([`SampleRecord`]).
    pub json: PathBuf,
}

impl SampleOutputs {
    /// The output files for `out`: `FILE.npy`, `FILE` (to which `.npy` is appended), or an existing directory (or
    /// a path ending in `/`), which gets `samples.npy` and its companions inside.
    pub fn for_path(out: &Path) -> Self {
        let s = out.to_string_lossy();
        let base = if out.is_dir() || s.ends_with('/') {
            out.join("samples").to_string_lossy().into_owned()
        } else {
            s.strip_suffix(".npy").unwrap_or(&s).to_string()
        };
        let p = |suffix: &str| PathBuf::from(format!("{base}{suffix}"));
        SampleOutputs {
            samples: p(".npy"),
            mean: p("_mean.npy"),
            std: p("_std.npy"),
            norm: p("_norm.npy"),
            indices: p("_indices.npy"),
            json: p(".json"),
        }
    }

    /// Every file, samples first, the record last.
    pub fn all(&self) -> [&Path; 6] {
        [
            &self.samples,
            &self.mean,
            &self.std,
            &self.norm,
            &self.indices,
            &self.json,
        ]
    }

    /// `FILE.lock`: the lock file of the set.
    pub fn lock_path(&self) -> PathBuf {
        self.samples.with_extension("lock")
    }

    fn dir(&self) -> &Path {
        self.samples
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }
}

/// Size and SHA-256 of one member of a sample set, as the record lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// File name (no directory: a set can be moved).
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

impl FileDigest {
    fn of(path: &Path, bytes: &[u8]) -> Self {
        FileDigest {
            name: file_name(path),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// The JSON sidecar `FILE.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub checkpoint: String,
    pub step: u64,
    pub sampler: String,
    pub sampler_kind: String,
    pub steps: usize,
    pub nfe: usize,
    pub seed: u64,
    pub split: String,
    pub indices: Vec<usize>,
    pub n_samples: usize,
    /// `[N, S, C, H, W]`.
    pub shape: Vec<usize>,
    pub target_channels: Vec<String>,
    pub max_batch: usize,
    pub device: String,
    pub seconds: f64,
    pub samples_per_s: f64,
    pub outside_training_range: usize,
    pub saturated: usize,
    pub warnings: Vec<String>,
    pub crate_version: String,
    /// The five arrays of the set (samples, mean, std, norm, indices), with sizes and hashes: what makes a mixed
    /// set detectable. Empty in a record that was not written with its files.
    #[serde(default)]
    pub files: Vec<FileDigest>,
}

/// An output set claimed for writing: locked for this process, checked against overwriting and against the inputs.
#[derive(Debug)]
pub struct SampleTarget {
    outputs: SampleOutputs,
    _lock: OutputLock,
}

impl SampleTarget {
    /// Claims the set for `out` ([`SampleOutputs::for_path`]): creates its directory, locks it (a second writer
    /// gets [`Error::Busy`]), refuses a set inside any directory of `inputs` or on any file of `inputs` (the
    /// dataset and checkpoint being read), and refuses to replace an existing member without `force`.
    pub fn claim(out: &Path, force: bool, inputs: &[&Path]) -> Result<Self> {
        let outputs = SampleOutputs::for_path(out);
        let dir = outputs.dir().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let real_dir = dir.canonicalize().map_err(|e| Error::io(&dir, e))?;
        for input in inputs {
            let Ok(real) = input.canonicalize() else {
                continue; // A missing input is reported by whoever reads it.
            };
            let inside = real.is_dir() && real_dir.starts_with(&real);
            let onto = outputs
                .all()
                .iter()
                .any(|p| real_dir.join(file_name(p)) == real);
            if inside || onto {
                return Err(Error::Config(format!(
                    "--out {} would write {} {}, which this command reads; write the samples elsewhere",
                    out.display(),
                    if inside { "inside" } else { "onto" },
                    input.display()
                )));
            }
        }
        let lock = OutputLock::acquire(&outputs.lock_path(), &outputs.samples, "sample")?;
        if !force {
            if let Some(p) = outputs.all().into_iter().find(|p| p.exists()) {
                return Err(Error::FileExists(p.to_path_buf()));
            }
        }
        Ok(SampleTarget {
            outputs,
            _lock: lock,
        })
    }

    pub fn outputs(&self) -> &SampleOutputs {
        &self.outputs
    }
}

impl SampleResult {
    /// The JSON sidecar's content (without file digests; [`SampleResult::write_to`] adds them).
    pub fn record(&self) -> SampleRecord {
        SampleRecord {
            checkpoint: self.checkpoint.display().to_string(),
            step: self.step,
            sampler: self.sampler.clone(),
            sampler_kind: self.sampler_kind.as_str().into(),
            steps: self.steps,
            nfe: self.nfe,
            seed: self.seed,
            split: self.split.clone(),
            indices: self.indices.clone(),
            n_samples: self.shape[1],
            shape: self.shape.to_vec(),
            target_channels: self.target_channels.clone(),
            max_batch: self.max_batch,
            device: self.device.clone(),
            seconds: self.seconds,
            samples_per_s: self.samples_per_s,
            outside_training_range: self.outside_training_range,
            saturated: self.saturated,
            warnings: self.warnings.clone(),
            crate_version: env!("CARGO_PKG_VERSION").into(),
            files: Vec::new(),
        }
    }

    /// Claims `out` ([`SampleTarget::claim`], no inputs to protect) and writes the set there.
    pub fn write(&self, out: &Path, force: bool) -> Result<SampleOutputs> {
        self.write_to(&SampleTarget::claim(out, force, &[])?)
    }

    /// Writes the set of a claimed target as one unit (module docs).
    pub fn write_to(&self, target: &SampleTarget) -> Result<SampleOutputs> {
        let o = target.outputs().clone();
        let (n, _, c, h, w) = self.dims();
        let (mean, std) = self.mean_std();
        let idx: Vec<f64> = self.indices.iter().map(|&i| i as f64).collect();
        // Encoded one at a time, so only one array's bytes are in memory besides the result itself.
        type Encode<'a> = &'a dyn Fn() -> Result<Vec<u8>>;
        let members: [(&PathBuf, Encode); 5] = [
            (&o.samples, &|| {
                npy_bytes(&o.samples, &self.samples, &self.shape)
            }),
            (&o.mean, &|| npy_bytes(&o.mean, &mean, &[n, c, h, w])),
            (&o.std, &|| npy_bytes(&o.std, &std, &[n, c, h, w])),
            (&o.norm, &|| {
                npy_bytes(&o.norm, &self.samples_norm, &self.shape)
            }),
            (&o.indices, &|| npy_bytes(&o.indices, &idx, &[n])),
        ];
        let mut staged: Vec<(PathBuf, &PathBuf)> = Vec::new();
        let mut record = self.record();
        for (path, encode) in members {
            let result = encode().and_then(|b| {
                record.files.push(FileDigest::of(path, &b));
                stage(path, &b)
            });
            match result {
                Ok(tmp) => staged.push((tmp, path)),
                Err(e) => {
                    staged.iter().for_each(|(tmp, _)| remove_if_exists(tmp));
                    return Err(e);
                }
            }
        }
        let json = serde_json::to_string_pretty(&record)
            .map_err(|e| Error::Config(format!("sample record to JSON: {e}")))?;
        // From here the old set is being replaced: without its record it reads as incomplete, never as mixed.
        if o.json.exists() {
            fs::remove_file(&o.json).map_err(|e| Error::io(&o.json, e))?;
        }
        for (tmp, path) in &staged {
            rename_into_place(tmp, path)?;
        }
        write_atomic(&o.json, format!("{json}\n").as_bytes())?;
        Ok(o)
    }
}

/// A sample set read back and verified against its record.
#[derive(Debug, Clone)]
pub struct SampleSet {
    pub outputs: SampleOutputs,
    pub record: SampleRecord,
    /// `[N, S, C, H, W]`, physical units.
    pub samples: Vec<f32>,
    /// `[N, S, C, H, W]`, standardized units.
    pub samples_norm: Vec<f32>,
    /// `[N, C, H, W]` each.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl SampleSet {
    /// Reads the set of `out` (as [`SampleOutputs::for_path`]) and checks that it is one set: the record is
    /// present and lists every array, and each array has the listed size and SHA-256 and the record's shape.
    pub fn read(out: &Path) -> Result<Self> {
        let o = SampleOutputs::for_path(out);
        let text = read_bytes(&o.json).map_err(|e| match e {
            Error::MissingFile(p) => Error::format(
                p,
                "missing: the sample set is incomplete (its writer was interrupted); sample again",
            ),
            e => e,
        })?;
        let record: SampleRecord =
            serde_json::from_slice(&text).map_err(|e| Error::format(&o.json, e.to_string()))?;
        for path in &o.all()[..5] {
            let name = file_name(path);
            let listed =
                record
                    .files
                    .iter()
                    .find(|f| f.name == name)
                    .ok_or_else(|| {
                        Error::format(
                    &o.json,
                    format!("lists no size and hash for {name}: not a complete record of this set"),
                )
                    })?;
            let bytes = read_bytes(path)?;
            let got = FileDigest::of(path, &bytes);
            if got != *listed {
                return Err(Error::format(
                    path,
                    format!(
                        "{} bytes with SHA-256 {}…, but {} records {} bytes with {}…: the file belongs to another \
                         run (a mixed or partly overwritten sample set)",
                        got.bytes,
                        &got.sha256[..12],
                        file_name(&o.json),
                        listed.bytes,
                        &listed.sha256[..listed.sha256.len().min(12)]
                    ),
                ));
            }
        }
        let [n, s, c, h, w]: [usize; 5] = record.shape.clone().try_into().map_err(|_| {
            Error::format(
                &o.json,
                format!("shape {:?} is not [N, S, C, H, W]", record.shape),
            )
        })?;
        let read = |path: &Path, shape: &[usize]| -> Result<Vec<f32>> {
            let (v, got) = read_npy_f32(path)?;
            if got != shape {
                return Err(Error::Shape {
                    what: path.display().to_string(),
                    got,
                    expected: format!("{shape:?} (from {})", file_name(&o.json)),
                });
            }
            Ok(v)
        };
        Ok(SampleSet {
            samples: read(&o.samples, &[n, s, c, h, w])?,
            samples_norm: read(&o.norm, &[n, s, c, h, w])?,
            mean: read(&o.mean, &[n, c, h, w])?,
            std: read(&o.std, &[n, c, h, w])?,
            outputs: o,
            record,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths_follow_the_out_argument() {
        let o = SampleOutputs::for_path(Path::new("runs/s.npy"));
        assert_eq!(o.samples, Path::new("runs/s.npy"));
        assert_eq!(o.mean, Path::new("runs/s_mean.npy"));
        assert_eq!(o.std, Path::new("runs/s_std.npy"));
        assert_eq!(o.norm, Path::new("runs/s_norm.npy"));
        assert_eq!(o.indices, Path::new("runs/s_indices.npy"));
        assert_eq!(o.json, Path::new("runs/s.json"));
        assert_eq!(o.lock_path(), Path::new("runs/s.lock"));
        assert_eq!(
            SampleOutputs::for_path(Path::new("s")),
            SampleOutputs::for_path(Path::new("s.npy"))
        );
        // A directory gets the set inside it, not beside it.
        let tmp = tempfile::tempdir().unwrap();
        let o = SampleOutputs::for_path(tmp.path());
        assert_eq!(o.samples, tmp.path().join("samples.npy"));
        assert_eq!(
            SampleOutputs::for_path(Path::new("runs/new/")).json,
            Path::new("runs/new/samples.json")
        );
    }
}
