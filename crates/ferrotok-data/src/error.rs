//! The one error type of corpus jobs. Every message names what was wrong and where (the file,
//! the line or row, the option).

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A document could not be read: bad UTF-8, bad JSON, a missing field (with `--on-invalid fail`).
    #[error("{file}:{location}: {problem}")]
    Input { file: String, location: String, problem: String },
    /// The options contradict each other or the tokenizer.
    #[error("{0}")]
    Options(String),
    /// A previous run left state that does not match this job.
    #[error("{0}")]
    Resume(String),
    /// Loading the tokenizer or encoding a document failed.
    #[error(transparent)]
    Tokenizer(#[from] ferrotok::Error),
    /// The Parquet or Arrow library reported an error.
    #[error("{}: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
}

impl Error {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io { path: path.to_owned(), source }
    }

    pub(crate) fn parquet<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> Self + '_ {
        move |e| Self::Parquet { path: path.to_owned(), message: e.to_string() }
    }
}
