//! A byte-level BPE encoding: vocabulary + split pattern + special tokens, with tiktoken's
//! semantics for every operation.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::bpe;
use crate::error::{Error, Result};
use crate::pretokenize::{Family, PreTokenizer};
use crate::vocab::{Rank, Vocab};

/// Which special tokens may appear in the text and be encoded as special tokens.
#[derive(Debug, Clone, Default)]
pub enum Allowed {
    /// None (the default): special-token text is either disallowed or encoded as plain text.
    #[default]
    None,
    /// Every special token of the encoding.
    All,
    /// These ones.
    Some(FxHashSet<String>),
}

/// Which strings make encoding fail when they appear in the text.
#[derive(Debug, Clone, Default)]
pub enum Disallowed {
    /// Every special token that is not allowed (tiktoken's default).
    #[default]
    AllNotAllowed,
    /// These strings (usually special tokens; tiktoken accepts any).
    Some(Vec<String>),
}

/// Special tokens and the automata that find them.
#[derive(Debug, Clone)]
struct Specials {
    /// Token text → id.
    ids: FxHashMap<String, Rank>,
    /// Id → token bytes.
    bytes: FxHashMap<Rank, Box<[u8]>>,
    /// Token texts in the order of `ids_by_pattern`, the pattern index of the automata.
    by_pattern: Vec<(String, Rank)>,
    /// Leftmost-longest: splits text at allowed special tokens.
    leftmost: Option<AhoCorasick>,
    /// Standard semantics, for overlapping search of disallowed tokens among allowed ones.
    overlapping: Option<AhoCorasick>,
}

impl Specials {
    fn new(tokens: Vec<(String, Rank)>) -> Result<Self> {
        let mut ids = FxHashMap::default();
        let mut bytes: FxHashMap<Rank, Box<[u8]>> = FxHashMap::default();
        for (t, id) in &tokens {
            if t.is_empty() {
                return Err(Error::Vocab("a special token is the empty string".into()));
            }
            // Two special tokens may share an id (o200k_harmony gives 200018 to both
            // `<|endofprompt|>` and `<|reserved_200018|>`); decoding yields the first one given.
            bytes.entry(*id).or_insert_with(|| t.as_bytes().into());
            ids.insert(t.clone(), *id);
        }
        let mut by_pattern = tokens;
        by_pattern.sort();
        let build = |kind| {
            (!by_pattern.is_empty())
                .then(|| AhoCorasick::builder().match_kind(kind).build(by_pattern.iter().map(|(t, _)| t)))
                .transpose()
                .map_err(|e| Error::Vocab(format!("cannot index special tokens: {e}")))
        };
        let leftmost = build(MatchKind::LeftmostLongest)?;
        let overlapping = build(MatchKind::Standard)?;
        Ok(Self { ids, bytes, by_pattern, leftmost, overlapping })
    }
}

/// A loaded encoding. Immutable; share it with `Arc`.
#[derive(Debug, Clone)]
pub struct Encoding {
    name: String,
    pat_str: String,
    vocab: Arc<Vocab>,
    pretokenizer: PreTokenizer,
    specials: Specials,
    explicit_n_vocab: Option<usize>,
    /// Largest id, ordinary or special.
    max_token_value: Rank,
}

impl Encoding {
    /// Builds an encoding. Checks what tiktoken checks (the declared vocabulary size) and what
    /// it would otherwise panic or silently misbehave on (special ids colliding with ranks).
    pub fn new(
        name: impl Into<String>,
        pat_str: impl Into<String>,
        vocab: Arc<Vocab>,
        special_tokens: Vec<(String, Rank)>,
        explicit_n_vocab: Option<usize>,
    ) -> Result<Self> {
        let pat_str = pat_str.into();
        let pretokenizer = PreTokenizer::new(&pat_str)?;
        for (t, id) in &special_tokens {
            if let Some(bytes) = vocab.token_bytes(*id) {
                return Err(Error::Vocab(format!(
                    "special token {t:?} has id {id}, which is already the ordinary token {:?}",
                    String::from_utf8_lossy(bytes)
                )));
            }
        }
        let max_special = special_tokens.iter().map(|&(_, id)| id).max();
        let max_rank = vocab.rank_space().checked_sub(1).map(|r| r as Rank);
        let max_token_value = max_rank
            .into_iter()
            .chain(max_special)
            .max()
            .ok_or_else(|| Error::Vocab("the vocabulary is empty".into()))?;
        if let Some(n) = explicit_n_vocab {
            // As tiktoken counts: every special token, even two sharing an id.
            let have = vocab.len() + special_tokens.len();
            if have != n {
                return Err(Error::Vocab(format!("explicit_n_vocab is {n} but there are {have} tokens")));
            }
            if max_token_value as usize != n - 1 {
                return Err(Error::Vocab(format!(
                    "explicit_n_vocab is {n} but the largest token id is {max_token_value}"
                )));
            }
        }
        Ok(Self {
            name: name.into(),
            pat_str,
            vocab,
            pretokenizer,
            specials: Specials::new(special_tokens)?,
            explicit_n_vocab,
            max_token_value,
        })
    }

