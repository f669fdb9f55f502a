//! SentencePiece `.model` files (Unigram and BPE), with the `sentencepiece` library's exact
//! semantics: ids identical to `SentencePieceProcessor.encode` and text identical to `decode`.
//!
//! The file is a protocol-buffer `ModelProto`, read here by a small reader that checks every
//! length (a hostile file gives [`Error::SentencePieceModel`] with the byte offset, never a
//! panic). Encoding is three steps, each a transcription of the library's algorithm:
//!
//! 1. **Normalize.** Longest-prefix rules from the precompiled character map (a Darts
//!    double-array trie over UTF-8, and a blob of NUL-terminated replacements), user-defined
//!    pieces passed through untouched, then the whitespace rules: drop leading, trailing and
//!    repeated spaces (`remove_extra_whitespaces`), prepend one (`add_dummy_prefix`), and
//!    write each as `▁` (`escape_whitespaces`). O(n · depth of the map).
//! 2. **Segment.** Unigram: the Viterbi best path over every piece that starts at each
//!    character, scored in the library's mix of `float` and `double` arithmetic so that ties
//!    and near-ties resolve identically; a character no piece covers is `<unk>` with the
//!    lowest score minus 10. O(n · longest piece). Words are cached where float rounding
//!    provably cannot change their path (see `unigram_word`). BPE: the adjacent pair that is
//!    the best-scoring piece (leftmost on ties) is merged until none is left: found by a scan
//!    in short words (O(n²), tiny constants), through a tournament tree over blocks of pair
//!    keys in long ones (O(n · (16 + log n))). Unused pieces are split back into their parts.
//! 3. **Finish.** With byte fallback an unknown piece becomes its UTF-8 bytes' `<0xXX>`
//!    pieces; without it, a run of unknowns is one `<unk>`.
//!
//! Decoding follows `DecodeIds`: control pieces vanish, `<unk>` becomes the unknown surface
//! (` ⁇ `), `▁` becomes a space (the first one dropped when the model adds a dummy prefix), and
//! byte pieces are joined and read as UTF-8 with one U+FFFD per invalid byte.

use rustc_hash::FxHashMap;

use crate::bpe::{build_tree, refresh_block};
use crate::cache::WordCache;
use crate::error::{Error, Result};
use crate::vocab::Rank;

const SPACE: &[u8] = "\u{2581}".as_bytes();
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
/// The score below the lowest piece's that an unknown character gets (`kUnkPenalty`).
const UNK_PENALTY: f32 = 10.0;
/// Past this magnitude the Unigram path scores are re-centred (as the library does).
const RECENTRE_AT: f32 = 100_000.0;

/// What a piece is, as the model file says (`ModelProto.SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Debug, Clone)]
struct Piece {
    text: String,
    score: f32,
    kind: PieceKind,
}

/// A byte trie as a double array: node `n`'s child for byte `b` is cell `base(n) + b` when
/// that cell's `check` is `n`. One cell (base, check, value) per node, so each step of a walk
/// is one memory access; the root is cell 0.
#[derive(Debug, Clone)]
pub(crate) struct ByteTrie {
    cells: Vec<Cell>,
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    base: u32,
    check: u32,
    value: u32,
}

const NO_VALUE: u32 = u32::MAX;
const FREE: Cell = Cell { base: 0, check: NO_VALUE, value: NO_VALUE };
/// Free cells tried as a node's first child before it goes past the end of the array.
const PLACEMENT_TRIES: usize = 512;

impl ByteTrie {
    pub(crate) fn build<'a>(keys: impl Iterator<Item = (&'a [u8], u32)>) -> Self {
        // Straight from the sorted keys: a node is a range of keys sharing its prefix, its
        // children the groups of that range by the next byte. Breadth first, each node takes
        // the lowest base at which all its children's cells are free, trying the free cells in
        // order (a bounded number, then the end of the array: linear time). Free cells from 256
        // on form a list in increasing order (`next_free`/`prev_free`, with `cells.len()` as
        // its end); those below, a bitmap.
        // (A pointer trie of `BTreeMap`s and a `BTreeSet` of free cells, before, took 660 M
        // instructions for XLNet's 32 000 pieces, four times `sentencepiece`'s whole load.)
        let mut keys: Vec<(&[u8], u32)> = keys.collect();
        keys.sort_unstable();
        let mut cells = vec![Cell { check: 0, ..FREE }];
        // Index 0 is the list's head (cell 0, the root, is never free), index `cells.len()` its
        // end; both arrays have `cells.len() + 1` entries.
        let (mut next_free, mut prev_free) = (vec![1usize, 0], vec![0usize, 0]);
        const LOW_CELLS: usize = 256;
        let mut low_free = [0u64; LOW_CELLS / 64];
        let mut queue = std::collections::VecDeque::from([(0usize, 0usize, keys.len(), 0usize)]);
        let mut labels: Vec<(u8, usize, usize)> = Vec::new();
        while let Some((cell, lo, hi, depth)) = queue.pop_front() {
            // Keys equal to the prefix sort first; the last of them gives the value.
            let mut start = lo;
            while start < hi && keys[start].0.len() == depth {
                cells[cell].value = keys[start].1;
                start += 1;
            }
            labels.clear();
            let mut i = start;
            while i < hi {
                let b = keys[i].0[depth];
                let mut j = i + 1;
                while j < hi && keys[j].0[depth] == b {
                    j += 1;
                }
                labels.push((b, i, j));
                i = j;
            }
            let (Some(&(first, ..)), Some(&(last, ..))) = (labels.first(), labels.last()) else { continue };
            let (first, last) = (usize::from(first), usize::from(last));
            // Two nodes may share a base: a child cell's `check` names its parent, so a walk
            // from the other node never takes it.
            let fits = |cells: &[Cell], base: usize| {
                labels.iter().all(|&(b, ..)| cells.get(base + usize::from(b)).is_none_or(|c| c.check == NO_VALUE))
            };
            let mut base = None;
            let mut tries = 0;
            // Free cells below 256 first, from a bitmap: a cell at or below the first label can
            // never hold a child, and walking past them in the list for every node cost more
            // than all the rest of the build.
            let mut w = (first + 1) / 64;
            let mut bits = low_free.get(w).map_or(0, |&x| x & (u64::MAX << ((first + 1) % 64)));
            'low: while w < low_free.len() {
                while bits != 0 {
                    let f = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    tries += 1;
                    if fits(&cells, f - first) {
                        base = Some(f - first);
                        break 'low;
                    }
                }
                w += 1;
                bits = low_free.get(w).copied().unwrap_or(0);
            }
            let mut f = next_free[0];
            while base.is_none() && f < cells.len() && tries < PLACEMENT_TRIES {
                tries += 1;
                if fits(&cells, f - first) {
                    base = Some(f - first);
                }
                f = next_free[f];
            }
            let base = base.unwrap_or_else(|| {
                (cells.len().max(first + 1) - first..).find(|&b| fits(&cells, b)).unwrap_or(usize::MAX)
            });
            if cells.len() <= base + last {
                // New cells below 256 go to the bitmap; the others join the end of the free
                // list, in order.
                let old = cells.len();
                let new = base + last + 1;
                cells.resize(new, FREE);
                let tail = prev_free[old];
                next_free.resize(new + 1, 0);
                prev_free.resize(new + 1, 0);
                let mut p = tail;
                for c in old..new {
                    if c < LOW_CELLS {
                        low_free[c / 64] |= 1 << (c % 64);
                    } else {
                        next_free[p] = c;
                        prev_free[c] = p;
                        p = c;
                    }
                }
                next_free[p] = new;
                prev_free[new] = p;
            }
            cells[cell].base = base as u32;
            for &(b, sub_lo, sub_hi) in &labels {
                let at = base + usize::from(b);
                cells[at].check = cell as u32;
                if at < LOW_CELLS {
                    low_free[at / 64] &= !(1 << (at % 64));
                } else {
                    let (p, n) = (prev_free[at], next_free[at]);
                    next_free[p] = n;
                    prev_free[n] = p;
                }
                queue.push_back((at, sub_lo, sub_hi, depth + 1));
            }
        }
        ByteTrie { cells }
    }

    #[inline]
    pub(crate) fn step(&self, node: u32, byte: u8) -> Option<u32> {
        let at = self.cells.get(node as usize)?.base as usize + byte as usize;
        let c = self.cells.get(at)?;
        (c.check == node && at != 0).then_some(at as u32)
    }

    #[inline]
    pub(crate) fn value(&self, node: u32) -> Option<u32> {
        self.cells.get(node as usize).map(|c| c.value).filter(|&v| v != NO_VALUE)
    }

    /// The length of the longest key that is a prefix of `s`.
    fn longest_prefix(&self, s: &[u8]) -> Option<usize> {
        let mut node = 0;
        let mut best = None;
        for (i, &b) in s.iter().enumerate() {
            match self.step(node, b) {
                Some(n) => node = n,
                None => break,
            }
            if self.value(node).is_some() {
                best = Some(i + 1);
            }
        }
        best
    }
}

