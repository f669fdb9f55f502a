//! After the model: truncation, the post-processor's templates (single and pair) and padding,
//! with `tokenizers`' exact rules, and the per-token facts an encoding reports (type ids,
//! special-token mask, sequence ids, attention mask).

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::{get, Ctx};
use crate::error::{Error, Result};
use crate::vocab::Rank;

/// One piece of a template: special tokens, or one of the input sequences (0: A, 1: B);
/// each with its type id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplatePiece {
    Special(Vec<Rank>, u32),
    Sequence(u8, u32),
}

/// The post-processor's templates for one sequence and for a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Templates {
    pub(crate) single: Vec<TemplatePiece>,
    pub(crate) pair: Vec<TemplatePiece>,
    /// A pair without special tokens (the second sequence's type id is 1, except after
    /// RobertaProcessing, which sets every type id to 0 even then).
    pub(crate) plain_pair: Vec<TemplatePiece>,
    /// RobertaProcessing: with special tokens, overflowing windows take the template's type
    /// ids (0) too; every other post-processor leaves them the sequence's index.
    pub(crate) roberta: bool,
}

impl Default for Templates {
    /// No post-processor: the sequences as they are, the second with type id 1.
    fn default() -> Self {
        let pair = vec![TemplatePiece::Sequence(0, 0), TemplatePiece::Sequence(1, 1)];
        Self { single: vec![TemplatePiece::Sequence(0, 0)], plain_pair: pair.clone(), pair, roberta: false }
    }
}

impl Templates {
    /// The template for one sequence or a pair, with or without the special tokens.
    pub(crate) fn pick(&self, pair: bool, add_special_tokens: bool) -> &[TemplatePiece] {
        match (pair, add_special_tokens) {
            (false, true) => &self.single,
            (false, false) => &Self::PLAIN_SINGLE,
            (true, true) => &self.pair,
            (true, false) => &self.plain_pair,
        }
    }

    const PLAIN_SINGLE: [TemplatePiece; 1] = [TemplatePiece::Sequence(0, 0)];

    /// How many special tokens a template adds.
    pub(crate) fn added(template: &[TemplatePiece]) -> usize {
        template.iter().map(|p| if let TemplatePiece::Special(ids, _) = p { ids.len() } else { 0 }).sum()
    }
}

/// Which sequence truncation shortens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    LongestFirst,
    OnlyFirst,
    OnlySecond,
}

/// Truncation to at most `max_length` ids (the template's special tokens included), keeping
/// the start (or with `left`, the end) of each sequence; what is cut goes to overflowing
/// windows that overlap by `stride` ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub max_length: usize,
    /// How many ids consecutive overflowing windows share.
    pub stride: usize,
    pub strategy: Strategy,
    pub left: bool,
}

/// Padding: to `length` (or the batch's longest when `None`), rounded up to a multiple of
/// `multiple_of`, with `pad_id` and `pad_type_id`, on the right (or the left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Padding {
    pub length: Option<usize>,
    pub multiple_of: Option<usize>,
    pub pad_id: Rank,
    pub pad_type_id: u32,
    pub left: bool,
}

/// Truncation and padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LengthSettings {
    pub truncate: Option<Truncation>,
    pub padding: Option<Padding>,
}

/// What a run of an encoding's tokens is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Added by the post-processor's template.
    Special {
        type_id: u32,
    },
    /// From input sequence `index` (0 or 1).
    Sequence {
        index: u8,
        type_id: u32,
    },
    Padding {
        type_id: u32,
    },
}

/// One input sequence's ids and, for each, the index of the word (pre-tokenized piece or
/// added token) it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Seq {
    pub(crate) ids: Vec<Rank>,
    pub(crate) words: Vec<u32>,
    pub(crate) next_word: u32,
    /// Each id's offsets, when asked for (else empty).
    pub(crate) offsets: Vec<(usize, usize)>,
}