    /// A copy that always splits with the regex engine (the reference path, for tests).
    pub fn with_reference_pretokenizer(&self) -> Result<Self> {
        let mut e = self.clone();
        e.pretokenizer = PreTokenizer::regex(&self.pat_str)?;
        Ok(e)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn pat_str(&self) -> &str {
        &self.pat_str
    }
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }
    pub fn explicit_n_vocab(&self) -> Option<usize> {
        self.explicit_n_vocab
    }
    pub fn max_token_value(&self) -> Rank {
        self.max_token_value
    }
    /// `max_token_value + 1`, as tiktoken defines `n_vocab`.
    pub fn n_vocab(&self) -> usize {
        self.max_token_value as usize + 1
    }
    /// Special tokens, sorted by text.
    pub fn special_tokens(&self) -> &[(String, Rank)] {
        &self.specials.by_pattern
    }
    /// The id of a special token.
    pub fn special_token(&self, text: &str) -> Option<Rank> {
        self.specials.ids.get(text).copied()
    }
    pub fn is_special_token(&self, id: Rank) -> bool {
        self.specials.bytes.contains_key(&id)
    }

    /// Appends the ids of `text`, treating special-token text as plain text.
    pub fn encode_ordinary_into(&self, text: &str, out: &mut Vec<Rank>) -> Result<()> {
        self.encode_ordinary_at(text, 0, out)
    }

    fn encode_ordinary_at(&self, text: &str, base: usize, out: &mut Vec<Rank>) -> Result<()> {
        let bytes = text.as_bytes();
        let vocab = &*self.vocab;
        crate::cache::with_scratch(vocab.id(), |scratch| {
            self.pretokenizer.split_batched(text, |s, e| bpe::encode_piece(vocab, &bytes[s..e], base + s, out, scratch))
        })
    }

    /// The ids of `text`, treating special-token text as plain text.
    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<Rank>> {
        let mut out = Vec::with_capacity(text.len() / 4 + 1);
        self.encode_ordinary_into(text, &mut out)?;
        Ok(out)
    }

    /// `encode_ordinary` on up to `threads` threads, for long texts.
    ///
    /// Exact: the text is cut at roughly equal byte offsets; each thread scans pieces from its
    /// cut and, past the next cut, keeps going until it reaches a piece start that the next
    /// thread's scan also has (it computes the next thread's first pieces itself). Scans are
    /// memoryless, so from that shared start on both produce the same pieces; the next
    /// thread's output before it is dropped. Cuts that never meet such a point (or any error)
    /// fall back to one sequential pass, so the result always equals `encode_ordinary`.
    /// Only for the hand-written splitters; regex patterns run sequentially.
    pub fn encode_ordinary_parallel(&self, text: &str, threads: usize) -> Result<Vec<Rank>> {
        const MIN_SEGMENT: usize = 256 * 1024;
        self.encode_ordinary_in_segments(text, threads.min(text.len() / MIN_SEGMENT).max(1), threads)
    }

    /// `encode_ordinary_parallel` with an explicit number of segments (tests use tiny ones).
    pub fn encode_ordinary_in_segments(&self, text: &str, segments: usize, threads: usize) -> Result<Vec<Rank>> {
        match self.try_segments(text, segments, threads) {
            Some(ids) => Ok(ids),
            None => self.encode_ordinary(text),
        }
    }

