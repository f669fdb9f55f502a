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
//!    lowest score minus 10. O(n · longest piece). BPE: every adjacent pair that is a piece
//!    goes into a max-heap keyed by (score, leftmost); the best is merged unless one of its
//!    symbols changed since. O(n log n). Unused pieces are split back into their parts.
//! 3. **Finish.** With byte fallback an unknown piece becomes its UTF-8 bytes' `<0xXX>`
//!    pieces; without it, a run of unknowns is one `<unk>`.
//!
//! Decoding follows `DecodeIds`: control pieces vanish, `<unk>` becomes the unknown surface
//! (` ⁇ `), `▁` becomes a space (the first one dropped when the model adds a dummy prefix), and
//! byte pieces are joined and read as UTF-8 with one U+FFFD per invalid byte.

use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

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

/// A byte trie: sorted edges per node, a value per node that ends a key.
#[derive(Debug, Clone, Default)]
struct ByteTrie {
    /// Per node: (first edge, number of edges, value or `NO_VALUE`).
    nodes: Vec<(u32, u32, u32)>,
    labels: Vec<u8>,
    targets: Vec<u32>,
}

const NO_VALUE: u32 = u32::MAX;

impl ByteTrie {
    fn build<'a>(keys: impl Iterator<Item = (&'a [u8], u32)>) -> Self {
        // Build with maps, then lay the edges out flat and sorted.
        let mut children: Vec<std::collections::BTreeMap<u8, u32>> = vec![Default::default()];
        let mut values = vec![NO_VALUE];
        for (key, value) in keys {
            let mut node = 0usize;
            for &b in key {
                let next = children.len() as u32;
                let child = *children[node].entry(b).or_insert(next);
                if child == next {
                    children.push(Default::default());
                    values.push(NO_VALUE);
                }
                node = child as usize;
            }
            values[node] = value;
        }
        let mut trie = ByteTrie::default();
        for (map, value) in children.iter().zip(values) {
            trie.nodes.push((trie.labels.len() as u32, map.len() as u32, value));
            for (&b, &to) in map {
                trie.labels.push(b);
                trie.targets.push(to);
            }
        }
        trie
    }

    fn step(&self, node: u32, byte: u8) -> Option<u32> {
        let &(first, len, _) = self.nodes.get(node as usize)?;
        let (first, len) = (first as usize, len as usize);
        let labels = self.labels.get(first..first + len)?;
        labels.binary_search(&byte).ok().and_then(|i| self.targets.get(first + i).copied())
    }

    fn value(&self, node: u32) -> Option<u32> {
        self.nodes.get(node as usize).map(|n| n.2).filter(|&v| v != NO_VALUE)
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
struct CharsMap {
    units: Vec<u32>,
    normalized: Vec<u8>,
}

impl CharsMap {
    fn parse(blob: &[u8]) -> std::result::Result<Self, String> {
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

    /// The longest rule that is a prefix of `s`: (its length, its replacement). Darts-clone's
    /// `commonPrefixSearch`, with every index checked.
    fn longest(&self, s: &[u8]) -> Option<(usize, &[u8])> {
        fn offset(u: u32) -> usize {
            ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize
        }
        fn label(u: u32) -> u32 {
            u & ((1 << 31) | 0xFF)
        }
        let mut id = offset(*self.units.first()?);
        let mut best = None;
        for (i, &b) in s.iter().enumerate() {
            id ^= b as usize;
            let Some(&unit) = self.units.get(id) else { break };
            if label(unit) != u32::from(b) {
                break;
            }
            id ^= offset(unit);
            if (unit >> 8) & 1 == 1 {
                let Some(&leaf) = self.units.get(id) else { break };
                best = Some((i + 1, (leaf & 0x7FFF_FFFF) as usize));
            }
        }
        let (len, value) = best?;
        let rest = self.normalized.get(value..).unwrap_or_default();
        let end = memchr::memchr(0, rest).unwrap_or(rest.len());
        Some((len, &rest[..end]))
    }
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
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    treat_whitespace_as_suffix: bool,
}

impl Normalizer {
    /// `NormalizePrefix`: the replacement of the longest rule (or user-defined piece, kept
    /// as it is) at the start of `s`, and how many bytes it consumes.
    fn prefix<'a>(&'a self, s: &'a [u8], user: &ByteTrie) -> (&'a [u8], usize) {
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

    fn normalize(&self, text: &[u8], user: &ByteTrie, out: &mut Vec<u8>) {
        let mut input = text;
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
        while !input.is_empty() {
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
    Unigram { trie: ByteTrie, min_score: f32, max_score: f32 },
    Bpe,
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
            let &b = self.buf.get(self.pos).ok_or((at, "the file ends inside a number".to_string()))?;
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
        let end = end.ok_or((at, format!("a field of {n} bytes runs past the end of its message")))?;
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
    pub fn encode(&self, text: &str, out: &mut Vec<Rank>) {
        let mut normalized = Vec::with_capacity(text.len() + text.len() / 4 + 3);
        self.normalizer.normalize(text.as_bytes(), &self.user, &mut normalized);
        if normalized.is_empty() {
            return;
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
            Algorithm::Unigram { trie, min_score, max_score } => {
                self.viterbi(&normalized, trie, *min_score, *max_score, &mut emit);
            }
            Algorithm::Bpe => self.bpe(&normalized, &mut emit),
        }
    }

    fn kind(&self, id: Rank) -> PieceKind {
        self.pieces.get(id as usize).map_or(PieceKind::Unknown, |p| p.kind)
    }

    /// `PieceToId`: segmentable pieces first, then reserved ones, else `<unk>`.
    fn piece_to_id(&self, piece: &[u8]) -> Rank {
        self.normal.get(piece).or_else(|| self.reserved.get(piece)).copied().unwrap_or(self.unk)
    }

    /// Unigram segmentation: `EncodeOptimized`, the best path computed left to right.
    fn viterbi(&self, s: &[u8], trie: &ByteTrie, min_score: f32, max_score: f32, emit: &mut impl FnMut(&[u8], Rank)) {
        #[derive(Clone, Copy)]
        struct Best {
            score: f32,
            start: usize,
            id: Rank,
            set: bool,
        }
        let n = s.len();
        let unk_score = min_score - UNK_PENALTY;
        let mut best = vec![Best { score: 0.0, start: 0, id: self.unk, set: false }; n + 1];
        let mut start = 0;
        let mut frontier = 0;
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
            let char_len = one_char_len(&s[start..]);
            let mut single = false;
            let mut node = 0u32;
            for end in start + 1..=n {
                let Some(next) = trie.step(node, s[end - 1]) else { break };
                node = next;
                let Some(id) = trie.value(node) else { continue };
                let kind = self.kind(id);
                if kind == PieceKind::Unused {
                    continue;
                }
                let len = end - start;
                frontier = frontier.max(end);
                // In `float`, as the library's results show (ties between equal paths go to
                // the one found first); a user-defined piece's bonus is rounded from `double`.
                let score = if kind == PieceKind::UserDefined {
                    (f64::from(len as f32 * max_score) - 0.1) as f32
                } else {
                    self.pieces[id as usize].score
                };
                let candidate = score + here;
                let target = &mut best[end];
                if !target.set || candidate > target.score {
                    *target = Best { score: candidate, start, id, set: true };
                }
                single |= len == char_len;
            }
            if !single {
                frontier = frontier.max(start + char_len);
                let candidate = unk_score + here;
                let target = &mut best[start + char_len];
                if !target.set || candidate > target.score {
                    *target = Best { score: candidate, start, id: self.unk, set: true };
                }
            }
            start += char_len;
        }
        let mut path = Vec::new();
        let mut end = n;
        while end > 0 {
            let b = best[end];
            path.push((b.start, end, b.id));
            end = b.start;
        }
        for &(s0, e, id) in path.iter().rev() {
            emit(&s[s0..e], id);
        }
    }

    /// BPE segmentation: merge the best-scoring adjacent pair (leftmost on ties) until none is
    /// a piece.
    fn bpe(&self, s: &[u8], emit: &mut impl FnMut(&[u8], Rank)) {
        const NONE: usize = usize::MAX;
        struct Sym {
            start: usize,
            len: usize,
            prev: usize,
            next: usize,
            frozen: bool,
        }
        let mut syms: Vec<Sym> = Vec::with_capacity(s.len());
        let mut at = 0;
        while at < s.len() {
            let (len, frozen) = match self.user.longest_prefix(&s[at..]) {
                Some(n) => (n, true),
                None => (one_char_len(&s[at..]), false),
            };
            let i = syms.len();
            syms.push(Sym {
                start: at,
                len,
                prev: if i == 0 { NONE } else { i - 1 },
                next: if at + len >= s.len() { NONE } else { i + 1 },
                frozen,
            });
            at += len;
        }
        // (score key, leftmost first, right, size)
        type Heap = BinaryHeap<(u32, std::cmp::Reverse<usize>, usize, usize)>;
        let mut heap: Heap = BinaryHeap::new();
        let mut unused_parts: FxHashMap<Vec<u8>, (Vec<u8>, Vec<u8>)> = FxHashMap::default();
        let mut add = |syms: &[Sym], heap: &mut Heap, left: usize, right: usize| {
            if left == NONE || right == NONE || syms[left].frozen || syms[right].frozen {
                return;
            }
            let (l, r) = (&syms[left], &syms[right]);
            let piece = &s[l.start..l.start + l.len + r.len];
            let Some(&id) = self.normal.get(piece) else { return };
            heap.push((score_key(self.pieces[id as usize].score), std::cmp::Reverse(left), right, piece.len()));
            if self.kind(id) == PieceKind::Unused {
                let parts = (s[l.start..l.start + l.len].to_vec(), s[r.start..r.start + r.len].to_vec());
                unused_parts.insert(piece.to_vec(), parts);
            }
        };
        for i in 1..syms.len() {
            add(&syms, &mut heap, i - 1, i);
        }
        while let Some((_, std::cmp::Reverse(left), right, size)) = heap.pop() {
            let (l, r) = (&syms[left], &syms[right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != size {
                continue;
            }
            let after = r.next;
            syms[left].len = size;
            syms[left].next = after;
            if after != NONE {
                syms[after].prev = left;
            }
            syms[right].len = 0;
            let prev = syms[left].prev;
            add(&syms, &mut heap, prev, left);
            add(&syms, &mut heap, left, after);
        }
        let mut i = if syms.is_empty() { NONE } else { 0 };
        let mut stack: Vec<&[u8]> = Vec::new();
        while i != NONE {
            stack.push(&s[syms[i].start..syms[i].start + syms[i].len]);
            // Unused pieces are split back into the pieces they were merged from.
            while let Some(w) = stack.pop() {
                let id = self.piece_to_id(w);
                match unused_parts.get(w).filter(|_| self.kind(id) == PieceKind::Unused) {
                    Some((a, b)) => {
                        stack.push(b);
                        stack.push(a);
                    }
                    None => emit(w, id),
                }
            }
            i = syms[i].next;
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
            let piece = self.pieces.get(id as usize).ok_or(Error::InvalidToken(u64::from(id)))?;
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
            let trie = ByteTrie::build(normal.iter().map(|(k, &id)| (k.as_slice(), id)));
            Algorithm::Unigram { trie, min_score, max_score }
        } else {
            Algorithm::Bpe
        };
        let map = match self.charsmap {
            Some((blob, at)) if !blob.is_empty() => Some(CharsMap::parse(&blob).map_err(|e| bad(at, e))?),
            _ => None,
        };
        let normalizer = Normalizer {
            map,
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
