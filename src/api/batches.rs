//! A scan's entries and record batches, streamed, owning the snapshot they read: they can be
//! returned, stored and sent to another thread (a Python consumer pulling from a C stream).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, RecordBatchReader, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

use super::scan::Part;
use crate::error::{Error, Result};
use crate::export::schema::META_ENCODING;
use crate::export::state::StateLayout;
use crate::model::{Entry, OperatorId, SubtaskRef};
use crate::readers::entries::{Selection, SnapshotEntries};
use crate::snapshot::Snapshot;

/// A batch also closes once its entries hold this many bytes as stored (estimated: `Entry::size_hint`, as `export` does):
/// large values must not make a batch large.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

type EntryIter<'a> = SnapshotEntries<'a>;

self_cell::self_cell!(
    /// The snapshot, and the entry stream that borrows it.
    struct OwnedEntries {
        owner: Arc<Snapshot>,
        #[covariant]
        dependent: EntryIter,
    }
);

/// The entries a scan (or one partition of it) reads, owning its snapshot.
pub(crate) struct EntrySource {
    cell: OwnedEntries,
}

impl std::fmt::Debug for EntrySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntrySource").field("snapshot", &self.cell.borrow_owner().metadata_location).finish_non_exhaustive()
    }
}

impl EntrySource {
    /// The selected entries of `snapshot` (of one subtask's `part` only, when given); keyed
    /// state only or operator state only when `keyed` says so.
    pub fn new(snapshot: Arc<Snapshot>, selection: Selection, part: Option<(SubtaskRef, Part)>, keyed: Option<bool>) -> EntrySource {
        let cell = OwnedEntries::new(snapshot, move |s| {
            let mut entries = match part {
                None => SnapshotEntries::new(s, selection),
                Some((sub, p)) => {
                    let e = SnapshotEntries::for_subtask(s, selection, sub);
                    match p {
                        Part::Subtask => e,
                        Part::OperatorState => e.keyed_only(false),
                        Part::KeyGroups { .. } => e.keyed_only(true),
                    }
                }
            };
            if let Some(k) = keyed {
                entries = entries.keyed_only(k);
            }
            entries
        });
        EntrySource { cell }
    }

    fn next(&mut self) -> Option<Result<Entry>> {
        self.cell.with_dependent_mut(|_, it| it.next())
    }

    /// The states (or entries) of serializers flinksnap cannot interpret read so far.
    fn undecodable(&self) -> Vec<crate::readers::undecodable::Undecodable> {
        self.cell.with_dependent(|_, it| it.undecodable().to_vec())
    }
}

/// The entries of a [`Scan`](super::Scan), decoded, streamed (`Iterator<Item = Result<Entry>>`).
/// Stops after the first error.
#[derive(Debug)]
pub struct ScanEntries {
    source: EntrySource,
    done: bool,
}

impl ScanEntries {
    pub(crate) fn new(source: EntrySource) -> ScanEntries {
        ScanEntries { source, done: false }
    }

    /// The states (or some of their entries) whose serializers flinksnap cannot interpret, read
    /// past so far: one record per subtask, state and reason; complete once the iteration has
    /// ended. An unknown serializer costs at most its own state, never the scan.
    pub fn undecodable(&self) -> Vec<crate::readers::undecodable::Undecodable> {
        self.source.undecodable()
    }
}