    /// The cut-and-stitch result, or None where one sequential pass is needed instead.
    fn try_segments(&self, text: &str, segments: usize, threads: usize) -> Option<Vec<Rank>> {
        let PreTokenizer::Fast(family) = self.pretokenizer else { return None };
        if segments <= 1 || text.len() < 2 * segments {
            return None;
        }
        let mut cuts = vec![0];
        for j in 1..segments {
            let mut q = text.len() * j / segments;
            while !text.is_char_boundary(q) {
                q += 1;
            }
            if cuts.last().is_some_and(|&last| q > last) && q < text.len() {
                cuts.push(q);
            }
        }
        let indices: Vec<usize> = (0..cuts.len()).collect();
        let outs = crate::parallel::map(&indices, threads, |&j| self.encode_segment(family, text, &cuts, j));
        let mut result = Vec::with_capacity(text.len() / 4);
        let mut start_at = 0;
        for (j, out) in outs.into_iter().enumerate() {
            // An error is reported by the sequential pass, with its exact offset.
            let out = out.ok()?;
            let skip = if j == 0 { 0 } else { out.early.iter().find(|&&(s, _)| s == start_at)?.1 };
            result.extend_from_slice(&out.ids[skip..]);
            match out.sync {
                Some(e) => start_at = e,
                None => break,
            }
        }
        Some(result)
    }

    /// One thread's share of `encode_ordinary_in_segments`.
    fn encode_segment(&self, family: Family, text: &str, cuts: &[usize], j: usize) -> Result<Segmented> {
        /// Pieces of the next scan to look for a meeting point (it is nearly always the first few).
        const WINDOW: usize = 4096;
        let bytes = text.as_bytes();
        let vocab = &*self.vocab;
        let next_cut = cuts.get(j + 1).copied();
        let mut next_chain = FxHashSet::default();
        if let Some(c) = next_cut {
            family.split_from(text, c, |s, _| {
                next_chain.insert(s);
                Ok(next_chain.len() < WINDOW)
            })?;
        }
        crate::cache::with_scratch(vocab.id(), |scratch| {
            let mut seg = Segmented { ids: Vec::new(), early: Vec::new(), sync: None };
            family.split_from(text, cuts[j], |s, e| {
                if next_cut.is_some_and(|c| s >= c) && next_chain.contains(&s) {
                    seg.sync = Some(s);
                    return Ok(false);
                }
                if seg.early.len() < WINDOW {
                    seg.early.push((s, seg.ids.len()));
                }
                bpe::encode_piece(vocab, &bytes[s..e], s, &mut seg.ids, scratch)?;
                Ok(true)
            })?;
            Ok(seg)
        })
    }

    /// tiktoken's `encode`: fails on disallowed special tokens, encodes allowed ones as their id.
    pub fn encode(&self, text: &str, allowed: &Allowed, disallowed: &Disallowed) -> Result<Vec<Rank>> {
        let mut out = Vec::with_capacity(text.len() / 4 + 1);
        self.encode_into(text, allowed, disallowed, &mut out)?;
        Ok(out)
    }

    /// Like `encode`, appending to `out`.
    pub fn encode_into(
        &self,
        text: &str,
        allowed: &Allowed,
        disallowed: &Disallowed,
        out: &mut Vec<Rank>,
    ) -> Result<()> {
        self.check_disallowed(text, allowed, disallowed)?;
        self.for_each_segment(text, allowed, |seg| match seg {
            Segment::Text(s, base) => self.encode_ordinary_at(s, base, out),
            Segment::Special(id) => {
                out.push(id);
                Ok(())
            }
        })
    }

    /// `encode(...).len()` without keeping the ids.
    pub fn count(&self, text: &str, allowed: &Allowed, disallowed: &Disallowed) -> Result<usize> {
        self.check_disallowed(text, allowed, disallowed)?;
        let mut n = 0;
        let vocab = &*self.vocab;
        crate::cache::with_scratch(vocab.id(), |scratch| {
            self.for_each_segment(text, allowed, |seg| match seg {
                Segment::Text(s, base) => {
                    let b = s.as_bytes();
                    self.pretokenizer.split(s, |st, e| {
                        n += bpe::count_piece(vocab, &b[st..e], base + st, scratch)?;
                        Ok(())
                    })
                }
                Segment::Special(_) => {
                    n += 1;
                    Ok(())
                }
            })
        })?;
        Ok(n)
    }

