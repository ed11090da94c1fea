//! Resource limits, checked before any work starts: a run that cannot fit in memory is refused with its estimate
//! and the memory the machine has available, instead of aborting on an allocation halfway through or being killed
//! by the OOM killer — which on a shared machine takes other people's work with it.
//!
//! - [`MemoryEstimate`]: what a command will hold at its peak, itemised. The estimates of `generate`, `train` and
//!   `sample` live beside the code whose memory they describe ([`crate::data::generate`], [`crate::train::memory`],
//!   [`crate::sample::memory`]); their constants were calibrated against the peak resident set size of real runs
//!   and err on the high side by 10–50 %.
//! - [`available_memory`]: `MemAvailable` from `/proc/meminfo`, lowered by a cgroup limit and by
//!   `CLUSTERMAPS_MEMORY_LIMIT` (e.g. `8G`: take no more than that, to share a machine politely).
//! - [`check_memory`] refuses an estimate above it; [`check_threads`] bounds worker threads by the cores.
//!
//! Both checks can be switched off for the whole process with [`set_ignore_limits`] (the CLI's `--ignore-limits`),
//! for people who know better than the estimate. Bounds that keep the arithmetic meaningful (map sizes, step
//! counts, model widths) are part of the configurations' validation and cannot be switched off.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Error, Result};

/// Worker threads allowed per core: more only adds stacks and context switches.
pub const MAX_THREADS_PER_CORE: usize = 4;

/// Environment variable capping the memory this crate assumes it may use (bytes, or with a K/M/G/T suffix).
pub const MEMORY_LIMIT_ENV: &str = "CLUSTERMAPS_MEMORY_LIMIT";

/// Bytes in a GiB.
const GIB: f64 = (1u64 << 30) as f64;

static IGNORE_LIMITS: AtomicBool = AtomicBool::new(false);

/// Switches the memory and thread checks off (`true`) or on for this process: the CLI's `--ignore-limits`.
pub fn set_ignore_limits(ignore: bool) {
    IGNORE_LIMITS.store(ignore, Ordering::Relaxed);
}

/// Whether [`set_ignore_limits`] switched the checks off.
pub fn limits_ignored() -> bool {
    IGNORE_LIMITS.load(Ordering::Relaxed)
}

/// Peak memory of a command, itemised. Bytes are `f64` so that absurd requests (a 10⁶-pixel map) give an absurd
/// number, not an integer overflow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryEstimate {
    parts: Vec<(String, f64)>,
}

impl MemoryEstimate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` for `what` (e.g. "attention scores (1024 tokens)").
    pub fn add(&mut self, what: impl Into<String>, bytes: f64) -> &mut Self {
        self.parts.push((what.into(), bytes));
        self
    }

    /// All parts together, in bytes.
    pub fn total(&self) -> f64 {
        self.parts.iter().map(|(_, b)| b).sum()
    }

    /// The parts, in the order they were added.
    pub fn parts(&self) -> &[(String, f64)] {
        &self.parts
    }
}

impl fmt::Display for MemoryEstimate {
    /// `3.1 GiB (attention scores 2.4 GiB, activations 0.6 GiB, …)`, largest parts first, parts under 1 % of the
    /// total left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        let mut parts: Vec<&(String, f64)> = self
            .parts
            .iter()
            .filter(|(_, b)| *b >= 0.01 * total)
            .collect();
        parts.sort_by(|a, b| b.1.total_cmp(&a.1));
        let list: Vec<String> = parts
            .iter()
            .map(|(w, b)| format!("{w} {}", format_bytes(*b)))
            .collect();
        write!(f, "{} ({})", format_bytes(total), list.join(", "))
    }
}

/// `512 MiB`, `3.1 GiB`, `7.7e3 TiB`: bytes for people.
pub fn format_bytes(bytes: f64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    const TIB: f64 = GIB * 1024.0;
    if bytes < GIB {
        format!("{:.0} MiB", (bytes / MIB).ceil())
    } else if bytes < TIB {
        format!("{:.1} GiB", bytes / GIB)
    } else if bytes < 1e4 * TIB {
        format!("{:.1} TiB", bytes / TIB)
    } else {
        format!("{:.1e} TiB", bytes / TIB)
    }
}

/// Memory this process may use, with where the number comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Available {
    pub bytes: f64,
    /// `MemAvailable`, `cgroup limit` or the environment variable.
    pub source: String,
}

/// The memory available to this process: the smallest of `MemAvailable` (`/proc/meminfo`), the headroom of a cgroup
/// memory limit, and [`MEMORY_LIMIT_ENV`]. `None` where none of them can be read (then nothing is refused).
pub fn available_memory() -> Option<Available> {
    let mut best: Option<Available> = None;
    let mut offer = |bytes: Option<f64>, source: &str| {
        if let Some(b) = bytes.filter(|b| b.is_finite() && *b >= 0.0) {
            if best.as_ref().is_none_or(|a| b < a.bytes) {
                best = Some(Available {
                    bytes: b,
                    source: source.to_string(),
                });
            }
        }
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    offer(
        meminfo.as_deref().and_then(mem_available),
        "MemAvailable in /proc/meminfo",
    );
    offer(cgroup_headroom(), "the cgroup's memory limit");
    if let Ok(v) = std::env::var(MEMORY_LIMIT_ENV) {
        offer(parse_bytes(&v), MEMORY_LIMIT_ENV);
    }
    best
}

/// `MemAvailable` of `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Limit minus the anonymous (non-reclaimable) memory of the cgroup (v2, else v1) this process sees at the root of
/// its mount; `None` without a finite limit. Page cache is left out of the usage, as `MemAvailable` leaves it out:
/// a container that has just built the project holds gigabytes of it, all reclaimable.
fn cgroup_headroom() -> Option<f64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    // (limit file, usage file, the memory.stat key of anonymous memory)
    let versions = [
        (
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/memory.stat",
            "anon",
        ),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.stat",
            "total_rss",
        ),
    ];
    versions.iter().find_map(|(limit, stat, key)| {
        // "max" (v2) does not parse; v1 writes "unlimited" as a number near 2^63.
        let l = read(limit)?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|l| *l < 2f64.powi(60))?;
        let used = read(stat).and_then(|s| stat_value(&s, key)).unwrap_or(0.0);
        Some((l - used).max(0.0))
    })
}

