//! One exported Parquet file read back as entries of its state: each row's `key`, `namespace`,
//! `user_key`, `value` and `ttl_timestamp` cells into the dump's JSON form ([`super::cells`]),
//! read with the state's serializers, encoded to the bytes Flink stores
//! ([`crate::readers::encode`]), and the key group computed from the key (Flink's murmur hash of
//! its Java `hashCode()`). The `key_group` column is not read: keys may have been added or
//! changed. Every error names the file, the row (counting from 0, as pyarrow and pandas do) and
//! the column.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::{ChunkReader, Length};
use serde_json::Value as Json;

use super::cells::cell;
use crate::error::{Error, Result};
use crate::export::state::StateLayout;
use crate::model::value::Value;
use crate::model::{Entry, OperatorId, StateKind};
use crate::readers::encode::{encode_entry, values_from_json};
use crate::readers::serializers::{key_group_for_hash, key_hash_code};
use crate::readers::states::StateInfo;
use crate::storage::{Location, Storage};

/// The parts of an entry, in the export's column names.
const PARTS: [&str; 5] = ["key", "namespace", "user_key", "value", "ttl_timestamp"];

/// One state's Parquet file, checked against the columns the state's serializers give.
#[derive(Debug)]
pub(crate) struct StateFile {
    /// The file's path or URL (named in every error).
    pub path: PathBuf,
    /// Where its bytes are read from.
    source: Source,
    /// The state (its registration and key serializer: the source's, or the `--like` one's).
    pub info: StateInfo,
    /// The operator the entries belong to (the source's id).
    pub operator_id: OperatorId,
    /// Key groups are computed for this max parallelism (the source operator's).
    pub max_parallelism: u32,
    /// Per part of [`PARTS`]: the index of the file's column and the expected field.
    columns: Vec<Option<(usize, Field)>>,
}

fn invalid(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {msg}", path.display()))
}

/// Where a [`StateFile`]'s bytes come from.
#[derive(Debug, Clone)]
enum Source {
    /// A local file, read with the parquet crate's own file reader.
    Local,
    /// Bytes held in memory (fuzzing, tools holding bytes).
    Memory(Bytes),
    /// A file on an object store (or any [`Storage`]): ranged reads of the parts the reader needs.
    Stored(StoredFile),
}

impl Source {
    fn of(storage: &Arc<dyn Storage>, loc: &Location) -> Result<Source> {
        Ok(if loc.is_local() {
            Source::Local
        } else {
            Source::Stored(StoredFile { storage: storage.clone(), loc: loc.clone(), len: storage.head(loc)?.size })
        })
    }
}

impl StateFile {
    /// Opens `loc` (a local path or an object-store URL, read through `storage`) and checks its
    /// columns: every part the state's entries have must be there, with the Arrow type the
    /// export gives it (nested field names and metadata aside).
    pub(crate) fn open(storage: &Arc<dyn Storage>, loc: &Location, info: StateInfo, operator_id: OperatorId, max_parallelism: u32) -> Result<StateFile> {
        Self::checked(PathBuf::from(loc.as_str()), Source::of(storage, loc)?, info, operator_id, max_parallelism)
    }

    /// The Arrow schema of the Parquet file at `loc` (what a new state's types are read from).
    pub(crate) fn schema(storage: &Arc<dyn Storage>, loc: &Location) -> Result<SchemaRef> {
        Ok(Self::reader(Path::new(loc.as_str()), &Source::of(storage, loc)?, 1)?.0)
    }

    /// [`StateFile::open`] for a Parquet file held in memory; `name` stands for its path in errors.
    pub(crate) fn from_bytes(name: &str, bytes: Bytes, info: StateInfo, operator_id: OperatorId, max_parallelism: u32) -> Result<StateFile> {
        Self::checked(PathBuf::from(name), Source::Memory(bytes), info, operator_id, max_parallelism)
    }

