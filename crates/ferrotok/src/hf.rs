//! Hugging Face `tokenizer.json` files (and SentencePiece `.model` files), with Hugging
//! Face's exact semantics.
//!
//! Three ways through, chosen at load:
//! - byte-level BPE (GPT-2, RoBERTa, Llama 3, Qwen): a `ByteLevel` pre-tokenizer (with its own
//!   regex, or after one `Split` regex with behaviour `Isolated`), the BPE model over raw bytes
//!   (vocabulary strings mapped back through GPT-2's byte ↔ character table at load), the
//!   `ByteLevel` decoder;
//! - BERT's WordPiece: `BertPreTokenizer` or `WhitespaceSplit`, the WordPiece model and decoder;
//! - the general pipeline ([`general`]) for every other file: every pre-tokenizer, the BPE
//!   (character-level: prefix, suffix, byte fallback, unknown tokens), WordPiece, WordLevel and
//!   Unigram models, and every decoder.
//!
//! The fast paths are checked against the general pipeline by the tests. Shared by all:
//! every normalizer (`NFC`/`NFD`/`NFKC`/`NFKD`, `Lowercase`, `Strip`, `StripAccents`,
//! `Replace`, `Prepend`, `Precompiled`, `ByteLevel`, `Nmt`, `BertNormalizer`, `Sequence`),
//! added tokens (matched leftmost-longest in the raw text, as `tokenizers` does), the
//! post-processors (`TemplateProcessing`, `BertProcessing`, `RobertaProcessing`, `ByteLevel`,
//! `Sequence`; single sequences and pairs), truncation and padding. Anything else fails to load with
//! [`Error::Unsupported`] naming the component: never a silent difference.
//!
//! BPE merges in `tokenizers`' order: each time, the adjacent pair listed in `merges` with the
//! lowest (merge rank, position). `tokenizers` keeps a heap of candidates; here short words
//! scan for the lowest pair and long ones keep the pair keys in blocks under a tournament tree
//! (`general::blocked_merge`, O(n · (16 + log n)) per piece), tested against the heap.

use aho_corasick::{AhoCorasick, MatchKind};
use rustc_hash::FxHashMap;
use serde_json::Value;
// The same normalization tables as `tokenizers` (an older Unicode version than the current
// one: newer tables reorder some marks that it leaves alone, e.g. U+05C9).
use unicode_normalization_alignments::UnicodeNormalization;

use crate::cache::{PieceCache, ShortKey, WordCache, LONG_PIECE, SHORT_IDS};
use crate::error::{Error, Result};
use crate::pretokenize::{PreTokenizer, GPT2_PATTERN_OLD};
use crate::sentencepiece::{CharsMap, PieceKind, SentencePiece};
use crate::table;
use crate::vocab::{Rank, Vocab};

mod general;
mod offsets;
mod post;
#[rustfmt::skip]
mod scripts;
use general::{General, Pattern};
pub use post::{HfEncoding, LengthSettings, Padding, Part, Strategy, Truncation};
use post::{Seq, TemplatePiece, Templates};

/// GPT-2's byte → character table: printable bytes map to themselves, the rest to U+0100 on.
/// Built once.
fn byte_to_char() -> &'static [char; 256] {
    static TABLE: std::sync::OnceLock<[char; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
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
    })
}

/// The reverse of [`byte_to_char`], indexed by code point: every byte-level character is below
/// U+0200 (`u16::MAX` marks the others). A table, not a hash map: loading Llama 3's
/// `tokenizer.json` looks up every character of 128 000 tokens twice.
pub(crate) struct CharToByte([u16; 512]);

impl CharToByte {
    #[inline]
    pub(crate) fn get(&self, c: char) -> Option<u8> {
        self.0.get(c as usize).and_then(|&b| u8::try_from(b).ok())
    }
}

/// Built once.
pub(crate) fn char_to_byte() -> &'static CharToByte {
    static MAP: std::sync::OnceLock<CharToByte> = std::sync::OnceLock::new();
    MAP.get_or_init(|| {
        let mut table = [u16::MAX; 512];
        for (b, &c) in (0u16..).zip(byte_to_char().iter()) {
            if let Some(slot) = table.get_mut(c as usize) {
                *slot = b;
            }
        }
        CharToByte(table)
    })
}

/// The bytes a byte-level string stands for, or `None` if a character is outside the table.
fn byte_level_bytes(s: &str, rev: &CharToByte) -> Option<Vec<u8>> {
    s.chars().map(|c| rev.get(c)).collect()
}

#[derive(Debug, Clone)]
enum Norm {
    Nfc,
    Nfd,
    Nfkc,
    Nfkd,
    Lowercase,
    /// Remove combining marks (Mn, Mc, Me).
    StripAccents,
    /// BERT's normalizer, as `tokenizers` implements it.
    Bert {
        clean_text: bool,
        chinese: bool,
        strip_accents: bool,
        lowercase: bool,
    },
    /// Remove leading and/or trailing whitespace.
    Strip {
        left: bool,
        right: bool,
    },
    /// Every match of the pattern replaced by the content.
    Replace(Box<(Pattern, String)>),
    /// The string put before non-empty text.
    Prepend(String),
    /// SentencePiece's compiled character map, applied as `tokenizers` applies it.
    Precompiled(std::sync::Arc<Precompiled>),
    /// Every byte mapped to its GPT-2 byte-level character.
    ByteLevel,
    /// SentencePiece's `nmt_nfkc` control-character rules (without the NFKC).
    Nmt,
}

/// How a WordPiece tokenizer cuts text into words.
#[derive(Debug, Clone, Copy)]
enum WordSplit {
    /// Whitespace separates words and each punctuation character is a word.
    Bert,
    /// Whitespace separates words.
    WhitespaceSplit,
}

/// A WordPiece model: greedy longest-match-first over each word.
#[derive(Debug, Clone)]
struct WordPiece {
    vocab: FxHashMap<String, Rank>,
    /// The same vocabulary as two of the tiktoken engine's tables, probed with slices of the
    /// word instead of a string built per probe: every token as spelled (`starts`, for the
    /// word's first piece) and the tokens that begin with `prefix`, without it (`conts`, for
    /// the others). Most probes miss, and the tables' miss filter answers those from cache.
    /// `None` (the string map is used) if a table cannot take the vocabulary.
    tables: Option<Box<(Vocab, Vocab)>>,
    unk: Rank,
    prefix: String,
    max_chars: usize,
    split: WordSplit,
    /// The WordPiece decoder's `cleanup` (None: no WordPiece decoder).
    decoder_cleanup: Option<bool>,
}

#[derive(Debug, Clone)]
struct Added {
    id: Rank,
    content: String,
    special: bool,
}

/// A `tokenizer.json` tokenizer (the supported subset; see the module notes).
#[derive(Debug, Clone)]
pub struct HfTokenizer {
    norms: Vec<Norm>,
    split: Option<PreTokenizer>,
    add_prefix_space: bool,
    /// Raw bytes → id for model tokens.
    vocab: FxHashMap<Vec<u8>, Rank>,
    /// With `ignore_merges`, `vocab` again as the tiktoken engine's [`Vocab`] (its open-addressed
    /// `TokenTable`: a miss filter and 16-byte slots, probed with the short-table key's hash,
    /// not hashed again), for the whole-piece look-up. A file whose vocabulary it cannot take
    /// (two tokens with one id) uses `vocab` for it instead.
    whole: Option<Box<Vocab>>,
    byte_ids: [Option<Rank>; 256],
    /// (left id, right id) → (merge rank, merged id).
    merges: general::Merges,
    ignore_merges: bool,
    added: Vec<Added>,
    added_matcher: Option<AhoCorasick>,
    template: Templates,
    /// The post-processor's offset trimming (ByteLevel or RobertaProcessing with
    /// `trim_offsets`), in order: each one's `add_prefix_space`.
    trims: Vec<bool>,
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
    /// `Some`: the model is WordPiece (the byte-level BPE fields above are then empty).
    wordpiece: Option<WordPiece>,
    /// The file's truncation and padding, and the padding's token text.
    length: LengthSettings,
    pad_token: Option<String>,
    /// `Some`: a SentencePiece `.model` (normalizer, model and decoder all its own).
    sentencepiece: Option<Box<SentencePiece>>,
    /// `Some`: the general pipeline (pre-tokenizer, model and decoder; see [`general`]).
    general: Option<Box<General>>,
}

/// Caching: a per-thread [`WordCache`] from pieces of at most this many bytes to their ids,
/// for the tokenizer used last on that thread. Words repeat, and a hit skips the model.
/// Exact: a piece's ids depend only on the piece.
const CACHE_MAX_PIECE: usize = 48;

