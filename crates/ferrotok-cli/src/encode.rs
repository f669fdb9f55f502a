//! `ferrotok encode`

use std::io::Write;

use clap::ValueEnum;

use crate::io::{encoding, finish, read_inputs, stdout, Documents};
use crate::{CliError, Special};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    input: Documents,
    /// What to print.
    #[arg(short, long, value_enum, default_value_t = Format::Ids)]
    format: Format,
    /// Shorthand for `--format json`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// What to do with special-token text such as `<|endoftext|>`.
    #[arg(long, value_enum, default_value_t = Special::Ordinary)]
    special: Special,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Space-separated ids, one line per input.
    Ids,
    /// One token per line: its id and its text, escaped.
    Tokens,
    /// One JSON object per input: {"file", "ids"}.
    Json,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let enc = encoding(&args.input.encoding)?;
    let (allowed, disallowed) = args.special.policy();
    let format = if args.json { Format::Json } else { args.format };
    let mut out = stdout();
    for input in read_inputs(&args.input.files)? {
        let text = input.text()?;
        let ids = enc.encode(text, &allowed, &disallowed).map_err(|e| crate::doc_error(&input.name, e))?;
        match format {
            Format::Ids => {
                let mut line = String::with_capacity(ids.len() * 6);
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        line.push(' ');
                    }
                    line.push_str(&id.to_string());
                }
                writeln!(out, "{line}")?;
            }
            Format::Tokens => {
                for &id in &ids {
                    let bytes = enc.token_bytes(id)?;
                    writeln!(out, "{id}\t{}", escape(bytes))?;
                }
            }
            Format::Json => {
                let v = serde_json::json!({ "file": input.name, "ids": ids });
                writeln!(out, "{v}")?;
            }
        }
    }
    finish(out)
}

/// A token's bytes as a quoted, escaped string: UTF-8 as is, other bytes as `\xNN`.
fn escape(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => s.push_str(&c.escape_default().to_string()),
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('"');
    s
}