/// The precompiled character map: a Darts-clone double array (read-only) and the blob of
/// NUL-terminated replacement strings its values point into.
#[derive(Debug, Clone)]
pub(crate) struct CharsMap {
    units: Vec<u32>,
    normalized: Vec<u8>,
}

impl CharsMap {
    pub(crate) fn parse(blob: &[u8]) -> std::result::Result<Self, String> {
        let size = blob.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let Some(size) = size.filter(|_| blob.len() > 4) else {
            return Err("the precompiled character map is too short".into());
        };
        if size >= blob.len() || size % 4 != 0 || 4 + size > blob.len() {
            return Err(format!("the character map's trie size {size} does not fit its {} bytes", blob.len()));
        }
        let units = blob[4..4 + size].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Self { units, normalized: blob[4 + size..].to_vec() })
    }

    /// Darts-clone's `commonPrefixSearch` over `s`, with every index checked: calls `leaf(len,
    /// value)` for each rule that is a prefix of `s`, shortest first, and says whether the walk
    /// went through all of `s` (some rule starts with `s`).
    fn walk(&self, s: &[u8], mut leaf: impl FnMut(usize, usize)) -> bool {
        fn offset(u: u32) -> usize {
            ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize
        }
        let Some(&first) = self.units.first() else { return false };
        let mut id = offset(first);
        for (i, &b) in s.iter().enumerate() {
            id ^= b as usize;
            let Some(&unit) = self.units.get(id) else { return false };
            if unit & ((1 << 31) | 0xFF) != u32::from(b) {
                return false;
            }
            id ^= offset(unit);
            if (unit >> 8) & 1 == 1 {
                let Some(&value) = self.units.get(id) else { return false };
                leaf(i + 1, (value & 0x7FFF_FFFF) as usize);
            }
        }
        true
    }

    /// The longest rule that is a prefix of `s`: (its length, its replacement).
    fn longest(&self, s: &[u8]) -> Option<(usize, &[u8])> {
        let mut best = None;
        self.walk(s, |len, value| best = Some((len, value)));
        let (len, value) = best?;
        Some((len, self.replacement(value)))
    }

    /// The replacement of the shortest rule that is a prefix of `s`: what `tokenizers`'
    /// `Precompiled` normalizer looks up for a grapheme or a character.
    pub(crate) fn shortest(&self, s: &[u8]) -> Option<&[u8]> {
        let mut first = None;
        self.walk(s, |_, value| {
            first.get_or_insert(value);
        });
        Some(self.replacement(first?))
    }

    /// The NUL-terminated replacement string at `value`.
    fn replacement(&self, value: usize) -> &[u8] {
        let rest = self.normalized.get(value..).unwrap_or_default();
        &rest[..memchr::memchr(0, rest).unwrap_or(rest.len())]
    }

    /// Whether some rule starts with `s`, and whether a rule ends within it.
    fn walks(&self, s: &[u8]) -> (bool, bool) {
        let mut leaf = false;
        let all = self.walk(s, |_, _| leaf = true);
        (all, leaf)
    }
}

/// Calls `f(offset, word)` for each word of `s`, in order: a word starts at each `▁` that
/// follows another character than `▁`. A plain scan for the `▁`'s first byte (0xE2): words are
/// a few bytes long, and `memmem::find_iter` cost more per match than the scan (a fifth of a
/// Mistral encode of English, callgrind).
fn for_each_word(s: &[u8], mut f: impl FnMut(usize, &[u8])) {
    let mut start = 0;
    let mut i = 1;
    while i + SPACE.len() <= s.len() {
        if s[i] == SPACE[0] && s[i..].starts_with(SPACE) {
            if !s[..i].ends_with(SPACE) {
                f(start, &s[start..i]);
                start = i;
            }
            i += SPACE.len();
        } else {
            i += 1;
        }
    }
    f(start, &s[start..]);
}

/// The length of the UTF-8 sequence a byte starts (`OneCharLen`: 1 for stray continuation
/// bytes), capped at what is left.
fn one_char_len(s: &[u8]) -> usize {
    const LEN: [u8; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    s.first().map_or(0, |&b| (LEN[(b >> 4) as usize] as usize).min(s.len()))
}

/// The length of one valid UTF-8 character at the start of `s`, or `None`.
fn valid_char_len(s: &[u8]) -> Option<usize> {
    let n = one_char_len(s);
    std::str::from_utf8(&s[..n]).ok().filter(|c| !c.is_empty()).map(|_| n)
}

#[derive(Debug, Clone)]
struct Normalizer {
    map: Option<CharsMap>,
    /// ASCII bytes that no rule and no user-defined piece can start when an ASCII byte (or
    /// the end) follows: they are copied without a look-up.
    plain: [bool; 128],
    /// One bit per code point below U+10000 (ASCII's bits unused): set when no rule and no
    /// user-defined piece starts with the character, so it is copied without a look-up.
    plain_bmp: Box<[u64]>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    treat_whitespace_as_suffix: bool,
}

impl Normalizer {
    /// `NormalizePrefix`: the replacement of the longest rule (or user-defined piece, kept
    /// as it is) at the start of `s`, and how many bytes it consumes.
    fn prefix<'a>(&'a self, s: &'a [u8], user: &ByteTrie) -> (&'a [u8], usize) {
        if let [b, rest @ ..] = s {
            if *b < 128 && self.plain[*b as usize] && rest.first().is_none_or(|&c| c < 128) {
                return (&s[..1], 1);
            }
        }
        if let Some(n) = user.longest_prefix(s) {
            return (&s[..n], n);
        }
        if let Some((n, to)) = self.map.as_ref().and_then(|m| m.longest(s)) {
            return (to, n);
        }
        match valid_char_len(s) {
            Some(n) => (&s[..n], n),
            None => (REPLACEMENT, 1),
        }
    }

    /// Whether the character that `input` starts with (lead byte `b`, at least 0x80) is below
    /// U+10000 and plain (see `plain_bmp`); if so, its length. `input` is valid UTF-8.
    #[inline(always)]
    fn plain_bmp_len(&self, b: u8, input: &[u8]) -> Option<usize> {
        let cp = match *input {
            [_, c1, ..] if b < 0xE0 => (u32::from(b & 0x1F) << 6) | u32::from(c1 & 0x3F),
            [_, c1, c2, ..] if b < 0xF0 => {
                (u32::from(b & 0x0F) << 12) | (u32::from(c1 & 0x3F) << 6) | u32::from(c2 & 0x3F)
            }
            _ => return None,
        };
        let bits = *self.plain_bmp.get(cp as usize >> 6)?;
        (bits >> (cp & 63) & 1 == 1).then_some(if b < 0xE0 { 2 } else { 3 })
    }

    fn normalize(&self, text: &str, user: &ByteTrie, out: &mut Vec<u8>) {
        let mut input = text.as_bytes();
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (to, n) = self.prefix(input, user);
                if to != b" " {
                    break;
                }
                input = &input[n..];
            }
        }
        if input.is_empty() {
            return;
        }
        let space: &[u8] = if self.escape_whitespaces { SPACE } else { b" " };
        if !self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
        let mut prev_space = self.remove_extra_whitespaces;
        while let Some(&b) = input.first() {
            // `prefix`'s first case inline: a plain ASCII byte before ASCII (or the end) is
            // its own replacement (the loop below, for one byte, without the call).
            if b < 128 && self.plain[usize::from(b)] && input.get(1).is_none_or(|&c| c < 128) {
                if b != b' ' {
                    out.push(b);
                    prev_space = false;
                } else if !prev_space {
                    out.extend_from_slice(space);
                    prev_space = self.remove_extra_whitespaces;
                }
                input = &input[1..];
                continue;
            }
            // A plain non-ASCII character (most of CJK text, with or without rules) is its
            // own replacement, and not a space.
            if b >= 0x80 {
                if let Some(n) = self.plain_bmp_len(b, input) {
                    out.extend_from_slice(&input[..n]);
                    prev_space = false;
                    input = &input[n..];
                    continue;
                }
            }
            let (mut to, n) = self.prefix(input, user);
            while prev_space && to.first() == Some(&b' ') {
                to = &to[1..];
            }
            if !to.is_empty() {
                for &b in to {
                    if b == b' ' && self.escape_whitespaces {
                        out.extend_from_slice(SPACE);
                    } else {
                        out.push(b);
                    }
                }
                prev_space = to.last() == Some(&b' ');
            }
            input = &input[n..];
            if !self.remove_extra_whitespaces {
                prev_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        if self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
    }
}

