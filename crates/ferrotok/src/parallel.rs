//! The only place that spawns threads.
//!
//! Threading: a batch runs on a pool of `threads` worker threads (rayon's work stealing, so
//! uneven item sizes balance) that outlives the call. Keeping the threads is what keeps their
//! per-thread piece caches (`cache::with_scratch`, a few MiB per thread and vocabulary) warm
//! from one batch to the next: with threads made per call, every batch started its helpers
//! on empty caches and two cores gave 0.9-1.8x one core.
//!
//! - One pool per thread count asked for (at most `MAX_POOLS`, the oldest dropped first).
//! - `fork()`: a child process has none of its parent's threads, so a pool made before the
//!   fork would never run anything. Each pool remembers the process that made it; a call
//!   from another process forgets (leaks, never drops: its locks may be held by threads that
//!   no longer exist) the stale pools and makes fresh ones.
//! - The pool table is held only for a look-up or an insert and only ever `try_lock`ed, with
//!   a short spin: if it stays locked (a fork while another thread held it), the call runs on
//!   threads made for it, as before the pool; it never waits for good.
//! - Small batches (one item, or one thread) run inline on the calling thread.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

/// The environment variable that overrides the default thread count.
pub const THREADS_ENV: &str = "FERROTOK_NUM_THREADS";

/// How many pools (distinct thread counts) are kept at once.
const MAX_POOLS: usize = 4;

/// Live pools: (process id that made it, thread count, pool).
type Pools = Vec<(u32, usize, Arc<rayon::ThreadPool>)>;
static POOLS: Mutex<Pools> = Mutex::new(Vec::new());

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

/// The pool table, if it can be had without waiting long: held only for a look-up or an
/// insert, so a short spin nearly always gets it. It may stay locked for good in a child
/// process forked while another thread held it; then every call falls back after the spin.
fn pools() -> Option<std::sync::MutexGuard<'static, Pools>> {
    for _ in 0..1000 {
        match POOLS.try_lock() {
            Ok(guard) => return Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
    None
}

/// The kept pool of `threads` threads for this process, made on first use; None if the pool
/// table cannot be had or a pool cannot be made (the caller then uses threads of its own).
fn pool(threads: usize) -> Option<Arc<rayon::ThreadPool>> {
    let pid = std::process::id();
    {
        let mut pools = pools()?;
        if pools.iter().any(|&(p, _, _)| p != pid) {
            // Made before a fork: see the module notes.
            std::mem::forget(std::mem::take(&mut *pools));
        }
        if let Some((_, _, p)) = pools.iter().find(|&&(_, n, _)| n == threads) {
            return Some(Arc::clone(p));
        }
    }
    // Made outside the lock (spawning takes a while); if another call made one meanwhile,
    // that one is kept and this one ends when the call returns.
    let made = Arc::new(
        rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("ferrotok-{i}")).build().ok()?,
    );
    let mut pools = pools()?;
    if let Some((_, _, p)) = pools.iter().find(|&&(p, n, _)| p == pid && n == threads) {
        return Some(Arc::clone(p));
    }
    if pools.len() >= MAX_POOLS {
        // Calls in flight hold their own `Arc`; the pool ends when the last one returns.
        pools.remove(0);
    }
    pools.push((pid, threads, Arc::clone(&made)));
    Some(made)
}

/// Applies `f` to every item on up to `threads` threads and returns the results in order.
/// A panic in `f` is re-raised on the calling thread.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    match pool(threads) {
        // Rayon splits the items adaptively: an idle worker steals half of what a busy one
        // has left, so one long document does not hold its neighbours hostage.
        Some(pool) => pool.install(|| items.par_iter().map(&f).collect()),
        None => map_scoped(items, threads, f),
    }
}

/// The results of [`map_streamed`], taken in item order on the calling thread while the
/// workers go on with later items.
pub struct Stream<'a, T, R> {
    /// The next index to hand out.
    next: usize,
    len: usize,
    source: Source<'a, T, R>,
}

enum Source<'a, T, R> {
    /// One thread: each result is computed when asked for, on the calling thread.
    Inline { items: &'a [T], f: &'a (dyn Fn(&T) -> R + Sync) },
    /// Workers send `(index, result)`; results that arrive before their turn wait in `early`.
    Workers { rx: std::sync::mpsc::Receiver<(usize, R)>, early: std::collections::BTreeMap<usize, R> },
}

impl<T: Sync, R: Send> Stream<'_, T, R> {
    /// The number of results not taken yet.
    pub fn remaining(&self) -> usize {
        self.len - self.next
    }

    /// The next result if it is ready now. Never computes or waits: `None` says that
    /// [`Self::wait_next`] is needed (or that nothing is left).
    pub fn ready_next(&mut self) -> Option<R> {
        let Source::Workers { rx, early } = &mut self.source else { return None };
        while !early.contains_key(&self.next) {
            let (i, r) = rx.try_recv().ok()?;
            early.insert(i, r);
        }
        let r = early.remove(&self.next);
        self.next += 1;
        r
    }

    /// The next result, computing or waiting for it. `None` when every result has been taken,
    /// or when a worker panicked (the panic is re-raised when `map_streamed` returns).
    /// Holds no lock of the caller's: call it with Python's GIL released.
    pub fn wait_next(&mut self) -> Option<R> {
        if self.next >= self.len {
            return None;
        }
        let r = match &mut self.source {
            Source::Inline { items, f } => f(&items[self.next]),
            Source::Workers { rx, early } => loop {
                if let Some(r) = early.remove(&self.next) {
                    break r;
                }
                let (i, r) = rx.recv().ok()?;
                early.insert(i, r);
            },
        };
        self.next += 1;
        Some(r)
    }
}

