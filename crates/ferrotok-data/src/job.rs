//! A tokenize job: read → encode on all cores → write in input order, with a checkpoint after
//! every chunk so that an interrupted job resumes where its last checkpoint left off.
//!
//! Crash safety. The work directory `PREFIX.ferrotok-work/` holds the growing output files and
//! `checkpoint.json`. A chunk is appended, the files are synced, and only then is the new
//! checkpoint written (to a temporary file, synced, renamed over the old one). On restart
//! everything past the checkpoint's recorded lengths is cut off and reading resumes from the
//! checkpoint's input position, so a chunk is either wholly in the output or redone. Chunk
//! boundaries depend only on the input (a chunk closes once it holds `chunk_bytes` of text), so
//! a resumed run makes the same chunks, and the output is byte-identical to an uninterrupted run.
//! The finished files are staged in the work directory, the checkpoint marks them staged, and
//! then they are renamed into place, the manifest `PREFIX.manifest.json` last: its presence
//! means the job is complete.
//!
//! Memory: at most one chunk being read, one being encoded and one being written (text, ids
//! and the writer's bytes): measured, about six times `chunk_bytes`, whatever the corpus size.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::time::Instant;

use ferrotok::{parallel, Rank};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fault;
use crate::input::{self, FilePos, InputFile, Reader, Text};
use crate::options::{Dtype, Format, OnInvalid, Options, RunOptions};
use crate::sink::{write_new, Encoded, Layout, Sink, SinkState};
use crate::tokenizer::{Tokenizer, BOS_DEFAULTS, EOT_DEFAULTS};

/// Counts over the whole job (kept across resumes).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Documents written.
    pub documents: u64,
    /// Tokens written, separators included.
    pub tokens: u64,
    /// Bytes of text encoded.
    pub bytes: u64,
    /// Records read (lines, rows, files), including skipped ones.
    pub records: u64,
    /// Records left out because they could not be read (see `--on-invalid`).
    pub skipped: u64,
    /// Documents whose bad UTF-8 was replaced (with `--on-invalid replace`).
    pub replaced: u64,
    /// Documents cut at `--max-tokens-per-doc`.
    pub truncated: u64,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct Summary {
    pub stats: Stats,
    /// Wall time of this run.
    pub seconds: f64,
    /// Bytes of text this run encoded (less than `stats.bytes` when it resumed another).
    pub bytes_this_run: u64,
    /// This run continued an interrupted one.
    pub resumed: bool,
    /// The output was already complete; nothing was done.
    pub already_complete: bool,
    pub outputs: Vec<PathBuf>,
    pub manifest: PathBuf,
}

/// Told about progress by the writer after every chunk.
pub trait Observer: Send {
    /// `total_bytes`: input bytes this job reads; `stats` and `done_bytes` so far (nonzero when resuming).
    fn start(&mut self, total_bytes: u64, stats: &Stats, done_bytes: u64);
    fn progress(&mut self, stats: &Stats, done_bytes: u64);
    fn finish(&mut self, _stats: &Stats) {}
}

/// An observer that does nothing.
pub struct Quiet;
impl Observer for Quiet {
    fn start(&mut self, _: u64, _: &Stats, _: u64) {}
    fn progress(&mut self, _: &Stats, _: u64) {}
}

