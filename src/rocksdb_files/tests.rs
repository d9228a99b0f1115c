//! The Rust reader against librocksdb (cargo feature `rocksdb`) on databases librocksdb writes
//! with every table option the reader claims to handle: format versions 2 to 6, every checksum
//! type, every compression Flink may configure, two-level indexes, data-block hash indexes,
//! restart intervals, several column families with overwrites, deletes, single deletes, merge
//! operands, range tombstones, data compacted into deeper levels and ingested files (global
//! sequence numbers). Each database is checkpointed, and both readers must give the same
//! ordered (column family, key, value) stream. The Flink fixtures are compared the same way in
//! `readers::rocksdb` (`the_rust_reader_reads_what_librocksdb_reads`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ::rocksdb::{
    checkpoint::Checkpoint, BlockBasedIndexType, ColumnFamilyDescriptor, BlockBasedOptions, ChecksumType, DBCompressionType, DataBlockIndexType, MergeOperands,
    Options, SstFileWriter, DB,
};

use super::{Db, DbOptions, FileSource, MemoryFile, StringAppend};

fn append(_k: &[u8], existing: Option<&[u8]>, ops: &MergeOperands) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut d = false;
    for p in existing.into_iter().chain(ops.iter()) {
        if d {
            out.push(b',');
        }
        out.extend_from_slice(p);
        d = true;
    }
    Some(out)
}

struct Variant {
    name: &'static str,
    format_version: i32,
    checksum: ChecksumType,
    compression: DBCompressionType,
    index: BlockBasedIndexType,
    hash: bool,
    restart: i32,
    index_restart: i32,
}

fn options(v: &Variant) -> Options {
    let mut b = BlockBasedOptions::default();
    b.set_format_version(v.format_version);
    b.set_checksum_type(match v.checksum {
        ChecksumType::NoChecksum => ChecksumType::NoChecksum,
        ChecksumType::CRC32c => ChecksumType::CRC32c,
        ChecksumType::XXHash => ChecksumType::XXHash,
        ChecksumType::XXHash64 => ChecksumType::XXHash64,
        ChecksumType::XXH3 => ChecksumType::XXH3,
    });
    b.set_block_size(512);
    b.set_metadata_block_size(128);
    b.set_block_restart_interval(v.restart);
    b.set_index_block_restart_interval(v.index_restart);
    b.set_index_type(match v.index {
        BlockBasedIndexType::BinarySearch => BlockBasedIndexType::BinarySearch,
        BlockBasedIndexType::HashSearch => BlockBasedIndexType::HashSearch,
        BlockBasedIndexType::TwoLevelIndexSearch => BlockBasedIndexType::TwoLevelIndexSearch,
    });
    if v.hash {
        b.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
    }
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_block_based_table_factory(&b);
    o.set_compression_type(v.compression);
    o.set_bottommost_compression_type(v.compression);
    o.set_disable_auto_compactions(true);
    o.set_merge_operator_associative("stringappendtest", append);
    o
}

/// A deterministic pseudo-random sequence.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn key(i: u64) -> Vec<u8> {
    // Flink-like: a key-group prefix, a shared text part, a varying tail.
    let mut k = vec![(i % 7) as u8];
    k.extend_from_slice(format!("user-key-{:05}", i % 1500).as_bytes());
    k
}

