//! One writer per output: an exclusive advisory lock held for as long as a process writes a run directory, a
//! dataset or a sample set, so a second `clustermaps` process aimed at the same output refuses at once (naming the
//! holder's pid) instead of interleaving its files with the first's.
//!
//! The lock is the operating system's file lock (`flock` on Linux, through [`File::try_lock`]), which the kernel
//! releases when the process ends however it ends, `kill -9` included: a crashed run never leaves a lock that has
//! to be cleared by hand. The lock file holds the pid and command of its holder (for the refusal message) and is
//! removed when the lock is released normally; a file left by a killed process is simply locked again.
//!
//! Removing a lock file races with a process that opened it just before: that process would lock the removed file
//! while a third locks a new one. [`OutputLock`] therefore checks, once it holds the lock, that its file is still
//! the one at the path, and retries otherwise.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Name of the lock file inside a locked directory (run directories, datasets).
pub const LOCK_FILE: &str = ".clustermaps.lock";

/// Attempts at taking a lock whose file keeps being replaced (each replacement means a holder just finished).
const ATTEMPTS: usize = 8;

/// An exclusive lock on an output, released (and its file removed) on drop.
#[derive(Debug)]
pub struct OutputLock {
    file: File,
    path: PathBuf,
}

impl OutputLock {
    /// Locks directory `dir` (created if needed) through `dir/`[`LOCK_FILE`] for `command` (`train`, `generate`).
    pub fn directory(dir: &Path, command: &str) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Self::acquire(&dir.join(LOCK_FILE), dir, command)
    }

    /// Locks `output` through the lock file `lock` (created if needed; its directory must exist).
    pub fn acquire(lock: &Path, output: &Path, command: &str) -> Result<Self> {
        for _ in 0..ATTEMPTS {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(lock)
                .map_err(|e| Error::io(lock, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Busy {
                        path: output.to_path_buf(),
                        lock: lock.to_path_buf(),
                        holder: holder(lock),
                    })
                }
                // A file system without locks (some network mounts): proceed unprotected rather than not at all.
                Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
                Err(TryLockError::Error(e)) => return Err(Error::io(lock, e)),
            }
            if !same_file(&file, lock) {
                continue;
            }
            // Truncate only now: before the lock, it would wipe the holder's pid.
            file.set_len(0)
                .and_then(|()| {
                    writeln!(
                        file,
                        "pid {} ({command}, clustermaps {})",
                        std::process::id(),
                        env!("CARGO_PKG_VERSION")
                    )
                })
                .map_err(|e| Error::io(lock, e))?;
            return Ok(OutputLock {
                file,
                path: lock.to_path_buf(),
            });
        }
        Err(Error::Busy {
            path: output.to_path_buf(),
            lock: lock.to_path_buf(),
            holder: "its lock file keeps changing hands".into(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still held (see the module docs); the lock itself goes with the file handle.
        if cfg!(unix) && same_file(&self.file, &self.path) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// What a lock file says about its holder: `pid 1234 (train, clustermaps 0.1.0)`.
fn holder(lock: &Path) -> String {
    match fs::read_to_string(lock) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => "pid unknown: it has only just started".into(),
    }
}

/// Whether the open `file` is the file at `path` (same device and inode).
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Elsewhere lock files are never removed, so the file at the path is always the locked one.
#[cfg(not(unix))]
fn same_file(_: &File, _: &Path) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_output_is_refused_with_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let first = OutputLock::directory(&dir, "train").unwrap();
        // flock locks belong to open file descriptions, so a second open in this process conflicts like another
        // process would.
        let e = OutputLock::directory(&dir, "train").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Busy { .. }), "{msg}");
        assert!(
            msg.contains(&format!("pid {} (train", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(LOCK_FILE), "{msg}");
        drop(first);
        assert!(
            !dir.join(LOCK_FILE).exists(),
            "released locks leave no file"
        );
        let again = OutputLock::directory(&dir, "generate").unwrap();
        assert!(fs::read_to_string(again.path())
            .unwrap()
            .contains("(generate"));
    }

    #[test]
    fn a_stale_lock_file_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(LOCK_FILE), "pid 1 (train, killed)\n").unwrap();
        let l = OutputLock::directory(tmp.path(), "train").unwrap();
        let text = fs::read_to_string(l.path()).unwrap();
        assert!(
            text.starts_with(&format!("pid {} ", std::process::id())),
            "{text}"
        );
    }
}