#[derive(Debug, Clone)]
enum Algorithm {
    /// `trie` holds the pieces a path may use (unused ones left out), valued by id; `scores`
    /// and `user_defined` are by id.
    Unigram {
        trie: ByteTrie,
        min_score: f32,
        max_score: f32,
        scores: Vec<f32>,
        user_defined: Vec<bool>,
    },
    Bpe(Box<BpeTable>),
}

/// BPE merges by symbol ids: (left, right) → (score rank, merged piece), for every piece and
/// every split of it into two symbols. The score rank is the piece's place among the distinct
/// scores, best first (0), so that it fits the 24 bits a long word's merge keys give it.
/// Symbols are pieces, plus the characters that occur inside pieces without being pieces
/// themselves (ids from the number of pieces on).
#[derive(Debug, Clone)]
struct BpeTable {
    pairs: FxHashMap<(u32, u32), (u32, Rank)>,
    /// Every two characters that some piece holds side by side, as `char_key`s (first in the
    /// high half).
    joins: rustc_hash::FxHashSet<u64>,
    ascii: [u32; 128],
    chars: FxHashMap<u32, u32>,
    /// The text of the character symbols, by id minus the number of pieces.
    char_text: Vec<Vec<u8>>,
}

/// A character's bytes (1 to 4) as one number.
fn char_key(c: &[u8]) -> u32 {
    let mut k = [0u8; 4];
    let n = c.len().min(4);
    k[..n].copy_from_slice(&c[..n]);
    u32::from_le_bytes(k)
}

/// Calls `f(pair, at)` for each two adjacent characters of `s`: their `char_key`s (the first
/// in the high half) and the byte offset of the second.
#[inline]
fn for_each_char_pair(s: &[u8], mut f: impl FnMut(u64, usize)) {
    let mut at = one_char_len(s);
    let mut prev = char_key(&s[..at]);
    while at < s.len() {
        let len = one_char_len(&s[at..]);
        let key = char_key(&s[at..at + len]);
        f(u64::from(prev) << 32 | u64::from(key), at);
        prev = key;
        at += len;
    }
}

/// Emits the pieces of `word` given by their lengths in bytes, in order.
#[inline]
fn emit_by_length(word: &[u8], pieces: impl IntoIterator<Item = (u32, Rank)>, emit: &mut impl FnMut(&[u8], Rank)) {
    let mut at = 0;
    for (len, id) in pieces {
        emit(&word[at..at + len as usize], id);
        at += len as usize;
    }
}

impl BpeTable {
    fn build(pieces: &[Piece], normal: &FxHashMap<Vec<u8>, Rank>) -> std::result::Result<Self, String> {
        let mut chars: FxHashMap<u32, u32> = FxHashMap::default();
        let mut char_text: Vec<Vec<u8>> = Vec::new();
        let n = pieces.len() as u32;
        for text in normal.keys() {
            let mut at = 0;
            while at < text.len() {
                let c = &text[at..at + one_char_len(&text[at..])];
                if !normal.contains_key(c) {
                    chars.entry(char_key(c)).or_insert_with(|| {
                        char_text.push(c.to_vec());
                        n + char_text.len() as u32 - 1
                    });
                }
                at += c.len();
            }
        }
        for (text, &id) in normal {
            if one_char_len(text) == text.len() {
                chars.insert(char_key(text), id);
            }
        }
        let symbol = |t: &[u8]| {
            normal
                .get(t)
                .copied()
                .or_else(|| (one_char_len(t) == t.len()).then(|| chars.get(&char_key(t)).copied()).flatten())
        };
        let ranks = score_ranks(normal.values().map(|&id| pieces[id as usize].score), MAX_SCORE_RANKS)?;
        let rank = |score: f32| {
            let key = score_key(score);
            ranks.binary_search_by(|&k| key.cmp(&k)).map_or(u32::MAX, |r| r as u32)
        };
        // Sized up front: growing these maps rehashed them about a dozen times (Mistral's
        // 32 000 pieces: 13 M of the load's 155 M instructions).
        let mut pairs = FxHashMap::with_capacity_and_hasher(normal.len() * 2, Default::default());
        for (text, &id) in normal {
            let mut k = one_char_len(text);
            while k < text.len() {
                if let (Some(l), Some(r)) = (symbol(&text[..k]), symbol(&text[k..])) {
                    pairs.insert((l, r), (rank(pieces[id as usize].score), id));
                }
                k += one_char_len(&text[k..]);
            }
        }
        let mut ascii = [NO_VALUE; 128];
        for (b, slot) in ascii.iter_mut().enumerate() {
            *slot = symbol(&[b as u8]).unwrap_or(NO_VALUE);
        }
        let mut joins = rustc_hash::FxHashSet::with_capacity_and_hasher(normal.len() * 2, Default::default());
        for text in normal.keys() {
            for_each_char_pair(text, |pair, _| {
                joins.insert(pair);
            });
        }
        Ok(Self { pairs, joins, ascii, chars, char_text })
    }

    /// The symbol id of one character (or `NO_VALUE`).
    #[inline]
    fn symbol(&self, c: &[u8]) -> u32 {
        if let [b] = c {
            if let Some(&id) = self.ascii.get(*b as usize) {
                return id;
            }
        }
        self.chars.get(&char_key(c)).copied().unwrap_or(NO_VALUE)
    }

    fn symbol_len(&self, id: u32, pieces: &[Piece]) -> usize {
        match pieces.get(id as usize) {
            Some(p) => p.text.len(),
            None => self.char_text.get(id as usize - pieces.len()).map_or(0, Vec::len),
        }
    }
}

/// A symbol of SentencePiece BPE: a span of the word, linked to its neighbours.
#[derive(Debug, Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: usize,
    next: usize,
    /// The symbol's id (a piece, or a character that only occurs inside pieces), or
    /// `NO_VALUE` for a frozen user-defined piece or a character in no piece.
    id: u32,
}

/// Buffers of SentencePiece BPE reused from word to word (a miss allocates nothing new).
#[derive(Default)]
struct BpeScratch {
    syms: Vec<Sym>,
    /// The best pair starting at each symbol, as (score rank, merged id).
    best: Vec<Option<(u32, Rank)>>,
    /// Unused pieces merged so far, with the symbols they were merged from.
    unused_parts: Vec<(Rank, (u32, u32))>,
    /// A missed word's pieces, for the cache.
    pieces: Vec<(u32, Rank)>,
    /// Long words: the pair key at each symbol, and the tournament tree over their blocks.
    keys: Vec<u64>,
    tree: Vec<u64>,
}

/// BPE words up to this many bytes are cached per thread (see [`WordCache`]).
const CACHE_MAX_WORD: usize = 48;
/// Longest normalized text `encode` takes: the Viterbi walk keeps positions as `u32`.
pub const MAX_TEXT: usize = u32::MAX as usize;
/// Words of at most this many symbols merge by scanning for the best pair; longer ones
/// through a tournament tree over blocks of 2^`LONG_BLOCK_SHIFT` pair keys.
const SHORT_WORD: usize = 64;
const LONG_BLOCK_SHIFT: u32 = 4;

/// A cached word's pieces: (length in bytes, id) each.
type WordPieces = Box<[(u32, Rank)]>;

thread_local! {
    static WORDS: std::cell::RefCell<WordCache<WordPieces>> = std::cell::RefCell::new(WordCache::default());
}

/// A SentencePiece model loaded from its `.model` file.
#[derive(Debug, Clone)]
pub struct SentencePiece {
    pieces: Vec<Piece>,
    /// Normal, user-defined and unused pieces (what segmentation may produce).
    normal: FxHashMap<Vec<u8>, Rank>,
    /// Unknown, control and byte pieces.
    reserved: FxHashMap<Vec<u8>, Rank>,
    /// User-defined pieces: matched before normalization and never split.
    user: ByteTrie,
    unk: Rank,
    byte_fallback: bool,
    byte_ids: Vec<Rank>,
    normalizer: Normalizer,
    algorithm: Algorithm,
    unk_surface: String,
    bos: Option<Rank>,
    eos: Option<Rank>,
    /// No piece has a `▁` after another character, so words (a `▁` after anything else
    /// starts one) segment independently: no piece crosses a word's start.
    word_splits: bool,
    /// Unique per loaded model: the key of the per-thread word cache.
    cache_id: u64,
}

