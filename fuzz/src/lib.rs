//! How the fuzz targets that take more than one file's bytes split their input, and the
//! encoders the seed generator (`examples/seeds.rs`) writes their seeds with. Each input is a
//! small little-endian header (the entry point's parameters) followed by the bytes themselves,
//! so libFuzzer mutates the parameters and the file alike. Layouts (`u32` etc. little-endian):
//!
//! | target | layout |
//! |---|---|
//! | `key_group_canonical`, `key_group_heap` | `u32` max parallelism, `u16` n, n × `i64` key-group offsets, file bytes |
//! | `changelog` | `u32` max parallelism, `u16` n, n × `i64` offsets, `u16` m, m × `u64` change-set offsets, `u32` materialized length, materialized bytes, DSTL bytes |
//! | `operator_state` | `u8` states, per state (`u8` name length, name, `u8` mode, `u16` k, k × `u64` offsets), file bytes |
//! | `decode_kv` | `u32` max parallelism, `u32` meta length, keyed backend meta bytes, then records (`u16` state, `u32` key length, key, `u32` value length, value) |
//! | `rocksdb_db` | files: (`u8` name length, name, `u32` length, bytes), … |
//! | `import_parquet` | `u32` max parallelism, `u16` state, `u32` meta length, keyed backend meta bytes, Parquet file bytes |
//!
//! Every other target takes one file's bytes as they are.
//!
//! The body of every target is a function here ([`run`] by target name), so the integration
//! test `tests/fuzz_regressions.rs` of flinksnap replays `fuzz/regressions/<target>/*` through
//! exactly what the fuzzer ran (it includes this file by path).

use std::collections::HashMap;
use std::sync::Arc;

use flinksnap::bytes::Cursor;
use flinksnap::metadata::handles::DistributionMode;
use flinksnap::model::{Entry, OperatorId, ValueParts};
use flinksnap::readers::keyed::{KeyedDecoder, KeyedStreamFormat};
use flinksnap::readers::raw;
use flinksnap::rocksdb_files::table::{Table, TableIter};
use flinksnap::rocksdb_files::{log, manifest, Db, DbOptions, FileSource, MemoryFile, StringAppend};

/// Every target, by name.
pub const TARGETS: &[&str] = &[
    "metadata",
    "key_group_canonical",
    "key_group_heap",
    "operator_state",
    "serializer_snapshot",
    "serializer_values",
    "changelog",
    "keyed_backend_meta",
    "operator_backend_meta",
    "decode_kv",
    "java_serialization",
    "sst",
    "manifest",
    "rocksdb_db",
    "plan",
    "import_parquet",
];

/// Runs target `target` on `data`; panics on an unknown target.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "metadata" => drop(raw::metadata(data)),
        "key_group_canonical" => key_group(data, KeyedStreamFormat::Canonical),
        "key_group_heap" => key_group(data, KeyedStreamFormat::HeapCheckpoint),
        "operator_state" => operator_state(data),
        "serializer_snapshot" => drop(raw::serializer_snapshot(data)),
        "serializer_values" => drop(raw::serializer_values(data)),
        "changelog" => changelog(data),
        "keyed_backend_meta" => drop(raw::keyed_backend_meta(data)),
        "operator_backend_meta" => drop(raw::operator_backend_meta(data)),
        "decode_kv" => decode_kv(data),
        "java_serialization" => java_serialization(data),
        "sst" => sst(data),
        "manifest" => manifest(data),
        "rocksdb_db" => rocksdb_db(data),
        "plan" => plan(data),
        "import_parquet" => import_parquet(data),
        _ => panic!("no fuzz target {target:?}"),
    }
}

/// A job's plan beside its snapshot (`inspect --plan`: compiled or REST), its operators tied to
/// ids (the planner uids of its nodes, one unknown id), and the same bytes as a compat TARGET
/// (a plan or a description file).
pub fn plan(data: &[u8]) {
    if let Ok(p) = flinksnap::plan::Plan::parse(data, "fuzz") {
        let ids: Vec<OperatorId> = p.nodes.iter().map(|n| OperatorId::from_uid(&format!("{}_group-aggregate", n.id))).chain([OperatorId::from_uid("x")]).collect();
        let _ = p.match_operators(ids.into_iter().map(|id| (id, None)));
        // Every node tied by a stored uid: the column names of each node's row types (the row
        // type parser of `plan::columns`, reached through the plan's edges).
        let stored: Vec<(OperatorId, String)> = p.nodes.iter().map(|n| format!("{}_state", n.id)).map(|u| (OperatorId::from_uid(&u), u)).collect();
        let _ = flinksnap::plan::columns::column_names(&p, stored.iter().map(|(id, u)| (*id, Some(u.as_str()))));
    }
    let _ = flinksnap::manage::compat::parse_target("fuzz", data);
}

