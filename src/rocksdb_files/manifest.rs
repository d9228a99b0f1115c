//! The MANIFEST (`db/version_edit.{h,cc}`, `db/version_set.cc`): a log of `VersionEdit`s whose
//! replay gives the live state of the database: its column families and, per column family and
//! level, the live table files with their key ranges and sequence numbers.
//!
//! A `VersionEdit` is a run of `varint32 tag, fields`. The tags Flink's RocksDB (FRocksDB 5.17,
//! 6.20, 8.10, ForSt) writes are handled; unknown tags with the "safe to ignore" bit (1 << 13)
//! carry a length and are skipped, like unknown `NewFile4` fields without the "must understand"
//! bit (1 << 6). Anything else is an error naming the record.

use std::collections::{BTreeMap, HashMap};

use super::coding::{Bad, Reader};
use super::error::{corrupt, unsupported, Position, Result};
use super::log::Record;

/// A live table file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The file number: the table is `NNNNNN.sst`.
    pub number: u64,
    /// Its size as recorded.
    pub size: u64,
    /// Smallest internal key.
    pub smallest: Vec<u8>,
    /// Largest internal key.
    pub largest: Vec<u8>,
    /// Smallest sequence number of its entries.
    pub smallest_sequence: u64,
    /// Largest sequence number of its entries (an ingested file's global sequence number).
    pub largest_sequence: u64,
}

/// One decoded `VersionEdit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionEdit {
    /// `kComparator`
    pub comparator: Option<String>,
    /// `kLastSequence`
    pub last_sequence: Option<u64>,
    /// `kNextFileNumber`
    pub next_file_number: Option<u64>,
    /// `kColumnFamily`: the column family the edit is about (0, `default`, when absent).
    pub column_family: u32,
    /// `kColumnFamilyAdd`: the column family is created with this name.
    pub add_column_family: Option<String>,
    /// `kColumnFamilyDrop`
    pub drop_column_family: bool,
    /// `kDeletedFile`: (level, file number).
    pub deleted_files: Vec<(u32, u64)>,
    /// `kNewFile*`: (level, file).
    pub new_files: Vec<(u32, FileMeta)>,
    /// `kInAtomicGroup`: how many edits of the group follow this one.
    pub atomic_group_remaining: Option<u32>,
    /// Blob files added (not supported: Flink uses no BlobDB).
    pub has_blob_files: bool,
}

const TAG_SAFE_IGNORE: u32 = 1 << 13;
const CUSTOM_TAG_NON_SAFE_IGNORE: u32 = 1 << 6;

