//! Byte-level BPE vocabularies: the rank table and its loader for tiktoken's `.tiktoken` format.
//!
//! Layout: token bytes live in one flat buffer indexed by rank (`spans`), so decoding is two
//! loads and a copy per token; the reverse map is a hash table keyed by the token bytes.

use std::path::Path;

use base64::Engine as _;
use rustc_hash::FxHashMap;

use crate::error::{Error, RankFileProblem, Result};
use crate::table::TokenTable;

/// The bytes of a present rank (empty for an absent one, which the table never stores).
#[inline(always)]
fn span_bytes<'a>(bytes: &'a [u8], spans: &[(u32, u32)], rank: Rank) -> &'a [u8] {
    match spans.get(rank as usize) {
        Some(&(start, len)) if len != ABSENT => bytes.get(start as usize..(start + len) as usize).unwrap_or(&[]),
        _ => &[],
    }
}

/// A token id.
pub type Rank = u32;

/// Marks a rank that has no token (only in vocabularies built in memory with gaps).
const ABSENT: u32 = u32::MAX;

/// Mergeable ranks of a byte-level BPE: every token is a byte string; lower rank merges first.
#[derive(Clone, Debug)]
pub struct Vocab {
    /// Unique per vocabulary built in this process (clones share it, having the same tokens);
    /// keys the per-thread piece caches.
    id: u64,
    /// Token bytes → rank. Invariant: the inverse of `spans` over present ranks.
    encoder: TokenTable,
    /// All token bytes, concatenated in rank order.
    bytes: Vec<u8>,
    /// `spans[r] = (start, len)` into `bytes`; `len == ABSENT` where rank `r` has no token.
    spans: Vec<(u32, u32)>,
    /// Rank of each single byte, `ABSENT` where the vocabulary lacks it.
    byte_ranks: [Rank; 256],
    /// Rank of each two-byte token, indexed by `first << 8 | second`, `ABSENT` where none.
    /// BPE's first round looks up every adjacent byte pair; this makes those lookups one load.
    pair_ranks: Box<[Rank]>,
    /// Number of present tokens.
    len: usize,
}

/// Longest gap-tolerant rank space, relative to the number of tokens, before we refuse.
const MAX_SPARSITY: usize = 4;

impl Vocab {
    /// Builds a vocabulary from `(token bytes, rank)` pairs.
    ///
    /// Duplicate tokens or ranks and empty tokens are errors. Gaps in the ranks are allowed
    /// (tiktoken allows them for encodings built in memory) unless the rank space is more
    /// than four times larger than the number of tokens.
    pub fn from_pairs(pairs: Vec<(Vec<u8>, Rank)>) -> Result<Self> {
        let max_rank = pairs.iter().map(|&(_, r)| r).max();
        let n_space = max_rank.map_or(0, |m| m as usize + 1);
        if n_space > MAX_SPARSITY * pairs.len() + 1024 {
            return Err(Error::Vocab(format!(
                "ranks are too sparse: {} tokens with ranks up to {}",
                pairs.len(),
                n_space - 1
            )));
        }
        let mut spans = vec![(0u32, ABSENT); n_space];
        let total: usize = pairs.iter().map(|(t, _)| t.len()).sum();
        let mut bytes = Vec::with_capacity(total);
        let mut encoder = TokenTable::with_capacity(pairs.len());
        let len = pairs.len();
        // Lay the bytes out in rank order so that neighbouring ids are close in memory.
        let mut sorted = pairs;
        sorted.sort_unstable_by_key(|&(_, r)| r);
        for (token, rank) in sorted {
            if token.is_empty() {
                return Err(Error::Vocab(format!("token with rank {rank} has no bytes")));
            }
            if spans[rank as usize].1 != ABSENT {
                return Err(Error::Vocab(format!("rank {rank} is given to two tokens")));
            }
            let start = u32::try_from(bytes.len()).map_err(|_| Error::Vocab("token bytes exceed 4 GiB".into()))?;
            bytes.extend_from_slice(&token);
            spans[rank as usize] = (start, token.len() as u32);
            let (b, sp) = (&bytes, &spans);
            if let Some(prev) = encoder.insert(&token, rank, |r| span_bytes(b, sp, r)) {
                return Err(Error::Vocab(format!("the same token has ranks {prev} and {rank}")));
            }
        }
        let mut byte_ranks = [ABSENT; 256];
        for (b, slot) in byte_ranks.iter_mut().enumerate() {
            if let Some(r) = encoder.get(&[b as u8][..], |r| span_bytes(&bytes, &spans, r)) {
                *slot = r;
            }
        }
        let mut pair_ranks = vec![ABSENT; 1 << 16].into_boxed_slice();
        for (r, &(start, len)) in spans.iter().enumerate() {
            if len == 2 {
                let s = start as usize;
                pair_ranks[usize::from(bytes[s]) << 8 | usize::from(bytes[s + 1])] = r as Rank;
            }
        }
        // From the same counter as every other cache owner: `cache::with_scratch` keys the
        // per-thread caches by it, for vocabularies and `tokenizer.json` models alike.
        let id = crate::cache::next_owner_id();
        Ok(Self { id, encoder, bytes, spans, byte_ranks, pair_ranks, len })
    }