/// A key-grouped keyed-state file with its key-group offsets and max parallelism, read decoding
/// every part and checking them (`ValueParts::Key`): the two reads must agree.
pub fn key_group(data: &[u8], format: KeyedStreamFormat) {
    let Some(i) = KeyGroupInput::parse(data) else { return };
    let read = |values| raw::key_group_stream(i.bytes, format, &i.offsets, i.max_parallelism, values);
    same_entries_checked(read(ValueParts::All), read(ValueParts::Key));
}

/// The checking read (`ValueParts::Key`) gives what the full read gives: the same error, or as
/// many entries, each the full one or its placeholder form, and the placeholder form only for
/// entries with no opaque part (those are decoded in full).
fn same_entries_checked<E: std::fmt::Display + std::fmt::Debug>(full: Result<Vec<Entry>, E>, checked: Result<Vec<Entry>, E>) {
    match (&full, &checked) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.len(), b.len(), "entries decoded and checked");
            for (a, b) in a.iter().zip(b) {
                // By their debug form: a NaN value is not equal to itself.
                let (a_, b_) = (format!("{a:?}"), format!("{b:?}"));
                if a_ != b_ {
                    assert_eq!(b_, format!("{:?}", a.checked_form()), "entry checked");
                    assert_eq!(a.opaque_count(), 0, "an entry with an opaque part checked: {a:?}");
                }
            }
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "errors decoding and checking"),
        _ => panic!("decoding and checking disagree: {full:?} vs {checked:?}"),
    }
}

/// An operator-state file and the states its handle lays out.
pub fn operator_state(data: &[u8]) {
    let Some(i) = OperatorStateInput::parse(data) else { return };
    let _ = raw::operator_state(i.bytes, &i.states);
}

/// A changelog checkpoint: materialized heap-checkpoint state and one DSTL file, replayed, decoding
/// and checking (the two reads must agree).
pub fn changelog(data: &[u8]) {
    let Some(i) = ChangelogInput::parse(data) else { return };
    let read = |values| raw::changelog(i.materialized, &i.offsets, i.dstl, &i.change_sets, i.max_parallelism, values);
    same_entries_checked(read(ValueParts::All), read(ValueParts::Key));
}

/// RocksDB key/value pairs of keyed state, decoded by the decoder a meta-data file makes.
pub fn decode_kv(data: &[u8]) {
    let Some(i) = KvInput::parse(data) else { return };
    let Ok(meta) = raw::keyed_backend_meta(i.meta) else { return };
    let Ok(decoder) = KeyedDecoder::new(OperatorId([0; 16]), i.max_parallelism, &meta) else { return };
    // The checking walk (`ValueParts::Key`) beside the full decode: it must accept exactly what
    // the decode accepts, give the same entries (or their placeholder forms) and fail with the
    // same error.
    let mut checking = decoder.clone();
    checking.keep_values(ValueParts::Key);
    for (state, key, value) in i.pairs {
        let _ = decoder.key_group_of(key);
        // One entry per pair.
        let one = |d: &KeyedDecoder| d.decode_kv(state as usize, key, value).map(|e| vec![e]);
        same_entries_checked(one(&decoder), one(&checking));
    }
}

/// Rows of a Parquet file in the export layout read back as one keyed state's entries, as
/// `flinksnap import` reads them (at most this many rows: a few bytes of RLE can declare millions).
pub fn import_parquet(data: &[u8]) {
    let Some(i) = ImportInput::parse(data) else { return };
    // flinksnap turns the parquet crate's panics on malformed files into errors (catch_unwind);
    // libFuzzer's panic hook would abort before the unwind got there, so a silent hook stands in
    // for the call. A panic flinksnap does not catch still ends in libFuzzer's catch_unwind,
    // which aborts: a crash, as before.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let _ = flinksnap::import::rows_from_bytes(i.meta, i.state as usize, i.max_parallelism, i.parquet, IMPORT_ROWS);
    std::panic::set_hook(hook);
}

/// Rows read at most per `import_parquet` input.
pub const IMPORT_ROWS: usize = 20_000;

/// A Java serialization stream (header and one object), and its JSON form.
pub fn java_serialization(data: &[u8]) {
    if let Ok(graph) = flinksnap::java_serialization::read_stream(&mut Cursor::new(data)) {
        let _ = graph.to_value();
    }
}

