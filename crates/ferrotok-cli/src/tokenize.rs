//! `ferrotok tokenize`: a whole corpus into training-ready files (see the `ferrotok-data` crate).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrotok_data::{
    Dtype, Format, Header, InputFormat, Job, Observer, OnInvalid, Options, RunOptions, Shard, Stats, Tokenizer,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::io::{finish, stdout};
use crate::CliError;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input files, directories (walked in sorted order), globs, or - for standard input.
    /// `.txt` (a document per file, or per line with --by-line), `.jsonl`, `.parquet`; `.gz` and `.zst` are read too.
    #[arg(required = true)]
    inputs: Vec<String>,
    /// The tokenizer: a built-in encoding name, a .tiktoken file (with --pattern), or a
    /// byte-level BPE tokenizer.json (encoded as tokenizers' encode(text, add_special_tokens=False)).
    #[arg(short, long)]
    tokenizer: String,
    /// The output path prefix; the format adds its extensions (.bin, .idx, .npy, .parquet)
    /// and `.manifest.json`.
    #[arg(short, long)]
    output: PathBuf,
    /// Output format.
    #[arg(short, long, value_parser = ["bin", "megatron", "npy", "parquet"], default_value = "bin")]
    format: String,
    /// Token id type (default: uint16 when the vocabulary fits, else uint32; int32 for megatron).
    #[arg(long, value_parser = ["uint16", "uint32", "int32"])]
    dtype: Option<String>,
    /// Put llm.c's 1024-byte header in front of a bin file.
    #[arg(long, value_parser = ["llmc"])]
    header: Option<String>,
    /// How to read the inputs (default: by extension).
    #[arg(long, value_parser = ["auto", "text", "jsonl", "parquet"], default_value = "auto")]
    input_format: String,
    /// Text inputs: one document per line (empty lines are skipped).
    #[arg(long)]
    by_line: bool,
    /// The JSONL field holding the text.
    #[arg(long, default_value = "text")]
    field: String,
    /// The Parquet column holding the text.
    #[arg(long, default_value = "text")]
    column: String,
    /// The JSONL field or Parquet column holding a document id, kept in parquet output.
    #[arg(long)]
    id_field: Option<String>,
    /// End every document with the end-of-text token.
    #[arg(long)]
    append_eot: bool,
    /// Start every document with the beginning-of-text token.
    #[arg(long)]
    prepend_bos: bool,
    /// The end-of-text token, as its text or id (default: the tokenizer's <|endoftext|> or <|end_of_text|>).
    #[arg(long, value_name = "TOKEN")]
    eot: Option<String>,
    /// The beginning-of-text token, as its text or id (default: the tokenizer's <|begin_of_text|>).
    #[arg(long, value_name = "TOKEN")]
    bos: Option<String>,
    /// Cut documents to at most this many tokens, separators included.
    #[arg(long, value_name = "N")]
    max_tokens_per_doc: Option<usize>,
    /// What to do with a record that is not valid UTF-8, not valid JSON, or lacks the text field.
    #[arg(long, value_parser = ["fail", "skip", "replace"], default_value = "fail")]
    on_invalid: String,
    /// Produce shard INDEX of COUNT (from 0): shards concatenated in order equal the whole output.
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<String>,
    /// Text per chunk in MB: the unit of work that a crash can lose, and of memory (about three chunks).
    #[arg(long, default_value_t = 8.0, value_name = "MB")]
    chunk_mb: f64,
    /// Threads (default: `FERROTOK_NUM_THREADS` or the number of cores).
    #[arg(short = 'j', long)]
    threads: Option<usize>,
    /// For a .tiktoken file: the split pattern (gpt2, cl100k, o200k, llama3, or a regex).
    #[arg(long)]
    pattern: Option<String>,
    /// For a .tiktoken file: a special token, as TEXT=ID (repeatable).
    #[arg(long, value_name = "TEXT=ID")]
    special_token: Vec<String>,
    /// Replace a finished output or an interrupted job's state instead of refusing.
    #[arg(long)]
    overwrite: bool,
    /// No progress bar (it is shown only when standard error is a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    /// Print a JSON summary: documents, tokens, bytes, seconds, skipped, tokens_per_document, ...
    #[arg(long)]
    json: bool,
}

fn options(a: &Args) -> Result<Options, ferrotok_data::Error> {
    Ok(Options {
        format: Format::parse(&a.format)?,
        dtype: a.dtype.as_deref().map(Dtype::parse).transpose()?,
        header: a.header.as_ref().map(|_| Header::Llmc),
        input_format: InputFormat::parse(&a.input_format)?,
        by_line: a.by_line,
        field: a.field.clone(),
        column: a.column.clone(),
        id_field: a.id_field.clone(),
        append_eot: a.append_eot,
        prepend_bos: a.prepend_bos,
        eot: a.eot.clone(),
        bos: a.bos.clone(),
        max_tokens_per_doc: a.max_tokens_per_doc,
        on_invalid: OnInvalid::parse(&a.on_invalid)?,
        shard: a.shard.as_deref().map(Shard::parse).transpose()?,
        chunk_bytes: if a.chunk_mb.is_finite() && a.chunk_mb > 0.0 {
            ((a.chunk_mb * 1e6) as u64).max(1)
        } else {
            return Err(ferrotok_data::Error::Options(format!("--chunk-mb must be positive, not {}", a.chunk_mb)));
        },
    })
}

