//! One handle's files opened read-only as a RocksDB database: every column family, Flink's list
//! merge operator, one column family per state of the meta-data file, scanned key group by key
//! group in bounded batches. Spec: `formats/rocksdb-native.md`.

use std::collections::VecDeque;
use std::fmt;

use ::rocksdb::{ColumnFamilyDescriptor, MergeOperands, Options, ReadOptions, DB};

use super::materialize::{assemble, WorkingDir};
use crate::bytes::Cursor;
use crate::error::{Error, Result};
use crate::metadata::handles::IncrementalRemoteKeyedStateHandle;
use crate::model::value::hex;
use crate::consts::LIST_DELIMITER;
use crate::model::{Entry, OperatorId};
use crate::readers::keyed::KeyedDecoder;
use crate::readers::meta::{read_keyed_backend_meta, KeyedBackendMeta};
use crate::readers::stream::StreamSource;
use crate::snapshot::Snapshot;

/// The name Flink registers its merge operator under on every state column family
/// (`RocksDBKeyedStateBackend.MERGE_OPERATOR_NAME`). RocksDB refuses to read merge operands
/// without an operator, and checks nothing but that one is set, so the name is for the record.
pub(super) const MERGE_OPERATOR_NAME: &str = "stringappendtest";


/// A batch ends after this many key/value pairs or bytes, whichever comes first: memory holds
/// one batch, never a whole column family.
const BATCH_PAIRS: usize = 4096;
const BATCH_BYTES: usize = 4 << 20;

/// RocksDB keeps every table file open by default (-1); large checkpoints have more SSTs than a
/// process may open. Beyond this many, RocksDB's table cache closes and reopens files.
const MAX_OPEN_FILES: i32 = 256;

/// Flink's list-state merge (FRocksDB `StringAppendTESTOperator` with `,`,
/// `utilities/merge_operators/string_append/stringappend2.cc`): an existing value, then each
/// operand, with a delimiter between any two. Joining is associative, so the same function does
/// RocksDB's partial merges.
pub(super) fn string_append(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let size = existing.map_or(0, |e| e.len() + 1) + operands.iter().map(|o| o.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let mut delimit = false;
    if let Some(e) = existing {
        out.extend_from_slice(e);
        delimit = true;
    }
    for op in operands.iter() {
        if delimit {
            out.push(LIST_DELIMITER);
        }
        out.extend_from_slice(op);
        delimit = true;
    }
    Some(out)
}

/// Default options plus the merge operator. Flink's OPTIONS file is deliberately not loaded: it
/// names FRocksDB-only factories (`FlinkCompactionFilterFactory`) and the TaskManager's absolute
/// directories, and nothing in it is needed to read: Flink uses the bytewise comparator and
/// block-based tables, which are RocksDB's defaults, and each table file records its own
/// compression.
fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(false);
    o.create_missing_column_families(false);
    // Corruption and missing or wrong-sized files fail the open instead of being skipped.
    o.set_paranoid_checks(true);
    o.set_merge_operator_associative(MERGE_OPERATOR_NAME, string_append);
    o.set_max_open_files(MAX_OPEN_FILES);
    o
}

/// Opens the working directory read-only with every column family RocksDB lists (a read-only
/// open may name a subset, but naming one that does not exist fails). Errors name the snapshot
/// files.
fn open_db(dir: &WorkingDir) -> std::result::Result<(DB, Vec<String>), String> {
    let opts = db_options();
    let explain = |e: ::rocksdb::Error| dir.explain(&e.into_string());
    let column_families = DB::list_cf(&opts, dir.path()).map_err(explain)?;
    let descriptors: Vec<_> = column_families.iter().map(|n| ColumnFamilyDescriptor::new(n, db_options())).collect();
    let db = DB::open_cf_descriptors_read_only(&opts, dir.path(), descriptors, false).map_err(explain)?;
    Ok((db, column_families))
}