/// One RocksDB table file (block-based, any format version): footer, meta blocks, properties,
/// index and range tombstones opened, then every entry iterated and every data block read;
/// once without and once with block checksums checked.
pub fn sst(data: &[u8]) {
    let file = Arc::new(MemoryFile::new("000001.sst", data.to_vec()));
    for verify in [false, true] {
        let Ok(table) = Table::open(file.clone(), None, verify) else { return };
        let table = Arc::new(table);
        let mut it = TableIter::new(table.clone());
        if it.seek_to_first().is_ok() {
            while it.valid() {
                if it.advance().is_err() {
                    break;
                }
            }
        }
        if let Ok(blocks) = table.data_blocks() {
            for h in blocks {
                let _ = table.read_data_block(h);
            }
        }
    }
}

/// A RocksDB MANIFEST: its log records read and its `VersionEdit`s replayed.
pub fn manifest(data: &[u8]) {
    if let Ok(records) = log::records("MANIFEST-000001", data) {
        let _ = manifest::replay("MANIFEST-000001", &records);
    }
}

/// A RocksDB database from its files (`CURRENT`, MANIFEST, tables): opened, every block
/// checked, then every column family read through the merge of its tables (deletes, range
/// tombstones, merge operands).
pub fn rocksdb_db(data: &[u8]) {
    let Some(i) = FilesInput::parse(data) else { return };
    let files: HashMap<String, Arc<dyn FileSource>> =
        i.files.into_iter().map(|(name, bytes)| (name.clone(), Arc::new(MemoryFile::new(name, bytes.to_vec())) as Arc<dyn FileSource>)).collect();
    let Ok(db) = Db::open(&files, DbOptions { verify_checksums: true, merge: Arc::new(StringAppend(b',')) }) else { return };
    let _ = db.verify_all_blocks();
    for cf in db.column_families() {
        let Ok(mut cursor) = db.cursor(&cf, &[], None) else { continue };
        while cursor.valid() {
            if cursor.advance().is_err() {
                break;
            }
        }
    }
}

/// Reads a header; `None` when the input is too short (the target then returns).
#[derive(Debug)]
pub struct Split<'a> {
    data: &'a [u8],
}

impl<'a> Split<'a> {
    /// A split of `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Split { data }
    }

    /// `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.data.len() {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }

    /// A `u16` count, then that many `u64`s.
    pub fn u64s(&mut self) -> Option<Vec<u64>> {
        let n = self.u16()? as usize;
        (0..n).map(|_| self.u64()).collect()
    }

    /// A `u32` length, then that many bytes.
    pub fn chunk(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// Whatever is left.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The distribution mode of byte `b` (any byte is one).
pub fn mode(b: u8) -> DistributionMode {
    match b % 3 {
        0 => DistributionMode::SplitDistribute,
        1 => DistributionMode::Union,
        _ => DistributionMode::Broadcast,
    }
}

/// The byte [`mode`] reads as `m`.
pub fn mode_byte(m: DistributionMode) -> u8 {
    match m {
        DistributionMode::SplitDistribute => 0,
        DistributionMode::Union => 1,
        DistributionMode::Broadcast => 2,
    }
}

/// `key_group_*` targets.
#[derive(Debug, PartialEq)]
pub struct KeyGroupInput<'a> {
    pub max_parallelism: u32,
    pub offsets: Vec<i64>,
    pub bytes: &'a [u8],
}

impl<'a> KeyGroupInput<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let mut s = Split::new(data);
        let max_parallelism = s.u32()?;
        let offsets = s.u64s()?.into_iter().map(|o| o as i64).collect();
        Some(KeyGroupInput { max_parallelism, offsets, bytes: s.rest() })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.max_parallelism.to_le_bytes().to_vec();
        put_u64s(&mut out, self.offsets.iter().map(|&o| o as u64));
        out.extend_from_slice(self.bytes);
        out
    }
}

/// The `changelog` target.
#[derive(Debug, PartialEq)]
pub struct ChangelogInput<'a> {
    pub max_parallelism: u32,
    pub offsets: Vec<i64>,
    pub change_sets: Vec<u64>,
    pub materialized: &'a [u8],
    pub dstl: &'a [u8],
}

impl<'a> ChangelogInput<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let mut s = Split::new(data);
        let max_parallelism = s.u32()?;
        let offsets = s.u64s()?.into_iter().map(|o| o as i64).collect();
        let change_sets = s.u64s()?;
        let materialized = s.chunk()?;
        Some(ChangelogInput { max_parallelism, offsets, change_sets, materialized, dstl: s.rest() })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.max_parallelism.to_le_bytes().to_vec();
        put_u64s(&mut out, self.offsets.iter().map(|&o| o as u64));
        put_u64s(&mut out, self.change_sets.iter().copied());
        put_chunk(&mut out, self.materialized);
        out.extend_from_slice(self.dstl);
        out
    }
}

/// The `operator_state` target.
#[derive(Debug, PartialEq)]
pub struct OperatorStateInput<'a> {
    pub states: Vec<(String, DistributionMode, Vec<u64>)>,
    pub bytes: &'a [u8],
}