    /// Splits `text` at allowed special tokens, as tiktoken does: the leftmost special-token
    /// match that is allowed ends the ordinary segment; matches of tokens that are not allowed
    /// are skipped by restarting the search one byte later.
    fn for_each_segment(
        &self,
        text: &str,
        allowed: &Allowed,
        mut f: impl FnMut(Segment<'_>) -> Result<()>,
    ) -> Result<()> {
        let ac = match (allowed, &self.specials.leftmost) {
            (Allowed::None, _) | (_, None) => return f(Segment::Text(text, 0)),
            (Allowed::Some(set), _) if set.is_empty() => return f(Segment::Text(text, 0)),
            (_, Some(ac)) => ac,
        };
        let mut start = 0;
        let mut find_from = 0;
        while find_from <= text.len() {
            let input = aho_corasick::Input::new(text).span(find_from..text.len());
            let Some(m) = ac.find(input) else { break };
            let (tok, id) = &self.specials.by_pattern[m.pattern().as_usize()];
            let ok = match allowed {
                Allowed::All => true,
                Allowed::Some(set) => set.contains(tok),
                Allowed::None => false,
            };
            if !ok {
                find_from = m.start() + 1;
                continue;
            }
            f(Segment::Text(&text[start..m.start()], start))?;
            f(Segment::Special(*id))?;
            start = m.end();
            find_from = m.end();
        }
        f(Segment::Text(&text[start..], start))
    }

    fn check_disallowed(&self, text: &str, allowed: &Allowed, disallowed: &Disallowed) -> Result<()> {
        let found: Option<(usize, &str)> = match disallowed {
            Disallowed::AllNotAllowed => match allowed {
                Allowed::All => None,
                _ if self.specials.by_pattern.is_empty() => None,
                Allowed::Some(set) if !set.is_empty() => self.first_overlapping(text, |t| !set.contains(t)),
                _ => self
                    .specials
                    .leftmost
                    .as_ref()
                    .and_then(|ac| ac.find(text))
                    .map(|m| (m.start(), self.specials.by_pattern[m.pattern().as_usize()].0.as_str())),
            },
            Disallowed::Some(list) if list.is_empty() => None,
            Disallowed::Some(list) if list.iter().all(|t| self.specials.ids.contains_key(t)) => {
                let set: FxHashSet<&str> = list.iter().map(String::as_str).collect();
                self.first_overlapping(text, |t| set.contains(t))
            }
            Disallowed::Some(list) => {
                let pats: Vec<&String> = list.iter().filter(|t| !t.is_empty()).collect();
                let ac = AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&pats)
                    .map_err(|e| Error::Vocab(format!("cannot index disallowed tokens: {e}")))?;
                ac.find(text).map(|m| (m.start(), pats[m.pattern().as_usize()].as_str()))
            }
        };
        match found {
            None => Ok(()),
            Some((byte, token)) => {
                Err(Error::DisallowedSpecial { token: token.to_owned(), char_offset: text[..byte].chars().count() })
            }
        }
    }

    /// The earliest (then longest) special-token occurrence whose text satisfies `pred`.
    fn first_overlapping(&self, text: &str, pred: impl Fn(&str) -> bool) -> Option<(usize, &str)> {
        let ac = self.specials.overlapping.as_ref()?;
        let longest = self.specials.by_pattern.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
        let mut best: Option<(usize, usize, &str)> = None;
        for m in ac.find_overlapping_iter(text) {
            let tok = self.specials.by_pattern[m.pattern().as_usize()].0.as_str();
            if let Some((s, _, _)) = best {
                // Matches come in order of their end; once an end passes the best start plus
                // the longest token, nothing earlier can follow.
                if m.end() > s + longest {
                    break;
                }
            }
            if pred(tok) && best.is_none_or(|(s, l, _)| m.start() < s || (m.start() == s && m.len() > l)) {
                best = Some((m.start(), m.len(), tok));
            }
        }
        best.map(|(s, _, t)| (s, t))
    }

