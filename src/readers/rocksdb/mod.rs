//! Keyed state of RocksDB native snapshots: the `IncrementalRemoteKeyedStateHandle` (types 5
//! and 11) of incremental checkpoints, native savepoints and (Flink 1.16+) full checkpoints.
//! Spec: `formats/rocksdb-native.md`.
//!
//! Structure:
//! - `materialize`: the handle's SST, MANIFEST, CURRENT and OPTIONS files, assembled under
//!   their local names into a temporary working directory (hard links where possible, else
//!   copies; the snapshot is never written to), removed again on drop;
//! - `legacy`: FRocksDB 5.17 tables (Flink 1.13, `format_version=0`) given the footer RocksDB 11
//!   reads, in the working directory only;
//! - `scan`: the directory opened read-only with Flink's list merge operator, one column family
//!   per state of the handle's meta-data file, each scanned in key-group order within the
//!   handle's key-group range and decoded with [`KeyedDecoder`](crate::readers::keyed::KeyedDecoder).
//!
//! RocksDB is a C++ library behind the cargo feature `rocksdb` (on by default). Built without
//! it, [`RocksDbHandleReader::open`] fails with [`Error::Unsupported`] saying so; the handle's
//! states and serializers are still read (they are in the meta-data file, not in RocksDB).
//!
//! The keyed source ([`crate::readers::source`]) reaches this module through one narrow entry
//! point: [`read_meta`] for the serialization proxy, then [`RocksDbHandleReader::open`] over the
//! handle's key-group range, [`RocksDbHandleReader::key_groups`],
//! [`RocksDbHandleReader::select_key_group`] and [`RocksDbHandleReader::next_batch`]. Whatever
//! reads the tables behind it (today the RocksDB library) is local to this module.

#[cfg(feature = "rocksdb")]
mod legacy;
#[cfg(feature = "rocksdb")]
mod materialize;
#[cfg(feature = "rocksdb")]
mod scan;

use crate::error::{Error, Result};
use crate::metadata::handles::IncrementalRemoteKeyedStateHandle;
use crate::model::{Entry, KeyGroupRange, OperatorId, Origin};
use crate::readers::meta::KeyedBackendMeta;
use crate::readers::source::{KeyGroupReader, OpenContext};
use crate::snapshot::Snapshot;

/// The keyed-source reader of one RocksDB native handle: the serialization proxy from the
/// meta-data file at once, the database only when key groups are asked for (so listing states
/// needs no RocksDB, and a build without it still knows what the handle holds).
#[derive(Debug)]
pub(crate) struct RocksDbSource<'a> {
    snapshot: &'a Snapshot,
    handle: &'a IncrementalRemoteKeyedStateHandle,
    operator_id: OperatorId,
    max_parallelism: u32,
    states: Vec<String>,
    meta: KeyedBackendMeta,
    origin: Origin,
    reader: Option<RocksDbHandleReader>,
    batch: std::vec::IntoIter<Entry>,
    /// A key group was started and its batches are not all read.
    reading: bool,
}

impl<'a> RocksDbSource<'a> {
    /// Reads the handle's meta-data file; nothing else yet.
    pub(crate) fn open(cx: &OpenContext<'a>, handle: &'a IncrementalRemoteKeyedStateHandle) -> Result<Self> {
        let meta = read_meta(cx.snapshot, handle)?;
        Ok(RocksDbSource {
            snapshot: cx.snapshot,
            handle,
            operator_id: cx.operator_id,
            max_parallelism: cx.max_parallelism,
            states: cx.states.clone(),
            meta,
            // RocksDB merges its files: which one held an entry is not known.
            origin: Origin { subtask: Some(cx.subtask), stream: None, position: None },
            reader: None,
            batch: Vec::new().into_iter(),
            reading: false,
        })
    }

    fn reader(&mut self) -> Result<&mut RocksDbHandleReader> {
        let reader = match self.reader.take() {
            Some(r) => r,
            None => RocksDbHandleReader::open(self.snapshot, self.operator_id, self.max_parallelism, self.handle, &self.states, None)?,
        };
        Ok(self.reader.insert(reader))
    }
}