thread_local! {
    static PIECES: std::cell::RefCell<WordCache<Box<[Rank]>>> = std::cell::RefCell::new(WordCache::default());
}

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
        let specialised = match model.get("type").and_then(Value::as_str).unwrap_or("BPE") {
            "BPE" => Self::byte_level_from_json(&cx, &root, model),
            "WordPiece" => Self::wordpiece_from_json(&cx, &root, model),
            other => Err(cx.unsupported(format!("the {other} model"))),
        };
        match specialised {
            // A file the fast paths do not fit runs through the general pipeline.
            Err(Error::Unsupported { .. }) => Self::general_from_json(&cx, &root, model),
            other => other,
        }
    }

    /// The general pipeline (every component [`general`] knows), for any file.
    pub fn from_json_general(json: &str, source_name: &str) -> Result<Self> {
        let cx = Ctx { source: source_name };
        let root: Value = serde_json::from_str(json).map_err(|e| cx.bad("$", format!("not JSON: {e}")))?;
        let model = get(&root, "model").ok_or_else(|| cx.bad("$.model", "missing"))?;
        Self::general_from_json(&cx, &root, model)
    }

    fn general_from_json(cx: &Ctx<'_>, root: &Value, model: &Value) -> Result<Self> {
        let (general, id_to_token, token_to_id) = General::parse(cx, root, model)?;
        Ok(Self { general: Some(Box::new(general)), ..Self::common(cx, root, (id_to_token, token_to_id))? })
    }

    /// What every `tokenizer.json` has besides its pre-tokenizer, model and decoder: the
    /// normalizers, the added tokens, truncation and padding, and the post-processor, over
    /// the model's vocabulary.
    fn common(cx: &Ctx<'_>, root: &Value, (mut id_to_token, mut token_to_id): VocabMaps) -> Result<Self> {
        let norms = match get(root, "normalizer") {
            None => Vec::new(),
            Some(n) => parse_norms(cx, n, "$.normalizer")?,
        };
        let model_vocab: Vec<(String, Rank)> = token_to_id.iter().map(|(t, &id)| (t.clone(), id)).collect();
        let (added, special, added_matcher) =
            parse_added(cx, root, !norms.is_empty(), &mut id_to_token, &mut token_to_id)?;
        let length = post::parse_length(cx, root, &token_to_id)?;
        let pad_token =
            get(root, "padding").and_then(|p| p.get("pad_token")).and_then(Value::as_str).map(str::to_owned);
        let template = post::parse_post(cx, get(root, "post_processor"))?;
        let mut trims = Vec::new();
        post::parse_trims(get(root, "post_processor"), &mut trims);
        Ok(Self {
            norms,
            added,
            added_matcher,
            template,
            trims,
            id_to_token,
            token_to_id,
            special,
            model_vocab,
            length,
            pad_token,
            ..Self::empty()
        })
    }

    /// Byte-level BPE (the fast path): a ByteLevel pre-tokenizer and decoder, raw-byte merges.
    fn byte_level_from_json(cx: &Ctx<'_>, root: &Value, model: &Value) -> Result<Self> {
        let (split, add_prefix_space) = parse_pretokenizer(cx, get(root, "pre_tokenizer"))?;

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
        let rev = char_to_byte();
        let vocab_json = get(model, "vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| cx.bad("$.model.vocab", "missing or not an object"))?;
        let (id_to_token, token_to_id) = parse_vocab(cx, vocab_json)?;
        let mut vocab = FxHashMap::with_capacity_and_hasher(token_to_id.len(), Default::default());
        let mut byte_ids = [None; 256];
        for (tok, &id) in &token_to_id {
            if let Some(bytes) = byte_level_bytes(tok, rev) {
                if let [b] = bytes[..] {
                    byte_ids[b as usize] = Some(id);
                }
                vocab.insert(bytes, id);
            }
        }
        let merges_json =
            get(model, "merges").and_then(Value::as_array).ok_or_else(|| cx.bad("$.model.merges", "missing"))?;
        let mut merges = FxHashMap::with_capacity_and_hasher(merges_json.len(), Default::default());
        // The joined text, in one buffer for every merge (a `format!` each was a tenth of
        // loading Llama 3's 280 000 merges).
        let mut merged = String::new();
        for (rank, m) in merges_json.iter().enumerate() {
            let path = || format!("$.model.merges[{rank}]");
            let (a, b) = merge_pair(cx, m, &path)?;
            let id = |t: &str| {
                token_to_id.get(t).copied().ok_or_else(|| cx.bad(&path(), format!("{t:?} is not in the vocabulary")))
            };
            merged.clear();
            merged.push_str(a);
            merged.push_str(b);
            let (ia, ib, im) = (id(a)?, id(b)?, id(&merged)?);
            // The last listing of a pair wins, as in `tokenizers`.
            merges.insert((ia, ib), (rank as u32, im));
        }
        match get(root, "decoder") {
            None => {}
            Some(d) if cx.type_of(d, "$.decoder")? == "ByteLevel" => {}
            Some(d) => return Err(cx.unsupported(format!("the {} decoder", cx.type_of(d, "$.decoder")?))),
        }
        let base = Self::common(cx, root, (id_to_token, token_to_id))?;
        let decode_bytes = base
            .id_to_token
            .iter()
            .map(|t| t.as_ref().map(|s| byte_level_bytes(s, rev).unwrap_or_else(|| s.as_bytes().to_vec())))
            .collect();
        let whole = if ignore_merges {
            Vocab::from_pairs(vocab.iter().map(|(bytes, &id)| (bytes.clone(), id)).collect()).ok().map(Box::new)
        } else {
            None
        };
        Ok(Self {
            split,
            add_prefix_space,
            vocab,
            whole,
            byte_ids,
            merges: general::Merges::new(merges),
            ignore_merges,
            decode_bytes,
            ..base
        })
    }

    fn wordpiece_from_json(cx: &Ctx<'_>, root: &Value, model: &Value) -> Result<Self> {
        let split = match get(root, "pre_tokenizer") {
            None => return Err(cx.unsupported("a WordPiece model without a pre-tokenizer")),
            Some(p) => match cx.type_of(p, "$.pre_tokenizer")? {
                "BertPreTokenizer" => WordSplit::Bert,
                "WhitespaceSplit" => WordSplit::WhitespaceSplit,
                other => return Err(cx.unsupported(format!("the pre-tokenizer {other} with WordPiece"))),
            },
        };
        let vocab_json = get(model, "vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| cx.bad("$.model.vocab", "missing or not an object"))?;
        let (id_to_token, token_to_id) = parse_vocab(cx, vocab_json)?;
        let mut wordpiece = WordPiece::parse(cx, model, token_to_id.clone())?;
        wordpiece.split = split;
        wordpiece.decoder_cleanup = match get(root, "decoder") {
            None => None,
            Some(d) => match cx.type_of(d, "$.decoder")? {
                "WordPiece" => {
                    if d.get("prefix").and_then(Value::as_str).is_some_and(|p| p != wordpiece.prefix) {
                        return Err(cx.unsupported("a WordPiece decoder whose prefix differs from the model's"));
                    }
                    Some(d.get("cleanup").and_then(Value::as_bool).unwrap_or(true))
                }
                other => return Err(cx.unsupported(format!("the {other} decoder with WordPiece"))),
            },
        };
        let base = Self::common(cx, root, (id_to_token, token_to_id))?;
        let decode_bytes = base.id_to_token.iter().map(|t| t.as_ref().map(|s| s.as_bytes().to_vec())).collect();
        Ok(Self { wordpiece: Some(wordpiece), decode_bytes, ..base })
    }

    /// A tokenizer with no vocabulary and no components (the base of the constructors).
    fn empty() -> Self {
        Self {
            norms: Vec::new(),
            split: None,
            add_prefix_space: false,
            vocab: FxHashMap::default(),
            whole: None,
            byte_ids: [None; 256],
            merges: general::Merges::default(),
            ignore_merges: false,
            added: Vec::new(),
            added_matcher: None,
            template: Templates::default(),
            trims: Vec::new(),
            id_to_token: Vec::new(),
            token_to_id: FxHashMap::default(),
            decode_bytes: Vec::new(),
            special: Vec::new(),
            model_vocab: Vec::new(),
            cache_id: crate::cache::next_owner_id(),
            wordpiece: None,
            length: LengthSettings::default(),
            pad_token: None,
            sentencepiece: None,
            general: None,
        }
    }

    /// Loads a SentencePiece `.model` file. Encoding gives `SentencePieceProcessor.encode`'s
    /// ids; with `add_special_tokens`, `<s>` first when `add_bos` and `</s>` last when
    /// `add_eos` (its `add_bos`/`add_eos` options). Decoding is the library's `decode`.
    pub fn from_sentencepiece(data: &[u8], source_name: &str, add_bos: bool, add_eos: bool) -> Result<Self> {
        let sp = SentencePiece::from_bytes(data, source_name)?;
        let (bos, eos) = sp.bos_eos();
        let missing = |what: &str| Error::SentencePieceModel {
            source_name: source_name.into(),
            offset: 0,
            problem: format!("{what} was asked for, but the model has no such control piece"),
        };
        // Each sequence between its own <s> and </s> (a pair: the second with type id 1).
        let mut template = Templates::default();
        for (index, type_id) in [(0, 0), (1, 1)] {
            let mut pieces = Vec::new();
            if add_bos {
                pieces.push(TemplatePiece::Special(vec![bos.ok_or_else(|| missing("add_bos"))?], type_id));
            }
            pieces.push(TemplatePiece::Sequence(index, type_id));
            if add_eos {
                pieces.push(TemplatePiece::Special(vec![eos.ok_or_else(|| missing("add_eos"))?], type_id));
            }
            if index == 0 {
                template.pair = pieces.clone();
                template.single = pieces;
            } else {
                template.pair.extend(pieces);
            }
        }
        let mut id_to_token = Vec::with_capacity(sp.len());
        let mut special = Vec::with_capacity(sp.len());
        let mut token_to_id = FxHashMap::default();
        for id in 0..sp.len() as Rank {
            let Some((text, kind)) = sp.piece(id) else { break };
            id_to_token.push(Some(text.to_owned()));
            special.push(kind == PieceKind::Control);
            // The first piece with a text wins, as `PieceToId` prefers the segmentable ones.
            let prefer = matches!(kind, PieceKind::Normal | PieceKind::UserDefined | PieceKind::Unused);
            match token_to_id.entry(text.to_owned()) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(id);
                }
                std::collections::hash_map::Entry::Occupied(mut e) if prefer => {
                    e.insert(id);
                }
                std::collections::hash_map::Entry::Occupied(_) => {}
            }
        }
        let model_vocab = token_to_id.iter().map(|(t, &id)| (t.clone(), id)).collect();
        Ok(Self {
            template,
            id_to_token,
            token_to_id,
            special,
            model_vocab,
            sentencepiece: Some(Box::new(sp)),
            ..Self::empty()
        })
    }

    /// Encodes `text` as `tokenizers` does: added tokens first, then normalize → split → model
    /// for the text between them; the file's truncation; with `add_special_tokens`, the
    /// post-processor's template; the file's padding.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<Rank>> {
        Ok(self.encode_full(text, None, add_special_tokens, &self.length)?.ids)
    }

    /// The truncation and padding the file asks for.
    pub fn length(&self) -> LengthSettings {
        self.length
    }

    /// How many special tokens the post-processor adds to one sequence or a pair.
    pub fn added_tokens(&self, pair: bool) -> usize {
        Templates::added(self.template.pick(pair, true))
    }

    /// The text of the file's padding token (what `tokens` shows for padding).
    pub fn pad_token(&self) -> Option<&str> {
        self.pad_token.as_deref()
    }

    /// Encodes a text, or a pair of texts, with the given truncation and padding (padding to
    /// the batch's longest pads to a multiple only; see [`Self::pad_batch_with`]).
    pub fn encode_full(
        &self,
        text: &str,
        pair: Option<&str>,
        add_special_tokens: bool,
        settings: &LengthSettings,
    ) -> Result<HfEncoding> {
        self.encode_full_with(text, pair, (add_special_tokens, false), settings)
    }

    /// [`Self::encode_full`]; `(add_special_tokens, offsets)`: with `offsets`, also each
    /// token's offsets (the characters of its input sequence it comes from, as `tokenizers`
    /// reports them; (0, 0) for special tokens and padding), on a slower path of its own whose
    /// ids are the same.
    pub fn encode_full_with(
        &self,
        text: &str,
        pair: Option<&str>,
        (add_special_tokens, offsets): (bool, bool),
        settings: &LengthSettings,
    ) -> Result<HfEncoding> {
        let body = |t: &str| if offsets { self.encode_body_offsets(t) } else { self.encode_body(t) };
        let a = body(text)?;
        let b = pair.map(body).transpose()?;
        self.finish(a, b, add_special_tokens, settings, offsets)
    }

    /// [`Self::encode_full_with`] for pre-tokenized input (`is_pretokenized=True`): each
    /// sequence a list of words, each word encoded on its own as a whole input (added tokens,
    /// normalizers, pre-tokenizer and model) and counted as one word; offsets are within
    /// each word, as in `tokenizers`.
    pub fn encode_words_with<S: AsRef<str>>(
        &self,
        words: &[S],
        pair: Option<&[S]>,
        (add_special_tokens, offsets): (bool, bool),
        settings: &LengthSettings,
    ) -> Result<HfEncoding> {
        let body = |list: &[S]| -> Result<Seq> {
            let mut seq = Seq::default();
            for (i, w) in list.iter().enumerate() {
                let one = if offsets { self.encode_body_offsets(w.as_ref())? } else { self.encode_body(w.as_ref())? };
                seq.words.resize(seq.words.len() + one.ids.len(), i as u32);
                seq.ids.extend_from_slice(&one.ids);
                seq.offsets.extend_from_slice(&one.offsets);
            }
            seq.next_word = list.len() as u32;
            Ok(seq)
        };
        let a = body(words)?;
        let b = pair.map(body).transpose()?;
        self.finish(a, b, add_special_tokens, settings, offsets)
    }

    /// Truncation, the post-processor and padding.
    fn finish(
        &self,
        mut a: Seq,
        mut b: Option<Seq>,
        add_special_tokens: bool,
        settings: &LengthSettings,
        offsets: bool,
    ) -> Result<HfEncoding> {
        let template = self.template.pick(b.is_some(), add_special_tokens);
        let mut over = post::Overflow::default();
        if let Some(t) = &settings.truncate {
            let added = Templates::added(template);
            // The special tokens count against the limit; when they alone exceed it,
            // `tokenizers` does not truncate at all. The full path (`offsets`) keeps what is
            // cut as overflowing windows.
            if let Some(max) = t.max_length.checked_sub(added) {
                over = post::truncate(&mut a, b.as_mut(), max, t, offsets)?;
            }
        }
        if offsets {
            // The post-processor trims each sequence's offsets before adding its tokens.
            let windows = over.iter_mut().flatten();
            for seq in std::iter::once(&mut a).chain(b.as_mut()).chain(windows) {
                let tokens: Vec<&str> = seq.ids.iter().map(|&id| self.id_to_token(id).unwrap_or_default()).collect();
                for &add_prefix_space in &self.trims {
                    offsets::trim_offsets(&tokens, &mut seq.offsets, add_prefix_space);
                }
            }
        }
        let none = Seq::default();
        let seqs = [&a, b.as_ref().unwrap_or(&none)];
        let window_types = self.template.roberta && add_special_tokens;
        let mut enc = post::assemble(template, seqs, (&over, window_types), 1 + usize::from(b.is_some()), offsets);
        if let Some(p) = &settings.padding {
            enc.pad_to(post::padded_len(enc.ids.len(), p), p);
        }
        Ok(enc)
    }

    /// Pads a batch to its longest member when padding to the batch's longest.
    pub fn pad_batch_with(batch: &mut [HfEncoding], settings: &LengthSettings) {
        if let Some(p) = settings.padding.filter(|p| p.length.is_none()) {
            let longest = batch.iter().map(|e| e.ids.len()).max().unwrap_or(0);
            let target = post::padded_len(longest, &p);
            for e in batch {
                e.pad_to(target, &p);
            }
        }
    }

    /// The ids of `text` without the file's truncation and padding (what a corpus job stores).
    pub fn encode_plain(&self, text: &str, add_special_tokens: bool) -> Result<Vec<Rank>> {
        Ok(self.encode_full(text, None, add_special_tokens, &LengthSettings::default())?.ids)
    }

    /// The ids of one sequence: added tokens matched in the raw text, the model for the text
    /// between them.
    fn encode_body(&self, text: &str) -> Result<Seq> {
        let mut body = Seq { ids: Vec::with_capacity(text.len() / 3 + 4), ..Seq::default() };
        let mut at = 0;
        if let Some(m) = &self.added_matcher {
            for hit in m.find_iter(text) {
                self.encode_segment(&text[at..hit.start()], at == 0, &mut body)?;
                body.ids.push(self.added[hit.pattern().as_usize()].id);
                body.end_word();
                at = hit.end();
            }
        }
        self.encode_segment(&text[at..], at == 0, &mut body)?;
        Ok(body)
    }

    /// [`Self::encode_body`] with offsets (characters of `text`).
    fn encode_body_offsets(&self, text: &str) -> Result<Seq> {
        let mut body = Seq::default();
        let mut at = 0;
        if let Some(m) = &self.added_matcher {
            for hit in m.find_iter(text) {
                self.encode_segment_offsets(&text[at..hit.start()], at, &mut body)?;
                body.ids.push(self.added[hit.pattern().as_usize()].id);
                body.offsets.push((hit.start(), hit.end()));
                body.end_word();
                at = hit.end();
            }
        }
        self.encode_segment_offsets(&text[at..], at, &mut body)?;
        offsets::to_char_offsets(text, &mut body.offsets);
        Ok(body)
    }

    /// [`Self::encode_segment`] with byte offsets; `base`: where the segment starts in the
    /// input. Normalizers and pre-tokenizers run on [`offsets::Aligned`] text.
    fn encode_segment_offsets(&self, segment: &str, base: usize, seq: &mut Seq) -> Result<()> {
        if segment.is_empty() {
            return Ok(());
        }
        if self.sentencepiece.is_some() {
            return Err(Error::Unsupported {
                source_name: "a SentencePiece .model".into(),
                component: "offsets (load the model's tokenizer.json for them)".into(),
            });
        }
        let mut text = offsets::Aligned::new(segment, base);
        for n in &self.norms {
            text.normalize(n)?;
        }
        let mut spans = Vec::new();
        // One word: its tokens' spans, from byte `start` of `p`, as input offsets.
        let flush = |p: &offsets::Aligned, start: usize, seq: &mut Seq, spans: &mut Vec<(usize, usize)>| {
            seq.offsets.extend(spans.drain(..).map(|(s, e)| p.original(start + s, start + e)));
            seq.end_word();
        };
        if let Some(g) = &self.general {
            if !g.has_steps() {
                if !text.text.is_empty() {
                    g.encode_piece_spans(&text.text, &mut seq.ids, &mut spans)?;
                }
                flush(&text, 0, seq, &mut spans);
                return Ok(());
            }
            for p in g.pieces_aligned(text)? {
                g.encode_piece_spans(&p.text, &mut seq.ids, &mut spans)?;
                flush(&p, 0, seq, &mut spans);
            }
            return Ok(());
        }
        if let Some(wp) = &self.wordpiece {
            return crate::cache::with_scratch(self.cache_id, |scratch| {
                for_each_word(&text.text, wp.split, |w| {
                    let start = w.as_ptr() as usize - text.text.as_ptr() as usize;
                    // The plain path's cached ids; the spans follow from them: one token covers
                    // the whole word (the unknown token too), the first of several its own
                    // spelling, the others their spelling less the prefix.
                    let first = seq.ids.len();
                    Self::piece_cached(&mut scratch.cache, w.as_bytes(), &mut seq.ids, |out| {
                        wp.encode_word(w, out, None);
                        Ok(())
                    })?;
                    if seq.ids.len() - first == 1 {
                        spans.push((0, w.len()));
                    } else {
                        let mut at = 0;
                        for (k, &id) in seq.ids[first..].iter().enumerate() {
                            let t = self.id_to_token(id).unwrap_or_default();
                            let n = if k == 0 { t.len() } else { t.len().saturating_sub(wp.prefix.len()) };
                            spans.push((at, at + n));
                            at += n;
                        }
                    }
                    flush(&text, start, seq, &mut spans);
                    Ok(())
                })
            });
        }
        // Byte-level BPE: a token covers as many raw bytes as its spelling has characters,
        // and raw byte k of the text has the alignment of the text's byte k.
        if self.add_prefix_space && !text.text.starts_with(' ') {
            text.prepend(" ");
        }
        let mut ranges = Vec::new();
        match &self.split {
            None => ranges.push((0, text.text.len())),
            Some(p) => {
                let mut last = 0;
                p.split(&text.text, |s, e| {
                    if s > last {
                        ranges.push((last, s));
                    }
                    ranges.push((s, e));
                    last = e;
                    Ok(())
                })?;
                if last < text.text.len() {
                    ranges.push((last, text.text.len()));
                }
            }
        }
        crate::cache::with_scratch(self.cache_id, |scratch| {
            for (s, e) in ranges {
                if s == e {
                    continue;
                }
                let first = seq.ids.len();
                self.encode_piece_with(&text.text.as_bytes()[s..e], &mut seq.ids, &mut scratch.cache)?;
                let mut at = 0;
                for &id in &seq.ids[first..] {
                    let n = self.id_to_token(id).map_or(1, |t| t.chars().count());
                    spans.push((at, at + n));
                    at += n;
                }
                flush(&text, s, seq, &mut spans);
            }
            Ok(())
        })
    }

    /// Encodes text between added tokens; `at0`: it starts the input. Each pre-tokenized
    /// piece is a word (a SentencePiece model's segment is one).
    fn encode_segment(&self, segment: &str, at0: bool, seq: &mut Seq) -> Result<()> {
        if segment.is_empty() {
            return Ok(());
        }
        if let Some(sp) = &self.sentencepiece {
            sp.encode(segment, &mut seq.ids)?;
            seq.end_word();
            return Ok(());
        }
        let mut text = std::borrow::Cow::Borrowed(segment);
        // How many characters at the start of the normalized text derive from the input's
        // first character (`tokenizers`' alignments; 0 once a normalizer deleted them all).
        // Metaspace's "first" scheme prepends only while this is not 0. Counted by normalizing
        // that prefix alone (exact for the normalizers that work character by character).
        let mut lead = usize::from(at0 && self.general.is_some());
        for n in &self.norms {
            // ASCII is unchanged by every Unicode normalization form, and text below U+0300
            // (no combining marks, nothing NFC would compose or replace) by NFC. Checked on
            // the text as the previous normalizers left it.
            let ascii = text.is_ascii();
            let unchanged = match n {
                Norm::Nfc | Norm::Nfd | Norm::Nfkc | Norm::Nfkd => {
                    ascii || text.chars().all(|c| n.is_stable(c).is_some_and(|stable| stable))
                }
                Norm::StripAccents => ascii,
                _ => false,
            };
            if unchanged {
                continue;
            }
            if lead > 0 {
                let end = text.char_indices().nth(lead).map_or(text.len(), |(i, _)| i);
                let prefix = &text[..end];
                lead = match n {
                    Norm::Prepend(p) => lead + p.chars().count(),
                    Norm::Strip { left: true, .. } => prefix.trim_start().chars().count(),
                    Norm::Strip { .. } => lead,
                    // `tokenizers` records no alignment change for characters it deletes at
                    // the very start here, so what follows takes their place.
                    Norm::Precompiled(_) => n.apply(prefix, false)?.chars().count().max(1),
                    n => n.apply(prefix, false)?.chars().count(),
                };
            }
            text = std::borrow::Cow::Owned(n.apply(&text, ascii)?);
        }
        if self.add_prefix_space && !text.is_empty() && !text.starts_with(' ') {
            text = std::borrow::Cow::Owned(format!(" {text}"));
        }
        let text = &*text;
        if let Some(g) = &self.general {
            if text.is_empty() && !g.has_steps() {
                // With no pre-tokenizer, `tokenizers` keeps the empty piece: a word.
                seq.end_word();
                return Ok(());
            }
            return g.pieces(text, lead, |piece| {
                g.words(piece, |w| self.cached(w.as_bytes(), &mut seq.ids, |out| g.encode_piece(w, out)))?;
                seq.end_word();
                Ok(())
            });
        }
        if let Some(wp) = &self.wordpiece {
            return crate::cache::with_scratch(self.cache_id, |scratch| {
                for_each_word(text, wp.split, |w| {
                    Self::piece_cached(&mut scratch.cache, w.as_bytes(), &mut seq.ids, |out| {
                        wp.encode_word(w, out, None);
                        Ok(())
                    })?;
                    seq.end_word();
                    Ok(())
                })
            });
        }
        crate::cache::with_scratch(self.cache_id, |scratch| self.encode_pieces(text, seq, &mut scratch.cache))
    }

    /// The byte-level model's part of `encode_segment`: pre-tokenize `text`, encode each piece.
    fn encode_pieces(&self, text: &str, seq: &mut Seq, cache: &mut PieceCache) -> Result<()> {
        let bytes = text.as_bytes();
        match &self.split {
            None if text.is_empty() => Ok(()),
            None => self.encode_word(bytes, seq, cache),
            Some(p) => {
                // Behaviour `Isolated`: the matches and the text between them are all pieces.
                // (The hand-written splitters' pieces tile the text: no gaps.)
                let mut last = 0;
                p.split_batched(text, |s, e| {
                    if s > last {
                        self.encode_word(&bytes[last..s], seq, cache)?;
                    }
                    last = e;
                    // The one call site of the inlined hit path.
                    self.encode_piece_with(&bytes[s..e], &mut seq.ids, cache)?;
                    seq.end_word();
                    Ok(())
                })?;
                if last < text.len() {
                    self.encode_word(&bytes[last..], seq, cache)?;
                }
                Ok(())
            }
        }
    }

    /// One piece as a word of `seq`, out of line (the rare calls of `encode_pieces`).
    #[inline(never)]
    fn encode_word(&self, piece: &[u8], seq: &mut Seq, cache: &mut PieceCache) -> Result<()> {
        self.encode_piece_with(piece, &mut seq.ids, cache)?;
        seq.end_word();
        Ok(())
    }

    /// The ids of one byte-level piece, through this thread's piece cache for this tokenizer
    /// (the tiktoken engine's: `cache::with_scratch`, keyed by `cache_id`, taken once per
    /// text since taking it costs more than a look-up). Pieces of 2 to 16 bytes (nearly all)
    /// go to the short table first (one cache line holds the piece and up to three ids);
    /// then, with `ignore_merges`, the whole piece in the vocabulary; then the general table
    /// (up to 256 bytes) or the long one (up to 64 KiB); then the merge. Exact: every entry is
    /// what the look-ups after it gave for the same bytes. (A callgrind estimate with a
    /// simulated 1 MiB L2 had the short table making things worse; on this machine's 2 MiB L2
    /// it made warm Llama 3 English 49 → 82 MB/s.)
    ///
    /// The single byte and the short-table hit are inlined into the caller's loop; the rest is
    /// out of line ([`Self::encode_piece_miss`]), as in the engine's `bpe::encode_piece`.
    #[inline(always)]
    fn encode_piece_with(&self, piece: &[u8], out: &mut Vec<Rank>, cache: &mut PieceCache) -> Result<()> {
        if let [b] = *piece {
            out.push(self.byte_id(b, 0)?);
            return Ok(());
        }
        let k = ShortKey::of(piece);
        if let Some(k) = &k {
            if let Some(ids) = cache.short().get(k) {
                // At most `SHORT_IDS` ids: pushed one by one, which is cheaper than a copy call.
                for &id in ids {
                    out.push(id);
                }
                return Ok(());
            }
        }
        self.encode_piece_miss(piece, k, out, cache)
    }

    /// [`Self::encode_piece_with`] after the short table missed (`k`: the piece's short key,
    /// if it has one): the whole-piece look-up, then the general or long table, then the merge.
    #[inline(never)]
    fn encode_piece_miss(
        &self,
        piece: &[u8],
        k: Option<ShortKey>,
        out: &mut Vec<Rank>,
        cache: &mut PieceCache,
    ) -> Result<()> {
        if self.ignore_merges {
            let hit = match (&self.whole, &k) {
                (Some(whole), Some(k)) => whole.rank_hashed(piece, k.w0, k.h),
                (Some(whole), None) => whole.rank(piece),
                (None, _) => self.vocab.get(piece).copied(),
            };
            if let Some(id) = hit {
                out.push(id);
                if let Some(k) = &k {
                    cache.short().put(k, &[id]);
                }
                return Ok(());
            }
        }
        Self::general_cached(cache, piece, k, out, |out| self.merge_piece(piece, out))
    }

    /// The ids of `key` from the piece cache's general or long table (`k`: its short-table key,
    /// if it has one and the short table missed), else from `compute`, then stored: in the
    /// short table if it has a key and at most `SHORT_IDS` ids, else in the general or long one
    /// (pieces over `LONG_PIECE` bytes are not stored).
    #[inline]
    fn general_cached(
        cache: &mut PieceCache,
        key: &[u8],
        k: Option<ShortKey>,
        out: &mut Vec<Rank>,
        compute: impl FnOnce(&mut Vec<Rank>) -> Result<()>,
    ) -> Result<()> {
        if key.len() > LONG_PIECE {
            return compute(out);
        }
        let h = k.as_ref().map_or_else(|| table::hash(table::head(key), key), |k| k.h);
        if let Some(ids) = cache.get(key, h) {
            out.extend_from_slice(ids);
            return Ok(());
        }
        let start = out.len();
        compute(out)?;
        let ids = &out[start..];
        match &k {
            Some(k) if ids.len() <= SHORT_IDS => cache.short().put(k, ids),
            _ => cache.put(key, h, ids),
        }
        Ok(())
    }

    /// The ids of `key` from the piece cache (short table, then general or long), else from
    /// `compute`, then stored (see [`Self::general_cached`]).
    #[inline]
    fn piece_cached(
        cache: &mut PieceCache,
        key: &[u8],
        out: &mut Vec<Rank>,
        compute: impl FnOnce(&mut Vec<Rank>) -> Result<()>,
    ) -> Result<()> {
        let k = ShortKey::of(key);
        if let Some(k) = &k {
            if let Some(ids) = cache.short().get(k) {
                for &id in ids {
                    out.push(id);
                }
                return Ok(());
            }
        }
        Self::general_cached(cache, key, k, out, compute)
    }

    /// The ids of `key` from the per-thread cache, or from `compute` (then cached).
    fn cached(
        &self,
        key: &[u8],
        out: &mut Vec<Rank>,
        compute: impl FnOnce(&mut Vec<Rank>) -> Result<()>,
    ) -> Result<()> {
        if key.len() > CACHE_MAX_PIECE {
            return compute(out);
        }
        let hit = PIECES.with(|c| {
            c.try_borrow_mut().is_ok_and(|mut c| c.lookup(self.cache_id, key, |ids| out.extend_from_slice(ids)))
        });
        if hit {
            return Ok(());
        }
        let start = out.len();
        compute(out)?;
        PIECES.with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.insert(self.cache_id, key.into(), out[start..].into());
            }
        });
        Ok(())
    }

    /// The id of byte `b` (at `offset` in its piece, for the error). A `match`, not `ok_or`: the
    /// error built and dropped on every byte cost 2.4% of a Llama 3 English encode (callgrind).
    #[inline(always)]
    fn byte_id(&self, b: u8, offset: usize) -> Result<Rank> {
        match self.byte_ids[usize::from(b)] {
            Some(id) => Ok(id),
            None => Err(Error::Unencodable { byte: b, offset }),
        }
    }

    /// The merge of one piece of raw bytes (see the module notes).
    fn merge_piece(&self, piece: &[u8], out: &mut Vec<Rank>) -> Result<()> {
        let mut ids = Vec::with_capacity(piece.len());
        for (i, &b) in piece.iter().enumerate() {
            ids.push(self.byte_id(b, i)?);
        }
        general::merge_word(&self.merges, &mut ids);
        out.extend_from_slice(&ids);
        Ok(())
    }

    /// The text of `ids` (the ByteLevel decoder: token bytes joined, invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[Rank], skip_special_tokens: bool) -> Result<String> {
        if let Some(sp) = &self.sentencepiece {
            // SentencePiece's own rule: control pieces never show.
            return sp.decode(ids);
        }
        if let Some(g) = &self.general {
            let mut tokens = Vec::with_capacity(ids.len());
            for &id in ids {
                let t = self.id_to_token(id).ok_or_else(|| Error::InvalidToken(u64::from(id)))?;
                if !(skip_special_tokens && self.special.get(id as usize).copied().unwrap_or(false)) {
                    tokens.push(t.to_owned());
                }
            }
            return g.decode(tokens);
        }
        if let Some(wp) = &self.wordpiece {
            let mut tokens = Vec::with_capacity(ids.len());
            for &id in ids {
                let t = self.id_to_token(id).ok_or_else(|| Error::InvalidToken(u64::from(id)))?;
                if !(skip_special_tokens && self.special.get(id as usize).copied().unwrap_or(false)) {
                    tokens.push(t);
                }
            }
            let Some(cleanup) = wp.decoder_cleanup else { return Ok(tokens.join(" ")) };
            // The WordPiece decoder: glue continuations, space the rest, tidy each token.
            let mut out = String::new();
            for (i, t) in tokens.into_iter().enumerate() {
                let mut piece = match t.strip_prefix(wp.prefix.as_str()) {
                    Some(rest) if i > 0 => rest.to_owned(),
                    _ if i > 0 => format!(" {t}"),
                    _ => t.to_owned(),
                };
                if cleanup {
                    piece = wordpiece_cleanup(piece);
                }
                out.push_str(&piece);
            }
            return Ok(out);
        }
        let mut bytes = Vec::new();
        for &id in ids {
            let b = self
                .decode_bytes
                .get(id as usize)
                .and_then(Option::as_ref)
                .ok_or_else(|| Error::InvalidToken(u64::from(id)))?;
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
        "StripAccents" => vec![Norm::StripAccents],
        "BertNormalizer" => {
            let lowercase = n.get("lowercase").and_then(Value::as_bool).unwrap_or(true);
            vec![Norm::Bert {
                clean_text: n.get("clean_text").and_then(Value::as_bool).unwrap_or(true),
                chinese: n.get("handle_chinese_chars").and_then(Value::as_bool).unwrap_or(true),
                // `null` follows `lowercase`, as in BERT.
                strip_accents: n.get("strip_accents").and_then(Value::as_bool).unwrap_or(lowercase),
                lowercase,
            }]
        }
        "Strip" => vec![Norm::Strip {
            left: n.get("strip_left").and_then(Value::as_bool).unwrap_or(true),
            right: n.get("strip_right").and_then(Value::as_bool).unwrap_or(true),
        }],
        "Replace" => {
            let pattern = Pattern::parse(cx, n.get("pattern"), &format!("{path}.pattern"))?;
            let content = n.get("content").and_then(Value::as_str).ok_or_else(|| cx.bad(path, "no content"))?;
            vec![Norm::Replace(Box::new((pattern, content.to_owned())))]
        }
        "Prepend" => {
            let p = n.get("prepend").and_then(Value::as_str).ok_or_else(|| cx.bad(path, "no prepend"))?;
            vec![Norm::Prepend(p.to_owned())]
        }
        "Precompiled" => {
            use base64::Engine;
            let blob = match get(n, "precompiled_charsmap").and_then(Value::as_str) {
                None | Some("") => return Ok(Vec::new()),
                Some(b64) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| cx.bad(path, format!("precompiled_charsmap is not base64: {e}")))?,
            };
            let map = CharsMap::parse(&blob).map_err(|e| cx.bad(path, e))?;
            vec![Norm::Precompiled(std::sync::Arc::new(Precompiled::new(map)))]
        }
        "ByteLevel" => vec![Norm::ByteLevel],
        "Nmt" => vec![Norm::Nmt],
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

