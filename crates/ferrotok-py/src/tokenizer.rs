//! `ferrotok.Tokenizer`: a Hugging Face `tokenizer.json` tokenizer (the supported subset of
//! the core's `hf` module), with the inference API of `tokenizers.Tokenizer`.

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use std::sync::RwLock;

use ferrotok::hf::{HfEncoding, HfTokenizer, LengthSettings, Padding, Part, Strategy, Truncation};
use ferrotok::{parallel, Rank};

use crate::convert::Text;
use crate::encoding::{detach, IntCache};
use crate::errors::{new_err, py_err};

/// The result of `Tokenizer.encode`: the ids and the tokens.
#[pyclass(frozen, module = "ferrotok", name = "TokenizerEncoding")]
pub struct PyTokenizerEncoding {
    enc: HfEncoding,
    tokenizer: Arc<HfTokenizer>,
    /// What `tokens` shows for padding (as `tokenizers`, the padding's token text).
    pad_token: Option<Arc<str>>,
    ints: Arc<IntCache>,
    /// What was encoded (`None` for an overflowing encoding, whose `full` is set).
    inputs: Option<Inputs>,
    /// The encoding with offsets and overflowing encodings: computed on first use, on a
    /// path of its own.
    full: std::sync::OnceLock<HfEncoding>,
}

/// An encoding's input and options (the texts are held, not copied).
struct Inputs {
    text: Input,
    pair: Option<Input>,
    add_special_tokens: bool,
    settings: LengthSettings,
}

/// One input sequence: a text, or with `is_pretokenized=True` a list of words.
enum Input {
    Text(Text),
    Words(Vec<Text>),
}

impl Input {
    fn extract(obj: &Bound<'_, PyAny>, pretokenized: bool, what: &str) -> PyResult<Self> {
        if !pretokenized {
            return Text::extract(obj, what).map(Self::Text);
        }
        if obj.is_instance_of::<pyo3::types::PyString>() {
            return Err(PyTypeError::new_err(format!(
                "{what}: with is_pretokenized=True a sequence is a list of words (str), not a str"
            )));
        }
        let items = obj
            .try_iter()
            .map_err(|_| PyTypeError::new_err(format!("{what}: with is_pretokenized=True, a list of words (str)")))?;
        let mut words = Vec::new();
        for (i, w) in items.enumerate() {
            words.push(Text::extract(&w?, &format!("{what}[{i}]"))?);
        }
        Ok(Self::Words(words))
    }

    fn size(&self) -> usize {
        match self {
            Self::Text(t) => t.as_str().len(),
            Self::Words(w) => w.iter().map(|t| t.as_str().len()).sum(),
        }
    }
}

/// Encodes a text or pair of texts, or of word lists (`offsets`: on the offsets path).
fn encode_inputs(
    tok: &HfTokenizer,
    text: &Input,
    pair: Option<&Input>,
    flags: (bool, bool),
    settings: &LengthSettings,
) -> ferrotok::Result<HfEncoding> {
    match (text, pair) {
        (Input::Text(a), None) => tok.encode_full_with(a.as_str(), None, flags, settings),
        (Input::Text(a), Some(Input::Text(b))) => tok.encode_full_with(a.as_str(), Some(b.as_str()), flags, settings),
        (Input::Words(a), b) => {
            fn words(w: &[Text]) -> Vec<&str> {
                w.iter().map(Text::as_str).collect()
            }
            let b = match b {
                Some(Input::Words(b)) => Some(words(b)),
                _ => None,
            };
            tok.encode_words_with(&words(a), b.as_deref(), flags, settings)
        }
        // Both sequences are extracted with the same `is_pretokenized`.
        (Input::Text(a), Some(Input::Words(_))) => tok.encode_full_with(a.as_str(), None, flags, settings),
    }
}

impl PyTokenizerEncoding {
    fn new(
        enc: HfEncoding,
        tokenizer: Arc<HfTokenizer>,
        pad_token: Option<Arc<str>>,
        ints: Arc<IntCache>,
        inputs: Inputs,
    ) -> Self {
        Self { enc, tokenizer, pad_token, ints, inputs: Some(inputs), full: std::sync::OnceLock::new() }
    }

    /// The full encoding (offsets, overflowing), computed once.
    fn full(&self, py: Python<'_>) -> PyResult<&HfEncoding> {
        if let Some(f) = self.full.get() {
            return Ok(f);
        }
        let computed = self.compute_full(py)?;
        Ok(self.full.get_or_init(|| computed))
    }

