//! Output formats. A sink appends encoded chunks to files in the job's work directory, makes
//! them durable on `sync`, can be reopened at any synced state (longer files are cut back),
//! and at the end stages the finished files, which the job then renames into place.
//!
//! Files in the work directory: `tokens` (the token stream, behind a placeholder header for
//! `npy` and llm.c `bin`), `lengths` (u32 tokens per document, for `megatron` and `npy`), and
//! `parts/part-NNNNNNNN.parquet` (one per chunk, for `parquet`; merged in order at the end).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, ListArray, RecordBatch, StringArray, UInt32Array};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fault;
use crate::options::{Dtype, Format, Header};

/// Encoded documents, flat: `ids[starts[i]..starts[i+1]]` is document `i`.
#[derive(Default)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// `n_docs + 1` offsets into `ids`, starting at 0.
    pub starts: Vec<usize>,
    /// One entry per document when the job keeps document ids, else empty.
    pub doc_ids: Vec<Option<String>>,
}

impl Encoded {
    pub fn new() -> Self {
        Self { ids: Vec::new(), starts: vec![0], doc_ids: Vec::new() }
    }

    pub fn docs(&self) -> usize {
        self.starts.len() - 1
    }
}

/// What is durably written: the job's checkpoint records it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkState {
    pub tokens_bytes: u64,
    pub lengths_bytes: u64,
    pub parts: u64,
}

/// The layout of a job's output.
#[derive(Clone, Debug)]
pub struct Layout {
    pub format: Format,
    pub dtype: Dtype,
    pub header: Option<Header>,
    pub with_doc_ids: bool,
}

const LLMC_HEADER: u64 = 1024;
const NPY_HEADER: u64 = 128;

impl Layout {
    fn header_bytes(&self) -> u64 {
        match (self.format, self.header) {
            (Format::Bin, Some(Header::Llmc)) => LLMC_HEADER,
            (Format::Npy, _) => NPY_HEADER,
            _ => 0,
        }
    }

    fn keeps_lengths(&self) -> bool {
        matches!(self.format, Format::Megatron | Format::Npy)
    }

    /// The finished files: (name in the work directory, suffix after the output prefix).
    pub fn outputs(&self) -> Vec<(&'static str, &'static str)> {
        match self.format {
            Format::Bin => vec![("tokens", ".bin")],
            Format::Megatron => vec![("tokens", ".bin"), ("final.idx", ".idx")],
            Format::Npy => vec![("tokens", ".npy"), ("final.offsets.npy", ".offsets.npy")],
            Format::Parquet => vec![("final.parquet", ".parquet")],
        }
    }

    fn schema(&self) -> Arc<Schema> {
        let mut fields =
            vec![Field::new("ids", DataType::List(Arc::new(Field::new("item", DataType::UInt32, false))), false)];
        if self.with_doc_ids {
            fields.push(Field::new("id", DataType::Utf8, true));
        }
        Arc::new(Schema::new(fields))
    }
}

pub struct Sink {
    layout: Layout,
    dir: PathBuf,
    tokens: Option<BufWriter<File>>,
    lengths: Option<BufWriter<File>>,
    state: SinkState,
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(Error::io(path))
}