/// Writes a database exercising every kind of entry and returns its checkpoint directory.
fn build(v: &Variant, dir: &Path) -> std::path::PathBuf {
    let o = options(v);
    let path = dir.join("db");
    let cfs = ["default", "list", "value"];
    let db = DB::open_cf_descriptors(&o, &path, cfs.iter().map(|n| ColumnFamilyDescriptor::new(*n, options(v)))).unwrap();
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let (list, value) = (db.cf_handle("list").unwrap(), db.cf_handle("value").unwrap());
    for round in 0..4u64 {
        for _ in 0..1200 {
            let i = r.next();
            let k = key(i);
            match i % 11 {
                0 => db.delete_cf(&value, &k).unwrap(),
                1 => db.put_cf(&value, &k, b"one").unwrap(),
                2..=4 => db.merge_cf(&list, &k, format!("e{round}-{}", i % 100)).unwrap(),
                5 => db.put_cf(&list, &k, format!("base{round}")).unwrap(),
                6 => db.delete_cf(&list, &k).unwrap(),
                _ => db.put_cf(&value, &k, vec![b'v'; (i % 300) as usize]).unwrap(),
            }
        }
        // Single deletes: keys put once (in round 0), single-deleted later (SingleDelete's
        // contract: never mixed with Delete or a second Put).
        for j in 0..100u64 {
            let k = format!("\x05single-{j:03}").into_bytes();
            match round {
                0 => db.put_cf(&value, &k, b"once").unwrap(),
                2 if j % 2 == 0 => {
                    let mut b = ::rocksdb::WriteBatch::default();
                    b.single_delete_cf(&value, &k);
                    db.write(b).unwrap();
                }
                _ => {}
            }
        }
        if round == 2 {
            db.delete_range_cf(&value, key(3).as_slice(), key(5).as_slice()).unwrap();
            db.delete_range_cf(&list, vec![2u8].as_slice(), vec![2u8, b'u', b's', b'e', b'r', b'-', b'k', b'e', b'y', b'-', b'0', b'7'].as_slice()).unwrap();
        }
        db.flush_cf(&value).unwrap();
        db.flush_cf(&list).unwrap();
        if round == 1 {
            // Into the deeper levels: later rounds overwrite them from level 0.
            db.compact_range_cf(&value, None::<&[u8]>, None::<&[u8]>);
            db.compact_range_cf(&list, None::<&[u8]>, None::<&[u8]>);
        }
    }
    // An ingested file: its entries get a global sequence number.
    let sst = dir.join("ingest.sst");
    let w = SstFileWriter::create(&o);
    let mut w = w;
    w.open(&sst).unwrap();
    for i in 0..200u64 {
        let mut k = vec![9u8];
        k.extend_from_slice(format!("ingested-{i:04}").as_bytes());
        w.put(&k, format!("i{i}")).unwrap();
    }
    w.finish().unwrap();
    db.ingest_external_file_cf(&value, vec![&sst]).unwrap();
    db.put_cf(&value, [9u8, b'i', b'n', b'g', b'e', b's', b't', b'e', b'd', b'-', b'0', b'0', b'0', b'1'], b"newer").unwrap();
    db.flush_cf(&value).unwrap();
    let out = dir.join("checkpoint");
    Checkpoint::new(&db).unwrap().create_checkpoint(&out).unwrap();
    out
}

fn librocksdb_entries(v: &Variant, dir: &Path) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let o = options(v);
    let cfs = DB::list_cf(&o, dir).unwrap();
    let db = DB::open_cf_descriptors_read_only(&o, dir, cfs.iter().map(|n| ColumnFamilyDescriptor::new(n, options(v))), false).unwrap();
    let mut out = Vec::new();
    for cf in &cfs {
        let mut it = db.raw_iterator_cf(&db.cf_handle(cf).unwrap());
        it.seek_to_first();
        while let Some((k, v)) = it.item() {
            out.push((cf.clone(), k.to_vec(), v.to_vec()));
            it.next();
        }
        it.status().unwrap();
    }
    out
}

fn rust_db(dir: &Path) -> Db {
    let files: HashMap<String, Arc<dyn FileSource>> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let f: Arc<dyn FileSource> = Arc::new(MemoryFile::new(name.clone(), std::fs::read(e.path()).unwrap()));
            (name, f)
        })
        .collect();
    Db::open(&files, DbOptions { verify_checksums: true, merge: Arc::new(StringAppend(b',')) }).unwrap()
}

fn rust_entries(dir: &Path) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let db = rust_db(dir);
    let mut out = Vec::new();
    for cf in db.column_families() {
        let mut c = db.cursor(&cf, &[], None).unwrap();
        while c.valid() {
            out.push((cf.clone(), c.key().to_vec(), c.value().to_vec()));
            c.advance().unwrap();
        }
    }
    out
}

