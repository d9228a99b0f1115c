//! Keyed state of RocksDB (and ForSt) native snapshots: the `IncrementalRemoteKeyedStateHandle`
//! (types 5 and 11) of incremental checkpoints, native savepoints and (Flink 1.16+) full
//! checkpoints. Spec: `formats/rocksdb-native.md`.
//!
//! Structure:
//! - `files`: the handle's SST, MANIFEST, CURRENT and OPTIONS files by their local names, each
//!   resolved to ranged reads of the snapshot file (nothing is copied);
//! - `backend`: what reads them: flinksnap's own reader ([`crate::rocksdb_files`]), or, with
//!   the cargo feature `rocksdb` (off by default), the RocksDB C++ library on a working copy
//!   (`native`), which the differential test compares against;
//! - `scan`: one column family per state of the handle's meta-data file, each scanned in
//!   key-group order within the handle's key-group range and decoded with
//!   [`KeyedDecoder`](crate::readers::keyed::KeyedDecoder).
//!
//! The keyed source ([`crate::readers::source`]) reaches this module through one narrow entry
//! point: [`read_meta`] for the serialization proxy, then [`RocksDbHandleReader::open`] over the
//! handle's key-group range, [`RocksDbHandleReader::key_groups`],
//! [`RocksDbHandleReader::select_key_group`] and [`RocksDbHandleReader::next_batch`].

mod backend;
mod files;
#[cfg(feature = "rocksdb")]
mod native;
mod scan;

pub use backend::Engine;

use crate::error::{Error, Result};
use crate::metadata::handles::IncrementalRemoteKeyedStateHandle;
use crate::model::{Entry, KeyGroupRange, OperatorId, Origin, RawParts};
use crate::readers::meta::KeyedBackendMeta;
use crate::readers::source::{KeyGroupReader, OpenContext};
use crate::snapshot::Snapshot;

/// The keyed-source reader of one RocksDB native handle: the serialization proxy from the
/// meta-data file at once, the database only when key groups are asked for (so listing states
/// reads no table).
#[derive(Debug)]
pub(crate) struct RocksDbSource<'a> {
    snapshot: &'a Snapshot,
    handle: &'a IncrementalRemoteKeyedStateHandle,
    operator_id: OperatorId,
    max_parallelism: u32,
    states: Vec<String>,
    /// The selected key groups: a piece of a parallel read lists and scans only its own.
    key_groups: Option<KeyGroupRange>,
    /// The stored bytes entries keep.
    raw: RawParts,
    /// The decoded parts entries carry.
    values: crate::model::ValueParts,
    meta: KeyedBackendMeta,
    origin: Origin,
    reader: Option<RocksDbHandleReader>,
    /// The current batch, its buffer reused from batch to batch.
    batch: std::collections::VecDeque<Entry>,
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
            key_groups: cx.key_groups,
            raw: cx.raw,
            values: cx.values,
            meta,
            // RocksDB merges its files: which one held an entry is not known.
            origin: Origin { subtask: Some(cx.subtask), stream: None, position: None },
            reader: None,
            batch: Default::default(),
            reading: false,
        })
    }

    fn reader(&mut self) -> Result<&mut RocksDbHandleReader> {
        let reader = match self.reader.take() {
            Some(r) => r,
            None => {
                let mut r = RocksDbHandleReader::open(self.snapshot, self.operator_id, self.max_parallelism, self.handle, &self.states, self.key_groups)?;
                r.keep_raw(self.raw);
                r.keep_values(self.values);
                r
            }
        };
        Ok(self.reader.insert(reader))
    }
}