/// What must be equal for a run to continue another: the inputs, the tokenizer, the options.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Spec {
    inputs: Vec<InputFile>,
    tokenizer: TokenizerId,
    options: Options,
    dtype: Dtype,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct TokenizerId {
    name: String,
    sha256: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Checkpoint {
    ferrotok: String,
    spec: Spec,
    /// The input to read next and where in it.
    file: usize,
    pos: FilePos,
    chunks: u64,
    stats: Stats,
    sink: SinkState,
    /// The finished files are staged in the work directory; only the renames remain.
    staged: bool,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    ferrotok: String,
    spec: Spec,
    chunks: u64,
    stats: Stats,
    outputs: Vec<String>,
}

/// A tokenize job, ready to run.
pub struct Job {
    pub inputs: Vec<String>,
    pub tokenizer: Tokenizer,
    /// The output path prefix (a format's own extension on it is dropped).
    pub output: PathBuf,
    pub options: Options,
    pub run: RunOptions,
}

/// The ids a document gets around its text, and the cap.
#[derive(Clone, Copy)]
struct Framing {
    bos: Option<Rank>,
    eot: Option<Rank>,
    max_tokens: Option<usize>,
}

fn output_prefix(output: &Path, format: Format) -> PathBuf {
    let s = output.to_string_lossy();
    let exts: &[&str] = match format {
        Format::Bin => &[".bin"],
        Format::Megatron => &[".bin", ".idx"],
        Format::Npy => &[".npy"],
        Format::Parquet => &[".parquet"],
    };
    for e in exts {
        if let Some(stripped) = s.strip_suffix(e) {
            return PathBuf::from(stripped);
        }
    }
    output.to_owned()
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Resume(format!("{}: unreadable ({e}); remove it or pass --overwrite", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io { path: path.to_owned(), source: e }),
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).unwrap_or_default();
    s.push(b'\n');
    s
}

/// Says which part of a job changed, for the refusal to resume.
fn what_changed(old: &Spec, new: &Spec) -> String {
    let mut parts = Vec::new();
    if old.inputs.len() != new.inputs.len() {
        parts.push(format!("the inputs (was {} files, now {})", old.inputs.len(), new.inputs.len()));
    } else if let Some((a, b)) = old.inputs.iter().zip(&new.inputs).find(|(a, b)| a != b) {
        let why = if a.path != b.path {
            format!("{} is now {}", a.path, b.path)
        } else if a.size != b.size {
            format!("{} changed size ({} → {} bytes)", a.path, a.size, b.size)
        } else {
            format!("{} changed content", a.path)
        };
        parts.push(format!("the inputs ({why})"));
    }
    if old.tokenizer != new.tokenizer {
        parts.push(format!("the tokenizer (was {}, now {})", old.tokenizer.name, new.tokenizer.name));
    }
    if old.options != new.options || old.dtype != new.dtype {
        let a = serde_json::to_value(&old.options).unwrap_or_default();
        let b = serde_json::to_value(&new.options).unwrap_or_default();
        let mut names: Vec<String> = Vec::new();
        if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
            names = a.keys().filter(|k| a.get(*k) != b.get(*k)).map(|k| k.replace('_', "-")).collect();
        }
        if old.dtype != new.dtype {
            names.push("dtype".into());
        }
        parts.push(format!("the options ({})", names.join(", ")));
    }
    parts.join("; ")
}

impl Job {
    fn dtype(&self) -> Result<Dtype> {
        let max = u64::from(self.tokenizer.max_token_value());
        let o = &self.options;
        let dtype = match (o.dtype, o.format) {
            (Some(d), _) => d,
            (None, Format::Parquet) => Dtype::Uint32,
            (None, _) if max <= u64::from(u16::MAX) => Dtype::Uint16,
            (None, Format::Megatron) => Dtype::Int32,
            (None, _) => Dtype::Uint32,
        };
        if max > dtype.max_id() {
            return Err(Error::Options(format!(
                "{} has ids up to {max}, which do not fit {}",
                self.tokenizer.name,
                dtype.name()
            )));
        }
        match (o.format, dtype) {
            (Format::Megatron, Dtype::Uint32) => {
                Err(Error::Options("Megatron's format has no uint32; use --dtype int32 or uint16".into()))
            }
            (Format::Parquet, d) if d != Dtype::Uint32 => {
                Err(Error::Options("the parquet format stores list<uint32>; --dtype does not apply".into()))
            }
            (Format::Npy, Dtype::Int32) => Err(Error::Options("the npy format stores uint16 or uint32".into())),
            _ => Ok(dtype),
        }
    }

