//! The `ferrotok._core` extension module: thin wrappers over the `ferrotok` core crate.
//! Conversions and error mapping live here; no tokenization logic does.

mod convert;
mod data;
mod encoding;
mod errors;
mod tokenizer;

use pyo3::prelude::*;

/// Runs the `ferrotok` command with `argv` (without the program name) and returns its exit
/// status. The GIL is released for the whole run.
#[pyfunction]
fn _cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| ferrotok_cli::run_from(argv))
}

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<encoding::PyEncoding>()?;
    m.add_class::<tokenizer::PyTokenizer>()?;
    m.add_class::<tokenizer::PyTokenizerEncoding>()?;
    m.add_function(wrap_pyfunction!(encoding::_encoding_from_state, m)?)?;
    m.add_function(wrap_pyfunction!(encoding::_builtin_encoding, m)?)?;
    m.add_function(wrap_pyfunction!(encoding::_builtin_names, m)?)?;
    m.add_function(wrap_pyfunction!(_cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(data::_tokenize_files, m)?)?;
    m.add_function(wrap_pyfunction!(data::_encode_string_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(data::_write_tokens, m)?)?;
    Ok(())
}