impl Sink {
    /// Opens the sink in `dir` at `state` (the default state: a fresh start). Bytes past the
    /// state, written by a run that crashed before its next checkpoint, are cut off.
    pub fn open(dir: &Path, layout: Layout, state: SinkState) -> Result<Self> {
        let mut state = state;
        if state == SinkState::default() {
            state.tokens_bytes = layout.header_bytes();
        }
        let mut tokens = None;
        let mut lengths = None;
        if layout.format != Format::Parquet {
            let path = dir.join("tokens");
            let mut f = open_rw(&path)?;
            f.set_len(state.tokens_bytes).map_err(Error::io(&path))?;
            f.seek(SeekFrom::Start(state.tokens_bytes)).map_err(Error::io(&path))?;
            tokens = Some(BufWriter::with_capacity(1 << 20, f));
        }
        if layout.keeps_lengths() {
            let path = dir.join("lengths");
            let mut f = open_rw(&path)?;
            f.set_len(state.lengths_bytes).map_err(Error::io(&path))?;
            f.seek(SeekFrom::Start(state.lengths_bytes)).map_err(Error::io(&path))?;
            lengths = Some(BufWriter::with_capacity(1 << 16, f));
        }
        if layout.format == Format::Parquet {
            let parts = dir.join("parts");
            std::fs::create_dir_all(&parts).map_err(Error::io(&parts))?;
            // Parts from chunks after the checkpoint are redone.
            for p in list_parts(&parts)? {
                if part_index(&p).is_none_or(|i| i >= state.parts) {
                    std::fs::remove_file(&p).map_err(Error::io(&p))?;
                }
            }
        }
        Ok(Self { layout, dir: dir.to_owned(), tokens, lengths, state })
    }

    /// Appends one chunk (chunk number `index`, counted from 0 over the whole job).
    pub fn write(&mut self, chunk: &Encoded, index: u64) -> Result<()> {
        let path = self.dir.join("tokens");
        if let Some(w) = &mut self.tokens {
            let mut buf = Vec::with_capacity(chunk.ids.len() * self.layout.dtype.width());
            match self.layout.dtype {
                Dtype::Uint16 => chunk.ids.iter().for_each(|&id| buf.extend_from_slice(&(id as u16).to_le_bytes())),
                Dtype::Uint32 | Dtype::Int32 => {
                    chunk.ids.iter().for_each(|&id| buf.extend_from_slice(&id.to_le_bytes()))
                }
            }
            w.write_all(&buf).map_err(Error::io(&path))?;
            self.state.tokens_bytes += buf.len() as u64;
            fault::point();
        }
        if let Some(w) = &mut self.lengths {
            let path = self.dir.join("lengths");
            let mut buf = Vec::with_capacity(chunk.docs() * 4);
            for d in chunk.starts.windows(2) {
                let n = u32::try_from(d[1] - d[0])
                    .map_err(|_| Error::Options(format!("a document has {} tokens, more than 2^32", d[1] - d[0])))?;
                buf.extend_from_slice(&n.to_le_bytes());
            }
            w.write_all(&buf).map_err(Error::io(&path))?;
            self.state.lengths_bytes += buf.len() as u64;
        }
        if self.layout.format == Format::Parquet {
            if chunk.docs() > 0 {
                self.write_part(chunk, index)?;
            }
            self.state.parts = index + 1;
        }
        Ok(())
    }

