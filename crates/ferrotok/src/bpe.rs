//! Byte-pair merging of one pre-token, with tiktoken's exact semantics.
//!
//! The rule: start from single bytes; repeatedly merge the adjacent pair whose concatenation
//! has the lowest rank, the leftmost such pair on ties; stop when no adjacent pair is a token.
//!
//! Two implementations of the same rule:
//! - `merge_small`: tiktoken's scan, O(n²) in the piece length but with tiny constants; used
//!   for pieces up to `SMALL_PIECE` bytes, which is nearly all of them.
//! - `merge_heap`: a min-heap of `(rank, left start)` over a linked list of parts, O(n log n);
//!   used for long pieces so that a megabyte without a split point stays near linear.
//!
//! Both pick, at every step, the minimum `(rank, start)` among current adjacent pairs, so they
//! perform the same merges in the same order (property-tested below).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::error::{Error, Result};
use crate::vocab::{Rank, Vocab};

/// Pieces up to this many bytes use the quadratic scan; longer ones the heap.
pub const SMALL_PIECE: usize = 64;

const NONE: Rank = Rank::MAX;

/// Appends the ranks of `piece` to `out`. `offset` is the piece's byte offset in the whole
/// text, used only in error messages.
#[inline]
pub fn encode_piece(vocab: &Vocab, piece: &[u8], offset: usize, out: &mut Vec<Rank>) -> Result<()> {
    if piece.len() == 1 {
        let r = vocab.byte_rank(piece[0]).ok_or_else(|| Error::Unencodable { byte: piece[0], offset })?;
        out.push(r);
        return Ok(());
    }
    if let Some(r) = vocab.rank(piece) {
        out.push(r);
        return Ok(());
    }
    if piece.len() <= SMALL_PIECE {
        merge_small(vocab, piece, offset, out)
    } else {
        merge_heap(vocab, piece, offset, out)
    }
}

/// Counts the ranks `encode_piece` would append.
#[inline]
pub fn count_piece(vocab: &Vocab, piece: &[u8], offset: usize, scratch: &mut Vec<Rank>) -> Result<usize> {
    if piece.len() == 1 || vocab.rank(piece).is_some() {
        if piece.len() == 1 && vocab.byte_rank(piece[0]).is_none() {
            return Err(Error::Unencodable { byte: piece[0], offset });
        }
        return Ok(1);
    }
    scratch.clear();
    encode_piece(vocab, piece, offset, scratch)?;
    Ok(scratch.len())
}

#[inline]
fn pair_rank(vocab: &Vocab, piece: &[u8], start: usize, end: usize) -> Rank {
    vocab.rank(&piece[start..end]).unwrap_or(NONE)
}

/// tiktoken's scan. `parts[i] = (start, rank of the pair starting at part i)`; the last two
/// entries are sentinels so that `parts[i + 2].0` is always the end of the pair.
pub fn merge_small(vocab: &Vocab, piece: &[u8], offset: usize, out: &mut Vec<Rank>) -> Result<()> {
    let n = piece.len();
    let mut parts: Vec<(usize, Rank)> = Vec::with_capacity(n + 1);
    // The rank of each part's own bytes, kept in step with `parts` (merging a pair of rank r
    // makes a part of rank r), so no lookup is needed to emit the result.
    let mut part_ranks: Vec<Rank> = Vec::with_capacity(n);
    for (i, &b) in piece.iter().enumerate() {
        part_ranks.push(vocab.byte_rank(b).ok_or_else(|| Error::Unencodable { byte: b, offset: offset + i })?);
    }
    let mut min = (NONE, usize::MAX);
    for i in 0..n - 1 {
        let r = vocab.pair_rank(piece[i], piece[i + 1]);
        if r < min.0 {
            min = (r, i);
        }
        parts.push((i, r));
    }
    parts.push((n - 1, NONE));
    parts.push((n, NONE));

    while min.0 != NONE {
        let i = min.1;
        // Recompute the ranks of the pairs that change: the one starting at i (now i and i+2)
        // and the one ending at i (starting at i-1).
        if i > 0 {
            parts[i - 1].1 = rank_after_merge(vocab, piece, &parts, i - 1);
        }
        parts[i].1 = rank_after_merge(vocab, piece, &parts, i);
        parts.remove(i + 1);
        part_ranks[i] = min.0;
        part_ranks.remove(i + 1);

        min = (NONE, usize::MAX);
        for (j, &(_, r)) in parts[..parts.len() - 1].iter().enumerate() {
            if r < min.0 {
                min = (r, j);
            }
        }
    }
    out.extend_from_slice(&part_ranks);
    Ok(())
}

