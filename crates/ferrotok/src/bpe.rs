//! Byte-pair merging of one pre-token, with tiktoken's exact semantics.
//!
//! The rule: start from single bytes; repeatedly merge the adjacent pair whose concatenation
//! has the lowest rank, the leftmost such pair on ties; stop when no adjacent pair is a token.
//!
//! Two implementations of the same rule:
//! - `merge_small`: a scan of a linked list of parts, O(n²) in the piece length but with tiny
//!   constants; used for pieces up to `SMALL_PIECE` bytes, which is nearly all of them.
//! - `merge_blocked`: a linked list of parts with the pair priorities kept in blocks of 16
//!   bytes under a tournament tree, O(n · (16 + log n)) with cache-friendly constants; used for
//!   long pieces so that a megabyte without a split point stays near linear.
//!
//! Both pick, at every step, the minimum `(rank, start)` among current adjacent pairs, so they
//! perform the same merges in the same order (property-tested below). Both record the rank of
//! each part as it forms (merging a pair of rank r makes a part of rank r), so emitting the
//! result needs no further lookup. Their buffers live in a `Scratch` that the caller reuses
//! across the pieces of a text, so merging allocates nothing in the steady state.

use crate::cache::{PieceCache, ShortKey, LONG_PIECE, SHORT_IDS};
use crate::error::{Error, Result};
use crate::table;
use crate::vocab::{Rank, Vocab};

/// Pieces up to this many bytes use the quadratic scan; longer ones `merge_blocked`. 32 (64
/// before): callgrind counts 7% fewer instructions for cl100k on CJK (many pieces of 33–64
/// bytes) and the same on English and code.
pub const SMALL_PIECE: usize = 32;

const NONE: Rank = Rank::MAX;

/// Buffers reused across pieces.
#[derive(Default, Debug)]
pub struct Scratch {
    /// merge_small: by start byte, `(start of the next part, rank of the pair starting here)`.
    parts: Vec<(u32, Rank)>,
    /// The rank of each part's own bytes, by start byte (for merge_blocked, `NONE` marks a byte
    /// that is no longer a part start).
    part_ranks: Vec<Rank>,
    /// merge_blocked: start of the next part (n at the end) and of the previous one.
    next: Vec<u32>,
    prev: Vec<u32>,
    /// merge_blocked: priority key of the pair starting at each byte.
    keys: Vec<u64>,
    /// merge_blocked: tournament tree over block minima (1-based, leaves at the end).
    tree: Vec<u64>,
    /// count_piece's output.
    out: Vec<Rank>,
    /// Ranks of joined pairs seen before, keyed by the two parts' ranks.
    joins: JoinCache,
    /// Merged pieces seen before on this thread.
    pub(crate) cache: PieceCache,
    /// The id of the vocabulary the two memos (`joins`, `cache`) were filled from.
    vocab: Option<u64>,
}

impl Scratch {
    /// Empty buffers around a piece cache.
    pub fn with_cache(cache: PieceCache) -> Self {
        Self { cache, ..Self::default() }
    }

    /// Empties the memos if they were filled from another vocabulary, so that a scratch
    /// shared between vocabularies never answers for the wrong one (`cache::with_scratch`
    /// never does that; the public functions here must not go wrong if a caller does).
    #[inline]
    fn bind(&mut self, vocab: &Vocab) {
        if self.vocab != Some(vocab.id()) {
            self.vocab = Some(vocab.id());
            self.joins.reset();
            self.cache.clear();
        }
    }
}