/// A node of a word's Viterbi walk: the best path to this byte offset so far, in the
/// library's `float` arithmetic (ties go to the path found first).
#[derive(Clone, Copy)]
struct Best {
    score: f32,
    start: u32,
    id: Rank,
    /// The score of the piece that ends the path here.
    piece_score: f32,
    set: bool,
}

/// The same node in exact arithmetic (`f64`, relative to the word's start), for the word
/// cache: the best and second-best candidates, where the best starts, and the most additions
/// on any path that reaches here.
#[derive(Clone, Copy)]
struct Exact {
    best: f64,
    second: f64,
    from: u32,
    depth: u32,
}

/// A cached Unigram word: its pieces (length in bytes, id, score) and the range of start
/// scores for which the library's `float` walk provably picks them (empty when a near tie
/// lets rounding decide: such words are always walked).
struct UnigramWord {
    pieces: Box<[(u32, Rank, f32)]>,
    lo: f32,
    hi: f32,
}

/// Buffers reused from word to word.
#[derive(Default)]
struct UnigramScratch {
    best: Vec<Best>,
    exact: Vec<Exact>,
    /// The best path of the last walk: (length in bytes, id, score) per piece.
    path: Vec<(u32, Rank, f32)>,
}

impl UnigramScratch {
    /// The cache entry for the word just walked with `TRACK` (see
    /// [`SentencePiece::unigram_word`]).
    fn cache_entry(&self, n: usize) -> UnigramWord {
        let never = UnigramWord { pieces: Box::new([]), lo: f32::INFINITY, hi: f32::NEG_INFINITY };
        let mut at = 0u32;
        for &(len, _, _) in &self.path {
            let e = self.exact[(at + len) as usize];
            // Written so that NaN fails: the margin must be provably wider than the rounding.
            let wide = e.best - e.second > 2.0 * f64::from(e.depth) * HALF_ULP_BELOW_2_17 + 1e-9;
            if !(wide && e.from == at) {
                return never;
            }
            at += len;
        }
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for e in &self.exact[..=n] {
            if e.best.is_finite() {
                lo = lo.min(e.best);
                hi = hi.max(e.best);
            }
        }
        // One point of slack covers the rounding (at most 48 additions of 2^-8 each).
        let limit = f64::from(RECENTRE_AT) - 1.0;
        UnigramWord { pieces: self.path[..].into(), lo: (-limit - lo) as f32, hi: (limit - hi) as f32 }
    }
}

/// Pieces scoring beyond this magnitude keep a word out of the cache (the rounding bound
/// below assumes every value stays under 2^17).
const CACHE_MAX_SCORE: f32 = 1000.0;
/// The largest rounding error of one `float` addition whose result is under 2^17 in
/// magnitude: half a unit in the last place there, 2^(17 - 24 - 1).
const HALF_ULP_BELOW_2_17: f64 = 1.0 / 256.0;

thread_local! {
    static UNIGRAM_WORDS: std::cell::RefCell<WordCache<UnigramWord>> =
        std::cell::RefCell::new(WordCache::default());
}

/// A minimal protocol-buffer reader: every length is checked against the buffer.
struct Proto<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Where `buf` starts in the file (for error offsets).
    base: usize,
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8], usize),
    Fixed32(u32),
    Fixed64,
}

