//! `ferrotok decode`

use std::io::Write;
use std::path::PathBuf;

use crate::io::{encoding, finish, read_inputs, stdout};
use crate::CliError;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files of token ids: whitespace- or comma-separated integers, or a JSON array
    /// (`-` or none: standard input).
    files: Vec<PathBuf>,
    /// The encoding.
    #[arg(short, long, default_value = "o200k_base")]
    encoding: String,
    /// Write the raw bytes instead of text (invalid UTF-8 is otherwise replaced by U+FFFD).
    #[arg(long)]
    bytes: bool,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let enc = encoding(&args.encoding)?;
    let mut out = stdout();
    for input in read_inputs(&args.files)? {
        let text = input.text()?;
        let ids = parse_ids(text).map_err(|m| CliError::Message(format!("{}: {m}", input.name)))?;
        let bytes = enc.decode_bytes(&ids).map_err(|e| crate::doc_error(&input.name, e))?;
        if args.bytes {
            out.write_all(&bytes)?;
        } else {
            out.write_all(String::from_utf8_lossy(&bytes).as_bytes())?;
        }
    }
    finish(out)
}

fn parse_ids(text: &str) -> Result<Vec<u32>, String> {
    let t = text.trim();
    let body = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(t);
    body.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| s.parse::<u32>().map_err(|_| format!("item {} ({s:?}) is not a token id", i + 1)))
        .collect()
}
