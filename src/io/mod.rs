//! Files on disk, written so that a reader — or a run killed at any moment — sees the old file or the new one,
//! never half of one: every writer of the crate (datasets, checkpoints, logs, metrics, figures) goes through
//! [`write_atomic`] or the streaming [`NpyF32Writer`], which share one temp-file → fsync → rename → fsync-directory
//! sequence.
//!
//! - [`files`]: whole-file atomic writes, the temp-file name, hard-link swaps, reads with clear errors.
//! - [`lock`]: [`OutputLock`], one writer per run directory, dataset or sample set.
//! - [`npy`]: `.npy` arrays: [`write_npy`] (any [`NpyElement`], whole array), the streaming f32 writer of
//!   datasets and the validating row reader.

pub mod files;
pub mod lock;
pub mod npy;

pub use files::{link_or_copy_atomic, read_bytes, read_text, sha256_hex, tmp_path, write_atomic};
pub use lock::{OutputLock, LOCK_FILE};
pub use npy::{npy_bytes, read_npy_f32, write_npy, NpyDtype, NpyElement, NpyF32Writer, NpyReader};
