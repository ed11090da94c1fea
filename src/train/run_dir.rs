//! What a run directory holds, looked at before a run starts in it: progress a new run would destroy (checkpoints,
//! logged steps), and clearing it for a deliberate fresh start (`clustermaps train --force`), so that no file of
//! the old run (a periodic checkpoint with a higher step, say) survives into the new one.

use std::fs;
use std::path::{Path, PathBuf};

use super::log::{read_train_log, TRAIN_LOG, VAL_LOG};
use crate::checkpoint::list_periodic;
use crate::{Error, Result};

/// The files of a run besides its periodic checkpoints.
const RUN_FILES: [&str; 7] = [
    "last.safetensors",
    "ema.safetensors",
    TRAIN_LOG,
    VAL_LOG,
    "train_log.npy",
    "val_log.npy",
    "run.toml",
];

/// The run files found in a directory.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunDir {
    /// Periodic, `last` and `ema` checkpoints present (usable or not).
    checkpoints: Vec<PathBuf>,
    /// Data rows of `train_log.csv`.
    logged_steps: usize,
    /// Every run file present, checkpoints included.
    files: Vec<PathBuf>,
}

impl RunDir {
    /// Looks at `dir` (absent: an empty run directory).
    pub(crate) fn scan(dir: &Path) -> Result<Self> {
        let mut checkpoints: Vec<PathBuf> =
            list_periodic(dir)?.into_iter().map(|(_, p)| p).collect();
        let mut files = checkpoints.clone();
        for name in RUN_FILES {
            let p = dir.join(name);
            if p.exists() {
                if name.ends_with(".safetensors") {
                    checkpoints.push(p.clone());
                }
                files.push(p);
            }
        }
        // An unreadable log counts as progress: it is not this function's place to decide it is worthless.
        let logged_steps = read_train_log(dir, u64::MAX).map_or(1, |rows| rows.len());
        Ok(RunDir {
            checkpoints,
            logged_steps,
            files,
        })
    }

    /// Whether a new run here would throw work away.
    pub(crate) fn has_progress(&self) -> bool {
        !self.checkpoints.is_empty() || self.logged_steps > 0
    }

    /// `3 checkpoints, 40 logged steps`.
    pub(crate) fn summary(&self) -> String {
        let n = self.checkpoints.len();
        format!(
            "{n} checkpoint{}, {} logged step{}",
            if n == 1 { "" } else { "s" },
            self.logged_steps,
            if self.logged_steps == 1 { "" } else { "s" }
        )
    }

    /// Removes every run file (checkpoints, logs, `run.toml`); other files are left alone.
    pub(crate) fn clear(&self) -> Result<()> {
        for f in &self.files {
            fs::remove_file(f).map_err(|e| Error::io(f, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_checkpoints_or_logged_steps() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert!(!RunDir::scan(&d.join("absent")).unwrap().has_progress());
        fs::write(
            d.join(TRAIN_LOG),
            "step,loss,loss_per_dim,grad_norm,lr,step_s\n",
        )
        .unwrap();
        fs::write(d.join("run.toml"), "").unwrap();
        assert!(
            !RunDir::scan(d).unwrap().has_progress(),
            "a header is not progress"
        );
        fs::write(
            d.join(TRAIN_LOG),
            "step,loss,loss_per_dim,grad_norm,lr,step_s\n1,2.0,0.5,1.0,0.001,0.1\n",
        )
        .unwrap();
        let r = RunDir::scan(d).unwrap();
        assert!(r.has_progress());
        assert_eq!(r.summary(), "0 checkpoints, 1 logged step");
        fs::write(d.join("ckpt-00000005.safetensors"), b"x").unwrap();
        fs::write(d.join("notes.txt"), b"mine").unwrap();
        let r = RunDir::scan(d).unwrap();
        assert_eq!(r.summary(), "1 checkpoint, 1 logged step");
        r.clear().unwrap();
        assert!(!RunDir::scan(d).unwrap().has_progress());
        assert!(d.join("notes.txt").exists(), "files of others stay");
    }
}