impl Seq {
    /// The ids pushed since the last call are one word (none: a word without tokens, which
    /// still counts, as in `tokenizers`).
    pub(crate) fn end_word(&mut self) {
        self.words.resize(self.ids.len(), self.next_word);
        self.next_word += 1;
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn slice(&self, start: usize, end: usize) -> Self {
        Self {
            ids: self.ids[start..end].to_vec(),
            words: self.words[start..end].to_vec(),
            offsets: self.offsets.get(start..end).map(<[_]>::to_vec).unwrap_or_default(),
            next_word: self.next_word,
        }
    }

    /// `Encoding::truncate`: keeps `keep` ids (the first, or with `left` the last) and returns
    /// the overflowing windows of `keep` ids each that step by `keep - stride` over the whole
    /// sequence, in `tokenizers`' order (only with `overflow`; none when nothing is cut).
    fn cut(&mut self, keep: usize, stride: usize, left: bool, overflow: bool) -> Result<Vec<Seq>> {
        let n = self.len();
        if keep >= n {
            return Ok(Vec::new());
        }
        if keep == 0 {
            let whole = std::mem::take(self);
            self.next_word = whole.next_word;
            return Ok(if overflow { vec![whole] } else { Vec::new() });
        }
        if stride >= keep {
            return Err(Error::Truncation(format!(
                "the stride ({stride}) must be less than the length kept ({keep}: max_length less the special tokens)"
            )));
        }
        let mut windows = Vec::new();
        let step = keep - stride;
        if left {
            let mut stop = n;
            loop {
                let start = stop.saturating_sub(keep);
                windows.push((start, stop));
                if start == 0 || !overflow || stop <= step {
                    break;
                }
                stop -= step;
            }
        } else {
            let mut start = 0;
            loop {
                let stop = (start + keep).min(n);
                windows.push((start, stop));
                if stop == n || !overflow {
                    break;
                }
                start += step;
            }
        }
        let over = windows[1..].iter().map(|&(s, e)| self.slice(s, e)).collect();
        *self = self.slice(windows[0].0, windows[0].1);
        Ok(over)
    }
}

/// An encoding: the ids, and what each run of them is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HfEncoding {
    pub ids: Vec<Rank>,
    /// (what, how many ids), in order; the lengths add up to `ids.len()`.
    pub parts: Vec<(Part, usize)>,
    /// 1, or 2 for a pair.
    pub n_sequences: usize,
    /// The word index of each token of the sequence parts, in order.
    seq_words: Vec<u32>,
    /// Each token's (start, end) in characters of its input sequence, when asked for
    /// (`HfTokenizer::encode_full_with`); else empty.
    pub offsets: Vec<(usize, usize)>,
    /// What truncation cut off, as encodings of their own (`tokenizers`' `overflowing`,
    /// nested as it nests them for pairs); filled with the offsets only.
    pub overflowing: Vec<HfEncoding>,
}

impl HfEncoding {
    fn per_token<T: Clone>(&self, f: impl Fn(Part) -> T) -> Vec<T> {
        let mut out = Vec::with_capacity(self.ids.len());
        for &(part, n) in &self.parts {
            out.extend(std::iter::repeat_n(f(part), n));
        }
        out
    }

    pub fn type_ids(&self) -> Vec<u32> {
        self.per_token(|p| match p {
            Part::Special { type_id } | Part::Sequence { type_id, .. } | Part::Padding { type_id } => type_id,
        })
    }

    /// 1 for the template's special tokens and for padding.
    pub fn special_tokens_mask(&self) -> Vec<u32> {
        self.per_token(|p| u32::from(!matches!(p, Part::Sequence { .. })))
    }

    /// The input sequence of each token (`None` for special tokens and padding).
    pub fn sequence_ids(&self) -> Vec<Option<u8>> {
        self.per_token(|p| if let Part::Sequence { index, .. } = p { Some(index) } else { None })
    }

