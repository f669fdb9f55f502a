//! A per-thread cache of encoded pieces: piece bytes → ids. Three tables per vocabulary:
//! the short table for pieces of 2 to `SHORT_PIECE` bytes that encode to at most `SHORT_IDS`
//! ids (single tokens included), inline in one cache line per set; the general table for
//! the other pieces of at most `MAX_PIECE` bytes that are not a single token; and the long
//! table for pieces of up to `LONG_PIECE` bytes, under a byte budget.
//!
//! Caching: 2-way set-associative (a new entry drops the older of its set), so memory is
//! bounded by the slot count whatever the text, and a lookup is one hash and at most two
//! comparisons in one set. Entries are a pure function of the piece bytes and the vocabulary,
//! so a hit returns exactly what merging would; the cache is keyed by the vocabulary's unique
//! id, never by an address that could be reused.
//!
//! Threading: each thread has its own caches (at most `MAX_VOCABS`, the least recently used
//! one is dropped), so there is no lock and no sharing; a batch's worker threads are kept
//! between batches (`parallel`), and their caches with them. `FERROTOK_CACHE_SLOTS` sets the slots per cache
//! (a power of two; 0 disables caching) and with it the long table's budget (256 bytes a
//! slot), read once per thread.

use std::cell::RefCell;

use crate::bpe::Scratch;

/// Longest piece in the general table (CJK text has about a tenth of its bytes in pieces of
/// 65 to 256 bytes); longer ones go to the long table.
pub const MAX_PIECE: usize = 256;
/// Longest piece that is cached at all (in the long table).
pub const LONG_PIECE: usize = 1 << 16;
/// Slots of the long table (512 sets of 2; 40 bytes each when empty).
const LONG_SLOTS: usize = 1024;
/// Bytes of keys and ids the long table may hold per general slot: 4 MiB at the default.
const LONG_BYTES_PER_SLOT: usize = 256;
/// Default slots per cache: about 4 MiB of tables per thread and vocabulary (the short
/// table 2 MiB, the general one 1.8 MiB), plus the general entries' buffers.
pub const DEFAULT_SLOTS: usize = 1 << 14;
const MAX_VOCABS: usize = 4;
/// The environment variable that sets the slots per cache.
pub const SLOTS_ENV: &str = "FERROTOK_CACHE_SLOTS";

/// A slot. Its buffers are reused when the slot is overwritten, so a cache that has warmed up
/// allocates nothing (they hold at most `MAX_PIECE` bytes and as many ids).
#[derive(Default, Debug)]
struct Entry {
    /// The piece's hash, compared before the bytes so that most misses touch only the slot.
    hash: u64,
    key: Vec<u8>,
    ids: Vec<u32>,
}

impl Entry {
    #[inline(always)]
    fn is(&self, piece: &[u8], h: u64) -> bool {
        self.hash == h && *self.key == *piece
    }
}

/// Longest piece kept in the short table (two machine words of key).
pub const SHORT_PIECE: usize = 16;
/// Short-table entries per general slot: 4 (2 MiB at the default 16384 slots), since nearly
/// every piece of real text lands there (measured on 2 MB of English: 32k distinct pieces, of
/// which a table of 16384 entries kept too few to make a warm pass much faster than a cold one).
const SHORT_PER_SLOT: usize = 4;
/// General-table entries per slot: 2 (32768 at the default, 1.8 MiB of slots plus the
/// entries' buffers). CJK text has about 16k distinct multi-token pieces per MB; twice the
/// slots cut callgrind's estimate of a warm cl100k pass over 2 MB of it by a third, four
/// times by more than half, at twice the memory again.
const GENERAL_PER_SLOT: usize = 2;
/// Most ids a short-table entry holds.
pub const SHORT_IDS: usize = 3;

/// A short-table entry: a piece of at most `SHORT_PIECE` bytes (as its two zero-padded
/// little-endian words and its length) and its at most `SHORT_IDS` ids, inline in 32 bytes.
/// `len == 0` marks an empty entry (pieces in the table have at least 2 bytes).
#[derive(Clone, Copy, Default, Debug)]
#[repr(C, align(32))]
struct Short {
    w0: u64,
    w1: u64,
    len: u8,
    n: u8,
    ids: [u32; SHORT_IDS],
}

impl Short {
    #[inline(always)]
    fn is(&self, w0: u64, w1: u64, len: usize) -> bool {
        self.w0 == w0 && self.w1 == w1 && usize::from(self.len) == len
    }
}

