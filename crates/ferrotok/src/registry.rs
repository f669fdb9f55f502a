//! The built-in encodings, embedded in the binary: no download, no cache directory.
//!
//! Rank files are parsed on first use and shared: `o200k_base` and `o200k_harmony` use one
//! vocabulary in memory, as do `r50k_base`/`gpt2` and `p50k_base`/`p50k_edit`.

use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use crate::encoding::Encoding;
use crate::error::{Error, Result};
use crate::vocab::Vocab;

const RANK_FILES: [(&str, &[u8]); 4] = [
    ("r50k_base", include_bytes!("../data/r50k_base.tiktoken")),
    ("p50k_base", include_bytes!("../data/p50k_base.tiktoken")),
    ("cl100k_base", include_bytes!("../data/cl100k_base.tiktoken")),
    ("o200k_base", include_bytes!("../data/o200k_base.tiktoken")),
];

/// The names of the built-in encodings, in tiktoken's order.
pub const NAMES: [&str; 7] =
    ["gpt2", "r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base", "o200k_harmony"];

const DEFINITIONS: &str = include_str!("../data/encodings.json");

#[derive(Deserialize)]
struct Definition {
    ranks: String,
    pat_str: String,
    special_tokens: std::collections::BTreeMap<String, u32>,
    explicit_n_vocab: Option<usize>,
}

static VOCABS: [OnceLock<Arc<Vocab>>; 4] = [const { OnceLock::new() }; 4];
static ENCODINGS: [OnceLock<Arc<Encoding>>; 7] = [const { OnceLock::new() }; 7];

fn vocab(file: &str, reserved: &[u32]) -> Result<Arc<Vocab>> {
    let idx = RANK_FILES
        .iter()
        .position(|(n, _)| *n == file)
        .ok_or_else(|| Error::Vocab(format!("no embedded rank file {file}")))?;
    if let Some(v) = VOCABS[idx].get() {
        return Ok(v.clone());
    }
    let v = Arc::new(Vocab::from_tiktoken_bytes(RANK_FILES[idx].1, &format!("<embedded {file}.tiktoken>"), reserved)?);
    Ok(VOCABS[idx].get_or_init(|| v).clone())
}

fn find_definition(name: &str) -> Result<Definition> {
    let mut all: std::collections::BTreeMap<String, Definition> =
        serde_json::from_str(DEFINITIONS).map_err(|e| Error::Vocab(format!("embedded encodings.json: {e}")))?;
    all.remove(name).ok_or_else(|| unknown(name))
}

fn unknown(name: &str) -> Error {
    Error::UnknownEncoding { name: name.to_owned(), known: NAMES.join(", ") }
}

/// A built-in encoding by name, loaded on first use and shared afterwards.
pub fn get(name: &str) -> Result<Arc<Encoding>> {
    let idx = NAMES.iter().position(|n| *n == name).ok_or_else(|| unknown(name))?;
    if let Some(e) = ENCODINGS[idx].get() {
        return Ok(e.clone());
    }
    let d = find_definition(name)?;
    let reserved: Vec<u32> = d.special_tokens.values().copied().collect();
    let enc = Encoding::new(
        name,
        d.pat_str,
        vocab(&d.ranks, &reserved)?,
        d.special_tokens.into_iter().collect(),
        d.explicit_n_vocab,
    )?;
    Ok(ENCODINGS[idx].get_or_init(|| Arc::new(enc)).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_loads_with_tiktokens_sizes() {
        let expect = [
            ("gpt2", 50257),
            ("r50k_base", 50257),
            ("p50k_base", 50281),
            ("p50k_edit", 50284),
            ("cl100k_base", 100277),
            ("o200k_base", 200019),
            ("o200k_harmony", 201088),
        ];
        for (name, n_vocab) in expect {
            let e = get(name).unwrap();
            assert_eq!(e.n_vocab(), n_vocab, "{name}");
            assert!(matches!(e.pretokenizer_kind(), "fast"), "{name} should use a hand-written splitter");
        }
        assert!(matches!(get("nope"), Err(Error::UnknownEncoding { .. })));
    }

    /// A few documented examples (tiktoken's README and test suite).
    #[test]
    fn documented_examples() {
        let e = get("cl100k_base").unwrap();
        assert_eq!(e.encode_ordinary("hello world").unwrap(), vec![15339, 1917]);
        let e = get("gpt2").unwrap();
        assert_eq!(e.encode_ordinary("hello world").unwrap(), vec![31373, 995]);
        let e = get("o200k_base").unwrap();
        assert_eq!(e.encode_ordinary("hello world").unwrap(), vec![24912, 2375]);
    }
}