impl<'a> Proto<'a> {
    fn varint(&mut self) -> std::result::Result<u64, (usize, String)> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let at = self.base + self.pos;
            let &b = self.buf.get(self.pos).ok_or_else(|| (at, "the file ends inside a number".to_string()))?;
            self.pos += 1;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err((self.base + self.pos, "a number longer than 10 bytes".into()))
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], (usize, String)> {
        let at = self.base + self.pos;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| (at, format!("a field of {n} bytes runs past the end of its message")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next (field number, value), or `None` at the end.
    fn next(&mut self) -> std::result::Result<Option<(u64, Wire<'a>)>, (usize, String)> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.base + self.pos;
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed64
            }
            2 => {
                let n = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
                let start = self.base + self.pos;
                Wire::Bytes(self.take(n)?, start)
            }
            5 => {
                let b = self.take(4)?;
                Wire::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => return Err((at, format!("unsupported protocol-buffer wire type {w}"))),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn message(buf: &[u8], base: usize) -> Proto<'_> {
    Proto { buf, pos: 0, base }
}

impl SentencePiece {
    /// Parses a `.model` file. `source_name` names it in errors.
    pub fn from_bytes(data: &[u8], source_name: &str) -> Result<Self> {
        let bad = |offset: usize, problem: String| Error::SentencePieceModel {
            source_name: source_name.into(),
            offset,
            problem,
        };
        let unsupported = |component: String| Error::Unsupported { source_name: source_name.into(), component };
        Self::parse(data).map_err(|(offset, problem)| bad(offset, problem))?.build(bad, unsupported)
    }

    fn parse(data: &[u8]) -> std::result::Result<Parsed, (usize, String)> {
        let mut p = Parsed::default();
        let mut top = message(data, 0);
        while let Some((field, value)) = top.next()? {
            let Wire::Bytes(body, at) = value else {
                if matches!(field, 1 | 2 | 3 | 5) {
                    return Err((top.base + top.pos, format!("field {field} of the model is not a message")));
                }
                continue;
            };
            let mut m = message(body, at);
            match field {
                1 => {
                    let mut piece = (None, 0.0f32, 1u64, at);
                    while let Some((f, v)) = m.next()? {
                        match (f, v) {
                            (1, Wire::Bytes(s, at)) => {
                                let s = std::str::from_utf8(s).map_err(|_| (at, "a piece is not UTF-8".to_string()))?;
                                piece.0 = Some(s.to_owned());
                            }
                            (2, Wire::Fixed32(bits)) => piece.1 = f32::from_bits(bits),
                            (3, Wire::Varint(t)) => piece.2 = t,
                            _ => {}
                        }
                    }
                    p.pieces.push(piece);
                }
                2 => {
                    while let Some((f, v)) = m.next()? {
                        match (f, v) {
                            (3, Wire::Varint(t)) => p.model_type = t,
                            (24, Wire::Varint(b)) => p.treat_whitespace_as_suffix = b != 0,
                            (35, Wire::Varint(b)) => p.byte_fallback = b != 0,
                            (44, Wire::Bytes(s, _)) => p.unk_surface = Some(String::from_utf8_lossy(s).into_owned()),
                            (46, Wire::Bytes(s, _)) => p.bos_piece = Some(s.to_vec()),
                            (47, Wire::Bytes(s, _)) => p.eos_piece = Some(s.to_vec()),
                            _ => {}
                        }
                    }
                }
                3 => {
                    while let Some((f, v)) = m.next()? {
                        match (f, v) {
                            (2, Wire::Bytes(s, at)) => p.charsmap = Some((s.to_vec(), at)),
                            (3, Wire::Varint(b)) => p.add_dummy_prefix = Some(b != 0),
                            (4, Wire::Varint(b)) => p.remove_extra_whitespaces = Some(b != 0),
                            (5, Wire::Varint(b)) => p.escape_whitespaces = Some(b != 0),
                            _ => {}
                        }
                    }
                }
                5 => {
                    while let Some((f, v)) = m.next()? {
                        if let (2, Wire::Bytes(s, _)) = (f, v) {
                            p.denormalizer |= !s.is_empty();
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// Ids of `text`, exactly as `SentencePieceProcessor.encode(text)` gives them.
    ///
    /// Fails with `Error::TooLong` when the normalized text is over `MAX_TEXT` bytes.
    pub fn encode(&self, text: &str, out: &mut Vec<Rank>) -> Result<()> {
        self.encode_up_to(text, out, MAX_TEXT)
    }

    fn encode_up_to(&self, text: &str, out: &mut Vec<Rank>, max_len: usize) -> Result<()> {
        let mut normalized = Vec::with_capacity(text.len() + text.len() / 4 + 3);
        self.normalizer.normalize(text, &self.user, &mut normalized);
        if normalized.len() > max_len {
            let what = "the normalized text";
            return Err(Error::TooLong { what, len: normalized.len(), offset: 0, limit: max_len });
        }
        if normalized.is_empty() {
            return Ok(());
        }
        let mut prev_unk = false;
        let mut emit = |piece: &[u8], id: Rank| {
            let unk = self.kind(id) == PieceKind::Unknown;
            if unk && self.byte_fallback {
                out.extend(piece.iter().map(|&b| self.byte_ids[b as usize]));
            } else if !(unk && prev_unk) {
                out.push(id);
            }
            prev_unk = unk;
        };
        match &self.algorithm {
            Algorithm::Unigram { .. } => self.viterbi(&normalized, &mut emit),
            Algorithm::Bpe(_) if self.word_splits => {
                // Words (a `▁` after anything else starts one) merge independently: no piece
                // holds a `▁` after another character, so no merge crosses a word's start.
                let mut scratch = BpeScratch::default();
                for_each_word(&normalized, |_, word| self.bpe_word(word, &mut scratch, &mut emit));
            }
            Algorithm::Bpe(_) => self.bpe(&normalized, &mut BpeScratch::default(), &mut emit),
        }
        Ok(())
    }

    /// `bpe` for one word, through the per-thread cache of short words.
    fn bpe_word(&self, word: &[u8], scratch: &mut BpeScratch, emit: &mut impl FnMut(&[u8], Rank)) {
        if word.len() <= CACHE_MAX_WORD {
            return self.bpe_cached(word, scratch, emit);
        }
        // A long word (CJK text has no spaces) is cut between two characters that no piece
        // holds side by side: no merge can cross such a cut, and the merges on either side
        // are the same merges in the same order (see `docs/design.md`). The chunks are short
        // and recur, so they go through the cache.
        let Algorithm::Bpe(table) = &self.algorithm else { return };
        let mut start = 0;
        for_each_char_pair(word, |pair, at| {
            if !table.joins.contains(&pair) {
                self.bpe_chunk(&word[start..at], scratch, emit);
                start = at;
            }
        });
        self.bpe_chunk(&word[start..], scratch, emit);
    }

    fn bpe_chunk(&self, chunk: &[u8], scratch: &mut BpeScratch, emit: &mut impl FnMut(&[u8], Rank)) {
        if chunk.len() <= CACHE_MAX_WORD {
            self.bpe_cached(chunk, scratch, emit);
        } else {
            self.bpe(chunk, scratch, emit);
        }
    }

    /// `bpe` through the per-thread cache.
    fn bpe_cached(&self, word: &[u8], scratch: &mut BpeScratch, emit: &mut impl FnMut(&[u8], Rank)) {
        // Generic, not `&mut dyn FnMut`: no indirect call per piece on the hit path.
        let hit = WORDS.with(|c| {
            c.try_borrow_mut().is_ok_and(|mut c| {
                c.lookup(self.cache_id, word, |pieces| emit_by_length(word, pieces.iter().copied(), emit))
            })
        });
        if hit {
            return;
        }
        let mut pieces = std::mem::take(&mut scratch.pieces);
        pieces.clear();
        self.bpe(word, scratch, &mut |p: &[u8], id| pieces.push((p.len() as u32, id)));
        emit_by_length(word, pieces.iter().copied(), emit);
        WORDS.with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.insert(self.cache_id, word.into(), pieces[..].into());
            }
        });
        scratch.pieces = pieces;
    }

    fn kind(&self, id: Rank) -> PieceKind {
        self.pieces.get(id as usize).map_or(PieceKind::Unknown, |p| p.kind)
    }

    /// `PieceToId`: segmentable pieces first, then reserved ones, else `<unk>`.
    fn piece_to_id(&self, piece: &[u8]) -> Rank {
        self.normal.get(piece).or_else(|| self.reserved.get(piece)).copied().unwrap_or(self.unk)
    }

    /// Unigram segmentation: `EncodeOptimized`, the best path computed left to right. When
    /// words segment independently, each is walked from the score the text so far ends with
    /// (or taken from the word cache, see [`Self::unigram_word`]).
    fn viterbi(&self, s: &[u8], emit: &mut impl FnMut(&[u8], Rank)) {
        let mut scratch = UnigramScratch::default();
        if self.word_splits {
            let mut h = 0.0;
            for_each_word(s, |_, word| h = self.unigram_word(word, h, &mut scratch, emit));
        } else {
            self.walk::<false>(s, 0.0, &mut scratch);
            emit_by_length(s, scratch.path.iter().map(|&(len, id, _)| (len, id)), emit);
        }
    }

    /// One word, starting from path score `h`; returns the path score at its end.
    ///
    /// The cache is exact although the library's scores depend on where the word starts
    /// (`float` sums round differently at different magnitudes). A word's entry is its best
    /// path in exact arithmetic, kept only if at each node of that path the best candidate
    /// beats the second by more than the rounding of both could close: each addition errs by
    /// at most half an ulp (2^-8 below 2^17), and a node `d` additions from the word's start
    /// errs by at most `d` of those, since max() never widens an error. The entry also says
    /// which start scores keep every node within ±1e5 (no re-centring inside the word, values
    /// under 2^17). For those, the library's walk picks the cached path, and its end score is
    /// the cached pieces' scores added to `h` in order, as the walk adds them.
    fn unigram_word(
        &self,
        word: &[u8],
        h: f32,
        scratch: &mut UnigramScratch,
        emit: &mut impl FnMut(&[u8], Rank),
    ) -> f32 {
        if word.len() > CACHE_MAX_WORD {
            let end = self.walk::<false>(word, h, scratch);
            emit_by_length(word, scratch.path.iter().map(|&(len, id, _)| (len, id)), emit);
            return end;
        }
        // The walk re-centres a start score out of range to 0 before anything else.
        let h = if (-RECENTRE_AT..=RECENTRE_AT).contains(&h) { h } else { 0.0 };
        let mut end = None;
        let known = UNIGRAM_WORDS.with(|c| {
            c.try_borrow_mut().is_ok_and(|mut c| {
                c.lookup(self.cache_id, word, |w| {
                    if w.lo <= h && h <= w.hi {
                        let mut at = 0;
                        let mut score = h;
                        for &(len, id, piece_score) in &w.pieces {
                            emit(&word[at..at + len as usize], id);
                            at += len as usize;
                            // The walk's order (`piece + here`); float addition commutes.
                            score += piece_score;
                        }
                        end = Some(score);
                    }
                })
            })
        });
        if let Some(end) = end {
            return end;
        }
        let end = if known { self.walk::<false>(word, h, scratch) } else { self.walk::<true>(word, h, scratch) };
        emit_by_length(word, scratch.path.iter().map(|&(len, id, _)| (len, id)), emit);
        if !known {
            let entry = scratch.cache_entry(word.len());
            UNIGRAM_WORDS.with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    c.insert(self.cache_id, word.into(), entry);
                }
            });
        }
        end
    }

    /// The library's one-pass Viterbi over `s` from start score `h`: for each character,
    /// every piece that starts there (shortest first, as the trie walk finds them), and
    /// `<unk>` for the character when no piece is exactly it. Leaves the best path in
    /// `scratch.path` and returns its score. With `TRACK`, also fills `scratch.exact`.
    fn walk<const TRACK: bool>(&self, s: &[u8], h: f32, scratch: &mut UnigramScratch) -> f32 {
        let Algorithm::Unigram { trie, min_score, max_score, scores, user_defined } = &self.algorithm else {
            return h;
        };
        let unk_score = *min_score - UNK_PENALTY;
        let n = s.len();
        let UnigramScratch { best, exact, path } = scratch;
        let unset = Best { score: 0.0, start: 0, id: self.unk, piece_score: 0.0, set: false };
        best.clear();
        best.resize(n + 1, unset);
        best[0] = Best { score: h, set: true, ..unset };
        if TRACK {
            exact.clear();
            exact.resize(n + 1, Exact { best: f64::NEG_INFINITY, second: f64::NEG_INFINITY, from: 0, depth: 0 });
            exact[0].best = 0.0;
        }
        let mut frontier = 0;
        let mut start = 0;
        while start < n {
            let mut here = best[start].score;
            // The library re-centres the scores when they grow past ±1e5 (float precision
            // fades there): every node still ahead is shifted so that this one scores 0.
            if !(-RECENTRE_AT..=RECENTRE_AT).contains(&here) {
                for (i, b) in best.iter_mut().enumerate().take(frontier + 1).skip(start) {
                    if i == start || b.set {
                        b.score -= here;
                    }
                }
                here = 0.0;
            }
            let (rel, depth) = if TRACK { (exact[start].best, exact[start].depth + 1) } else { (0.0, 0) };
            let mut relax = |end: usize, piece_score: f32, id: Rank| {
                frontier = frontier.max(end);
                let candidate = piece_score + here;
                let target = &mut best[end];
                if !target.set || candidate > target.score {
                    *target = Best { score: candidate, start: start as u32, id, piece_score, set: true };
                }
                if TRACK {
                    let c = if piece_score.abs() < CACHE_MAX_SCORE { f64::from(piece_score) + rel } else { f64::NAN };
                    let e = &mut exact[end];
                    if c > e.best {
                        *e = Exact { best: c, second: e.best, from: start as u32, depth: e.depth.max(depth) };
                    } else {
                        // NaN (a score out of bounds) poisons the margin: no cache entry.
                        e.second = if c > e.second || c.is_nan() { c } else { e.second };
                        e.depth = e.depth.max(depth);
                    }
                }
            };
            let char_len = one_char_len(&s[start..]);
            let mut single = false;
            let mut node = 0u32;
            for end in start + 1..=n {
                let Some(next) = trie.step(node, s[end - 1]) else { break };
                node = next;
                let Some(id) = trie.value(node) else { continue };
                let len = end - start;
                // A user-defined piece's bonus is a `double` expression rounded to `float`.
                let score = if user_defined[id as usize] {
                    (f64::from(len as f32 * max_score) - 0.1) as f32
                } else {
                    scores[id as usize]
                };
                relax(end, score, id);
                single |= len == char_len;
            }
            if !single {
                relax(start + char_len, unk_score, self.unk);
            }
            start += char_len;
        }
        path.clear();
        let mut end = n;
        while end > 0 {
            let b = best[end];
            path.push((end as u32 - b.start, b.id, b.piece_score));
            end = b.start as usize;
        }
        path.reverse();
        best[n].score
    }

    /// BPE segmentation: merge the best-scoring adjacent pair (leftmost on ties) until none is
    /// a piece.
    fn bpe(&self, s: &[u8], scratch: &mut BpeScratch, emit: &mut impl FnMut(&[u8], Rank)) {
        self.bpe_by(s, scratch, emit, SHORT_WORD);
    }

    /// `bpe`, scanning for the best pair in words of at most `short_word` symbols.
    fn bpe_by(&self, s: &[u8], scratch: &mut BpeScratch, emit: &mut impl FnMut(&[u8], Rank), short_word: usize) {
        const NONE: usize = usize::MAX;
        let Algorithm::Bpe(table) = &self.algorithm else { return };
        let BpeScratch { syms, best, unused_parts, keys, tree, .. } = scratch;
        syms.clear();
        let mut at = 0;
        while at < s.len() {
            let (len, id) = match self.user.longest_prefix(&s[at..]) {
                Some(n) => (n, NO_VALUE),
                None => {
                    let n = one_char_len(&s[at..]);
                    (n, table.symbol(&s[at..at + n]))
                }
            };
            let i = syms.len();
            syms.push(Sym {
                start: at,
                len,
                prev: if i == 0 { NONE } else { i - 1 },
                next: if at + len >= s.len() { NONE } else { i + 1 },
                id,
            });
            at += len;
        }
        // The best pair starting at each symbol, as (score rank, merged id), looked up in the
        // library's order (every pair at the start, left to right; after each merge, the pair
        // before the merged symbol, then the pair it starts): an unused piece is split back
        // into the symbols it was last looked up from.
        unused_parts.clear();
        let mut pair = |syms: &[Sym], left: usize| -> Option<(u32, Rank)> {
            let right = syms[left].next;
            if right == NONE {
                return None;
            }
            let (l, r) = (syms[left].id, syms[right].id);
            let &(rank, merged) = table.pairs.get(&(l, r))?;
            if self.kind(merged) == PieceKind::Unused {
                unused_parts.push((merged, (l, r)));
            }
            Some((rank, merged))
        };
        best.clear();
        best.extend((0..syms.len()).map(|i| pair(syms, i)));
        // Short words scan the pairs for the best one. Longer ones keep the tournament tree of
        // `bpe::merge_blocked` over a key per symbol, `(score rank << 40) | index`, whose
        // minimum is the same choice (best score, then leftmost: indices follow positions).
        // A word of 2^40 symbols would need 40 TiB of them, so indices fit.
        let long = syms.len() > short_word;
        let key = |b: Option<(u32, Rank)>, i: usize| b.map_or(u64::MAX, |(rank, _)| u64::from(rank) << 40 | i as u64);
        let mut leaves = 0;
        if long {
            keys.clear();
            keys.extend(best.iter().enumerate().map(|(i, &b)| key(b, i)));
            // Padded to whole blocks (see `bpe::refresh_block`).
            keys.resize(syms.len().next_multiple_of(1 << LONG_BLOCK_SHIFT), u64::MAX);
            leaves = build_tree(keys, tree, LONG_BLOCK_SHIFT);
        }
        loop {
            let left = if long {
                match tree[1] {
                    u64::MAX => break,
                    top => (top & ((1 << 40) - 1)) as usize,
                }
            } else {
                let mut top: Option<(u32, usize)> = None;
                let mut i = 0;
                while i != NONE {
                    if let Some((rank, _)) = best[i] {
                        if top.is_none_or(|(r, _)| rank < r) {
                            top = Some((rank, i));
                        }
                    }
                    i = syms[i].next;
                }
                let Some((_, left)) = top else { break };
                left
            };
            let Some((_, merged)) = best[left] else { break };
            let right = syms[left].next;
            let after = syms[right].next;
            syms[left].len += syms[right].len;
            syms[left].id = merged;
            syms[left].next = after;
            if after != NONE {
                syms[after].prev = left;
            }
            syms[right].len = 0;
            best[right] = None;
            let prev = syms[left].prev;
            if prev != NONE {
                best[prev] = pair(syms, prev);
            }
            best[left] = pair(syms, left);
            if long {
                keys[right] = u64::MAX;
                keys[left] = key(best[left], left);
                let refresh = |keys: &[u64], tree: &mut [u64], b: usize| {
                    refresh_block(keys, tree, leaves, LONG_BLOCK_SHIFT, b);
                };
                // prev < left < right: the distinct blocks come in order.
                let (bl, br) = (left >> LONG_BLOCK_SHIFT, right >> LONG_BLOCK_SHIFT);
                if prev != NONE {
                    keys[prev] = key(best[prev], prev);
                    if prev >> LONG_BLOCK_SHIFT != bl {
                        refresh(keys, tree, prev >> LONG_BLOCK_SHIFT);
                    }
                }
                refresh(keys, tree, bl);
                if br != bl {
                    refresh(keys, tree, br);
                }
            }
        }
        let parts: FxHashMap<Rank, (u32, u32)> = unused_parts.drain(..).collect();
        self.bpe_emit(s, syms, &parts, table, emit);
    }

    /// Emits the merged symbols from the first, splitting unused pieces back into the symbols
    /// they were last merged from.
    fn bpe_emit(
        &self,
        s: &[u8],
        syms: &[Sym],
        unused_parts: &FxHashMap<Rank, (u32, u32)>,
        table: &BpeTable,
        emit: &mut impl FnMut(&[u8], Rank),
    ) {
        const NONE: usize = usize::MAX;
        let mut i = if syms.is_empty() { NONE } else { 0 };
        let mut stack: Vec<(u32, usize, usize)> = Vec::new();
        while i != NONE {
            let Sym { id, start, len, next, .. } = syms[i];
            if unused_parts.is_empty() && (id as usize) < self.pieces.len() {
                // Nothing to split back (nearly always): no stack.
                emit(&s[start..start + len], id);
                i = next;
                continue;
            }
            stack.push((id, start, len));
            while let Some((id, start, len)) = stack.pop() {
                let w = &s[start..start + len];
                match unused_parts.get(&id).filter(|_| self.kind(id) == PieceKind::Unused) {
                    Some(&(a, b)) => {
                        let a_len = table.symbol_len(a, &self.pieces);
                        stack.push((b, start + a_len, len - a_len));
                        stack.push((a, start, a_len));
                    }
                    None if (id as usize) < self.pieces.len() => emit(w, id),
                    None => emit(w, self.piece_to_id(w)),
                }
            }
            i = next;
        }
    }

    /// The text of `ids`, as `SentencePieceProcessor.decode(ids)` gives it.
    pub fn decode(&self, ids: &[Rank]) -> Result<String> {
        let mut text: Vec<u8> = Vec::with_capacity(ids.len() * 4);
        let mut bytes: Vec<u8> = Vec::new();
        let flush = |bytes: &mut Vec<u8>, text: &mut Vec<u8>| {
            let mut at = 0;
            while at < bytes.len() {
                match valid_char_len(&bytes[at..]) {
                    Some(n) => {
                        text.extend_from_slice(&bytes[at..at + n]);
                        at += n;
                    }
                    None => {
                        text.extend_from_slice(REPLACEMENT);
                        at += 1;
                    }
                }
            }
            bytes.clear();
        };
        let strip_first = self.normalizer.add_dummy_prefix || self.normalizer.remove_extra_whitespaces;
        let (mut bos_ws, mut bos_ws_seen) = (true, false);
        for &id in ids {
            let piece = self.pieces.get(id as usize).ok_or_else(|| Error::InvalidToken(u64::from(id)))?;
            let id = self.piece_to_id(piece.text.as_bytes());
            let kind = self.kind(id);
            if kind == PieceKind::Byte {
                if let Some(b) = byte_of_piece(&piece.text) {
                    bytes.push(b);
                }
                continue;
            }
            flush(&mut bytes, &mut text);
            if bos_ws_seen || !text.is_empty() {
                bos_ws = false;
            }
            bos_ws_seen = false;
            match kind {
                PieceKind::Control => {}
                PieceKind::Unknown => text.extend_from_slice(self.unk_surface.as_bytes()),
                _ => {
                    let mut p = piece.text.as_bytes();
                    if bos_ws && strip_first {
                        if let Some(rest) = p.strip_prefix(SPACE) {
                            p = rest;
                            bos_ws_seen = !self.normalizer.remove_extra_whitespaces;
                        }
                    }
                    let mut rest = p;
                    while let Some(i) = memchr::memmem::find(rest, SPACE) {
                        text.extend_from_slice(&rest[..i]);
                        text.push(b' ');
                        rest = &rest[i + SPACE.len()..];
                    }
                    text.extend_from_slice(rest);
                }
            }
        }
        flush(&mut bytes, &mut text);
        // Every piece is UTF-8 and invalid bytes were replaced, so this cannot fail.
        String::from_utf8(text).map_err(|e| Error::Utf8(e.to_string()))
    }

    /// The number of pieces (ids run from 0 to this, exclusive).
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// A piece's text and kind by id.
    pub fn piece(&self, id: Rank) -> Option<(&str, PieceKind)> {
        self.pieces.get(id as usize).map(|p| (p.text.as_str(), p.kind))
    }

    /// The beginning- and end-of-sentence ids, when the model defines them as control pieces.
    pub fn bos_eos(&self) -> (Option<Rank>, Option<Rank>) {
        (self.bos, self.eos)
    }
}

/// Orders `f32` scores as the library's `<` does (NaN is refused at load; -0 equals +0).
fn score_key(score: f32) -> u32 {
    let bits = (score + 0.0).to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | (1 << 31)
    }
}

/// BPE models may have at most this many distinct scores among their pieces (see `BpeTable`).
const MAX_SCORE_RANKS: usize = 1 << 24;

/// The distinct `score_key`s of `scores`, best (highest) first: a score's rank is its index.
fn score_ranks(scores: impl Iterator<Item = f32>, max: usize) -> std::result::Result<Vec<u32>, String> {
    let mut keys: Vec<u32> = scores.map(score_key).collect();
    keys.sort_unstable_by(|a, b| b.cmp(a));
    keys.dedup();
    if keys.len() > max {
        return Err(format!("a BPE model with more than {max} distinct piece scores ({})", keys.len()));
    }
    Ok(keys)
}

/// `<0xAB>` → 0xAB.
fn byte_of_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok()).flatten()
}

