//! The general `tokenizer.json` pipeline: Hugging Face's pre-tokenizers, models and decoders,
//! each with `tokenizers`' exact semantics, composed as `tokenizers` composes them.
//!
//! The specialised paths in [`super`] (byte-level BPE, BERT's WordPiece) are faster and are
//! chosen when a file fits them; every other file runs here. Pieces are owned strings, each
//! with its "lead": how many of its first characters derive from the input's first character
//! (not 0: the piece starts at offset 0 of the input, what Metaspace's `prepend_scheme:
//! "first"` asks).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::offsets::Aligned;
use super::{byte_to_char, get, is_bert_punct, parse_vocab, wordpiece_cleanup, Ctx, WordPiece};
use crate::error::{Error, Result};
use crate::pretokenize::{PreTokenizer, GPT2_PATTERN_OLD};
use crate::sentencepiece::ByteTrie;
use crate::vocab::Rank;

/// How a split treats its pattern's matches (`SplitDelimiterBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behavior {
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

impl Behavior {
    fn parse(cx: &Ctx<'_>, v: Option<&Value>, path: &str) -> Result<Self> {
        Ok(match v.and_then(Value::as_str) {
            Some("Removed") => Self::Removed,
            Some("Isolated") | None => Self::Isolated,
            Some("MergedWithPrevious") => Self::MergedWithPrevious,
            Some("MergedWithNext") => Self::MergedWithNext,
            Some("Contiguous") => Self::Contiguous,
            Some(other) => return Err(cx.bad(path, format!("unknown behavior {other:?}"))),
        })
    }
}

/// What a split or a replacement looks for.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    Regex(PreTokenizer),
    Literal(String),
    Char(char),
    Whitespace,
    /// BERT's punctuation (ASCII punctuation and Unicode's P categories).
    Punctuation,
    /// `char::is_numeric`.
    Numeric,
}

impl Pattern {
    /// A `{"String": …}` or `{"Regex": …}` pattern.
    pub(crate) fn parse(cx: &Ctx<'_>, v: Option<&Value>, path: &str) -> Result<Self> {
        let v = v.ok_or_else(|| cx.bad(path, "no pattern"))?;
        if let Some(r) = v.get("Regex").and_then(Value::as_str) {
            // Always the regex engine: a hand-written splitter never reports empty matches,
            // which the behaviours below must see as the regex reports them.
            return Ok(Self::Regex(PreTokenizer::regex(r)?));
        }
        match v.get("String").and_then(Value::as_str) {
            Some(s) => Ok(Self::Literal(s.to_owned())),
            None => Err(cx.bad(path, "pattern is neither {\"String\": …} nor {\"Regex\": …}")),
        }
    }

    fn char_matches(&self, c: char) -> bool {
        match self {
            Self::Char(d) => c == *d,
            Self::Whitespace => c.is_whitespace(),
            Self::Punctuation => is_bert_punct(c),
            Self::Numeric => c.is_numeric(),
            Self::Regex(_) | Self::Literal(_) => false,
        }
    }

    /// `find_matches`: `text` cut into consecutive ranges, each flagged whether it matched.
    pub(crate) fn find_matches(&self, text: &str, out: &mut Vec<(usize, usize, bool)>) -> Result<()> {
        out.clear();
        if text.is_empty() {
            out.push((0, 0, false));
            return Ok(());
        }
        let mut prev = 0;
        let mut push = |s: usize, e: usize, out: &mut Vec<(usize, usize, bool)>| {
            if prev != s {
                out.push((prev, s, false));
            }
            out.push((s, e, true));
            prev = e;
        };
        match self {
            Self::Regex(re) => re.for_each_match(text, |s, e| {
                push(s, e, out);
                Ok(())
            })?,
            Self::Literal(lit) if lit.is_empty() => {}
            Self::Literal(lit) => {
                for s in memchr::memmem::find_iter(text.as_bytes(), lit.as_bytes()) {
                    push(s, s + lit.len(), out);
                }
            }
            _ => {
                for (i, c) in text.char_indices() {
                    if self.char_matches(c) {
                        push(i, i + c.len_utf8(), out);
                    }
                }
            }
        }
        if prev != text.len() {
            out.push((prev, text.len(), false));
        }
        Ok(())
    }
}

/// `text` with every match of `pattern` replaced by `content` (`NormalizedString::replace`,
/// and the `Replace` decoder).
pub(crate) fn replace_all(pattern: &Pattern, text: &str, content: &str) -> Result<String> {
    if let Pattern::Literal(lit) = pattern {
        let mut chars = lit.chars();
        if let (Some(needle), None) = (chars.next(), chars.next()) {
            // One character (the converted SentencePiece layouts' " " → "▁"): a loop over
            // the characters, instead of a range and two copy calls per word.
            let mut out = String::with_capacity(text.len() + text.len() / 4 * content.len());
            for c in text.chars() {
                if c == needle {
                    out.push_str(content);
                } else {
                    out.push(c);
                }
            }
            return Ok(out);
        }
    }
    replace_ranges(pattern, text, content)
}

/// `replace_all` through the pattern's match ranges (any pattern).
fn replace_ranges(pattern: &Pattern, text: &str, content: &str) -> Result<String> {
    let mut ranges = Vec::new();
    pattern.find_matches(text, &mut ranges)?;
    let len = ranges.iter().map(|&(s, e, matched)| if matched { content.len() } else { e - s }).sum();
    let mut out = String::with_capacity(len);
    for (s, e, matched) in ranges {
        out.push_str(if matched { content } else { &text[s..e] });
    }
    Ok(out)
}

/// The ranges a split keeps (`NormalizedString::split`), empty ones dropped.
fn split_ranges(matches: &[(usize, usize, bool)], behavior: Behavior, invert: bool) -> Vec<(usize, usize)> {
    let flag = |m: bool| m != invert;
    let mut out: Vec<(usize, usize, bool)> = Vec::with_capacity(matches.len());
    match behavior {
        Behavior::Isolated => out.extend(matches.iter().map(|&(s, e, _)| (s, e, false))),
        Behavior::Removed => out.extend(matches.iter().map(|&(s, e, m)| (s, e, flag(m)))),
        Behavior::Contiguous | Behavior::MergedWithPrevious => {
            let mut previous = false;
            for &(s, e, m) in matches {
                let m = flag(m);
                let merge = if behavior == Behavior::Contiguous { m == previous } else { m && !previous };
                match out.last_mut() {
                    Some(last) if merge => last.1 = e,
                    _ => out.push((s, e, false)),
                }
                previous = m;
            }
        }
        Behavior::MergedWithNext => {
            let mut previous = false;
            for &(s, e, m) in matches.iter().rev() {
                let m = flag(m);
                match out.last_mut() {
                    Some(last) if m && !previous => last.0 = s,
                    _ => out.push((s, e, false)),
                }
                previous = m;
            }
            out.reverse();
        }
    }
    out.into_iter().filter(|&(s, e, removed)| !removed && s < e).map(|(s, e, _)| (s, e)).collect()
}

/// Metaspace's `prepend_scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prepend {
    Always,
    First,
    Never,
}

/// One pre-tokenization step.
#[derive(Debug, Clone)]
enum Step {
    ByteLevel {
        add_prefix_space: bool,
        regex: Option<PreTokenizer>,
    },
    Split {
        pattern: Pattern,
        behavior: Behavior,
        invert: bool,
    },
    Metaspace {
        replacement: char,
        prepend: Prepend,
        split: bool,
    },
    FixedLength(usize),
    /// `UnicodeScripts`: a piece wherever the script class changes (see [`script_cuts`]).
    Scripts,
}

