//! Opt-in wall-clock profile by op kind (BENCHMARKS.md, "Training profile").
//!
//! candle has no profiler, so the CPU kernels of this crate (convolution forward/∂x/∂W, GroupNorm(+SiLU) forward and
//! backward, attention) and the phases of a training step (batch, forward + loss, backward, optimiser, EMA) open a
//! [`scope`] that adds its elapsed time to a process-wide table while profiling is [`enable`]d. Disabled (the
//! default), a scope costs one relaxed atomic load. Scopes may nest (a conv inside "forward"); the table is read with
//! that in mind (`benches/train.rs --profile` prints it).
//!
//! **On a GPU** the ops only enqueue kernels, so a host clock around them measures the launch, not the work. With a
//! device set by [`sync_device`] (what [`enable_from_env`] does for `clustermaps train` on CUDA), every scope
//! synchronizes that device when it opens and when it closes, so each kind is charged with the device time of its
//! own kernels. The syncs serialize host and device and make the profiled step slower than a normal one; the table
//! says where time goes, not how fast the step is. With profiling off (the default) no scope synchronizes anything.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use candle_core::Device;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TABLE: Mutex<BTreeMap<&'static str, Entry>> = Mutex::new(BTreeMap::new());
/// The device whose queue each scope drains (only a non-CPU one is stored: the CPU backend runs ops synchronously).
static SYNC: Mutex<Option<Device>> = Mutex::new(None);

/// Environment variable that turns the profile of `clustermaps train` on (any value but `0` or empty).
pub const ENV_VAR: &str = "CLUSTERMAPS_PROFILE";

/// Accumulated time, calls and (where the kernel states it) floating-point operations of one op kind.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Entry {
    pub seconds: f64,
    pub calls: u64,
    pub flops: f64,
}

/// Turns recording on or off (process-wide).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether recording is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Makes every scope synchronize `device` around its timing (`None`, or a CPU device, stops it).
pub fn sync_device(device: Option<&Device>) {
    *SYNC.lock().unwrap_or_else(|e| e.into_inner()) = device.filter(|d| !d.is_cpu()).cloned();
}

/// Whether scopes synchronize a device.
pub fn syncs() -> bool {
    SYNC.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// Turns profiling on, synchronizing `device`, when [`ENV_VAR`] is set to something other than `0`; returns
/// whether it did.
pub fn enable_from_env(device: &Device) -> bool {
    let on = std::env::var(ENV_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
    if on {
        reset();
        sync_device(Some(device));
        enable(true);
    }
    on
}

/// Drains the device's queue, if one is set. An error here is not the profile's to report: the next real op on the
/// device returns it.
fn sync() {
    let dev = SYNC.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(d) = dev {
        let _ = d.synchronize();
    }
}

/// The table as Markdown, heaviest kind first: seconds, calls, ms per call, share of `wall_s` (nested kinds
/// overlap their parents, so shares add up to more than 100 %) and GFLOP/s where the kernel states its work.
pub fn markdown(wall_s: f64) -> String {
    let mut rows: Vec<(&str, Entry)> = snapshot().into_iter().collect();
    rows.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds));
    let mut out = format!(
        "| op kind | s | calls | ms/call | % of {wall_s:.2} s | GFLOP/s |\n|---|---:|---:|---:|---:|---:|\n"
    );
    for (kind, e) in rows {
        let gflops = if e.flops > 0.0 && e.seconds > 0.0 {
            format!("{:.1}", e.flops / e.seconds / 1e9)
        } else {
            String::new()
        };
        out += &format!(
            "| {kind} | {:.4} | {} | {:.3} | {:.1} | {gflops} |\n",
            e.seconds,
            e.calls,
            1e3 * e.seconds / e.calls.max(1) as f64,
            100.0 * e.seconds / wall_s.max(f64::MIN_POSITIVE)
        );
    }
    out
}

/// Clears the table.
pub fn reset() {
    TABLE.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// The table, by op kind.
pub fn snapshot() -> BTreeMap<&'static str, Entry> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A running measurement; records on drop.
pub struct Scope {
    kind: &'static str,
    flops: f64,
    t0: Option<Instant>,
}

/// Starts timing `kind` (no-op when profiling is off).
pub fn scope(kind: &'static str) -> Scope {
    scope_flops(kind, 0.0)
}

/// Starts timing `kind`, crediting it with `flops` floating-point operations.
pub fn scope_flops(kind: &'static str, flops: f64) -> Scope {
    let on = enabled();
    if on {
        sync();
    }
    Scope {
        kind,
        flops,
        t0: on.then(Instant::now),
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(t0) = self.t0 {
            sync();
            let dt = t0.elapsed().as_secs_f64();
            let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
            let e = t.entry(self.kind).or_default();
            e.seconds += dt;
            e.calls += 1;
            e.flops += self.flops;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's state is process-wide: one test exercises enable, sync device, scopes and the Markdown table.
    #[test]
    fn scopes_record_and_the_cpu_device_never_syncs() {
        sync_device(Some(&Device::Cpu));
        assert!(!syncs(), "a CPU device needs no synchronization");
        reset();
        enable(true);
        {
            let _a = scope_flops("test: outer", 2e9);
            let _b = scope("test: inner");
        }
        enable(false);
        drop(scope("test: off"));
        let t = snapshot();
        assert_eq!(t["test: outer"].calls, 1);
        assert_eq!(t["test: inner"].calls, 1);
        assert!(!t.contains_key("test: off"));
        assert!(t["test: outer"].seconds >= t["test: inner"].seconds);
        let md = markdown(1.0);
        assert!(md.starts_with("| op kind |"), "{md}");
        assert!(
            md.contains("| test: outer |") && md.contains("| test: inner |"),
            "{md}"
        );
        reset();
        sync_device(None);
    }
}