impl<'a> OperatorStateInput<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let mut s = Split::new(data);
        let n = s.u8()?;
        let mut states = Vec::new();
        for _ in 0..n {
            let len = s.u8()? as usize;
            let name = String::from_utf8_lossy(s.take(len)?).into_owned();
            let m = mode(s.u8()?);
            states.push((name, m, s.u64s()?));
        }
        Some(OperatorStateInput { states, bytes: s.rest() })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.states.len().min(255) as u8];
        for (name, m, offsets) in self.states.iter().take(255) {
            let name = &name.as_bytes()[..name.len().min(255)];
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            out.push(mode_byte(*m));
            put_u64s(&mut out, offsets.iter().copied());
        }
        out.extend_from_slice(self.bytes);
        out
    }
}

/// The `decode_kv` target.
#[derive(Debug, PartialEq)]
pub struct KvInput<'a> {
    pub max_parallelism: u32,
    pub meta: &'a [u8],
    pub pairs: Vec<(u16, &'a [u8], &'a [u8])>,
}

impl<'a> KvInput<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let mut s = Split::new(data);
        let max_parallelism = s.u32()?;
        let meta = s.chunk()?;
        let mut pairs = Vec::new();
        while !s.is_empty() {
            let state = s.u16()?;
            let key = s.chunk()?;
            let value = s.chunk()?;
            pairs.push((state, key, value));
        }
        Some(KvInput { max_parallelism, meta, pairs })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.max_parallelism.to_le_bytes().to_vec();
        put_chunk(&mut out, self.meta);
        for (state, key, value) in &self.pairs {
            out.extend_from_slice(&state.to_le_bytes());
            put_chunk(&mut out, key);
            put_chunk(&mut out, value);
        }
        out
    }
}

/// The `import_parquet` target.
#[derive(Debug, PartialEq)]
pub struct ImportInput<'a> {
    pub max_parallelism: u32,
    pub state: u16,
    pub meta: &'a [u8],
    pub parquet: &'a [u8],
}

impl<'a> ImportInput<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let mut s = Split::new(data);
        let max_parallelism = s.u32()?;
        let state = s.u16()?;
        let meta = s.chunk()?;
        Some(ImportInput { max_parallelism, state, meta, parquet: s.rest() })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.max_parallelism.to_le_bytes().to_vec();
        out.extend_from_slice(&self.state.to_le_bytes());
        put_chunk(&mut out, self.meta);
        out.extend_from_slice(self.parquet);
        out
    }
}

/// The `rocksdb_db` target: a database's files by name.
#[derive(Debug, PartialEq)]
pub struct FilesInput<'a> {
    pub files: Vec<(String, &'a [u8])>,
}

impl<'a> FilesInput<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let mut s = Split::new(data);
        let mut files = Vec::new();
        while !s.is_empty() {
            let len = s.u8()? as usize;
            let name = String::from_utf8_lossy(s.take(len)?).into_owned();
            files.push((name, s.chunk()?));
        }
        Some(FilesInput { files })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, bytes) in &self.files {
            let name = &name.as_bytes()[..name.len().min(255)];
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            put_chunk(&mut out, bytes);
        }
        out
    }
}

fn put_u64s(out: &mut Vec<u8>, v: impl ExactSizeIterator<Item = u64>) {
    out.extend_from_slice(&(v.len().min(u16::MAX as usize) as u16).to_le_bytes());
    for x in v.take(u16::MAX as usize) {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

fn put_chunk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip() {
        let i = ImportInput { max_parallelism: 128, state: 3, meta: b"proxy", parquet: b"PAR1" };
        assert_eq!(ImportInput::parse(&i.encode()), Some(i));
        let k = KeyGroupInput { max_parallelism: 128, offsets: vec![0, 17, -1], bytes: b"abc" };
        assert_eq!(KeyGroupInput::parse(&k.encode()), Some(k));
        let c = ChangelogInput { max_parallelism: 7, offsets: vec![5], change_sets: vec![1, 2], materialized: b"m", dstl: b"dd" };
        assert_eq!(ChangelogInput::parse(&c.encode()), Some(c));
        let o = OperatorStateInput { states: vec![("s".into(), DistributionMode::Broadcast, vec![3])], bytes: b"x" };
        assert_eq!(OperatorStateInput::parse(&o.encode()), Some(o));
        let kv = KvInput { max_parallelism: 128, meta: b"meta", pairs: vec![(1, b"k", b"v")] };
        assert_eq!(KvInput::parse(&kv.encode()), Some(kv));
        let f = FilesInput { files: vec![("CURRENT".into(), b"MANIFEST-000001\n")] };
        assert_eq!(FilesInput::parse(&f.encode()), Some(f));
    }
}