/// The WordPiece decoder's `cleanup` replacements, in `tokenizers`' order.
const WORDPIECE_CLEANUP: [(&str, &str); 11] = [
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" do not", " don't"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
];

/// The WordPiece decoder's `cleanup`.
fn wordpiece_cleanup(mut s: String) -> String {
    for (from, to) in WORDPIECE_CLEANUP {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    s
}

/// One entry of `merges`: `"a b"` or `["a", "b"]`.
fn merge_pair<'v>(cx: &Ctx<'_>, m: &'v Value, path: &dyn Fn() -> String) -> Result<(&'v str, &'v str)> {
    Ok(match m {
        Value::String(s) => s.split_once(' ').ok_or_else(|| cx.bad(&path(), "expected \"a b\""))?,
        Value::Array(p) if p.len() == 2 => (
            p[0].as_str().ok_or_else(|| cx.bad(&path(), "not a string"))?,
            p[1].as_str().ok_or_else(|| cx.bad(&path(), "not a string"))?,
        ),
        _ => return Err(cx.bad(&path(), "expected \"a b\" or [a, b]")),
    })
}

impl WordPiece {
    /// The model's options, over `vocab` (the pre-tokenizer and decoder are the caller's).
    fn parse(cx: &Ctx<'_>, model: &Value, vocab: FxHashMap<String, Rank>) -> Result<Self> {
        let unk_token = get(model, "unk_token").and_then(Value::as_str).unwrap_or("[UNK]");
        let unk = *vocab
            .get(unk_token)
            .ok_or_else(|| cx.bad("$.model.unk_token", format!("{unk_token:?} is not in the vocabulary")))?;
        let prefix = get(model, "continuing_subword_prefix").and_then(Value::as_str).unwrap_or("##").to_owned();
        let max_chars = get(model, "max_input_chars_per_word").and_then(Value::as_u64).map_or(100, |m| m as usize);
        let tables = Self::tables(&vocab, &prefix);
        Ok(Self { vocab, unk, prefix, max_chars, split: WordSplit::WhitespaceSplit, decoder_cleanup: None, tables })
    }

