//! Inputs: finding the files, identifying them, splitting them into shards, and reading
//! them as a stream of records (a line, a JSON object, a Parquet row or a whole file).
//!
//! Sharding: the inputs, in order, form one byte space of `sum(sizes)` bytes, and shard `i/n`
//! owns the records that *start* in `[i*T/n, (i+1)*T/n)`. Uncompressed line files (JSONL, text
//! with `--by-line`) are cut inside the file at line starts; any other file is one unit that
//! belongs to the shard where it starts. So the shards, concatenated in order, are exactly the
//! single-run result, and no record is in two shards or none.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use arrow_array::{Array, ArrayRef, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::options::{InputFormat, Options, Shard};
use crate::tokenizer::hex;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A whole file is one document, or each line is one with `--by-line`.
    Text,
    /// One JSON object per line.
    Jsonl,
    Parquet,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One input file as the job saw it when it started.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InputFile {
    /// As given or found; `-` is standard input.
    pub path: String,
    pub kind: Kind,
    pub compression: Compression,
    pub size: u64,
    /// Hex SHA-256 of the size and of sampled blocks (the first and last MiB and 64 blocks of
    /// 64 KiB spread between; every byte of files up to 8 MiB). Empty for standard input.
    pub checksum: String,
}

impl InputFile {
    pub fn is_stdin(&self) -> bool {
        self.path == "-"
    }

    /// Whether the file can be cut at line starts (for shards) and entered by seeking (to resume).
    pub fn splittable(&self, by_line: bool) -> bool {
        !self.is_stdin()
            && self.compression == Compression::None
            && (self.kind == Kind::Jsonl || (self.kind == Kind::Text && by_line))
    }
}

/// Extensions that a directory walk picks up (before any `.gz` or `.zst`).
const KNOWN: [&str; 6] = ["txt", "text", "jsonl", "ndjson", "json", "parquet"];

fn split_ext(path: &Path) -> (Compression, Option<String>) {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let (compression, rest) = if let Some(r) = name.strip_suffix(".gz") {
        (Compression::Gzip, r.to_owned())
    } else if let Some(r) = name.strip_suffix(".zst") {
        (Compression::Zstd, r.to_owned())
    } else {
        (Compression::None, name)
    };
    let ext = rest.rsplit_once('.').map(|(_, e)| e.to_owned());
    (compression, ext)
}

fn kind_of(ext: Option<&str>, format: InputFormat) -> Kind {
    match format {
        InputFormat::Text => Kind::Text,
        InputFormat::Jsonl => Kind::Jsonl,
        InputFormat::Parquet => Kind::Parquet,
        InputFormat::Auto => match ext {
            Some("jsonl" | "ndjson" | "json") => Kind::Jsonl,
            Some("parquet") => Kind::Parquet,
            _ => Kind::Text,
        },
    }
}

/// Expands the arguments (files, directories walked in sorted order, globs, `-`) into input
/// files, in a deterministic order, and identifies each.
pub fn resolve(args: &[String], opts: &Options) -> Result<Vec<InputFile>> {
    if args.is_empty() {
        return Err(Error::Options("no inputs: give files, directories, globs or - for standard input".into()));
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    for a in args {
        if a == "-" {
            paths.push(PathBuf::from("-"));
            continue;
        }
        let p = Path::new(a);
        if p.is_dir() {
            let before = paths.len();
            walk(p, &mut paths)?;
            if paths.len() == before {
                return Err(Error::Options(format!(
                    "{a}: the directory has no input files (.{} optionally .gz or .zst)",
                    KNOWN.join(", .")
                )));
            }
        } else if p.exists() {
            paths.push(p.to_owned());
        } else if a.contains(['*', '?', '[']) {
            let pattern = glob::glob(a).map_err(|e| Error::Options(format!("bad glob {a:?}: {e}")))?;
            let mut found: Vec<PathBuf> = pattern.filter_map(|r| r.ok()).filter(|p| p.is_file()).collect();
            if found.is_empty() {
                return Err(Error::Options(format!("{a}: no file matches")));
            }
            found.sort();
            paths.extend(found);
        } else {
            return Err(Error::Io {
                path: p.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            });
        }
    }
    if paths.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err(Error::Options("standard input (-) can be read only once".into()));
    }
    paths.iter().map(|p| identify(p, opts.input_format)).collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if split_ext(&p).1.is_some_and(|e| KNOWN.contains(&e.as_str())) {
            out.push(p);
        }
    }
    Ok(())
}

