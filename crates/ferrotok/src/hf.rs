//! Hugging Face `tokenizer.json`, first slice: byte-level BPE models (Llama 3, Qwen 2/3,
//! GPT-2 and RoBERTa-style files), with Hugging Face's exact semantics.
//!
//! Supported now: normalizers `NFC`, `NFD`, `NFKC`, `NFKD`, `Lowercase` and `Sequence`s of
//! them; the pre-tokenizer `ByteLevel` (with its own regex, or after a `Split` regex/string
//! with behaviour `Isolated`); the `BPE` model over the byte-level alphabet (`ignore_merges`,
//! no dropout); added tokens (matched leftmost-longest in the raw text, as `tokenizers` does);
//! the post-processors `ByteLevel` and `TemplateProcessing` (single sequences) and a `Sequence`
//! of them; the `ByteLevel` decoder. Anything else fails to load with
//! [`Error::Unsupported`] naming the component: never a silent difference.
//!
//! The model works on raw bytes: vocabulary strings are mapped back through GPT-2's
//! byte ↔ character table once at load, so encoding needs no character mapping. A piece is
//! merged as `tokenizers` does it: every adjacent pair listed in `merges` goes into a min-heap
//! keyed by (merge rank, position); the lowest is applied unless its symbols changed since, and
//! the new pairs with its neighbours are pushed. O(n log n) per piece.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use aho_corasick::{AhoCorasick, MatchKind};
use rustc_hash::FxHashMap;
use serde_json::Value;
// The same normalization tables as `tokenizers` (an older Unicode version than the current
// one: newer tables reorder some marks that it leaves alone, e.g. U+05C9).
use unicode_normalization_alignments::UnicodeNormalization;

use crate::error::{Error, Result};
use crate::pretokenize::{PreTokenizer, GPT2_PATTERN_OLD};
use crate::vocab::Rank;

/// GPT-2's byte → character table: printable bytes map to themselves, the rest to U+0100 on.
fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + n).unwrap_or('\0');
            n += 1;
            c
        };
    }
    table
}

/// The bytes a byte-level string stands for, or `None` if a character is outside the table.
fn byte_level_bytes(s: &str, rev: &FxHashMap<char, u8>) -> Option<Vec<u8>> {
    s.chars().map(|c| rev.get(&c).copied()).collect()
}

#[derive(Debug, Clone, Copy)]
enum Norm {
    Nfc,
    Nfd,
    Nfkc,
    Nfkd,
    Lowercase,
}

#[derive(Debug, Clone)]
struct Added {
    id: Rank,
    content: String,
    special: bool,
}

#[derive(Debug, Clone)]
enum TemplatePiece {
    Special(Vec<Rank>),
    Sequence,
}

/// A `tokenizer.json` tokenizer (the supported subset; see the module notes).
#[derive(Debug, Clone)]
pub struct HfTokenizer {
    norms: Vec<Norm>,
    split: Option<PreTokenizer>,
    add_prefix_space: bool,
    /// Raw bytes → id for model tokens.
    vocab: FxHashMap<Vec<u8>, Rank>,
    byte_ids: [Option<Rank>; 256],
    /// (left id, right id) → (merge rank, merged id).
    merges: FxHashMap<(Rank, Rank), (u32, Rank)>,
    ignore_merges: bool,
    added: Vec<Added>,
    added_matcher: Option<AhoCorasick>,
    template: Vec<TemplatePiece>,
    /// Token strings as the file spells them, by id (model and added tokens).
    id_to_token: Vec<Option<String>>,
    token_to_id: FxHashMap<String, Rank>,
    /// The bytes each id decodes to (the ByteLevel decoder's rule), by id.
    decode_bytes: Vec<Option<Vec<u8>>>,
    special: Vec<bool>,
    /// The model's own vocabulary (which may share entries with the added tokens).
    model_vocab: Vec<(String, Rank)>,
    /// Unique per loaded tokenizer: the key of the per-thread piece cache.
    cache_id: u64,
}

/// Caching: a per-thread map from short pieces to their ids, for the tokenizer used last on
/// that thread (switching tokenizers clears it; so does reaching `CACHE_ENTRIES`). Words repeat,
/// and a hit skips the heap merge. Exact: a piece's ids depend only on the piece.
const CACHE_MAX_PIECE: usize = 48;
const CACHE_ENTRIES: usize = 1 << 15;

