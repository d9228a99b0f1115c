//! One handle's database (read by a [`Backend`]): one column family per state of the meta-data
//! file, scanned key group by key group in bounded batches and decoded. Spec:
//! `formats/rocksdb-native.md`.

use std::collections::VecDeque;
use std::fmt;

use super::backend::{Backend, Engine, RustBackend};
use crate::bytes::Cursor;
use crate::error::{Error, Result};
use crate::metadata::handles::IncrementalRemoteKeyedStateHandle;
use crate::model::value::hex;
use crate::model::{Entry, OperatorId};
use crate::readers::keyed::KeyedDecoder;
use crate::readers::meta::{read_keyed_backend_meta, KeyedBackendMeta};
use crate::readers::stream::StreamSource;
use crate::snapshot::Snapshot;

/// A batch ends after this many key/value pairs or bytes, whichever comes first: memory holds
/// one batch, never a whole column family.
const BATCH_PAIRS: usize = 4096;
const BATCH_BYTES: usize = 4 << 20;

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

/// One RocksDB keyed-state handle, open: its database and the decoder.
pub(super) struct HandleScan {
    backend: Box<dyn Backend>,
    decoder: KeyedDecoder,
    meta: KeyedBackendMeta,
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
        f.debug_struct("HandleScan").field("backend", &self.backend).field("what", &self.what).field("scans", &self.scans).finish_non_exhaustive()
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
    /// Opens the handle: reads its meta-data file, opens its files with `engine` and plans one
    /// scan per selected state (`states` empty = all) over key groups `first..=last`.
    pub(super) fn open(
        snapshot: &Snapshot,
        operator_id: OperatorId,
        max_parallelism: u32,
        handle: &IncrementalRemoteKeyedStateHandle,
        states: &[String],
        (first, last): (u32, u32),
        engine: Engine,
    ) -> Result<HandleScan> {
        let metadata = snapshot.metadata_location.to_string();
        let what = format!("operator {operator_id}, key groups {}", handle.key_group_range);
        let meta_handle = handle
            .meta_state_handle
            .as_ref()
            .ok_or_else(|| Error::Invalid(format!("{metadata}: the RocksDB state of {what} has no meta-data file")))?;
        let meta_source = StreamSource::open(snapshot, meta_handle)?;
        let bytes = meta_source.read_range(0..meta_source.size())?;
        let meta = read_keyed_backend_meta(&mut Cursor::with_base(&bytes, meta_source.file_offset(0)))
            .map_err(|e| Error::decode(meta_source.name(), e.context("keyed backend meta data")))?;
        let decoder = KeyedDecoder::new(operator_id, max_parallelism, &meta).map_err(|e| Error::decode(meta_source.name(), e))?;

        let backend = open_backend(snapshot, handle, &what, engine)?;
        let column_families = backend.column_families();
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
            backend,
            decoder,
            meta,
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
    pub(super) fn key_groups(&mut self, (first, last): (u32, u32)) -> Result<Vec<u32>> {
        let mut found = std::collections::BTreeSet::new();
        let upper = last.checked_add(1).and_then(|n| key_group_prefix(n, self.width));
        let names: Vec<String> = self.selected.iter().map(|(_, n)| n.clone()).collect();
        for name in &names {
            let mut from = Some(self.prefix(first)?);
            while let Some(lower) = from.take() {
                let Some(key) = self.backend.first_key(name, &lower, upper.as_deref())? else { break };
                let kg = self.decoder.key_group_of(&key).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: RocksDB state of {}, column family {name:?}: key 0x{} is shorter than its key-group prefix",
                        self.metadata,
                        self.what,
                        hex(&key)
                    ))
                })?;
                found.insert(kg);
                from = kg.checked_add(1).filter(|&n| n <= last).and_then(|n| key_group_prefix(n, self.width));
            }
        }
        Ok(found.into_iter().collect())
    }

    /// The handle's serialization proxy: states and serializers.
    pub(super) fn keep_raw(&mut self, raw: crate::model::RawParts) {
        self.decoder.keep_raw(raw);
    }

    pub(super) fn keep_values(&mut self, values: crate::model::ValueParts) {
        self.decoder.keep_values(values);
    }

    pub(super) fn meta(&self) -> &KeyedBackendMeta {
        &self.meta
    }

    /// The next batch of entries; `None` when every selected state has been read.
    pub(super) fn next_batch(&mut self) -> Result<Option<Vec<Entry>>> {
        let mut out = VecDeque::new();
        Ok(self.next_batch_into(&mut out)?.then(|| out.into()))
    }

    /// [`Self::next_batch`] into `out` (emptied first), whose capacity is kept from batch to
    /// batch: a new batch vector per batch (~1.6 MB) made glibc consolidate its free lists at
    /// every batch, and the small allocations of the next entries slow (13% of a RocksDB read's
    /// instructions). `false` when every selected state has been read.
    pub(super) fn next_batch_into(&mut self, out: &mut VecDeque<Entry>) -> Result<bool> {
        out.clear();
        loop {
            let Some(scan) = self.scans.front_mut() else { return Ok(false) };
            let (mut pairs, mut bytes) = (0usize, 0usize);
            let mut stopped_at = None;
            let (decoder, batch_pairs, metadata, what) = (&self.decoder, self.batch_pairs, &self.metadata, &self.what);
            let index = scan.index;
            let name = scan.name.clone();
            self.backend.scan(&scan.name, &scan.lower, scan.upper.as_deref(), scan.resume.as_deref(), &mut |key, value| {
                decoder.decode_kv_into(index, key, value, out).map_err(|e| {
                    Error::decode(
                        format!("{metadata} (RocksDB state of {what}, column family {name:?})"),
                        e.context(format!("entry with key 0x{}", hex(key))),
                    )
                })?;
                pairs += 1;
                bytes += key.len() + value.len();
                if pairs >= batch_pairs || bytes >= BATCH_BYTES {
                    stopped_at = Some(key.to_vec());
                    return Ok(false);
                }
                Ok(true)
            })?;
            match stopped_at {
                Some(key) => scan.resume = Some(key),
                None => {
                    self.scans.pop_front();
                }
            }
            if !out.is_empty() {
                return Ok(true);
            }
        }
    }

    /// Reads and checks every block of every table of the handle (`verify --level full`);
    /// the number of data blocks, or `None` when the backend cannot tell.
    pub(super) fn verify_blocks(&self) -> Option<Result<u64>> {
        self.backend.verify_blocks()
    }
}

