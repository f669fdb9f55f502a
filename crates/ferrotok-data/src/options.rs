//! What a job produces. Everything here that can change the output bytes is recorded in the
//! job's checkpoint and manifest, and a resumed run must use the same values.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The output format.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A flat token file (nanoGPT's `train.bin`), optionally with llm.c's header.
    Bin,
    /// Megatron-LM's indexed dataset: `PREFIX.bin` and `PREFIX.idx`.
    Megatron,
    /// `PREFIX.npy` (all tokens) and `PREFIX.offsets.npy` (int64 document boundaries).
    Npy,
    /// `PREFIX.parquet`: a `list<uint32>` column `ids`, plus `id` when the input has ids.
    Parquet,
}

impl Format {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "bin" => Ok(Self::Bin),
            "megatron" => Ok(Self::Megatron),
            "npy" => Ok(Self::Npy),
            "parquet" => Ok(Self::Parquet),
            _ => Err(Error::Options(format!("unknown format {s:?}; expected bin, megatron, npy or parquet"))),
        }
    }
}

/// The integer type of stored token ids.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Uint16,
    Uint32,
    Int32,
}

impl Dtype {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "uint16" => Ok(Self::Uint16),
            "uint32" => Ok(Self::Uint32),
            "int32" => Ok(Self::Int32),
            _ => Err(Error::Options(format!("unknown dtype {s:?}; expected uint16, uint32 or int32"))),
        }
    }

    pub fn width(self) -> usize {
        match self {
            Self::Uint16 => 2,
            Self::Uint32 | Self::Int32 => 4,
        }
    }

    /// The largest id this type holds.
    pub fn max_id(self) -> u64 {
        match self {
            Self::Uint16 => u64::from(u16::MAX),
            Self::Uint32 => u64::from(u32::MAX),
            Self::Int32 => i32::MAX as u64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Uint16 => "uint16",
            Self::Uint32 => "uint32",
            Self::Int32 => "int32",
        }
    }
}

/// A header in front of the tokens of a `bin` file.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Header {
    /// llm.c's 1024-byte header: 256 little-endian int32, `[20240520, version, n_tokens, 0...]`,
    /// version 1 for uint16 tokens and 2 for uint32.
    Llmc,
}

/// How input files are read.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// By extension: `.jsonl`/`.ndjson`/`.json` → jsonl, `.parquet` → parquet, else text.
    #[default]
    Auto,
    Text,
    Jsonl,
    Parquet,
}

impl InputFormat {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "text" | "txt" => Ok(Self::Text),
            "jsonl" => Ok(Self::Jsonl),
            "parquet" => Ok(Self::Parquet),
            _ => Err(Error::Options(format!("unknown input format {s:?}; expected auto, text, jsonl or parquet"))),
        }
    }
}

/// What to do with a document that cannot be read (bad UTF-8, bad JSON, a missing or non-text field).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    /// Stop with an error naming the file and the line or row.
    #[default]
    Fail,
    /// Leave the document out and count it.
    Skip,
    /// Replace bad UTF-8 with U+FFFD; documents that have no text at all are skipped and counted.
    Replace,
}

impl OnInvalid {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "fail" => Ok(Self::Fail),
            "skip" => Ok(Self::Skip),
            "replace" => Ok(Self::Replace),
            _ => Err(Error::Options(format!("unknown --on-invalid {s:?}; expected skip, replace or fail"))),
        }
    }
}

/// One of `count` deterministic parts of the input (`--shard index/count`, `index` from 0).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Parses `i/n` with `0 <= i < n`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad =
            || Error::Options(format!("bad --shard {s:?}: expected INDEX/COUNT with 0 <= INDEX < COUNT, as in 0/8"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// Everything that determines the output bytes of a job, beside the inputs and the tokenizer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    pub format: Format,
    /// Stored id type; `None`: uint16 when every id fits, else uint32 (int32 for megatron).
    pub dtype: Option<Dtype>,
    pub header: Option<Header>,
    pub input_format: InputFormat,
    /// Text files: one document per line (empty lines skipped) instead of one per file.
    pub by_line: bool,
    /// The JSONL field holding the text.
    pub field: String,
    /// The Parquet column holding the text.
    pub column: String,
    /// The JSONL field or Parquet column holding a document id (kept by the parquet format).
    pub id_field: Option<String>,
    pub append_eot: bool,
    pub prepend_bos: bool,
    /// The end-of-text token (its text or id); `None`: the tokenizer's own.
    pub eot: Option<String>,
    pub bos: Option<String>,
    /// At most this many tokens per document, separators included (the text is cut, not the separators).
    pub max_tokens_per_doc: Option<usize>,
    pub on_invalid: OnInvalid,
    pub shard: Option<Shard>,
    /// Documents are read, encoded and committed in chunks of about this many bytes of text.
    /// A chunk is the unit of progress that survives a crash, and one Parquet row group.
    pub chunk_bytes: u64,
}

/// The default chunk: large enough that syncing to disk costs nothing measurable, small
/// enough that a crash repeats at most a second or so of work.
pub const DEFAULT_CHUNK_BYTES: u64 = 8 << 20;

impl Default for Options {
    fn default() -> Self {
        Self {
            format: Format::Bin,
            dtype: None,
            header: None,
            input_format: InputFormat::Auto,
            by_line: false,
            field: "text".into(),
            column: "text".into(),
            id_field: None,
            append_eot: false,
            prepend_bos: false,
            eot: None,
            bos: None,
            max_tokens_per_doc: None,
            on_invalid: OnInvalid::Fail,
            shard: None,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }
}

/// How a job runs: none of this changes the output.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub threads: Option<usize>,
    /// Delete finished output or a previous run's state instead of refusing.
    pub overwrite: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parsing() {
        assert_eq!(Shard::parse("2/8").ok(), Some(Shard { index: 2, count: 8 }));
        for bad in ["8/8", "1/0", "x/2", "3", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_round_trip_through_json() {
        let o = Options { format: Format::Megatron, shard: Some(Shard { index: 1, count: 3 }), ..Options::default() };
        let s = serde_json::to_string(&o).unwrap_or_default();
        let back: Options = serde_json::from_str(&s).unwrap_or_default();
        assert_eq!(back, o);
    }
}
