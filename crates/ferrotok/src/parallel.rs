//! The only place that spawns threads.
//!
//! Threading: batches run on the calling thread plus scoped threads created for the call and
//! joined before it returns. There is no global pool, so nothing can be left in a broken state by `fork()`
//! (the child simply spawns fresh threads on its next batch call), and there is nothing to
//! shut down. Spawning costs tens of microseconds per thread, which is noise next to a batch
//! worth parallelising; small batches run inline on the calling thread.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable that overrides the default thread count.
pub const THREADS_ENV: &str = "FERROTOK_NUM_THREADS";

/// The number of threads to use: `requested` if given (at least 1), else `FERROTOK_NUM_THREADS`
/// if set to a positive integer, else the number of available cores.
pub fn num_threads(requested: Option<usize>) -> usize {
    if let Some(n) = requested {
        return n.max(1);
    }
    if let Some(n) = std::env::var(THREADS_ENV).ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0) {
        return n;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Applies `f` to every item on up to `threads` threads and returns the results in order.
/// Items are handed out one at a time from a shared counter, so uneven sizes balance.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut local = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            local.push((i, f(item)));
        }
        local
    };
    // The calling thread is one of the workers: one spawn fewer, and it brings its warm
    // per-thread piece cache to the batch.
    let mut parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mine = work();
        // A worker can only fail by panicking inside `f`; re-raise that panic here.
        let mut all: Vec<_> =
            handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect();
        all.push(mine);
        all
    });
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    for part in parts.drain(..) {
        for (i, r) in part {
            slots[i] = Some(r);
        }
    }
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_for_any_thread_count() {
        let items: Vec<u64> = (0..1000).collect();
        for t in [1, 2, 3, 16] {
            assert_eq!(map(&items, t, |x| x * 2), items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
        assert!(map(&[] as &[u8], 4, |x| *x).is_empty());
    }

    #[test]
    fn explicit_request_wins() {
        assert_eq!(num_threads(Some(3)), 3);
        assert_eq!(num_threads(Some(0)), 1);
        assert!(num_threads(None) >= 1);
    }
}
