//! Corpus jobs from Python: `ferrotok.data.tokenize_files`, `encode_arrow` and the writer
//! behind the Ray Data sink. Thin: options arrive as JSON for `ferrotok_data::Options`.

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use ferrotok::parallel;
use ferrotok_data::{Encoded, Format, Job, Layout, Options, RunOptions, Tokenizer};

use crate::encoding::{detach, encode_flat, FlatIds, PyEncoding};
use crate::errors::{self, new_err, to_py};
use crate::tokenizer::PyTokenizer;

/// Maps a corpus-job error to its Python exception.
fn data_err(py: Python<'_>, e: ferrotok_data::Error) -> PyErr {
    use ferrotok_data::Error as E;
    let message = e.to_string();
    match e {
        E::Tokenizer(inner) => to_py(py, inner),
        E::Io { .. } => new_err(errors::file_error(py), message),
        E::Input { .. } | E::Parquet { .. } => new_err(errors::input_error(py), message),
        E::Options(_) => new_err(errors::options_error(py), message),
        E::Resume(_) => new_err(errors::resume_error(py), message),
        _ => PyRuntimeError::new_err(message),
    }
}

fn parse_options(py: Python<'_>, options_json: &str) -> PyResult<Options> {
    serde_json::from_str(options_json).map_err(|e| new_err(errors::options_error(py), format!("bad options: {e}")))
}

/// Runs a tokenize job (see `ferrotok.data.tokenize_files`) with the GIL released; returns
/// the summary as a dict.
#[pyfunction]
#[pyo3(signature = (inputs, tokenizer, output, options_json, *, num_threads=None, overwrite=false, progress=false))]
#[expect(clippy::too_many_arguments, reason = "mirrors the Python keyword arguments")]
pub fn _tokenize_files<'py>(
    py: Python<'py>,
    inputs: Vec<String>,
    tokenizer: &Bound<'py, PyAny>,
    output: std::path::PathBuf,
    options_json: &str,
    num_threads: Option<usize>,
    overwrite: bool,
    progress: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let options = parse_options(py, options_json)?;
    let job = Job {
        inputs,
        tokenizer: if let Ok(e) = tokenizer.cast::<PyEncoding>() {
            Tokenizer::new(e.get().inner.clone())
        } else if let Ok(t) = tokenizer.cast::<PyTokenizer>() {
            let t = t.get();
            Tokenizer::from_hf(t.core(), &t.identity(), t.kind_name())
        } else {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "tokenizer must be an Encoding or a Tokenizer, not {}",
                crate::convert::type_name(tokenizer)
            )));
        },
        output,
        options,
        run: RunOptions { threads: num_threads, overwrite },
    };
    let summary = py
        .detach(|| {
            let mut bar = ferrotok_cli::ProgressBar::new(progress);
            job.run(&mut bar)
        })
        .map_err(|e| data_err(py, e))?;
    let s = summary.stats;
    let d = PyDict::new(py);
    d.set_item("documents", s.documents)?;
    d.set_item("tokens", s.tokens)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("records", s.records)?;
    d.set_item("skipped", s.skipped)?;
    d.set_item("replaced", s.replaced)?;
    d.set_item("truncated", s.truncated)?;
    d.set_item("tokens_per_document", if s.documents > 0 { s.tokens as f64 / s.documents as f64 } else { 0.0 })?;
    d.set_item("seconds", summary.seconds)?;
    d.set_item("bytes_this_run", summary.bytes_this_run)?;
    d.set_item("resumed", summary.resumed)?;
    d.set_item("already_complete", summary.already_complete)?;
    let outputs: Vec<String> = summary.outputs.iter().map(|p| p.display().to_string()).collect();
    d.set_item("outputs", outputs)?;
    d.set_item("manifest", summary.manifest.display().to_string())?;
    Ok(d)
}