fn identify(path: &Path, format: InputFormat) -> Result<InputFile> {
    let (compression, ext) = split_ext(path);
    let kind = kind_of(ext.as_deref(), format);
    if path.as_os_str() == "-" {
        if kind == Kind::Parquet {
            return Err(Error::Options("Parquet cannot be read from standard input".into()));
        }
        return Ok(InputFile {
            path: "-".into(),
            kind,
            compression: Compression::None,
            size: 0,
            checksum: String::new(),
        });
    }
    if kind == Kind::Parquet && compression != Compression::None {
        return Err(Error::Options(format!(
            "{}: Parquet files compress their own pages; a compressed .parquet file cannot be read",
            path.display()
        )));
    }
    let mut f = File::open(path).map_err(Error::io(path))?;
    let size = f.metadata().map_err(Error::io(path))?.len();
    let checksum = sampled_checksum(&mut f, size).map_err(Error::io(path))?;
    Ok(InputFile { path: path.display().to_string(), kind, compression, size, checksum })
}

fn sampled_checksum(f: &mut File, size: u64) -> std::io::Result<String> {
    const MIB: u64 = 1 << 20;
    let mut h = Sha256::new();
    h.update(size.to_le_bytes());
    let mut block = |h: &mut Sha256, at: u64, len: u64| -> std::io::Result<()> {
        let mut buf = vec![0u8; len as usize];
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut buf)?;
        h.update(&buf);
        Ok(())
    };
    if size <= 8 * MIB {
        block(&mut h, 0, size)?;
    } else {
        block(&mut h, 0, MIB)?;
        let span = size - 2 * MIB - 64 * 1024;
        for i in 0..64u64 {
            block(&mut h, MIB + span * i / 63, 64 * 1024)?;
        }
        block(&mut h, size - MIB, MIB)?;
    }
    Ok(hex(&h.finalize()))
}

/// The part of one input that a shard reads: records starting in `[start, end)`, by raw byte
/// offset. `None`: none of it.
pub fn shard_ranges(inputs: &[InputFile], shard: Option<Shard>, by_line: bool) -> Vec<Option<(u64, u64)>> {
    let Some(shard) = shard else {
        return inputs.iter().map(|f| Some((0, f.size.max(1)))).collect();
    };
    let total: u64 = inputs.iter().map(|f| f.size).sum();
    let cut = |k: u64| -> u64 { (u128::from(total) * u128::from(k) / u128::from(shard.count)) as u64 };
    let (lo, hi) = (cut(shard.index), cut(shard.index + 1));
    let last = shard.index + 1 == shard.count;
    let mut ranges = Vec::with_capacity(inputs.len());
    let mut base = 0u64;
    for f in inputs {
        let (start, end) = (base, base + f.size);
        base = end;
        let in_shard = |at: u64| at >= lo && (at < hi || last);
        let r = if f.splittable(by_line) && f.size > 0 {
            let (s, e) = (start.max(lo), if last { end } else { end.min(hi) });
            (s < e).then(|| (s - start, e - start))
        } else {
            // Whole-file units (and empty files) go where they start; the last shard takes
            // everything from its start on, so that rounding can never drop a file.
            in_shard(start).then_some((0, f.size.max(1)))
        };
        ranges.push(r);
    }
    ranges
}

/// How far into one input a job is: the byte where the next record starts (line files that can
/// be entered by seeking) and the number of records already consumed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FilePos {
    pub offset: u64,
    pub records: u64,
}

/// A document's text as read.
pub enum Text {
    Valid(String),
    /// Not UTF-8 at byte `at` of the record; `lossy` has U+FFFD in place of the bad bytes.
    BadUtf8 {
        lossy: String,
        at: usize,
    },
    /// No text at all (bad JSON, a missing, null or non-string field).
    Missing(String),
}

impl Text {
    fn from_bytes(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(s) => Self::Valid(s),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                Self::BadUtf8 { lossy: String::from_utf8_lossy(e.as_bytes()).into_owned(), at }
            }
        }
    }
}

/// One record of an input.
pub struct Record {
    pub text: Text,
    pub id: Option<String>,
    /// `line 12`, `row 5` or `file`: where the record is, for messages.
    pub location: String,
}

