//! Writes the seed corpora of every fuzz target into `fuzz/corpus/<target>/` from the real-Flink
//! fixtures in `testdata/`, read with flinksnap itself: whole `_metadata` files, key-grouped
//! files with their handles' offsets, operator-state files with their states, changelog
//! checkpoints, serialization proxies and the serializer snapshots inside them, RocksDB
//! databases (files, tables, MANIFESTs, decoded key/value pairs) and Java serialization streams.
//! An example of the flinksnap crate (`cargo run --example fuzz_seeds`, what `fuzz/run.sh`
//! runs), not of the fuzz crate: it builds on stable from the workspace's own target dir, where
//! the tests have already built the library, instead of a second build with sanitizers.
//! Corpora are generated, never committed.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flinksnap::bytes::Cursor;
use flinksnap::metadata::handles::{KeyedStateHandle, OperatorStateHandle, StreamStateHandle};
use flinksnap::readers::serializers::read_proxy_snapshot;
use flinksnap::readers::stream::StreamSource;
use flinksnap::rocksdb_files::{Db, DbOptions, FileSource, MemoryFile, StringAppend};
use flinksnap::snapshot::Snapshot;
use flinksnap::storage::LocalStorage;

#[allow(dead_code)]
#[path = "src/lib.rs"]
mod fuzz;
use fuzz::{ChangelogInput, FilesInput, ImportInput, KeyGroupInput, KvInput, OperatorStateInput};

/// Seeds larger than this are left out: libFuzzer's inputs stay small and fast.
const MAX_SEED: usize = 256 << 10;
/// A database's files together (the `rocksdb_db` target).
const MAX_DB_SEED: usize = 1 << 20;
/// Key/value pairs per state in a `decode_kv` seed.
const PAIRS_PER_STATE: usize = 64;

struct Corpora {
    root: PathBuf,
    counts: HashMap<&'static str, usize>,
}

impl Corpora {
    /// Adds a seed; whether it is new.
    fn add(&mut self, target: &'static str, bytes: &[u8]) -> bool {
        let limit = if target == "rocksdb_db" { MAX_DB_SEED } else { MAX_SEED };
        if bytes.is_empty() || bytes.len() > limit {
            return false;
        }
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:016x}", h.finish()));
        if path.exists() {
            return false;
        }
        std::fs::write(&path, bytes).unwrap();
        *self.counts.entry(target).or_default() += 1;
        true
    }
}

/// Every file under `dir` (sorted, depth first) that `keep` accepts.
fn files(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, keep, out);
        } else if keep(&p) {
            out.push(p);
        }
    }
}

fn read(s: &Snapshot, h: &StreamStateHandle) -> Option<Vec<u8>> {
    let src = StreamSource::open(s, h).ok()?;
    src.read_range(0..src.size()).ok()
}

/// Every Java serialization stream in `bytes` that flinksnap reads (cut to its extent).
fn java_streams(c: &mut Corpora, bytes: &[u8]) {
    for (i, w) in bytes.windows(4).enumerate() {
        if w == [0xAC, 0xED, 0x00, 0x05] {
            let mut cur = Cursor::new(&bytes[i..]);
            if flinksnap::java_serialization::read_stream(&mut cur).is_ok() {
                c.add("java_serialization", &bytes[i..i + cur.position() as usize]);
            }
        }
    }
}

/// Every serializer snapshot inside a serialization proxy (tried at each offset), and that
/// snapshot followed by `values` (bytes its serializer may or may not decode).
fn serializer_snapshots(c: &mut Corpora, meta: &[u8], values: &[u8]) {
    let mut i = 0;
    while i < meta.len() {
        let mut cur = Cursor::new(&meta[i..]);
        if read_proxy_snapshot(&mut cur).is_ok() && cur.position() > 8 {
            let end = i + cur.position() as usize;
            // One values seed per distinct snapshot.
            if c.add("serializer_snapshot", &meta[i..end]) {
                let mut v = meta[i..end].to_vec();
                v.extend_from_slice(&values[..values.len().min(256)]);
                c.add("serializer_values", &v);
            }
            i = end;
        } else {
            i += 1;
        }
    }
}