impl VersionEdit {
    /// Decodes the payload of one MANIFEST record.
    pub fn decode(file: &str, record: &Record) -> Result<VersionEdit> {
        let mut r = Reader::new(&record.payload);
        let at = |b: Bad| Position::Record { record: record.offset, at: b.at as u64 };
        let bad = |b: Bad| corrupt(file, at(b), format!("bad {} in a VersionEdit", b.what));
        let mut e = VersionEdit::default();
        while !r.is_empty() {
            let tag_at = r.pos();
            let tag = r.varint32("tag").map_err(bad)?;
            match tag {
                1 => e.comparator = Some(String::from_utf8_lossy(r.length_prefixed("comparator").map_err(bad)?).into_owned()),
                2 | 9 => {
                    r.varint64("log number").map_err(bad)?;
                }
                3 => e.next_file_number = Some(r.varint64("next file number").map_err(bad)?),
                4 => e.last_sequence = Some(r.varint64("last sequence").map_err(bad)?),
                5 => {
                    r.varint32("compact cursor level").map_err(bad)?;
                    r.length_prefixed("compact cursor key").map_err(bad)?;
                }
                6 => {
                    let level = r.varint32("deleted file level").map_err(bad)?;
                    let number = r.varint64("deleted file number").map_err(bad)?;
                    e.deleted_files.push((level, number));
                }
                7 | 100 | 102 | 103 => {
                    let level = r.varint32("new file level").map_err(bad)?;
                    let number = r.varint64("new file number").map_err(bad)?;
                    if tag == 102 {
                        r.varint32("path id").map_err(bad)?;
                    }
                    let size = r.varint64("file size").map_err(bad)?;
                    let smallest = r.length_prefixed("smallest key").map_err(bad)?.to_vec();
                    let largest = r.length_prefixed("largest key").map_err(bad)?.to_vec();
                    let (smallest_sequence, largest_sequence) = if tag == 7 {
                        (0, super::internal_key::MAX_SEQUENCE)
                    } else {
                        (r.varint64("smallest sequence").map_err(bad)?, r.varint64("largest sequence").map_err(bad)?)
                    };
                    if tag == 103 {
                        loop {
                            let field_at = r.pos();
                            let custom = r.varint32("new file field tag").map_err(bad)?;
                            if custom == 1 {
                                break;
                            }
                            let field = r.length_prefixed("new file field").map_err(bad)?;
                            // Path ids (65) place a file in another `db_paths` directory: Flink
                            // configures one directory, and a checkpoint lists its files by name.
                            if custom & CUSTOM_TAG_NON_SAFE_IGNORE != 0 && !(custom == 65 && field == [0]) {
                                return Err(unsupported(
                                    file,
                                    Position::Record { record: record.offset, at: field_at as u64 },
                                    format!("new-file field {custom} that readers must understand"),
                                ));
                            }
                        }
                    }
                    e.new_files.push((level, FileMeta { number, size, smallest, largest, smallest_sequence, largest_sequence }));
                }
                10 => {
                    r.varint64("min log number to keep").map_err(bad)?;
                }
                200 => e.column_family = r.varint32("column family").map_err(bad)?,
                201 => e.add_column_family = Some(String::from_utf8_lossy(r.length_prefixed("column family name").map_err(bad)?).into_owned()),
                202 => e.drop_column_family = true,
                203 => {
                    r.varint32("max column family").map_err(bad)?;
                }
                300 => e.atomic_group_remaining = Some(r.varint32("atomic group size").map_err(bad)?),
                400 | 401 | 8194 | 8195 => {
                    e.has_blob_files = true;
                    return Err(unsupported(file, at(Bad { at: tag_at, what: "" }), "blob files (BlobDB): Flink's RocksDB writes none"));
                }
                // The first WAL records (before they were length-prefixed): a log number, then
                // (additions) fields up to a terminating 1.
                t if t == TAG_SAFE_IGNORE + 4 => {
                    r.varint64("WAL number").map_err(bad)?;
                    loop {
                        match r.varint32("WAL field").map_err(bad)? {
                            1 => break,
                            2 => {
                                r.varint64("WAL synced size").map_err(bad)?;
                            }
                            _ => return Err(bad(Bad { at: r.pos(), what: "WAL addition field" })),
                        }
                    }
                }
                t if t == TAG_SAFE_IGNORE + 5 => {
                    r.varint64("WAL number").map_err(bad)?;
                }
                t if t & TAG_SAFE_IGNORE != 0 => {
                    r.length_prefixed("ignorable field").map_err(bad)?;
                }
                t => return Err(corrupt(file, at(Bad { at: tag_at, what: "" }), format!("unknown VersionEdit tag {t}"))),
            }
        }
        Ok(e)
    }
}

/// A column family of the replayed MANIFEST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnFamily {
    /// Its id.
    pub id: u32,
    /// Its name (the state name, for Flink).
    pub name: String,
    /// Live files per level (index = level), level 0 newest first, other levels by key.
    pub levels: Vec<Vec<FileMeta>>,
}

/// The live state of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Column families by id, `default` (0) included.
    pub column_families: Vec<ColumnFamily>,
    /// The comparator name.
    pub comparator: Option<String>,
    /// The last sequence number.
    pub last_sequence: u64,
}