    fn framing(&self) -> Result<Framing> {
        let o = &self.options;
        let t = &self.tokenizer;
        let bos =
            if o.prepend_bos { Some(t.separator(o.bos.as_deref(), &BOS_DEFAULTS, "beginning-of-text")?) } else { None };
        let eot = if o.append_eot { Some(t.separator(o.eot.as_deref(), &EOT_DEFAULTS, "end-of-text")?) } else { None };
        if !o.prepend_bos && o.bos.is_some() {
            return Err(Error::Options("--bos is given without --prepend-bos".into()));
        }
        if !o.append_eot && o.eot.is_some() {
            return Err(Error::Options("--eot is given without --append-eot".into()));
        }
        let seps = usize::from(bos.is_some()) + usize::from(eot.is_some());
        if let Some(m) = o.max_tokens_per_doc {
            if m <= seps {
                return Err(Error::Options(format!(
                    "--max-tokens-per-doc {m} leaves no room for text beside the {seps} separator(s)"
                )));
            }
        }
        Ok(Framing { bos, eot, max_tokens: o.max_tokens_per_doc })
    }

    fn validate(&self) -> Result<()> {
        let o = &self.options;
        if o.header.is_some() && o.format != Format::Bin {
            return Err(Error::Options("--header applies to the bin format only".into()));
        }
        if o.id_field.is_some() && o.format != Format::Parquet {
            return Err(Error::Options(
                "--id-field applies to the parquet format only (the others store no ids)".into(),
            ));
        }
        if o.chunk_bytes == 0 {
            return Err(Error::Options("the chunk size must be positive".into()));
        }
        Ok(())
    }