    /// `starts` and `conts` (see the field), or `None`. Empty strings are left out: a probe is
    /// never empty.
    fn tables(vocab: &FxHashMap<String, Rank>, prefix: &str) -> Option<Box<(Vocab, Vocab)>> {
        let starts = vocab.iter().filter(|(t, _)| !t.is_empty()).map(|(t, &id)| (t.as_bytes().to_vec(), id)).collect();
        let conts = vocab
            .iter()
            .filter_map(|(t, &id)| Some((t.strip_prefix(prefix).filter(|c| !c.is_empty())?.as_bytes().to_vec(), id)))
            .collect();
        Some(Box::new((Vocab::from_pairs(starts).ok()?, Vocab::from_pairs(conts).ok()?)))
    }

    /// The id of `word[start..end]`, with `prefix` before it unless `start` is 0.
    #[inline]
    fn probe(&self, word: &str, start: usize, end: usize, key: &mut String) -> Option<Rank> {
        if let Some(t) = &self.tables {
            let table = if start == 0 { &t.0 } else { &t.1 };
            return table.rank(&word.as_bytes()[start..end]);
        }
        key.clear();
        if start > 0 {
            key.push_str(&self.prefix);
        }
        key.push_str(&word[start..end]);
        self.vocab.get(key.as_str()).copied()
    }