    /// The encoding again on the full path, padded as this one is, and checked to give the
    /// same ids.
    fn compute_full(&self, py: Python<'_>) -> PyResult<HfEncoding> {
        let Some(Inputs { text, pair, add_special_tokens, settings }) = &self.inputs else {
            return Ok(self.enc.clone());
        };
        let unpadded = LengthSettings { padding: None, ..*settings };
        let size = text.size() + pair.as_ref().map_or(0, Input::size);
        let mut full = detach(py, size, || {
            encode_inputs(&self.tokenizer, text, pair.as_ref(), (*add_special_tokens, true), &unpadded)
        })
        .map_err(py_err(py))?;
        if let Some(p) = &settings.padding {
            // The overflowing encodings are padded to the length of this one, as in `tokenizers`.
            full.pad_to(self.enc.ids.len(), p);
        }
        if full.ids != self.enc.ids || full.offsets.len() != full.ids.len() {
            return Err(new_err(
                crate::errors::encode_error(py),
                "internal error: the offsets path disagrees with the encoding's ids; please report this input".into(),
            ));
        }
        Ok(full)
    }

    /// An encoding of the overflowing part, with everything known.
    fn overflow_child(&self, enc: &HfEncoding) -> Self {
        let full = std::sync::OnceLock::new();
        let _ = full.set(enc.clone());
        Self {
            enc: enc.clone(),
            tokenizer: self.tokenizer.clone(),
            pad_token: self.pad_token.clone(),
            ints: self.ints.clone(),
            inputs: None,
            full,
        }
    }
}

#[pymethods]
impl PyTokenizerEncoding {
    /// The token ids.
    #[getter]
    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.ints.list(py, &self.enc.ids)
    }

    /// The tokens as the tokenizer file spells them.
    #[getter]
    fn tokens(&self) -> Vec<String> {
        let name = |id: Rank| self.tokenizer.id_to_token(id).unwrap_or_default().to_owned();
        let mut out = Vec::with_capacity(self.enc.ids.len());
        let mut at = 0;
        for &(part, n) in &self.enc.parts {
            let ids = &self.enc.ids[at..at + n];
            match (part, &self.pad_token) {
                (Part::Padding { .. }, Some(pad)) => out.extend(std::iter::repeat_n(pad.to_string(), n)),
                _ => out.extend(ids.iter().map(|&id| name(id))),
            }
            at += n;
        }
        out
    }

    /// Each token's (start, end) in characters of its input text, as `tokenizers` reports
    /// them; (0, 0) for the special tokens the post-processor added and for padding.
    /// Computed on first use (a second, slower pass over the input).
    #[getter]
    fn offsets(&self, py: Python<'_>) -> PyResult<Vec<(usize, usize)>> {
        Ok(self.full(py)?.offsets.clone())
    }

    /// What truncation cut off, as encodings of their own (windows of the truncated length
    /// that overlap by the truncation's stride, each with the post-processor's tokens and the
    /// padding), nested for pairs as `tokenizers` nests them. Computed on first use.
    #[getter]
    fn overflowing(&self, py: Python<'_>) -> PyResult<Vec<Self>> {
        Ok(self.full(py)?.overflowing.iter().map(|e| self.overflow_child(e)).collect())
    }

    /// 1 for every token, 0 for padding.
    #[getter]
    fn attention_mask(&self) -> Vec<u32> {
        self.enc.attention_mask()
    }

    /// The type id of each token (the template's; padding has the padding's).
    #[getter]
    fn type_ids(&self) -> Vec<u32> {
        self.enc.type_ids()
    }

    /// 1 for the special tokens the post-processor added and for padding, 0 for the rest.
    #[getter]
    fn special_tokens_mask(&self) -> Vec<u32> {
        self.enc.special_tokens_mask()
    }

    /// The input sequence each token comes from (0, or 1 in a pair), None for the special
    /// tokens the post-processor added and for padding.
    #[getter]
    fn sequence_ids(&self) -> Vec<Option<u8>> {
        self.enc.sequence_ids()
    }

    /// The word (pre-tokenized piece or added token) each token comes from, counted per
    /// input sequence; None for the special tokens the post-processor added and for padding.
    #[getter]
    fn word_ids(&self) -> Vec<Option<u32>> {
        self.enc.word_ids()
    }

    /// 1, or 2 for a pair.
    #[getter]
    fn n_sequences(&self) -> usize {
        self.enc.n_sequences
    }

    fn __len__(&self) -> usize {
        self.enc.ids.len()
    }

    fn __repr__(&self) -> String {
        format!("TokenizerEncoding(num_tokens={})", self.enc.ids.len())
    }
}

