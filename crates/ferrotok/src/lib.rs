//! ferrotok: exact, fast tokenizers for language models.
//!
//! This crate is the pure-Rust core (no Python). It loads tiktoken rank files, embeds the
//! OpenAI encodings, and encodes and decodes with results identical to tiktoken's.
//!
//! ```
//! let enc = ferrotok::registry::get("cl100k_base")?;
//! let ids = enc.encode_ordinary("hello world")?;
//! assert_eq!(ids, [15339, 1917]);
//! assert_eq!(enc.decode_bytes(&ids)?, b"hello world");
//! # Ok::<(), ferrotok::Error>(())
//! ```

pub mod bpe;
pub mod cache;
pub mod encoding;
pub mod error;
pub mod hf;
pub mod parallel;
pub mod pretokenize;
pub mod registry;
pub mod sentencepiece;
pub(crate) mod table;
pub mod vocab;

pub use encoding::{Allowed, Disallowed, Encoding};
pub use error::{Error, RankFileProblem, Result};
pub use vocab::{Rank, Vocab};
