//! Fault injection for the crash tests: `FERROTOK_FAULT_AT=N` aborts the process at the N-th
//! fault point (1-based), as abruptly as a power cut: no destructors, no flushing. Fault points
//! sit between every write, sync and rename that the job's crash safety depends on.
//! Unset (always, outside tests), a fault point is one relaxed atomic increment.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const FAULT_ENV: &str = "FERROTOK_FAULT_AT";

static COUNT: AtomicU64 = AtomicU64::new(0);

fn target() -> Option<u64> {
    static TARGET: OnceLock<Option<u64>> = OnceLock::new();
    *TARGET.get_or_init(|| std::env::var(FAULT_ENV).ok().and_then(|v| v.trim().parse().ok()))
}

/// A place where a crash must be survivable.
pub(crate) fn point() {
    if let Some(t) = target() {
        if COUNT.fetch_add(1, Ordering::Relaxed) + 1 == t {
            std::process::abort();
        }
    }
}