/// Reads the records of one input from a position up to the end of its shard range.
pub struct Reader {
    inner: Inner,
    pos: FilePos,
    end: u64,
}

enum Inner {
    Lines {
        reader: Box<dyn BufRead + Send>,
        jsonl: bool,
        field: String,
        id_field: Option<String>,
    },
    Whole {
        reader: Option<Box<dyn Read + Send>>,
    },
    Parquet {
        reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
        batch: Option<(ArrayRef, Option<ArrayRef>)>,
        row: usize,
        path: PathBuf,
        column: String,
    },
}

fn open_raw(file: &InputFile) -> Result<Box<dyn Read + Send>> {
    if file.is_stdin() {
        return Ok(Box::new(std::io::stdin()));
    }
    let path = Path::new(&file.path);
    let f = File::open(path).map_err(Error::io(path))?;
    Ok(match file.compression {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, f))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(f).map_err(Error::io(path))?),
    })
}

impl Reader {
    /// Opens `file` to read its records in `range`, starting at `pos` (a position this reader
    /// reported before, or the default to start at the beginning of the range).
    pub fn open(file: &InputFile, range: (u64, u64), pos: FilePos, opts: &Options) -> Result<Self> {
        let path = Path::new(&file.path);
        let mut start_offset = pos.offset;
        let inner = match file.kind {
            Kind::Parquet => {
                let f = File::open(path).map_err(Error::io(path))?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(Error::parquet(path))?;
                let schema = builder.parquet_schema();
                let mut wanted = vec![opts.column.as_str()];
                wanted.extend(opts.id_field.as_deref());
                let mut leaves = Vec::new();
                for name in &wanted {
                    let i = (0..schema.num_columns()).find(|&i| schema.column(i).path().string() == *name).ok_or_else(
                        || Error::Input {
                            file: file.path.clone(),
                            location: "schema".into(),
                            problem: format!("no column {name:?}"),
                        },
                    )?;
                    leaves.push(i);
                }
                let mask = ProjectionMask::leaves(schema, leaves);
                let reader = builder
                    .with_projection(mask)
                    .with_batch_size(1024)
                    .with_offset(usize::try_from(pos.records).unwrap_or(usize::MAX))
                    .build()
                    .map_err(Error::parquet(path))?;
                Inner::Parquet { reader, batch: None, row: 0, path: path.to_owned(), column: opts.column.clone() }
            }
            Kind::Text if !opts.by_line => {
                Inner::Whole { reader: if pos.records == 0 { Some(open_raw(file)?) } else { None } }
            }
            Kind::Text | Kind::Jsonl => {
                let jsonl = file.kind == Kind::Jsonl;
                let raw: Box<dyn Read + Send> = if file.splittable(opts.by_line) {
                    // Enter by seeking: at the saved position, or at the first line that
                    // starts in the shard's range.
                    let offset = if pos == FilePos::default() { line_start(file, range.0)? } else { pos.offset };
                    let mut f = File::open(path).map_err(Error::io(path))?;
                    f.seek(SeekFrom::Start(offset)).map_err(Error::io(path))?;
                    start_offset = offset;
                    Box::new(f)
                } else {
                    open_raw(file)?
                };
                let mut reader: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(1 << 20, raw));
                if !file.splittable(opts.by_line) {
                    // Cannot seek: read past the records a previous run consumed.
                    let mut discard = Vec::new();
                    for _ in 0..pos.records {
                        discard.clear();
                        if reader.read_until(b'\n', &mut discard).map_err(Error::io(path))? == 0 {
                            break;
                        }
                    }
                }
                Inner::Lines { reader, jsonl, field: opts.field.clone(), id_field: opts.id_field.clone() }
            }
        };
        let end = if file.splittable(opts.by_line) { range.1 } else { u64::MAX };
        Ok(Self { inner, pos: FilePos { offset: start_offset, records: pos.records }, end })
    }

    /// Where the next record starts.
    pub fn position(&self) -> FilePos {
        self.pos
    }

    /// The next record, or `None` at the end of the file or of the shard's range.
    pub fn next(&mut self, file: &InputFile) -> Result<Option<Record>> {
        let path = Path::new(&file.path);
        match &mut self.inner {
            Inner::Whole { reader } => {
                let Some(mut r) = reader.take() else { return Ok(None) };
                let mut bytes = Vec::new();
                r.read_to_end(&mut bytes).map_err(Error::io(path))?;
                self.pos.records += 1;
                self.pos.offset = file.size;
                Ok(Some(Record { text: Text::from_bytes(bytes), id: None, location: "file".into() }))
            }
            Inner::Lines { reader, jsonl, field, id_field } => loop {
                if self.pos.offset >= self.end {
                    return Ok(None);
                }
                let mut line = Vec::new();
                let n = reader.read_until(b'\n', &mut line).map_err(Error::io(path))?;
                if n == 0 {
                    return Ok(None);
                }
                self.pos.offset += n as u64;
                self.pos.records += 1;
                let location = format!("line {}", self.pos.records);
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                if !*jsonl {
                    if line.is_empty() {
                        continue;
                    }
                    return Ok(Some(Record { text: Text::from_bytes(line), id: None, location }));
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let (text, id) = json_record(&line, field, id_field.as_deref());
                return Ok(Some(Record { text, id, location }));
            },
            Inner::Parquet { reader, batch, row, path, column } => loop {
                if let Some((texts, ids)) = batch {
                    if *row < texts.len() {
                        let r = *row;
                        *row += 1;
                        self.pos.records += 1;
                        let text = array_text(texts, r, column);
                        let id = ids.as_ref().and_then(|a| array_id(a, r));
                        return Ok(Some(Record { text, id, location: format!("row {}", self.pos.records) }));
                    }
                }
                let Some(b) = reader.next() else { return Ok(None) };
                let b: RecordBatch = b.map_err(Error::parquet(path))?;
                let texts = b.column(0).clone();
                check_text_type(&texts, file, column)?;
                *batch = Some((texts, (b.num_columns() > 1).then(|| b.column(1).clone())));
                *row = 0;
            },
        }
    }
}

