//! Every entry of a snapshot, streamed: subtask by subtask, keyed state through its
//! [`KeyedSource`] key group by key group, entry by entry, so memory holds one key group's window
//! of bytes (or one operator-state handle) at a time.

use std::collections::{BTreeMap, VecDeque};

use crate::error::Result;
use crate::metadata::handles::DistributionMode;
use crate::model::{Entry, StateKind};
use crate::readers::operator::read_operator_state_reporting;
use crate::readers::source::KeyedSource;
use crate::readers::undecodable::Undecodable;
use crate::snapshot::Snapshot;

pub use crate::model::SubtaskRef;
pub use crate::readers::source::Selection;

#[derive(Debug)]
enum Work {
    Operator(SubtaskRef),
    Keyed(SubtaskRef),
}

impl Work {
    fn subtask_ref(&self) -> SubtaskRef {
        match *self {
            Work::Operator(s) | Work::Keyed(s) => s,
        }
    }
}

/// Streams the selected entries of a snapshot.
#[derive(Debug)]
pub struct SnapshotEntries<'a> {
    snapshot: &'a Snapshot,
    selection: Selection,
    work: VecDeque<Work>,
    /// The keyed source being read, and its key groups still to read.
    keyed: Option<(KeyedSource<'a>, VecDeque<u32>)>,
    /// A key group of `keyed` was started and not read to its end.
    in_key_group: bool,
    buffer: std::vec::IntoIter<Entry>,
    failed: bool,
    /// (operator, broadcast state) -> the subtask whose copy is read. Every subtask stores a
    /// full copy and Flink restores each subtask from one of them, so only the first copy (in
    /// subtask order, over the whole snapshot) is an entry of its own. Decided up front so a
    /// read of one subtask ([`SnapshotEntries::for_subtask`]) agrees with a read of all.
    broadcast_owner: BTreeMap<(usize, String), usize>,
    /// What was read but could not be decoded so far (see [`SnapshotEntries::undecodable`]).
    undecodable: Vec<Undecodable>,
}

impl<'a> SnapshotEntries<'a> {
    /// Plans the read; nothing is read until iteration.
    pub fn new(snapshot: &'a Snapshot, selection: Selection) -> Self {
        let mut work = VecDeque::new();
        let mut broadcast_owner = BTreeMap::new();
        for (i, op) in snapshot.metadata.operators.iter().enumerate() {
            if !selection.operator(&op.operator_id) {
                continue;
            }
            for (j, st) in op.subtasks.iter().enumerate() {
                let Some(s) = &st.state else { continue };
                let sub = SubtaskRef { operator: i, subtask: j };
                if let Some(h) = s.managed_operator_state.as_ref().filter(|_| selection.key_groups.is_none()) {
                    work.push_back(Work::Operator(sub));
                    for m in h.states.iter().filter(|m| m.mode == DistributionMode::Broadcast) {
                        broadcast_owner.entry((i, m.name.clone())).or_insert(j);
                    }
                }
                if s.managed_keyed_state.is_some() {
                    work.push_back(Work::Keyed(sub));
                }
            }
        }
        SnapshotEntries {
            snapshot,
            selection,
            work,
            keyed: None,
            in_key_group: false,
            buffer: Vec::new().into_iter(),
            failed: false,
            broadcast_owner,
            undecodable: Vec::new(),
        }
    }

    /// The subtasks holding selected state, in snapshot order: the units
    /// [`SnapshotEntries::for_subtask`] reads.
    pub fn subtasks(snapshot: &Snapshot, selection: &Selection) -> Vec<SubtaskRef> {
        let mut out: Vec<SubtaskRef> = SnapshotEntries::new(snapshot, selection.clone()).work.iter().map(Work::subtask_ref).collect();
        out.dedup();
        out
    }

    /// Plans the read of one subtask's selected entries (operator state, then keyed state, as
    /// [`SnapshotEntries::new`] orders them). Reading every subtask this way gives exactly the
    /// entries of one [`SnapshotEntries::new`] read.
    pub fn for_subtask(snapshot: &'a Snapshot, selection: Selection, subtask: SubtaskRef) -> Self {
        let mut all = SnapshotEntries::new(snapshot, selection);
        all.work.retain(|w| w.subtask_ref() == subtask);
        all
    }