/// The script class of a character as `tokenizers`' UnicodeScripts sees it (0: any).
fn script_class(c: char) -> u8 {
    use std::cmp::Ordering;
    let cp = c as u32;
    super::scripts::SCRIPT_RANGES
        .binary_search_by(|&(first, last, _)| {
            if last < cp {
                Ordering::Less
            } else if first > cp {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .map_or(0, |i| super::scripts::SCRIPT_RANGES[i].2)
}

/// UnicodeScripts' pieces: a cut before each character whose class (not "any") differs from
/// the last class seen; the pieces run from cut to cut, so characters of class "any" before the
/// first cut are dropped, as in `tokenizers`.
fn script_cuts(text: &str) -> Vec<(usize, usize)> {
    let mut cuts = Vec::new();
    let mut last = None;
    for (i, c) in text.char_indices() {
        let k = script_class(c);
        if k != 0 {
            if last != Some(k) {
                cuts.push(i);
            }
            last = Some(k);
        }
    }
    cuts.push(text.len());
    cuts.windows(2).map(|w| (w[0], w[1])).collect()
}

/// A piece of pre-tokenized text, and how many of its first characters derive from the
/// input's first character (not 0: the piece starts at offset 0 of the input).
type Piece = (String, usize);

/// The lead (see [`Piece`]) of the part of a piece that starts at byte `start`.
fn lead_at(text: &str, lead: usize, start: usize) -> usize {
    // A character takes at most 4 bytes: past 4 × lead bytes no count is needed.
    if lead == 0 || start >= 4 * lead {
        return 0;
    }
    lead.saturating_sub(text[..start].chars().count())
}

fn parse_steps(cx: &Ctx<'_>, p: &Value, path: &str, out: &mut Vec<Step>) -> Result<()> {
    let split = |pattern, behavior| Step::Split { pattern, behavior, invert: false };
    match cx.type_of(p, path)? {
        "Sequence" => {
            let list =
                p.get("pretokenizers").and_then(Value::as_array).ok_or_else(|| cx.bad(path, "no pretokenizers"))?;
            for (i, s) in list.iter().enumerate() {
                parse_steps(cx, s, &format!("{path}.pretokenizers[{i}]"), out)?;
            }
        }
        "ByteLevel" => out.push(Step::ByteLevel {
            add_prefix_space: cx.flag(p, "add_prefix_space"),
            regex: if p.get("use_regex").and_then(Value::as_bool).unwrap_or(true) {
                Some(PreTokenizer::new(GPT2_PATTERN_OLD)?)
            } else {
                None
            },
        }),
        "WhitespaceSplit" => out.push(split(Pattern::Whitespace, Behavior::Removed)),
        "BertPreTokenizer" => {
            out.push(split(Pattern::Whitespace, Behavior::Removed));
            out.push(split(Pattern::Punctuation, Behavior::Isolated));
        }
        "Punctuation" => {
            out.push(split(Pattern::Punctuation, Behavior::parse(cx, p.get("behavior"), path)?));
        }
        "Digits" => out.push(split(
            Pattern::Numeric,
            if cx.flag(p, "individual_digits") { Behavior::Isolated } else { Behavior::Contiguous },
        )),
        "CharDelimiterSplit" => {
            let d = p.get("delimiter").and_then(Value::as_str).unwrap_or_default();
            let mut chars = d.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(cx.bad(path, "delimiter is not one character"));
            };
            out.push(split(Pattern::Char(c), Behavior::Removed));
        }
        "Split" => out.push(Step::Split {
            pattern: Pattern::parse(cx, p.get("pattern"), &format!("{path}.pattern"))?,
            behavior: Behavior::parse(cx, p.get("behavior"), path)?,
            invert: cx.flag(p, "invert"),
        }),
        "Metaspace" => {
            let (replacement, prepend) = metaspace_options(cx, p, path)?;
            out.push(Step::Metaspace {
                replacement,
                prepend,
                split: p.get("split").and_then(Value::as_bool).unwrap_or(true),
            });
        }
        "FixedLength" => {
            let n = p.get("length").and_then(Value::as_u64).unwrap_or(5) as usize;
            if n == 0 {
                return Err(cx.bad(path, "length 0"));
            }
            out.push(Step::FixedLength(n));
        }
        // `tokenizers` keeps the matches of `\w+|[^\w\s]+` (the `regex` crate's classes, as
        // ours; checked on every code point by the tests).
        "Whitespace" => out.push(Step::Split {
            pattern: Pattern::Regex(PreTokenizer::new(r"\w+|[^\w\s]+")?),
            behavior: Behavior::Removed,
            invert: true,
        }),
        "UnicodeScripts" => out.push(Step::Scripts),
        other => return Err(cx.unsupported(format!("the pre-tokenizer {other}"))),
    }
    Ok(())
}

/// Metaspace's replacement character and prepend scheme (with the older `add_prefix_space`).
fn metaspace_options(cx: &Ctx<'_>, p: &Value, path: &str) -> Result<(char, Prepend)> {
    let r = p.get("replacement").and_then(Value::as_str).unwrap_or("\u{2581}");
    let mut chars = r.chars();
    let (Some(replacement), None) = (chars.next(), chars.next()) else {
        return Err(cx.bad(path, "replacement is not one character"));
    };
    let prepend = match get(p, "prepend_scheme").and_then(Value::as_str) {
        Some("always") => Prepend::Always,
        Some("first") => Prepend::First,
        Some("never") => Prepend::Never,
        Some(other) => return Err(cx.bad(path, format!("unknown prepend_scheme {other:?}"))),
        None if p.get("add_prefix_space").and_then(Value::as_bool).unwrap_or(true) => Prepend::Always,
        None => Prepend::Never,
    };
    Ok((replacement, prepend))
}

impl Step {
    fn apply(&self, pieces: Vec<Piece>, ranges: &mut Vec<(usize, usize, bool)>) -> Result<Vec<Piece>> {
        let mut out = Vec::with_capacity(pieces.len() + 4);
        for (mut text, lead) in pieces {
            let cut = |text: &str, kept: Vec<(usize, usize)>, out: &mut Vec<Piece>| {
                out.extend(kept.into_iter().map(|(s, e)| (text[s..e].to_owned(), lead_at(text, lead, s))));
            };
            match self {
                Self::ByteLevel { add_prefix_space, regex } => {
                    let mut lead = lead;
                    if *add_prefix_space && !text.is_empty() && !text.starts_with(' ') {
                        text.insert(0, ' ');
                        lead += usize::from(lead > 0);
                    }
                    // Each byte becomes a character.
                    let table = byte_to_char();
                    let map = |s: &str, lead: usize| {
                        let lead_bytes = s.chars().take(lead).map(char::len_utf8).sum();
                        (s.bytes().map(|b| table[b as usize]).collect::<String>(), lead_bytes)
                    };
                    match regex {
                        None => out.push(map(&text, lead)),
                        Some(re) => {
                            Pattern::Regex(re.clone()).find_matches(&text, ranges)?;
                            for (s, e) in split_ranges(ranges, Behavior::Isolated, false) {
                                out.push(map(&text[s..e], lead_at(&text, lead, s)));
                            }
                        }
                    }
                }
                Self::Split { pattern, behavior, invert } => {
                    pattern.find_matches(&text, ranges)?;
                    cut(&text, split_ranges(ranges, *behavior, *invert), &mut out);
                }
                &Self::Metaspace { replacement, prepend, split } => {
                    // One character for one: the lead is unchanged.
                    let mut text = text.replace(' ', replacement.encode_utf8(&mut [0; 4]));
                    let first = match prepend {
                        Prepend::Always => true,
                        Prepend::First => lead > 0,
                        Prepend::Never => false,
                    };
                    let mut lead = lead;
                    if first && !text.is_empty() && !text.starts_with(replacement) {
                        text.insert(0, replacement);
                        lead += usize::from(lead > 0);
                    }
                    if split {
                        Pattern::Char(replacement).find_matches(&text, ranges)?;
                        let kept = split_ranges(ranges, Behavior::MergedWithNext, false);
                        out.extend(kept.into_iter().map(|(s, e)| (text[s..e].to_owned(), lead_at(&text, lead, s))));
                    } else if !text.is_empty() {
                        out.push((text, lead));
                    }
                }
                &Self::FixedLength(n) => {
                    let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).step_by(n).collect();
                    for (k, &s) in starts.iter().enumerate() {
                        let e = starts.get(k + 1).copied().unwrap_or(text.len());
                        out.push((text[s..e].to_owned(), lead_at(&text, lead, s)));
                    }
                }
                Self::Scripts => cut(&text, script_cuts(&text), &mut out),
            }
        }
        Ok(out)
    }
}

impl Step {
    /// One step on one aligned piece (see [`offsets`](super::offsets)).
    fn apply_aligned(
        &self,
        mut p: Aligned,
        ranges: &mut Vec<(usize, usize, bool)>,
        out: &mut Vec<Aligned>,
    ) -> Result<()> {
        let cut = |p: &Aligned, kept: Vec<(usize, usize)>, out: &mut Vec<Aligned>| {
            out.extend(kept.into_iter().map(|(s, e)| p.slice(s, e)));
        };
        match self {
            Self::ByteLevel { add_prefix_space, regex } => {
                if *add_prefix_space && !p.text.starts_with(' ') {
                    p.prepend(" ");
                }
                let mut parts = Vec::new();
                match regex {
                    None => parts.push(p),
                    Some(re) => {
                        Pattern::Regex(re.clone()).find_matches(&p.text, ranges)?;
                        cut(&p, split_ranges(ranges, Behavior::Isolated, false), &mut parts);
                    }
                }
                for mut part in parts {
                    part.byte_level();
                    out.push(part);
                }
            }
            Self::Split { pattern, behavior, invert } => {
                pattern.find_matches(&p.text, ranges)?;
                cut(&p, split_ranges(ranges, *behavior, *invert), out);
            }
            &Self::Metaspace { replacement, prepend, split } => {
                let rep = replacement.to_string();
                p.replace(&Pattern::Char(' '), &rep)?;
                let first = match prepend {
                    Prepend::Always => true,
                    Prepend::First => p.shift == 0,
                    Prepend::Never => false,
                };
                if first && !p.text.starts_with(replacement) {
                    p.prepend(&rep);
                }
                if split {
                    Pattern::Char(replacement).find_matches(&p.text, ranges)?;
                    cut(&p, split_ranges(ranges, Behavior::MergedWithNext, false), out);
                } else {
                    out.push(p);
                }
            }
            &Self::FixedLength(n) => {
                let starts: Vec<usize> = p.text.char_indices().map(|(i, _)| i).step_by(n).collect();
                for (k, &s) in starts.iter().enumerate() {
                    let e = starts.get(k + 1).copied().unwrap_or(p.text.len());
                    out.push(p.slice(s, e));
                }
            }
            Self::Scripts => cut(&p, script_cuts(&p.text), out),
        }
        Ok(())
    }
}

/// A `BPE` model over characters (any vocabulary, with the options byte-level files do
/// not use: continuing-subword prefix, end-of-word suffix, byte fallback, unknown token).
#[derive(Debug, Clone)]
struct CharBpe {
    vocab: FxHashMap<String, Rank>,
    /// (left id, right id) → (merge rank, merged id).
    merges: Merges,
    unk_token: Option<String>,
    prefix: Option<String>,
    suffix: Option<String>,
    fuse_unk: bool,
    byte_fallback: bool,
    ignore_merges: bool,
    /// The ids of `<0x00>` … `<0xFF>`, for byte fallback.
    byte_tokens: [Option<Rank>; 256],
    /// A character before which (unless it follows itself) no merge can reach: no token has
    /// it after another character than itself. A piece is encoded word by word between them.
    word_start: Option<char>,
    /// The ids of one-character tokens, when there is neither prefix nor suffix (a shortcut
    /// for the look-up of the character as a string).
    char_ids: FxHashMap<char, Rank>,
}

/// The ids of SentencePiece-style byte tokens `<0x00>` … `<0xFF>` in a vocabulary.
fn byte_tokens(vocab: &FxHashMap<String, Rank>) -> [Option<Rank>; 256] {
    let mut out = [None; 256];
    for (b, slot) in out.iter_mut().enumerate() {
        *slot = vocab.get(&format!("<0x{b:02X}>")).copied();
    }
    out
}

impl CharBpe {
    fn parse(cx: &Ctx<'_>, model: &Value, vocab: FxHashMap<String, Rank>) -> Result<Self> {
        if get(model, "dropout").and_then(Value::as_f64).is_some_and(|d| d > 0.0) {
            return Err(cx.unsupported("BPE dropout"));
        }
        let text = |key: &str| get(model, key).and_then(Value::as_str).map(str::to_owned);
        let prefix = text("continuing_subword_prefix");
        let prefix_len = prefix.as_ref().map_or(0, String::len);
        let mut merges = FxHashMap::default();
        let merges_json =
            get(model, "merges").and_then(Value::as_array).ok_or_else(|| cx.bad("$.model.merges", "missing"))?;
        for (rank, m) in merges_json.iter().enumerate() {
            let path = || format!("$.model.merges[{rank}]");
            let (a, b) = super::merge_pair(cx, m, &path)?;
            let id = |t: &str| {
                vocab.get(t).copied().ok_or_else(|| cx.bad(&path(), format!("{t:?} is not in the vocabulary")))
            };
            // The right part loses the prefix's length in bytes, as `tokenizers` builds it.
            let tail =
                b.get(prefix_len..).ok_or_else(|| cx.bad(&path(), "the right part is shorter than the prefix"))?;
            let (ia, ib, im) = (id(a)?, id(b)?, id(&format!("{a}{tail}"))?);
            // The last listing of a pair wins, as in `tokenizers`.
            merges.insert((ia, ib), (rank as u32, im));
        }
        let suffix = text("end_of_word_suffix");
        // With a prefix or suffix, where a word starts and ends changes its symbols; with
        // `ignore_merges`, a word found whole in the vocabulary would skip merges that the
        // whole piece goes through.
        let word_start = if prefix.is_none() && suffix.is_none() && !cx.flag(model, "ignore_merges") {
            ['\u{2581}', ' ', '\u{120}'].into_iter().find(|&c| {
                vocab.contains_key(c.encode_utf8(&mut [0; 4]) as &str)
                    && vocab.keys().all(|t| t.trim_start_matches(c).chars().all(|d| d != c))
            })
        } else {
            None
        };
        let mut char_ids = FxHashMap::default();
        if prefix.is_none() && suffix.is_none() {
            for (t, &id) in &vocab {
                let mut cs = t.chars();
                if let (Some(c), None) = (cs.next(), cs.next()) {
                    char_ids.insert(c, id);
                }
            }
        }
        Ok(Self {
            byte_tokens: byte_tokens(&vocab),
            word_start,
            char_ids,
            vocab,
            merges: Merges::new(merges),
            unk_token: text("unk_token"),
            prefix,
            suffix,
            fuse_unk: cx.flag(model, "fuse_unk"),
            byte_fallback: cx.flag(model, "byte_fallback"),
            ignore_merges: cx.flag(model, "ignore_merges"),
        })
    }

    fn unk_id(&self, piece: &str) -> Result<Rank> {
        let unk = self.unk_token.as_ref().ok_or_else(|| Error::Uncoverable { model: "BPE", piece: piece.into() })?;
        self.vocab.get(unk).copied().ok_or_else(|| Error::Uncoverable { model: "BPE", piece: piece.into() })
    }

    /// `BPE::merge_word`, then the merges.
    fn encode(&self, word: &str, out: &mut Vec<Rank>) -> Result<()> {
        if self.ignore_merges {
            if let Some(&id) = self.vocab.get(word) {
                out.push(id);
                return Ok(());
            }
        }
        let mut ids = self.symbols(word, None)?;
        merge_word(&self.merges, &mut ids);
        out.extend_from_slice(&ids);
        Ok(())
    }

    /// [`Self::encode`] with each token's byte range in `word` (`tokenizers`' symbol lengths:
    /// a byte-fallback token counts one byte, an unknown the characters it stands for).
    fn encode_spans(&self, word: &str, out: &mut Vec<Rank>, spans: &mut Vec<(usize, usize)>) -> Result<()> {
        if self.ignore_merges {
            if let Some(&id) = self.vocab.get(word) {
                out.push(id);
                spans.push((0, word.len()));
                return Ok(());
            }
        }
        let mut lens = Vec::with_capacity(word.len());
        let mut ids = self.symbols(word, Some(&mut lens))?;
        with_memo(&self.merges, |memo, _| blocked_merge(&mut |a, b| memo.get(a, b), &mut ids, Some(&mut lens)));
        let mut at = 0;
        for len in lens {
            spans.push((at, at + len));
            at += len;
        }
        out.extend_from_slice(&ids);
        Ok(())
    }

    /// The word's symbols before any merge (with `lens`, each one's length in bytes).
    fn symbols(&self, word: &str, mut lens: Option<&mut Vec<usize>>) -> Result<Vec<Rank>> {
        let mut ids: Vec<Rank> = Vec::with_capacity(word.len());
        let mut push = |ids: &mut Vec<Rank>, id: Rank, len: usize| {
            ids.push(id);
            if let Some(l) = lens.as_deref_mut() {
                l.push(len);
            }
        };
        // A pending unknown token and the bytes it stands for.
        let mut unk: Option<(Rank, usize)> = None;
        let mut key = String::new();
        let mut chars = word.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let n = c.len_utf8();
            if let Some(&id) = self.char_ids.get(&c) {
                if let Some((u, l)) = unk.take() {
                    push(&mut ids, u, l);
                }
                push(&mut ids, id, n);
                continue;
            }
            key.clear();
            if i > 0 {
                key.push_str(self.prefix.as_deref().unwrap_or_default());
            }
            key.push(c);
            if chars.peek().is_none() {
                key.push_str(self.suffix.as_deref().unwrap_or_default());
            }
            if let Some(&id) = self.vocab.get(&key) {
                if let Some((u, l)) = unk.take() {
                    push(&mut ids, u, l);
                }
                push(&mut ids, id, n);
                continue;
            }
            if self.byte_fallback {
                let bytes: Option<Vec<Rank>> = key.bytes().map(|b| self.byte_tokens[b as usize]).collect();
                if let Some(bytes) = bytes {
                    // A pending unknown stays pending, as in `tokenizers`.
                    for b in bytes {
                        push(&mut ids, b, 1);
                    }
                    continue;
                }
            }
            if self.unk_token.is_some() {
                let id = self.unk_id(word)?;
                unk = match unk {
                    Some((u, l)) if self.fuse_unk => Some((u, l + n)),
                    Some((u, l)) => {
                        push(&mut ids, u, l);
                        Some((id, n))
                    }
                    None => Some((id, n)),
                };
            }
        }
        if let Some((u, l)) = unk {
            push(&mut ids, u, l);
        }
        Ok(ids)
    }
}

