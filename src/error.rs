//! One error type for the whole library. Messages name the file, split, tensor, shape or value at fault, so a
//! researcher can fix their input without reading our code.

use std::path::PathBuf;

/// Every fallible library function returns `Result<T, clustermaps::Error>`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory that must exist does not.
    #[error("missing file {0}")]
    MissingFile(PathBuf),

    /// An I/O failure, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file exists but its content is malformed (bad header, truncated data, unparseable text).
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },

    /// An array has the wrong shape.
    #[error("{what}: shape {got:?}, expected {expected}")]
    Shape {
        what: String,
        got: Vec<usize>,
        expected: String,
    },

    /// NaN or Inf where only finite numbers make sense.
    #[error("{what}: {msg}")]
    NonFinite { what: String, msg: String },

    /// A dataset that fails one of the validation rules of docs/mock-clusters.md §7.
    #[error("{what}: {msg}")]
    Invalid { what: String, msg: String },

    /// A configuration value that is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A checkpoint tensor whose shape does not fit the model built from the configuration.
    #[error(
        "checkpoint {path}: tensor {tensor} has shape {got:?}, the model expects {expected:?}"
    )]
    ConfigMismatch {
        path: PathBuf,
        tensor: String,
        got: Vec<usize>,
        expected: Vec<usize>,
    },

    /// A checkpoint that cannot be used (unreadable, truncated, wrong format, missing or extra tensors, bad metadata).
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },

    /// A device that this build cannot use.
    #[error("{0}")]
    Device(String),

    /// Refusing to clobber existing results.
    #[error("{0} exists and is not empty; pass --force to overwrite it")]
    Exists(PathBuf),

    /// Refusing to replace an existing output file (a sample set's member, say).
    #[error("{0} exists; pass --force to overwrite it")]
    FileExists(PathBuf),

    /// Another process holds the lock of an output (run directory, dataset, sample set).
    #[error(
        "{path} is in use by another clustermaps process ({holder}, lock file {lock}); wait for it to finish or \
         choose another output"
    )]
    Busy {
        path: PathBuf,
        lock: PathBuf,
        holder: String,
    },

    /// Work that would not fit this machine (memory) or is beyond a sane bound, refused before it starts.
    #[error("{0}")]
    Limits(String),

    /// An error raised by candle (tensor ops).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an `std::io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error for `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// A checkpoint error for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// A validation error about `what` (a dataset, split or file).
    pub fn invalid(what: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            msg: msg.into(),
        }
    }
}