    /// The bytes of one token, ordinary or special.
    pub fn token_bytes(&self, id: Rank) -> Result<&[u8]> {
        self.vocab
            .token_bytes(id)
            .or_else(|| self.specials.bytes.get(&id).map(|b| &b[..]))
            .ok_or_else(|| Error::InvalidToken(u64::from(id)))
    }

    /// The bytes that `ids` stand for.
    pub fn decode_bytes(&self, ids: &[Rank]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id)?);
        }
        Ok(out)
    }

    /// tiktoken's `decode_with_offsets` offsets: for each token, the index of the character
    /// (in the decoded text) where it starts; a token that starts inside a character gets
    /// that character's index.
    pub fn char_offsets(&self, ids: &[Rank]) -> Result<Vec<usize>> {
        let mut offsets = Vec::with_capacity(ids.len());
        let mut text_len = 0usize;
        for &id in ids {
            let b = self.token_bytes(id)?;
            let continuation = |c: &u8| (0x80..0xC0).contains(c);
            let starts_inside = b.first().is_some_and(continuation);
            offsets.push(text_len.saturating_sub(usize::from(starts_inside)));
            text_len += b.iter().filter(|c| !continuation(c)).count();
        }
        Ok(offsets)
    }

    /// The id of a single token given its bytes (ordinary first, then special).
    pub fn encode_single_token(&self, bytes: &[u8]) -> Result<Rank> {
        if let Some(r) = self.vocab.rank(bytes) {
            return Ok(r);
        }
        if let Some(id) = std::str::from_utf8(bytes).ok().and_then(|s| self.special_token(s)) {
            return Ok(id);
        }
        Err(Error::NotAToken(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// One thread's output in `encode_ordinary_in_segments`.
struct Segmented {
    ids: Vec<Rank>,
    /// `(piece start, ids.len() before it)` for the first pieces of the scan.
    early: Vec<(usize, usize)>,
    /// The piece start where this scan met the next one (None: it ran to the end).
    sync: Option<usize>,
}

enum Segment<'t> {
    /// Ordinary text and its byte offset in the whole input.
    Text(&'t str, usize),
    Special(Rank),
}

impl Encoding {
    /// `"fast"` when a hand-written splitter runs, `"dfa"` for the lazy DFA, `"regex"` for the
    /// backtracking engine.
    pub fn pretokenizer_kind(&self) -> &'static str {
        match self.pretokenizer {
            PreTokenizer::Fast(_) => "fast",
            PreTokenizer::Automaton(_) => "dfa",
            PreTokenizer::Regex(_) => "regex",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretokenize::LLAMA3_PATTERN;
    use proptest::prelude::*;

    fn encodings() -> Vec<Encoding> {
        let mut v: Vec<Encoding> =
            ["gpt2", "cl100k_base", "o200k_base"].iter().map(|n| (*crate::registry::get(n).unwrap()).clone()).collect();
        let base = crate::registry::get("cl100k_base").unwrap();
        v.push(Encoding::new("llama3-shape", LLAMA3_PATTERN, base.vocab.clone(), vec![], None).unwrap());
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn cutting_between_threads_changes_nothing(
            text in r"([ a-zA-Z0-9'\r\n\t!/.,é\u{301}\u{3000}中😀]{0,12}|aaaaaaaa|        |\n\n\n){0,40}",
            segments in 2usize..9,
        ) {
            for enc in encodings() {
                let expected = enc.encode_ordinary(&text).unwrap();
                prop_assert_eq!(enc.encode_ordinary_in_segments(&text, segments, 2).unwrap(), expected.clone());
                prop_assert_eq!(enc.encode_ordinary_parallel(&text, 3).unwrap(), expected);
            }
        }
    }

    #[test]
    fn cutting_a_long_real_text() {
        let text = "The quick brown fox, 12345 jumps;\r\n  over the lazy dog's back.\t中文字符 ".repeat(20_000);
        for enc in encodings() {
            let expected = enc.encode_ordinary(&text).unwrap();
            for segments in [2, 3, 7, 64] {
                let cut = enc.try_segments(&text, segments, 2);
                assert!(cut.is_some(), "{}: the scans should meet, not fall back", enc.name());
                assert_eq!(cut.unwrap(), expected, "{}", enc.name());
            }
        }
    }
}