    /// Loads a tiktoken rank file (plain or gzip) from disk.
    ///
    /// `reserved` lists ids that special tokens will take: ranks may skip those and no others.
    pub fn from_tiktoken_file(path: &Path, reserved: &[Rank]) -> Result<Self> {
        let data = std::fs::read(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        Self::from_tiktoken_bytes(&data, &path.display().to_string(), reserved)
    }

    /// Parses tiktoken's rank format: one `<base64 token> <rank>` per line, ranks exactly `0..n`
    /// except for `reserved` ids (taken by special tokens), all 256 single bytes present.
    /// `source_name` names the data in error messages.
    pub fn from_tiktoken_bytes(data: &[u8], source_name: &str, reserved: &[Rank]) -> Result<Self> {
        let err = |line: usize, problem| Error::RankFile { source_name: source_name.to_owned(), line, problem };
        let unzipped;
        let data = if data.starts_with(&[0x1f, 0x8b]) {
            use std::io::Read as _;
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| err(0, RankFileProblem::BadGzip(e.to_string())))?;
            unzipped = out;
            &unzipped[..]
        } else {
            data
        };
        let mut pairs: Vec<(Vec<u8>, Rank)> = Vec::with_capacity(data.len() / 12);
        let mut lines_of_rank: Vec<usize> = Vec::with_capacity(data.len() / 12);
        let engine = base64::engine::general_purpose::STANDARD;
        for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
            let line_no = i + 1;
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
            let (Some(tok), Some(rank), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(err(line_no, RankFileProblem::Malformed));
            };
            let token = engine.decode(tok).map_err(|_| err(line_no, RankFileProblem::BadBase64))?;
            if token.is_empty() {
                return Err(err(line_no, RankFileProblem::EmptyToken));
            }
            let rank = std::str::from_utf8(rank)
                .ok()
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|&r| r != ABSENT)
                .ok_or_else(|| err(line_no, RankFileProblem::BadRank))?;
            pairs.push((token, rank));
            lines_of_rank.push(line_no);
        }
        if pairs.is_empty() {
            return Err(err(0, RankFileProblem::Empty));
        }
        // Strict checks, each naming the offending line.
        let n_space = pairs.iter().map(|&(_, r)| r as usize + 1).max().unwrap_or(0);
        if n_space > MAX_SPARSITY * pairs.len() + 1024 {
            let idx = pairs.iter().position(|&(_, r)| r as usize + 1 == n_space).unwrap_or(0);
            return Err(err(lines_of_rank[idx], RankFileProblem::BadRank));
        }
        let mut line_by_rank = vec![0usize; n_space];
        for (idx, &(_, rank)) in pairs.iter().enumerate() {
            let line = lines_of_rank[idx];
            let slot = &mut line_by_rank[rank as usize];
            if *slot != 0 {
                return Err(err(line, RankFileProblem::DuplicateRank { first_line: *slot }));
            }
            *slot = line;
        }
        // A gap is only allowed where a special token takes the id (p50k_base's 50256).
        if let Some(missing) = (0..n_space).find(|&r| line_by_rank[r] == 0 && !reserved.contains(&(r as Rank))) {
            let line = line_by_rank[missing..].iter().copied().find(|&l| l != 0).unwrap_or(0);
            return Err(err(line, RankFileProblem::RankGap { missing: missing as Rank }));
        }
        let mut seen: FxHashMap<&[u8], usize> = FxHashMap::default();
        seen.reserve(pairs.len());
        for (idx, (token, _)) in pairs.iter().enumerate() {
            if let Some(&first_line) = seen.get(&token[..]) {
                return Err(err(lines_of_rank[idx], RankFileProblem::DuplicateToken { first_line }));
            }
            seen.insert(token, lines_of_rank[idx]);
        }
        for b in 0..=255u8 {
            if !seen.contains_key(&[b][..]) {
                return Err(err(0, RankFileProblem::MissingByte { byte: b }));
            }
        }
        drop(seen);
        Self::from_pairs(pairs)
    }

    /// The rank of a token, if it is one.
    #[inline]
    pub fn rank(&self, token: &[u8]) -> Option<Rank> {
        self.encoder.get(token, |r| span_bytes(&self.bytes, &self.spans, r))
    }

    /// `rank` with the token's `table::head` and `table::hash` already computed.
    #[inline]
    pub fn rank_hashed(&self, token: &[u8], head: u64, hash: u64) -> Option<Rank> {
        self.encoder.get_hashed(token, head, hash, |r| span_bytes(&self.bytes, &self.spans, r))
    }

    /// The rank of a single byte, if the vocabulary has it.
    #[inline]
    pub fn byte_rank(&self, byte: u8) -> Option<Rank> {
        let r = self.byte_ranks[byte as usize];
        (r != ABSENT).then_some(r)
    }

    /// The rank of the two-byte token `a b`, or `Rank::MAX` if there is none.
    #[inline(always)]
    pub fn pair_rank(&self, a: u8, b: u8) -> Rank {
        self.pair_ranks[usize::from(a) << 8 | usize::from(b)]
    }

    /// The bytes of a token, if the rank exists.
    #[inline]
    pub fn token_bytes(&self, rank: Rank) -> Option<&[u8]> {
        let &(start, len) = self.spans.get(rank as usize)?;
        if len == ABSENT {
            return None;
        }
        self.bytes.get(start as usize..start as usize + len as usize)
    }

    /// This vocabulary's unique id in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the largest rank.
    pub fn rank_space(&self) -> usize {
        self.spans.len()
    }

    /// `(token bytes, rank)` for every token, in rank order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Rank)> + '_ {
        (0..self.spans.len() as u32).filter_map(|r| self.token_bytes(r).map(|t| (t, r)))
    }

    /// A compact binary form for pickling: `(rank u32 LE, length u32 LE, bytes)` per token.
    pub fn to_blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + self.len * 8);
        for (token, rank) in self.iter() {
            out.extend_from_slice(&rank.to_le_bytes());
            out.extend_from_slice(&(token.len() as u32).to_le_bytes());
            out.extend_from_slice(token);
        }
        out
    }

    /// The inverse of `to_blob`.
    pub fn from_blob(blob: &[u8]) -> Result<Self> {
        let bad = || Error::Vocab("truncated vocabulary blob".into());
        let mut pairs = Vec::new();
        let mut rest = blob;
        while !rest.is_empty() {
            let (head, tail) = rest.split_at_checked(8).ok_or_else(bad)?;
            let rank = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let (token, tail) = tail.split_at_checked(len).ok_or_else(bad)?;
            pairs.push((token.to_vec(), rank));
            rest = tail;
        }
        Self::from_pairs(pairs)
    }

    /// Serializes to tiktoken's text format (ranks in order), the inverse of `from_tiktoken_bytes`
    /// for gap-free vocabularies.
    pub fn to_tiktoken_bytes(&self) -> Vec<u8> {
        let engine = base64::engine::general_purpose::STANDARD;
        let mut out = Vec::with_capacity(self.bytes.len() * 2 + self.len * 8);
        for (token, rank) in self.iter() {
            out.extend_from_slice(engine.encode(token).as_bytes());
            out.push(b' ');
            out.extend_from_slice(rank.to_string().as_bytes());
            out.push(b'\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_bytes() -> String {
        let engine = base64::engine::general_purpose::STANDARD;
        (0..=255u8).map(|b| format!("{} {}\n", engine.encode([b]), b)).collect()
    }

    fn problem(data: &str) -> (usize, RankFileProblem) {
        match Vocab::from_tiktoken_bytes(data.as_bytes(), "t.tiktoken", &[]) {
            Err(Error::RankFile { line, problem, .. }) => (line, problem),
            other => panic!("expected a rank file error, got {other:?}"),
        }
    }

    #[test]
    fn loads_a_complete_byte_vocabulary() {
        let data = all_bytes() + "aGk= 256\n";
        let v = Vocab::from_tiktoken_bytes(data.as_bytes(), "t", &[]).unwrap();
        assert_eq!(v.len(), 257);
        assert_eq!(v.rank(b"hi"), Some(256));
        assert_eq!(v.token_bytes(256), Some(&b"hi"[..]));
        assert_eq!(v.byte_rank(b'a'), Some(97));
        assert_eq!(Vocab::from_tiktoken_bytes(&v.to_tiktoken_bytes(), "t", &[]).unwrap().len(), 257);
    }

    #[test]
    fn names_the_line_of_each_malformation() {
        assert_eq!(problem(""), (0, RankFileProblem::Empty));
        assert_eq!(problem("\n\n"), (0, RankFileProblem::Empty));
        assert_eq!(problem(&(all_bytes() + "!!!! 256\n")), (257, RankFileProblem::BadBase64));
        assert_eq!(problem(&(all_bytes() + "aGk=\n")), (257, RankFileProblem::Malformed));
        assert_eq!(problem(&(all_bytes() + "aGk= x\n")), (257, RankFileProblem::BadRank));
        assert_eq!(problem(&(all_bytes() + "aGk= -1\n")), (257, RankFileProblem::BadRank));
        assert_eq!(problem(&(all_bytes() + "YQ== 256\n")), (257, RankFileProblem::DuplicateToken { first_line: 98 }));
        assert_eq!(problem(&(all_bytes() + "aGk= 5\n")), (257, RankFileProblem::DuplicateRank { first_line: 6 }));
        assert_eq!(problem(&(all_bytes() + "aGk= 300\n")), (257, RankFileProblem::RankGap { missing: 256 }));
        let gap = all_bytes() + "aGk= 257\n";
        assert!(Vocab::from_tiktoken_bytes(gap.as_bytes(), "t", &[256]).is_ok(), "a gap reserved for a special token");
        assert_eq!(problem(&(all_bytes() + "aGk= 99999999\n")), (257, RankFileProblem::BadRank));
        let without_z: String =
            all_bytes().lines().filter(|l| !l.starts_with("eg==")).map(|l| format!("{l}\n")).collect();
        assert!(matches!(problem(&without_z).1, RankFileProblem::RankGap { .. }));
        let renumbered = without_z + "aGk= 122\n";
        assert_eq!(problem(&renumbered), (0, RankFileProblem::MissingByte { byte: b'z' }));
    }

    #[test]
    fn reads_gzip_and_rejects_corrupt_gzip() {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(all_bytes().as_bytes()).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(Vocab::from_tiktoken_bytes(&gz, "t", &[]).unwrap().len(), 256);
        let err = Vocab::from_tiktoken_bytes(&gz[..gz.len() / 2], "t", &[]).unwrap_err();
        assert!(matches!(err, Error::RankFile { problem: RankFileProblem::BadGzip(_), .. }));
    }

    #[test]
    fn in_memory_vocabularies_allow_gaps_but_not_collisions() {
        let v = Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"b".to_vec(), 5)]).unwrap();
        assert_eq!(v.token_bytes(3), None);
        assert_eq!(v.token_bytes(5), Some(&b"b"[..]));
        assert!(Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"b".to_vec(), 0)]).is_err());
        assert!(Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"a".to_vec(), 1)]).is_err());
        assert!(Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"b".to_vec(), 1_000_000)]).is_err());
    }
}