type PieceCache = (u64, FxHashMap<Box<[u8]>, Box<[Rank]>>);

thread_local! {
    static PIECES: std::cell::RefCell<PieceCache> = std::cell::RefCell::new((0, FxHashMap::default()));
}

static NEXT_CACHE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

struct Ctx<'a> {
    source: &'a str,
}

impl Ctx<'_> {
    fn bad(&self, path: &str, problem: impl Into<String>) -> Error {
        Error::TokenizerJson { source_name: self.source.into(), path: path.into(), problem: problem.into() }
    }
    fn unsupported(&self, component: impl Into<String>) -> Error {
        Error::Unsupported { source_name: self.source.into(), component: component.into() }
    }
    fn type_of<'v>(&self, v: &'v Value, path: &str) -> Result<&'v str> {
        v.get("type").and_then(Value::as_str).ok_or_else(|| self.bad(path, "no \"type\""))
    }
    fn flag(&self, v: &Value, key: &str) -> bool {
        v.get(key).and_then(Value::as_bool).unwrap_or(false)
    }
}

impl HfTokenizer {
    /// Parses a `tokenizer.json`. `source_name` names it in errors.
    pub fn from_json(json: &str, source_name: &str) -> Result<Self> {
        let cx = Ctx { source: source_name };
        let root: Value = serde_json::from_str(json).map_err(|e| cx.bad("$", format!("not JSON: {e}")))?;
        let model = get(&root, "model").ok_or_else(|| cx.bad("$.model", "missing"))?;
        let mtype = model.get("type").and_then(Value::as_str).unwrap_or("BPE");
        if mtype != "BPE" {
            return Err(cx.unsupported(format!("the {mtype} model")));
        }
        let norms = match get(&root, "normalizer") {
            None => Vec::new(),
            Some(n) => parse_norms(&cx, n, "$.normalizer")?,
        };
        let (split, add_prefix_space) = parse_pretokenizer(&cx, get(&root, "pre_tokenizer"))?;

        // The model.
        if get(model, "dropout").and_then(Value::as_f64).is_some_and(|d| d > 0.0) {
            return Err(cx.unsupported("BPE dropout"));
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if get(model, key).and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
                return Err(cx.unsupported(format!("BPE {key}")));
            }
        }
        if cx.flag(model, "byte_fallback") {
            return Err(cx.unsupported("BPE byte_fallback (a SentencePiece-style model)"));
        }
        let ignore_merges = cx.flag(model, "ignore_merges");
        let table = byte_to_char();
        let rev: FxHashMap<char, u8> = table.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        let vocab_json = get(model, "vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| cx.bad("$.model.vocab", "missing or not an object"))?;
        let mut id_to_token: Vec<Option<String>> = Vec::new();
        let mut token_to_id = FxHashMap::default();
        let mut vocab = FxHashMap::default();
        let mut byte_ids = [None; 256];
        for (tok, id) in vocab_json {
            let id = id
                .as_u64()
                .and_then(|i| Rank::try_from(i).ok())
                .ok_or_else(|| cx.bad(&format!("$.model.vocab[{tok:?}]"), "not a token id"))?;
            let slot = id as usize;
            if id_to_token.len() <= slot {
                id_to_token.resize(slot + 1, None);
            }
            if id_to_token[slot].is_some() {
                return Err(cx.bad(&format!("$.model.vocab[{tok:?}]"), format!("id {id} is used twice")));
            }
            id_to_token[slot] = Some(tok.clone());
            token_to_id.insert(tok.clone(), id);
            if let Some(bytes) = byte_level_bytes(tok, &rev) {
                if let [b] = bytes[..] {
                    byte_ids[b as usize] = Some(id);
                }
                vocab.insert(bytes, id);
            }
        }
        let model_vocab: Vec<(String, Rank)> = token_to_id.iter().map(|(t, &id)| (t.clone(), id)).collect();
        let mut merges = FxHashMap::default();
        let merges_json =
            get(model, "merges").and_then(Value::as_array).ok_or_else(|| cx.bad("$.model.merges", "missing"))?;
        for (rank, m) in merges_json.iter().enumerate() {
            let path = || format!("$.model.merges[{rank}]");
            let (a, b) = match m {
                Value::String(s) => s.split_once(' ').ok_or_else(|| cx.bad(&path(), "expected \"a b\""))?,
                Value::Array(p) if p.len() == 2 => (
                    p[0].as_str().ok_or_else(|| cx.bad(&path(), "not a string"))?,
                    p[1].as_str().ok_or_else(|| cx.bad(&path(), "not a string"))?,
                ),
                _ => return Err(cx.bad(&path(), "expected \"a b\" or [a, b]")),
            };
            let id = |t: &str| {
                token_to_id.get(t).copied().ok_or_else(|| cx.bad(&path(), format!("{t:?} is not in the vocabulary")))
            };
            let merged = format!("{a}{b}");
            let (ia, ib, im) = (id(a)?, id(b)?, id(&merged)?);
            // The first listing of a pair wins, as in `tokenizers`.
            merges.entry((ia, ib)).or_insert((rank as u32, im));
        }

        // Added tokens.
        let mut added = Vec::new();
        if let Some(list) = get(&root, "added_tokens").and_then(Value::as_array) {
            for (i, t) in list.iter().enumerate() {
                let path = format!("$.added_tokens[{i}]");
                let content = t.get("content").and_then(Value::as_str).ok_or_else(|| cx.bad(&path, "no content"))?;
                let id = t
                    .get("id")
                    .and_then(Value::as_u64)
                    .and_then(|i| Rank::try_from(i).ok())
                    .ok_or_else(|| cx.bad(&path, "no id"))?;
                for flag in ["single_word", "lstrip", "rstrip"] {
                    if cx.flag(t, flag) {
                        return Err(cx.unsupported(format!("added token {content:?} with {flag}")));
                    }
                }
                if cx.flag(t, "normalized") && !norms.is_empty() {
                    return Err(cx.unsupported(format!("added token {content:?} matched after normalization")));
                }
                added.push(Added { id, content: content.to_owned(), special: cx.flag(t, "special") });
            }
        }
        let mut special = vec![false; id_to_token.len()];
        for a in &added {
            let slot = a.id as usize;
            if id_to_token.len() <= slot {
                id_to_token.resize(slot + 1, None);
                special.resize(slot + 1, false);
            }
            id_to_token[slot] = Some(a.content.clone());
            token_to_id.insert(a.content.clone(), a.id);
            special[slot] = a.special;
        }
        let added_matcher = if added.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(added.iter().map(|a| a.content.as_str()))
                    .map_err(|e| cx.bad("$.added_tokens", e.to_string()))?,
            )
        };
        let template = parse_post(&cx, get(&root, "post_processor"))?;
        match get(&root, "decoder") {
            None => {}
            Some(d) if cx.type_of(d, "$.decoder")? == "ByteLevel" => {}
            Some(d) => return Err(cx.unsupported(format!("the {} decoder", cx.type_of(d, "$.decoder")?))),
        }
        let decode_bytes = id_to_token
            .iter()
            .map(|t| t.as_ref().map(|s| byte_level_bytes(s, &rev).unwrap_or_else(|| s.as_bytes().to_vec())))
            .collect();
        Ok(Self {
            norms,
            split,
            add_prefix_space,
            vocab,
            byte_ids,
            merges,
            ignore_merges,
            added,
            added_matcher,
            template,
            id_to_token,
            token_to_id,
            decode_bytes,
            special,
            model_vocab,
            cache_id: NEXT_CACHE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Encodes `text`: added tokens first, then normalize → split → byte-level BPE for the text
    /// between them; with `add_special_tokens`, the post-processor's template around it.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<Rank>> {
        let mut body = Vec::with_capacity(text.len() / 3 + 4);
        let mut at = 0;
        if let Some(m) = &self.added_matcher {
            for hit in m.find_iter(text) {
                self.encode_segment(&text[at..hit.start()], &mut body)?;
                body.push(self.added[hit.pattern().as_usize()].id);
                at = hit.end();
            }
        }
        self.encode_segment(&text[at..], &mut body)?;
        if !add_special_tokens || self.template.is_empty() {
            return Ok(body);
        }
        let mut out = Vec::with_capacity(body.len() + 4);
        for p in &self.template {
            match p {
                TemplatePiece::Special(ids) => out.extend_from_slice(ids),
                TemplatePiece::Sequence => out.extend_from_slice(&body),
            }
        }
        Ok(out)
    }

    fn encode_segment(&self, segment: &str, out: &mut Vec<Rank>) -> Result<()> {
        if segment.is_empty() {
            return Ok(());
        }
        let mut text = std::borrow::Cow::Borrowed(segment);
        // ASCII is unchanged by every Unicode normalization form, and text below U+0300 (no
        // combining marks, nothing NFC would compose or replace) by NFC.
        let ascii = segment.is_ascii();
        let nfc_stable = ascii || segment.chars().all(|c| c < '\u{300}');
        for n in self.norms.iter().filter(|n| match n {
            Norm::Lowercase => true,
            Norm::Nfc => !nfc_stable,
            _ => !ascii,
        }) {
            text = std::borrow::Cow::Owned(match n {
                Norm::Nfc => text.nfc().map(|(c, _)| c).collect(),
                Norm::Nfd => text.nfd().map(|(c, _)| c).collect(),
                Norm::Nfkc => text.nfkc().map(|(c, _)| c).collect(),
                Norm::Nfkd => text.nfkd().map(|(c, _)| c).collect(),
                // Character by character, as `tokenizers` does (no final-sigma rule).
                Norm::Lowercase if ascii => text.to_ascii_lowercase(),
                Norm::Lowercase => text.chars().flat_map(char::to_lowercase).collect(),
            });
        }
        if self.add_prefix_space && !text.starts_with(' ') {
            text = std::borrow::Cow::Owned(format!(" {text}"));
        }
        let text = &*text;
        match &self.split {
            None => self.encode_piece(text.as_bytes(), out),
            Some(p) => {
                // Behaviour `Isolated`: the matches and the text between them are all pieces.
                let mut last = 0;
                p.split(text, |s, e| {
                    if s > last {
                        self.encode_piece(&text.as_bytes()[last..s], out)?;
                    }
                    last = e;
                    self.encode_piece(&text.as_bytes()[s..e], out)
                })?;
                if last < text.len() {
                    self.encode_piece(&text.as_bytes()[last..], out)?;
                }
                Ok(())
            }
        }
    }

    fn encode_piece(&self, piece: &[u8], out: &mut Vec<Rank>) -> Result<()> {
        if self.ignore_merges {
            if let Some(&id) = self.vocab.get(piece) {
                out.push(id);
                return Ok(());
            }
        }
        if piece.len() > CACHE_MAX_PIECE {
            return self.merge_piece(piece, out);
        }
        let hit = PIECES.with(|c| {
            let c = c.try_borrow().ok()?;
            if c.0 != self.cache_id {
                return None;
            }
            c.1.get(piece).map(|ids| out.extend_from_slice(ids))
        });
        if hit.is_some() {
            return Ok(());
        }
        let start = out.len();
        self.merge_piece(piece, out)?;
        PIECES.with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                if c.0 != self.cache_id || c.1.len() >= CACHE_ENTRIES {
                    c.0 = self.cache_id;
                    c.1.clear();
                }
                c.1.insert(piece.into(), out[start..].into());
            }
        });
        Ok(())
    }

    /// The heap merge of one piece (see the module notes).
    fn merge_piece(&self, piece: &[u8], out: &mut Vec<Rank>) -> Result<()> {
        struct Sym {
            id: Rank,
            prev: usize,
            next: usize,
            live: bool,
        }
        const NONE: usize = usize::MAX;
        let n = piece.len();
        let mut syms: Vec<Sym> = Vec::with_capacity(n);
        for (i, &b) in piece.iter().enumerate() {
            let id = self.byte_ids[b as usize].ok_or(Error::Unencodable { byte: b, offset: i })?;
            syms.push(Sym {
                id,
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == n { NONE } else { i + 1 },
                live: true,
            });
        }
        let mut heap = BinaryHeap::new();
        for i in 0..n.saturating_sub(1) {
            if let Some(&(rank, new)) = self.merges.get(&(syms[i].id, syms[i + 1].id)) {
                heap.push(Reverse((rank, i, new)));
            }
        }
        while let Some(Reverse((rank, pos, new))) = heap.pop() {
            if !syms[pos].live {
                continue;
            }
            let next = syms[pos].next;
            if next == NONE {
                continue;
            }
            // Stale if either symbol changed since the pair was pushed.
            if self.merges.get(&(syms[pos].id, syms[next].id)) != Some(&(rank, new)) {
                continue;
            }
            syms[pos].id = new;
            let after = syms[next].next;
            syms[next].live = false;
            syms[pos].next = after;
            if after != NONE {
                syms[after].prev = pos;
                if let Some(&(r, m)) = self.merges.get(&(new, syms[after].id)) {
                    heap.push(Reverse((r, pos, m)));
                }
            }
            let prev = syms[pos].prev;
            if prev != NONE {
                if let Some(&(r, m)) = self.merges.get(&(syms[prev].id, new)) {
                    heap.push(Reverse((r, prev, m)));
                }
            }
        }
        let mut i = 0;
        while i != NONE && i < n {
            out.push(syms[i].id);
            i = syms[i].next;
        }
        Ok(())
    }

    /// The text of `ids` (the ByteLevel decoder: token bytes joined, invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[Rank], skip_special_tokens: bool) -> Result<String> {
        let mut bytes = Vec::new();
        for &id in ids {
            let b = self
                .decode_bytes
                .get(id as usize)
                .and_then(Option::as_ref)
                .ok_or(Error::InvalidToken(u64::from(id)))?;
            if skip_special_tokens && self.special.get(id as usize).copied().unwrap_or(false) {
                continue;
            }
            bytes.extend_from_slice(b);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A token's string as the file spells it (byte-level characters for model tokens).
    pub fn id_to_token(&self, id: Rank) -> Option<&str> {
        self.id_to_token.get(id as usize).and_then(|t| t.as_deref())
    }

    pub fn token_to_id(&self, token: &str) -> Option<Rank> {
        self.token_to_id.get(token).copied()
    }

    /// The vocabulary size, with or without the added tokens.
    pub fn vocab_size(&self, with_added_tokens: bool) -> usize {
        if with_added_tokens {
            self.token_to_id.len()
        } else {
            self.model_vocab.len()
        }
    }

    /// Every token and its id, the added tokens included or not.
    pub fn vocab(&self, with_added_tokens: bool) -> Box<dyn Iterator<Item = (&str, Rank)> + '_> {
        if with_added_tokens {
            Box::new(self.token_to_id.iter().map(|(t, &id)| (t.as_str(), id)))
        } else {
            Box::new(self.model_vocab.iter().map(|(t, id)| (t.as_str(), *id)))
        }
    }

    /// The largest id.
    pub fn max_id(&self) -> Rank {
        self.id_to_token.len().saturating_sub(1) as Rank
    }

    /// The id of an added token by content.
    pub fn added_token(&self, content: &str) -> Option<Rank> {
        self.added.iter().find(|a| a.content == content).map(|a| a.id)
    }
}