    /// Greedy longest-match-first; a word that cannot be covered, or is longer than
    /// `max_chars` characters, is the unknown token. With `spans`, each token's byte range in
    /// the word (the unknown token's is the whole word).
    fn encode_word(&self, word: &str, out: &mut Vec<Rank>, mut spans: Option<&mut Vec<(usize, usize)>>) {
        let mark = out.len();
        let span_mark = spans.as_ref().map_or(0, |s| s.len());
        let unknown = |out: &mut Vec<Rank>, spans: Option<&mut Vec<(usize, usize)>>| {
            out.truncate(mark);
            out.push(self.unk);
            if let Some(s) = spans {
                s.truncate(span_mark);
                s.push((0, word.len()));
            }
        };
        if word.chars().count() > self.max_chars {
            return unknown(out, spans);
        }
        let mut start = 0;
        let mut key = String::new();
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                if let Some(id) = self.probe(word, start, end, &mut key) {
                    found = Some(id);
                    break;
                }
                end = word[..end].char_indices().next_back().map_or(start, |(i, _)| i);
            }
            let Some(id) = found else {
                return unknown(out, spans);
            };
            out.push(id);
            if let Some(s) = spans.as_deref_mut() {
                s.push((start, end));
            }
            start = end;
        }
    }
}

type VocabMaps = (Vec<Option<String>>, FxHashMap<String, Rank>);

/// A model's `vocab` object: token strings by id, and ids by token string.
fn parse_vocab(cx: &Ctx<'_>, vocab_json: &serde_json::Map<String, Value>) -> Result<VocabMaps> {
    let mut id_to_token: Vec<Option<String>> = Vec::with_capacity(vocab_json.len());
    let mut token_to_id = FxHashMap::with_capacity_and_hasher(vocab_json.len(), Default::default());
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
    }
    Ok((id_to_token, token_to_id))
}

type AddedParts = (Vec<Added>, Vec<bool>, Option<AhoCorasick>);