/// Words of at most this many symbols are merged by scanning (`scan_merge`, O(n) per merge),
/// longer ones by `blocked_merge`. 64 before the blocked merge replaced the heap; at 32,
/// callgrind counts 7% fewer instructions on Llama 3 CJK and the same on English.
const SHORT_WORD: usize = 32;

/// A BPE model's merges: (left id, right id) → (merge rank, merged id).
#[derive(Debug, Clone, Default)]
pub(crate) struct Merges {
    map: FxHashMap<(Rank, Rank), (u32, Rank)>,
    /// A process-unique id for this table (never an address), keying each thread's memo.
    owner: u64,
}

impl Merges {
    pub(crate) fn new(map: FxHashMap<(Rank, Rank), (u32, Rank)>) -> Self {
        Self { map, owner: crate::cache::next_owner_id() }
    }

    #[inline]
    fn get(&self, a: Rank, b: Rank) -> Option<(u32, Rank)> {
        self.map.get(&(a, b)).copied()
    }
}

/// "No merge" in a memo slot and in the scan's pair list (no real merge has rank `u32::MAX`).
const NO_MERGE: (u32, Rank) = (u32::MAX, 0);
const MEMO_BITS: u32 = 14;

/// One thread's buffers for merging: a direct-mapped memo of recent pair look-ups and the
/// scan's pair list. Merging asks for the same pairs over and over (common characters and
/// affixes); the memo (256 KiB, in L2) answers them from cache where the merges map (millions of
/// bytes for 100k-token models) misses it. Exact: an entry is a pure function of the pair
/// and the table, and the memo is emptied when another table (`owner`) uses it.
struct MergeScratch {
    owner: u64,
    memo: Box<[(u64, (u32, Rank))]>,
    pairs: Vec<(u32, Rank)>,
}