    /// The word each token comes from, counted per input sequence (`None` for special tokens
    /// and padding).
    pub fn word_ids(&self) -> Vec<Option<u32>> {
        let mut out = Vec::with_capacity(self.ids.len());
        let mut words = self.seq_words.iter();
        for &(part, n) in &self.parts {
            if let Part::Sequence { .. } = part {
                out.extend(words.by_ref().take(n).map(|&w| Some(w)));
            } else {
                out.extend(std::iter::repeat_n(None, n));
            }
        }
        out
    }

    /// 0 for padding, 1 for the rest.
    pub fn attention_mask(&self) -> Vec<u32> {
        self.per_token(|p| u32::from(!matches!(p, Part::Padding { .. })))
    }

    /// The number of ids that are not padding.
    pub fn unpadded_len(&self) -> usize {
        self.parts.iter().filter(|(p, _)| !matches!(p, Part::Padding { .. })).map(|(_, n)| n).sum()
    }

    /// Pads to `target` ids (no change if already as long), the overflowing encodings too.
    pub fn pad_to(&mut self, target: usize, p: &Padding) {
        for o in &mut self.overflowing {
            o.pad_to(target, p);
        }
        let n = target.saturating_sub(self.ids.len());
        if n == 0 {
            return;
        }
        let part = (Part::Padding { type_id: p.pad_type_id }, n);
        let with_offsets = self.offsets.len() == self.ids.len();
        if p.left {
            self.ids.splice(0..0, std::iter::repeat_n(p.pad_id, n));
            self.parts.insert(0, part);
            if with_offsets {
                self.offsets.splice(0..0, std::iter::repeat_n((0, 0), n));
            }
        } else {
            self.ids.resize(self.ids.len() + n, p.pad_id);
            self.parts.push(part);
            if with_offsets {
                self.offsets.resize(self.ids.len(), (0, 0));
            }
        }
    }
}

impl HfEncoding {
    /// `Encoding::merge_with`: `pair` appended, and the overflowing combined as `tokenizers`
    /// combines them (each of ours with the pair and with each of its overflowing, then
    /// ourselves with each of its overflowing).
    fn merge_with(&mut self, pair: HfEncoding) {
        let mut over = Vec::new();
        for mine in &self.overflowing {
            let mut n = mine.clone();
            n.merge_with(pair.clone());
            over.push(n);
            for theirs in &pair.overflowing {
                let mut n = mine.clone();
                n.merge_with(theirs.clone());
                over.push(n);
            }
        }
        for theirs in &pair.overflowing {
            let mut n = self.clone();
            n.merge_with(theirs.clone());
            over.push(n);
        }
        self.ids.extend_from_slice(&pair.ids);
        self.parts.extend_from_slice(&pair.parts);
        self.seq_words.extend_from_slice(&pair.seq_words);
        self.offsets.extend_from_slice(&pair.offsets);
        self.n_sequences = self.n_sequences.max(pair.n_sequences);
        self.overflowing = over;
    }

    fn set_n_sequences(&mut self, n: usize) {
        self.n_sequences = n;
        for o in &mut self.overflowing {
            o.set_n_sequences(n);
        }
    }
}

/// The padded length for `len` ids.
pub(crate) fn padded_len(len: usize, p: &Padding) -> usize {
    let target = p.length.unwrap_or(len).max(len);
    match p.multiple_of.filter(|&m| m > 0) {
        Some(m) => target.div_ceil(m) * m,
        None => target,
    }
}

/// The overflowing windows truncation cut from each sequence.
pub(crate) type Overflow = [Vec<Seq>; 2];

