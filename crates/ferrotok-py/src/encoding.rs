//! `ferrotok.Encoding`: tiktoken's `Encoding`, backed by the core.

use std::sync::{Arc, OnceLock};

use numpy::{PyArray1, PyArrayMethods as _};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};

use ferrotok::{parallel, Allowed, Disallowed, Encoding, Rank, Vocab};

use crate::convert::{policy, texts, type_name, SpecialArg, Text};
use crate::errors::{py_err, to_py};

/// Inputs smaller than this are encoded without releasing the GIL: below it the work takes
/// less time than handing the GIL over and back.
const DETACH_BYTES: usize = 2048;

/// Threading: the one place long Rust work runs detached from the interpreter.
pub fn detach<T: Send>(py: Python<'_>, work_bytes: usize, f: impl FnOnce() -> T + Send) -> T {
    if work_bytes < DETACH_BYTES {
        f()
    } else {
        py.detach(f)
    }
}

/// Flat ids of many texts and the n + 1 offsets of each text's ids in them (the result of
/// `encode_batch_to_numpy` and of the Arrow path's `_encode_string_buffers`).
pub type FlatIds<'py> = (Bound<'py, PyArray1<Rank>>, Bound<'py, PyArray1<i64>>);

/// Encodes `items` on `threads` threads into one vector of all their ids and the n + 1
/// offsets of each item's ids in it. The first error in item order is returned, as
/// `encode_batch` raises it.
pub fn encode_flat<T: Sync>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> ferrotok::Result<Vec<Rank>> + Sync,
) -> ferrotok::Result<(Vec<Rank>, Vec<i64>)> {
    let parts = parallel::map(items, threads, f);
    let mut ids = Vec::with_capacity(parts.iter().map(|p| p.as_ref().map_or(0, Vec::len)).sum());
    let mut offsets = Vec::with_capacity(parts.len() + 1);
    offsets.push(0);
    for part in parts {
        ids.extend_from_slice(&part?);
        offsets.push(ids.len() as i64);
    }
    Ok((ids, offsets))
}

/// An encoding: a byte-level BPE vocabulary, a split pattern and special tokens.
///
/// Immutable and safe to share between threads.
#[pyclass(frozen, module = "ferrotok", name = "Encoding")]
pub struct PyEncoding {
    pub inner: Arc<Encoding>,
    /// Built by `get_encoding`: pickles by name.
    builtin: bool,
    ints: IntCache,
}

/// Python `int` objects for token ids below `size`, created on first use and shared by every
/// list we return: building a list then costs a reference-count increment per token instead
/// of an allocation (a quarter of `encode`'s time on English text went to making ints).
///
/// The ints are made a block of `INT_BLOCK` consecutive ids at a time, so that they sit next
/// to each other in memory and their pointers fill one dense array per block. BPE ranks
/// follow frequency, so the tokens of real text crowd into the first blocks: the increments
/// and pointer loads of a long list hit a few hot cache lines instead of one scattered line
/// per distinct token, and the block table itself stays in L1.
pub struct IntCache {
    size: usize,
    blocks: OnceLock<Box<[OnceLock<IntBlock>]>>,
}

/// The ints of `INT_BLOCK` consecutive ids (fewer in the last block).
type IntBlock = Box<[Py<PyInt>]>;

const INT_BLOCK: usize = 1024;

impl IntCache {
    pub fn new(size: usize) -> Self {
        Self { size, blocks: OnceLock::new() }
    }

    /// A new list of `ids`.
    pub fn list<'py>(&self, py: Python<'py>, ids: &[Rank]) -> PyResult<Bound<'py, PyList>> {
        let blocks = self.blocks.get_or_init(|| (0..self.size.div_ceil(INT_BLOCK)).map(|_| OnceLock::new()).collect());
        PyList::new(
            py,
            ids.iter().map(|&id| {
                let i = id as usize;
                let block = blocks.get(i / INT_BLOCK).map(|cell| {
                    cell.get_or_init(|| {
                        let first = i / INT_BLOCK * INT_BLOCK;
                        (first..(first + INT_BLOCK).min(self.size)).map(|j| PyInt::new(py, j).unbind()).collect()
                    })
                });
                match block.and_then(|b| b.get(i % INT_BLOCK)) {
                    Some(int) => int.bind(py).clone(),
                    None => PyInt::new(py, id),
                }
            }),
        )
    }
}