/// A tokenizer loaded from a Hugging Face `tokenizer.json` or a SentencePiece `.model`.
///
/// Immutable and safe to share between threads. Loads files built from `tokenizers`'
/// normalizers, pre-tokenizers, models (BPE,
/// WordPiece, WordLevel, Unigram), post-processors and decoders; a file that needs anything
/// else fails to load with `UnsupportedError` naming the component.
#[pyclass(frozen, module = "ferrotok", name = "Tokenizer")]
pub struct PyTokenizer {
    /// The tokenizer and what it was loaded from; `add_tokens` swaps in a new pair (calls in
    /// flight keep the one they started with).
    model: RwLock<(Arc<HfTokenizer>, Source)>,
    /// Truncation and padding (the file's until changed). Calls copy them when they start, so
    /// a change never disturbs a call in flight.
    length: RwLock<Settings>,
    /// Python ints for the ids (shared by every `ids` list this tokenizer's encodings return).
    ints: Arc<IntCache>,
}

/// Truncation and padding, and the padding's token text.
#[derive(Clone, Default)]
struct Settings {
    length: LengthSettings,
    pad_token: Option<Arc<str>>,
}

/// What a tokenizer was loaded from (kept for `to_str`, pickling and corpus-job identity).
#[derive(Clone)]
enum Source {
    Json(Arc<str>),
    SentencePiece { model: Arc<[u8]>, add_bos: bool, add_eos: bool },
}

impl PyTokenizer {
    pub fn core(&self) -> Arc<HfTokenizer> {
        self.model.read().unwrap_or_else(std::sync::PoisonError::into_inner).0.clone()
    }

    fn source(&self) -> Source {
        self.model.read().unwrap_or_else(std::sync::PoisonError::into_inner).1.clone()
    }

    /// The bytes that identify this tokenizer (its file, and its options).
    pub fn identity(&self) -> Vec<u8> {
        match &self.source() {
            Source::Json(json) => json.as_bytes().to_vec(),
            Source::SentencePiece { model, add_bos, add_eos } => {
                ferrotok_data::tokenizer::sentencepiece_identity(model, *add_bos, *add_eos)
            }
        }
    }

    /// The kind of file it came from, for messages and manifests.
    pub fn kind_name(&self) -> &'static str {
        match self.source() {
            Source::Json(_) => "tokenizer.json",
            Source::SentencePiece { .. } => "sentencepiece.model",
        }
    }
}