/// `truncate_encodings`: shortens the sequences so that they fit `max_length` ids together
/// (with `overflow`, also returns what was cut, as windows).
pub(crate) fn truncate(
    a: &mut Seq,
    b: Option<&mut Seq>,
    max_length: usize,
    t: &Truncation,
    overflow: bool,
) -> Result<Overflow> {
    let err = |problem: &str| Error::Truncation(problem.into());
    let mut out: Overflow = Default::default();
    if max_length == 0 {
        out[0] = a.cut(0, t.stride, t.left, overflow)?;
        if let Some(b) = b {
            out[1] = b.cut(0, t.stride, t.left, overflow)?;
        }
        return Ok(out);
    }
    let total = a.len() + b.as_ref().map_or(0, |b| b.len());
    if total <= max_length {
        return Ok(out);
    }
    let to_remove = total - max_length;
    match (t.strategy, b) {
        (Strategy::LongestFirst, Some(b)) => {
            let (mut n1, mut n2) = (a.len(), b.len());
            let swap = n1 > n2;
            if swap {
                std::mem::swap(&mut n1, &mut n2);
            }
            n2 = if n1 > max_length { n1 } else { n1.max(max_length - n1) };
            if n1 + n2 > max_length {
                n1 = max_length / 2;
                n2 = n1 + max_length % 2;
            }
            if swap {
                std::mem::swap(&mut n1, &mut n2);
            }
            out[0] = a.cut(n1, t.stride, t.left, overflow)?;
            out[1] = b.cut(n2, t.stride, t.left, overflow)?;
        }
        (Strategy::LongestFirst | Strategy::OnlyFirst, None) => {
            out[0] = a.cut(max_length, t.stride, t.left, overflow)?
        }
        (Strategy::OnlySecond, None) => return Err(err("the second sequence is not provided")),
        (strategy, Some(b)) => {
            let (target, index) = if strategy == Strategy::OnlyFirst { (a, 0) } else { (b, 1) };
            if target.len() <= to_remove {
                return Err(err("the sequence to truncate is too short to respect the provided max_length"));
            }
            let keep = target.len() - to_remove;
            out[index] = target.cut(keep, t.stride, t.left, overflow)?;
        }
    }
    Ok(out)
}

/// Applies `template` to the sequences (with `offsets`, theirs too; special tokens get (0, 0)).
/// `over`: each sequence's overflowing windows (with `window_types`, typed by the template);
/// the template's parts are merged in order as `tokenizers` merges them, which nests the
/// overflowing encodings as it does.
pub(crate) fn assemble(
    template: &[TemplatePiece],
    seqs: [&Seq; 2],
    (over, window_types): (&Overflow, bool),
    n_sequences: usize,
    offsets: bool,
) -> HfEncoding {
    // Appends one template part (with `seq`, that overflowing window of its sequence).
    let append = |enc: &mut HfEncoding, piece: &TemplatePiece, seq: Option<&Seq>| {
        let (p, ids) = match piece {
            TemplatePiece::Special(ids, type_id) => {
                if offsets {
                    enc.offsets.resize(enc.offsets.len() + ids.len(), (0, 0));
                }
                (Part::Special { type_id: *type_id }, &ids[..])
            }
            &TemplatePiece::Sequence(index, type_id) => {
                // A window keeps the type id its sequence was encoded with (its index),
                // unless `window_types`.
                let type_id = if seq.is_some() && !window_types { u32::from(index) } else { type_id };
                let seq = seq.unwrap_or(seqs[index as usize]);
                enc.seq_words.extend_from_slice(&seq.words);
                if offsets {
                    enc.offsets.extend_from_slice(&seq.offsets);
                }
                (Part::Sequence { index, type_id }, &seq.ids[..])
            }
        };
        if !ids.is_empty() {
            enc.ids.extend_from_slice(ids);
            enc.parts.push((p, ids.len()));
        }
    };
    let mut enc = HfEncoding::default();
    if over.iter().all(Vec::is_empty) {
        // No overflowing: the parts appended in place (the fast case).
        enc.ids.reserve(seqs[0].len() + seqs[1].len() + 4);
        for piece in template {
            append(&mut enc, piece, None);
        }
    } else {
        let alone = |piece: &TemplatePiece, seq: Option<&Seq>| {
            let mut one = HfEncoding::default();
            append(&mut one, piece, seq);
            one
        };
        for piece in template {
            let mut one = alone(piece, None);
            if let &TemplatePiece::Sequence(index, _) = piece {
                one.overflowing = over[index as usize].iter().map(|w| alone(piece, Some(w))).collect();
            }
            enc.merge_with(one);
        }
    }
    enc.set_n_sequences(n_sequences);
    enc
}