    /// What the read so far could not decode — states of serializers flinksnap cannot
    /// interpret whose entries (or registration) could not be read — one record per subtask,
    /// state and reason. Complete once the iteration has ended; an unknown serializer costs at
    /// most its own state, never the read.
    pub fn undecodable(&self) -> &[Undecodable] {
        &self.undecodable
    }

    /// Takes what the keyed source being read could not decode.
    fn collect_undecodable(&mut self) {
        if let Some((source, _)) = &mut self.keyed {
            for u in source.take_undecodable() {
                Undecodable::merge_into(&mut self.undecodable, u);
            }
        }
    }

    /// Reads keyed state only (`true`) or operator state only (`false`) of what is planned:
    /// a part of a subtask's state, read apart from the rest (a scan's partitions).
    pub fn keyed_only(mut self, keyed: bool) -> Self {
        self.work.retain(|w| matches!(w, Work::Keyed(_)) == keyed);
        self
    }

    /// Moves on: the next key group of the keyed source, or the next unit of work. `false` when
    /// everything was read.
    fn step(&mut self) -> Result<bool> {
        self.collect_undecodable();
        if let Some((source, kgs)) = &mut self.keyed {
            if let Some(kg) = kgs.pop_front() {
                source.start(kg)?;
                self.in_key_group = true;
                return Ok(true);
            }
            self.keyed = None;
        }
        let Some(w) = self.work.pop_front() else { return Ok(false) };
        match w {
            Work::Operator(sub) => {
                let op = &self.snapshot.metadata.operators[sub.operator];
                let s = op.subtasks[sub.subtask].state.as_ref();
                if let Some(h) = s.and_then(|s| s.managed_operator_state.as_ref()) {
                    let (mut entries, undecodable) = read_operator_state_reporting(self.snapshot, sub, h)?;
                    for u in undecodable.into_iter().filter(|u| u.state.as_deref().is_none_or(|s| self.selection.state(s))) {
                        Undecodable::merge_into(&mut self.undecodable, u);
                    }
                    entries.retain(|e| self.selection.state(&e.state));
                    let owner = &self.broadcast_owner;
                    entries.retain(|e| e.kind != StateKind::Broadcast || owner.get(&(sub.operator, e.state.to_string())) == Some(&sub.subtask));
                    self.buffer = entries.into_iter();
                }
            }
            Work::Keyed(sub) => {
                if let Some(mut source) = KeyedSource::open(self.snapshot, sub, &self.selection)? {
                    let kgs = source.key_groups()?.into();
                    self.keyed = Some((source, kgs));
                }
            }
        }
        Ok(true)
    }

    fn fail(&mut self) {
        // Stop after the first error: later entries could be misattributed.
        self.collect_undecodable();
        self.failed = true;
        self.work.clear();
        self.keyed = None;
        self.in_key_group = false;
        self.buffer = Vec::new().into_iter();
    }
}

impl Iterator for SnapshotEntries<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(e) = self.buffer.next() {
                return Some(Ok(e));
            }
            if self.in_key_group {
                match self.keyed.as_mut().and_then(|(s, _)| s.next_entry()) {
                    Some(Ok(e)) => return Some(Ok(e)),
                    Some(Err(e)) => {
                        self.fail();
                        return Some(Err(e));
                    }
                    None => self.in_key_group = false,
                }
            }
            if self.failed {
                return None;
            }
            match self.step() {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(e) => {
                    self.fail();
                    return Some(Err(e));
                }
            }
        }
    }
}