#[pymethods]
impl PyTokenizer {
    /// Loads a `tokenizer.json` file.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let json = std::fs::read_to_string(&path)
            .map_err(|e| new_err(crate::errors::file_error(py), format!("cannot read {}: {e}", path.display())))?;
        let name = path.display().to_string();
        Self::build(py, json, &name)
    }

    /// Parses a `tokenizer.json` given as a string.
    #[staticmethod]
    fn from_str(py: Python<'_>, json: String) -> PyResult<Self> {
        Self::build(py, json, "<tokenizer.json>")
    }

    /// Parses a `tokenizer.json` into the general pipeline, never a specialised fast path:
    /// the reference that tests check the fast paths against. Not part of the public API.
    #[staticmethod]
    fn _from_str_general(py: Python<'_>, json: String) -> PyResult<Self> {
        let inner =
            detach(py, json.len(), || HfTokenizer::from_json_general(&json, "<tokenizer.json>")).map_err(py_err(py))?;
        Ok(Self::new(inner, Source::Json(json.into())))
    }

    /// Parses a `tokenizer.json` given as bytes.
    #[staticmethod]
    fn from_buffer(py: Python<'_>, buffer: Vec<u8>) -> PyResult<Self> {
        let json = String::from_utf8(buffer)
            .map_err(|e| new_err(crate::errors::encode_error(py), format!("tokenizer.json is not UTF-8: {e}")))?;
        Self::build(py, json, "<tokenizer.json>")
    }

    /// A BERT tokenizer from a WordPiece `vocab.txt` (one token per line, ids by line), built
    /// as `tokenizers`' `BertWordPieceTokenizer` builds it: BertNormalizer, BertPreTokenizer,
    /// WordPiece, `[CLS] … [SEP]`, the WordPiece decoder; the special tokens that are in the
    /// vocabulary are added as special tokens.
    #[staticmethod]
    #[pyo3(signature = (path, /, *, lowercase = true, unk_token = "[UNK]", sep_token = "[SEP]", cls_token = "[CLS]", pad_token = "[PAD]", mask_token = "[MASK]", clean_text = true, handle_chinese_chars = true, strip_accents = None, wordpieces_prefix = "##"))]
    #[allow(clippy::too_many_arguments)]
    fn from_wordpiece_vocab(
        py: Python<'_>,
        path: std::path::PathBuf,
        lowercase: bool,
        unk_token: &str,
        sep_token: &str,
        cls_token: &str,
        pad_token: &str,
        mask_token: &str,
        clean_text: bool,
        handle_chinese_chars: bool,
        strip_accents: Option<bool>,
        wordpieces_prefix: &str,
    ) -> PyResult<Self> {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| new_err(crate::errors::file_error(py), format!("cannot read {}: {e}", path.display())))?;
        // As `tokenizers` reads it: a token per line, trailing whitespace trimmed, a later
        // duplicate taking the id.
        let mut vocab = serde_json::Map::new();
        for (id, line) in text.lines().enumerate() {
            vocab.insert(line.trim_end().to_owned(), serde_json::Value::from(id));
        }
        let id = |t: &str| vocab.get(t).and_then(serde_json::Value::as_u64);
        let added: Vec<serde_json::Value> = [unk_token, sep_token, cls_token, pad_token, mask_token]
            .iter()
            .filter_map(|&t| id(t).map(|i| (t, i)))
            .map(|(t, i)| {
                serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                                   "normalized": false, "special": true})
            })
            .collect();
        let missing = |t: &str| {
            new_err(
                crate::errors::vocab_error(py),
                format!("{}: {t:?} is not in the vocabulary (needed for [CLS] … [SEP])", path.display()),
            )
        };
        let sep = id(sep_token).ok_or_else(|| missing(sep_token))?;
        let cls = id(cls_token).ok_or_else(|| missing(cls_token))?;
        let json = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": {"type": "BertNormalizer", "clean_text": clean_text, "handle_chinese_chars": handle_chinese_chars,
                           "strip_accents": strip_accents, "lowercase": lowercase},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "BertProcessing", "sep": [sep_token, sep], "cls": [cls_token, cls]},
            "decoder": {"type": "WordPiece", "prefix": wordpieces_prefix, "cleanup": true},
            "model": {"type": "WordPiece", "unk_token": unk_token, "continuing_subword_prefix": wordpieces_prefix,
                      "max_input_chars_per_word": 100, "vocab": vocab},
        });
        Self::build(py, json.to_string(), &path.display().to_string())
    }

    /// Loads a SentencePiece `.model` file. `encode` gives the ids of
    /// `sentencepiece.SentencePieceProcessor.encode`; `add_bos`/`add_eos` add `<s>`/`</s>` when
    /// `add_special_tokens` is true.
    #[staticmethod]
    #[pyo3(signature = (path, /, *, add_bos = false, add_eos = false))]
    fn from_sentencepiece(py: Python<'_>, path: std::path::PathBuf, add_bos: bool, add_eos: bool) -> PyResult<Self> {
        let model = std::fs::read(&path)
            .map_err(|e| new_err(crate::errors::file_error(py), format!("cannot read {}: {e}", path.display())))?;
        Self::build_sentencepiece(py, model, &path.display().to_string(), add_bos, add_eos)
    }

    /// `from_sentencepiece` for a model given as bytes.
    #[staticmethod]
    #[pyo3(signature = (buffer, /, *, add_bos = false, add_eos = false))]
    fn from_sentencepiece_buffer(py: Python<'_>, buffer: Vec<u8>, add_bos: bool, add_eos: bool) -> PyResult<Self> {
        Self::build_sentencepiece(py, buffer, "<sentencepiece model>", add_bos, add_eos)
    }

    /// The `tokenizer.json` this tokenizer was loaded from.
    fn to_str(&self, py: Python<'_>) -> PyResult<String> {
        match &self.source() {
            Source::Json(json) => Ok(json.to_string()),
            Source::SentencePiece { .. } => Err(new_err(
                crate::errors::unsupported_error(py),
                "to_str: this tokenizer was loaded from a SentencePiece model, not a tokenizer.json".into(),
            )),
        }
    }

    /// Encodes one text, or a pair; `add_special_tokens` applies the post-processor's template.
    /// With `is_pretokenized=True` each sequence is a list of words, each encoded on its own.
    #[pyo3(signature = (sequence, pair = None, is_pretokenized = false, add_special_tokens = true))]
    fn encode(
        &self,
        py: Python<'_>,
        sequence: &Bound<'_, PyAny>,
        pair: Option<&Bound<'_, PyAny>>,
        is_pretokenized: bool,
        add_special_tokens: bool,
    ) -> PyResult<PyTokenizerEncoding> {
        let text = Input::extract(sequence, is_pretokenized, "sequence")?;
        let pair = pair.map(|p| Input::extract(p, is_pretokenized, "pair")).transpose()?;
        let inner = self.core();
        let Settings { length: settings, pad_token } = self.all_settings();
        let size = text.size() + pair.as_ref().map_or(0, Input::size);
        let enc =
            detach(py, size, || encode_inputs(&inner, &text, pair.as_ref(), (add_special_tokens, false), &settings))
                .map_err(py_err(py))?;
        let inputs = Inputs { text, pair, add_special_tokens, settings };
        Ok(PyTokenizerEncoding::new(enc, inner, pad_token, self.ints.clone(), inputs))
    }

    /// Encodes many texts in parallel (the GIL released).
    #[pyo3(signature = (inputs, is_pretokenized = false, add_special_tokens = true, *, num_threads = None))]
    fn encode_batch(
        &self,
        py: Python<'_>,
        inputs: &Bound<'_, PyAny>,
        is_pretokenized: bool,
        add_special_tokens: bool,
        num_threads: Option<usize>,
    ) -> PyResult<Vec<PyTokenizerEncoding>> {
        let items = batch_inputs(inputs, is_pretokenized)?;
        let inner = self.core();
        let threads = parallel::num_threads(num_threads);
        let total: usize = items.iter().map(|(a, b)| a.size() + b.as_ref().map_or(0, Input::size)).sum();
        let Settings { length: settings, pad_token } = self.all_settings();
        let all = detach(py, total, || {
            parallel::map(&items, threads, |(a, b)| {
                encode_inputs(&inner, a, b.as_ref(), (add_special_tokens, false), &settings)
            })
        });
        let mut all: Vec<HfEncoding> = all.into_iter().collect::<Result<_, _>>().map_err(py_err(py))?;
        HfTokenizer::pad_batch_with(&mut all, &settings);
        Ok(all
            .into_iter()
            .zip(items)
            .map(|(enc, (text, pair))| {
                let inputs = Inputs { text, pair, add_special_tokens, settings };
                PyTokenizerEncoding::new(enc, inner.clone(), pad_token.clone(), self.ints.clone(), inputs)
            })
            .collect())
    }

    /// The number of tokens of `sequence`, without truncation or padding.
    #[pyo3(signature = (sequence, /, *, add_special_tokens = true))]
    fn count(&self, py: Python<'_>, sequence: &Bound<'_, PyAny>, add_special_tokens: bool) -> PyResult<usize> {
        let text = Text::extract(sequence, "sequence")?;
        let inner = self.core();
        detach(py, text.as_str().len(), || inner.encode_plain(text.as_str(), add_special_tokens).map(|ids| ids.len()))
            .map_err(py_err(py))
    }

    /// The text of `ids`; special tokens left out unless `skip_special_tokens` is false.
    #[pyo3(signature = (ids, /, *, skip_special_tokens = true))]
    fn decode(&self, py: Python<'_>, ids: Vec<Rank>, skip_special_tokens: bool) -> PyResult<String> {
        self.core().decode(&ids, skip_special_tokens).map_err(py_err(py))
    }

    /// `decode` for each list of ids.
    #[pyo3(signature = (sequences, /, *, skip_special_tokens = true))]
    fn decode_batch(
        &self,
        py: Python<'_>,
        sequences: Vec<Vec<Rank>>,
        skip_special_tokens: bool,
    ) -> PyResult<Vec<String>> {
        sequences.iter().map(|ids| self.core().decode(ids, skip_special_tokens).map_err(py_err(py))).collect()
    }

    fn token_to_id(&self, token: &str) -> Option<Rank> {
        self.core().token_to_id(token)
    }

    fn id_to_token(&self, id: Rank) -> Option<String> {
        self.core().id_to_token(id).map(str::to_owned)
    }

    #[pyo3(signature = (with_added_tokens = true))]
    fn get_vocab_size(&self, with_added_tokens: bool) -> usize {
        self.core().vocab_size(with_added_tokens)
    }

    /// Token → id for every token (added tokens included when `with_added_tokens`).
    #[pyo3(signature = (with_added_tokens = true))]
    fn get_vocab<'py>(&self, py: Python<'py>, with_added_tokens: bool) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (t, id) in self.core().vocab(with_added_tokens) {
            d.set_item(t, id)?;
        }
        Ok(d)
    }

    /// Adds tokens matched in the raw text before anything else, as `tokenizers` does: a token
    /// already in the vocabulary keeps its id, a new one takes the next id. Returns how many
    /// were added (empty strings and tokens added before are skipped). Tokens added this way
    /// are normalized tokens: with a normalizer in the pipeline that raises `UnsupportedError`.
    fn add_tokens(&self, py: Python<'_>, tokens: Vec<String>) -> PyResult<usize> {
        self.add(py, tokens, false)
    }

    /// `add_tokens` for special tokens (never normalized; left out by `decode` by default).
    fn add_special_tokens(&self, py: Python<'_>, tokens: Vec<String>) -> PyResult<usize> {
        self.add(py, tokens, true)
    }

    /// Truncates every encoding to at most `max_length` ids (special tokens included), with
    /// `tokenizers`' strategies (`longest_first`, `only_first`, `only_second`), keeping the start
    /// (`direction="right"`) or the end (`"left"`). What is cut goes to `overflowing`, in
    /// windows that overlap by `stride` ids.
    #[pyo3(signature = (max_length, stride = 0, strategy = "longest_first", direction = "right"))]
    fn enable_truncation(&self, max_length: usize, stride: usize, strategy: &str, direction: &str) -> PyResult<()> {
        let added = self.core().added_tokens(false);
        let kept = max_length.saturating_sub(added);
        // `tokenizers` refuses a stride above the kept length here, and one equal to it (but for
        // 0) in `encode`, with a panic; both are refused here.
        if stride > kept || (stride == kept && kept > 0) {
            return Err(PyValueError::new_err(format!(
                "enable_truncation: stride={stride} must be less than the effective max length {} \
                 (max_length {max_length} less {added} special tokens)",
                kept
            )));
        }
        let strategy = match strategy {
            "longest_first" => Strategy::LongestFirst,
            "only_first" => Strategy::OnlyFirst,
            "only_second" => Strategy::OnlySecond,
            other => {
                return Err(PyValueError::new_err(format!(
                    "enable_truncation: strategy must be longest_first, only_first or only_second, not {other:?}"
                )))
            }
        };
        let left = direction_is_left(direction, "enable_truncation")?;
        self.update(|l| l.truncate = Some(Truncation { max_length, stride, strategy, left }));
        Ok(())
    }

    /// Turns truncation off.
    fn no_truncation(&self) {
        self.update(|l| l.truncate = None);
    }

    /// Pads every encoding (`length=None`: a batch to its longest), on the right or the left.
    /// `pad_id` defaults to the id of `pad_token` when that is a token, else 0.
    #[pyo3(signature = (direction = "right", pad_id = None, pad_type_id = 0, pad_token = "[PAD]", length = None, pad_to_multiple_of = None))]
    #[allow(clippy::too_many_arguments)]
    fn enable_padding(
        &self,
        direction: &str,
        pad_id: Option<Rank>,
        pad_type_id: u32,
        pad_token: &str,
        length: Option<usize>,
        pad_to_multiple_of: Option<usize>,
    ) -> PyResult<()> {
        let left = direction_is_left(direction, "enable_padding")?;
        let pad_id = pad_id.or_else(|| self.core().token_to_id(pad_token)).unwrap_or(0);
        let mut s = self.length.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.length.padding = Some(Padding { length, multiple_of: pad_to_multiple_of, pad_id, pad_type_id, left });
        s.pad_token = Some(pad_token.into());
        Ok(())
    }

    /// Turns padding off.
    fn no_padding(&self) {
        self.update(|l| l.padding = None);
    }

    /// The truncation settings, or None.
    #[getter]
    fn truncation<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(t) = self.settings().truncate else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("max_length", t.max_length)?;
        d.set_item("stride", t.stride)?;
        let strategy = match t.strategy {
            Strategy::LongestFirst => "longest_first",
            Strategy::OnlyFirst => "only_first",
            Strategy::OnlySecond => "only_second",
        };
        d.set_item("strategy", strategy)?;
        d.set_item("direction", if t.left { "left" } else { "right" })?;
        Ok(Some(d))
    }

    /// The padding settings, or None.
    #[getter]
    fn padding<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let s = self.all_settings();
        let Some(p) = s.length.padding else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("length", p.length)?;
        d.set_item("pad_to_multiple_of", p.multiple_of)?;
        d.set_item("pad_id", p.pad_id)?;
        let core = self.core();
        d.set_item("pad_token", s.pad_token.as_deref().or_else(|| core.id_to_token(p.pad_id)))?;
        d.set_item("pad_type_id", p.pad_type_id)?;
        d.set_item("direction", if p.left { "left" } else { "right" })?;
        Ok(Some(d))
    }

    /// Pickles by value: the source file and the current truncation and padding.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let this = slf.get();
        let Settings { length: l, pad_token } = this.all_settings();
        let truncate = l.truncate.map(|t| (t.max_length, t.strategy as u8, t.left, t.stride));
        let pad_token = pad_token.as_deref().map(str::to_owned);
        let padding = l.padding.map(|p| (p.length, p.multiple_of, p.pad_id, p.pad_type_id, p.left, pad_token));
        let (data, sp) = match &this.source() {
            Source::Json(json) => (PyBytes::new(py, json.as_bytes()), None),
            Source::SentencePiece { model, add_bos, add_eos } => (PyBytes::new(py, model), Some((*add_bos, *add_eos))),
        };
        let args = (data, sp, truncate, padding).into_pyobject(py)?;
        Ok((py.get_type::<Self>().getattr("_from_state")?, args))
    }

    /// Rebuilds a pickled tokenizer.
    #[staticmethod]
    #[allow(clippy::type_complexity)]
    fn _from_state(
        py: Python<'_>,
        data: Vec<u8>,
        sentencepiece: Option<(bool, bool)>,
        truncate: Option<(usize, u8, bool, usize)>,
        padding: Option<(Option<usize>, Option<usize>, Rank, u32, bool, Option<String>)>,
    ) -> PyResult<Self> {
        let this = match sentencepiece {
            Some((add_bos, add_eos)) => Self::build_sentencepiece(py, data, "<sentencepiece model>", add_bos, add_eos)?,
            None => Self::from_buffer(py, data)?,
        };
        let truncate = truncate.map(|(max_length, strategy, left, stride)| Truncation {
            max_length,
            stride,
            strategy: match strategy {
                1 => Strategy::OnlyFirst,
                2 => Strategy::OnlySecond,
                _ => Strategy::LongestFirst,
            },
            left,
        });
        let pad_token = padding.as_ref().and_then(|p| p.5.as_deref().map(Arc::from));
        let padding = padding.map(|(length, multiple_of, pad_id, pad_type_id, left, _)| Padding {
            length,
            multiple_of,
            pad_id,
            pad_type_id,
            left,
        });
        *this.length.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Settings { length: LengthSettings { truncate, padding }, pad_token };
        Ok(this)
    }

    fn __repr__(&self) -> String {
        format!("<Tokenizer vocab_size={}>", self.core().vocab_size(true))
    }
}

