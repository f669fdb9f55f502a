//! Which tokenizer a job uses, and its identity.
//!
//! A job names its tokenizer as an embedded encoding (`cl100k_base`), a `.tiktoken` rank file
//! (with `--pattern` naming the split pattern) or a Hugging Face `tokenizer.json` (the subset
//! `ferrotok::hf` supports). SentencePiece `.model` and WordPiece `vocab.txt` files are refused
//! with an error that says so until their loaders exist.
//! The identity recorded for resuming is a SHA-256 over everything that decides ids: the ranks,
//! the split pattern and the special tokens, or the whole `tokenizer.json`.
//!
//! Text is encoded as ordinary text: with a tiktoken encoding, special-token text is plain text;
//! with a `tokenizer.json`, as `tokenizer.encode(text, add_special_tokens=False)` (added tokens in
//! the text are matched, as `tokenizers` does; no template; the file's truncation and padding
//! are not applied — use `--max-tokens-per-doc`).

use std::path::Path;
use std::sync::Arc;

use ferrotok::hf::HfTokenizer;
use ferrotok::pretokenize::{CL100K_PATTERN, GPT2_PATTERN, LLAMA3_PATTERN, O200K_PATTERN};
use ferrotok::{Encoding, Rank, Vocab};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The tokenizer behind a job.
#[derive(Clone)]
pub enum Model {
    Tiktoken(Arc<Encoding>),
    Hf(Arc<HfTokenizer>),
}

/// A loaded tokenizer and its identity.
#[derive(Clone)]
pub struct Tokenizer {
    pub model: Model,
    pub name: String,
    /// Hex SHA-256 of what decides the ids.
    pub fingerprint: String,
}

/// What identifies a SentencePiece tokenizer: its model's bytes and its options.
pub fn sentencepiece_identity(model: &[u8], add_bos: bool, add_eos: bool) -> Vec<u8> {
    let mut v = format!("sentencepiece bos={add_bos} eos={add_eos}\0").into_bytes();
    v.extend_from_slice(model);
    v
}

/// The split pattern for a pattern family name, or the text itself as a regex.
pub fn pattern(name_or_regex: &str) -> &str {
    match name_or_regex {
        "gpt2" | "r50k" | "p50k" => GPT2_PATTERN,
        "cl100k" => CL100K_PATTERN,
        "o200k" => O200K_PATTERN,
        "llama3" => LLAMA3_PATTERN,
        other => other,
    }
}