/// Two entries in one 64-byte cache line: a 2-way set, so that two hot pieces whose hashes
/// meet do not evict each other (a direct-mapped table of the same size re-merged about a
/// fifth of the multi-token pieces of English on every warm pass). The first way holds the
/// entry inserted or hit last; a hit in the second swaps them; an insert pushes the first
/// into the second, dropping the second.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C, align(64))]
struct ShortSet([Short; 2]);

/// One vocabulary's cache: the short table for pieces of up to `SHORT_PIECE` bytes that
/// encode to at most `SHORT_IDS` ids (single tokens included: a hit there is cheaper than a
/// vocabulary probe, whose slots mostly live in L3), and the general table for the rest.
#[derive(Debug, Default)]
pub struct PieceCache {
    slots: Vec<Entry>,
    short: ShortTable,
    long: LongTable,
}

/// Pieces of `MAX_PIECE` to `LONG_PIECE` bytes: runs of one character, long words without a
/// split point, blobs. Rare in real text, but each costs tens of nanoseconds a byte to merge
/// (hashing it costs about one), and text that has one tends to repeat it (indentation, rules
/// of `=`, the same blob). 2-way sets, as the other tables (the first way holds the entry
/// stored or hit last); unlike them its entries are sized exactly and freed when dropped, and
/// the bytes of keys and ids it holds never exceed `budget`: an entry that would overflow it
/// is not stored. (128 direct-mapped slots, before, lost about a third of the 97 long pieces
/// of the first megabyte of the adversarial corpus part to collisions on every pass.)
/// A long-table entry: the piece's hash, its bytes and its ids.
type LongEntry = (u64, Box<[u8]>, Box<[u32]>);

#[derive(Debug, Default)]
struct LongTable {
    slots: Vec<Option<LongEntry>>,
    used: usize,
    budget: usize,
}

impl LongTable {
    fn new(slots: usize) -> Self {
        let n = if slots == 0 { 0 } else { LONG_SLOTS };
        Self { slots: vec![None; n], used: 0, budget: slots.saturating_mul(LONG_BYTES_PER_SLOT) }
    }

    fn clear(&mut self) {
        self.slots.fill(None);
        self.used = 0;
    }

    /// The two slots of the set for hash `h` (none when caching is off).
    fn set(&mut self, h: u64) -> Option<&mut [Option<LongEntry>]> {
        let sets = self.slots.len() / 2;
        let first = (h as usize & sets.checked_sub(1)?) * 2;
        self.slots.get_mut(first..first + 2)
    }

    fn get(&mut self, piece: &[u8], h: u64) -> Option<&[u32]> {
        let is = |e: &Option<LongEntry>| matches!(e, Some((eh, key, _)) if *eh == h && **key == *piece);
        let set = self.set(h)?;
        if !is(&set[0]) {
            if !is(&set[1]) {
                return None;
            }
            set.swap(0, 1);
        }
        set[0].as_ref().map(|(_, _, ids)| &**ids)
    }

    /// Stores `ids` for `piece` in the first way of its set, the second way's entry dropped
    /// (and the first moved there), if the budget allows.
    fn put(&mut self, piece: &[u8], h: u64, ids: &[u32]) {
        let Some(set) = self.set(h) else { return };
        let dropped = set[1].take();
        set.swap(0, 1);
        if let Some((_, key, old)) = dropped {
            self.used -= Self::cost(&key, &old);
        }
        let cost = Self::cost(piece, ids);
        if self.used + cost <= self.budget {
            self.used += cost;
            if let Some(set) = self.set(h) {
                set[0] = Some((h, piece.into(), ids.into()));
            }
        }
    }

    fn cost(key: &[u8], ids: &[u32]) -> usize {
        key.len() + std::mem::size_of_val(ids)
    }
}

/// The short table alone: 2-way sets of `Short` entries (see `ShortSet`), inside each
/// `PieceCache`; the `tokenizer.json` byte-level path uses it too, in front of its own caches.
#[derive(Debug, Default)]
pub struct ShortTable {
    sets: Vec<ShortSet>,
}

/// Where a piece of 2..=`SHORT_PIECE` bytes goes in a short table: its two words
/// (`table::head`, `table::second`), its length, and `table::hash` of it (the hash the
/// vocabulary's `TokenTable` uses too, so one computation serves both).
#[derive(Clone, Copy, Debug)]
pub struct ShortKey {
    pub w0: u64,
    pub w1: u64,
    pub len: usize,
    pub h: u64,
}

impl ShortKey {
    /// The key of `piece`, if it is short enough (and not a single byte).
    #[inline(always)]
    pub fn of(piece: &[u8]) -> Option<Self> {
        let len = piece.len();
        if !(2..=SHORT_PIECE).contains(&len) {
            return None;
        }
        let (w0, w1) = (crate::table::head(piece), crate::table::second(piece));
        Some(Self { w0, w1, len, h: crate::table::hash16(w0, w1, len) })
    }
}