impl PyEncoding {
    pub fn builtin(inner: Arc<Encoding>) -> Self {
        Self::new_inner(inner, true)
    }

    fn new_inner(inner: Arc<Encoding>, builtin: bool) -> Self {
        let ints = IntCache::new(inner.n_vocab());
        Self { inner, builtin, ints }
    }

    /// Extracts `text` and the special-token policy, then runs `f` on the core (detached from
    /// the interpreter when the text is large enough to be worth it).
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        allowed: SpecialArg,
        disallowed: SpecialArg,
        f: impl FnOnce(&Encoding, &str, &Allowed, &Disallowed) -> ferrotok::Result<T> + Send,
    ) -> PyResult<T> {
        let t = Text::extract(text, "text")?;
        let s = t.as_str();
        let (a, d) = policy(allowed, disallowed);
        let inner = &*self.inner;
        detach(py, s.len(), || f(inner, s, &a, &d)).map_err(py_err(py))
    }

    /// `run` over a list of texts on `num_threads` threads, each result handed in text order
    /// to `each` on this thread (with the GIL) while the workers go on with later texts: so
    /// `encode_batch` builds each Python list while the texts after it are encoded, instead of
    /// after all of them. The first error in text order is raised.
    #[allow(clippy::too_many_arguments)]
    fn stream_batch<T: Send>(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        num_threads: Option<usize>,
        allowed: SpecialArg,
        disallowed: SpecialArg,
        f: impl Fn(&Encoding, &str, &Allowed, &Disallowed) -> ferrotok::Result<T> + Sync,
        mut each: impl FnMut(T) -> PyResult<()>,
    ) -> PyResult<()> {
        let items = texts(text, "text")?;
        let (a, d) = policy(allowed, disallowed);
        let inner = &*self.inner;
        let threads = parallel::num_threads(num_threads);
        let run = |t: &Text| f(inner, t.as_str(), &a, &d);
        parallel::map_streamed(&items, threads, run, |stream| -> PyResult<()> {
            while stream.remaining() > 0 {
                let r = match stream.ready_next() {
                    Some(r) => r,
                    // Encoding (one thread) or waiting for a worker: without the GIL.
                    None => match py.detach(|| stream.wait_next()) {
                        Some(r) => r,
                        // A worker panicked: map_streamed re-raises it.
                        None => break,
                    },
                };
                each(r.map_err(py_err(py))?)?;
            }
            Ok(())
        })
    }

    fn list<'py>(&self, py: Python<'py>, ids: Vec<Rank>) -> PyResult<Bound<'py, PyList>> {
        self.ints.list(py, &ids)
    }

    fn decode_str<'py>(py: Python<'py>, bytes: Vec<u8>, errors: &str) -> PyResult<Bound<'py, PyAny>> {
        match String::from_utf8(bytes) {
            Ok(s) => Ok(PyString::new(py, &s).into_any()),
            // Python's own decoder, so every error handler behaves exactly as in tiktoken.
            Err(e) => PyBytes::new(py, e.as_bytes()).call_method1("decode", ("utf-8", errors)),
        }
    }
}

fn ranks_from_dict(d: &Bound<'_, PyDict>) -> PyResult<Vec<(Vec<u8>, Rank)>> {
    let mut pairs = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let token = k
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err(format!("mergeable_ranks keys must be bytes, not {}", type_name(&k))))?
            .as_bytes()
            .to_vec();
        pairs.push((token, v.extract::<Rank>()?));
    }
    Ok(pairs)
}