impl PyTokenizer {
    fn new(inner: HfTokenizer, source: Source) -> Self {
        let length = RwLock::new(Settings { length: inner.length(), pad_token: inner.pad_token().map(Arc::from) });
        let ints = Arc::new(IntCache::new(inner.max_id() as usize + 1));
        Self { model: RwLock::new((Arc::new(inner), source)), length, ints }
    }

    /// The current truncation and padding (a copy).
    fn settings(&self) -> LengthSettings {
        self.all_settings().length
    }

    /// The current truncation, padding and padding token (a copy).
    fn all_settings(&self) -> Settings {
        // A poisoned lock still holds valid settings (they are plain values).
        self.length.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn update(&self, change: impl FnOnce(&mut LengthSettings)) {
        change(&mut self.length.write().unwrap_or_else(std::sync::PoisonError::into_inner).length);
    }

    fn add(&self, py: Python<'_>, tokens: Vec<String>, special: bool) -> PyResult<usize> {
        let mut model = self.model.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Source::Json(json) = &model.1 else {
            return Err(new_err(
                crate::errors::unsupported_error(py),
                "adding tokens to a tokenizer loaded from a SentencePiece model".into(),
            ));
        };
        let bad = |e: String| new_err(crate::errors::vocab_error(py), e);
        let mut root: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let Some(obj) = root.as_object_mut() else { return Err(bad("tokenizer.json is not an object".into())) };
        let list = obj.entry("added_tokens").or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if list.is_null() {
            *list = serde_json::Value::Array(Vec::new());
        }
        let Some(list) = list.as_array_mut() else { return Err(bad("added_tokens is not a list".into())) };
        let core = &model.0;
        let model_size = core.vocab_size(false) as u64;
        let mut count = 0;
        for t in tokens {
            // As `tokenizers`: the same token with the same options is skipped; with other
            // options it replaces the earlier entry (keeping its id).
            let same = |a: &serde_json::Value| a.get("content").and_then(serde_json::Value::as_str) == Some(t.as_str());
            let flag = |a: &serde_json::Value, k: &str| a.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
            let identical = |a: &serde_json::Value| {
                same(a)
                    && flag(a, "special") == special
                    && flag(a, "normalized") != special
                    && !flag(a, "lstrip")
                    && !flag(a, "rstrip")
                    && !flag(a, "single_word")
            };
            if t.is_empty() || list.iter().any(identical) {
                continue;
            }
            if let Some(a) = list.iter_mut().find(|a| same(a)) {
                let id = a.get("id").cloned().unwrap_or(serde_json::Value::Null);
                *a = serde_json::json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                                        "rstrip": false, "normalized": !special, "special": special});
                count += 1;
                continue;
            }
            let id = match core.token_to_id(&t) {
                Some(id) => u64::from(id),
                None => match list.iter().filter_map(|a| a.get("id").and_then(serde_json::Value::as_u64)).max() {
                    None => model_size,
                    Some(max) if max >= model_size || model_size == 0 => max + 1,
                    Some(_) => model_size,
                },
            };
            list.push(serde_json::json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                                         "rstrip": false, "normalized": !special, "special": special}));
            count += 1;
        }
        let json = root.to_string();
        let inner = detach(py, json.len(), || HfTokenizer::from_json(&json, "<tokenizer.json>")).map_err(py_err(py))?;
        *model = (Arc::new(inner), Source::Json(json.into()));
        Ok(count)
    }

    fn build(py: Python<'_>, json: String, name: &str) -> PyResult<Self> {
        let inner = detach(py, json.len(), || HfTokenizer::from_json(&json, name)).map_err(py_err(py))?;
        Ok(Self::new(inner, Source::Json(json.into())))
    }

    fn build_sentencepiece(py: Python<'_>, model: Vec<u8>, name: &str, add_bos: bool, add_eos: bool) -> PyResult<Self> {
        let inner = detach(py, model.len(), || HfTokenizer::from_sentencepiece(&model, name, add_bos, add_eos))
            .map_err(py_err(py))?;
        Ok(Self::new(inner, Source::SentencePiece { model: model.into(), add_bos, add_eos }))
    }
}