/// The offset of the first line that starts at or after `at` in a plain file.
fn line_start(file: &InputFile, at: u64) -> Result<u64> {
    if at == 0 {
        return Ok(0);
    }
    let path = Path::new(&file.path);
    let mut f = File::open(path).map_err(Error::io(path))?;
    f.seek(SeekFrom::Start(at - 1)).map_err(Error::io(path))?;
    let mut discard = Vec::new();
    let n = BufReader::new(f).read_until(b'\n', &mut discard).map_err(Error::io(path))?;
    Ok(at - 1 + n as u64)
}

fn json_record(line: &[u8], field: &str, id_field: Option<&str>) -> (Text, Option<String>) {
    let value: serde_json::Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            // Bad UTF-8 inside a string is worth saying as such.
            if let Err(u) = std::str::from_utf8(line) {
                let lossy = String::from_utf8_lossy(line);
                return match serde_json::from_str::<serde_json::Value>(&lossy) {
                    Ok(v) => {
                        let id = id_field.and_then(|f| id_string(v.get(f)));
                        match v.get(field).and_then(|t| t.as_str()) {
                            Some(t) => (Text::BadUtf8 { lossy: t.to_owned(), at: u.valid_up_to() }, id),
                            None => (Text::Missing(format!("no text field {field:?}")), id),
                        }
                    }
                    Err(_) => (Text::Missing(format!("invalid UTF-8 at byte {}", u.valid_up_to())), None),
                };
            }
            return (Text::Missing(format!("invalid JSON: {e}")), None);
        }
    };
    let id = id_field.and_then(|f| id_string(value.get(f)));
    let text = match value.get(field) {
        Some(serde_json::Value::String(s)) => Text::Valid(s.clone()),
        Some(serde_json::Value::Null) | None => Text::Missing(format!("no text field {field:?}")),
        Some(other) => Text::Missing(format!("field {field:?} is not a string but {}", json_type(other))),
    };
    (text, id)
}