/// Encodes the strings of an Arrow string array given as its parts: `offsets` (n + 1, int64),
/// `data` (the UTF-8 bytes) and `nulls` (n booleans, or None). Returns `(ids, starts)`: the
/// ids of every string, flat, and n + 1 int64 offsets into them (null rows are empty).
#[pyfunction]
#[pyo3(signature = (encoding, offsets, data, nulls=None, *, num_threads=None))]
pub fn _encode_string_buffers<'py>(
    py: Python<'py>,
    encoding: &PyEncoding,
    offsets: PyReadonlyArray1<'py, i64>,
    data: PyReadonlyArray1<'py, u8>,
    nulls: Option<PyReadonlyArray1<'py, bool>>,
    num_threads: Option<usize>,
) -> PyResult<FlatIds<'py>> {
    let offsets = offsets.as_slice()?;
    let data = data.as_slice()?;
    let nulls = match &nulls {
        Some(n) => Some(n.as_slice()?),
        None => None,
    };
    let n = offsets.len().checked_sub(1).ok_or_else(|| PyValueError::new_err("offsets must have n + 1 entries"))?;
    if nulls.is_some_and(|m| m.len() != n) {
        return Err(PyValueError::new_err(format!(
            "nulls has {} entries for {n} strings",
            nulls.map_or(0, <[bool]>::len)
        )));
    }
    let mut texts: Vec<&str> = Vec::with_capacity(n);
    for i in 0..n {
        if nulls.is_some_and(|m| m[i]) {
            texts.push("");
            continue;
        }
        let (a, b) = (offsets[i], offsets[i + 1]);
        let slice = usize::try_from(a).ok().zip(usize::try_from(b).ok()).and_then(|(a, b)| data.get(a..b)).ok_or_else(
            || PyValueError::new_err(format!("string {i}: offsets {a}..{b} outside the data ({} bytes)", data.len())),
        )?;
        let text = std::str::from_utf8(slice).map_err(|e| {
            new_err(errors::encode_error(py), format!("string {i}: invalid UTF-8 at byte {}", e.valid_up_to()))
        })?;
        texts.push(text);
    }
    let enc = encoding.inner.clone();
    let threads = parallel::num_threads(num_threads);
    let (ids, starts) = detach(py, data.len(), || encode_flat(&texts, threads, |t| enc.encode_ordinary(t)))
        .map_err(|e| to_py(py, e))?;
    Ok((PyArray1::from_vec(py, ids), PyArray1::from_vec(py, starts)))
}

/// Writes documents given as flat `ids` and `starts` (n + 1 offsets) to `output` in a job's
/// format, atomically; returns the paths written. Used by the Ray Data sink.
#[pyfunction]
#[pyo3(signature = (output, format, ids, starts, doc_ids=None, *, dtype=None, header=None))]
#[expect(clippy::too_many_arguments, reason = "mirrors the Python keyword arguments")]
pub fn _write_tokens<'py>(
    py: Python<'py>,
    output: std::path::PathBuf,
    format: &str,
    ids: PyReadonlyArray1<'py, u32>,
    starts: PyReadonlyArray1<'py, i64>,
    doc_ids: Option<Vec<Option<String>>>,
    dtype: Option<&str>,
    header: Option<&str>,
) -> PyResult<Vec<String>> {
    let err = |e| data_err(py, e);
    let format = Format::parse(format).map_err(err)?;
    let max = ids.as_slice()?.iter().copied().max().unwrap_or(0);
    let dtype = match dtype {
        Some(d) => ferrotok_data::Dtype::parse(d).map_err(err)?,
        None if format == Format::Parquet => ferrotok_data::Dtype::Uint32,
        None if max <= u32::from(u16::MAX) => ferrotok_data::Dtype::Uint16,
        None if format == Format::Megatron => ferrotok_data::Dtype::Int32,
        None => ferrotok_data::Dtype::Uint32,
    };
    if u64::from(max) > dtype.max_id() {
        return Err(new_err(errors::options_error(py), format!("id {max} does not fit {}", dtype.name())));
    }
    let header = match header {
        None => None,
        Some("llmc") => Some(ferrotok_data::Header::Llmc),
        Some(h) => return Err(new_err(errors::options_error(py), format!("unknown header {h:?}; expected 'llmc'"))),
    };
    let starts: Vec<usize> = starts
        .as_slice()?
        .iter()
        .map(|&s| usize::try_from(s))
        .collect::<Result<_, _>>()
        .map_err(|_| PyValueError::new_err("negative offset in starts"))?;
    let n_ids = ids.as_slice()?.len();
    if starts.first() != Some(&0) || starts.last() != Some(&n_ids) || starts.windows(2).any(|w| w[0] > w[1]) {
        return Err(PyValueError::new_err("starts must rise from 0 to len(ids)"));
    }
    let docs = Encoded { ids: ids.as_slice()?.to_vec(), doc_ids: doc_ids.clone().unwrap_or_default(), starts };
    if doc_ids.is_some() && docs.doc_ids.len() != docs.docs() {
        return Err(PyValueError::new_err(format!("{} doc_ids for {} documents", docs.doc_ids.len(), docs.docs())));
    }
    let layout = Layout { format, dtype, header, with_doc_ids: doc_ids.is_some() };
    let written = py.detach(|| ferrotok_data::write_encoded(&output, layout, &docs)).map_err(err)?;
    Ok(written.iter().map(|p| p.display().to_string()).collect())
}