impl Tokenizer {
    /// A `tokenizer.json` or SentencePiece tokenizer; `identity` is what it was loaded from
    /// (the JSON text, or the model's bytes with its options).
    pub fn from_hf(tokenizer: Arc<HfTokenizer>, identity: &[u8], name: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"ferrotok-hf-v1\0");
        h.update(identity);
        Self { model: Model::Hf(tokenizer), name: name.to_owned(), fingerprint: hex(&h.finalize()) }
    }

    pub fn new(encoding: Arc<Encoding>) -> Self {
        let mut h = Sha256::new();
        h.update(b"ferrotok-tiktoken-v1\0");
        h.update(encoding.vocab().to_tiktoken_bytes());
        h.update(b"\0pattern\0");
        h.update(encoding.pat_str().as_bytes());
        let mut specials = encoding.special_tokens().to_vec();
        specials.sort();
        for (text, id) in &specials {
            h.update(b"\0special\0");
            h.update(text.as_bytes());
            h.update(id.to_le_bytes());
        }
        Self { name: encoding.name().to_owned(), model: Model::Tiktoken(encoding), fingerprint: hex(&h.finalize()) }
    }

    /// Loads `spec`: an embedded encoding's name or a `.tiktoken` file. `pattern` is required
    /// for a file (a family name such as `cl100k`, or a regex); `specials` adds special tokens.
    pub fn load(spec: &str, pattern_arg: Option<&str>, specials: &[(String, Rank)]) -> Result<Self> {
        if ferrotok::registry::NAMES.contains(&spec) {
            if pattern_arg.is_some() || !specials.is_empty() {
                return Err(Error::Options(format!(
                    "{spec} is a built-in encoding: it has its own pattern and special tokens"
                )));
            }
            return Ok(Self::new(ferrotok::registry::get(spec)?));
        }
        let path = Path::new(spec);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".json") {
            if pattern_arg.is_some() || !specials.is_empty() {
                return Err(Error::Options(format!("{spec}: a tokenizer.json has its own pattern and special tokens")));
            }
            let json = std::fs::read_to_string(path).map_err(Error::io(path))?;
            let hf = HfTokenizer::from_json(&json, spec)?;
            return Ok(Self::from_hf(Arc::new(hf), json.as_bytes(), &name));
        }
        if name.ends_with(".model") {
            if pattern_arg.is_some() || !specials.is_empty() {
                return Err(Error::Options(format!("{spec}: a SentencePiece model has its own rules and pieces")));
            }
            let model = std::fs::read(path).map_err(Error::io(path))?;
            let hf = HfTokenizer::from_sentencepiece(&model, spec, false, false)?;
            return Ok(Self::from_hf(Arc::new(hf), &sentencepiece_identity(&model, false, false), &name));
        }
        if name == "vocab.txt" {
            return Err(Error::Options(format!(
                "{spec}: WordPiece vocab.txt files are not supported by the corpus job yet; use the model's \
                 tokenizer.json, a built-in encoding ({}), a .tiktoken file or a SentencePiece .model",
                ferrotok::registry::NAMES.join(", ")
            )));
        }
        if !path.exists() {
            // Not a file: most likely a misspelt encoding name.
            return Err(ferrotok::registry::get(spec)
                .err()
                .map_or_else(|| Error::Options(format!("no tokenizer {spec:?}")), Error::Tokenizer));
        }
        let pat = pattern_arg.ok_or_else(|| {
            Error::Options(format!("{spec}: a .tiktoken file needs --pattern (gpt2, cl100k, o200k, llama3 or a regex)"))
        })?;
        let reserved: Vec<Rank> = specials.iter().map(|&(_, id)| id).collect();
        let vocab = Vocab::from_tiktoken_file(path, &reserved)?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "custom".into());
        let enc = Encoding::new(stem, pattern(pat), Arc::new(vocab), specials.to_vec(), None)?;
        Ok(Self::new(Arc::new(enc)))
    }

    /// The id of a separator given as an id or a special token's text, or else the first of
    /// `defaults` that the tokenizer has.
    pub fn separator(&self, given: Option<&str>, defaults: &[&str], what: &str) -> Result<Rank> {
        if let Some(g) = given {
            if let Ok(id) = g.trim().parse::<Rank>() {
                if id > self.max_token_value() {
                    return Err(Error::Options(format!(
                        "{what} id {id} is beyond the vocabulary (largest id {})",
                        self.max_token_value()
                    )));
                }
                return Ok(id);
            }
            return self
                .token(g)
                .ok_or_else(|| Error::Options(format!("{what} {g:?} is not a token of {}", self.name)));
        }
        defaults.iter().find_map(|d| self.special(d)).ok_or_else(|| {
            Error::Options(format!(
                "{} has no {what} token ({}); name one with --{}",
                self.name,
                defaults.join(" or "),
                if what == "end-of-text" { "eot" } else { "bos" }
            ))
        })
    }
}

impl Tokenizer {
    /// The largest id.
    pub fn max_token_value(&self) -> Rank {
        match &self.model {
            Model::Tiktoken(e) => e.max_token_value(),
            Model::Hf(h) => h.max_id(),
        }
    }

    /// A special (or added) token's id by its text.
    pub fn special(&self, text: &str) -> Option<Rank> {
        match &self.model {
            Model::Tiktoken(e) => e.special_token(text),
            Model::Hf(h) => h.added_token(text),
        }
    }

    /// Any single token's id by its text.
    pub fn token(&self, text: &str) -> Option<Rank> {
        match &self.model {
            Model::Tiktoken(e) => e.special_token(text).or_else(|| e.encode_single_token(text.as_bytes()).ok()),
            Model::Hf(h) => h.token_to_id(text),
        }
    }

    /// The ids of a document (see the module notes for what "ordinary" means for each kind).
    pub fn encode(&self, text: &str) -> ferrotok::Result<Vec<Rank>> {
        match &self.model {
            Model::Tiktoken(e) => e.encode_ordinary(text),
            Model::Hf(h) => h.encode_plain(text, false),
        }
    }

    /// `encode`, using `threads` threads on this one text where that is exact.
    pub fn encode_long(&self, text: &str, threads: usize) -> ferrotok::Result<Vec<Rank>> {
        match &self.model {
            Model::Tiktoken(e) => e.encode_ordinary_parallel(text, threads),
            Model::Hf(h) => h.encode_plain(text, false),
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The defaults for `--append-eot` and `--prepend-bos`.
pub const EOT_DEFAULTS: [&str; 3] = ["<|endoftext|>", "<|end_of_text|>", "</s>"];
pub const BOS_DEFAULTS: [&str; 3] = ["<|begin_of_text|>", "<|startoftext|>", "<s>"];