    fn checked(path: PathBuf, source: Source, info: StateInfo, operator_id: OperatorId, max_parallelism: u32) -> Result<StateFile> {
        let layout = StateLayout::new(&info, None, &[]).map_err(|e| invalid(&path, format!("state {:?}: {e}", info.name())))?;
        let expected = layout.schema.clone();
        let (schema, _) = Self::reader(&path, &source, 1)?;
        let mut columns = Vec::new();
        for part in PARTS {
            let Ok(want) = expected.field_with_name(part) else {
                columns.push(None);
                continue;
            };
            let (i, got) = schema.column_with_name(part).ok_or_else(|| {
                invalid(&path, format!("no column {part:?}: a {} state's file needs {:?}", info.kind.as_str(), expected.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>()))
            })?;
            if !got.data_type().equals_datatype(want.data_type()) {
                return Err(invalid(
                    &path,
                    format!(
                        "column {part:?} is {}, but state {:?} needs {} (from its serializer {})",
                        got.data_type(),
                        info.name(),
                        want.data_type(),
                        want.metadata().get("flinksnap.serializer").map_or("?", String::as_str)
                    ),
                ));
            }
            columns.push(Some((i, want.clone())));
        }
        Ok(StateFile { path, source, info, operator_id, max_parallelism, columns })
    }

    /// The file's Arrow schema and a reader of its rows, `batch` rows at a time.
    fn reader(path: &Path, source: &Source, batch: usize) -> Result<(SchemaRef, ParquetRecordBatchReader)> {
        fn build<T: ChunkReader + 'static>(path: &Path, input: T, batch: usize) -> Result<(SchemaRef, ParquetRecordBatchReader)> {
            let built = guarded(path, || {
                let builder = ParquetRecordBatchReaderBuilder::try_new(input).map_err(|e| invalid(path, format!("not a Parquet file: {e}")))?;
                let schema = builder.schema().clone();
                Ok((schema, builder.with_batch_size(batch).build().map_err(|e| invalid(path, e))?))
            });
            built.and_then(|r| r)
        }
        match source {
            Source::Memory(b) => build(path, b.clone(), batch),
            Source::Stored(f) => build(path, f.clone(), batch),
            Source::Local => build(path, File::open(path).map_err(|e| Error::io(path.display().to_string(), e))?, batch),
        }
    }

    /// The file's entries, read batch by batch.
    pub(crate) fn entries(&self) -> Result<Rows<'_>> {
        let (_, reader) = Self::reader(&self.path, &self.source, 4096)?;
        Ok(Rows { file: self, reader, batch: None, row: 0, base: 0, broken: false })
    }

    /// Entry `row` (of the whole file: `base + i`) of a batch.
    fn entry(&self, batch: &RecordBatch, i: usize, row: u64) -> Result<Entry> {
        let at = |col: &str, msg: String| invalid(&self.path, format!("row {row}, column {col:?}: {msg}"));
        let mut parts: [Option<Json>; 5] = Default::default();
        for (k, c) in self.columns.iter().enumerate() {
            if let Some((idx, field)) = c {
                parts[k] = Some(cell(field, batch.column(*idx).as_ref(), i).map_err(|e| at(PARTS[k], e))?);
            }
        }
        let [key, namespace, user_key, value, ttl] = parts;
        let ttl = match ttl {
            None | Some(Json::Null) => None,
            Some(j) => Some(j.as_i64().ok_or_else(|| at("ttl_timestamp", format!("{j} is not a timestamp")))?),
        };
        let kind = self.info.kind;
        // A null cell is a JSON null: serializers that cannot write one say so.
        let value = value.unwrap_or(Json::Null);
        let key_ser = self.info.key_serializer.as_ref();
        let owned = values_from_json(&self.info.meta, kind, key_ser, key.as_ref(), namespace.as_ref(), user_key.as_ref(), &value, ttl).map_err(|e| {
            let col = e.path.first().map(|p| p.split([' ', '/']).next().unwrap_or(p).to_owned()).filter(|c| PARTS.contains(&c.as_str())).unwrap_or_else(|| "value".into());
            at(&col, e.to_string())
        })?;
        let raw = encode_entry(&self.info.meta, kind, key_ser, owned.as_values()).map_err(|e| {
            let col = e.path.first().map(|p| p.split([' ', '/']).next().unwrap_or(p).to_owned()).filter(|c| PARTS.contains(&c.as_str())).unwrap_or_else(|| "value".into());
            at(&col, e.to_string())
        })?;
        let key_group = if kind.is_keyed() {
            let k = owned.key.as_ref().ok_or_else(|| at("key", "a keyed entry needs a key".into()))?;
            if matches!(k, Value::Null) {
                return Err(at("key", "a key cannot be null".into()));
            }
            let ser = match kind {
                StateKind::Timer => self.info.meta.serializer(crate::readers::meta::VALUE_SERIALIZER).and_then(|t| t.timer_key_namespace()).map(|(k, _)| k),
                _ => key_ser,
            };
            let ser = ser.ok_or_else(|| at("key", "the state has no key serializer".into()))?;
            let hash = key_hash_code(ser, k, &raw.key).ok_or_else(|| {
                Error::unsupported(
                    format!(
                        "{}: row {row}, column \"key\": key {}: the Java hashCode() of keys of {} is not defined by their value, so \
                         their key group is not known (flinksnap computes it for Long, Integer, Short, Byte, Boolean, Double, Float, \
                         Character, String, Tuple/Row of these and SQL's BinaryRowData)",
                        self.path.display(),
                        k.to_json(),
                        ser.opaque_class()
                    ),
                    Some(ser.opaque_class()),
                )
            })?;
            Some(key_group_for_hash(hash, self.max_parallelism))
        } else {
            None
        };
        Ok(Entry {
            operator_id: self.operator_id,
            state: self.info.name().into(),
            kind,
            key_group,
            key: owned.key,
            namespace: owned.namespace,
            user_key: owned.user_key,
            value: owned.value,
            ttl_timestamp: owned.ttl_timestamp,
            raw,
            origin: Default::default(),
        })
    }
}