impl ShortTable {
    /// A table of `entries` entries (a power of two, or 0 for none).
    pub fn new(entries: usize) -> Self {
        Self { sets: vec![ShortSet::default(); entries / 2] }
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.sets.fill(ShortSet::default());
    }

    /// The ids stored for the piece of key `k`.
    #[inline(always)]
    pub fn get(&mut self, k: &ShortKey) -> Option<&[u32]> {
        let mask = self.sets.len().wrapping_sub(1);
        let set = &mut self.sets.get_mut(k.h as usize & mask)?.0;
        if !set[0].is(k.w0, k.w1, k.len) {
            if !set[1].is(k.w0, k.w1, k.len) {
                return None;
            }
            set.swap(0, 1);
        }
        Some(&set[0].ids[..usize::from(set[0].n)])
    }

    /// Stores `ids` (at most `SHORT_IDS`; more are not stored) for the piece of key `k`.
    #[inline(always)]
    pub fn put(&mut self, k: &ShortKey, ids: &[u32]) {
        let mask = self.sets.len().wrapping_sub(1);
        let (Some(set), Ok(n), Ok(len)) =
            (self.sets.get_mut(k.h as usize & mask), u8::try_from(ids.len()), u8::try_from(k.len))
        else {
            return;
        };
        let mut e = Short { w0: k.w0, w1: k.w1, len, n, ids: [0; SHORT_IDS] };
        let Some(dst) = e.ids.get_mut(..ids.len()) else { return };
        dst.copy_from_slice(ids);
        set.0[1] = set.0[0];
        set.0[0] = e;
    }
}

impl PieceCache {
    fn new(slots: usize) -> Self {
        Self {
            // At least one set of two (a cache of one slot is a cache of one set).
            slots: std::iter::repeat_with(Entry::default)
                .take(if slots == 0 { 0 } else { (slots * GENERAL_PER_SLOT).max(2) })
                .collect(),
            short: ShortTable::new(slots * SHORT_PER_SLOT),
            long: LongTable::new(slots),
        }
    }

    /// Forgets every entry (the slots keep their buffers).
    pub fn clear(&mut self) {
        for e in &mut self.slots {
            e.hash = 0;
            e.key.clear();
            e.ids.clear();
        }
        self.short.clear();
        self.long.clear();
    }

    /// The cached ids of `piece` (whose hash is `h`), if present. The general table is
    /// 2-way too: slots `2k` and `2k + 1` form a set, the first holding the entry inserted or
    /// hit last.
    /// Pieces over `MAX_PIECE` bytes are looked up in the long table.
    #[inline]
    pub fn get(&mut self, piece: &[u8], h: u64) -> Option<&[u32]> {
        if piece.len() > MAX_PIECE {
            return self.long.get(piece, h);
        }
        let set = self.set(h)?;
        if !set[0].is(piece, h) {
            if !set[1].is(piece, h) {
                return None;
            }
            set.swap(0, 1);
        }
        Some(&*set[0].ids)
    }

    /// Stores `ids` for `piece`, dropping the older entry of its set.
    #[inline]
    pub fn put(&mut self, piece: &[u8], h: u64, ids: &[u32]) {
        if piece.len() > MAX_PIECE {
            return self.long.put(piece, h, ids);
        }
        let Some(set) = self.set(h) else { return };
        // The older entry moves to the front to be overwritten (its buffers reused), the
        // newer one becomes the second.
        set.swap(0, 1);
        let e = &mut set[0];
        e.hash = h;
        e.key.clear();
        e.key.extend_from_slice(piece);
        e.ids.clear();
        e.ids.extend_from_slice(ids);
    }

    /// The two slots of the general table's set for hash `h` (none when caching is off).
    #[inline(always)]
    fn set(&mut self, h: u64) -> Option<&mut [Entry]> {
        let sets = self.slots.len() / 2;
        if sets == 0 {
            return None;
        }
        let first = (h as usize & (sets - 1)) * 2;
        self.slots.get_mut(first..first + 2)
    }

    /// This vocabulary's short table.
    #[inline(always)]
    pub fn short(&mut self) -> &mut ShortTable {
        &mut self.short
    }
}

fn slots_from_env() -> usize {
    std::env::var(SLOTS_ENV).ok().and_then(|v| v.trim().parse::<usize>().ok()).map_or(DEFAULT_SLOTS, |n| {
        if n == 0 {
            0
        } else {
            n.next_power_of_two()
        }
    })
}