#[derive(Default)]
struct Parsed {
    /// (text, score, type, offset)
    pieces: Vec<(Option<String>, f32, u64, usize)>,
    model_type: u64,
    treat_whitespace_as_suffix: bool,
    byte_fallback: bool,
    unk_surface: Option<String>,
    bos_piece: Option<Vec<u8>>,
    eos_piece: Option<Vec<u8>>,
    charsmap: Option<(Vec<u8>, usize)>,
    add_dummy_prefix: Option<bool>,
    remove_extra_whitespaces: Option<bool>,
    escape_whitespaces: Option<bool>,
    denormalizer: bool,
}

impl Parsed {
    fn build(
        self,
        bad: impl Fn(usize, String) -> Error,
        unsupported: impl Fn(String) -> Error,
    ) -> Result<SentencePiece> {
        let model_type = if self.model_type == 0 { 1 } else { self.model_type };
        if !matches!(model_type, 1 | 2) {
            let name = match model_type {
                3 => "the WORD model type".to_string(),
                4 => "the CHAR model type".to_string(),
                t => format!("model type {t}"),
            };
            return Err(unsupported(name));
        }
        if self.denormalizer {
            return Err(unsupported("a denormalizer (denormalizer_spec)".into()));
        }
        if self.pieces.is_empty() {
            return Err(bad(0, "the model has no pieces".into()));
        }
        let mut pieces = Vec::with_capacity(self.pieces.len());
        let mut normal = FxHashMap::default();
        let mut reserved = FxHashMap::default();
        let mut unk = None;
        let mut user = Vec::new();
        for (id, (text, score, kind, at)) in self.pieces.into_iter().enumerate() {
            let text = text.ok_or_else(|| bad(at, format!("piece {id} has no text")))?;
            if text.is_empty() {
                return Err(bad(at, format!("piece {id} is empty")));
            }
            if score.is_nan() {
                return Err(bad(at, format!("piece {id} ({text:?}) has a NaN score")));
            }
            let kind = match kind {
                1 => PieceKind::Normal,
                2 => PieceKind::Unknown,
                3 => PieceKind::Control,
                4 => PieceKind::UserDefined,
                5 => PieceKind::Unused,
                6 => PieceKind::Byte,
                t => return Err(bad(at, format!("piece {id} ({text:?}) has an unknown type {t}"))),
            };
            let map = if matches!(kind, PieceKind::Normal | PieceKind::UserDefined | PieceKind::Unused) {
                &mut normal
            } else {
                &mut reserved
            };
            if map.insert(text.as_bytes().to_vec(), id as Rank).is_some() {
                return Err(bad(at, format!("piece {id} ({text:?}) is defined twice")));
            }
            match kind {
                PieceKind::Unknown if unk.is_some() => {
                    return Err(bad(at, format!("piece {id} ({text:?}) is a second unknown piece")))
                }
                PieceKind::Unknown => unk = Some(id as Rank),
                PieceKind::UserDefined => user.push(id),
                PieceKind::Byte if !self.byte_fallback => {
                    return Err(bad(at, format!("piece {id} ({text:?}) is a byte piece, but byte_fallback is off")))
                }
                PieceKind::Byte if byte_of_piece(&text).is_none() => {
                    return Err(bad(at, format!("byte piece {id} ({text:?}) is not of the form <0xAB>")))
                }
                _ => {}
            }
            pieces.push(Piece { text, score, kind });
        }
        let unk = unk.ok_or_else(|| bad(0, "the model has no unknown piece (type UNKNOWN)".into()))?;
        let user = ByteTrie::build(user.iter().map(|&id| (pieces[id].text.as_bytes(), id as u32)));
        let lookup = |p: &[u8]| normal.get(p).or_else(|| reserved.get(p)).copied().unwrap_or(unk);
        let byte_ids = (0..=255u8).map(|b| lookup(format!("<0x{b:02X}>").as_bytes())).collect();
        let control = |piece: Option<Vec<u8>>, default: &str| {
            let id = lookup(piece.as_deref().unwrap_or(default.as_bytes()));
            (pieces[id as usize].kind == PieceKind::Control).then_some(id)
        };
        let bos = control(self.bos_piece, "<s>");
        let eos = control(self.eos_piece, "</s>");
        let algorithm = if model_type == 1 {
            let (mut min_score, mut max_score) = (f32::MAX, f32::MIN_POSITIVE);
            for p in pieces.iter().filter(|p| p.kind == PieceKind::Normal) {
                min_score = min_score.min(p.score);
                max_score = max_score.max(p.score);
            }
            let usable = normal.iter().filter(|&(_, &id)| pieces[id as usize].kind != PieceKind::Unused);
            let trie = ByteTrie::build(usable.map(|(k, &id)| (k.as_slice(), id)));
            let scores = pieces.iter().map(|p| p.score).collect();
            let user_defined = pieces.iter().map(|p| p.kind == PieceKind::UserDefined).collect();
            Algorithm::Unigram { trie, min_score, max_score, scores, user_defined }
        } else {
            Algorithm::Bpe(Box::new(BpeTable::build(&pieces, &normal).map_err(unsupported)?))
        };
        // A `▁` inside a piece must follow another `▁` for words to merge independently.
        let word_splits = !self.treat_whitespace_as_suffix
            && self.escape_whitespaces.unwrap_or(true)
            && !normal.keys().any(|t| {
                let mut words = 0;
                for_each_word(t, |_, _| words += 1);
                words > 1
            });
        let map = match self.charsmap {
            Some((blob, at)) if !blob.is_empty() => Some(CharsMap::parse(&blob).map_err(|e| bad(at, e))?),
            _ => None,
        };
        let mut plain = [false; 128];
        for (b, slot) in plain.iter_mut().enumerate() {
            let b = b as u8;
            let ruled = map.as_ref().is_some_and(|m| m.walks(&[b]).1 || (0..128u8).any(|c| m.walks(&[b, c]).0));
            *slot = !ruled && user.step(0, b).is_none();
        }
        let mut plain_bmp = vec![0u64; 0x10000 / 64].into_boxed_slice();
        for c in (0x80..0x10000).filter_map(char::from_u32) {
            let mut buf = [0; 4];
            let bytes = c.encode_utf8(&mut buf).as_bytes();
            let ruled = map.as_ref().is_some_and(|m| m.walks(bytes) != (false, false));
            let mut node = Some(0);
            for &b in bytes {
                node = node.and_then(|n| user.step(n, b));
            }
            if !ruled && node.is_none() {
                plain_bmp[c as usize >> 6] |= 1 << (c as u32 & 63);
            }
        }
        let normalizer = Normalizer {
            map,
            plain,
            plain_bmp,
            add_dummy_prefix: self.add_dummy_prefix.unwrap_or(true),
            remove_extra_whitespaces: self.remove_extra_whitespaces.unwrap_or(true),
            escape_whitespaces: self.escape_whitespaces.unwrap_or(true),
            treat_whitespace_as_suffix: self.treat_whitespace_as_suffix,
        };
        Ok(SentencePiece {
            pieces,
            normal,
            reserved,
            user,
            unk,
            byte_fallback: self.byte_fallback,
            byte_ids,
            normalizer,
            algorithm,
            unk_surface: self.unk_surface.unwrap_or_else(|| " \u{2047} ".into()),
            bos,
            eos,
            word_splits,
            cache_id: crate::cache::next_owner_id(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The double array answers every key with its value (the last given, for a key given
        /// twice) and every probe's longest key prefix as a sorted map does: keys over a
        /// small alphabet share prefixes and force bases to compete for cells; high bytes and
        /// low ones (below the first label) land in both free-cell searches.
        #[test]
        fn byte_trie_equals_a_map(
            keys in proptest::collection::vec(proptest::collection::vec(proptest::sample::select(vec![0u8, 1, 2, b'a', b'b', 0x80, 0xE2, 0xFF]), 1..6), 0..300),
            probes in proptest::collection::vec(proptest::collection::vec(proptest::sample::select(vec![0u8, 1, 2, b'a', b'b', 0x80, 0xE2, 0xFF, b'z']), 0..8), 0..50),
        ) {
            let mut map = std::collections::BTreeMap::new();
            for (i, k) in keys.iter().enumerate() {
                map.insert(k.clone(), i as u32);
            }
            let trie = ByteTrie::build(keys.iter().enumerate().map(|(i, k)| (k.as_slice(), i as u32)));
            for (k, &v) in &map {
                let node = k.iter().try_fold(0u32, |n, &b| trie.step(n, b));
                proptest::prop_assert_eq!(node.and_then(|n| trie.value(n)), Some(v), "{:?}", k);
            }
            for p in &probes {
                let want = (1..=p.len()).rev().find(|&n| map.contains_key(&p[..n]));
                proptest::prop_assert_eq!(trie.longest_prefix(p), want, "{:?}", p);
                let node = p.iter().try_fold(0u32, |n, &b| trie.step(n, b));
                proptest::prop_assert_eq!(node.and_then(|n| trie.value(n)), map.get(p).copied(), "{:?}", p);
            }
        }
    }
    use proptest::prelude::*;

    proptest! {
        /// Words start at each `▁` after another character (a brute-force search for the
        /// starts is the reference), and together they tile the text.
        #[test]
        fn words_start_at_each_space_after_another_character(picks in proptest::collection::vec(0..5usize, 0..30)) {
            let parts: [&[u8]; 5] = [b"a", SPACE, "é".as_bytes(), b" ", &SPACE[..2]];
            let s: Vec<u8> = picks.iter().flat_map(|&i| parts[i].iter().copied()).collect();
            let mut got = Vec::new();
            for_each_word(&s, |at, w| got.push((at, w.to_vec())));
            let starts: Vec<usize> =
                (1..s.len()).filter(|&i| s[i..].starts_with(SPACE) && !s[..i].ends_with(SPACE)).collect();
            let bounds: Vec<usize> = std::iter::once(0).chain(starts).chain(std::iter::once(s.len())).collect();
            let want: Vec<(usize, Vec<u8>)> = bounds.windows(2).map(|w| (w[0], s[w[0]..w[1]].to_vec())).collect();
            prop_assert_eq!(got, want);
        }
    }

    static MISTRAL: std::sync::LazyLock<SentencePiece> = std::sync::LazyLock::new(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/sentencepiece/mistral-7b-v0.1.model");
        SentencePiece::from_bytes(&std::fs::read(path).unwrap(), "mistral-7b-v0.1.model").unwrap()
    });

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// A long word cut where no piece holds the two characters side by side gives the
        /// pieces of the whole word merged at once.
        #[test]
        fn long_words_cut_between_unjoinable_characters_merge_the_same(picks in proptest::collection::vec(0..14usize, 20..120)) {
            let parts = ["中", "国", "人", "的", "日本", "語", "の", "テ", "ス", "ト", "a", "th", "e", "1"];
            let mut word = SPACE.to_vec();
            word.extend(picks.iter().flat_map(|&i| parts[i].bytes()));
            prop_assume!(word.len() > CACHE_MAX_WORD);
            let mut whole = Vec::new();
            MISTRAL.bpe(&word, &mut BpeScratch::default(), &mut |p: &[u8], id| whole.push((p.to_vec(), id)));
            let mut cut = Vec::new();
            MISTRAL.bpe_word(&word, &mut BpeScratch::default(), &mut |p: &[u8], id| cut.push((p.to_vec(), id)));
            prop_assert_eq!(cut, whole);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// The tournament tree of long words makes the same merges as the scan of short ones,
        /// on runs (where many pairs tie) and on mixed text.
        #[test]
        fn tree_and_scan_merge_the_same(picks in proptest::collection::vec(0..12usize, 1..300)) {
            let parts = ["=", "=", "-", ".", "\u{2581}", "th", "e", "中", "国", "a", "aa", "1"];
            let word: Vec<u8> = picks.iter().flat_map(|&i| parts[i].bytes()).collect();
            let run = |short_word| {
                let mut out = Vec::new();
                MISTRAL.bpe_by(&word, &mut BpeScratch::default(), &mut |p: &[u8], id| out.push((p.to_vec(), id)), short_word);
                out
            };
            prop_assert_eq!(run(0), run(usize::MAX));
        }
    }

    /// Normalized text over the limit is refused with its length (checked with a small limit;
    /// the real one, 4 GiB, needs tens of GiB to reach); text at the limit encodes as usual.
    #[test]
    fn text_longer_than_the_position_limit_is_refused() {
        let mut out = Vec::new();
        // Mistral's normalizer prepends `▁` and turns the space into one (3 bytes each):
        // 11 bytes of text normalize to 16.
        let r = MISTRAL.encode_up_to("hello there", &mut out, 15);
        assert!(matches!(r, Err(Error::TooLong { len: 16, limit: 15, .. })), "{r:?}");
        assert!(out.is_empty());
        MISTRAL.encode_up_to("hello there", &mut out, 16).unwrap();
        let mut whole = Vec::new();
        MISTRAL.encode("hello there", &mut whole).unwrap();
        assert_eq!(out, whole);
        assert!(!out.is_empty());
    }

    #[test]
    fn score_ranks_are_dense_best_first_and_bounded() {
        let ranks = score_ranks([-1.5f32, 0.0, -1.5, 2.0, -0.0].into_iter(), 3).unwrap();
        assert_eq!(ranks, vec![score_key(2.0), score_key(0.0), score_key(-1.5)]);
        let err = score_ranks([1.0f32, 2.0, 3.0, 4.0].into_iter(), 3).unwrap_err();
        assert!(err.contains("more than 3 distinct piece scores (4)"), "{err}");
    }

    #[test]
    fn score_key_orders_like_floats() {
        let xs = [-1e9f32, -3.5, -0.0, 0.0, 1e-30, 2.0, f32::MAX];
        for w in xs.windows(2) {
            assert!(score_key(w[0]) <= score_key(w[1]), "{w:?}");
        }
        assert_eq!(score_key(-0.0), score_key(0.0));
    }

    #[test]
    fn truncated_files_are_errors_not_panics() {
        // A piece message whose length runs past the end.
        for data in [&b"\x0a\x05ab"[..], b"\x0a", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x0b"] {
            let e = SentencePiece::from_bytes(data, "t.model").unwrap_err();
            assert!(matches!(e, Error::SentencePieceModel { .. }), "{e}");
        }
    }

    #[test]
    fn byte_pieces_parse() {
        assert_eq!(byte_of_piece("<0x0A>"), Some(10));
        assert_eq!(byte_of_piece("<0xff>"), Some(255));
        assert_eq!(byte_of_piece("<0x1>"), None);
        assert_eq!(byte_of_piece("a"), None);
    }
}