impl KeyGroupReader for RocksDbSource<'_> {
    fn meta(&self) -> &KeyedBackendMeta {
        &self.meta
    }

    fn states_in_proxy_order(&mut self) -> Result<bool> {
        // One scan per state, in the meta-data file's order (`HandleScan::plan`).
        Ok(true)
    }

    fn key_groups(&mut self) -> Result<Vec<u32>> {
        self.reader()?.key_groups()
    }

    fn start(&mut self, kg: u32) -> Result<()> {
        self.batch.clear();
        self.reading = false;
        self.reader()?.select_key_group(kg)?;
        self.reading = true;
        Ok(())
    }

    fn next_entry(&mut self) -> Option<Result<Entry>> {
        loop {
            // Origins are set per batch: an entry (~370 bytes) is moved once here, not taken
            // out, changed and moved again.
            if let Some(e) = self.batch.pop_front() {
                return Some(Ok(e));
            }
            if !self.reading {
                return None;
            }
            match self.reader.as_mut().map(|r| r.next_batch_into(&mut self.batch)) {
                Some(Ok(true)) => {
                    for e in &mut self.batch {
                        e.origin = self.origin;
                    }
                }
                Some(Ok(false)) | None => {
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
    /// `None` when nothing is selected: no files are opened then.
    scan: Option<scan::HandleScan>,
    /// The key groups read: the handle's range within the selection (`None`: none).
    bounds: Option<(u32, u32)>,
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
        Self::open_with(snapshot, operator_id, max_parallelism, handle, states, key_groups, Engine::from_env())
    }

    /// [`open`](Self::open) with the reader chosen.
    pub fn open_with(
        snapshot: &Snapshot,
        operator_id: OperatorId,
        max_parallelism: u32,
        handle: &IncrementalRemoteKeyedStateHandle,
        states: &[String],
        key_groups: Option<KeyGroupRange>,
        engine: Engine,
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
        let scan = match bounds {
            Some(b) => Some(scan::HandleScan::open(snapshot, operator_id, max_parallelism, handle, states, b, engine)?),
            None => None,
        };
        Ok(RocksDbHandleReader { scan, bounds })
    }

    /// Keeps only the stored bytes `raw` asks for in the entries read (all by default).
    pub fn keep_raw(&mut self, raw: RawParts) {
        if let Some(s) = &mut self.scan {
            s.keep_raw(raw);
        }
    }

    /// Builds only the decoded parts `values` asks for in the entries read (all by default).
    pub fn keep_values(&mut self, values: crate::model::ValueParts) {
        if let Some(s) = &mut self.scan {
            s.keep_values(values);
        }
    }

    /// The next batch of entries; `Ok(None)` when every selected state has been read.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Entry>>> {
        match &mut self.scan {
            Some(s) => s.next_batch(),
            None => Ok(None),
        }
    }

    /// [`Self::next_batch`] into `out` (emptied first, its capacity reused); `false` when
    /// every selected state has been read.
    pub fn next_batch_into(&mut self, out: &mut std::collections::VecDeque<Entry>) -> Result<bool> {
        match &mut self.scan {
            Some(s) => s.next_batch_into(out),
            None => {
                out.clear();
                Ok(false)
            }
        }
    }

    /// The key groups of the selection that hold an entry of a selected state, ascending (one
    /// key read per key group and state).
    pub fn key_groups(&mut self) -> Result<Vec<u32>> {
        match (&mut self.scan, self.bounds) {
            (Some(s), Some(b)) => s.key_groups(b),
            _ => Ok(Vec::new()),
        }
    }

    /// Restarts the reader on key group `kg` alone: the following batches hold the selected
    /// states' entries of `kg` (state by state), then `None`. A key group outside the selection
    /// has no entries. Used to read a handle key group by key group (changelog replay).
    pub fn select_key_group(&mut self, kg: u32) -> Result<()> {
        if let Some(s) = &mut self.scan {
            match self.bounds {
                Some((first, last)) if (first..=last).contains(&kg) => s.plan((kg, kg))?,
                // an empty plan: no states
                _ => s.plan_nothing(),
            }
        }
        Ok(())
    }

    /// The handle's serialization proxy (states and serializers), when anything was selected.
    pub fn meta(&self) -> Option<&KeyedBackendMeta> {
        self.scan.as_ref().map(|s| s.meta())
    }

    /// Reads every block of every live table of the handle and checks its checksum
    /// (`verify --level full`): the number of data blocks checked, `None` when nothing is
    /// selected or the reader checks blocks only as it reads entries (librocksdb).
    pub fn verify_blocks(&self) -> Result<Option<u64>> {
        match &self.scan {
            Some(s) => s.verify_blocks().transpose(),
            None => Ok(None),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every snapshot directory (holding `_metadata`) below `testdata/`.
    pub(crate) fn all_snapshot_dirs() -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")];
        while let Some(d) = stack.pop() {
            if d.join("_metadata").is_file() {
                out.push(d);
                continue;
            }
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    /// The first RocksDB handle of a fixture snapshot directory below `testdata/`.
    pub(crate) fn fixture(rel: &str) -> (Snapshot, IncrementalRemoteKeyedStateHandle, OperatorId, u32) {
        let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(rel);
        let dir = all_snapshot_dirs().into_iter().find(|d| d.starts_with(&case)).unwrap();
        let s = Snapshot::open(std::sync::Arc::new(crate::storage::LocalStorage), dir.to_str().unwrap()).unwrap();
        let (h, id, maxp) = handles(&s).into_iter().next().unwrap();
        (s, h, id, maxp)
    }

    /// Every RocksDB handle of a snapshot (also those a changelog handle materialized).
    pub(crate) fn handles(s: &Snapshot) -> Vec<(IncrementalRemoteKeyedStateHandle, OperatorId, u32)> {
        use crate::metadata::handles::KeyedStateHandle;
        let mut out = Vec::new();
        for o in &s.metadata.operators {
            for st in &o.subtasks {
                let Some(k) = st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()) else { continue };
                match k {
                    KeyedStateHandle::IncrementalRemote(h) => out.push((h.clone(), o.operator_id, o.max_parallelism)),
                    KeyedStateHandle::Changelog(c) => {
                        for m in &c.materialized {
                            if let KeyedStateHandle::IncrementalRemote(h) = m {
                                out.push((h.clone(), o.operator_id, o.max_parallelism));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// Every live (column family, key, value) of a handle, in the order the backend reads them.
    #[cfg(feature = "rocksdb")]
    fn raw_entries(s: &Snapshot, h: &IncrementalRemoteKeyedStateHandle, engine: Engine) -> Result<Vec<(String, Vec<u8>, Vec<u8>)>> {
        let mut b = scan::open_backend_for_test(s, h, engine)?;
        let mut out = Vec::new();
        for cf in b.column_families().to_vec() {
            b.scan(&cf, &[], None, None, &mut |k, v| {
                out.push((cf.clone(), k.to_vec(), v.to_vec()));
                Ok(true)
            })?;
        }
        Ok(out)
    }

    /// CPU seconds this process used so far (`/proc/self/stat`: utime + stime, 100 ticks a
    /// second on Linux).
    #[cfg(feature = "rocksdb")]
    fn cpu_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<u64> = after.split(' ').skip(11).take(2).map(|x| x.parse().unwrap()).collect();
        (f[0] + f[1]) as f64 / 100.0
    }

    /// The raw read (every live key and value of every column family of every RocksDB handle,
    /// no decoding) of a snapshot by both readers, CPU seconds per run: the per-core comparison
    /// of the benchmark (`xtask/README.md`). Run it on a large snapshot:
    /// `FLINKSNAP_BENCH_SNAPSHOT=DIR cargo test --release --lib --features rocksdb -- --ignored raw_read_speed --nocapture`.
    #[cfg(feature = "rocksdb")]
    #[test]
    #[ignore = "a measurement on a snapshot named by FLINKSNAP_BENCH_SNAPSHOT"]
    fn raw_read_speed() {
        let dir = std::env::var("FLINKSNAP_BENCH_SNAPSHOT").expect("FLINKSNAP_BENCH_SNAPSHOT=snapshot dir");
        let s = Snapshot::open(std::sync::Arc::new(crate::storage::LocalStorage), &dir).unwrap();
        for engine in [Engine::Rust, Engine::Librocksdb, Engine::Rust, Engine::Librocksdb, Engine::Rust, Engine::Librocksdb] {
            let (t, w) = (cpu_seconds(), std::time::Instant::now());
            let (mut pairs, mut bytes) = (0u64, 0u64);
            for (h, _, _) in handles(&s) {
                let mut b = scan::open_backend_for_test(&s, &h, engine).unwrap();
                for cf in b.column_families().to_vec() {
                    b.scan(&cf, &[], None, None, &mut |k, v| {
                        pairs += 1;
                        bytes += (k.len() + v.len()) as u64;
                        Ok(true)
                    })
                    .unwrap();
                }
            }
            eprintln!(
                "{engine:?}: {pairs} pairs, {:.1} MiB of keys and values, {:.2} CPU s, {:.2} s wall",
                bytes as f64 / (1 << 20) as f64,
                cpu_seconds() - t,
                w.elapsed().as_secs_f64()
            );
        }
    }

    /// The differential test: every RocksDB handle of every fixture, read by flinksnap's reader
    /// and by librocksdb, gives the same ordered (column family, key, value) stream.
    #[cfg(feature = "rocksdb")]
    #[test]
    fn the_rust_reader_reads_what_librocksdb_reads() {
        let mut handles_compared = 0;
        let mut pairs = 0;
        for dir in all_snapshot_dirs() {
            let s = Snapshot::open(std::sync::Arc::new(crate::storage::LocalStorage), dir.to_str().unwrap()).unwrap();
            for (h, _, _) in handles(&s) {
                // Fixtures whose files are gone on purpose (a CLAIM restore's checkpoints): both
                // readers must refuse them.
                let (rust, cpp) = match (raw_entries(&s, &h, Engine::Rust), raw_entries(&s, &h, Engine::Librocksdb)) {
                    (Ok(r), Ok(c)) => (r, c),
                    (Err(_), Err(_)) => continue,
                    (r, c) => panic!("{}: one reader failed: Rust {:?}, librocksdb {:?}", dir.display(), r.err(), c.err()),
                };
                assert_eq!(rust.len(), cpp.len(), "{}: {} entries, librocksdb {}", dir.display(), rust.len(), cpp.len());
                for (i, (a, b)) in rust.iter().zip(&cpp).enumerate() {
                    assert_eq!(a, b, "{}: entry {i} differs", dir.display());
                }
                assert!(!rust.is_empty(), "{}: a handle without entries", dir.display());
                handles_compared += 1;
                pairs += rust.len();
            }
        }
        // 6 versions with RocksDB native cases, several handles each.
        assert!(handles_compared >= 30, "only {handles_compared} handles");
        eprintln!("differential: {handles_compared} handles, {pairs} pairs identical");
    }
}