thread_local! {
    /// `(vocabulary id, scratch with its cache)`, most recently used last.
    static SCRATCH: RefCell<(usize, Vec<(u64, Scratch)>)> = RefCell::new((slots_from_env(), Vec::new()));
}

/// Runs `f` with this thread's scratch buffers and piece cache for vocabulary `vocab_id`.
pub fn with_scratch<T>(vocab_id: u64, f: impl FnOnce(&mut Scratch) -> T) -> T {
    // Take the scratch out of the thread-local for the duration of `f`, so that nothing is
    // borrowed while `f` runs, then put it back (most recently used last).
    let taken = SCRATCH.try_with(|cell| {
        let mut guard = cell.borrow_mut();
        let (slots, list) = &mut *guard;
        match list.iter().position(|(id, _)| *id == vocab_id) {
            Some(i) => list.remove(i).1,
            None => Scratch::with_cache(PieceCache::new(*slots)),
        }
    });
    let Ok(mut scratch) = taken else {
        // The thread is shutting down: work without a cache.
        return f(&mut Scratch::default());
    };
    let result = f(&mut scratch);
    let _ = SCRATCH.try_with(|cell| {
        let mut guard = cell.borrow_mut();
        let list = &mut guard.1;
        if list.len() >= MAX_VOCABS {
            list.remove(0);
        }
        list.push((vocab_id, scratch));
    });
    result
}

/// A two-generation map from words to what they encode to, for one owner (a tokenizer's
/// unique id, from [`next_owner_id`]; another owner's first insert empties it). At most
/// `WORDS` words: a full young generation becomes the old one (the previous old one is
/// dropped), and a hit in the old generation moves the word back to the young one, so
/// frequent words stay, at O(1) per word. Used per thread, for the `tokenizer.json` and
/// SentencePiece models; exact because a word's ids depend only on the word.
pub(crate) struct WordCache<V> {
    owner: u64,
    young: rustc_hash::FxHashMap<Box<[u8]>, V>,
    old: rustc_hash::FxHashMap<Box<[u8]>, V>,
}

impl<V> Default for WordCache<V> {
    fn default() -> Self {
        Self { owner: 0, young: Default::default(), old: Default::default() }
    }
}

impl<V> WordCache<V> {
    pub(crate) const WORDS: usize = 1 << 16;

    /// Calls `hit` with the value cached for `word` under `owner`, and says whether there
    /// was one.
    pub(crate) fn lookup(&mut self, owner: u64, word: &[u8], hit: impl FnOnce(&V)) -> bool {
        if self.owner != owner {
            return false;
        }
        if let Some(v) = self.young.get(word) {
            hit(v);
            return true;
        }
        let Some((word, v)) = self.old.remove_entry(word) else { return false };
        hit(&v);
        self.insert(owner, word, v);
        true
    }

    pub(crate) fn insert(&mut self, owner: u64, word: Box<[u8]>, value: V) {
        if self.owner != owner {
            *self = Self { owner, ..Self::default() };
        }
        if self.young.len() >= Self::WORDS / 2 {
            self.old = std::mem::take(&mut self.young);
        }
        if self.young.capacity() == 0 {
            self.young.reserve(Self::WORDS / 2);
        }
        self.young.insert(word, value);
    }
}