    fn write_part(&self, chunk: &Encoded, index: u64) -> Result<()> {
        let parts = self.dir.join("parts");
        let tmp = parts.join(format!("part-{index:08}.tmp"));
        let dest = parts.join(format!("part-{index:08}.parquet"));
        let schema = self.layout.schema();
        let item = Arc::new(Field::new("item", DataType::UInt32, false));
        let offsets: Vec<i32> = chunk
            .starts
            .iter()
            .map(|&s| i32::try_from(s))
            .collect::<Result<_, _>>()
            .map_err(|_| Error::Options("a chunk holds more than 2^31 tokens; use a smaller chunk".into()))?;
        let values = Arc::new(UInt32Array::from(chunk.ids.clone()));
        let list =
            ListArray::try_new(item, OffsetBuffer::new(offsets.into()), values, None).map_err(Error::parquet(&tmp))?;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(list)];
        if self.layout.with_doc_ids {
            columns.push(Arc::new(StringArray::from(chunk.doc_ids.clone())));
        }
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(Error::parquet(&tmp))?;
        let f = File::create(&tmp).map_err(Error::io(&tmp))?;
        let mut w = ArrowWriter::try_new(f, schema, Some(writer_props())).map_err(Error::parquet(&tmp))?;
        w.write(&batch).map_err(Error::parquet(&tmp))?;
        let f = w.into_inner().map_err(Error::parquet(&tmp))?;
        f.sync_all().map_err(Error::io(&tmp))?;
        fault::point();
        std::fs::rename(&tmp, &dest).map_err(Error::io(&dest))?;
        Ok(())
    }

    /// Flushes and syncs everything written, and returns the state to record.
    pub fn sync(&mut self) -> Result<SinkState> {
        for (w, name) in [(&mut self.tokens, "tokens"), (&mut self.lengths, "lengths")] {
            if let Some(w) = w {
                let path = self.dir.join(name);
                w.flush().map_err(Error::io(&path))?;
                w.get_ref().sync_data().map_err(Error::io(&path))?;
            }
        }
        fault::point();
        Ok(self.state)
    }

    /// Writes the finished files into the work directory (idempotent: a crash here is
    /// redone from the same synced state).
    pub fn stage(mut self) -> Result<()> {
        self.sync()?;
        let n_tokens = (self.state.tokens_bytes - self.layout.header_bytes()) / self.layout.dtype.width() as u64;
        let tokens_path = self.dir.join("tokens");
        let lengths = if self.layout.keeps_lengths() { self.read_lengths()? } else { Vec::new() };
        match self.layout.format {
            Format::Bin => {
                if self.layout.header == Some(Header::Llmc) {
                    let version: i32 = if self.layout.dtype == Dtype::Uint16 { 1 } else { 2 };
                    let n = i32::try_from(n_tokens).map_err(|_| {
                        Error::Options(format!(
                            "llm.c's header holds at most 2^31-1 tokens; this output has {n_tokens}"
                        ))
                    })?;
                    let mut header = vec![0u8; LLMC_HEADER as usize];
                    for (i, v) in [20_240_520i32, version, n].into_iter().enumerate() {
                        header[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    write_at(&tokens_path, 0, &header)?;
                }
            }
            Format::Npy => {
                let descr = if self.layout.dtype == Dtype::Uint16 { "<u2" } else { "<u4" };
                write_at(&tokens_path, 0, &npy_header(descr, n_tokens)?)?;
                let mut body = Vec::with_capacity((lengths.len() + 1) * 8);
                let mut at = 0u64;
                body.extend_from_slice(&at.to_le_bytes());
                for &n in &lengths {
                    at += u64::from(n);
                    body.extend_from_slice(&at.to_le_bytes());
                }
                let mut file = npy_header("<i8", lengths.len() as u64 + 1)?;
                file.extend_from_slice(&body);
                write_new(&self.dir.join("final.offsets.npy"), &file)?;
            }
            Format::Megatron => {
                let code: u8 = match self.layout.dtype {
                    Dtype::Uint16 => 8,
                    Dtype::Int32 => 4,
                    Dtype::Uint32 => return Err(Error::Options("Megatron's format has no uint32; use int32".into())),
                };
                let n = lengths.len() as u64;
                let mut idx = Vec::with_capacity(34 + lengths.len() * 20 + 8);
                idx.extend_from_slice(b"MMIDIDX\x00\x00");
                idx.extend_from_slice(&1u64.to_le_bytes());
                idx.push(code);
                idx.extend_from_slice(&n.to_le_bytes());
                idx.extend_from_slice(&(n + 1).to_le_bytes());
                for &len in &lengths {
                    let len = i32::try_from(len).map_err(|_| {
                        Error::Options(format!("a document has {len} tokens; Megatron's index holds at most 2^31-1"))
                    })?;
                    idx.extend_from_slice(&len.to_le_bytes());
                }
                let width = self.layout.dtype.width() as i64;
                let mut pointer = 0i64;
                for &len in &lengths {
                    idx.extend_from_slice(&pointer.to_le_bytes());
                    pointer += i64::from(len) * width;
                }
                for i in 0..=n {
                    idx.extend_from_slice(&(i as i64).to_le_bytes());
                }
                write_new(&self.dir.join("final.idx"), &idx)?;
            }
            Format::Parquet => self.merge_parts()?,
        }
        if self.layout.format != Format::Parquet {
            File::open(&tokens_path).and_then(|f| f.sync_all()).map_err(Error::io(&tokens_path))?;
        }
        fault::point();
        Ok(())
    }

    fn read_lengths(&self) -> Result<Vec<u32>> {
        let path = self.dir.join("lengths");
        let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
        Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn merge_parts(&self) -> Result<()> {
        let dest = self.dir.join("final.parquet");
        let tmp = self.dir.join("final.parquet.tmp");
        let schema = self.layout.schema();
        let f = File::create(&tmp).map_err(Error::io(&tmp))?;
        let mut w =
            ArrowWriter::try_new(BufWriter::new(f), schema, Some(writer_props())).map_err(Error::parquet(&tmp))?;
        for part in list_parts(&self.dir.join("parts"))? {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&part).map_err(Error::io(&part))?)
                .and_then(|b| b.with_batch_size(1 << 16).build())
                .map_err(Error::parquet(&part))?;
            for batch in reader {
                w.write(&batch.map_err(Error::parquet(&part))?).map_err(Error::parquet(&tmp))?;
            }
            // One row group per chunk, as in the parts.
            w.flush().map_err(Error::parquet(&tmp))?;
        }
        let f = w.into_inner().map_err(Error::parquet(&tmp))?;
        let f = f.into_inner().map_err(|e| Error::io(&tmp)(e.into_error()))?;
        f.sync_all().map_err(Error::io(&tmp))?;
        std::fs::rename(&tmp, &dest).map_err(Error::io(&dest))?;
        Ok(())
    }
}

