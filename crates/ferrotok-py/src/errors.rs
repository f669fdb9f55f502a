//! Error mapping, done once: each core error variant becomes one exception class of
//! `ferrotok.exceptions`, all under `FerrotokError` and each also a builtin (`ValueError`,
//! `KeyError`, `OSError`) so that existing `except` clauses keep working.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use ferrotok::Error;

macro_rules! exception_classes {
    ($($fn_name:ident => $class:literal),* $(,)?) => {
        $(
            pub fn $fn_name(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
                static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
                CELL.import(py, "ferrotok.exceptions", $class)
            }
        )*
    };
}

exception_classes! {
    vocab_error => "VocabError",
    pattern_error => "PatternError",
    disallowed_error => "DisallowedSpecialTokenError",
    encode_error => "EncodeError",
    invalid_token_error => "InvalidTokenError",
    unknown_encoding_error => "UnknownEncodingError",
    file_error => "FileError",
    input_error => "InputError",
    options_error => "OptionsError",
    resume_error => "ResumeError",
    unsupported_error => "UnsupportedError",
}

/// An instance of `class(message)` as a `PyErr`.
pub fn new_err(class: PyResult<&Bound<'_, PyType>>, message: String) -> PyErr {
    match class.and_then(|c| c.call1((message.clone(),))) {
        Ok(instance) => PyErr::from_value(instance),
        // Only if `ferrotok.exceptions` cannot be imported: still a clear message.
        Err(e) => PyRuntimeError::new_err(format!("{message} (and ferrotok.exceptions failed to import: {e})")),
    }
}

/// Maps a core error to its Python exception.
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let message = err.to_string();
    let class = match &err {
        Error::Io { .. } => file_error(py),
        Error::RankFile { .. } | Error::Vocab(_) => vocab_error(py),
        Error::Pattern { .. } | Error::PatternLimit { .. } => pattern_error(py),
        Error::DisallowedSpecial { .. } => disallowed_error(py),
        Error::Unencodable { .. }
        | Error::Uncoverable { .. }
        | Error::TooLong { .. }
        | Error::Truncation(_)
        | Error::Utf8(_) => encode_error(py),
        Error::InvalidToken(_) | Error::NotAToken(_) => invalid_token_error(py),
        Error::UnknownEncoding { .. } => unknown_encoding_error(py),
        Error::TokenizerJson { .. } | Error::SentencePieceModel { .. } => vocab_error(py),
        Error::Unsupported { .. } => unsupported_error(py),
    };
    let e = new_err(class, message);
    if let Error::DisallowedSpecial { token, char_offset } = &err {
        // Structured fields for programs: `err.token`, `err.position`.
        let v = e.value(py);
        let _ = v.setattr("token", token);
        let _ = v.setattr("position", char_offset);
    }
    e
}

/// `?`-friendly conversion: `result.map_err(py_err(py))`.
pub fn py_err(py: Python<'_>) -> impl Fn(Error) -> PyErr + '_ {
    move |e| to_py(py, e)
}
