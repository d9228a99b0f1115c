//! One output file per state: Parquet through arrow-rs's `ArrowWriter`, or CSV / JSONL text,
//! written through the [`Storage`]. Local files are written under a temporary name in their
//! final directory and renamed once complete; on object stores a file is a multipart upload that
//! appears under its final name only when complete. Either way a file under its final name is
//! always whole.

// Without the `parquet` feature the row-group bounds and their accounting have no writer to
// serve; CSV and JSONL files are written the same either way.
#![cfg_attr(not(feature = "parquet"), allow(dead_code, unused_variables))]

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
#[cfg(feature = "parquet")]
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
#[cfg(feature = "parquet")]
use parquet::basic::{Compression, ZstdLevel};
#[cfg(feature = "parquet")]
use parquet::file::metadata::KeyValue;
#[cfg(feature = "parquet")]
use parquet::file::properties::WriterProperties;

use super::state::{csv_cells, StateLayout, CSV_COLUMNS};
use super::{ExportFormat, ParquetCompression};
use crate::error::{Error, Result};
use crate::model::Entry;
use crate::storage::{FileWriter, Location, Storage};

/// zstd level 3: zstd's own default, a good ratio at several hundred MB/s.
const ZSTD_LEVEL: i32 = 3;
/// Rows per Parquet row group at most (arrow-rs's default, stated so it stays put across
/// versions).
const ROW_GROUP_ROWS: usize = 1024 * 1024;
/// A row group is closed once its buffered data takes this much memory.
const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;
/// All open Parquet writers together may buffer this much (as arrow-rs counts it; the process
/// holds about three times that: at 48 MiB an export at --threads 2 peaked at 276-296 MB RSS,
/// at 32 MiB 219 MB) before the one being written closes its row group early: many states
/// written at once must not add up past the memory bound. 16 MiB since 3 M keys, where the
/// process grew to 253-263 MB at 32 MiB (235 MB at 16 MiB, same CPU, files 0.3% larger).
const ALL_ROW_GROUPS_BYTES: usize = 16 * 1024 * 1024;
/// A writer still buffering this much when a subtask ends closes its row group, so writers that
/// get no more rows do not hold memory until the end.
const IDLE_ROW_GROUP_BYTES: usize = 1024 * 1024;

/// The top-level columns written with Parquet dictionary encoding: the ones that repeat a few
/// values over many rows (the same operator, uid, state and kind in every row of a file, at most
/// 32768 key groups, namespaces such as windows that many keys share). Keys, user keys, values
/// and TTL timestamps are written plain (then zstd): they are mostly distinct, so a dictionary
/// only cost time until the writer gave it up (at its 1 MiB limit, again in every row group),
/// and left files larger (the 1 M-key bench heap savepoint: 110 MB of files, 78 MB with these
/// columns plain).
const DICTIONARY_COLUMNS: [&str; 6] = ["operator_id", "operator_uid", "state", "kind", "key_group", "namespace"];

/// What a chunk of entries became, ready to append (encoding runs outside the file's lock).
#[derive(Debug)]
pub enum Chunk {
    /// A Parquet record batch.
    Batch(RecordBatch),
    /// CSV or JSONL lines.
    Text(Vec<u8>),
}

impl Chunk {
    /// The memory it takes.
    pub fn memory_size(&self) -> usize {
        match self {
            Chunk::Batch(b) => b.get_array_memory_size(),
            Chunk::Text(t) => t.capacity(),
        }
    }
}

#[derive(Debug)]
enum Writer {
    #[cfg(feature = "parquet")]
    Parquet(Box<ArrowWriter<Box<dyn FileWriter>>>),
    Text(Box<dyn FileWriter>),
}

#[derive(Debug)]
struct Open {
    writer: Option<Writer>,
    rows: u64,
    opaque: u64,
    /// The writer's buffered bytes when last looked at (Parquet).
    buffered: usize,
}

/// What a finished file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Rows written.
    pub rows: u64,
    /// Opaque values among them.
    pub opaque: u64,
    /// File size.
    pub bytes: u64,
    /// Parquet row groups.
    pub row_groups: Option<usize>,
}

/// One state's output file.
#[derive(Debug)]
pub struct StateFile {
    /// The columns.
    pub layout: StateLayout,
    /// Path relative to the export directory, `/`-separated.
    pub relative: String,
    storage: Arc<dyn Storage>,
    path: Location,
    /// Where it is written meanwhile (`path` itself on object stores).
    temp: Location,
    format: ExportFormat,
    open: Mutex<Open>,
}