fn writer_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(PqCompression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(usize::MAX))
        .set_created_by(format!("ferrotok {}", env!("CARGO_PKG_VERSION")))
        .build()
}

fn list_parts(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet" || e == "tmp"))
        .collect();
    parts.sort();
    // Leftover temporary files are incomplete parts: remove them.
    parts.retain(|p| {
        if p.extension().is_some_and(|e| e == "tmp") {
            let _ = std::fs::remove_file(p);
            false
        } else {
            true
        }
    });
    Ok(parts)
}

fn part_index(p: &Path) -> Option<u64> {
    p.file_stem()?.to_str()?.strip_prefix("part-")?.parse().ok()
}

/// A version 1.0 `.npy` header of exactly 128 bytes for a 1-D array.
fn npy_header(descr: &str, len: u64) -> Result<Vec<u8>> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({len},), }}");
    let total = NPY_HEADER as usize;
    let body = total - 10;
    if dict.len() + 1 > body {
        return Err(Error::Options(format!("array of {len} elements too long for the .npy header")));
    }
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&(body as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    Ok(h)
}

fn write_at(path: &Path, at: u64, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new().write(true).open(path).map_err(Error::io(path))?;
    f.seek(SeekFrom::Start(at)).map_err(Error::io(path))?;
    f.write_all(bytes).map_err(Error::io(path))?;
    f.sync_data().map_err(Error::io(path))
}

/// Writes a whole file durably: to a temporary name, synced, then renamed.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-write");
    let mut f = File::create(&tmp).map_err(Error::io(&tmp))?;
    f.write_all(bytes).map_err(Error::io(&tmp))?;
    f.sync_all().map_err(Error::io(&tmp))?;
    fault::point();
    std::fs::rename(&tmp, path).map_err(Error::io(path))?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads a file's bytes (tests and tools).
pub fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    BufReader::new(File::open(path).map_err(Error::io(path))?).read_to_end(&mut v).map_err(Error::io(path))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_128_bytes_and_parses_as_numpy_writes_it() -> Result<()> {
        for len in [0, 1, u64::from(u32::MAX) * 1000] {
            let h = npy_header("<u4", len)?;
            assert_eq!(h.len(), 128);
            assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
            assert_eq!(u16::from_le_bytes([h[8], h[9]]), 118);
            let dict = std::str::from_utf8(&h[10..]).unwrap_or_default();
            assert!(dict.starts_with(&format!("{{'descr': '<u4', 'fortran_order': False, 'shape': ({len},), }}")));
            assert!(dict.ends_with('\n'));
        }
        Ok(())
    }
}