fn operator_handle(c: &mut Corpora, s: &Snapshot, h: &OperatorStateHandle) {
    let Some(bytes) = read(s, &h.delegate) else { return };
    let states = h.states.iter().map(|m| (m.name.clone(), m.mode, m.offsets.clone())).collect();
    c.add("operator_state", &OperatorStateInput { states, bytes: &bytes }.encode());
    c.add("operator_backend_meta", &bytes);
    let first = h.states.iter().flat_map(|m| m.offsets.iter().copied()).min().unwrap_or(bytes.len() as u64) as usize;
    serializer_snapshots(c, &bytes[..first.min(bytes.len())], &bytes[first.min(bytes.len())..]);
    java_streams(c, &bytes);
}

fn keyed_handle(c: &mut Corpora, s: &Snapshot, max_parallelism: u32, h: &KeyedStateHandle) {
    match h {
        KeyedStateHandle::KeyGroups(h) => {
            let Some(bytes) = read(s, &h.delegate) else { return };
            let target = if h.is_savepoint() { "key_group_canonical" } else { "key_group_heap" };
            c.add(target, &KeyGroupInput { max_parallelism, offsets: h.offsets.clone(), bytes: &bytes }.encode());
            let first = h.offsets.iter().copied().filter(|&o| o > 0).min().unwrap_or(bytes.len() as i64) as usize;
            let first = first.min(bytes.len());
            c.add("keyed_backend_meta", &bytes[..first]);
            serializer_snapshots(c, &bytes[..first], &bytes[first..]);
            java_streams(c, &bytes);
        }
        KeyedStateHandle::Changelog(h) => {
            for m in &h.materialized {
                keyed_handle(c, s, max_parallelism, m);
            }
            let Some(KeyedStateHandle::KeyGroups(m)) = h.materialized.first() else { return };
            let Some(materialized) = read(s, &m.delegate) else { return };
            for n in &h.non_materialized {
                let KeyedStateHandle::ChangelogStream(st) = n else { continue };
                // One DSTL file per seed, with the change sets the handle reads from it.
                let mut by_file: Vec<(&StreamStateHandle, Vec<u64>)> = Vec::new();
                for (offset, f) in &st.handles {
                    match by_file.iter_mut().find(|(g, _)| *g == f) {
                        Some((_, v)) => v.push(*offset),
                        None => by_file.push((f, vec![*offset])),
                    }
                }
                for (f, change_sets) in by_file {
                    let Some(dstl) = read(s, f) else { continue };
                    java_streams(c, &dstl);
                    let input = ChangelogInput { max_parallelism, offsets: m.offsets.clone(), change_sets, materialized: &materialized, dstl: &dstl };
                    c.add("changelog", &input.encode());
                }
            }
        }
        KeyedStateHandle::IncrementalRemote(h) => {
            let Some(meta) = h.meta_state_handle.as_ref().and_then(|m| read(s, m)) else { return };
            c.add("keyed_backend_meta", &meta);
            serializer_snapshots(c, &meta, &[]);
            java_streams(c, &meta);
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            for f in h.shared_state.iter().chain(&h.private_state) {
                let Some(bytes) = f.handle.as_ref().and_then(|hd| read(s, hd)) else { return };
                if f.local_path.ends_with(".sst") {
                    c.add("sst", &bytes);
                } else if f.local_path.starts_with("MANIFEST-") {
                    c.add("manifest", &bytes);
                }
                files.push((f.local_path.clone(), bytes));
            }
            let input = FilesInput { files: files.iter().map(|(n, b)| (n.clone(), b.as_slice())).collect() };
            c.add("rocksdb_db", &input.encode());
            // Real key/value pairs of every state, for the decoder.
            let sources: HashMap<String, Arc<dyn FileSource>> =
                files.iter().map(|(n, b)| (n.clone(), Arc::new(MemoryFile::new(n.clone(), b.clone())) as Arc<dyn FileSource>)).collect();
            let Ok(db) = Db::open(&sources, DbOptions { verify_checksums: true, merge: Arc::new(StringAppend(b',')) }) else { return };
            let Ok(parsed) = flinksnap::readers::raw::keyed_backend_meta(&meta) else { return };
            let mut pairs: Vec<(u16, Vec<u8>, Vec<u8>)> = Vec::new();
            for (i, st) in parsed.states.iter().enumerate() {
                let Ok(mut cur) = db.cursor(&st.name, &[], None) else { continue };
                let mut n = 0;
                while cur.valid() && n < PAIRS_PER_STATE {
                    pairs.push((i as u16, cur.key().to_vec(), cur.value().to_vec()));
                    n += 1;
                    if cur.advance().is_err() {
                        break;
                    }
                }
            }
            let kv = KvInput { max_parallelism, meta: &meta, pairs: pairs.iter().map(|(i, k, v)| (*i, k.as_slice(), v.as_slice())).collect() };
            c.add("decode_kv", &kv.encode());
        }
        _ => {}
    }
}