thread_local! {
    static MERGE_SCRATCH: std::cell::RefCell<MergeScratch> = std::cell::RefCell::new(MergeScratch {
        owner: 0,
        memo: Box::default(),
        pairs: Vec::new(),
    });
}

/// A memoized pair look-up for one `Merges` table (an empty memo looks up directly).
pub(crate) struct Memo<'a> {
    merges: &'a Merges,
    memo: &'a mut [(u64, (u32, Rank))],
}

impl Memo<'_> {
    /// The merge of `a` and `b`: (rank, merged id), or `NO_MERGE`.
    #[inline(always)]
    fn get(&mut self, a: Rank, b: Rank) -> (u32, Rank) {
        let key = (u64::from(a) << 32) | u64::from(b);
        let i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - MEMO_BITS)) as usize;
        let Some(slot) = self.memo.get_mut(i) else { return self.merges.get(a, b).unwrap_or(NO_MERGE) };
        if slot.0 != key {
            *slot = (key, self.merges.get(a, b).unwrap_or(NO_MERGE));
        }
        slot.1
    }
}

/// Runs `f` with a memoized pair look-up for `merges` and a reusable pair list (or, if the
/// thread's scratch is in use or gone, with direct look-ups and a fresh list). The look-up is
/// a concrete type, so the merge loops inline it.
fn with_memo<T>(merges: &Merges, mut f: impl FnMut(&mut Memo<'_>, &mut Vec<(u32, Rank)>) -> T) -> T {
    let done = MERGE_SCRATCH.try_with(|cell| {
        let Ok(mut scratch) = cell.try_borrow_mut() else { return None };
        let scratch = &mut *scratch;
        if scratch.owner != merges.owner || scratch.memo.is_empty() {
            // Keys are (a << 32 | b) with a, b below u32::MAX, so u64::MAX is never one.
            scratch.memo = vec![(u64::MAX, NO_MERGE); 1 << MEMO_BITS].into_boxed_slice();
            scratch.owner = merges.owner;
        }
        Some(f(&mut Memo { merges, memo: &mut scratch.memo }, &mut scratch.pairs))
    });
    match done {
        Ok(Some(t)) => t,
        _ => f(&mut Memo { merges, memo: &mut [] }, &mut Vec::new()),
    }
}

/// `tokenizers`' merges over a word's symbols, in its order: each time, the adjacent pair
/// listed in `merges` with the lowest (merge rank, position). Words of up to `SHORT_WORD`
/// symbols scan for it (`scan_merge`), longer ones use `blocked_merge`; `tokenizers`' own heap
/// (`heap_merge`) is the tests' oracle for both.
pub(crate) fn merge_word(merges: &Merges, ids: &mut Vec<Rank>) {
    if ids.len() < 2 {
        return;
    }
    with_memo(merges, |memo, pairs| {
        let mut pair = |a, b| memo.get(a, b);
        if ids.len() <= SHORT_WORD {
            scan_merge(&mut pair, ids, pairs);
        } else {
            blocked_merge(&mut pair, ids, None);
        }
    });
}

/// The same order as [`heap_merge`] without a heap: each time, the lowest (rank, position)
/// among the current adjacent pairs (quadratic, and faster for short words).
fn scan_merge(pair: &mut impl FnMut(Rank, Rank) -> (u32, Rank), ids: &mut Vec<Rank>, pairs: &mut Vec<(u32, Rank)>) {
    // pairs[i]: the merge of ids[i] and ids[i + 1] (rank, merged id), or NO_MERGE; only the
    // two pairs beside a merge are looked up again after it.
    pairs.clear();
    pairs.extend(ids.windows(2).map(|w| pair(w[0], w[1])));
    loop {
        let mut best = 0;
        for i in 1..pairs.len() {
            if pairs[i].0 < pairs[best].0 {
                best = i;
            }
        }
        let Some(&(rank, new)) = pairs.get(best) else { return };
        if rank == u32::MAX {
            return;
        }
        ids[best] = new;
        ids.remove(best + 1);
        pairs.remove(best);
        if best > 0 {
            pairs[best - 1] = pair(ids[best - 1], new);
        }
        if best < pairs.len() {
            pairs[best] = pair(new, ids[best + 1]);
        }
    }
}

/// Blocks of `blocked_merge` (log2): 16 keys, as in the tiktoken engine's `merge_blocked`.
const BLOCK_SHIFT: u32 = 4;

/// The same order as [`heap_merge`] (the lowest (rank, position) among the current adjacent
/// pairs, every time) without a heap: the symbols in a doubly linked list, the key
/// `(rank << 32) | position` of the pair starting at each symbol, the minimum key of each
/// block of 16 symbols and a tournament tree over the block minima, whose root is the next
/// merge. A merge changes at most three keys (the merged symbol's new pair, the dead right
/// symbol, the pair before), so it rescans at most three blocks and walks their paths to the
/// root, stopping where a minimum is unchanged: O(16 + log n) per merge, with no stale entries
/// and no second look-up of a popped pair, and the tree stays in cache where a heap over every
/// pair missed it (the tiktoken engine's `merge_blocked`, over ids instead of bytes). With
/// `lens`, each symbol's length, summed as symbols merge.
fn blocked_merge(
    pair: &mut impl FnMut(Rank, Rank) -> (u32, Rank),
    ids: &mut Vec<Rank>,
    mut lens: Option<&mut Vec<usize>>,
) {
    const END: u32 = u32::MAX;
    let n = ids.len();
    if n < 2 {
        return;
    }
    let Ok(n32) = u32::try_from(n) else {
        // Positions must fit in the low half of a key.
        return heap_merge(pair, ids, lens);
    };
    let key = |(rank, _): (u32, Rank), pos: usize| {
        if rank == u32::MAX {
            u64::MAX
        } else {
            (u64::from(rank) << 32) | pos as u64
        }
    };
    let mut next: Vec<u32> = (1..=n32).collect();
    let mut prev: Vec<u32> = (0..n32).map(|i| i.wrapping_sub(1)).collect();
    let mut live = vec![true; n];
    let mut keys: Vec<u64> = (0..n - 1).map(|i| key(pair(ids[i], ids[i + 1]), i)).collect();
    // Padded to whole blocks (see `bpe::refresh_block`).
    keys.resize(n.next_multiple_of(1 << BLOCK_SHIFT), u64::MAX);
    let mut tree = Vec::new();
    let leaves = crate::bpe::build_tree(&keys, &mut tree, BLOCK_SHIFT);
    let refresh =
        |keys: &[u64], tree: &mut [u64], b: usize| crate::bpe::refresh_block(keys, tree, leaves, BLOCK_SHIFT, b);
    while tree[1] != u64::MAX {
        let l = (tree[1] & 0xFFFF_FFFF) as usize;
        let m = next[l] as usize;
        let (_, new) = pair(ids[l], ids[m]);
        ids[l] = new;
        if let Some(lens) = lens.as_deref_mut() {
            lens[l] += lens[m];
        }
        live[m] = false;
        keys[m] = u64::MAX;
        let e = next[m];
        next[l] = e;
        keys[l] = if e < n32 {
            prev[e as usize] = l as u32;
            key(pair(new, ids[e as usize]), l)
        } else {
            u64::MAX
        };
        let p = prev[l];
        if p != END {
            let p = p as usize;
            keys[p] = key(pair(ids[p], new), p);
            if p >> BLOCK_SHIFT != l >> BLOCK_SHIFT {
                refresh(&keys, &mut tree, p >> BLOCK_SHIFT);
            }
        }
        refresh(&keys, &mut tree, l >> BLOCK_SHIFT);
        if m >> BLOCK_SHIFT != l >> BLOCK_SHIFT {
            refresh(&keys, &mut tree, m >> BLOCK_SHIFT);
        }
    }
    compact(ids, lens, &live);
}

/// Keeps the symbols still `live` (and their lengths), in order.
fn compact(ids: &mut Vec<Rank>, mut lens: Option<&mut Vec<usize>>, live: &[bool]) {
    let mut w = 0;
    for (r, &alive) in live.iter().enumerate() {
        if alive {
            ids[w] = ids[r];
            if let Some(l) = lens.as_deref_mut() {
                l[w] = l[r];
            }
            w += 1;
        }
    }
    ids.truncate(w);
    if let Some(l) = lens {
        l.truncate(w);
    }
}

/// `tokenizers`' own loop: a min-heap of (rank, position, merged id), stale entries skipped.
/// The oracle of [`blocked_merge`] (tests) and its fallback for more than 2^32 symbols.
/// With `lens`, each symbol's length, summed as symbols merge.
fn heap_merge(
    pair: &mut impl FnMut(Rank, Rank) -> (u32, Rank),
    ids: &mut Vec<Rank>,
    mut lens: Option<&mut Vec<usize>>,
) {
    let mut merges = |a: Rank, b: Rank| Some(pair(a, b)).filter(|&m| m != NO_MERGE);
    const NONE: usize = usize::MAX;
    let n = ids.len();
    if n < 2 {
        return;
    }
    let mut next: Vec<usize> = (1..=n).map(|i| if i == n { NONE } else { i }).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { NONE } else { i - 1 }).collect();
    let mut live = vec![true; n];
    let mut heap = BinaryHeap::new();
    for i in 0..n - 1 {
        if let Some((rank, new)) = merges(ids[i], ids[i + 1]) {
            heap.push(Reverse((rank, i, new)));
        }
    }
    while let Some(Reverse((rank, pos, new))) = heap.pop() {
        let after = next[pos];
        // Stale if either symbol changed since the pair was pushed.
        if !live[pos] || after == NONE || merges(ids[pos], ids[after]) != Some((rank, new)) {
            continue;
        }
        ids[pos] = new;
        if let Some(l) = lens.as_deref_mut() {
            l[pos] += l[after];
        }
        live[after] = false;
        let after2 = next[after];
        next[pos] = after2;
        if after2 != NONE {
            prev[after2] = pos;
            if let Some((r, m)) = merges(new, ids[after2]) {
                heap.push(Reverse((r, pos, m)));
            }
        }
        if prev[pos] != NONE {
            if let Some((r, m)) = merges(ids[prev[pos]], new) {
                heap.push(Reverse((r, prev[pos], m)));
            }
        }
    }
    compact(ids, lens, &live);
}