fn specials_from_dict(d: &Bound<'_, PyDict>) -> PyResult<Vec<(String, Rank)>> {
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let name = k
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("special_tokens keys must be str, not {}", type_name(&k))))?;
        out.push((name.to_str()?.to_owned(), v.extract::<Rank>()?));
    }
    Ok(out)
}

fn build(
    py: Python<'_>,
    name: String,
    pat_str: String,
    vocab: Vocab,
    specials: Vec<(String, Rank)>,
    n: Option<usize>,
) -> PyResult<PyEncoding> {
    let enc = detach(py, usize::MAX, move || Encoding::new(name, pat_str, Arc::new(vocab), specials, n))
        .map_err(py_err(py))?;
    Ok(PyEncoding::new_inner(Arc::new(enc), false))
}

#[pymethods]
impl PyEncoding {
    /// Creates an encoding, exactly as `tiktoken.Encoding(...)` does.
    #[new]
    #[pyo3(signature = (name, *, pat_str, mergeable_ranks, special_tokens, explicit_n_vocab = None))]
    fn new(
        py: Python<'_>,
        name: String,
        pat_str: String,
        mergeable_ranks: &Bound<'_, PyDict>,
        special_tokens: &Bound<'_, PyDict>,
        explicit_n_vocab: Option<usize>,
    ) -> PyResult<Self> {
        let pairs = ranks_from_dict(mergeable_ranks)?;
        let specials = specials_from_dict(special_tokens)?;
        let vocab = detach(py, usize::MAX, move || Vocab::from_pairs(pairs)).map_err(py_err(py))?;
        build(py, name, pat_str, vocab, specials, explicit_n_vocab)
    }

    /// Loads a tiktoken rank file (`.tiktoken`, plain or gzip), validating it strictly.
    #[staticmethod]
    #[pyo3(signature = (path, *, pat_str, special_tokens = None, name = None, explicit_n_vocab = None))]
    fn from_tiktoken_file(
        py: Python<'_>,
        path: std::path::PathBuf,
        pat_str: String,
        special_tokens: Option<&Bound<'_, PyDict>>,
        name: Option<String>,
        explicit_n_vocab: Option<usize>,
    ) -> PyResult<Self> {
        let specials = special_tokens.map(specials_from_dict).transpose()?.unwrap_or_default();
        let reserved: Vec<Rank> = specials.iter().map(|&(_, id)| id).collect();
        let name = name.unwrap_or_else(|| {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            stem.unwrap_or_else(|| "custom".into())
        });
        let vocab = detach(py, usize::MAX, || Vocab::from_tiktoken_file(&path, &reserved)).map_err(py_err(py))?;
        build(py, name, pat_str, vocab, specials, explicit_n_vocab)
    }

    fn __repr__(&self) -> String {
        format!("<Encoding '{}'>", self.inner.name())
    }

    /// The encoding's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// `max_token_value + 1`.
    #[getter]
    fn n_vocab(&self) -> usize {
        self.inner.n_vocab()
    }

    /// The largest token id, ordinary or special.
    #[getter]
    fn max_token_value(&self) -> Rank {
        self.inner.max_token_value()
    }

    /// The id of `<|endoftext|>`.
    #[getter]
    fn eot_token(&self, py: Python<'_>) -> PyResult<Rank> {
        self.inner
            .special_token("<|endoftext|>")
            .ok_or_else(|| to_py(py, ferrotok::Error::NotAToken("<|endoftext|>".into())))
    }

    /// The set of special-token strings.
    #[getter]
    fn special_tokens_set<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PySet>> {
        pyo3::types::PySet::new(py, self.inner.special_tokens().iter().map(|(t, _)| t.as_str()))
    }

    /// The split pattern (tiktoken's private attribute, kept for code that extends encodings).
    #[getter]
    fn _pat_str(&self) -> &str {
        self.inner.pat_str()
    }