/// `map` for callers that must turn each result into something else on the calling thread
/// (Python objects, under the GIL): `consume` takes the results in item order through the
/// [`Stream`] while the workers compute the later ones, so that serial step overlaps the
/// parallel one instead of following it. Workers take items in order from a shared counter,
/// so few results wait out of turn. When `consume` returns early (an error), the workers stop
/// taking items. A panic in `f` is re-raised here, after `consume` returns.
pub fn map_streamed<T: Sync, R: Send, C>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
    consume: impl FnOnce(&mut Stream<'_, T, R>) -> C,
) -> C {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        let mut stream = Stream { next: 0, len: items.len(), source: Source::Inline { items, f: &f } };
        return consume(&mut stream);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let mut stream = Stream { next: 0, len: items.len(), source: Source::Workers { rx, early: Default::default() } };
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let work = |tx: std::sync::mpsc::Sender<(usize, R)>| {
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            if tx.send((i, f(item))).is_err() {
                break;
            }
        }
    };
    let (work, stop) = (&work, &stop);
    let run = |spawn: &mut dyn FnMut(std::sync::mpsc::Sender<(usize, R)>)| {
        for _ in 0..threads {
            spawn(tx.clone());
        }
        drop(tx);
        let c = consume(&mut stream);
        stop.store(true, Ordering::Relaxed);
        c
    };
    match pool(threads) {
        Some(pool) => pool.in_place_scope(|s| run(&mut |tx| s.spawn(move |_| work(tx)))),
        None => std::thread::scope(|s| {
            run(&mut |tx| {
                s.spawn(move || work(tx));
            })
        }),
    }
}

/// `map` on threads made for this call (the calling thread is one of them). Items are handed
/// out one at a time from a shared counter, so uneven sizes balance.
fn map_scoped<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
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
    fn the_scoped_fallback_keeps_order_too() {
        let items: Vec<u64> = (0..1000).collect();
        for t in [2, 3, 16] {
            assert_eq!(map_scoped(&items, t, |x| x * 2), items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn batches_reuse_the_same_threads() {
        // The point of the pool: per-thread caches survive from one batch to the next.
        let ids = || {
            let items: Vec<u32> = (0..64).collect();
            let mut seen: Vec<String> = map(&items, 2, |_| {
                std::thread::sleep(std::time::Duration::from_millis(1));
                format!("{:?}", std::thread::current().id())
            });
            seen.sort();
            seen.dedup();
            seen
        };
        // (Tests run concurrently: the very first call may race another test to make the pool.)
        ids();
        let first = ids();
        let second = ids();
        assert!(!first.is_empty());
        for id in &second {
            assert!(first.contains(id), "batch ran on a new thread {id} (first batch: {first:?})");
        }
    }

    #[test]
    fn a_panic_in_a_worker_reaches_the_caller() {
        let items: Vec<u32> = (0..100).collect();
        let r = std::panic::catch_unwind(|| map(&items, 2, |&x| if x == 57 { panic!("item 57") } else { x }));
        let msg = r.unwrap_err();
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"item 57"));
        // The pool survives a panic.
        assert_eq!(map(&items, 2, |x| x + 1)[99], 100);
    }

    /// Takes every result, alternating between the two ways of asking.
    fn drain(stream: &mut Stream<'_, u64, u64>) -> Vec<u64> {
        let mut got = Vec::new();
        while stream.remaining() > 0 {
            let r = if got.len() % 2 == 0 { stream.ready_next() } else { None };
            match r.or_else(|| stream.wait_next()) {
                Some(r) => got.push(r),
                None => break,
            }
        }
        assert!(stream.wait_next().is_none() && stream.ready_next().is_none());
        got
    }

    #[test]
    fn streamed_results_come_in_order() {
        let items: Vec<u64> = (0..2000).collect();
        for t in [1, 2, 3, 16] {
            // Uneven work, so that results finish out of order.
            let f = |&x: &u64| {
                if x % 97 == 0 {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                x * 3
            };
            let got = map_streamed(&items, t, f, drain);
            assert_eq!(got, items.iter().map(|x| x * 3).collect::<Vec<_>>(), "{t} threads");
        }
        assert!(map_streamed(&[] as &[u64], 2, |x| *x, drain).is_empty());
    }

    #[test]
    fn a_consumer_that_stops_early_stops_the_workers() {
        let items: Vec<u64> = (0..100_000).collect();
        let done = AtomicUsize::new(0);
        let f = |&x: &u64| {
            done.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_micros(20));
            x
        };
        let first = map_streamed(&items, 2, f, |s| s.wait_next());
        assert_eq!(first, Some(0));
        // Each worker finishes at most the item it holds after the stop.
        assert!(done.load(Ordering::Relaxed) < 10_000, "{} items computed", done.load(Ordering::Relaxed));
    }

    #[test]
    fn a_panic_in_a_streamed_worker_reaches_the_caller() {
        let items: Vec<u64> = (0..100).collect();
        let r = std::panic::catch_unwind(|| {
            map_streamed(&items, 2, |&x| if x == 57 { panic!("item 57") } else { x }, drain)
        });
        assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"item 57"));
    }

    #[test]
    fn explicit_request_wins() {
        assert_eq!(num_threads(Some(3)), 3);
        assert_eq!(num_threads(Some(0)), 1);
        assert!(num_threads(None) >= 1);
    }
}