fn parse_norms(cx: &Ctx<'_>, n: &Value, path: &str) -> Result<Vec<Norm>> {
    Ok(match cx.type_of(n, path)? {
        "NFC" => vec![Norm::Nfc],
        "NFD" => vec![Norm::Nfd],
        "NFKC" => vec![Norm::Nfkc],
        "NFKD" => vec![Norm::Nfkd],
        "Lowercase" => vec![Norm::Lowercase],
        "Sequence" => {
            let list = n.get("normalizers").and_then(Value::as_array).ok_or_else(|| cx.bad(path, "no normalizers"))?;
            let mut out = Vec::new();
            for (i, m) in list.iter().enumerate() {
                out.extend(parse_norms(cx, m, &format!("{path}.normalizers[{i}]"))?);
            }
            out
        }
        other => return Err(cx.unsupported(format!("the {other} normalizer"))),
    })
}

/// The split and whether a space is prepended. Requires a ByteLevel step (the model is byte-level).
fn parse_pretokenizer(cx: &Ctx<'_>, p: Option<&Value>) -> Result<(Option<PreTokenizer>, bool)> {
    let p = p.ok_or_else(|| cx.unsupported("a BPE model without the ByteLevel pre-tokenizer"))?;
    let steps: Vec<&Value> = match cx.type_of(p, "$.pre_tokenizer")? {
        "Sequence" => p
            .get("pretokenizers")
            .and_then(Value::as_array)
            .ok_or_else(|| cx.bad("$.pre_tokenizer", "no pretokenizers"))?
            .iter()
            .collect(),
        _ => vec![p],
    };
    let mut split = None;
    let mut prefix = false;
    let mut byte_level = false;
    for (i, s) in steps.iter().enumerate() {
        let path = format!("$.pre_tokenizer[{i}]");
        match cx.type_of(s, &path)? {
            "Split" if !byte_level && split.is_none() => {
                if s.get("behavior").and_then(Value::as_str) != Some("Isolated") || cx.flag(s, "invert") {
                    return Err(cx.unsupported("a Split pre-tokenizer other than behavior Isolated, invert false"));
                }
                let pat = s.get("pattern").ok_or_else(|| cx.bad(&path, "no pattern"))?;
                let regex = if let Some(r) = pat.get("Regex").and_then(Value::as_str) {
                    r.to_owned()
                } else if let Some(lit) = pat.get("String").and_then(Value::as_str) {
                    regex_syntax::escape(lit)
                } else {
                    return Err(cx.bad(&path, "pattern is neither Regex nor String"));
                };
                split = Some(PreTokenizer::new(&regex)?);
            }
            "ByteLevel" if !byte_level => {
                byte_level = true;
                prefix = cx.flag(s, "add_prefix_space");
                if s.get("use_regex").and_then(Value::as_bool).unwrap_or(true) {
                    if split.is_some() {
                        return Err(cx.unsupported("a Split followed by ByteLevel with use_regex"));
                    }
                    split = Some(PreTokenizer::new(GPT2_PATTERN_OLD)?);
                }
            }
            other => return Err(cx.unsupported(format!("the pre-tokenizer {other} in this position"))),
        }
    }
    if !byte_level {
        return Err(cx.unsupported("a BPE model without the ByteLevel pre-tokenizer"));
    }
    Ok((split, prefix))
}

