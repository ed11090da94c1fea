//! Whole files: atomic writes (temp file, fsync, rename, fsync of the directory) and reads whose errors name the
//! file.
//!
//! The temp file is `NAME.tmp` beside the target, so the rename never crosses a file system, `.gitignore` and
//! [`crate::checkpoint::list_periodic`] skip leftovers, and a crashed writer's temp file is simply overwritten by the
//! next attempt.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// `NAME.tmp` next to `path`: where a file is written before it is renamed into place.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Writes `bytes` to `path` via [`tmp_path`]: write, fsync, rename, fsync of the parent directory. Readers see the
/// old file or the new one; after a crash the new one is either complete or absent.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = stage(path, bytes)?;
    let done = rename_into_place(&tmp, path);
    if done.is_err() {
        remove_if_exists(&tmp);
    }
    done
}

/// The first half of [`write_atomic`]: `bytes` go to [`tmp_path`]`(path)`, which is returned for
/// [`rename_into_place`]. For writers that need several files complete before any replaces its old version (sample
/// sets). On error the temp file is removed.
pub(crate) fn stage(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = tmp_path(path);
    let written = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Error::io(&tmp, e));
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            remove_if_exists(&tmp);
            Err(e)
        }
    }
}

/// Syncs a finished temporary file, renames it onto `path` (atomic on POSIX file systems) and syncs the directory so
/// that the rename itself survives a crash.
pub(crate) fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(tmp, e))?;
    fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
    sync_parent(path);
    Ok(())
}

/// `dst` becomes a hard link to `src` (a copy where links are not supported), swapped in atomically: used for
/// `last.safetensors`, which names the newest periodic checkpoint without a second copy of its bytes.
pub fn link_or_copy_atomic(src: &Path, dst: &Path) -> Result<()> {
    let tmp = tmp_path(dst);
    remove_if_exists(&tmp);
    if fs::hard_link(src, &tmp).is_err() {
        fs::copy(src, &tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, dst).map_err(|e| Error::io(dst, e))?;
    sync_parent(dst);
    Ok(())
}

/// Best effort: not every platform lets a directory be opened for syncing, and the data itself is already synced.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Best-effort removal (used for cleanup paths where the original error matters more).
pub(crate) fn remove_if_exists(path: &Path) {
    let _ = fs::remove_file(path);
}

/// The error of opening or reading `path`: absence as [`Error::MissingFile`], anything else as [`Error::Io`].
pub(crate) fn open_error(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::MissingFile(path.to_path_buf())
    } else {
        Error::io(path, e)
    }
}

/// The bytes of a file, reporting absence as "missing file …".
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| open_error(path, e))
}

/// A text file, reporting absence as "missing file …".
pub fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| open_error(path, e))
}

/// Lower-case hex SHA-256 of `bytes`: the identity of a file in records (sample sets, comparisons), so that a record
/// is only trusted for the exact bytes it was made from.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