/// A `Unigram` model as `tokenizers` runs it (its own Viterbi, not SentencePiece's).
#[derive(Debug, Clone)]
struct Unigram {
    trie: ByteTrie,
    scores: Vec<f64>,
    vocab: FxHashMap<String, Rank>,
    unk: Option<Rank>,
    min_score: f64,
    byte_fallback: bool,
    byte_tokens: [Option<Rank>; 256],
}

/// `tokenizers`' penalty below the lowest piece score for an unknown character.
const UNK_PENALTY: f64 = 10.0;

impl Unigram {
    fn parse(cx: &Ctx<'_>, model: &Value) -> Result<(Self, Vec<Option<String>>)> {
        let list = get(model, "vocab")
            .and_then(Value::as_array)
            .ok_or_else(|| cx.bad("$.model.vocab", "missing or not a list"))?;
        let mut tokens = Vec::with_capacity(list.len());
        let mut scores = Vec::with_capacity(list.len());
        let mut vocab = FxHashMap::default();
        let mut min_score = f64::INFINITY;
        for (i, entry) in list.iter().enumerate() {
            let pair = entry.as_array().filter(|a| a.len() == 2);
            let (Some(tok), Some(score)) = (pair.and_then(|a| a[0].as_str()), pair.and_then(|a| a[1].as_f64())) else {
                return Err(cx.bad(&format!("$.model.vocab[{i}]"), "expected [piece, score]"));
            };
            min_score = min_score.min(score);
            vocab.insert(tok.to_owned(), i as Rank);
            tokens.push(Some(tok.to_owned()));
            scores.push(score);
        }
        let unk = match get(model, "unk_id").and_then(Value::as_u64) {
            Some(u) if (u as usize) < list.len() => Some(u as Rank),
            Some(_) => return Err(cx.bad("$.model.unk_id", "outside the vocabulary")),
            None => None,
        };
        // Duplicate pieces: the last id wins in the trie, as in the map.
        let trie = ByteTrie::build(vocab.iter().map(|(t, &id)| (t.as_bytes(), id)));
        let model = Self {
            trie,
            scores,
            byte_tokens: byte_tokens(&vocab),
            vocab,
            unk,
            min_score,
            byte_fallback: cx.flag(model, "byte_fallback"),
        };
        Ok((model, tokens))
    }