impl KeyGroupReader for RocksDbSource<'_> {
    fn meta(&self) -> &KeyedBackendMeta {
        &self.meta
    }

    fn key_groups(&mut self) -> Result<Vec<u32>> {
        self.reader()?.key_groups()
    }

    fn start(&mut self, kg: u32) -> Result<()> {
        self.batch = Vec::new().into_iter();
        self.reading = false;
        self.reader()?.select_key_group(kg)?;
        self.reading = true;
        Ok(())
    }

    fn next_entry(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(mut e) = self.batch.next() {
                e.origin = self.origin;
                return Some(Ok(e));
            }
            if !self.reading {
                return None;
            }
            match self.reader.as_mut().map(RocksDbHandleReader::next_batch) {
                Some(Ok(Some(b))) => self.batch = b.into_iter(),
                Some(Ok(None)) | None => {
                    self.reading = false;
                    return None;
                }
                Some(Err(e)) => {
                    self.reading = false;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Reads the keyed state of one RocksDB native handle, batch by batch.
///
/// Entries come state by state (in the order of the meta-data file), key groups ascending within
/// a state, RocksDB's byte order within a key group. A batch holds at most a few thousand
/// entries, so memory does not grow with the state.
#[derive(Debug)]
pub struct RocksDbHandleReader {
    /// `None` when nothing is selected: no files are assembled then.
    #[cfg(feature = "rocksdb")]
    scan: Option<scan::HandleScan>,
    /// The key groups read: the handle's range within the selection (`None`: none).
    #[cfg(feature = "rocksdb")]
    bounds: Option<(u32, u32)>,
    #[cfg(not(feature = "rocksdb"))]
    never: std::convert::Infallible,
}

impl RocksDbHandleReader {
    /// Opens `handle` of operator `operator_id` (with `max_parallelism` key groups), selecting
    /// the states named in `states` (all when empty) and the key groups in `key_groups` (all of
    /// the handle's when `None`).
    pub fn open(
        snapshot: &Snapshot,
        operator_id: OperatorId,
        max_parallelism: u32,
        handle: &IncrementalRemoteKeyedStateHandle,
        states: &[String],
        key_groups: Option<KeyGroupRange>,
    ) -> Result<RocksDbHandleReader> {
        let range = handle.key_group_range;
        if range.end_inclusive().is_some_and(|last| last >= max_parallelism) {
            return Err(Error::Invalid(format!(
                "{}: the RocksDB state of operator {operator_id} covers key groups {range}, beyond max parallelism {max_parallelism}",
                snapshot.metadata_location
            )));
        }
        // Flink's restore deletes whatever lies outside the handle's range (a handle written
        // before a rescale may hold more key groups); reading only the range does the same.
        let bounds = match (range.end_inclusive(), key_groups) {
            (None, _) => None,
            (Some(last), None) => Some((range.start, last)),
            (Some(last), Some(sel)) => {
                sel.end_inclusive().map(|e| (range.start.max(sel.start), last.min(e))).filter(|(a, b)| a <= b)
            }
        };
        open_impl(snapshot, operator_id, max_parallelism, handle, states, bounds)
    }

    /// The next batch of entries; `Ok(None)` when every selected state has been read. After an
    /// error the reader should be dropped, which removes its working directory.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Entry>>> {
        #[cfg(feature = "rocksdb")]
        {
            match &mut self.scan {
                Some(s) => s.next_batch(),
                None => Ok(None),
            }
        }
        #[cfg(not(feature = "rocksdb"))]
        {
            match self.never {}
        }
    }

    /// The key groups of the selection that hold an entry of a selected state, ascending (one
    /// key read per key group and state).
    pub fn key_groups(&self) -> Result<Vec<u32>> {
        #[cfg(feature = "rocksdb")]
        {
            match (&self.scan, self.bounds) {
                (Some(s), Some(b)) => s.key_groups(b),
                _ => Ok(Vec::new()),
            }
        }
        #[cfg(not(feature = "rocksdb"))]
        {
            match self.never {}
        }
    }

    /// Restarts the reader on key group `kg` alone: the following batches hold the selected
    /// states' entries of `kg` (state by state), then `None`. A key group outside the selection
    /// has no entries. Used to read a handle key group by key group (changelog replay).
    pub fn select_key_group(&mut self, kg: u32) -> Result<()> {
        #[cfg(feature = "rocksdb")]
        {
            if let Some(s) = &mut self.scan {
                match self.bounds {
                    Some((first, last)) if (first..=last).contains(&kg) => s.plan((kg, kg))?,
                    // an empty plan: no states
                    _ => s.plan_nothing(),
                }
            }
            Ok(())
        }
        #[cfg(not(feature = "rocksdb"))]
        {
            let _ = kg;
            match self.never {}
        }
    }

    /// The handle's serialization proxy (states and serializers), when anything was selected.
    pub fn meta(&self) -> Option<&KeyedBackendMeta> {
        #[cfg(feature = "rocksdb")]
        {
            self.scan.as_ref().map(|s| s.meta())
        }
        #[cfg(not(feature = "rocksdb"))]
        {
            match self.never {}
        }
    }
}

/// The handle's serialization proxy, from its meta-data file alone (no RocksDB needed: Flink
/// writes it as it is, `RocksIncrementalSnapshotStrategy.materializeMetaData`).
pub fn read_meta(snapshot: &Snapshot, handle: &IncrementalRemoteKeyedStateHandle) -> Result<KeyedBackendMeta> {
    let Some(meta) = &handle.meta_state_handle else {
        return Err(Error::Invalid(format!("{}: RocksDB native state without a meta-data file", snapshot.metadata_location)));
    };
    let source = crate::readers::stream::StreamSource::open(snapshot, meta)?;
    let bytes = source.read_range(0..source.size())?;
    crate::readers::meta::read_keyed_backend_meta(&mut crate::bytes::Cursor::with_base(&bytes, source.file_offset(0)))
        .map_err(|e| Error::decode(source.name(), e.context("keyed backend meta data")))
}

#[cfg(feature = "rocksdb")]
fn open_impl(
    snapshot: &Snapshot,
    operator_id: OperatorId,
    max_parallelism: u32,
    handle: &IncrementalRemoteKeyedStateHandle,
    states: &[String],
    bounds: Option<(u32, u32)>,
) -> Result<RocksDbHandleReader> {
    let scan = match bounds {
        Some(b) => Some(scan::HandleScan::open(snapshot, operator_id, max_parallelism, handle, states, b)?),
        None => None,
    };
    Ok(RocksDbHandleReader { scan, bounds })
}

#[cfg(not(feature = "rocksdb"))]
fn open_impl(
    snapshot: &Snapshot,
    operator_id: OperatorId,
    _max_parallelism: u32,
    _handle: &IncrementalRemoteKeyedStateHandle,
    _states: &[String],
    _bounds: Option<(u32, u32)>,
) -> Result<RocksDbHandleReader> {
    Err(Error::unsupported(
        format!(
            "{}: operator {operator_id} keeps its keyed state in RocksDB's native format (IncrementalRemoteKeyedStateHandle), \
             and this flinksnap was built without RocksDB support (cargo feature `rocksdb`); rebuild it with default features",
            snapshot.metadata_location
        ),
        Some("IncrementalRemoteKeyedStateHandle"),
    ))
}

#[cfg(all(test, not(feature = "rocksdb")))]
mod tests {
    use super::*;

    #[test]
    fn without_the_feature_the_error_says_so() {
        let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/flink-2.3.0/rocksdb-savepoint-native");
        let dir = std::fs::read_dir(&case).unwrap().flatten().map(|e| e.path()).find(|p| p.join("_metadata").exists()).unwrap();
        let s = Snapshot::open(std::sync::Arc::new(crate::storage::LocalStorage), dir.to_str().unwrap()).unwrap();
        let (op, h) = s
            .metadata
            .operators
            .iter()
            .find_map(|o| {
                o.subtasks.iter().find_map(|st| match st.state.as_ref()?.managed_keyed_state.as_ref()? {
                    crate::metadata::handles::KeyedStateHandle::IncrementalRemote(h) => Some((o, h)),
                    _ => None,
                })
            })
            .unwrap();
        let err = RocksDbHandleReader::open(&s, op.operator_id, op.max_parallelism, h, &[], None).unwrap_err();
        assert!(err.is_unsupported(), "{err}");
        let err = err.to_string();
        assert!(err.contains("built without RocksDB support") && err.contains("_metadata"), "{err}");
    }
}