    /// A new dict of special token → id.
    #[getter]
    fn _special_tokens<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (t, id) in self.inner.special_tokens() {
            d.set_item(t, id)?;
        }
        Ok(d)
    }

    /// A new dict of token bytes → rank.
    #[getter]
    fn _mergeable_ranks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (t, r) in self.inner.vocab().iter() {
            d.set_item(PyBytes::new(py, t), r)?;
        }
        Ok(d)
    }

    /// Encodes text, treating special-token text as ordinary text.
    #[pyo3(signature = (text, /))]
    fn encode_ordinary<'py>(&self, py: Python<'py>, text: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let ids = self.run(py, text, SpecialArg::none(), SpecialArg::none(), |e, s, _, _| e.encode_ordinary(s))?;
        self.list(py, ids)
    }

    /// Encodes text. Special-token text raises unless allowed (then it becomes its id) or
    /// removed from `disallowed_special` (then it is encoded as ordinary text).
    #[pyo3(signature = (text, /, *, allowed_special = SpecialArg::none(), disallowed_special = SpecialArg::All))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        allowed_special: SpecialArg,
        disallowed_special: SpecialArg,
    ) -> PyResult<Bound<'py, PyList>> {
        let ids = self.run(py, text, allowed_special, disallowed_special, Encoding::encode)?;
        self.list(py, ids)
    }

    /// Like `encode`, returning a `numpy.ndarray` of `uint32` without an intermediate list.
    #[pyo3(signature = (text, /, *, allowed_special = SpecialArg::none(), disallowed_special = SpecialArg::All))]
    fn encode_to_numpy<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        allowed_special: SpecialArg,
        disallowed_special: SpecialArg,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let ids = self.run(py, text, allowed_special, disallowed_special, Encoding::encode)?;
        let arr = PyArray1::from_vec(py, ids);
        arr.readwrite().make_nonwriteable();
        Ok(arr)
    }

    /// The number of tokens `encode` would return, without building them.
    #[pyo3(signature = (text, /, *, allowed_special = SpecialArg::none(), disallowed_special = SpecialArg::All))]
    fn count(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        allowed_special: SpecialArg,
        disallowed_special: SpecialArg,
    ) -> PyResult<usize> {
        self.run(py, text, allowed_special, disallowed_special, Encoding::count)
    }

    /// Encodes many texts in parallel (`num_threads` defaults to `FERROTOK_NUM_THREADS` or the
    /// number of cores).
    #[pyo3(signature = (text, /, *, num_threads = None, allowed_special = SpecialArg::none(), disallowed_special = SpecialArg::All))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        num_threads: Option<usize>,
        allowed_special: SpecialArg,
        disallowed_special: SpecialArg,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let each = |ids| out.append(self.list(py, ids)?);
        self.stream_batch(py, text, num_threads, allowed_special, disallowed_special, Encoding::encode, each)?;
        Ok(out)
    }

    /// Encodes many texts in parallel into one flat `uint32` array of all their ids and
    /// `len(text) + 1` `int64` offsets: text `i`'s ids are `ids[offsets[i]:offsets[i + 1]]`.
    /// No Python object per token or per text; the GIL is released for the whole batch.
    #[pyo3(signature = (text, /, *, num_threads = None, allowed_special = SpecialArg::none(), disallowed_special = SpecialArg::All))]
    fn encode_batch_to_numpy<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        num_threads: Option<usize>,
        allowed_special: SpecialArg,
        disallowed_special: SpecialArg,
    ) -> PyResult<FlatIds<'py>> {
        let items = texts(text, "text")?;
        let (a, d) = policy(allowed_special, disallowed_special);
        let inner = &*self.inner;
        let threads = parallel::num_threads(num_threads);
        let bytes = items.iter().map(|t| t.as_str().len()).sum();
        let (ids, offsets) = detach(py, bytes, || encode_flat(&items, threads, |t| inner.encode(t.as_str(), &a, &d)))
            .map_err(py_err(py))?;
        // Both vectors become the arrays' memory (no copy).
        Ok((PyArray1::from_vec(py, ids), PyArray1::from_vec(py, offsets)))
    }

    /// Encodes many texts in parallel, treating special-token text as ordinary text.
    #[pyo3(signature = (text, /, *, num_threads = None))]
    fn encode_ordinary_batch<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let each = |ids| out.append(self.list(py, ids)?);
        let none = SpecialArg::none;
        self.stream_batch(py, text, num_threads, none(), none(), |e, s, _, _| e.encode_ordinary(s), each)?;
        Ok(out)
    }

    /// Token counts of many texts, in parallel.
    #[pyo3(signature = (text, /, *, num_threads = None, allowed_special = SpecialArg::none(), disallowed_special = SpecialArg::All))]
    fn count_batch(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        num_threads: Option<usize>,
        allowed_special: SpecialArg,
        disallowed_special: SpecialArg,
    ) -> PyResult<Vec<usize>> {
        let mut all = Vec::new();
        let each = |n| {
            all.push(n);
            Ok(())
        };
        self.stream_batch(py, text, num_threads, allowed_special, disallowed_special, Encoding::count, each)?;
        Ok(all)
    }

    /// Encodes a string or bytes that is exactly one token (ordinary or special).
    #[pyo3(signature = (text_or_bytes, /))]
    fn encode_single_token(&self, py: Python<'_>, text_or_bytes: &Bound<'_, PyAny>) -> PyResult<Rank> {
        let bytes: Vec<u8> = if let Ok(b) = text_or_bytes.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else if let Ok(s) = text_or_bytes.cast::<PyString>() {
            s.to_str()?.as_bytes().to_vec()
        } else {
            return Err(PyTypeError::new_err(format!("expected str or bytes, not {}", type_name(text_or_bytes))));
        };
        self.inner.encode_single_token(&bytes).map_err(py_err(py))
    }

    /// Decodes tokens to bytes.
    #[pyo3(signature = (tokens, /))]
    fn decode_bytes<'py>(&self, py: Python<'py>, tokens: Vec<Rank>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = detach(py, tokens.len() * 4, || self.inner.decode_bytes(&tokens)).map_err(py_err(py))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Decodes tokens to text; invalid UTF-8 is handled by `errors` as in `bytes.decode`.
    #[pyo3(signature = (tokens, /, errors = "replace"))]
    fn decode<'py>(&self, py: Python<'py>, tokens: Vec<Rank>, errors: &str) -> PyResult<Bound<'py, PyAny>> {
        let bytes = detach(py, tokens.len() * 4, || self.inner.decode_bytes(&tokens)).map_err(py_err(py))?;
        Self::decode_str(py, bytes, errors)
    }

    /// The bytes of one token.
    #[pyo3(signature = (token, /))]
    fn decode_single_token_bytes<'py>(&self, py: Python<'py>, token: Rank) -> PyResult<Bound<'py, PyBytes>> {
        let b = self.inner.token_bytes(token).map_err(py_err(py))?;
        Ok(PyBytes::new(py, b))
    }

    /// The bytes of each token.
    #[pyo3(signature = (tokens, /))]
    fn decode_tokens_bytes<'py>(&self, py: Python<'py>, tokens: Vec<Rank>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for t in tokens {
            out.append(PyBytes::new(py, self.inner.token_bytes(t).map_err(py_err(py))?))?;
        }
        Ok(out)
    }

    /// The text (decoded strictly) and the character offset where each token starts.
    #[pyo3(signature = (tokens, /))]
    fn decode_with_offsets<'py>(&self, py: Python<'py>, tokens: Vec<Rank>) -> PyResult<Bound<'py, PyTuple>> {
        let offsets = self.inner.char_offsets(&tokens).map_err(py_err(py))?;
        let bytes = self.inner.decode_bytes(&tokens).map_err(py_err(py))?;
        let text = Self::decode_str(py, bytes, "strict")?;
        PyTuple::new(py, [text, PyList::new(py, offsets)?.into_any()])
    }

    /// Decodes many token lists in parallel.
    #[pyo3(signature = (batch, /, *, errors = "replace", num_threads = None))]
    fn decode_batch<'py>(
        &self,
        py: Python<'py>,
        batch: Vec<Vec<Rank>>,
        errors: &str,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let inner = &*self.inner;
        let results =
            py.detach(|| parallel::map(&batch, parallel::num_threads(num_threads), |t| inner.decode_bytes(t)));
        let out = PyList::empty(py);
        for r in results {
            out.append(Self::decode_str(py, r.map_err(py_err(py))?, errors)?)?;
        }
        Ok(out)
    }

    /// Decodes many token lists to bytes in parallel.
    #[pyo3(signature = (batch, /, *, num_threads = None))]
    fn decode_bytes_batch<'py>(
        &self,
        py: Python<'py>,
        batch: Vec<Vec<Rank>>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let inner = &*self.inner;
        let results =
            py.detach(|| parallel::map(&batch, parallel::num_threads(num_threads), |t| inner.decode_bytes(t)));
        let out = PyList::empty(py);
        for r in results {
            out.append(PyBytes::new(py, &r.map_err(py_err(py))?))?;
        }
        Ok(out)
    }

    /// The bytes of every ordinary token, sorted.
    fn token_byte_values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut all: Vec<&[u8]> = self.inner.vocab().iter().map(|(t, _)| t).collect();
        all.sort_unstable();
        PyList::new(py, all.into_iter().map(|t| PyBytes::new(py, t)))
    }

    /// Whether `token` is a special token's id.
    #[pyo3(signature = (token, /))]
    fn is_special_token(&self, token: Rank) -> bool {
        self.inner.is_special_token(token)
    }

    /// Pickles built-ins by name and other encodings by value.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        if self.builtin {
            let f = py.import("ferrotok")?.getattr("get_encoding")?;
            return PyTuple::new(py, [f, PyTuple::new(py, [self.inner.name()])?.into_any()]);
        }
        let f = py.import("ferrotok._core")?.getattr("_encoding_from_state")?;
        let blob = PyBytes::new(py, &self.inner.vocab().to_blob());
        let args =
            (self.inner.name(), self.inner.pat_str(), blob, self._special_tokens(py)?, self.inner.explicit_n_vocab())
                .into_pyobject(py)?;
        PyTuple::new(py, [f, args.into_any()])
    }

    fn __copy__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (_memo, /))]
    fn __deepcopy__<'py>(slf: PyRef<'py, Self>, _memo: &Bound<'py, PyAny>) -> PyRef<'py, Self> {
        slf
    }
}

/// Rebuilds a pickled encoding.
#[pyfunction]
pub fn _encoding_from_state(
    py: Python<'_>,
    name: String,
    pat_str: String,
    blob: &[u8],
    special_tokens: &Bound<'_, PyDict>,
    explicit_n_vocab: Option<usize>,
) -> PyResult<PyEncoding> {
    let specials = specials_from_dict(special_tokens)?;
    let vocab = Vocab::from_blob(blob).map_err(py_err(py))?;
    build(py, name, pat_str, vocab, specials, explicit_n_vocab)
}

/// A built-in encoding (loaded on first use, shared afterwards). `ferrotok.get_encoding` wraps it.
#[pyfunction]
pub fn _builtin_encoding(py: Python<'_>, name: &str) -> PyResult<PyEncoding> {
    let enc = detach(py, usize::MAX, || ferrotok::registry::get(name)).map_err(py_err(py))?;
    Ok(PyEncoding::builtin(enc))
}

/// The names of the built-in encodings.
#[pyfunction]
pub fn _builtin_names() -> Vec<&'static str> {
    ferrotok::registry::NAMES.to_vec()
}