    /// The Viterbi segmentation's ids (with `spans`, each token's byte range in `s`; the byte
    /// tokens of a fallback all take the range of the text they stand for, as in `tokenizers`).
    fn encode(&self, s: &str, out: &mut Vec<Rank>, mut spans: Option<&mut Vec<(usize, usize)>>) -> Result<()> {
        #[derive(Clone, Copy)]
        struct Best {
            score: f64,
            start: usize,
            id: Rank,
            set: bool,
        }
        let bytes = s.as_bytes();
        let n = bytes.len();
        let unk_score = self.min_score - UNK_PENALTY;
        let mut best = vec![Best { score: 0.0, start: 0, id: 0, set: false }; n + 1];
        let mut at = 0;
        while at < n {
            let here = best[at].score;
            let char_len = s[at..].chars().next().map_or(1, char::len_utf8);
            let mut single = false;
            let mut node = 0;
            for (k, &b) in bytes[at..].iter().enumerate() {
                let Some(next) = self.trie.step(node, b) else { break };
                node = next;
                if let Some(id) = self.trie.value(node) {
                    let end = at + k + 1;
                    let score = here + self.scores[id as usize];
                    let target = &mut best[end];
                    if !target.set || score > target.score {
                        *target = Best { score, start: at, id, set: true };
                    }
                    single |= k + 1 == char_len;
                }
            }
            if !single {
                let id = self.unk.ok_or_else(|| Error::Uncoverable { model: "Unigram", piece: s.into() })?;
                let score = here + unk_score;
                let target = &mut best[at + char_len];
                if !target.set || score > target.score {
                    *target = Best { score, start: at, id, set: true };
                }
            }
            at += char_len;
        }
        // Back from the end; runs of unknowns are fused into one token.
        let mut pieces: Vec<(usize, usize, Option<Rank>)> = Vec::new();
        let mut end = n;
        while end > 0 {
            let node = best[end];
            let is_unk = Some(node.id) == self.unk;
            match pieces.last_mut() {
                Some(last) if is_unk && last.2.is_none() => last.0 = node.start,
                _ => pieces.push((node.start, end, if is_unk { None } else { Some(node.id) })),
            }
            end = node.start;
        }
        for &(s0, e, id) in pieces.iter().rev() {
            let start = out.len();
            match id {
                Some(id) => out.push(id),
                None => {
                    let text = &s[s0..e];
                    if let Some(&id) = self.vocab.get(text) {
                        out.push(id);
                    } else if let Some(ids) = self
                        .byte_fallback
                        .then(|| text.bytes().map(|b| self.byte_tokens[b as usize]).collect::<Option<Vec<Rank>>>())
                        .flatten()
                    {
                        out.extend(ids);
                    } else {
                        out.push(self.unk.ok_or_else(|| Error::Uncoverable { model: "Unigram", piece: s.into() })?);
                    }
                }
            }
            if let Some(sp) = spans.as_deref_mut() {
                sp.resize(sp.len() + out.len() - start, (s0, e));
            }
        }
        Ok(())
    }
}

/// The model of a general pipeline.
#[derive(Debug, Clone)]
enum Model {
    Bpe(CharBpe),
    WordPiece(WordPiece),
    WordLevel { vocab: FxHashMap<String, Rank>, unk_token: String },
    Unigram(Unigram),
}

/// One decoding step over the token strings.
#[derive(Debug, Clone)]
enum Decoder {
    ByteLevel,
    WordPiece { prefix: String, cleanup: bool },
    Metaspace { replacement: char, prepend: bool },
    Bpe { suffix: String },
    ByteFallback,
    Fuse,
    Strip { content: char, start: usize, stop: usize },
    Replace { pattern: Pattern, content: String },
    Ctc { pad: String, delimiter: String, cleanup: bool },
}

fn parse_decoders(cx: &Ctx<'_>, d: &Value, path: &str, out: &mut Vec<Decoder>) -> Result<()> {
    let text = |key: &str, default: &str| d.get(key).and_then(Value::as_str).unwrap_or(default).to_owned();
    out.push(match cx.type_of(d, path)? {
        "Sequence" => {
            let list = d.get("decoders").and_then(Value::as_array).ok_or_else(|| cx.bad(path, "no decoders"))?;
            for (i, s) in list.iter().enumerate() {
                parse_decoders(cx, s, &format!("{path}.decoders[{i}]"), out)?;
            }
            return Ok(());
        }
        "ByteLevel" => Decoder::ByteLevel,
        "WordPiece" => Decoder::WordPiece {
            prefix: text("prefix", "##"),
            cleanup: d.get("cleanup").and_then(Value::as_bool).unwrap_or(true),
        },
        "Metaspace" => {
            let (replacement, prepend) = metaspace_options(cx, d, path)?;
            Decoder::Metaspace { replacement, prepend: prepend != Prepend::Never }
        }
        "BPEDecoder" => Decoder::Bpe { suffix: text("suffix", "</w>") },
        "ByteFallback" => Decoder::ByteFallback,
        "Fuse" => Decoder::Fuse,
        "Strip" => {
            let content = text("content", " ");
            let mut chars = content.chars();
            let (Some(content), None) = (chars.next(), chars.next()) else {
                return Err(cx.bad(path, "content is not one character"));
            };
            let n = |key: &str| d.get(key).and_then(Value::as_u64).unwrap_or(0) as usize;
            Decoder::Strip { content, start: n("start"), stop: n("stop") }
        }
        "Replace" => Decoder::Replace {
            pattern: Pattern::parse(cx, d.get("pattern"), &format!("{path}.pattern"))?,
            content: text("content", ""),
        },
        "CTC" => Decoder::Ctc {
            pad: text("pad_token", "<pad>"),
            delimiter: text("word_delimiter_token", "|"),
            cleanup: d.get("cleanup").and_then(Value::as_bool).unwrap_or(true),
        },
        other => return Err(cx.unsupported(format!("the {other} decoder"))),
    });
    Ok(())
}