/// The entries of a [`StateFile`].
pub(crate) struct Rows<'a> {
    file: &'a StateFile,
    reader: ParquetRecordBatchReader,
    batch: Option<RecordBatch>,
    /// Next row of `batch`.
    row: usize,
    /// Rows of the file before `batch`.
    base: u64,
    /// The reader panicked: it is not called again.
    broken: bool,
}

impl Iterator for Rows<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(b) = &self.batch {
                if self.row < b.num_rows() {
                    let i = self.row;
                    self.row += 1;
                    return Some(self.file.entry(b, i, self.base + i as u64));
                }
                self.base += b.num_rows() as u64;
                self.batch = None;
            }
            if self.broken {
                return None;
            }
            let next = guarded(&self.file.path, || self.reader.next());
            match next {
                Err(e) => {
                    self.broken = true;
                    return Some(Err(e));
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => return Some(Err(invalid(&self.file.path, format!("after row {}: {e}", self.base)))),
                Ok(Some(Ok(b))) => {
                    self.batch = Some(b);
                    self.row = 0;
                }
            }
        }
    }
}

/// A file of a [`Storage`] as the parquet crate reads files: the footer and each column chunk
/// by ranged reads (object stores fetch blocks with ranged GETs and read ahead on sequential
/// reads), so only what the reader asks for travels and the file is never held whole.
#[derive(Debug, Clone)]
struct StoredFile {
    storage: Arc<dyn Storage>,
    loc: Location,
    len: u64,
}

impl Length for StoredFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for StoredFile {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        self.storage.open_at(&self.loc, start).map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let end = start.checked_add(length as u64).filter(|e| *e <= self.len).ok_or_else(|| {
            parquet::errors::ParquetError::EOF(format!("{}: bytes {start}..+{length} lie beyond its {} bytes", self.loc, self.len))
        })?;
        self.storage.read_range(&self.loc, start..end).map(Bytes::from).map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
    }
}

/// Runs `f`, a call into the parquet and arrow crates, turning a panic into an error naming the
/// file: those crates still panic on some malformed files (an embedded Arrow schema with an
/// integer type of width 0, found by the `import_parquet` fuzz target), and a corrupt input file
/// must give an error, not end the process. (A panic hook still prints the panic's message.)
fn guarded<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let why = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
        invalid(path, format!("not a Parquet file this reader can read (the parquet crate failed on it: {why})"))
    })
}
