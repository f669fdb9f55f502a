//! `ferrotok encodings`

use std::io::Write;

use crate::io::{finish, stdout};
use crate::CliError;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON: one object per encoding.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let mut out = stdout();
    if !args.json {
        writeln!(out, "{:<15} {:>8} {:>8}", "name", "n_vocab", "special")?;
    }
    for name in ferrotok::registry::NAMES {
        let enc = ferrotok::registry::get(name)?;
        if args.json {
            let v = serde_json::json!({
                "name": name,
                "n_vocab": enc.n_vocab(),
                "special_tokens": enc.special_tokens().len(),
                "pat_str": enc.pat_str(),
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "{:<15} {:>8} {:>8}", name, enc.n_vocab(), enc.special_tokens().len())?;
        }
    }
    finish(out)
}