impl Decoder {
    fn apply(&self, tokens: Vec<String>) -> Result<Vec<String>> {
        Ok(match self {
            Self::ByteLevel => {
                let rev = super::char_to_byte();
                let mut bytes = Vec::new();
                for t in &tokens {
                    match t.chars().map(|c| rev.get(c)).collect::<Option<Vec<u8>>>() {
                        Some(b) => bytes.extend(b),
                        None => bytes.extend_from_slice(t.as_bytes()),
                    }
                }
                vec![String::from_utf8_lossy(&bytes).into_owned()]
            }
            Self::WordPiece { prefix, cleanup } => tokens
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    let t = match t.strip_prefix(prefix.as_str()) {
                        Some(rest) if i > 0 => rest.to_owned(),
                        _ if i > 0 => format!(" {t}"),
                        _ => t,
                    };
                    if *cleanup {
                        wordpiece_cleanup(t)
                    } else {
                        t
                    }
                })
                .collect(),
            &Self::Metaspace { replacement, prepend } => tokens
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    t.chars()
                        .filter_map(|c| match c {
                            c if c != replacement => Some(c),
                            _ if i == 0 && prepend => None,
                            _ => Some(' '),
                        })
                        .collect()
                })
                .collect(),
            Self::Bpe { suffix } => {
                let last = tokens.len().saturating_sub(1);
                tokens
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| t.replace(suffix.as_str(), if i == last { "" } else { " " }))
                    .collect()
            }
            Self::ByteFallback => {
                let mut out = Vec::with_capacity(tokens.len());
                let mut pending: Vec<u8> = Vec::new();
                let flush = |pending: &mut Vec<u8>, out: &mut Vec<String>| {
                    if pending.is_empty() {
                        return;
                    }
                    match String::from_utf8(std::mem::take(pending)) {
                        Ok(s) => out.push(s),
                        Err(e) => out.extend(std::iter::repeat_n("\u{fffd}".to_owned(), e.as_bytes().len())),
                    }
                };
                for t in tokens {
                    let byte = (t.len() == 6 && t.starts_with("<0x") && t.ends_with('>'))
                        .then(|| u8::from_str_radix(&t[3..5], 16).ok())
                        .flatten();
                    match byte {
                        Some(b) => pending.push(b),
                        None => {
                            flush(&mut pending, &mut out);
                            out.push(t);
                        }
                    }
                }
                flush(&mut pending, &mut out);
                out
            }
            Self::Fuse => vec![tokens.concat()],
            &Self::Strip { content, start, stop } => tokens
                .into_iter()
                .map(|t| {
                    let chars: Vec<char> = t.chars().collect();
                    let lead = chars.iter().take(start).take_while(|&&c| c == content).count();
                    let trail = chars.iter().rev().take(stop).take_while(|&&c| c == content).count();
                    chars[lead..chars.len().saturating_sub(trail).max(lead)].iter().collect()
                })
                .collect(),
            Self::Replace { pattern, content } => {
                tokens.iter().map(|t| replace_all(pattern, t, content)).collect::<Result<Vec<String>>>()?
            }
            Self::Ctc { pad, delimiter, cleanup } => {
                let mut out: Vec<String> = Vec::with_capacity(tokens.len());
                let mut last: Option<&String> = None;
                for t in &tokens {
                    if last == Some(t) {
                        continue;
                    }
                    last = Some(t);
                    let mut r = t.replace(pad.as_str(), "");
                    if *cleanup {
                        r = wordpiece_cleanup(r).replace(delimiter.as_str(), " ");
                    }
                    if !r.is_empty() {
                        out.push(r);
                    }
                }
                out
            }
        })
    }
}

/// A pipeline's pre-tokenizer, model and decoder (the normalizers, added tokens and
/// post-processor live in [`super::HfTokenizer`]).
#[derive(Debug, Clone)]
pub(crate) struct General {
    steps: Vec<Step>,
    model: Model,
    /// `None`: no decoder (tokens are joined with spaces).
    decoders: Option<Vec<Decoder>>,
}

/// What [`General::parse`] gives: the pipeline and the model's vocabulary (strings by id).
pub(crate) type Parsed = (General, Vec<Option<String>>, FxHashMap<String, Rank>);

impl General {
    pub(crate) fn parse(cx: &Ctx<'_>, root: &Value, model: &Value) -> Result<Parsed> {
        let mut steps = Vec::new();
        if let Some(p) = get(root, "pre_tokenizer") {
            parse_steps(cx, p, "$.pre_tokenizer", &mut steps)?;
        }
        let object_vocab = || -> Result<super::VocabMaps> {
            let v = get(model, "vocab")
                .and_then(Value::as_object)
                .ok_or_else(|| cx.bad("$.model.vocab", "missing or not an object"))?;
            parse_vocab(cx, v)
        };
        let mtype = model.get("type").and_then(Value::as_str).unwrap_or("BPE");
        let (model, id_to_token, token_to_id) = match mtype {
            "BPE" => {
                let (ids, map) = object_vocab()?;
                (Model::Bpe(CharBpe::parse(cx, model, map.clone())?), ids, map)
            }
            "WordPiece" => {
                let (ids, map) = object_vocab()?;
                (Model::WordPiece(WordPiece::parse(cx, model, map.clone())?), ids, map)
            }
            "WordLevel" => {
                let (ids, map) = object_vocab()?;
                let unk_token = get(model, "unk_token").and_then(Value::as_str).unwrap_or("<unk>").to_owned();
                (Model::WordLevel { vocab: map.clone(), unk_token }, ids, map)
            }
            "Unigram" => {
                let (u, ids) = Unigram::parse(cx, model)?;
                let map = u.vocab.clone();
                (Model::Unigram(u), ids, map)
            }
            other => return Err(cx.unsupported(format!("the {other} model"))),
        };
        let decoders = match get(root, "decoder") {
            None => None,
            Some(d) => {
                let mut list = Vec::new();
                parse_decoders(cx, d, "$.decoder", &mut list)?;
                Some(list)
            }
        };
        Ok((General { steps, model, decoders }, id_to_token, token_to_id))
    }

    /// Pre-tokenizes normalized text and calls `piece` on each piece, in order.
    /// `lead`: how many of its first characters derive from the input's first character.
    pub(crate) fn pieces(&self, text: &str, lead: usize, mut piece: impl FnMut(&str) -> Result<()>) -> Result<()> {
        // Text that normalized to nothing still goes through the steps, as in `tokenizers`
        // (ByteLevel's prefix space makes it a piece).
        if self.steps.is_empty() {
            return if text.is_empty() { Ok(()) } else { piece(text) };
        }
        let mut pieces = vec![(text.to_owned(), lead)];
        let mut ranges = Vec::new();
        for step in &self.steps {
            pieces = step.apply(pieces, &mut ranges)?;
        }
        for (p, _) in &pieces {
            if !p.is_empty() {
                piece(p)?;
            }
        }
        Ok(())
    }