/// The offset trimming of a post-processor (ByteLevel and RobertaProcessing with
/// `trim_offsets`, which both default to true): each one's `add_prefix_space`, in order.
pub(crate) fn parse_trims(p: Option<&Value>, out: &mut Vec<bool>) {
    let Some(p) = p else { return };
    let flag = |key: &str| p.get(key).and_then(Value::as_bool).unwrap_or(true);
    match p.get("type").and_then(Value::as_str) {
        Some("ByteLevel" | "RobertaProcessing") if flag("trim_offsets") => out.push(flag("add_prefix_space")),
        Some("Sequence") => {
            for s in p.get("processors").and_then(Value::as_array).into_iter().flatten() {
                parse_trims(Some(s), out);
            }
        }
        _ => {}
    }
}

/// The post-processor's templates.
pub(crate) fn parse_post(cx: &Ctx<'_>, p: Option<&Value>) -> Result<Templates> {
    let Some(p) = p else { return Ok(Templates::default()) };
    let id = |key: &str, kind: &str| {
        p.get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.get(1))
            .and_then(Value::as_u64)
            .and_then(|i| Rank::try_from(i).ok())
            .ok_or_else(|| cx.bad("$.post_processor", format!("{kind} has no {key} [token, id]")))
    };
    use TemplatePiece::{Sequence as Seq, Special};
    match cx.type_of(p, "$.post_processor")? {
        "ByteLevel" => Ok(Templates::default()),
        "Sequence" => {
            let mut out = Templates::default();
            for s in p
                .get("processors")
                .and_then(Value::as_array)
                .ok_or_else(|| cx.bad("$.post_processor", "no processors"))?
            {
                let t = parse_post(cx, Some(s))?;
                if t != Templates::default() {
                    if out != Templates::default() {
                        return Err(cx.unsupported("two templates in one post-processor"));
                    }
                    out = t;
                }
            }
            Ok(out)
        }
        "BertProcessing" => {
            let (cls, sep) = (id("cls", "BertProcessing")?, id("sep", "BertProcessing")?);
            Ok(Templates {
                single: vec![Special(vec![cls], 0), Seq(0, 0), Special(vec![sep], 0)],
                pair: vec![Special(vec![cls], 0), Seq(0, 0), Special(vec![sep], 0), Seq(1, 1), Special(vec![sep], 1)],
                ..Templates::default()
            })
        }
        "RobertaProcessing" => {
            let (cls, sep) = (id("cls", "RobertaProcessing")?, id("sep", "RobertaProcessing")?);
            Ok(Templates {
                single: vec![Special(vec![cls], 0), Seq(0, 0), Special(vec![sep], 0)],
                pair: vec![
                    Special(vec![cls], 0),
                    Seq(0, 0),
                    Special(vec![sep, sep], 0),
                    Seq(1, 0),
                    Special(vec![sep], 0),
                ],
                plain_pair: vec![Seq(0, 0), Seq(1, 0)],
                roberta: true,
            })
        }
        "TemplateProcessing" => {
            let specials = p.get("special_tokens");
            let template = |key: &str| -> Result<Option<Vec<TemplatePiece>>> {
                let Some(list) = get(p, key).and_then(Value::as_array) else { return Ok(None) };
                let path = format!("$.post_processor.{key}");
                let mut out = Vec::new();
                for piece in list {
                    let type_id = |v: &Value| v.get("type_id").and_then(Value::as_u64).unwrap_or(0) as u32;
                    if let Some(sp) = piece.get("SpecialToken") {
                        let name = sp.get("id").and_then(Value::as_str).ok_or_else(|| cx.bad(&path, "no id"))?;
                        let ids: Vec<Rank> = specials
                            .and_then(|s| s.get(name))
                            .and_then(|s| s.get("ids"))
                            .and_then(Value::as_array)
                            .map(|a| a.iter().filter_map(|v| v.as_u64().and_then(|i| Rank::try_from(i).ok())).collect())
                            .ok_or_else(|| cx.bad("$.post_processor.special_tokens", format!("no ids for {name:?}")))?;
                        out.push(Special(ids, type_id(sp)));
                    } else if let Some(seq) = piece.get("Sequence") {
                        let index = match seq.get("id").and_then(Value::as_str) {
                            Some("A") | None => 0,
                            Some("B") => 1,
                            Some(other) => return Err(cx.bad(&path, format!("unknown sequence {other:?}"))),
                        };
                        out.push(Seq(index, type_id(seq)));
                    } else {
                        return Err(cx.bad(&path, "a piece is neither SpecialToken nor Sequence"));
                    }
                }
                Ok(Some(out))
            };
            let single = template("single")?.ok_or_else(|| cx.bad("$.post_processor", "no single template"))?;
            // Without a pair template, `tokenizers` uses "$A $B:1".
            let pair = template("pair")?.unwrap_or_else(|| Templates::default().pair);
            Ok(Templates { single, pair, ..Templates::default() })
        }
        other => Err(cx.unsupported(format!("the {other} post-processor"))),
    }
}

