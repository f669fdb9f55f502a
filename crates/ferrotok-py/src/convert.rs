//! Conversions from Python arguments, done before any Rust work starts (and before the GIL
//! is released).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyList, PyString};

use ferrotok::{Allowed, Disallowed};
use rustc_hash::FxHashSet;

/// Text borrowed from a Python `str` (zero-copy), or owned when the `str` held lone
/// surrogates and had to be repaired the way tiktoken repairs it.
pub enum Text {
    Borrowed(PyBackedStr),
    Owned(String),
}

impl Text {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Borrowed(s) => s,
            Self::Owned(s) => s,
        }
    }

    /// Extracts `obj`, which must be a `str`. A `str` with lone surrogates cannot be UTF-8;
    /// like tiktoken, we replace each with U+FFFD (through UTF-16, so that surrogate pairs
    /// become the character they encode).
    pub fn extract(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        let s = obj
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("{what} must be str, not {}", type_name(obj))))?;
        match s.extract::<PyBackedStr>() {
            Ok(b) => Ok(Self::Borrowed(b)),
            Err(_) => {
                let fixed = s
                    .call_method1("encode", ("utf-16", "surrogatepass"))?
                    .call_method1("decode", ("utf-16", "replace"))?;
                Ok(Self::Owned(fixed.extract::<String>()?))
            }
        }
    }
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// Extracts a list of texts (any iterable of `str`).
pub fn texts(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Text>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!("{what} must be a list of str, not a single str")));
    }
    let mut out = Vec::new();
    if let Ok(list) = obj.cast::<PyList>() {
        out.reserve(list.len());
    }
    for (i, item) in obj.try_iter()?.enumerate() {
        out.push(Text::extract(&item?, &format!("{what}[{i}]"))?);
    }
    Ok(out)
}

/// `allowed_special` / `disallowed_special`: the string `"all"`, or a collection of str.
pub enum SpecialArg {
    All,
    Set(Vec<String>),
}

impl SpecialArg {
    /// No special tokens (the default of `allowed_special`).
    pub const fn none() -> Self {
        Self::Set(Vec::new())
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for SpecialArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_none() {
            return Ok(Self::Set(Vec::new()));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            let s = s.to_str()?;
            return if s == "all" {
                Ok(Self::All)
            } else {
                Err(PyValueError::new_err(format!(
                    "expected \"all\" or a collection of special-token strings, got the string {s:?}"
                )))
            };
        }
        let mut v = Vec::new();
        for item in obj.try_iter()? {
            let item = item?;
            let s = item
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err(format!("special tokens must be str, not {}", type_name(&item))))?;
            v.push(s.to_str()?.to_owned());
        }
        Ok(Self::Set(v))
    }
}

/// tiktoken's resolution of the two arguments.
pub fn policy(allowed: SpecialArg, disallowed: SpecialArg) -> (Allowed, Disallowed) {
    let allowed = match allowed {
        SpecialArg::All => Allowed::All,
        SpecialArg::Set(v) if v.is_empty() => Allowed::None,
        SpecialArg::Set(v) => Allowed::Some(v.into_iter().collect::<FxHashSet<String>>()),
    };
    let disallowed = match disallowed {
        SpecialArg::All => Disallowed::AllNotAllowed,
        SpecialArg::Set(v) => Disallowed::Some(v),
    };
    (allowed, disallowed)
}