    pub(crate) fn has_steps(&self) -> bool {
        !self.steps.is_empty()
    }

    /// Calls `word` on each part of `piece` that the model can encode on its own (the piece
    /// itself, or for BPE with a word-start character, the words it separates; see
    /// `CharBpe::word_start`).
    pub(crate) fn words(&self, piece: &str, mut word: impl FnMut(&str) -> Result<()>) -> Result<()> {
        let Model::Bpe(CharBpe { word_start: Some(c), .. }) = &self.model else { return word(piece) };
        let mut start = 0;
        let mut prev = None;
        for (i, d) in piece.char_indices() {
            if d == *c && prev.is_some_and(|p| p != *c) {
                word(&piece[start..i])?;
                start = i;
            }
            prev = Some(d);
        }
        word(&piece[start..])
    }

    /// The model's ids for one piece.
    pub(crate) fn encode_piece(&self, piece: &str, out: &mut Vec<Rank>) -> Result<()> {
        match &self.model {
            Model::Bpe(m) => m.encode(piece, out),
            Model::WordPiece(m) => {
                m.encode_word(piece, out, None);
                Ok(())
            }
            Model::WordLevel { vocab, unk_token } => {
                let id = vocab
                    .get(piece)
                    .or_else(|| vocab.get(unk_token))
                    .ok_or_else(|| Error::Uncoverable { model: "WordLevel", piece: piece.into() })?;
                out.push(*id);
                Ok(())
            }
            Model::Unigram(m) => m.encode(piece, out, None),
        }
    }

    /// The model's ids for one piece, with each token's byte range in the piece.
    pub(crate) fn encode_piece_spans(
        &self,
        piece: &str,
        out: &mut Vec<Rank>,
        spans: &mut Vec<(usize, usize)>,
    ) -> Result<()> {
        match &self.model {
            Model::Bpe(m) => m.encode_spans(piece, out, spans),
            Model::WordPiece(m) => {
                m.encode_word(piece, out, Some(spans));
                Ok(())
            }
            Model::Unigram(m) => m.encode(piece, out, Some(spans)),
            Model::WordLevel { .. } => {
                let start = out.len();
                self.encode_piece(piece, out)?;
                spans.resize(spans.len() + out.len() - start, (0, piece.len()));
                Ok(())
            }
        }
    }

    /// [`Self::pieces`] with alignments: the pieces of `text` as `tokenizers`' pre-tokenizers
    /// cut and transform them (empty pieces dropped after each step, as there).
    pub(crate) fn pieces_aligned(&self, text: Aligned) -> Result<Vec<Aligned>> {
        let mut pieces = vec![text];
        let mut ranges = Vec::new();
        for step in &self.steps {
            let mut out = Vec::with_capacity(pieces.len() + 4);
            for p in pieces {
                step.apply_aligned(p, &mut ranges, &mut out)?;
            }
            out.retain(|p| !p.text.is_empty());
            pieces = out;
        }
        Ok(pieces)
    }

    /// The decoder chain over token strings, joined (no decoder: joined with spaces).
    pub(crate) fn decode(&self, tokens: Vec<String>) -> Result<String> {
        let Some(decoders) = &self.decoders else { return Ok(tokens.join(" ")) };
        let mut tokens = tokens;
        for d in decoders {
            tokens = d.apply(tokens)?;
        }
        Ok(tokens.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str, p: &Pattern) -> Vec<(usize, usize, bool)> {
        let mut v = Vec::new();
        p.find_matches(text, &mut v).unwrap();
        v
    }

    proptest::proptest! {
        /// Replacing one character by a loop over the characters gives what the match ranges
        /// give, for ASCII and non-ASCII needles and replacements of any length.
        #[test]
        fn one_character_replace_equals_the_ranges(
            text in "[ a▁é中\\n]{0,40}",
            needle in proptest::sample::select(vec![" ", "▁", "中", "\n"]),
            content in proptest::sample::select(vec!["", "▁", "  ", "xyz", "中"]),
        ) {
            let pattern = Pattern::Literal(needle.to_string());
            proptest::prop_assert_eq!(replace_all(&pattern, &text, content).unwrap(), replace_ranges(&pattern, &text, content).unwrap());
        }
    }

    #[test]
    fn behaviours_cut_as_tokenizers_documents() {
        // The examples of `SplitDelimiterBehavior`'s documentation, on "the-final--countdown".
        let text = "the-final--countdown";
        let matches = m(text, &Pattern::Char('-'));
        let cut = |b| split_ranges(&matches, b, false).into_iter().map(|(s, e)| &text[s..e]).collect::<Vec<_>>();
        assert_eq!(cut(Behavior::Removed), ["the", "final", "countdown"]);
        assert_eq!(cut(Behavior::Isolated), ["the", "-", "final", "-", "-", "countdown"]);
        assert_eq!(cut(Behavior::MergedWithPrevious), ["the-", "final-", "-", "countdown"]);
        assert_eq!(cut(Behavior::MergedWithNext), ["the", "-final", "-", "-countdown"]);
        assert_eq!(cut(Behavior::Contiguous), ["the", "-", "final", "--", "countdown"]);
    }

    #[test]
    fn scan_heap_blocked_and_memoized_merges_agree() {
        // Random merge tables over a small alphabet, so that pairs compete and chain; each
        // table is new to the thread's memo, which must not answer from the previous one.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut map = FxHashMap::default();
            for rank in 0..40 {
                map.insert((next(6) as Rank, next(6) as Rank), (rank, 6 + next(10) as Rank));
            }
            let merges = Merges::new(map.clone());
            let mut direct = |a: Rank, b: Rank| map.get(&(a, b)).copied().unwrap_or(NO_MERGE);
            for len in [2, 5, 17, 40, 70, 130, 600] {
                let ids: Vec<Rank> = (0..len).map(|_| next(16) as Rank).collect();
                let (mut a, mut b, mut c, mut d) = (ids.clone(), ids.clone(), ids.clone(), ids);
                let (mut lens_b, mut lens_d) = (vec![1; len], vec![1; len]);
                scan_merge(&mut direct, &mut a, &mut Vec::new());
                heap_merge(&mut direct, &mut b, Some(&mut lens_b));
                merge_word(&merges, &mut c);
                blocked_merge(&mut direct, &mut d, Some(&mut lens_d));
                assert_eq!(a, b);
                assert_eq!(a, c);
                assert_eq!(a, d);
                assert_eq!(lens_b, lens_d);
                assert_eq!(lens_d.iter().sum::<usize>(), len);
            }
        }
    }

    #[test]
    fn heap_merge_applies_lowest_rank_first() {
        let mut map = FxHashMap::default();
        map.insert((1, 2), (1, 10));
        map.insert((2, 3), (0, 11));
        map.insert((1, 11), (2, 12));
        let mut merges = |a: Rank, b: Rank| map.get(&(a, b)).copied().unwrap_or(NO_MERGE);
        let mut ids = vec![1, 2, 3];
        heap_merge(&mut merges, &mut ids, None);
        assert_eq!(ids, [12]);
        let mut ids = vec![1, 2, 1, 2];
        heap_merge(&mut merges, &mut ids, None);
        assert_eq!(ids, [10, 10]);
        for ids in [vec![1, 2, 3], vec![1, 2, 1, 2]] {
            let (mut a, mut b) = (ids.clone(), ids);
            heap_merge(&mut merges, &mut a, None);
            blocked_merge(&mut merges, &mut b, None);
            assert_eq!(a, b);
        }
    }
}