/// The rank of the pair starting at part `i` once parts `i+1` and `i+2` have been merged
/// (the merge is applied by the caller after this returns).
#[inline]
fn rank_after_merge(vocab: &Vocab, piece: &[u8], parts: &[(usize, Rank)], i: usize) -> Rank {
    if i + 3 < parts.len() {
        pair_rank(vocab, piece, parts[i].0, parts[i + 3].0)
    } else {
        NONE
    }
}

/// Heap-based merge over a doubly linked list of parts indexed by their start byte.
pub fn merge_heap(vocab: &Vocab, piece: &[u8], offset: usize, out: &mut Vec<Rank>) -> Result<()> {
    let n = piece.len();
    // next[i]: start of the part after the part starting at i (n at the end).
    // prev[i]: start of the part before (usize::MAX for the first part).
    // rank_at[i]: rank of the pair (part at i, next part), NONE if not a token or i is dead.
    let mut next: Vec<usize> = (1..=n).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let mut rank_at: Vec<Rank> = vec![NONE; n];
    let mut alive = vec![true; n];
    // part_rank[i]: the rank of the part starting at i (valid while alive).
    let mut part_rank: Vec<Rank> = Vec::with_capacity(n);
    for (i, &b) in piece.iter().enumerate() {
        part_rank.push(vocab.byte_rank(b).ok_or_else(|| Error::Unencodable { byte: b, offset: offset + i })?);
    }
    let mut heap: BinaryHeap<Reverse<(Rank, usize)>> = BinaryHeap::with_capacity(n);
    for (i, slot) in rank_at.iter_mut().enumerate().take(n - 1) {
        let r = vocab.pair_rank(piece[i], piece[i + 1]);
        *slot = r;
        if r != NONE {
            heap.push(Reverse((r, i)));
        }
    }
    while let Some(Reverse((r, l))) = heap.pop() {
        // Stale entries: the part died, or its pair changed. A pair that changed cannot keep
        // its rank: the left start is fixed and equal ranks mean equal bytes, hence equal end.
        if !alive[l] || rank_at[l] != r {
            continue;
        }
        let m = next[l];
        let e = next[m];
        alive[m] = false;
        part_rank[l] = r;
        next[l] = e;
        if e < n {
            prev[e] = l;
            rank_at[l] = pair_rank(vocab, piece, l, next[e]);
            if rank_at[l] != NONE {
                heap.push(Reverse((rank_at[l], l)));
            }
        } else {
            rank_at[l] = NONE;
        }
        let p = prev[l];
        if p != usize::MAX {
            rank_at[p] = pair_rank(vocab, piece, p, e);
            if rank_at[p] != NONE {
                heap.push(Reverse((rank_at[p], p)));
            }
        }
    }
    let mut s = 0;
    while s < n {
        out.push(part_rank[s]);
        s = next[s];
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

    fn run(f: fn(&Vocab, &[u8], usize, &mut Vec<Rank>) -> Result<()>, v: &Vocab, s: &[u8]) -> Vec<Rank> {
        let mut out = Vec::new();
        f(v, s, 0, &mut out).unwrap();
        out
    }

    #[test]
    fn merges_lowest_rank_leftmost_first() {
        let v = toy();
        // "aaa": pairs aa@0 and aa@1 tie; leftmost wins → [aa, a].
        assert_eq!(run(merge_small, &v, b"aaa"), vec![258, 97]);
        assert_eq!(run(merge_heap, &v, b"aaa"), vec![258, 97]);
        // "abc": ab (256) before bc (257), then abc (259).
        assert_eq!(run(merge_small, &v, b"abc"), vec![259]);
        assert_eq!(run(merge_heap, &v, b"abcx"), vec![259, 120]);
    }

    proptest! {
        #[test]
        fn heap_and_scan_agree(s in "[abc]{2,300}") {
            let v = toy();
            prop_assert_eq!(run(merge_small, &v, s.as_bytes()), run(merge_heap, &v, s.as_bytes()));
        }
    }
}