fn io_err(path: &Location, e: std::io::Error) -> Error {
    // A storage error travels inside the io::Error: unwrap it so it keeps its URL and status.
    match e.downcast::<Error>() {
        Ok(inner) => inner,
        Err(e) => Error::io(path.as_str(), e),
    }
}

#[cfg(feature = "parquet")]
fn parquet_err(path: &Location, e: parquet::errors::ParquetError) -> Error {
    Error::write(path.to_string(), e)
}

impl StateFile {
    /// Creates the file (under its temporary name) with its header or schema.
    pub fn create(
        layout: StateLayout,
        storage: Arc<dyn Storage>,
        dir: &Location,
        relative: String,
        format: ExportFormat,
        compression: ParquetCompression,
        file_meta: &[(String, String)],
    ) -> Result<StateFile> {
        let path = dir.join(&relative);
        let temp = if storage.is_object_store(&path) {
            path.clone()
        } else {
            // A dot file in the same directory: invisible to `*.parquet` globs, renamed in place.
            let parent = path.parent().unwrap_or_else(|| dir.clone());
            parent.join(&format!(".{}.flinksnap-tmp", path.file_name()))
        };
        let mut out = storage.create(&temp)?;
        let writer = match format {
            #[cfg(not(feature = "parquet"))]
            ExportFormat::Parquet => {
                let _ = (&layout, file_meta, compression);
                return Err(parquet_unsupported());
            }
            #[cfg(feature = "parquet")]
            ExportFormat::Parquet => {
                let codec = match compression {
                    ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).map_err(|e| parquet_err(&path, e))?),
                    ParquetCompression::Snappy => Compression::SNAPPY,
                    // LZ4_RAW, not the deprecated Hadoop-framed LZ4 that readers disagree on.
                    ParquetCompression::Lz4 => Compression::LZ4_RAW,
                    ParquetCompression::None => Compression::UNCOMPRESSED,
                };
                let kv = file_meta.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
                let mut props = WriterProperties::builder()
                    .set_compression(codec)
                    .set_created_by(format!("flinksnap {}", env!("CARGO_PKG_VERSION")))
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .set_key_value_metadata(Some(kv))
                    .set_dictionary_enabled(false);
                let leaves = ArrowSchemaConverter::new().convert(&layout.schema).map_err(|e| parquet_err(&path, e))?;
                for leaf in leaves.columns() {
                    if leaf.path().parts().first().is_some_and(|top| DICTIONARY_COLUMNS.contains(&top.as_str())) {
                        props = props.set_column_dictionary_enabled(leaf.path().clone(), true);
                    }
                }
                let props = props.build();
                let w = ArrowWriter::try_new(out, layout.schema.clone(), Some(props)).map_err(|e| parquet_err(&path, e))?;
                Writer::Parquet(Box::new(w))
            }
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(CSV_COLUMNS).map_err(|e| Error::write(path.to_string(), e))?;
                let header = w.into_inner().map_err(|e| Error::write(path.to_string(), e.into_error()))?;
                out.write_all(&header).map_err(|e| io_err(&temp, e))?;
                Writer::Text(out)
            }
            ExportFormat::Jsonl => Writer::Text(out),
        };
        Ok(StateFile { layout, relative, storage, path, temp, format, open: Mutex::new(Open { writer: Some(writer), rows: 0, opaque: 0, buffered: 0 }) })
    }

    /// Encodes entries of this state (any thread, no lock held).
    pub fn encode(&self, entries: &[Entry]) -> Result<Chunk> {
        let uid = self.layout.operator_uid.as_deref();
        Ok(match self.format {
            ExportFormat::Parquet => Chunk::Batch(self.layout.batch(entries).map_err(|e| {
                Error::Invalid(format!("operator {} state {:?}: {e}", self.layout.operator_id, self.layout.name))
            })?),
            ExportFormat::Jsonl => {
                let mut buf = Vec::with_capacity(entries.len() * 128);
                for e in entries {
                    // Writing JSON into a Vec cannot fail.
                    let _ = serde_json::to_writer(&mut buf, &e.to_json(uid));
                    buf.push(b'\n');
                }
                Chunk::Text(buf)
            }
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(Vec::with_capacity(entries.len() * 128));
                for e in entries {
                    w.write_record(csv_cells(e, uid)).map_err(|e| Error::write(self.path.to_string(), e))?;
                }
                Chunk::Text(w.into_inner().map_err(|e| Error::write(self.path.to_string(), e.into_error()))?)
            }
        })
    }

    /// Appends an encoded chunk of `rows` rows holding `opaque` opaque values. `buffered_total`
    /// counts what every Parquet writer buffers, to keep all of them within one memory bound.
    pub fn append(&self, chunk: Chunk, rows: u64, opaque: u64, buffered_total: &AtomicUsize) -> Result<()> {
        let mut open = self.open.lock().map_err(|_| self.poisoned())?;
        let open = &mut *open;
        match (open.writer.as_mut(), chunk) {
            #[cfg(feature = "parquet")]
            (Some(Writer::Parquet(w)), Chunk::Batch(b)) => {
                w.write(&b).map_err(|e| parquet_err(&self.path, e))?;
                let now = w.memory_size();
                let total = account(buffered_total, &mut open.buffered, now);
                if now > ROW_GROUP_BYTES || total > ALL_ROW_GROUPS_BYTES {
                    w.flush().map_err(|e| parquet_err(&self.path, e))?;
                    account(buffered_total, &mut open.buffered, w.memory_size());
                }
            }
            (Some(Writer::Text(w)), Chunk::Text(t)) => w.write_all(&t).map_err(|e| io_err(&self.temp, e))?,
            _ => return Err(Error::Invalid(format!("{}: written after it was closed", self.path))),
        }
        open.rows += rows;
        open.opaque += opaque;
        Ok(())
    }

    /// A subtask that wrote here is done: a Parquet writer buffering more than a little closes
    /// its row group.
    pub fn subtask_done(&self, buffered_total: &AtomicUsize) -> Result<()> {
        let mut open = self.open.lock().map_err(|_| self.poisoned())?;
        let open = &mut *open;
        #[cfg(feature = "parquet")]
        if let Some(Writer::Parquet(w)) = open.writer.as_mut() {
            if w.memory_size() > IDLE_ROW_GROUP_BYTES {
                w.flush().map_err(|e| parquet_err(&self.path, e))?;
                account(buffered_total, &mut open.buffered, w.memory_size());
            }
        }
        Ok(())
    }

    /// Completes the file (Parquet footer) and gives it its final name.
    pub fn finish(&self) -> Result<Finished> {
        let mut open = self.open.lock().map_err(|_| self.poisoned())?;
        let (out, row_groups) = match open.writer.take() {
            #[cfg(feature = "parquet")]
            Some(Writer::Parquet(mut w)) => {
                w.flush().map_err(|e| parquet_err(&self.path, e))?;
                let groups = w.flushed_row_groups().len();
                // Writes the footer and hands back the file.
                (w.into_inner().map_err(|e| parquet_err(&self.path, e))?, Some(groups))
            }
            Some(Writer::Text(w)) => (w, None),
            None => return Err(Error::Invalid(format!("{}: finished twice", self.path))),
        };
        let bytes = out.finish()?;
        if self.temp != self.path {
            self.storage.rename(&self.temp, &self.path)?;
        }
        Ok(Finished { rows: open.rows, opaque: open.opaque, bytes, row_groups })
    }

    /// Drops the file after a failure: nothing is left under its final name.
    pub fn abandon(&self) {
        if let Ok(mut open) = self.open.lock() {
            // Dropping an unfinished writer removes its file (aborts its upload).
            open.writer = None;
        }
        let _ = self.storage.delete(&self.temp);
        // The operator directory, when this export created it and nothing else is in it.
        if let Some(dir) = self.temp.parent() {
            let _ = self.storage.delete_empty_dir(&dir);
        }
    }

    /// Removes the finished file (another file of the same export failed).
    pub fn remove(&self) {
        let _ = self.storage.delete(&self.path);
        if let Some(dir) = self.path.parent() {
            let _ = self.storage.delete_empty_dir(&dir);
        }
    }

    fn poisoned(&self) -> Error {
        Error::Invalid(format!("{}: a writer thread failed", self.path))
    }
}

/// Records a writer's buffered bytes in the shared total; returns the new total.
fn account(total: &AtomicUsize, mine: &mut usize, now: usize) -> usize {
    let before = *mine;
    *mine = now;
    if now >= before {
        total.fetch_add(now - before, Ordering::Relaxed) + (now - before)
    } else {
        total.fetch_sub(before - now, Ordering::Relaxed).saturating_sub(before - now)
    }
}

/// Parquet files need the `parquet` cargo feature.
pub(crate) fn parquet_unsupported() -> Error {
    Error::unsupported("writing Parquet: this flinksnap was built without the `parquet` cargo feature", None)
}