/// The `import_parquet` seeds of a canonical savepoint: its export's Parquet file of each keyed
/// state, with the proxy of the operator's first key-grouped handle that registers the state.
fn import_seeds(c: &mut Corpora, s: &Snapshot, dir: &Path) {
    let out = std::env::temp_dir().join(format!("flinksnap-fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let Ok(snap) = flinksnap::Snapshot::open(dir.to_str().unwrap()) else { return };
    let Ok(scan) = snap.scan().build() else { return };
    let mut opts = flinksnap::ExportOptions::new(&out);
    opts.threads = 1;
    let Ok(manifest) = scan.export(&opts, &flinksnap::NoProgress) else { return };
    for m in &manifest.states {
        let Some(op) = s.metadata.operators.iter().find(|o| o.operator_id.to_string() == m.operator_id) else { continue };
        let proxies = op.subtasks.iter().filter_map(|st| match st.state.as_ref()?.managed_keyed_state.as_ref()? {
            KeyedStateHandle::KeyGroups(h) if h.is_savepoint() => {
                let bytes = read(s, &h.delegate)?;
                let first = h.offsets.iter().copied().filter(|&o| o > 0).min().unwrap_or(bytes.len() as i64) as usize;
                Some(bytes[..first.min(bytes.len())].to_vec())
            }
            _ => None,
        });
        for meta in proxies {
            let Ok(parsed) = flinksnap::readers::raw::keyed_backend_meta(&meta) else { continue };
            let Some(state) = parsed.states.iter().position(|r| r.name == m.state && r.kind().is_some_and(|k| k.as_str() == m.kind)) else { continue };
            let Ok(parquet) = std::fs::read(out.join(&m.file)) else { break };
            c.add("import_parquet", &ImportInput { max_parallelism: op.max_parallelism, state: state as u16, meta: &meta, parquet: &parquet }.encode());
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let testdata = root.join("testdata");
    let fuzz = root.join("fuzz");
    let mut c = Corpora { root: fuzz.join("corpus"), counts: HashMap::new() };
    let mut dirs = Vec::new();
    files(&testdata, &|p| p.file_name().is_some_and(|n| n == "_metadata"), &mut dirs);
    let dirs: Vec<PathBuf> = dirs.iter().map(|m| m.parent().unwrap().to_path_buf()).collect();
    for dir in &dirs {
        let raw = std::fs::read(dir.join("_metadata")).unwrap();
        c.add("metadata", &raw);
        java_streams(&mut c, &raw);
        let s = match Snapshot::open(Arc::new(LocalStorage), dir.to_str().unwrap()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skipping {}: {e}", dir.display());
                continue;
            }
        };
        import_seeds(&mut c, &s, dir);
        for op in &s.metadata.operators {
            for st in &op.subtasks {
                let Some(state) = &st.state else { continue };
                for h in [&state.managed_operator_state, &state.raw_operator_state].into_iter().flatten() {
                    operator_handle(&mut c, &s, h);
                }
                for h in [&state.managed_keyed_state, &state.raw_keyed_state].into_iter().flatten() {
                    keyed_handle(&mut c, &s, op.max_parallelism, h);
                }
            }
        }
    }
    // Plans beside the SQL snapshots (compiled and REST), for the `plan` target.
    let mut plans = Vec::new();
    files(&testdata, &|p| p.extension().is_some_and(|e| e == "json") && p.to_str().is_some_and(|s| s.contains("plan")), &mut plans);
    for p in plans {
        c.add("plan", &std::fs::read(p).unwrap());
    }
    let mut counts: Vec<_> = c.counts.into_iter().collect();
    counts.sort();
    println!("{} snapshots read; new seeds per target:", dirs.len());
    for (t, n) in counts {
        println!("  {t:24} {n}");
    }
}