/// Replays the edits of a MANIFEST. Edits of an atomic group the file ends inside are not
/// applied, as RocksDB does.
pub fn replay(file: &str, records: &[Record]) -> Result<Version> {
    let mut names: BTreeMap<u32, String> = BTreeMap::from([(0, "default".to_owned())]);
    let mut files: HashMap<u32, BTreeMap<(u32, u64), FileMeta>> = HashMap::new();
    let mut comparator = None;
    let mut last_sequence = 0;
    let mut group: Vec<VersionEdit> = Vec::new();
    for rec in records {
        let e = VersionEdit::decode(file, rec)?;
        let mut apply: Vec<VersionEdit> = Vec::new();
        match e.atomic_group_remaining {
            // The edits of a group count down to 0; the group applies as a whole.
            Some(n) => {
                group.push(e);
                if n == 0 {
                    apply = std::mem::take(&mut group);
                }
            }
            None => {
                if !group.is_empty() {
                    return Err(corrupt(file, Position::Record { record: rec.offset, at: 0 }, "an edit outside the atomic group before it ended"));
                }
                apply.push(e);
            }
        }
        for e in apply {
            if let Some(c) = &e.comparator {
                comparator = Some(c.clone());
            }
            if let Some(s) = e.last_sequence {
                last_sequence = s;
            }
            let cf = e.column_family;
            if let Some(name) = &e.add_column_family {
                names.insert(cf, name.clone());
                files.insert(cf, BTreeMap::new());
            }
            if e.drop_column_family {
                names.remove(&cf);
                files.remove(&cf);
                continue;
            }
            if !names.contains_key(&cf) && (!e.new_files.is_empty() || !e.deleted_files.is_empty()) {
                return Err(corrupt(file, Position::Record { record: rec.offset, at: 0 }, format!("files of column family {cf}, which does not exist")));
            }
            let live = files.entry(cf).or_default();
            for (level, number) in &e.deleted_files {
                live.remove(&(*level, *number));
            }
            for (level, f) in &e.new_files {
                live.insert((*level, f.number), f.clone());
            }
        }
    }
    let column_families = names
        .into_iter()
        .map(|(id, name)| {
            let mut levels: Vec<Vec<FileMeta>> = Vec::new();
            for ((level, _), f) in files.remove(&id).unwrap_or_default() {
                let l = level as usize;
                if levels.len() <= l {
                    levels.resize(l + 1, Vec::new());
                }
                levels[l].push(f);
            }
            for (l, files) in levels.iter_mut().enumerate() {
                if l == 0 {
                    // Newest first (RocksDB orders level 0 by sequence numbers).
                    files.sort_by(|a, b| b.largest_sequence.cmp(&a.largest_sequence).then(b.number.cmp(&a.number)));
                } else {
                    files.sort_by(|a, b| super::internal_key::compare(&a.smallest, &b.smallest));
                }
            }
            ColumnFamily { id, name, levels }
        })
        .collect();
    Ok(Version { column_families, comparator, last_sequence })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rocksdb_files::coding::put_varint64;

    fn ik(user: &[u8], seq: u64) -> Vec<u8> {
        let mut k = user.to_vec();
        k.extend_from_slice(&((seq << 8) | 1).to_le_bytes());
        k
    }

    fn lp(out: &mut Vec<u8>, b: &[u8]) {
        put_varint64(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    fn new_file4(out: &mut Vec<u8>, level: u64, number: u64, seq: u64) {
        put_varint64(out, 103);
        put_varint64(out, level);
        put_varint64(out, number);
        put_varint64(out, 1000);
        lp(out, &ik(b"a", seq));
        lp(out, &ik(b"z", seq));
        put_varint64(out, seq);
        put_varint64(out, seq);
        put_varint64(out, 6); // file creation time
        lp(out, &[1]);
        put_varint64(out, 1); // terminate
    }

    #[test]
    fn replay_column_families_and_files() {
        let mut e0 = Vec::new();
        put_varint64(&mut e0, 1);
        lp(&mut e0, b"leveldb.BytewiseComparator");
        let mut e1 = Vec::new();
        put_varint64(&mut e1, 200);
        put_varint64(&mut e1, 1);
        put_varint64(&mut e1, 201);
        lp(&mut e1, b"v-long");
        let mut e2 = Vec::new();
        put_varint64(&mut e2, 200);
        put_varint64(&mut e2, 1);
        new_file4(&mut e2, 0, 10, 5);
        new_file4(&mut e2, 0, 11, 9);
        new_file4(&mut e2, 1, 7, 2);
        put_varint64(&mut e2, 4);
        put_varint64(&mut e2, 9);
        let mut e3 = Vec::new();
        put_varint64(&mut e3, 200);
        put_varint64(&mut e3, 1);
        put_varint64(&mut e3, 6);
        put_varint64(&mut e3, 1);
        put_varint64(&mut e3, 7);
        let log = crate::rocksdb_files::log::tests::write(&[&e0, &e1, &e2, &e3]);
        let recs = crate::rocksdb_files::log::records("M", &log).unwrap();
        let v = replay("M", &recs).unwrap();
        assert_eq!(v.comparator.as_deref(), Some("leveldb.BytewiseComparator"));
        assert_eq!(v.last_sequence, 9);
        let cf = v.column_families.iter().find(|c| c.name == "v-long").unwrap();
        assert_eq!(cf.levels[0].iter().map(|f| f.number).collect::<Vec<_>>(), vec![11, 10]);
        assert!(cf.levels.get(1).is_none_or(|l| l.is_empty()));

        // An unknown tag is named with the record and the offset in it.
        let mut bad = e1.clone();
        put_varint64(&mut bad, 77);
        let log = crate::rocksdb_files::log::tests::write(&[&bad]);
        let e = replay("M", &crate::rocksdb_files::log::records("M", &log).unwrap()).unwrap_err();
        assert_eq!(e.format().unwrap().position, Position::Record { record: 0, at: e1.len() as u64 });
        // Every truncation of an edit is an error, not a panic.
        for cut in 0..e2.len() {
            let log = crate::rocksdb_files::log::tests::write(&[&e1, &e2[..cut]]);
            let _ = replay("M", &crate::rocksdb_files::log::records("M", &log).unwrap());
        }
    }
}
