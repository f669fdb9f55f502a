//! Inputs (files or stdin) and buffered output.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::CliError;

/// The arguments every document-reading subcommand takes.
#[derive(clap::Args, Debug)]
pub struct Documents {
    /// Input files, each one document (`-` or none: standard input).
    pub files: Vec<PathBuf>,
    /// The encoding.
    #[arg(short, long, default_value = "o200k_base")]
    pub encoding: String,
}

/// One input: its display name and its bytes.
pub struct Input {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Input {
    /// The text, or an error naming the input and the byte where UTF-8 breaks.
    pub fn text(&self) -> Result<&str, CliError> {
        std::str::from_utf8(&self.bytes)
            .map_err(|e| CliError::Message(format!("{}: invalid UTF-8 at byte {}", self.name, e.valid_up_to())))
    }
}

/// Reads every path (`-` or no paths at all: standard input).
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, CliError> {
    if paths.is_empty() {
        return Ok(vec![read_stdin()?]);
    }
    paths
        .iter()
        .map(|p| {
            if p.as_os_str() == "-" {
                return read_stdin();
            }
            let bytes = std::fs::read(p).map_err(|e| CliError::Message(format!("cannot read {}: {e}", p.display())))?;
            Ok(Input { name: p.display().to_string(), bytes })
        })
        .collect()
}

fn read_stdin() -> Result<Input, CliError> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::Message(format!("cannot read standard input: {e}")))?;
    Ok(Input { name: "<stdin>".into(), bytes })
}

/// A buffered standard output; errors (a closed pipe included) surface on write or flush.
pub fn stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
}

/// The encoding named by `-e`.
pub fn encoding(name: &str) -> Result<Arc<ferrotok::Encoding>, CliError> {
    Ok(ferrotok::registry::get(name)?)
}

pub fn finish(mut out: impl Write) -> Result<(), CliError> {
    out.flush()?;
    Ok(())
}