/// The added tokens: registered in the id maps, flagged special, and a matcher over them.
fn parse_added(
    cx: &Ctx<'_>,
    root: &Value,
    has_normalizer: bool,
    id_to_token: &mut Vec<Option<String>>,
    token_to_id: &mut FxHashMap<String, Rank>,
) -> Result<AddedParts> {
    let mut added: Vec<Added> = Vec::new();
    // `tokenizers` does not take the ids in the file: a token of the model's vocabulary keeps
    // the model's id, and the others are numbered after the vocabulary in order.
    let model_size = token_to_id.len() as Rank;
    if let Some(list) = get(root, "added_tokens").and_then(Value::as_array) {
        for (i, t) in list.iter().enumerate() {
            let path = format!("$.added_tokens[{i}]");
            let content = t.get("content").and_then(Value::as_str).ok_or_else(|| cx.bad(&path, "no content"))?;
            t.get("id").and_then(Value::as_u64).ok_or_else(|| cx.bad(&path, "no id"))?;
            let id = match added.iter().find(|a| a.content == content) {
                Some(a) => a.id,
                None => match token_to_id.get(content) {
                    Some(&id) => id,
                    None => match added.iter().map(|a| a.id).max() {
                        Some(max) if max >= model_size || model_size == 0 => max + 1,
                        _ => model_size,
                    },
                },
            };
            for flag in ["single_word", "lstrip", "rstrip"] {
                if cx.flag(t, flag) {
                    return Err(cx.unsupported(format!("added token {content:?} with {flag}")));
                }
            }
            if cx.flag(t, "normalized") && has_normalizer {
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
        }
        if special.len() <= slot {
            special.resize(slot + 1, false);
        }
        id_to_token[slot] = Some(a.content.clone());
        token_to_id.insert(a.content.clone(), a.id);
        special[slot] = a.special;
    }
    // `skip_special_tokens` goes by a token's text: a model id spelled as a special added
    // token is skipped too, as in `tokenizers`.
    let special_texts: rustc_hash::FxHashSet<&str> =
        added.iter().filter(|a| a.special).map(|a| a.content.as_str()).collect();
    if !special_texts.is_empty() {
        for (slot, t) in id_to_token.iter().enumerate() {
            if t.as_deref().is_some_and(|t| special_texts.contains(t)) {
                special[slot] = true;
            }
        }
    }
    let matcher = if added.is_empty() {
        None
    } else {
        Some(
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(added.iter().map(|a| a.content.as_str()))
                .map_err(|e| cx.bad("$.added_tokens", e.to_string()))?,
        )
    };
    Ok((added, special, matcher))
}

/// A property of the characters below U+10000, as a bitmap filled 64 characters at a time as
/// text needs them (computing it for the whole plane up front would cost milliseconds on a
/// first call). Characters above the plane are tested directly.
struct LazyBmpBits {
    /// `bits[b]`: the characters of 64b..64b+63 that have the property, valid once bit b of
    /// `done` is set. Filling a block is idempotent (every thread computes the same word), and
    /// the bits are stored before the flag (Release) and read after it (Acquire).
    bits: [std::sync::atomic::AtomicU64; 1 << 10],
    done: [std::sync::atomic::AtomicU64; 1 << 4],
    test: fn(char) -> bool,
}

impl LazyBmpBits {
    const fn new(test: fn(char) -> bool) -> Self {
        use std::sync::atomic::AtomicU64;
        Self { bits: [const { AtomicU64::new(0) }; 1 << 10], done: [const { AtomicU64::new(0) }; 1 << 4], test }
    }

    #[inline]
    fn get(&self, c: char) -> bool {
        use std::sync::atomic::Ordering;
        let u = c as usize;
        let Some(word) = self.bits.get(u >> 6) else { return (self.test)(c) };
        let block = u >> 6;
        let flag = 1u64 << (block & 63);
        if self.done[block >> 6].load(Ordering::Acquire) & flag == 0 {
            let first = (block << 6) as u32;
            let bits =
                (0..64u32).filter(|k| char::from_u32(first + k).is_some_and(self.test)).fold(0u64, |w, k| w | 1 << k);
            word.store(bits, Ordering::Relaxed);
            self.done[block >> 6].fetch_or(flag, Ordering::Release);
        }
        word.load(Ordering::Relaxed) >> (u & 63) & 1 != 0
    }
}

/// BERT's punctuation: ASCII punctuation and the Unicode punctuation categories (the category
/// look-up is seven binary searches, which took a sixth of a BERT encode of CJK text: a
/// [`LazyBmpBits`] below U+10000).
fn is_bert_punct(c: char) -> bool {
    static PUNCT: LazyBmpBits = LazyBmpBits::new(is_bert_punct_by_category);
    if c.is_ascii() {
        // Every ASCII character in a Unicode punctuation category is ASCII punctuation.
        return c.is_ascii_punctuation();
    }
    PUNCT.get(c)
}

/// A character that BERT's accent stripping leaves alone and that the text can be cut before:
/// NFD does not change it, it is a starter (canonical combining class 0, so canonical
/// reordering never moves anything across it) and not a nonspacing mark.
fn nfd_plain(c: char) -> bool {
    use unicode_categories::UnicodeCategories;
    let mut nfd = std::iter::once(c).nfd();
    unicode_normalization_alignments::char::canonical_combining_class(c) == 0
        && nfd.next().map(|(d, _)| d) == Some(c)
        && nfd.next().is_none()
        && !c.is_mark_nonspacing()
}

/// A character whose canonical decomposition holds only starters and nonspacing marks: accent
/// stripping keeps its starters in order and drops its marks whatever surrounds it, because
/// canonical reordering never moves a starter (and moves marks only among marks, all dropped).
/// So it can be decomposed on its own (about a fifth of the decomposer's cost: `é` runs).
fn strips_by_itself(c: char) -> bool {
    use unicode_categories::UnicodeCategories;
    use unicode_normalization_alignments::char::{canonical_combining_class, decompose_canonical};
    let mut simple = true;
    decompose_canonical(c, |d| simple &= canonical_combining_class(d) == 0 || d.is_mark_nonspacing());
    simple
}

fn lowercases_to_itself(c: char) -> bool {
    let mut l = c.to_lowercase();
    l.next() == Some(c) && l.next().is_none()
}

fn is_nonspacing_mark(c: char) -> bool {
    unicode_categories::UnicodeCategories::is_mark_nonspacing(c)
}

/// What BERT's `clean_text` deletes: U+FFFD and the "other" categories (controls, format
/// characters, surrogates, private use, unassigned).
fn bert_deletes(c: char) -> bool {
    use unicode_categories::UnicodeCategories;
    c == '\u{fffd}' || c.is_other()
}

fn is_bert_punct_by_category(c: char) -> bool {
    c.is_ascii_punctuation() || unicode_categories::UnicodeCategories::is_punctuation(c)
}

fn is_chinese_char(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F | 0x2B740..=0x2B81F | 0x2B920..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// BERT's normalizer as `tokenizers` implements it.
fn bert_normalize(text: &str, clean_text: bool, chinese: bool, strip_accents: bool, lowercase: bool) -> String {
    // One pass. ASCII characters are handled inline; runs of other characters go through NFD
    // (with marks dropped) and lowercasing together. Splitting NFD at ASCII characters is exact:
    // they are starters (combining class 0), which canonical reordering never moves across.
    let mut out = String::with_capacity(text.len() + 8);
    let mut run = String::new();
    // What accent stripping (and lowercasing) makes of a `strips_by_itself` character, by the
    // character (direct-mapped; `\0`, never in a run, marks an empty slot): the decomposition
    // table, the mark test and lowercasing, once per distinct character instead of per
    // occurrence.
    let mut memo = [('\0', [0u8; 7], 0u8); 64];
    let mut flush = |run: &mut String, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let lower = |c: char, out: &mut String| {
            // Most characters outside Latin, Greek and Cyrillic have no lowercase mapping; a
            // bitmap says so without the case table's binary search.
            static UNCASED: LazyBmpBits = LazyBmpBits::new(lowercases_to_itself);
            if lowercase && !UNCASED.get(c) {
                out.extend(c.to_lowercase());
            } else {
                out.push(c);
            }
        };
        if strip_accents {
            // Cut before each `nfd_plain` character (kana, Hangul jamo, most letters of most
            // scripts): it is copied, and only what lies between such characters goes
            // through the decomposer (which cost about 60 instructions a character).
            static PLAIN: LazyBmpBits = LazyBmpBits::new(nfd_plain);
            static SIMPLE: LazyBmpBits = LazyBmpBits::new(strips_by_itself);
            // Mn is a binary search over the category table: a bitmap below U+10000.
            static MARK: LazyBmpBits = LazyBmpBits::new(is_nonspacing_mark);
            let mut rest = run.as_str();
            while !rest.is_empty() {
                let cut = rest.char_indices().find(|&(_, c)| PLAIN.get(c)).map_or(rest.len(), |(i, _)| i);
                let part = &rest[..cut];
                if part.chars().all(|c| SIMPLE.get(c)) {
                    // Each character's own decomposition, marks dropped: canonical reordering
                    // moves only characters of combining class > 0, and these are all dropped.
                    for c in part.chars() {
                        let slot = &mut memo[c as usize % 64];
                        if slot.0 != c {
                            let mut stripped = String::new();
                            unicode_normalization_alignments::char::decompose_canonical(c, |d| {
                                if !MARK.get(d) {
                                    lower(d, &mut stripped);
                                }
                            });
                            let (Ok(n), Some(room)) = (u8::try_from(stripped.len()), slot.1.get_mut(..stripped.len()))
                            else {
                                out.push_str(&stripped);
                                continue;
                            };
                            room.copy_from_slice(stripped.as_bytes());
                            *slot = (c, slot.1, n);
                        }
                        // The slot holds the UTF-8 of a whole string.
                        out.push_str(std::str::from_utf8(&slot.1[..usize::from(slot.2)]).unwrap_or_default());
                    }
                } else {
                    for (c, _) in part.nfd() {
                        if !MARK.get(c) {
                            lower(c, out);
                        }
                    }
                }
                rest = &rest[cut..];
                let end = rest.char_indices().find(|&(_, c)| !PLAIN.get(c)).map_or(rest.len(), |(i, _)| i);
                rest[..end].chars().for_each(|c| lower(c, out));
                rest = &rest[end..];
            }
        } else {
            run.chars().for_each(|c| lower(c, out));
        }
        run.clear();
    };
    // ASCII runs go byte by byte through a table: the output byte, or `DELETE`. Controls
    // other than \t \n \r (Cc, "other") are deleted, then whitespace is a space. (Decoding
    // and pushing char by char took about 40% of a BERT encode; callgrind.)
    const DELETE: u8 = 0xFF;
    let mut map = [0u8; 128];
    for (b, m) in (0u8..).zip(map.iter_mut()) {
        *m = match b {
            b'\t' | b'\n' | b'\r' if clean_text => b' ',
            0..=0x1f | 0x7f if clean_text => DELETE,
            b if lowercase => b.to_ascii_lowercase(),
            b => b,
        };
    }
    let bytes = text.as_bytes();
    let mut ascii = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let n = bytes[i..].iter().position(|&b| b >= 0x80).unwrap_or(bytes.len() - i);
        if n > 0 {
            flush(&mut run, &mut out);
            ascii.clear();
            ascii.extend(bytes[i..i + n].iter().map(|&b| map[usize::from(b)]).filter(|&m| m != DELETE));
            // Every byte kept is below 0x80 (the table maps ASCII to ASCII), so this is UTF-8.
            out.push_str(std::str::from_utf8(&ascii).unwrap_or_default());
            i += n;
            continue;
        }
        // `i` starts a character: the text before it ended with a whole character.
        let Some(c) = text[i..].chars().next() else { break };
        i += c.len_utf8();
        if clean_text {
            // The category look-up is several binary searches: a bitmap below U+10000.
            static DELETES: LazyBmpBits = LazyBmpBits::new(bert_deletes);
            if DELETES.get(c) {
                continue;
            }
            if c.is_whitespace() {
                flush(&mut run, &mut out);
                out.push(' ');
                continue;
            }
        }
        if chinese && is_chinese_char(c) {
            flush(&mut run, &mut out);
            out.push(' ');
            if cjk_ideograph(c) {
                // NFD leaves it alone (`stable_decomposed`), it is no mark and has no case:
                // copied, not run through the decomposer (half of a BERT encode of CJK text).
                out.push(c);
            } else {
                // Compatibility ideographs decompose (U+F900 to U+8C48): the general way.
                run.push(c);
                flush(&mut run, &mut out);
            }
            out.push(' ');
        } else {
            run.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// BERT's normalizer straight from `tokenizers`' definition, one step over the whole text
/// at a time: the oracle of [`bert_normalize`].
#[cfg(test)]
fn bert_normalize_reference(
    text: &str,
    clean_text: bool,
    chinese: bool,
    strip_accents: bool,
    lowercase: bool,
) -> String {
    use unicode_categories::UnicodeCategories;
    let control = |c: char| !matches!(c, '\t' | '\n' | '\r') && c.is_other();
    let mut s: String = if clean_text {
        text.chars()
            .filter(|&c| !(c == '\0' || c == '\u{fffd}' || control(c)))
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect()
    } else {
        text.to_owned()
    };
    if chinese {
        s = s.chars().flat_map(|c| if is_chinese_char(c) { vec![' ', c, ' '] } else { vec![c] }).collect();
    }
    if strip_accents {
        s = s.nfd().map(|(c, _)| c).filter(|c| !c.is_mark_nonspacing()).collect();
    }
    if lowercase {
        s = s.chars().flat_map(char::to_lowercase).collect();
    }
    s
}

/// Characters that a normalization form leaves alone and that nothing before them can
/// combine with: each is unchanged by the form, a starter (canonical combining class 0) and
/// quick-check "yes", so never the second character of a composition (checked on every one of
/// them against the normalization crate's own tables by a test). The text can be cut before
/// any of them. Below U+0300 for NFC, ASCII for the others, plus the CJK ideographs (and,
/// for the composed forms, the Hangul syllables), so that CJK text is not decomposed and
/// recomposed character by character.
fn cjk_ideograph(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}')
}

fn hangul_syllable(c: char) -> bool {
    matches!(c, '\u{AC00}'..='\u{D7A3}')
}

fn stable_nfc(c: char) -> bool {
    c < '\u{300}' || cjk_ideograph(c) || hangul_syllable(c)
}

fn stable_nfkc(c: char) -> bool {
    c.is_ascii() || cjk_ideograph(c) || hangul_syllable(c)
}

fn stable_decomposed(c: char) -> bool {
    c.is_ascii() || cjk_ideograph(c)
}

/// A Unicode normalization form applied only where it can change something: the text is
/// cut before each `stable` character (see above), so normalizing the pieces gives the same
/// text as normalizing the whole. Each maximal run of other characters is normalized
/// together with the character before it (a starter that the run's marks may compose with);
/// everything else is copied. Mostly-ASCII text with a few curly quotes or accents, and CJK
/// text, then cost a scan instead of a decompose-and-recompose of every character.
fn by_regions(text: &str, stable: fn(char) -> bool, form: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut copied = 0;
    let mut last_stable = None;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if stable(c) {
            last_stable = Some(i);
            continue;
        }
        let start = last_stable.unwrap_or(i).max(copied);
        let mut end = text.len();
        for (j, d) in chars.by_ref() {
            if stable(d) {
                end = j;
                last_stable = Some(j);
                break;
            }
        }
        out.push_str(&text[copied..start]);
        out.push_str(&form(&text[start..end]));
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

impl Norm {
    /// For the four Unicode forms, whether `c` is one they leave alone and can cut before.
    fn is_stable(&self, c: char) -> Option<bool> {
        match self {
            Norm::Nfc => Some(stable_nfc(c)),
            Norm::Nfkc => Some(stable_nfkc(c)),
            Norm::Nfd | Norm::Nfkd => Some(stable_decomposed(c)),
            _ => None,
        }
    }

    /// `text` normalized (`ascii`: the text is known to be ASCII, a shortcut for Lowercase).
    fn apply(&self, text: &str, ascii: bool) -> Result<String> {
        Ok(match self {
            Norm::Nfc => by_regions(text, stable_nfc, |s| s.nfc().map(|(c, _)| c).collect()),
            Norm::Nfd => by_regions(text, stable_decomposed, |s| s.nfd().map(|(c, _)| c).collect()),
            Norm::Nfkc => by_regions(text, stable_nfkc, |s| s.nfkc().map(|(c, _)| c).collect()),
            Norm::Nfkd => by_regions(text, stable_decomposed, |s| s.nfkd().map(|(c, _)| c).collect()),
            // Character by character, as `tokenizers` does (no final-sigma rule).
            Norm::Lowercase if ascii => text.to_ascii_lowercase(),
            Norm::Lowercase => text.chars().flat_map(char::to_lowercase).collect(),
            // Every combining mark (Mn, Mc, Me), by the same table as `tokenizers`.
            Norm::StripAccents => {
                text.chars().filter(|&c| !unicode_normalization_alignments::char::is_combining_mark(c)).collect()
            }
            &Norm::Bert { clean_text, chinese, strip_accents, lowercase } => {
                bert_normalize(text, clean_text, chinese, strip_accents, lowercase)
            }
            &Norm::Strip { left, right } => match (left, right) {
                (true, true) => text.trim(),
                (true, false) => text.trim_start(),
                (false, true) => text.trim_end(),
                (false, false) => text,
            }
            .to_owned(),
            Norm::Replace(r) => general::replace_all(&r.0, text, &r.1)?,
            // Only non-empty text gets the prefix.
            Norm::Prepend(_) if text.is_empty() => String::new(),
            Norm::Prepend(p) => format!("{p}{text}"),
            Norm::Precompiled(p) => p.normalize(text),
            Norm::ByteLevel => {
                let table = byte_to_char();
                text.bytes().map(|b| table[b as usize]).collect()
            }
            Norm::Nmt => text.chars().filter_map(nmt).collect(),
        })
    }
}

/// `tokenizers`' `Precompiled` normalizer: each extended grapheme cluster shorter than 6
/// bytes is replaced whole by the replacement of the shortest rule that is a prefix of it;
/// otherwise each character by its own rule (or kept).
#[derive(Debug)]
struct Precompiled {
    map: CharsMap,
    /// The replacement of each ASCII character alone (`None`: kept).
    ascii: Vec<Option<String>>,
}

impl Precompiled {
    fn new(map: CharsMap) -> Self {
        let ascii = (0..128u8).map(|b| map.shortest(&[b]).map(|r| String::from_utf8_lossy(r).into_owned())).collect();
        Self { map, ascii }
    }

    fn normalize(&self, text: &str) -> String {
        use unicode_segmentation::UnicodeSegmentation;
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let push = |out: &mut String, r: &[u8]| out.push_str(&String::from_utf8_lossy(r));
        // Two ASCII characters have a grapheme boundary between them, CR LF excepted: an
        // ASCII character followed by another (or the end) is a grapheme of its own. Other
        // text is segmented in runs that end at such a boundary, where segmentation restarts
        // as it would in the whole text.
        let lone_ascii = |i: usize| {
            bytes[i] < 128
                && bytes.get(i + 1).is_none_or(|&n| n < 128)
                && !(bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n'))
        };
        let mut i = 0;
        while i < bytes.len() {
            if lone_ascii(i) {
                match &self.ascii[bytes[i] as usize] {
                    Some(r) => out.push_str(r),
                    None => out.push(bytes[i] as char),
                }
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < bytes.len() && !(bytes[j - 1] < 128 && bytes[j - 1] != b'\r' && lone_ascii(j)) {
                j += 1;
            }
            for g in text[i..j].graphemes(true) {
                if g.len() < 6 {
                    if let Some(r) = self.map.shortest(g.as_bytes()) {
                        push(&mut out, r);
                        continue;
                    }
                }
                for (k, c) in g.char_indices() {
                    match self.map.shortest(&g.as_bytes()[k..k + c.len_utf8()]) {
                        Some(r) => push(&mut out, r),
                        None => out.push(c),
                    }
                }
            }
            i = j;
        }
        out
    }
}

/// The `Nmt` normalizer on one character: control characters dropped, some spaces unified.
fn nmt(c: char) -> Option<char> {
    match c as u32 {
        0x0001..=0x0008 | 0x000B | 0x000E..=0x001F | 0x007F | 0x008F | 0x009F => None,
        0x0009 | 0x000A | 0x000C | 0x000D | 0x1680 | 0x200B..=0x200F | 0x2028 | 0x2029 | 0x2581 | 0xFEFF | 0xFFFD => {
            Some(' ')
        }
        _ => Some(c),
    }
}

/// The words of a WordPiece pre-tokenizer, in order, each handed to `f`.
///
/// ASCII bytes are classified through a table (word, whitespace, punctuation: ASCII
/// punctuation is exactly `is_ascii_punctuation`, ASCII whitespace `is_ascii_whitespace` plus
/// `\x0b`, as `char::is_whitespace` has it); other characters are decoded and tested. (The
/// `split(char::is_whitespace)` and `char_indices` version decoded every character twice: a
/// fifth of a BERT encode on English text.) [`words_reference`] is the oracle of a property test.
fn for_each_word<'t>(text: &'t str, split: WordSplit, mut f: impl FnMut(&'t str) -> Result<()>) -> Result<()> {
    const WORD: u8 = 0;
    const SPACE: u8 = 1;
    const PUNCT: u8 = 2;
    const CLASS: [u8; 128] = {
        let mut t = [WORD; 128];
        let mut b = 0;
        while b < 128 {
            let c = b as u8;
            t[b] = if c.is_ascii_whitespace() || c == 0x0b {
                SPACE
            } else if c.is_ascii_punctuation() {
                PUNCT
            } else {
                WORD
            };
            b += 1;
        }
        t
    };
    let punct = matches!(split, WordSplit::Bert);
    let bytes = text.as_bytes();
    // `start`: where the current word began (None between words).
    let mut start = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (class, len) = if b < 0x80 {
            (CLASS[usize::from(b)], 1)
        } else {
            // `i` is a character boundary: every step moves by whole characters.
            let c = text[i..].chars().next().unwrap_or_default();
            let class = if c.is_whitespace() {
                SPACE
            } else if punct && is_bert_punct(c) {
                PUNCT
            } else {
                WORD
            };
            (class, c.len_utf8())
        };
        match class {
            WORD => {
                start.get_or_insert(i);
            }
            SPACE => {
                if let Some(s) = start.take() {
                    f(&text[s..i])?;
                }
            }
            _ if punct => {
                if let Some(s) = start.take() {
                    f(&text[s..i])?;
                }
                f(&text[i..i + len])?;
            }
            // ASCII punctuation without the BERT split is part of a word.
            _ => {
                start.get_or_insert(i);
            }
        }
        i += len;
    }
    if let Some(s) = start {
        f(&text[s..])?;
    }
    Ok(())
}

/// The words of a WordPiece pre-tokenizer, straight from `tokenizers`' definition: the
/// oracle of [`for_each_word`].
#[cfg(test)]
fn words_reference(text: &str, split: WordSplit) -> Vec<&str> {
    let mut out = Vec::new();
    match split {
        WordSplit::WhitespaceSplit => out.extend(text.split(char::is_whitespace).filter(|w| !w.is_empty())),
        WordSplit::Bert => {
            for w in text.split(char::is_whitespace).filter(|w| !w.is_empty()) {
                let mut start = 0;
                for (i, c) in w.char_indices() {
                    if is_bert_punct(c) {
                        if start < i {
                            out.push(&w[start..i]);
                        }
                        out.push(&w[i..i + c.len_utf8()]);
                        start = i + c.len_utf8();
                    }
                }
                if start < w.len() {
                    out.push(&w[start..]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{FxHashMap, Norm, WordPiece, WordSplit};
    use proptest::prelude::*;
    use unicode_normalization_alignments::UnicodeNormalization;

    /// Characters that stress the cut points: ASCII starters that marks compose with, marks of
    /// different combining classes (reordered), Latin-1 letters (stable for NFC, not for the
    /// compatibility forms), compatibility characters, Hangul jamo that compose into
    /// syllables, a singleton decomposition (Ångström sign) and composition exclusions.
    const CHARS: &[char] = &[
        'a',
        'e',
        'A',
        ' ',
        '\n',
        'é',
        'Å',
        '½',
        '²',
        '\u{a0}',
        'ﬁ',
        '①',
        '\u{300}',
        '\u{301}',
        '\u{323}',
        '\u{345}',
        '\u{344}',
        '\u{1100}',
        '\u{1161}',
        '\u{11a8}',
        '가',
        '각',
        '\u{212b}',
        '\u{958}',
        'ǅ',
        'ő',
        '中',
        '文',
        '\u{3400}',
        '\u{9fff}',
        'か',
        '\u{3099}',
        'ゟ',
        '\u{f900}',
        '\u{2f800}',
    ];

    /// Characters for the word scan and BERT's normalizer: every ASCII class, non-ASCII
    /// whitespace, punctuation and letters, CJK ideographs (unified, extension A and B, and
    /// compatibility ones, which decompose), marks, Hangul and characters that lowercase.
    const WORD_CHARS: &[char] = &[
        '\u{3099}',
        'が',
        'ﬁ',
        'Å',
        '\u{212b}',
        'ǅ',
        'ア',
        '\u{1100}',
        '\u{323}',
        'a',
        'Z',
        '0',
        ' ',
        '\t',
        '\n',
        '\r',
        '\x0b',
        '\x0c',
        '\x00',
        '\x7f',
        '!',
        '#',
        '\'',
        '-',
        '~',
        '\u{85}',
        '\u{a0}',
        '\u{2003}',
        '\u{3000}',
        '\u{2028}',
        '¿',
        '«',
        '。',
        '、',
        '—',
        'é',
        'É',
        'Ω',
        'İ',
        '\u{301}',
        '中',
        '文',
        '\u{3400}',
        '\u{9fff}',
        '\u{20000}',
        '\u{f900}',
        '\u{fa0e}',
        '\u{2f800}',
        '가',
        'か',
        '\u{fffd}',
        '\u{200b}',
        '😀',
        // Decompositions with a kept mark of class > 0 (a musical note and its stem, Mc 216)
        // beside ones whose marks reorder and are all dropped.
        '\u{1d15f}',
        '\u{1d165}',
        '\u{1d16d}',
        '\u{f73}',
        '\u{344}',
        '\u{1e69}',
        '\u{e000}',
    ];

    /// The lazy bitmaps agree with their tests on every character (the punctuation one through
    /// `is_bert_punct`, which also answers ASCII itself).
    #[test]
    fn lazy_bitmaps_equal_their_tests() {
        let plain = super::LazyBmpBits::new(super::nfd_plain);
        let simple = super::LazyBmpBits::new(super::strips_by_itself);
        let deletes = super::LazyBmpBits::new(super::bert_deletes);
        let marks = super::LazyBmpBits::new(super::is_nonspacing_mark);
        let uncased = super::LazyBmpBits::new(super::lowercases_to_itself);
        let (mut punct, mut plains) = (0, 0);
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            assert_eq!(super::is_bert_punct(c), super::is_bert_punct_by_category(c), "U+{:04X}", c as u32);
            assert_eq!(plain.get(c), super::nfd_plain(c), "U+{:04X}", c as u32);
            assert_eq!(simple.get(c), super::strips_by_itself(c), "U+{:04X}", c as u32);
            assert_eq!(deletes.get(c), super::bert_deletes(c), "U+{:04X}", c as u32);
            assert_eq!(marks.get(c), super::is_nonspacing_mark(c), "U+{:04X}", c as u32);
            assert_eq!(uncased.get(c), super::lowercases_to_itself(c), "U+{:04X}", c as u32);
            punct += usize::from(super::is_bert_punct(c));
            plains += usize::from(plain.get(c));
        }
        assert!(punct > 700, "{punct}");
        // Most characters are plain; Hangul syllables, precomposed Latin and marks are not.
        assert!(plains > 200_000 && !plain.get('가') && !plain.get('é') && !plain.get('\u{301}'), "{plains}");
        assert!(simple.get('é') && simple.get('가') && !simple.get('\u{1d15f}'));
        assert!(deletes.get('\u{200b}') && deletes.get('\u{fffd}') && !deletes.get('é'));
    }

    /// Every character claimed stable is unchanged by its form, a starter, and quick-check
    /// "yes" in the normalization crate's own tables (what makes cutting before it exact).
    #[test]
    fn every_stable_character_is_a_quick_check_yes_starter() {
        use unicode_normalization_alignments::{char::canonical_combining_class, is_nfc_quick, is_nfd_quick};
        use unicode_normalization_alignments::{is_nfkc_quick, is_nfkd_quick, IsNormalized};
        let mut checked = 0;
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            for n in [Norm::Nfc, Norm::Nfd, Norm::Nfkc, Norm::Nfkd] {
                if !n.is_stable(c).unwrap() {
                    continue;
                }
                checked += 1;
                let one = std::iter::once(c);
                let quick = match n {
                    Norm::Nfc => is_nfc_quick(one),
                    Norm::Nfd => is_nfd_quick(one),
                    Norm::Nfkc => is_nfkc_quick(one),
                    _ => is_nfkd_quick(one),
                };
                assert!(quick == IsNormalized::Yes, "{n:?} U+{:04X}", c as u32);
                assert_eq!(canonical_combining_class(c), 0, "U+{:04X}", c as u32);
                assert_eq!(whole(&n, &c.to_string()), c.to_string(), "{n:?} U+{:04X}", c as u32);
            }
        }
        assert!(checked > 4 * 28_000, "{checked}");
    }

    fn whole(n: &Norm, s: &str) -> String {
        match n {
            Norm::Nfc => s.nfc().map(|(c, _)| c).collect(),
            Norm::Nfd => s.nfd().map(|(c, _)| c).collect(),
            Norm::Nfkc => s.nfkc().map(|(c, _)| c).collect(),
            _ => s.nfkd().map(|(c, _)| c).collect(),
        }
    }

    /// A WordPiece model over a small vocabulary, with or without its engine tables.
    fn wordpiece(tables: bool) -> WordPiece {
        let tokens =
            ["[UNK]", "a", "ab", "abc", "b", "##b", "##bc", "##c", "##a", "c", "##", "##ab", "cab", "é", "##é"];
        let vocab: FxHashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
        let prefix = "##".to_owned();
        let tables = if tables { WordPiece::tables(&vocab, &prefix) } else { None };
        WordPiece {
            vocab,
            tables,
            unk: 0,
            prefix,
            max_chars: 100,
            split: WordSplit::WhitespaceSplit,
            decoder_cleanup: None,
        }
    }

    proptest! {
        /// The engine tables give the same pieces as the string map, spans included.
        #[test]
        fn wordpiece_tables_equal_the_string_map(picks in proptest::collection::vec(0..6usize, 1..12)) {
            let word: String = picks.iter().map(|&i| ["a", "b", "c", "é", "#", "x"][i]).collect();
            let (fast, slow) = (wordpiece(true), wordpiece(false));
            prop_assert!(fast.tables.is_some());
            let (mut a, mut b, mut sa, mut sb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            fast.encode_word(&word, &mut a, Some(&mut sa));
            slow.encode_word(&word, &mut b, Some(&mut sb));
            prop_assert_eq!(a, b, "{:?}", word);
            prop_assert_eq!(sa, sb);
        }

        /// The table-driven word scan gives `tokenizers`' words: ASCII of every class (the
        /// vertical tab is whitespace for `char::is_whitespace`, not for `u8`), non-ASCII
        /// whitespace and punctuation, and any text at all.
        #[test]
        fn word_scan_equals_the_reference(
            picks in proptest::collection::vec(0..WORD_CHARS.len(), 0..40),
            any_text in any::<String>(),
        ) {
            let picked: String = picks.iter().map(|&i| WORD_CHARS[i]).collect();
            for text in [&picked, &any_text] {
                for split in [WordSplit::Bert, WordSplit::WhitespaceSplit] {
                    let mut got = Vec::new();
                    super::for_each_word(text, split, |w| {
                        got.push(w);
                        Ok(())
                    })
                    .unwrap();
                    prop_assert_eq!(&got, &super::words_reference(text, split), "{:?} {:?}", split, text);
                }
            }
        }

        /// BERT's normalizer with its CJK shortcut equals the character-by-character one.
        #[test]
        fn bert_normalizer_equals_the_reference(
            picks in proptest::collection::vec(0..WORD_CHARS.len(), 0..40),
            flags in proptest::collection::vec(any::<bool>(), 4),
        ) {
            let text: String = picks.iter().map(|&i| WORD_CHARS[i]).collect();
            let (clean, chinese, strip, lower) = (flags[0], flags[1], flags[2], flags[3]);
            prop_assert_eq!(
                super::bert_normalize(&text, clean, chinese, strip, lower),
                super::bert_normalize_reference(&text, clean, chinese, strip, lower),
                "{:?}", text
            );
        }

        /// Normalizing only the regions that can change equals normalizing the whole text.
        #[test]
        fn normalizing_by_regions_equals_the_whole(picks in proptest::collection::vec(0..CHARS.len(), 0..40)) {
            let text: String = picks.iter().map(|&i| CHARS[i]).collect();
            for n in [Norm::Nfc, Norm::Nfd, Norm::Nfkc, Norm::Nfkd] {
                prop_assert_eq!(n.apply(&text, text.is_ascii()).unwrap(), whole(&n, &text), "{:?} on {:?}", n, text);
            }
        }
    }
}