    /// Runs the job to completion (or resumes it), reporting to `observer`.
    pub fn run(&self, observer: &mut dyn Observer) -> Result<Summary> {
        let started = Instant::now();
        self.validate()?;
        let dtype = self.dtype()?;
        let framing = self.framing()?;
        let inputs = input::resolve(&self.inputs, &self.options)?;
        let spec = Spec {
            inputs: inputs.clone(),
            tokenizer: TokenizerId { name: self.tokenizer.name.clone(), sha256: self.tokenizer.fingerprint.clone() },
            options: self.options.clone(),
            dtype,
        };
        let layout = Layout {
            format: self.options.format,
            dtype,
            header: self.options.header,
            with_doc_ids: self.options.id_field.is_some(),
        };
        let prefix = output_prefix(&self.output, self.options.format);
        let finals: Vec<(PathBuf, PathBuf)> = layout
            .outputs()
            .iter()
            .map(|(staged, suffix)| (PathBuf::from(staged), with_suffix(&prefix, suffix)))
            .collect();
        let manifest_path = with_suffix(&prefix, ".manifest.json");
        let work = with_suffix(&prefix, ".ferrotok-work");
        let checkpoint_path = work.join("checkpoint.json");
        let uses_stdin = inputs.iter().any(InputFile::is_stdin);
        let summary = |stats: Stats, before: u64, resumed: bool, already: bool| Summary {
            stats,
            bytes_this_run: stats.bytes - before,
            seconds: started.elapsed().as_secs_f64(),
            resumed,
            already_complete: already,
            outputs: finals.iter().map(|(_, d)| d.clone()).collect(),
            manifest: manifest_path.clone(),
        };

        // A finished job: the same one is done; another one is refused unless overwriting.
        if let Some(m) = read_json::<Manifest>(&manifest_path)? {
            if m.spec == spec && !uses_stdin && !self.run.overwrite && !work.exists() {
                return Ok(summary(m.stats, m.stats.bytes, false, true));
            }
            if !self.run.overwrite {
                return Err(Error::Resume(format!(
                    "{} records a finished job with different {}; pass --overwrite to replace its output",
                    manifest_path.display(),
                    what_changed(&m.spec, &spec)
                )));
            }
            remove_file(&manifest_path)?;
        }
        let clashing: Vec<&PathBuf> = finals.iter().map(|(_, d)| d).filter(|d| d.exists()).collect();
        if !clashing.is_empty() && !work.exists() {
            if !self.run.overwrite {
                return Err(Error::Resume(format!(
                    "{} already exists and was not written by this job; pass --overwrite to replace it",
                    clashing[0].display()
                )));
            }
            for d in clashing {
                remove_file(d)?;
            }
        }

        // An interrupted job: continue it if it is this one.
        let mut resumed = false;
        let mut cp = Checkpoint {
            ferrotok: env!("CARGO_PKG_VERSION").into(),
            spec: spec.clone(),
            file: 0,
            pos: FilePos::default(),
            chunks: 0,
            stats: Stats::default(),
            sink: SinkState::default(),
            staged: false,
        };
        match read_json::<Checkpoint>(&checkpoint_path)? {
            Some(old) if self.run.overwrite => {
                let _ = old;
                reset_dir(&work)?;
            }
            Some(_) if uses_stdin => {
                return Err(Error::Resume(format!(
                    "{} holds an interrupted job that read standard input, which cannot be read again; \
                     pass --overwrite to start over",
                    work.display()
                )))
            }
            Some(old) if old.spec != spec => {
                return Err(Error::Resume(format!(
                    "{} holds an interrupted job with different {}; run it with its original inputs and \
                     options to finish it, or pass --overwrite to start over",
                    work.display(),
                    what_changed(&old.spec, &spec)
                )));
            }
            Some(old) => {
                resumed = true;
                cp = old;
            }
            None => reset_dir(&work)?,
        }

        let bytes_before = cp.stats.bytes;
        if !cp.staged {
            let ranges = input::shard_ranges(&inputs, self.options.shard, self.options.by_line);
            let total: u64 =
                ranges.iter().zip(&inputs).map(|(r, f)| r.map_or(0, |(s, e)| e.min(f.size.max(s)) - s)).sum();
            let sink = Sink::open(&work, layout.clone(), cp.sink)?;
            observer.start(total, &cp.stats, done_bytes(&inputs, &ranges, cp.file, cp.pos));
            cp = self.pipeline(&inputs, &ranges, framing, sink, cp, &checkpoint_path, observer)?;
            Sink::open(&work, layout.clone(), cp.sink)?.stage()?;
            cp.staged = true;
            write_new(&checkpoint_path, &to_json(&cp))?;
        }
        observer.finish(&cp.stats);

        // Rename the staged files into place, the manifest last.
        for (staged, dest) in &finals {
            let from = work.join(staged);
            if from.exists() {
                std::fs::rename(&from, dest).map_err(Error::io(dest))?;
                fault::point();
            } else if !dest.exists() {
                return Err(Error::Resume(format!("{} is missing; pass --overwrite to start over", from.display())));
            }
        }
        let manifest = Manifest {
            ferrotok: env!("CARGO_PKG_VERSION").into(),
            spec,
            chunks: cp.chunks,
            stats: cp.stats,
            outputs: finals
                .iter()
                .map(|(_, d)| d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
                .collect(),
        };
        write_new(&manifest_path, &to_json(&manifest))?;
        std::fs::remove_dir_all(&work).map_err(Error::io(&work))?;
        Ok(summary(cp.stats, bytes_before, resumed, false))
    }

    #[expect(clippy::too_many_arguments, reason = "the pipeline is one function over the job's parts")]
    fn pipeline(
        &self,
        inputs: &[InputFile],
        ranges: &[Option<(u64, u64)>],
        framing: Framing,
        mut sink: Sink,
        mut cp: Checkpoint,
        checkpoint_path: &Path,
        observer: &mut dyn Observer,
    ) -> Result<Checkpoint> {
        let threads = parallel::num_threads(self.run.threads);
        let enc = &self.tokenizer;
        let opts = &self.options;
        let (raw_tx, raw_rx) = sync_channel::<Result<RawChunk>>(1);
        let (enc_tx, enc_rx) = sync_channel::<(Encoded, RawChunk)>(1);
        std::thread::scope(|s| -> Result<Checkpoint> {
            let start = (cp.file, cp.pos);
            let reader = s.spawn(move || read_chunks(inputs, ranges, opts, start, &raw_tx));
            let writer = s.spawn(move || -> Result<Checkpoint> {
                while let Ok((encoded, raw)) = enc_rx.recv() {
                    sink.write(&encoded, cp.chunks)?;
                    cp.sink = sink.sync()?;
                    cp.chunks += 1;
                    cp.file = raw.end.0;
                    cp.pos = raw.end.1;
                    let s = &mut cp.stats;
                    s.documents += encoded.docs() as u64;
                    s.tokens += encoded.ids.len() as u64;
                    s.bytes += raw.bytes;
                    s.records += raw.records;
                    s.skipped += raw.skipped;
                    s.replaced += raw.replaced;
                    s.truncated += raw.truncated;
                    write_new(checkpoint_path, &to_json(&cp))?;
                    observer.progress(&cp.stats, done_bytes(inputs, ranges, cp.file, cp.pos));
                }
                Ok(cp)
            });
            let mut failure = None;
            for raw in raw_rx {
                let mut raw = match raw {
                    Ok(r) => r,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                match encode_chunk(enc, &mut raw, framing, threads, opts.id_field.is_some()) {
                    Ok(encoded) => {
                        if enc_tx.send((encoded, raw)).is_err() {
                            break; // the writer failed; its error is reported below
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            drop(enc_tx);
            let written = writer.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            // The reader stops at its next send once the channel's receiver is gone.
            let _ = reader.join();
            let cp = written?;
            match failure {
                Some(e) => Err(e),
                None => Ok(cp),
            }
        })
    }
}

/// Writes encoded documents in one go as `output` (a path prefix, as for a job) in `layout`,
/// atomically: the files appear whole or not at all. For writers driven from elsewhere, such as
/// a Ray Data sink writing one shard per task. Returns the files written.
pub fn write_encoded(output: &Path, layout: Layout, docs: &Encoded) -> Result<Vec<PathBuf>> {
    let prefix = output_prefix(output, layout.format);
    let work = with_suffix(&prefix, ".ferrotok-work");
    reset_dir(&work)?;
    let finals: Vec<(PathBuf, PathBuf)> =
        layout.outputs().iter().map(|(staged, suffix)| (work.join(staged), with_suffix(&prefix, suffix))).collect();
    let mut sink = Sink::open(&work, layout, SinkState::default())?;
    sink.write(docs, 0)?;
    sink.stage()?;
    for (from, dest) in &finals {
        std::fs::rename(from, dest).map_err(Error::io(dest))?;
    }
    std::fs::remove_dir_all(&work).map_err(Error::io(&work))?;
    Ok(finals.into_iter().map(|(_, d)| d).collect())
}

fn remove_file(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io { path: p.to_owned(), source: e }),
        _ => Ok(()),
    }
}

fn reset_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(Error::io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(Error::io(dir))
}

/// Input bytes behind a position, for progress.
fn done_bytes(inputs: &[InputFile], ranges: &[Option<(u64, u64)>], file: usize, pos: FilePos) -> u64 {
    let mut done = 0;
    for (i, (f, r)) in inputs.iter().zip(ranges).enumerate() {
        let Some((s, e)) = *r else { continue };
        let e = e.min(f.size.max(s));
        if i < file {
            done += e - s;
        } else if i == file && pos.offset > s {
            done += pos.offset.min(e) - s;
        }
    }
    done
}

/// Documents read from the input, with where reading stopped.
struct RawChunk {
    texts: Vec<String>,
    /// Document ids (only when the job keeps them) and where each document is.
    ids: Vec<Option<String>>,
    places: Vec<(usize, String)>,
    /// The input and position after the chunk's last record.
    end: (usize, FilePos),
    bytes: u64,
    records: u64,
    skipped: u64,
    replaced: u64,
    truncated: u64,
}

fn read_chunks(
    inputs: &[InputFile],
    ranges: &[Option<(u64, u64)>],
    opts: &Options,
    start: (usize, FilePos),
    tx: &SyncSender<Result<RawChunk>>,
) {
    let fresh = |end| RawChunk {
        texts: Vec::new(),
        ids: Vec::new(),
        places: Vec::new(),
        end,
        bytes: 0,
        records: 0,
        skipped: 0,
        replaced: 0,
        truncated: 0,
    };
    let mut chunk = fresh(start);
    let result = (|| -> Result<()> {
        for (i, file) in inputs.iter().enumerate().skip(start.0) {
            let Some(range) = ranges[i] else {
                chunk.end = (i + 1, FilePos::default());
                continue;
            };
            let pos = if i == start.0 { start.1 } else { FilePos::default() };
            let mut reader = Reader::open(file, range, pos, opts)?;
            while let Some(rec) = reader.next(file)? {
                chunk.records += 1;
                chunk.end = (i, reader.position());
                let text = match rec.text {
                    Text::Valid(t) => Some(t),
                    Text::BadUtf8 { lossy, at } => match opts.on_invalid {
                        OnInvalid::Replace => {
                            chunk.replaced += 1;
                            Some(lossy)
                        }
                        OnInvalid::Skip => None,
                        OnInvalid::Fail => {
                            return Err(Error::Input {
                                file: file.path.clone(),
                                location: rec.location,
                                problem: format!(
                                    "invalid UTF-8 at byte {at} of the text; pass --on-invalid skip or replace"
                                ),
                            })
                        }
                    },
                    Text::Missing(problem) => match opts.on_invalid {
                        OnInvalid::Fail => {
                            return Err(Error::Input {
                                file: file.path.clone(),
                                location: rec.location,
                                problem: format!("{problem}; pass --on-invalid skip to leave such records out"),
                            })
                        }
                        OnInvalid::Skip | OnInvalid::Replace => None,
                    },
                };
                let Some(text) = text else {
                    chunk.skipped += 1;
                    continue;
                };
                chunk.bytes += text.len() as u64;
                chunk.texts.push(text);
                if opts.id_field.is_some() {
                    chunk.ids.push(rec.id);
                }
                chunk.places.push((i, rec.location));
                if chunk.bytes >= opts.chunk_bytes {
                    let end = chunk.end;
                    if tx.send(Ok(std::mem::replace(&mut chunk, fresh(end)))).is_err() {
                        return Ok(());
                    }
                }
            }
            chunk.end = (i + 1, FilePos::default());
        }
        Ok(())
    })();
    let _ = match result {
        Err(e) => tx.send(Err(e)),
        Ok(()) if chunk.records > 0 || !chunk.texts.is_empty() || chunk.end != start => tx.send(Ok(chunk)),
        Ok(()) => Ok(()),
    };
}

/// Documents at least this long are cut between threads on their own (exactly; see
/// `Encoding::encode_ordinary_parallel`); shorter ones are spread over the threads whole.
const LONG_DOC: usize = 4 << 20;

fn encode_chunk(
    enc: &Tokenizer,
    raw: &mut RawChunk,
    framing: Framing,
    threads: usize,
    keep_ids: bool,
) -> Result<Encoded> {
    let texts = std::mem::take(&mut raw.texts);
    let encoded: Vec<Result<Vec<Rank>, ferrotok::Error>> = if texts.iter().any(|t| t.len() >= LONG_DOC) && threads > 1 {
        texts.iter().map(|t| if t.len() >= LONG_DOC { enc.encode_long(t, threads) } else { enc.encode(t) }).collect()
    } else {
        parallel::map(&texts, threads, |t| enc.encode(t))
    };
    let total: usize = encoded.iter().map(|r| r.as_ref().map_or(0, Vec::len)).sum();
    let mut out = Encoded::new();
    out.ids.reserve(total + 2 * texts.len());
    for (k, r) in encoded.into_iter().enumerate() {
        let mut ids = r.map_err(|e| {
            let (file, location) = raw.places.get(k).cloned().unwrap_or_default();
            Error::Input { file: file.to_string(), location, problem: e.to_string() }
        })?;
        if let Some(max) = framing.max_tokens {
            let room = max - usize::from(framing.bos.is_some()) - usize::from(framing.eot.is_some());
            if ids.len() > room {
                ids.truncate(room);
                raw.truncated += 1;
            }
        }
        out.ids.extend(framing.bos);
        out.ids.extend_from_slice(&ids);
        out.ids.extend(framing.eot);
        out.starts.push(out.ids.len());
    }
    if keep_ids {
        out.doc_ids = std::mem::take(&mut raw.ids);
    }
    Ok(out)
}