static NEXT_OWNER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A process-unique id for a loaded tokenizer (the owner of its cache entries; never reused,
/// unlike an address).
pub(crate) fn next_owner_id() -> u64 {
    NEXT_OWNER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_way_sets_replace_the_older_and_never_confuse_keys() {
        // Two slots: one set, so every hash meets there.
        let mut c = PieceCache::new(2);
        c.put(b"abc", 0, &[1, 2]);
        assert_eq!(c.get(b"abc", 0), Some(&[1, 2][..]));
        assert_eq!(c.get(b"abd", 0), None, "same set, other key");
        assert_eq!(c.get(b"abc", 1), None, "same key, other hash");
        c.put(b"xyz", 2, &[9]);
        assert_eq!(c.get(b"abc", 0), Some(&[1, 2][..]), "second way");
        assert_eq!(c.get(b"xyz", 2), Some(&[9][..]));
        c.put(b"uvw", 4, &[5, 6, 7]);
        assert_eq!(c.get(b"abc", 0), None, "the older entry was dropped");
        assert_eq!(c.get(b"xyz", 2), Some(&[9][..]), "hit last: kept");
        assert_eq!(c.get(b"uvw", 4), Some(&[5, 6, 7][..]));
        let mut off = PieceCache::new(0);
        assert_eq!(off.get(b"abc", 0), None);
        let k = ShortKey { w0: 1, w1: 0, len: 2, h: 0 };
        assert_eq!(off.short().get(&k), None);
    }

    #[test]
    fn the_long_table_keeps_within_its_budget() {
        // 8 slots: a budget of 2048 bytes of keys and ids. Hashes h and h + SETS share a set.
        const SETS: u64 = LONG_SLOTS as u64 / 2;
        let mut c = PieceCache::new(8);
        let a = vec![b'a'; 300];
        c.put(&a, 7, &[1, 2, 3]);
        assert_eq!(c.get(&a, 7), Some(&[1, 2, 3][..]));
        assert_eq!(c.get(&a, 7 + SETS), None, "same key, other hash");
        let mut b = a.clone();
        b[299] = b'b';
        assert_eq!(c.get(&b, 7), None, "same set, other key");
        assert_eq!(c.long.used, 300 + 12);
        // Two entries share a set; a hit in the second way keeps that one.
        c.put(&b, 7 + SETS, &[4]);
        assert_eq!(c.long.used, 2 * 300 + 16);
        assert_eq!(c.get(&a, 7), Some(&[1, 2, 3][..]), "second way");
        assert_eq!(c.get(&b, 7 + SETS), Some(&[4][..]), "first way");
        assert_eq!(c.get(&a, 7), Some(&[1, 2, 3][..]), "hit last");
        // A third entry in the set drops the older one (b) and frees its bytes.
        let big = vec![b'c'; 700];
        c.put(&big, 7, &[9; 10]);
        assert_eq!(c.get(&b, 7 + SETS), None, "dropped");
        assert_eq!(c.get(&big, 7), Some(&[9; 10][..]));
        assert_eq!(c.get(&a, 7), Some(&[1, 2, 3][..]));
        assert_eq!(c.long.used, 312 + 740);
        // A piece that does not fit in what is left of the budget is not stored.
        c.put(&big, 8, &[9; 10]);
        assert_eq!(c.long.used, 312 + 2 * 740);
        let huge = vec![b'd'; 2000];
        c.put(&huge, 9, &[1]);
        assert_eq!(c.get(&huge, 9), None, "over the budget");
        assert_eq!(c.get(&big, 8), Some(&[9; 10][..]), "others stay");
        c.clear();
        assert_eq!(c.long.used, 0);
        assert_eq!(c.get(&big, 7), None);
        let mut off = PieceCache::new(0);
        off.put(&a, 7, &[1]);
        assert_eq!(off.get(&a, 7), None, "caching off");
    }

    #[test]
    fn short_table_keys_on_both_words_and_the_length() {
        // 4 entries: 2 sets of 2; the odd hashes 1, 5 and 9 share set 1.
        let mut c = ShortTable::new(4);
        let k = |w0, w1, len, h| ShortKey { w0, w1, len, h };
        c.put(&k(0x6261, 0, 2, 1), &[7]);
        assert_eq!(c.get(&k(0x6261, 0, 2, 1)), Some(&[7][..]));
        assert_eq!(c.get(&k(0x6261, 0, 3, 1)), None, "same words, other length (a trailing NUL)");
        assert_eq!(c.get(&k(0x6261, 5, 2, 1)), None, "other second word");
        c.put(&k(0x6162, 9, 12, 5), &[1, 2, 3]);
        assert_eq!(c.get(&k(0x6261, 0, 2, 1)), Some(&[7][..]), "second way");
        assert_eq!(c.get(&k(0x6162, 9, 12, 5)), Some(&[1, 2, 3][..]), "first way");
        c.put(&k(0x6164, 0, 4, 9), &[4]);
        assert_eq!(c.get(&k(0x6261, 0, 2, 1)), None, "the set's older entry was dropped");
        assert_eq!(c.get(&k(0x6162, 9, 12, 5)), Some(&[1, 2, 3][..]), "hit last: kept");
        assert_eq!(c.get(&k(0x6164, 0, 4, 9)), Some(&[4][..]));
        c.put(&k(0x6163, 0, 4, 2), &[1, 2, 3, 4]);
        assert_eq!(c.get(&k(0x6163, 0, 4, 2)), None, "too many ids: not stored");
        c.clear();
        assert_eq!(c.get(&k(0x6162, 9, 12, 5)), None, "cleared");
        let piece = b"hello world!";
        let key = ShortKey::of(piece).unwrap();
        assert_eq!(key.h, crate::table::hash(crate::table::head(piece), piece), "the vocabulary's hash");
        assert!(ShortKey::of(b"x").is_none() && ShortKey::of(&[b'a'; 17]).is_none());
    }
}