/// Appends the ranks of `piece` to `out`. `offset` is the piece's byte offset in the whole
/// text, used only in error messages.
///
/// Inlined into the splitter's loop: a single byte, or a short-table hit (nearly every piece
/// of warm text), costs no call. Everything else is out of line, so that the loop does not
/// save and restore the registers the misses need (20 instructions a piece; callgrind).
#[inline(always)]
pub fn encode_piece(
    vocab: &Vocab,
    piece: &[u8],
    offset: usize,
    out: &mut Vec<Rank>,
    scratch: &mut Scratch,
) -> Result<()> {
    if let [b] = *piece {
        return match vocab.byte_rank(b) {
            Some(r) => {
                out.push(r);
                Ok(())
            }
            None => Err(Error::Unencodable { byte: b, offset }),
        };
    }
    if let Some(k) = ShortKey::of(piece) {
        scratch.bind(vocab);
        if let Some(ids) = scratch.cache.short().get(&k) {
            // At most `SHORT_IDS` ids: pushed one by one, which is cheaper than a copy call.
            for &id in ids {
                out.push(id);
            }
            return Ok(());
        }
        return encode_short_miss(vocab, piece, k, offset, out, scratch);
    }
    encode_long(vocab, piece, offset, out, scratch)
}

/// `encode_piece` for pieces over `cache::SHORT_PIECE` bytes: the vocabulary, then the general
/// or long cache, then merging.
#[inline(never)]
fn encode_long(vocab: &Vocab, piece: &[u8], offset: usize, out: &mut Vec<Rank>, scratch: &mut Scratch) -> Result<()> {
    if let Some(r) = vocab.rank(piece) {
        out.push(r);
        return Ok(());
    }
    if piece.len() > LONG_PIECE {
        return merge(vocab, piece, offset, out, scratch);
    }
    scratch.bind(vocab);
    let h = table::hash(table::head(piece), piece);
    if let Some(ids) = scratch.cache.get(piece, h) {
        out.extend_from_slice(ids);
        return Ok(());
    }
    let start = out.len();
    merge(vocab, piece, offset, out, scratch)?;
    scratch.cache.put(piece, h, &out[start..]);
    Ok(())
}

/// `encode_piece` for pieces of 2..=`cache::SHORT_PIECE` bytes (key `k`) that the short table
/// (one cache line, single tokens included) missed: the vocabulary, then the general cache and
/// merging. Every answer stored is what the vocabulary or merging gave for these exact bytes,
/// so a hit is exact.
#[inline(never)]
fn encode_short_miss(
    vocab: &Vocab,
    piece: &[u8],
    k: ShortKey,
    offset: usize,
    out: &mut Vec<Rank>,
    scratch: &mut Scratch,
) -> Result<()> {
    if let Some(r) = vocab.rank_hashed(piece, k.w0, k.h) {
        out.push(r);
        scratch.cache.short().put(&k, &[r]);
        return Ok(());
    }
    if let Some(ids) = scratch.cache.get(piece, k.h) {
        out.extend_from_slice(ids);
        return Ok(());
    }
    let start = out.len();
    merge_small(vocab, piece, offset, out, scratch)?;
    let ids = &out[start..];
    if ids.len() <= SHORT_IDS {
        scratch.cache.short().put(&k, ids);
    } else {
        scratch.cache.put(piece, k.h, ids);
    }
    Ok(())
}

/// Merges `piece` with the algorithm that is faster for its length.
#[inline]
fn merge(vocab: &Vocab, piece: &[u8], offset: usize, out: &mut Vec<Rank>, scratch: &mut Scratch) -> Result<()> {
    if piece.len() > SMALL_PIECE {
        merge_blocked(vocab, piece, offset, out, scratch)
    } else {
        merge_small(vocab, piece, offset, out, scratch)
    }
}

/// Counts the ranks `encode_piece` would append.
#[inline]
pub fn count_piece(vocab: &Vocab, piece: &[u8], offset: usize, scratch: &mut Scratch) -> Result<usize> {
    if piece.len() == 1 {
        vocab.byte_rank(piece[0]).ok_or_else(|| Error::Unencodable { byte: piece[0], offset })?;
        return Ok(1);
    }
    if vocab.rank(piece).is_some() {
        return Ok(1);
    }
    let mut out = std::mem::take(&mut scratch.out);
    out.clear();
    let r = encode_piece(vocab, piece, offset, &mut out, scratch);
    let n = out.len();
    scratch.out = out;
    r.map(|()| n)
}