/// The scan of one state's column family over a key-group range.
#[derive(Debug)]
struct StateScan {
    /// Index of the state in the meta-data file (the decoder's state id).
    index: usize,
    /// State name = column family name.
    name: String,
    /// Key-group prefix of the first key group, inclusive.
    lower: Vec<u8>,
    /// Key-group prefix after the last key group, exclusive; `None` when that is past the last
    /// prefix there is.
    upper: Option<Vec<u8>>,
    /// The last key handed out, to continue after.
    resume: Option<Vec<u8>>,
}

/// One RocksDB keyed-state handle, open: its working directory, the database and the decoder.
pub(super) struct HandleScan {
    // Field order matters: the database must close before its directory is removed.
    db: DB,
    dir: WorkingDir,
    decoder: KeyedDecoder,
    meta: KeyedBackendMeta,
    /// Column families in the database, as RocksDB lists them.
    column_families: Vec<String>,
    scans: VecDeque<StateScan>,
    /// The selected states that have a column family: (index in the meta-data file, name).
    selected: Vec<(usize, String)>,
    /// Key-group prefix width in bytes.
    width: usize,
    /// Key/value pairs per batch ([`BATCH_PAIRS`]; tests make it small).
    batch_pairs: usize,
    /// `_metadata`, for messages.
    metadata: String,
    /// Which handle this is, for messages: operator and key groups.
    what: String,
}

impl fmt::Debug for HandleScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleScan")
            .field("dir", &self.dir)
            .field("what", &self.what)
            .field("column_families", &self.column_families)
            .field("scans", &self.scans)
            .finish_non_exhaustive()
    }
}

/// The key-group prefix of `kg` (`CompositeKeySerializationUtils.writeKeyGroup`); `None` when it
/// does not fit the prefix width.
fn key_group_prefix(kg: u32, width: usize) -> Option<Vec<u8>> {
    match width {
        1 => u8::try_from(kg).ok().map(|b| vec![b]),
        _ => u16::try_from(kg).ok().map(|b| b.to_be_bytes().to_vec()),
    }
}

impl HandleScan {
    /// Opens the handle: reads its meta-data file, assembles its files, opens them read-only and
    /// plans one scan per selected state (`states` empty = all) over key groups
    /// `first..=last`.
    pub(super) fn open(
        snapshot: &Snapshot,
        operator_id: OperatorId,
        max_parallelism: u32,
        handle: &IncrementalRemoteKeyedStateHandle,
        states: &[String],
        (first, last): (u32, u32),
    ) -> Result<HandleScan> {
        let metadata = snapshot.metadata_location.to_string();
        let what = format!("operator {operator_id}, key groups {}", handle.key_group_range);
        let meta_handle = handle
            .meta_state_handle
            .as_ref()
            .ok_or_else(|| Error::Invalid(format!("{metadata}: the RocksDB state of {what} has no meta-data file")))?;
        let meta_source = StreamSource::open(snapshot, meta_handle)?;
        let bytes = meta_source.read_range(0..meta_source.size())?;
        let meta = read_keyed_backend_meta(&mut Cursor::new(&bytes))
            .map_err(|e| Error::decode(meta_source.name(), e.context("keyed backend meta data")))?;
        let decoder = KeyedDecoder::new(operator_id, max_parallelism, &meta).map_err(|e| Error::decode(meta_source.name(), e))?;

        let dir = assemble(snapshot, handle, &what)?;
        let (db, column_families) =
            open_db(&dir).map_err(|e| Error::Invalid(format!("{metadata}: RocksDB could not open the state of {what}: {e}")))?;

        let width = decoder.key_group_prefix_len();
        // A state without a column family has no entries: Flink creates missing column
        // families empty on restore.
        let selected = meta
            .states
            .iter()
            .enumerate()
            .filter(|(_, st)| (states.is_empty() || states.contains(&st.name)) && column_families.contains(&st.name))
            .map(|(i, st)| (i, st.name.clone()))
            .collect();
        let mut scan = HandleScan {
            db,
            dir,
            decoder,
            meta,
            column_families,
            scans: VecDeque::new(),
            selected,
            width,
            batch_pairs: BATCH_PAIRS,
            metadata,
            what,
        };
        scan.plan((first, last))?;
        Ok(scan)
    }