fn specials(given: &[String]) -> Result<Vec<(String, ferrotok::Rank)>, CliError> {
    given
        .iter()
        .map(|s| {
            let (t, id) = s
                .rsplit_once('=')
                .and_then(|(t, id)| Some((t.to_owned(), id.trim().parse().ok()?)))
                .ok_or_else(|| CliError::Message(format!("bad --special-token {s:?}: expected TEXT=ID")))?;
            Ok((t, id))
        })
        .collect()
}

/// The progress bar: input bytes, documents, tokens, MB/s and ETA, on standard error when it
/// is a terminal. Speed and ETA count only this run's work, so a resumed job reports honestly.
pub struct Bar {
    pb: ProgressBar,
    started: Instant,
    done_at_start: u64,
    total: u64,
}

impl Observer for Bar {
    fn start(&mut self, total: u64, stats: &Stats, done: u64) {
        self.pb.set_length(total);
        self.pb.set_position(done);
        self.started = Instant::now();
        self.done_at_start = done;
        self.total = total;
        self.message(stats, done);
    }
    fn progress(&mut self, stats: &Stats, done: u64) {
        self.pb.set_position(done);
        self.message(stats, done);
    }
    fn finish(&mut self, stats: &Stats) {
        self.pb.set_position(self.total);
        self.message(stats, self.total);
        self.pb.finish();
    }
}

impl Bar {
    /// A bar on standard error if `show` and it is a terminal; else hidden.
    pub fn new(show: bool) -> Self {
        let show = show && std::io::stderr().is_terminal();
        let target = if show { ProgressDrawTarget::stderr_with_hz(4) } else { ProgressDrawTarget::hidden() };
        let pb = ProgressBar::with_draw_target(Some(0), target);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {msg}")
        {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.enable_steady_tick(Duration::from_millis(250));
        Self { pb, started: Instant::now(), done_at_start: 0, total: 0 }
    }

    fn message(&self, s: &Stats, done: u64) {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { (done - self.done_at_start.min(done)) as f64 / secs } else { 0.0 };
        let eta =
            if rate > 0.0 { format!("{:.0}s", self.total.saturating_sub(done) as f64 / rate) } else { "-".into() };
        self.pb.set_message(format!("{} docs, {} tokens, {:.1} MB/s, ETA {eta}", s.documents, s.tokens, rate / 1e6));
    }
}

pub fn run(args: Args) -> Result<(), CliError> {
    let opts = options(&args).map_err(|e| CliError::Message(e.to_string()))?;
    let tokenizer = Tokenizer::load(&args.tokenizer, args.pattern.as_deref(), &specials(&args.special_token)?)
        .map_err(|e| CliError::Message(e.to_string()))?;
    let job = Job {
        inputs: args.inputs.clone(),
        tokenizer,
        output: args.output.clone(),
        options: opts,
        run: RunOptions { threads: args.threads, overwrite: args.overwrite },
    };
    let mut bar = Bar::new(!args.no_progress);
    let summary = job.run(&mut bar).map_err(|e| CliError::Message(e.to_string()))?;
    let s = summary.stats;
    let mut out = stdout();
    let mbps = if summary.seconds > 0.0 { summary.bytes_this_run as f64 / 1e6 / summary.seconds } else { 0.0 };
    let outputs: Vec<String> = summary.outputs.iter().map(|p| p.display().to_string()).collect();
    if args.json {
        let v = serde_json::json!({
            "documents": s.documents,
            "tokens": s.tokens,
            "bytes": s.bytes,
            "records": s.records,
            "skipped": s.skipped,
            "replaced": s.replaced,
            "truncated": s.truncated,
            "tokens_per_document": if s.documents > 0 { s.tokens as f64 / s.documents as f64 } else { 0.0 },
            "seconds": summary.seconds,
            "bytes_this_run": summary.bytes_this_run,
            "resumed": summary.resumed,
            "already_complete": summary.already_complete,
            "outputs": outputs,
            "manifest": summary.manifest.display().to_string(),
        });
        writeln!(out, "{v}")?;
    } else {
        if summary.already_complete {
            writeln!(out, "already complete (see {}); nothing to do", summary.manifest.display())?;
        }
        writeln!(
            out,
            "{}{} documents, {} tokens, {} bytes of text{}{} → {}",
            if summary.resumed { "resumed: " } else { "" },
            s.documents,
            s.tokens,
            s.bytes,
            if s.skipped > 0 { format!(", {} records skipped", s.skipped) } else { String::new() },
            if summary.already_complete {
                String::new()
            } else {
                format!(" in {:.2} s ({mbps:.1} MB/s)", summary.seconds)
            },
            outputs.join(", ")
        )?;
    }
    finish(out)
}