#[inline]
fn pair_rank(vocab: &Vocab, piece: &[u8], start: usize, end: usize) -> Rank {
    vocab.rank(&piece[start..end]).unwrap_or(NONE)
}

fn byte_ranks(vocab: &Vocab, piece: &[u8], offset: usize, into: &mut Vec<Rank>) -> Result<()> {
    into.clear();
    for (i, &b) in piece.iter().enumerate() {
        into.push(vocab.byte_rank(b).ok_or_else(|| Error::Unencodable { byte: b, offset: offset + i })?);
    }
    Ok(())
}

/// A small direct-mapped memo of `(left rank, right rank) → rank of the joined bytes`
/// (`NONE` when the join is not a token). Merging asks the same joins again and again
/// (common characters, common affixes); two integers hashed into a table that stays in L1
/// replace hashing the bytes and probing the vocabulary, whose slots miss the cache.
/// Exact because the answer is a pure function of the two tokens, and emptied whenever its
/// `Scratch` moves to another vocabulary (`Scratch::bind`). Allocated on first use, so a
/// scratch that never merges costs nothing.
#[derive(Debug, Default)]
struct JoinCache {
    slots: Box<[(u64, Rank)]>,
}

const JOIN_BITS: u32 = 12;

impl JoinCache {
    fn reset(&mut self) {
        // `u64::MAX` is never a key: ranks are below `NONE`.
        self.slots = vec![(u64::MAX, NONE); 1 << JOIN_BITS].into_boxed_slice();
    }

    /// The rank of `piece[start..end]`, the join of parts of ranks `left` and `right`.
    #[inline(always)]
    fn rank(&mut self, vocab: &Vocab, piece: &[u8], start: usize, end: usize, left: Rank, right: Rank) -> Rank {
        let key = (u64::from(left) << 32) | u64::from(right);
        let i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - JOIN_BITS)) as usize;
        let slot = &mut self.slots[i];
        if slot.0 == key {
            return slot.1;
        }
        let r = pair_rank(vocab, piece, start, end);
        *slot = (key, r);
        r
    }
}

/// tiktoken's rule by scanning: each merge walks the parts for the lowest pair rank (leftmost
/// on ties), O(n²) for a piece of n bytes with tiny constants. Parts are a linked list indexed
/// by start byte (`parts[s] = (start of the next part, rank of the pair starting at s)`), so
/// a merge rewrites two entries instead of shifting two vectors (the `Vec::remove`s it
/// replaced were two copy calls a merge).
pub fn merge_small(
    vocab: &Vocab,
    piece: &[u8],
    offset: usize,
    out: &mut Vec<Rank>,
    scratch: &mut Scratch,
) -> Result<()> {
    let n = piece.len();
    scratch.bind(vocab);
    byte_ranks(vocab, piece, offset, &mut scratch.part_ranks)?;
    let Scratch { part_ranks, parts, joins, .. } = scratch;
    parts.clear();
    parts.extend((0..n).map(|i| {
        let r = if i + 1 < n { vocab.pair_rank(piece[i], piece[i + 1]) } else { NONE };
        ((i + 1) as u32, r)
    }));
    loop {
        // The lowest pair rank, leftmost, and the part before it.
        let (mut best, mut at, mut before) = (NONE, 0, usize::MAX);
        let (mut s, mut p) = (0, usize::MAX);
        while s < n {
            let (next, r) = parts[s];
            if r < best {
                (best, at, before) = (r, s, p);
            }
            p = s;
            s = next as usize;
        }
        if best == NONE {
            break;
        }
        // Join the part at `at` with the next one (which ends at `e`); the pairs that change
        // are the joined part's with the part after it and the one before it with the joined part.
        let e = parts[parts[at].0 as usize].0 as usize;
        part_ranks[at] = best;
        parts[at] = (
            e as u32,
            if e < n { joins.rank(vocab, piece, at, parts[e].0 as usize, best, part_ranks[e]) } else { NONE },
        );
        if before != usize::MAX {
            parts[before].1 = joins.rank(vocab, piece, before, e, part_ranks[before], best);
        }
    }
    let mut s = 0;
    while s < n {
        out.push(part_ranks[s]);
        s = parts[s].0 as usize;
    }
    Ok(())
}