/// The file's `truncation` and `padding`.
pub(crate) fn parse_length(
    cx: &Ctx<'_>,
    root: &Value,
    token_to_id: &FxHashMap<String, Rank>,
) -> Result<LengthSettings> {
    let left = |v: &Value, path: &str| match v.get("direction").and_then(Value::as_str) {
        None | Some("Right") => Ok(false),
        Some("Left") => Ok(true),
        Some(other) => Err(cx.bad(path, format!("unknown direction {other:?}"))),
    };
    let truncate = match get(root, "truncation") {
        None => None,
        Some(t) => {
            let strategy = match t.get("strategy").and_then(Value::as_str) {
                None | Some("LongestFirst") => Strategy::LongestFirst,
                Some("OnlyFirst") => Strategy::OnlyFirst,
                Some("OnlySecond") => Strategy::OnlySecond,
                Some(other) => return Err(cx.bad("$.truncation.strategy", format!("unknown strategy {other:?}"))),
            };
            let max_length =
                t.get("max_length").and_then(Value::as_u64).ok_or_else(|| cx.bad("$.truncation", "no max_length"))?;
            let stride = t.get("stride").and_then(Value::as_u64).unwrap_or(0) as usize;
            Some(Truncation { max_length: max_length as usize, stride, strategy, left: left(t, "$.truncation")? })
        }
    };
    let padding = match get(root, "padding") {
        None => None,
        Some(p) => {
            let length = match p.get("strategy") {
                Some(Value::String(s)) if s == "BatchLongest" => None,
                Some(v) => Some(
                    v.get("Fixed")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| cx.bad("$.padding.strategy", "expected BatchLongest or Fixed"))?
                        as usize,
                ),
                None => None,
            };
            let pad_id = match p.get("pad_id").and_then(Value::as_u64) {
                Some(id) => Rank::try_from(id).map_err(|_| cx.bad("$.padding.pad_id", "too large"))?,
                None => {
                    p.get("pad_token").and_then(Value::as_str).and_then(|t| token_to_id.get(t).copied()).unwrap_or(0)
                }
            };
            Some(Padding {
                length,
                multiple_of: get(p, "pad_to_multiple_of").and_then(Value::as_u64).map(|m| m as usize),
                pad_id,
                pad_type_id: p.get("pad_type_id").and_then(Value::as_u64).unwrap_or(0) as u32,
                left: left(p, "$.padding")?,
            })
        }
    };
    Ok(LengthSettings { truncate, padding })
}
