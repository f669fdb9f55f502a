//! Corpus jobs for ferrotok: tokenize whole corpora into training-ready files.
//!
//! [`Job`] reads text, JSONL and Parquet inputs (optionally gzip or zstd compressed), encodes
//! them on every core, and writes nanoGPT/llm.c `bin`, Megatron-LM indexed datasets, `npy` or
//! Parquet, in input order. It checkpoints after every chunk, so an interrupted job resumes and
//! ends with output byte-identical to an uninterrupted run, and it refuses to resume when the
//! inputs, the tokenizer or the options changed. `--shard i/n` splits the inputs so that the
//! shards, concatenated, equal the single-machine output. See `docs/design.md`.
//!
//! This crate has no Python in it; the `ferrotok` command and the Python package drive it.

pub mod error;
mod fault;
pub mod input;
pub mod job;
pub mod options;
pub mod sink;
pub mod tokenizer;

pub use error::{Error, Result};
pub use fault::FAULT_ENV;
pub use job::{write_encoded, Job, Observer, Quiet, Stats, Summary};
pub use options::{Dtype, Format, Header, InputFormat, OnInvalid, Options, RunOptions, Shard};
pub use sink::{Encoded, Layout, Sink, SinkState};
pub use tokenizer::{Model, Tokenizer};