/// Block size of `merge_blocked` (log2): the minimum within a block is found by a linear scan
/// over 16 contiguous keys. Every merge rescans the block of the pair it merged (its key was
/// that block's minimum), so short blocks make a merge cheap; the taller tree costs less than
/// the longer scans saved, even for megabyte pieces (64-key blocks above 4 KB, as before,
/// took 30% more instructions on the runs of the adversarial corpus part; callgrind).
const BLOCK_SHIFT: u32 = 4;

/// `(rank << 32) | start`: ordering keys orders by rank, then leftmost start, which is
/// exactly the merge priority. `u64::MAX` means "no pair here".
#[inline(always)]
fn key(rank: Rank, start: usize) -> u64 {
    if rank == NONE {
        u64::MAX
    } else {
        (u64::from(rank) << 32) | start as u64
    }
}

/// Fills `tree` with the tournament tree over the minima of `keys`' blocks of 2^shift keys
/// (`keys` padded with `u64::MAX` to a multiple of 2^shift)
/// (1-based; the leaves, one per block and padded with `u64::MAX` to a power of two, at the
/// end) and returns the number of leaves. Shared with the `tokenizer.json` merge
/// (`hf::general::blocked_merge`).
pub(crate) fn build_tree(keys: &[u64], tree: &mut Vec<u64>, shift: u32) -> usize {
    let leaves = keys.len().div_ceil(1 << shift).next_power_of_two();
    tree.clear();
    tree.resize(2 * leaves, u64::MAX);
    for (b, chunk) in keys.chunks(1 << shift).enumerate() {
        tree[leaves + b] = chunk.iter().copied().min().unwrap_or(u64::MAX);
    }
    for i in (1..leaves).rev() {
        tree[i] = tree[2 * i].min(tree[2 * i + 1]);
    }
    leaves
}

/// Recomputes the minimum of block `b` of `keys` and the tree above it, stopping at the first
/// node whose minimum is unchanged (then nothing above it changes either). `keys` is padded
/// with `u64::MAX` to whole blocks, so a block of 16 is a fixed-size array whose minimum
/// compiles to straight-line code (the loop over a slice of up to 16 took about 190
/// instructions a call; callgrind, Llama 3 CJK).
#[inline]
pub(crate) fn refresh_block(keys: &[u64], tree: &mut [u64], leaves: usize, shift: u32, b: usize) {
    let lo = b << shift;
    let mut i = leaves + b;
    let block = &keys[lo..lo + (1 << shift)];
    tree[i] = match <&[u64; 16]>::try_from(block) {
        Ok(block) => block.iter().copied().fold(u64::MAX, u64::min),
        Err(_) => block.iter().copied().fold(u64::MAX, u64::min),
    };
    while i > 1 {
        i /= 2;
        let m = tree[2 * i].min(tree[2 * i + 1]);
        if tree[i] == m {
            break;
        }
        tree[i] = m;
    }
}

/// Merge for long pieces: a doubly linked list of parts indexed by start byte, the priority
/// key of the pair starting at each byte, the minimum key of each block of 2^shift bytes, and
/// a tournament tree over the block minima. A merge changes at most three keys (the merged
/// pair's left part, the dead right part, the part before), so it rescans at most three
/// blocks and walks three leaf-to-root paths: O(2^shift + log(n / 2^shift)) per merge, and
/// the tree (n / 2^shift entries) stays in cache, unlike a binary heap over every pair, whose
/// sift-downs missed the cache on every level for megabyte pieces.
pub fn merge_blocked(
    vocab: &Vocab,
    piece: &[u8],
    offset: usize,
    out: &mut Vec<Rank>,
    scratch: &mut Scratch,
) -> Result<()> {
    merge_blocked_by(vocab, piece, offset, out, scratch, BLOCK_SHIFT, MAX_BLOCKED_PIECE)
}

