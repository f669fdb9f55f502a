//! `ferrotok count`

use std::io::Write;

use ferrotok::parallel;

use crate::io::{encoding, finish, read_inputs, stdout, Documents};
use crate::{CliError, Special};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    input: Documents,
    /// Print JSON: {"encoding", "files": [{"file", "tokens", "bytes"}], "total_tokens", "total_bytes"}.
    #[arg(long)]
    json: bool,
    /// Threads (default: `FERROTOK_NUM_THREADS` or the number of cores).
    #[arg(short = 'j', long)]
    threads: Option<usize>,
    /// What to do with special-token text such as `<|endoftext|>`.
    #[arg(long, value_enum, default_value_t = Special::Ordinary)]
    special: Special,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let enc = encoding(&args.input.encoding)?;
    let (allowed, disallowed) = args.special.policy();
    let inputs = read_inputs(&args.input.files)?;
    let threads = parallel::num_threads(args.threads);
    let counts = if let ([input], Special::Ordinary) = (&inputs[..], args.special) {
        // One document: cut it between threads (exact; see `encode_ordinary_parallel`).
        let text = input.text()?;
        vec![enc
            .encode_ordinary_parallel(text, threads)
            .map(|ids| ids.len())
            .map_err(|e| crate::doc_error(&input.name, e))]
    } else {
        parallel::map(&inputs, threads, |input| -> Result<usize, CliError> {
            let text = input.text()?;
            enc.count(text, &allowed, &disallowed).map_err(|e| crate::doc_error(&input.name, e))
        })
    };
    let counts: Vec<usize> = counts.into_iter().collect::<Result<_, _>>()?;
    let total: usize = counts.iter().sum();
    let total_bytes: usize = inputs.iter().map(|i| i.bytes.len()).sum();
    let mut out = stdout();
    if args.json {
        let files: Vec<_> = inputs
            .iter()
            .zip(&counts)
            .map(|(i, n)| serde_json::json!({ "file": i.name, "tokens": n, "bytes": i.bytes.len() }))
            .collect();
        let v = serde_json::json!({
            "encoding": enc.name(),
            "files": files,
            "total_tokens": total,
            "total_bytes": total_bytes,
        });
        writeln!(out, "{v}")?;
    } else {
        for (input, n) in inputs.iter().zip(&counts) {
            writeln!(out, "{n}\t{}", input.name)?;
        }
        if inputs.len() > 1 {
            writeln!(out, "{total}\ttotal")?;
        }
    }
    finish(out)
}