fn id_string(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn check_text_type(a: &ArrayRef, file: &InputFile, column: &str) -> Result<()> {
    use arrow_schema::DataType as T;
    match a.data_type() {
        T::Utf8 | T::LargeUtf8 | T::Utf8View | T::Binary | T::LargeBinary | T::BinaryView => Ok(()),
        other => Err(Error::Input {
            file: file.path.clone(),
            location: "schema".into(),
            problem: format!("column {column:?} has type {other}, not a string type"),
        }),
    }
}

fn array_text(a: &ArrayRef, row: usize, column: &str) -> Text {
    use arrow_array::cast::AsArray;
    use arrow_schema::DataType as T;
    if a.is_null(row) {
        return Text::Missing(format!("column {column:?} is null"));
    }
    match a.data_type() {
        T::Utf8 => Text::Valid(a.as_string::<i32>().value(row).to_owned()),
        T::LargeUtf8 => Text::Valid(a.as_string::<i64>().value(row).to_owned()),
        T::Utf8View => Text::Valid(a.as_string_view().value(row).to_owned()),
        T::Binary => Text::from_bytes(a.as_binary::<i32>().value(row).to_vec()),
        T::LargeBinary => Text::from_bytes(a.as_binary::<i64>().value(row).to_vec()),
        T::BinaryView => Text::from_bytes(a.as_binary_view().value(row).to_vec()),
        other => Text::Missing(format!("column {column:?} has type {other}")),
    }
}

fn array_id(a: &ArrayRef, row: usize) -> Option<String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type, UInt32Type, UInt64Type};
    use arrow_schema::DataType as T;
    if a.is_null(row) {
        return None;
    }
    Some(match a.data_type() {
        T::Utf8 => a.as_string::<i32>().value(row).to_owned(),
        T::LargeUtf8 => a.as_string::<i64>().value(row).to_owned(),
        T::Utf8View => a.as_string_view().value(row).to_owned(),
        T::Int32 => a.as_primitive::<Int32Type>().value(row).to_string(),
        T::Int64 => a.as_primitive::<Int64Type>().value(row).to_string(),
        T::UInt32 => a.as_primitive::<UInt32Type>().value(row).to_string(),
        T::UInt64 => a.as_primitive::<UInt64Type>().value(row).to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, kind: Kind, compression: Compression) -> InputFile {
        InputFile { path: "x".into(), kind, compression, size, checksum: String::new() }
    }

    #[test]
    fn shards_cover_every_byte_of_splittable_files_once_and_whole_files_once() {
        let inputs = vec![
            file(1000, Kind::Jsonl, Compression::None),
            file(10, Kind::Text, Compression::None),
            file(0, Kind::Jsonl, Compression::None),
            file(777, Kind::Jsonl, Compression::Gzip),
            file(5, Kind::Text, Compression::None),
        ];
        for n in 1..12u64 {
            let per_shard: Vec<_> =
                (0..n).map(|index| shard_ranges(&inputs, Some(Shard { index, count: n }), false)).collect();
            for (i, f) in inputs.iter().enumerate() {
                let owners: Vec<(u64, u64)> = per_shard.iter().filter_map(|r| r[i]).collect();
                if f.splittable(false) && f.size > 0 {
                    // Adjacent, non-overlapping ranges covering the file.
                    let mut at = 0;
                    for (s, e) in owners {
                        assert_eq!(s, at, "n={n} file {i}");
                        at = e;
                    }
                    assert_eq!(at, f.size, "n={n} file {i}");
                } else {
                    assert_eq!(owners.len(), 1, "n={n} file {i} must be in exactly one shard");
                }
            }
        }
    }

    #[test]
    fn a_shard_starting_mid_line_begins_at_the_next_line() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("ferrotok-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let path = dir.join("l.txt");
        std::fs::write(&path, "alpha\nbeta\ngamma\n").map_err(Error::io(&path))?;
        let f = InputFile {
            path: path.display().to_string(),
            kind: Kind::Text,
            compression: Compression::None,
            size: 17,
            checksum: String::new(),
        };
        let opts = Options { by_line: true, ..Options::default() };
        let read = |range| -> Result<Vec<String>> {
            let mut r = Reader::open(&f, range, FilePos::default(), &opts)?;
            let mut out = Vec::new();
            while let Some(rec) = r.next(&f)? {
                if let Text::Valid(t) = rec.text {
                    out.push(t);
                }
            }
            Ok(out)
        };
        assert_eq!(read((0, 3))?, ["alpha"]);
        assert_eq!(read((3, 7))?, ["beta"]); // "beta" starts at 6
        assert_eq!(read((6, 17))?, ["beta", "gamma"]);
        assert_eq!(read((7, 17))?, ["gamma"]);
        assert!(read((12, 17))?.is_empty());
        std::fs::remove_dir_all(&dir).map_err(Error::io(&dir))?;
        Ok(())
    }
}
