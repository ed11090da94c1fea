//! Opt-in wall-clock profile by op kind (BENCHMARKS.md, "Training profile").
//!
//! candle has no profiler, so the CPU kernels of this crate (convolution forward/∂x/∂W, GroupNorm(+SiLU) forward and
//! backward, attention) and the phases of a training step (batch, forward + loss, backward, optimiser, EMA) open a
//! [`scope`] that adds its elapsed time to a process-wide table while profiling is [`enable`]d. Disabled (the
//! default), a scope costs one relaxed atomic load. Scopes may nest (a conv inside "forward"); the table is read with
//! that in mind (`benches/train.rs --profile` prints it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TABLE: Mutex<BTreeMap<&'static str, Entry>> = Mutex::new(BTreeMap::new());

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
    Scope {
        kind,
        flops,
        t0: enabled().then(Instant::now),
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(t0) = self.t0 {
            let dt = t0.elapsed().as_secs_f64();
            let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
            let e = t.entry(self.kind).or_default();
            e.seconds += dt;
            e.calls += 1;
            e.flops += self.flops;
        }
    }
}