    /// (Re)plans one scan per selected state over key groups `first..=last`, dropping whatever
    /// was left of the previous plan.
    pub(super) fn plan(&mut self, (first, last): (u32, u32)) -> Result<()> {
        let lower = self.prefix(first)?;
        let upper = last.checked_add(1).and_then(|n| key_group_prefix(n, self.width));
        self.scans = self
            .selected
            .iter()
            .map(|(index, name)| StateScan { index: *index, name: name.clone(), lower: lower.clone(), upper: upper.clone(), resume: None })
            .collect();
        Ok(())
    }

    /// Plans nothing: the next batch is `None`.
    pub(super) fn plan_nothing(&mut self) {
        self.scans.clear();
    }

    fn prefix(&self, kg: u32) -> Result<Vec<u8>> {
        key_group_prefix(kg, self.width).ok_or_else(|| {
            Error::Invalid(format!("{}: key group {kg} of {} does not fit a {}-byte key-group prefix", self.metadata, self.what, self.width))
        })
    }

    /// The key groups within `first..=last` that hold an entry of a selected state, ascending.
    /// Reads one key per key group and state: each found key group is skipped by seeking to the
    /// next one's prefix.
    pub(super) fn key_groups(&self, (first, last): (u32, u32)) -> Result<Vec<u32>> {
        let mut found = std::collections::BTreeSet::new();
        let lower = self.prefix(first)?;
        let upper = last.checked_add(1).and_then(|n| key_group_prefix(n, self.width));
        for (_, name) in &self.selected {
            let cf = self
                .db
                .cf_handle(name)
                .ok_or_else(|| Error::Invalid(format!("{}: RocksDB lost column family {name:?} of {}", self.metadata, self.what)))?;
            let mut ro = ReadOptions::default();
            ro.fill_cache(false);
            ro.set_verify_checksums(true);
            ro.set_iterate_lower_bound(lower.clone());
            if let Some(upper) = &upper {
                ro.set_iterate_upper_bound(upper.clone());
            }
            let mut it = self.db.raw_iterator_cf_opt(&cf, ro);
            it.seek(&lower);
            while let Some(key) = it.key() {
                let kg = self.decoder.key_group_of(key).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: RocksDB state of {}, column family {name:?}: key 0x{} is shorter than its key-group prefix",
                        self.metadata,
                        self.what,
                        hex(key)
                    ))
                })?;
                found.insert(kg);
                match kg.checked_add(1).and_then(|n| key_group_prefix(n, self.width)) {
                    Some(next) => it.seek(&next),
                    None => break,
                }
            }
            it.status().map_err(|e| {
                Error::Invalid(format!(
                    "{}: RocksDB could not read column family {name:?} of the state of {}: {}",
                    self.metadata,
                    self.what,
                    self.dir.explain(&e.into_string())
                ))
            })?;
        }
        Ok(found.into_iter().collect())
    }

    /// The handle's serialization proxy: states and serializers.
    pub(super) fn meta(&self) -> &KeyedBackendMeta {
        &self.meta
    }

    /// The next batch of entries; `None` when every selected state has been read.
    pub(super) fn next_batch(&mut self) -> Result<Option<Vec<Entry>>> {
        loop {
            let Some(scan) = self.scans.front_mut() else { return Ok(None) };
            let cf = self.db.cf_handle(&scan.name).ok_or_else(|| {
                Error::Invalid(format!("{}: RocksDB lost column family {:?} of {}", self.metadata, scan.name, self.what))
            })?;
            let mut ro = ReadOptions::default();
            // A scan touches every block once: caching them would only evict each other.
            ro.fill_cache(false);
            ro.set_verify_checksums(true);
            ro.set_iterate_lower_bound(scan.lower.clone());
            if let Some(upper) = &scan.upper {
                ro.set_iterate_upper_bound(upper.clone());
            }
            // A fresh iterator per batch: the database is read-only, so seeking past the last key
            // handed out continues exactly where the previous batch stopped.
            let mut it = self.db.raw_iterator_cf_opt(&cf, ro);
            match &scan.resume {
                Some(key) => {
                    it.seek(key);
                    if it.key() == Some(key.as_slice()) {
                        it.next();
                    }
                }
                None => it.seek(&scan.lower),
            }
            let mut out = Vec::new();
            let (mut pairs, mut bytes) = (0usize, 0usize);
            let mut stopped_at = None;
            while let Some((key, value)) = it.item() {
                let entries = self.decoder.decode_kv(scan.index, key, value).map_err(|e| {
                    Error::decode(
                        format!("{} (RocksDB state of {}, column family {:?})", self.metadata, self.what, scan.name),
                        e.context(format!("entry with key 0x{}", hex(key))),
                    )
                })?;
                out.extend(entries);
                pairs += 1;
                bytes += key.len() + value.len();
                if pairs >= self.batch_pairs || bytes >= BATCH_BYTES {
                    stopped_at = Some(key.to_vec());
                    break;
                }
                it.next();
            }
            if stopped_at.is_none() {
                // `valid()` turning false means the end or an error: only `status()` tells.
                it.status().map_err(|e| {
                    Error::Invalid(format!(
                        "{}: RocksDB could not read column family {:?} of the state of {}: {}",
                        self.metadata,
                        scan.name,
                        self.what,
                        self.dir.explain(&e.into_string())
                    ))
                })?;
            }
            drop(it);
            match stopped_at {
                Some(key) => scan.resume = Some(key),
                None => {
                    self.scans.pop_front();
                }
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_bounds() {
        assert_eq!(key_group_prefix(5, 1), Some(vec![5]));
        assert_eq!(key_group_prefix(128, 1), Some(vec![128]));
        assert_eq!(key_group_prefix(256, 1), None);
        assert_eq!(key_group_prefix(300, 2), Some(vec![1, 44]));
        assert_eq!(key_group_prefix(32768, 2), Some(vec![0x80, 0]));
        assert_eq!(key_group_prefix(65536, 2), None);
    }

    /// The first RocksDB handle of a fixture snapshot directory below `testdata/`.
    fn fixture(rel: &str) -> (Snapshot, IncrementalRemoteKeyedStateHandle, OperatorId, u32) {
        let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(rel);
        // Savepoints sit in the case directory, retained checkpoints in <job id>/chk-N.
        let children = |d: &std::path::Path| std::fs::read_dir(d).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect::<Vec<_>>();
        let dir = children(&case).into_iter().flat_map(|d| std::iter::once(d.clone()).chain(children(&d))).find(|p| p.join("_metadata").exists()).unwrap();
        let s = Snapshot::open(std::sync::Arc::new(crate::storage::LocalStorage), dir.to_str().unwrap()).unwrap();
        let (h, id, maxp) = s
            .metadata
            .operators
            .iter()
            .find_map(|o| {
                o.subtasks.iter().find_map(|st| match st.state.as_ref()?.managed_keyed_state.as_ref()? {
                    crate::metadata::handles::KeyedStateHandle::IncrementalRemote(h) => Some((h.clone(), o.operator_id, o.max_parallelism)),
                    _ => None,
                })
            })
            .unwrap();
        (s, h, id, maxp)
    }

    #[test]
    fn the_working_directory_holds_the_handle_files_and_goes_away() {
        let (s, h, _, _) = fixture("flink-2.3.0/rocksdb-savepoint-native");
        let wd = assemble(&s, &h, "test").unwrap();
        let path = wd.path().to_path_buf();
        assert_eq!(wd.files().len(), h.shared_state.len() + h.private_state.len());
        for f in wd.files() {
            let copy = std::fs::read(path.join(&f.local_name)).unwrap();
            assert_eq!(copy, std::fs::read(&f.origin).unwrap(), "{}", f.local_name);
            // Only files RocksDB never rewrites may share the snapshot's inode.
            use std::os::unix::fs::MetadataExt;
            let same_inode = std::fs::metadata(path.join(&f.local_name)).unwrap().ino() == std::fs::metadata(&f.origin).unwrap().ino();
            assert!(!same_inode || f.local_name.ends_with(".sst"), "{} is linked", f.local_name);
        }
        drop(wd);
        assert!(!path.exists());
    }

    #[test]
    fn column_families_are_the_states_and_errors_name_snapshot_files() {
        for rel in ["flink-1.18.1/rocksdb-checkpoint-full", "flink-2.3.0/rocksdb-savepoint-native"] {
            let (s, h, id, maxp) = fixture(rel);
            let wd = assemble(&s, &h, "test").unwrap();
            let before: Vec<_> = std::fs::read_dir(wd.path()).unwrap().flatten().map(|e| e.file_name()).collect();
            let (db, cfs) = open_db(&wd).unwrap();
            // The read-only open writes nothing (no LOG, LOCK or IDENTITY).
            assert_eq!(std::fs::read_dir(wd.path()).unwrap().count(), before.len(), "{rel}");
            drop(db);
            let scan = HandleScan::open(&s, id, maxp, &h, &[], (0, maxp - 1)).unwrap();
            assert!(cfs.iter().any(|c| c == "default"));
            for st in &scan.meta().states {
                assert!(cfs.contains(&st.name), "{rel}: no column family for state {:?} in {cfs:?}", st.name);
            }
            // RocksDB's own error about a file names the snapshot file it came from.
            let sst = wd.files().iter().find(|f| f.local_name.ends_with(".sst")).unwrap().clone();
            std::fs::remove_file(wd.path().join(&sst.local_name)).unwrap();
            // Depending on the table cache, the open or the first read of the file fails.
            let err = match open_db(&wd) {
                Err(e) => e,
                Ok((db, cfs)) => cfs
                    .iter()
                    .find_map(|n| {
                        let mut it = db.raw_iterator_cf(&db.cf_handle(n).unwrap());
                        it.seek_to_first();
                        while it.valid() {
                            it.next();
                        }
                        it.status().err().map(|e| wd.explain(&e.into_string()))
                    })
                    .expect("a missing SST is noticed"),
            };
            assert!(err.contains(&sst.origin), "{rel}: {err}");
            assert!(!err.contains(&*wd.path().to_string_lossy()), "{rel}: {err}");
        }
    }

    #[test]
    fn small_batches_continue_where_the_last_one_stopped() {
        // The fixtures hold fewer pairs per state than a batch: shrink the batch to exercise
        // the re-seek, including a key-group range that starts and ends inside the data.
        let (s, h, id, maxp) = fixture("flink-2.3.0/rocksdb-checkpoint-incremental-p2-maxp32768");
        let all = |batch: usize, range: (u32, u32)| {
            let mut scan = HandleScan::open(&s, id, maxp, &h, &[], range).unwrap();
            scan.batch_pairs = batch;
            let mut out = Vec::new();
            let mut batches = 0;
            while let Some(b) = scan.next_batch().unwrap() {
                assert!(!b.is_empty() && b.len() <= batch, "one entry per pair, at most a batch");
                out.extend(b.iter().map(|e| e.to_json(None).to_string()));
                batches += 1;
            }
            (out, batches)
        };
        let r = h.key_group_range;
        let whole = (r.start, r.end_inclusive().unwrap());
        let (reference, one_batch_per_state) = all(BATCH_PAIRS, whole);
        assert!(reference.len() > 10);
        for batch in [1, 2, 3, 7] {
            let (got, batches) = all(batch, whole);
            assert_eq!(got, reference, "batch {batch}");
            assert!(batches >= one_batch_per_state);
            if batch == 1 {
                assert_eq!(batches, reference.len());
            }
        }
        let kgs: Vec<u32> = reference.iter().map(|j| serde_json::from_str::<serde_json::Value>(j).unwrap()["key_group"].as_u64().unwrap() as u32).collect();
        let (lo, hi) = (kgs[kgs.len() / 4], kgs[kgs.len() * 3 / 4]);
        let (part, _) = all(2, (lo, hi));
        let want: Vec<&String> = reference.iter().zip(&kgs).filter(|(_, k)| (lo..=hi).contains(*k)).map(|(j, _)| j).collect();
        assert_eq!(part.iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn key_group_by_key_group_reads_the_same_entries() {
        // As the changelog replay reads a materialization: the non-empty key groups found by
        // seeking, then one plan per key group.
        for rel in ["flink-2.3.0/rocksdb-checkpoint-incremental-p2-maxp32768", "flink-1.20.5/rocksdb-checkpoint-incremental"] {
            let (s, h, id, maxp) = fixture(rel);
            let r = h.key_group_range;
            let whole = (r.start, r.end_inclusive().unwrap());
            let mut scan = HandleScan::open(&s, id, maxp, &h, &[], whole).unwrap();
            let mut reference = Vec::new();
            while let Some(b) = scan.next_batch().unwrap() {
                reference.extend(b.iter().map(|e| (e.key_group.unwrap(), e.to_json(None).to_string())));
            }
            let mut want_kgs: Vec<u32> = reference.iter().map(|(k, _)| *k).collect();
            want_kgs.sort_unstable();
            want_kgs.dedup();
            let kgs = scan.key_groups(whole).unwrap();
            assert_eq!(kgs, want_kgs, "{rel}");
            let mut got = Vec::new();
            for &kg in &kgs {
                scan.plan((kg, kg)).unwrap();
                while let Some(b) = scan.next_batch().unwrap() {
                    assert!(b.iter().all(|e| e.key_group == Some(kg)), "{rel}: key group {kg}");
                    got.extend(b.iter().map(|e| (kg, e.to_json(None).to_string())));
                }
            }
            reference.sort();
            got.sort();
            assert_eq!(got, reference, "{rel}");
            scan.plan_nothing();
            assert!(scan.next_batch().unwrap().is_none());
        }
    }

    #[test]
    fn list_merge_matches_frocksdb() {
        // Through a real database: merge operands on top of a put, and operands alone, read back
        // as FRocksDB's StringAppendTESTOperator joins them.
        let dir = tempfile::tempdir().unwrap();
        let mut o = db_options();
        o.create_if_missing(true);
        let db = DB::open(&o, dir.path()).unwrap();
        db.put(b"a", b"1").unwrap();
        db.merge(b"a", b"2").unwrap();
        db.merge(b"a", b"3").unwrap();
        db.merge(b"b", b"x").unwrap();
        db.merge(b"b", b"y").unwrap();
        db.put(b"c", b"").unwrap();
        db.merge(b"c", b"z").unwrap();
        assert_eq!(db.get(b"a").unwrap().unwrap(), b"1,2,3");
        assert_eq!(db.get(b"b").unwrap().unwrap(), b"x,y");
        assert_eq!(db.get(b"c").unwrap().unwrap(), b",z");
        db.flush().unwrap();
        db.compact_range::<&[u8], &[u8]>(None, None);
        assert_eq!(db.get(b"a").unwrap().unwrap(), b"1,2,3");
        assert_eq!(db.get(b"b").unwrap().unwrap(), b"x,y");
    }
}