/// "left" or "right".
fn direction_is_left(direction: &str, what: &str) -> PyResult<bool> {
    match direction {
        "left" => Ok(true),
        "right" => Ok(false),
        other => Err(PyValueError::new_err(format!("{what}: direction must be \"left\" or \"right\", not {other:?}"))),
    }
}

/// `encode_batch`'s inputs: texts or (text, pair) tuples or lists; with `pretokenized`,
/// lists of words or pairs of them.
fn batch_inputs(inputs: &Bound<'_, PyAny>, pretokenized: bool) -> PyResult<Vec<(Input, Option<Input>)>> {
    use pyo3::types::PyString;
    if inputs.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("inputs must be a list of str or of (str, str) pairs, not a single str"));
    }
    let mut out = Vec::new();
    for (i, item) in inputs.try_iter()?.enumerate() {
        let item = item?;
        if item.is_instance_of::<PyString>() {
            out.push((Input::extract(&item, pretokenized, &format!("inputs[{i}]"))?, None));
            continue;
        }
        let parts: Vec<Bound<'_, PyAny>> = item
            .try_iter()
            .and_then(|it| it.collect())
            .map_err(|_| PyTypeError::new_err(format!("inputs[{i}] must be str or a (str, str) pair")))?;
        // Pre-tokenized: a list of words is one sequence; two lists of words are a pair.
        let is_pair = !pretokenized || (parts.len() == 2 && parts.iter().all(|p| !p.is_instance_of::<PyString>()));
        if pretokenized && !is_pair {
            out.push((Input::extract(&item, true, &format!("inputs[{i}]"))?, None));
            continue;
        }
        let [a, b] = &parts[..] else {
            return Err(PyTypeError::new_err(format!("inputs[{i}]: a pair has two texts, not {}", parts.len())));
        };
        out.push((
            Input::extract(a, pretokenized, &format!("inputs[{i}][0]"))?,
            Some(Input::extract(b, pretokenized, &format!("inputs[{i}][1]"))?),
        ));
    }
    Ok(out)
}