fn variants() -> Vec<Variant> {
    use BlockBasedIndexType as I;
    use ChecksumType as C;
    use DBCompressionType as Z;
    let v = |name, format_version, checksum, compression, index, hash, restart, index_restart| Variant {
        name,
        format_version,
        checksum,
        compression,
        index,
        hash,
        restart,
        index_restart,
    };
    vec![
        v("fv2 crc32c snappy", 2, C::CRC32c, Z::Snappy, I::BinarySearch, false, 16, 1),
        v("fv3 xxhash lz4", 3, C::XXHash, Z::Lz4, I::BinarySearch, false, 16, 1),
        v("fv4 xxhash64 zlib", 4, C::XXHash64, Z::Zlib, I::BinarySearch, false, 4, 4),
        v("fv5 xxh3 zstd", 5, C::XXH3, Z::Zstd, I::BinarySearch, false, 16, 1),
        v("fv5 crc32c lz4hc two-level", 5, C::CRC32c, Z::Lz4hc, I::TwoLevelIndexSearch, false, 16, 3),
        v("fv6 xxh3 snappy", 6, C::XXH3, Z::Snappy, I::BinarySearch, false, 16, 1),
        v("fv6 crc32c none two-level hash", 6, C::CRC32c, Z::None, I::TwoLevelIndexSearch, true, 1, 2),
        v("fv4 none none hash-index", 4, C::NoChecksum, Z::None, I::BinarySearch, true, 8, 1),
    ]
}

#[test]
fn the_rust_reader_reads_every_table_option_as_librocksdb() {
    for v in variants() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = build(&v, tmp.path());
        let want = librocksdb_entries(&v, &dir);
        let got = rust_entries(&dir);
        assert!(want.len() > 1000, "{}: {} entries", v.name, want.len());
        assert_eq!(got.len(), want.len(), "{}", v.name);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a, b, "{}: entry {i}", v.name);
        }
        // Seeks into the middle, bounded scans.
        let db = rust_db(&dir);
        for (lo, hi) in [(vec![2u8], Some(vec![4u8])), (key(777), None), (vec![6u8, b'u'], Some(vec![6u8, b'v']))] {
            for cf in ["list", "value"] {
                let mut c = db.cursor(cf, &lo, hi.as_deref()).unwrap();
                let mut n = 0;
                while c.valid() {
                    n += 1;
                    c.advance().unwrap();
                }
                let expected = want.iter().filter(|(f, k, _)| f == cf && *k >= lo && hi.as_ref().is_none_or(|h| k < h)).count();
                assert_eq!(n, expected, "{}: {cf} {lo:?}..{hi:?}", v.name);
            }
        }
        assert!(db.verify_all_blocks().unwrap() > 10, "{}", v.name);
        // The tables are what the variant asks for.
        let (mut ingested, mut tombstones) = (0, 0);
        for e in std::fs::read_dir(&dir).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "sst")) {
            let f: Arc<dyn FileSource> = Arc::new(MemoryFile::new("t", std::fs::read(e.path()).unwrap()));
            let t = super::table::Table::open(f, None, true).unwrap();
            assert_eq!(t.footer().format_version, v.format_version as u32, "{}", v.name);
            let two_level = t.properties().index_type() == Ok(super::properties::IndexType::TwoLevel);
            assert_eq!(two_level, matches!(v.index, BlockBasedIndexType::TwoLevelIndexSearch), "{}", v.name);
            ingested += usize::from(t.global_sequence().is_some());
            tombstones += t.range_tombstones().len();
        }
        assert_eq!(ingested, 1, "{}", v.name);
        assert!(tombstones >= 2, "{}", v.name);
    }
}

#[test]
fn a_flipped_bit_in_any_block_is_caught_and_named() {
    let v = &variants()[3];
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(v, tmp.path());
    let sst = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "sst")).max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let orig = std::fs::read(&sst).unwrap();
    let name = sst.file_name().unwrap().to_string_lossy().into_owned();
    for at in [0, 100, orig.len() / 2, orig.len() - 60] {
        let mut d = orig.clone();
        d[at] ^= 0x10;
        std::fs::write(&sst, &d).unwrap();
        let err = match std::panic::catch_unwind(|| rust_db(&dir)) {
            Ok(db) => db.verify_all_blocks().unwrap_err(),
            Err(_) => panic!("byte {at}: the open panicked"),
        };
        let f = err.format().unwrap_or_else(|| panic!("byte {at}: {err}"));
        assert!(f.file.contains(&name), "{f}");
        assert!(matches!(f.problem, super::Problem::Checksum { .. }), "byte {at}: {f}");
        let block = f.position.file_offset();
        assert!(block <= at as u64, "byte {at}: named block at {block}");
    }
    std::fs::write(&sst, &orig).unwrap();
}