/// The value of `key` in a cgroup `memory.stat` text (`key value` lines).
fn stat_value(stat: &str, key: &str) -> Option<f64> {
    stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `8G`, `512M`, `1.5T`, `1048576`: bytes (binary units).
pub fn parse_bytes(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], t[i..].trim_end_matches(['B', 'b', 'i'])),
        None => (t, ""),
    };
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => GIB,
        "T" => GIB * 1024.0,
        _ => return None,
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

/// Refuses `estimate` when it exceeds the memory available to this process ([`available_memory`]), unless the
/// limits are switched off. `command` starts the message (`train`, `generate --n-pix 512`); `hint` says what to
/// lower.
pub fn check_memory(command: &str, estimate: &MemoryEstimate, hint: &str) -> Result<()> {
    if limits_ignored() {
        return Ok(());
    }
    match available_memory() {
        Some(a) => check_memory_against(command, estimate, &a, hint),
        None => Ok(()),
    }
}

/// [`check_memory`] against a given amount of available memory.
pub fn check_memory_against(
    command: &str,
    estimate: &MemoryEstimate,
    available: &Available,
    hint: &str,
) -> Result<()> {
    if estimate.total() <= available.bytes {
        return Ok(());
    }
    Err(Error::Limits(format!(
        "{command} would need about {estimate} of memory, but {} is available ({}); {hint}, or pass \
         --ignore-limits if you know better",
        format_bytes(available.bytes),
        available.source
    )))
}

/// Logical cores this process may run on (1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Refuses more than [`MAX_THREADS_PER_CORE`] × [`cores`] worker threads (0 = one per core, always allowed),
/// unless the limits are switched off. `flag` names the setting in the message.
pub fn check_threads(flag: &str, threads: usize) -> Result<()> {
    let max = MAX_THREADS_PER_CORE * cores();
    if threads <= max || limits_ignored() {
        return Ok(());
    }
    Err(Error::Limits(format!(
        "{flag} {threads}: at most {max} worker threads ({MAX_THREADS_PER_CORE} per core, {} cores here; 0 uses one \
         per core), or pass --ignore-limits if you know better",
        cores()
    )))
}

/// `Err` naming `name` when `value` exceeds `max` (a sanity bound of a count: steps, pixels, sub-samples).
pub fn at_most(name: &str, value: usize, max: usize) -> Result<()> {
    if value <= max {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{name} = {value} is above the limit of {max}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_byte_sizes_parse() {
        let text = "MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:   17301216 kB\n";
        assert_eq!(mem_available(text), Some(17301216.0 * 1024.0));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_bytes("8G"), Some(8.0 * GIB));
        assert_eq!(parse_bytes("512MiB"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(parse_bytes("1.5 T"), Some(1.5 * 1024.0 * GIB));
        assert_eq!(parse_bytes("4096"), Some(4096.0));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("-1G"), None);
        assert_eq!(parse_bytes("3X"), None);
        let stat = "cache 10928128\nrss 5623808\ntotal_rss 6000000\nanon 4096\n";
        assert_eq!(stat_value(stat, "total_rss"), Some(6e6));
        assert_eq!(stat_value(stat, "anon"), Some(4096.0));
        assert_eq!(stat_value(stat, "file"), None);
    }

    #[test]
    fn estimates_are_refused_with_both_numbers() {
        let mut e = MemoryEstimate::new();
        e.add("attention scores", 30.0 * GIB)
            .add("weights", 0.5 * GIB);
        let small = Available {
            bytes: 17.0 * GIB,
            source: "MemAvailable in /proc/meminfo".into(),
        };
        let msg = check_memory_against("train", &e, &small, "lower train.batch_size")
            .unwrap_err()
            .to_string();
        for part in [
            "train would need about 30.5 GiB",
            "attention scores 30.0 GiB",
            "17.0 GiB is available (MemAvailable",
            "lower train.batch_size",
            "--ignore-limits",
        ] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
        let big = Available {
            bytes: 64.0 * GIB,
            source: "test".into(),
        };
        check_memory_against("train", &e, &big, "").unwrap();
        assert_eq!(format_bytes(1e300), "9.1e287 TiB");
        assert_eq!(format_bytes(3.0 * 1024.0 * 1024.0), "3 MiB");
    }

    #[test]
    fn counts_name_their_bound() {
        assert!(at_most("--steps", 10, 10).is_ok());
        let e = at_most("--steps", 11, 10).unwrap_err().to_string();
        assert!(e.contains("--steps = 11 is above the limit of 10"), "{e}");
        let e = check_threads("--threads", 100_000).unwrap_err().to_string();
        assert!(e.contains("--threads 100000: at most"), "{e}");
        check_threads("--threads", 0).unwrap();
        check_threads("--threads", cores()).unwrap();
    }
}