/// Longest piece `merge_blocked` takes: its links and keys hold byte positions as `u32`,
/// with `n` itself the end marker.
pub const MAX_BLOCKED_PIECE: usize = u32::MAX as usize;

fn merge_blocked_by(
    vocab: &Vocab,
    piece: &[u8],
    offset: usize,
    out: &mut Vec<Rank>,
    scratch: &mut Scratch,
    shift: u32,
    max_len: usize,
) -> Result<()> {
    let n = piece.len();
    if n > max_len {
        return Err(Error::TooLong { what: "a pre-tokenized piece", len: n, offset, limit: max_len });
    }
    scratch.bind(vocab);
    let Scratch { part_ranks: part_rank, next, prev, keys, tree, joins, .. } = scratch;
    byte_ranks(vocab, piece, offset, part_rank)?;
    next.clear();
    next.extend(1..=n as u32);
    prev.clear();
    prev.extend((0..n as u32).map(|i| i.wrapping_sub(1)));
    keys.clear();
    keys.extend((0..n - 1).map(|i| key(vocab.pair_rank(piece[i], piece[i + 1]), i)));
    // Padded to whole blocks (see `refresh_block`).
    keys.resize(n.next_multiple_of(1 << shift), u64::MAX);
    let leaves = build_tree(keys, tree, shift);
    let refresh = |keys: &[u64], tree: &mut [u64], b: usize| refresh_block(keys, tree, leaves, shift, b);
    let mut pair_key =
        |s: usize, e: usize, left: Rank, right: Rank| key(joins.rank(vocab, piece, s, e, left, right), s);
    loop {
        let top = tree[1];
        if top == u64::MAX {
            break;
        }
        let (r, l) = ((top >> 32) as Rank, (top & 0xFFFF_FFFF) as usize);
        let m = next[l] as usize;
        let e = next[m] as usize;
        part_rank[m] = NONE;
        part_rank[l] = r;
        keys[m] = u64::MAX;
        next[l] = e as u32;
        if e < n {
            prev[e] = l as u32;
            keys[l] = pair_key(l, next[e] as usize, r, part_rank[e]);
        } else {
            keys[l] = u64::MAX;
        }
        let p = prev[l];
        if p != u32::MAX {
            let p = p as usize;
            keys[p] = pair_key(p, e, part_rank[p], r);
        }
        // Blocks only grow to the right (p < l < m), so the distinct blocks are in order.
        let (bl, bm) = (l >> shift, m >> shift);
        if p != u32::MAX && (p as usize >> shift) != bl {
            refresh(keys, tree, p as usize >> shift);
        }
        refresh(keys, tree, bl);
        if bm != bl {
            refresh(keys, tree, bm);
        }
    }
    let mut s = 0;
    while s < n {
        out.push(part_rank[s]);
        s = next[s] as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A small vocabulary over {a, b, c} plus all bytes, with overlapping multi-byte tokens.
    fn toy() -> Vocab {
        let mut pairs: Vec<(Vec<u8>, Rank)> = (0..=255u8).map(|b| (vec![b], b as Rank)).collect();
        for (i, t) in ["ab", "bc", "aa", "abc", "aaaa", "ca", "bca", "aab", "cc", "ccc", "abab"].iter().enumerate() {
            pairs.push((t.as_bytes().to_vec(), 256 + i as Rank));
        }
        Vocab::from_pairs(pairs).unwrap()
    }

    type Merge = fn(&Vocab, &[u8], usize, &mut Vec<Rank>, &mut Scratch) -> Result<()>;

    fn run(f: Merge, v: &Vocab, s: &[u8]) -> Vec<Rank> {
        let mut out = Vec::new();
        f(v, s, 0, &mut out, &mut Scratch::default()).unwrap();
        out
    }

    #[test]
    fn merges_lowest_rank_leftmost_first() {
        let v = toy();
        // "aaa": pairs aa@0 and aa@1 tie; leftmost wins → [aa, a].
        assert_eq!(run(merge_small, &v, b"aaa"), vec![258, 97]);
        assert_eq!(run(merge_blocked, &v, b"aaa"), vec![258, 97]);
        // "abc": ab (256) before bc (257), then abc (259).
        assert_eq!(run(merge_small, &v, b"abc"), vec![259]);
        assert_eq!(run(merge_blocked, &v, b"abcx"), vec![259, 120]);
    }

    #[test]
    fn reports_bytes_without_a_token() {
        let v = Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"b".to_vec(), 1)]).unwrap();
        let mut s = Scratch::default();
        for f in [merge_small as Merge, merge_blocked] {
            let err = f(&v, b"abz", 10, &mut Vec::new(), &mut s).unwrap_err();
            assert!(matches!(err, Error::Unencodable { byte: b'z', offset: 12 }), "{err:?}");
        }
    }

    #[test]
    fn a_scratch_moved_to_another_vocabulary_forgets_the_first() {
        let v1 = toy();
        // Same bytes, other ranks: "ab" is a token in v1 only, "bc" in v2 only.
        let mut pairs: Vec<(Vec<u8>, Rank)> = (0..=255u8).map(|b| (vec![b], b as Rank)).collect();
        pairs.push((b"bc".to_vec(), 300));
        let v2 = Vocab::from_pairs(pairs).unwrap();
        let mut s = Scratch::default();
        for piece in [&b"abcab"[..], &[b'a'; 100][..]] {
            let mut first = Vec::new();
            encode_piece(&v1, piece, 0, &mut first, &mut s).unwrap();
            let mut second = Vec::new();
            encode_piece(&v2, piece, 0, &mut second, &mut s).unwrap();
            let mut fresh = Vec::new();
            encode_piece(&v2, piece, 0, &mut fresh, &mut Scratch::default()).unwrap();
            assert_eq!(second, fresh);
            assert_ne!(first, second);
        }
    }

    /// A piece longer than the merge's `u32` positions can index is refused with its length
    /// and offset (checked with a small limit; the real one, 4 GiB, needs tens of GiB to reach).
    #[test]
    fn a_piece_longer_than_the_position_limit_is_refused() {
        let v = toy();
        let mut out = vec![7];
        let r = merge_blocked_by(&v, &[b'a'; 65], 1000, &mut out, &mut Scratch::default(), BLOCK_SHIFT, 64);
        assert!(matches!(r, Err(Error::TooLong { len: 65, offset: 1000, limit: 64, .. })), "{r:?}");
        assert_eq!(out, [7], "nothing appended");
        merge_blocked_by(&v, &[b'a'; 64], 0, &mut out, &mut Scratch::default(), BLOCK_SHIFT, 64).unwrap();
        assert_eq!(out[1..], run(merge_small, &v, &[b'a'; 64]));
    }

    proptest! {
        #[test]
        fn blocked_and_scan_agree(s in "[abc]{2,600}") {
            let v = toy();
            let small = run(merge_small, &v, s.as_bytes());
            for shift in [BLOCK_SHIFT, 6, 1] {
                let mut out = Vec::new();
                merge_blocked_by(&v, s.as_bytes(), 0, &mut out, &mut Scratch::default(), shift, MAX_BLOCKED_PIECE)
                    .unwrap();
                prop_assert_eq!(&small, &out, "block shift {}", shift);
            }
        }

        #[test]
        fn scratch_reuse_changes_nothing(a in "[abc]{2,100}", b in "[abc]{2,100}") {
            let v = toy();
            let mut s = Scratch::default();
            for f in [merge_small as Merge, merge_blocked] {
                let mut out = Vec::new();
                f(&v, a.as_bytes(), 0, &mut out, &mut s).unwrap();
                let split = out.len();
                f(&v, b.as_bytes(), 0, &mut out, &mut s).unwrap();
                prop_assert_eq!(&out[..split], run(f, &v, a.as_bytes()));
                prop_assert_eq!(&out[split..], run(f, &v, b.as_bytes()));
            }
        }
    }
}