impl Iterator for ScanEntries {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.done {
            return None;
        }
        let r = self.source.next();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

impl std::iter::FusedIterator for ScanEntries {}

/// The record batches of a [`Scan`](super::Scan) or a [`Partition`](super::Partition): an Arrow
/// [`RecordBatchReader`], streamed (memory holds one batch and one key group's window of
/// bytes). Stops after the first error, which is an [`ArrowError::ExternalError`] holding the
/// [`Error`].
#[derive(Debug)]
pub struct ScanBatches {
    source: EntrySource,
    schema: SchemaRef,
    /// The typed columns; `None`: the dump form.
    layout: Option<Arc<StateLayout>>,
    batch_rows: usize,
    uids: BTreeMap<OperatorId, String>,
    done: bool,
    rows: u64,
}

impl ScanBatches {
    pub(crate) fn new(
        source: EntrySource,
        schema: SchemaRef,
        layout: Option<Arc<StateLayout>>,
        batch_rows: usize,
        uids: BTreeMap<OperatorId, String>,
    ) -> ScanBatches {
        ScanBatches { source, schema, layout, batch_rows: batch_rows.max(1), uids, done: false, rows: 0 }
    }

    /// Rows returned so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut entries = Vec::with_capacity(self.batch_rows.min(1024));
        let mut bytes = 0usize;
        while entries.len() < self.batch_rows && bytes < BATCH_BYTES {
            match self.source.next() {
                Some(e) => {
                    let e = e?;
                    bytes += e.size_hint();
                    entries.push(e);
                }
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        if entries.is_empty() {
            return Ok(None);
        }
        let batch = match &self.layout {
            Some(l) => l.batch(&entries).map_err(|e| Error::Invalid(format!("operator {} state {:?}: {e}", l.operator_id, l.name)))?,
            None => dump_batch(&self.schema, &entries, &self.uids)?,
        };
        self.rows += batch.num_rows() as u64;
        Ok(Some(batch))
    }
}

impl Iterator for ScanBatches {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(b) => b.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(ArrowError::ExternalError(Box::new(e))))
            }
        }
    }
}

impl RecordBatchReader for ScanBatches {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// The dump form's columns, those of `flinksnap dump --format csv`: one schema for every state,
/// key, namespace, user key and value as JSON text (`formats/dump.md`).
pub(crate) fn dump_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let json =
                |name: &str| Field::new(name, DataType::Utf8, true).with_metadata(HashMap::from([(META_ENCODING.to_owned(), "json".to_owned())]));
            Arc::new(Schema::new(vec![
                Field::new("operator_id", DataType::Utf8, false),
                Field::new("operator_uid", DataType::Utf8, true),
                Field::new("state", DataType::Utf8, false),
                Field::new("kind", DataType::Utf8, false),
                Field::new("key_group", DataType::Int32, true),
                json("key"),
                json("namespace"),
                json("user_key"),
                json("value"),
                Field::new("ttl_timestamp", DataType::Int64, true),
            ]))
        })
        .clone()
}

fn dump_batch(schema: &SchemaRef, entries: &[Entry], uids: &BTreeMap<OperatorId, String>) -> Result<RecordBatch> {
    let json = |v: Option<&crate::model::value::Value>| v.map(|v| v.to_json().to_string());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| e.operator_id.to_hex()))),
        Arc::new(entries.iter().map(|e| uids.get(&e.operator_id).map(String::as_str)).collect::<StringArray>()),
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| &*e.state))),
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| e.kind.as_str()))),
        Arc::new(entries.iter().map(|e| e.key_group.and_then(|k| i32::try_from(k).ok())).collect::<Int32Array>()),
        Arc::new(entries.iter().map(|e| json(e.key.as_ref())).collect::<StringArray>()),
        Arc::new(entries.iter().map(|e| json(e.namespace.as_ref())).collect::<StringArray>()),
        Arc::new(entries.iter().map(|e| json(e.user_key.as_ref())).collect::<StringArray>()),
        Arc::new(entries.iter().map(|e| json(Some(&e.value))).collect::<StringArray>()),
        Arc::new(entries.iter().map(|e| e.ttl_timestamp).collect::<Int64Array>()),
    ];
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Invalid(format!("a batch of the dump form: {e}")))
}

// Streams cross threads (Python releases the GIL while reading; Spark partitions): keep them Send.
const _: () = {
    const fn send<T: Send>() {}
    send::<ScanEntries>();
    send::<ScanBatches>();
};