/// Opens the handle's files with `engine`.
pub(super) fn open_backend(snapshot: &Snapshot, handle: &IncrementalRemoteKeyedStateHandle, what: &str, engine: Engine) -> Result<Box<dyn Backend>> {
    match engine {
        Engine::Rust => {
            let files = super::files::resolve(snapshot, handle, what)?;
            Ok(Box::new(RustBackend::open(&files, what)?))
        }
        #[cfg(feature = "rocksdb")]
        Engine::Librocksdb => Ok(Box::new(super::native::LibrocksdbBackend::open(snapshot, handle, what)?)),
    }
}

/// [`open_backend`] for tests, with a handle description of their own.
#[cfg(all(test, feature = "rocksdb"))]
pub(super) fn open_backend_for_test(snapshot: &Snapshot, handle: &IncrementalRemoteKeyedStateHandle, engine: Engine) -> Result<Box<dyn Backend>> {
    open_backend(snapshot, handle, "test", engine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readers::rocksdb::tests::fixture;

    #[test]
    fn prefixes_and_bounds() {
        assert_eq!(key_group_prefix(5, 1), Some(vec![5]));
        assert_eq!(key_group_prefix(128, 1), Some(vec![128]));
        assert_eq!(key_group_prefix(256, 1), None);
        assert_eq!(key_group_prefix(300, 2), Some(vec![1, 44]));
        assert_eq!(key_group_prefix(32768, 2), Some(vec![0x80, 0]));
        assert_eq!(key_group_prefix(65536, 2), None);
    }

    #[test]
    fn small_batches_continue_where_the_last_one_stopped() {
        // The fixtures hold fewer pairs per state than a batch: shrink the batch to exercise
        // the re-seek, including a key-group range that starts and ends inside the data.
        let (s, h, id, maxp) = fixture("flink-2.3.0/rocksdb-checkpoint-incremental-p2-maxp32768");
        let all = |batch: usize, range: (u32, u32)| {
            let mut scan = HandleScan::open(&s, id, maxp, &h, &[], range, Engine::Rust).unwrap();
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
        for rel in ["flink-2.3.0/rocksdb-checkpoint-incremental-p2-maxp32768", "flink-1.15.4/rocksdb-checkpoint-incremental"] {
            let (s, h, id, maxp) = fixture(rel);
            let r = h.key_group_range;
            let whole = (r.start, r.end_inclusive().unwrap());
            let mut scan = HandleScan::open(&s, id, maxp, &h, &[], whole, Engine::Rust).unwrap();
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
    fn key_group_by_key_group_decompresses_each_data_block_once_per_pass() {
        // Each key group is a seek of a new cursor, into the block where the previous key
        // group's scan stopped (and the pre-pass seeks neighbouring key groups into one block):
        // the table keeps the block decoded last, so a pass decodes each data block at most once.
        for rel in ["flink-2.3.0/rocksdb-checkpoint-incremental-p2-maxp32768", "flink-1.15.4/rocksdb-checkpoint-incremental", "flink-1.13.6/rocksdb-checkpoint-incremental"] {
            let (s, h, id, maxp) = fixture(rel);
            let r = h.key_group_range;
            let whole = (r.start, r.end_inclusive().unwrap());
            let mut scan = HandleScan::open(&s, id, maxp, &h, &[], whole, Engine::Rust).unwrap();
            // A separate read of the same tables: not counted.
            let blocks = scan.verify_blocks().unwrap().unwrap();
            assert_eq!(scan.backend.data_blocks_decoded(), Some(0));
            let kgs = scan.key_groups(whole).unwrap();
            let pre_pass = scan.backend.data_blocks_decoded().unwrap();
            let mut entries = 0;
            for &kg in &kgs {
                scan.plan((kg, kg)).unwrap();
                while let Some(b) = scan.next_batch().unwrap() {
                    entries += b.len();
                }
            }
            let read = scan.backend.data_blocks_decoded().unwrap() - pre_pass;
            let seeks = (scan.selected.len() * kgs.len()) as u64;
            eprintln!("{rel}: {blocks} data blocks, {seeks} seeks per pass, {entries} entries; decoded {pre_pass} (pre-pass), {read} (read)");
            // More seeks than blocks: a block decoded per seek would break the bounds.
            assert!(seeks > blocks && entries > 0, "{rel}: {seeks} seeks, {blocks} blocks");
            assert!(pre_pass >= 1 && pre_pass <= blocks, "{rel}: {pre_pass} of {blocks}");
            assert!(read <= blocks, "{rel}: {read} of {blocks}");
        }
    }

    /// A RocksDB pair is one entry, whatever its state: `decode_kv_into` appends exactly one to
    /// the batch (a list state's whole list, its stored value as it is; a map state one user
    /// key), and a pair that fails to decode appends nothing, so a batch never holds part of
    /// a failed pair. Checked on every pair of a real fixture with value, list, map and timer
    /// state, read both ways (`ValueParts`).
    #[test]
    fn a_pair_appends_one_entry_and_a_bad_pair_none() {
        use crate::model::value::Value;
        use crate::model::{StateKind, ValueParts};
        let (s, ..) = fixture("flink-2.3.0/rocksdb-checkpoint-incremental");
        let (mut kinds, mut failed) = (std::collections::BTreeMap::new(), 0);
        for (h, id, maxp) in crate::readers::rocksdb::tests::handles(&s) {
            let r = h.key_group_range;
            let mut scan = HandleScan::open(&s, id, maxp, &h, &[], (r.start, r.end_inclusive().unwrap()), Engine::Rust).unwrap();
            let mut pairs = Vec::new();
            for st in &scan.scans {
                scan.backend
                    .scan(&st.name, &st.lower, st.upper.as_deref(), None, &mut |k, v| {
                        pairs.push((st.index, k.to_vec(), v.to_vec()));
                        Ok(true)
                    })
                    .unwrap();
            }
            for values in [ValueParts::All, ValueParts::Key] {
                scan.decoder.keep_values(values);
                let mut out = VecDeque::new();
                for (i, (state, k, v)) in pairs.iter().enumerate() {
                    scan.decoder.decode_kv_into(*state, k, v, &mut out).unwrap();
                    assert_eq!(out.len(), i + 1, "one entry per pair");
                    let e = out.back().unwrap();
                    *kinds.entry(e.kind).or_insert(0) += 1;
                    if e.kind == StateKind::List {
                        assert_eq!(e.raw.value, *v, "a list's stored value, whole");
                        if values == ValueParts::All {
                            assert!(matches!(&e.value, Value::List(items) if !items.is_empty()), "{e:?}");
                        }
                    }
                    // Cut short (the last byte of the value, or of a timer's key): an error, and
                    // nothing appended.
                    let (k2, v2) = if v.is_empty() { (&k[..k.len() - 1], &v[..]) } else { (&k[..], &v[..v.len() - 1]) };
                    if scan.decoder.decode_kv_into(*state, k2, v2, &mut out).is_err() {
                        assert_eq!(out.len(), i + 1, "a failed pair appends nothing");
                        failed += 1;
                    }
                }
            }
        }
        for kind in [StateKind::Value, StateKind::List, StateKind::Map, StateKind::Timer] {
            assert!(kinds.get(&kind).is_some_and(|&n| n > 2), "{kind:?} in {kinds:?}");
        }
        assert!(failed > kinds.values().sum::<usize>() / 2, "{failed} cut pairs failed");
    }
}