fn parse_post(cx: &Ctx<'_>, p: Option<&Value>) -> Result<Vec<TemplatePiece>> {
    let Some(p) = p else { return Ok(Vec::new()) };
    match cx.type_of(p, "$.post_processor")? {
        "ByteLevel" => Ok(Vec::new()),
        "Sequence" => {
            let mut out = Vec::new();
            for s in p
                .get("processors")
                .and_then(Value::as_array)
                .ok_or_else(|| cx.bad("$.post_processor", "no processors"))?
            {
                let t = parse_post(cx, Some(s))?;
                if !t.is_empty() {
                    if !out.is_empty() {
                        return Err(cx.unsupported("two templates in one post-processor"));
                    }
                    out = t;
                }
            }
            Ok(out)
        }
        "TemplateProcessing" => {
            let single = p
                .get("single")
                .and_then(Value::as_array)
                .ok_or_else(|| cx.bad("$.post_processor", "no single template"))?;
            let specials = p.get("special_tokens");
            let mut out = Vec::new();
            for piece in single {
                if let Some(sp) = piece.get("SpecialToken") {
                    let name = sp
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| cx.bad("$.post_processor.single", "no id"))?;
                    let ids: Vec<Rank> = specials
                        .and_then(|s| s.get(name))
                        .and_then(|s| s.get("ids"))
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|v| v.as_u64().and_then(|i| Rank::try_from(i).ok())).collect())
                        .ok_or_else(|| cx.bad("$.post_processor.special_tokens", format!("no ids for {name:?}")))?;
                    out.push(TemplatePiece::Special(ids));
                } else if piece.get("Sequence").is_some() {
                    out.push(TemplatePiece::Sequence);
                } else {
                    return Err(cx.bad("$.post_processor.single", "a piece is neither SpecialToken nor Sequence"));
                }
            }
            Ok(out)
        }
        other => Err(cx.unsupported(format!("the {other} post-processor"))),
    }
}