impl std::iter::FusedIterator for SnapshotEntries<'_> {}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{RawEntry, RawParts, ValueParts};
    use crate::readers::serializers::{key_group_for_hash, key_hash_code};

    fn open(case: &str) -> Snapshot {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/flink-2.3.0").join(case);
        let meta = walkdir(&dir).unwrap_or_else(|| panic!("no _metadata under {}", dir.display()));
        Snapshot::open(Arc::new(crate::storage::LocalStorage), meta.to_str().unwrap()).unwrap()
    }

    fn walkdir(dir: &std::path::Path) -> Option<std::path::PathBuf> {
        let mut dirs: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).collect();
        dirs.sort();
        dirs.iter().find(|p| p.file_name().is_some_and(|n| n == "_metadata")).cloned().or_else(|| dirs.iter().filter(|p| p.is_dir()).find_map(|p| walkdir(p)))
    }

    fn read(s: &Snapshot, raw: RawParts) -> Vec<Entry> {
        SnapshotEntries::new(s, Selection { raw, ..Selection::default() }).map(Result::unwrap).collect()
    }

    /// The entry without its stored bytes: what must not depend on `Selection::raw`.
    fn decoded(e: &Entry) -> Entry {
        Entry { raw: RawEntry::default(), ..e.clone() }
    }

    /// Entries read keeping no stored bytes, or the key's only (always, or where the key hash
    /// needs them: SQL row keys), have exactly the decoded values of a full read and no other
    /// bytes; the default read (what `convert` and `edit` use) keeps
    /// every keyed entry's bytes. Every reader: canonical stream (kv layout), heap checkpoint,
    /// RocksDB native, changelog replay (reads its materialized state whole), SQL row keys.
    #[test]
    fn raw_parts_keep_only_the_stored_bytes_asked_for() {
        for case in ["heap-savepoint-canonical", "heap-checkpoint", "rocksdb-savepoint-native", "heap-changelog-checkpoint", "sql-heap-savepoint-canonical", "sql-rocksdb-checkpoint-incremental"] {
            let s = open(case);
            let all = read(&s, RawParts::default());
            let keyed = all.iter().filter(|e| e.kind.is_keyed()).count();
            assert!(keyed > 10, "{case}: {keyed} keyed entries");
            for e in all.iter().filter(|e| e.kind.is_keyed()) {
                assert!(!e.raw.key.is_empty() || e.raw.stored_key.is_some(), "{case}: {e:?}");
                assert!(!e.raw.namespace.is_empty() || e.raw.stored_key.is_some(), "{case}: {e:?}");
            }
            assert!(all.iter().any(|e| e.kind.is_keyed() && !e.raw.value.is_empty()), "{case}");
            // SQL row keys hash over their stored bytes: `KeyForHash` keeps them there only.
            let sql = case.starts_with("sql-");
            for parts in [RawParts::None, RawParts::KeyForHash, RawParts::Key] {
                let got = read(&s, parts);
                assert_eq!(got.len(), all.len(), "{case} {parts:?}");
                for (g, a) in got.iter().zip(&all) {
                    // By their debug form: a NaN value is not equal to itself.
                    assert_eq!(format!("{:?}", decoded(g)), format!("{:?}", decoded(a)), "{case} {parts:?}");
                    let key = || RawEntry { key: a.raw.key.clone(), stored_key: a.raw.stored_key.clone(), ..RawEntry::default() };
                    let want = match (a.kind.is_keyed(), parts) {
                        (false, _) => a.raw.clone(),
                        (true, RawParts::Key) => key(),
                        (true, RawParts::KeyForHash) if sql => key(),
                        (true, _) => RawEntry::default(),
                    };
                    assert_eq!(g.raw, want, "{case} {parts:?}: {g:?}");
                }
            }
        }
    }

    /// Every `_metadata` under `testdata/` (every Flink version, backend, SQL, changelog).
    pub(crate) fn every_fixture() -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            let Ok(rd) = std::fs::read_dir(dir) else { return };
            let mut paths: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                if p.is_dir() {
                    walk(&p, out);
                } else if p.file_name().is_some_and(|n| n == "_metadata") {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata"), &mut out);
        out
    }

    /// Every fixture read building only keys ([`ValueParts::Key`], what `verify`, `convert`
    /// and `stats` read with) gives the entries of a full read but for the placeholders: the
    /// same number, keys, key groups, stored bytes, TTL timestamps, origins, opaque counts and
    /// undecodable reports, the same error where the read fails. Entries with an opaque part are
    /// decoded in full. And the check does carry the read: on the key-grouped fixtures (heap,
    /// canonical savepoints, SQL) most entries come with placeholders.
    #[test]
    fn value_parts_key_gives_the_entries_of_a_full_read_but_the_placeholders() {
        let fixtures = every_fixture();
        assert!(fixtures.len() > 100, "{} fixtures", fixtures.len());
        let (mut total, mut placeheld, mut kept_opaque) = (0usize, 0usize, 0usize);
        for m in &fixtures {
            let Ok(s) = Snapshot::open(Arc::new(crate::storage::LocalStorage), m.to_str().unwrap()) else { continue };
            let read = |values: ValueParts| {
                let mut it = SnapshotEntries::new(&s, Selection { values, ..Selection::default() });
                let got: Vec<std::result::Result<Entry, String>> = it.by_ref().map(|e| e.map_err(|e| e.to_string())).collect();
                (got, format!("{:?}", it.undecodable()))
            };
            let (all, all_undecodable) = read(ValueParts::All);
            let (key, key_undecodable) = read(ValueParts::Key);
            assert_eq!(key.len(), all.len(), "{}", m.display());
            assert_eq!(key_undecodable, all_undecodable, "{}", m.display());
            let mut here = 0;
            for (k, a) in key.iter().zip(&all) {
                match (k, a) {
                    (Ok(k), Ok(a)) => {
                        total += 1;
                        assert_eq!(k.opaque_count(), a.opaque_count(), "{}: {k:?}", m.display());
                        // By their debug form: a NaN value is not equal to itself.
                        let (k_, a_, p_) = (format!("{k:?}"), format!("{a:?}"), format!("{:?}", a.checked_form()));
                        // Where the placeholders are what the decode gives (a timer in a
                        // void namespace), the two reads cannot be told apart.
                        if k_ == p_ {
                            here += 1;
                        } else {
                            assert_eq!(k_, a_, "{}", m.display());
                        }
                        if k_ != a_ {
                            assert_eq!(a.opaque_count(), 0, "{}: {a:?}", m.display());
                        } else if a.opaque_count() > 0 {
                            kept_opaque += 1;
                        }
                    }
                    (Err(k), Err(a)) => assert_eq!(k, a, "{}", m.display()),
                    _ => panic!("{}: {k:?} vs {a:?}", m.display()),
                }
            }
            placeheld += here;
            let name = m.to_str().unwrap();
            let plain = ["/heap-savepoint-canonical/", "/heap-checkpoint/", "/sql-heap-savepoint-canonical/", "/rocksdb-savepoint-native/", "/rocksdb-checkpoint-incremental/"];
            if plain.iter().any(|p| name.contains(p)) && !name.contains("custom") {
                let keyed = all.iter().flatten().filter(|e| e.kind.is_keyed() && e.opaque_count() == 0).count();
                assert!(here * 10 >= keyed * 9 && here > 0, "{name}: {here} of {keyed} entries checked");
            }
        }
        assert!(placeheld * 2 > total, "{placeheld} of {total} entries checked");
        assert!(kept_opaque > 0, "no fixture entry with an opaque part");
    }

    /// What `verify` reads with (the key's bytes only) still gives the key hash of SQL row
    /// keys, which is taken over those bytes, and it puts every key in the key group Flink
    /// stored it in.
    #[test]
    fn key_bytes_alone_give_the_key_hash_of_sql_row_keys() {
        for case in ["sql-heap-savepoint-canonical", "sql-rocksdb-checkpoint-incremental"] {
            let s = open(case);
            let selection = Selection { raw: RawParts::Key, ..Selection::default() };
            let mut checked = 0;
            for sub in SnapshotEntries::subtasks(&s, &selection) {
                let Some(mut source) = KeyedSource::open(&s, sub, &selection).unwrap() else { continue };
                let ser = source.key_serializer().clone();
                if ser.table().is_none() {
                    continue;
                }
                let max = s.metadata.operators[sub.operator].max_parallelism;
                for kg in source.key_groups().unwrap() {
                    for e in source.read_key_group(kg).unwrap() {
                        let e = e.unwrap();
                        let hash = key_hash_code(&ser, e.key.as_ref().unwrap(), &e.raw.key).unwrap_or_else(|| panic!("{case}: no hash for {e:?}"));
                        assert_eq!(key_group_for_hash(hash, max), kg, "{case}: {e:?}");
                        checked += 1;
                    }
                }
            }
            assert!(checked > 10, "{case}: {checked} row keys");
        }
    }
}
