//! Invariants 3 and 4 of `verify`: each keyed operator's key-group ranges cover its key groups
//! exactly once; every subtask's keyed state — whatever the handle kind, through one
//! [`KeyedSource`] — opens, every key group and entry decodes, and every key whose Java hash is
//! computable lies in the key group that holds it.

use std::collections::BTreeMap;

use crate::consts::UPPER_BOUND_MAX_PARALLELISM;
use crate::metadata::handles::KeyedStateHandle;
use crate::metadata::OperatorState;
use crate::model::{KeyGroupRange, RawParts, SubtaskRef, ValueParts};
use crate::error::Error;
use crate::readers::serializers::{key_group_for_hash, key_hash_code, TypeSerializer};
use crate::readers::source::{KeyedSource, Selection};
use crate::readers::undecodable::Undecodable;
use crate::snapshot::Snapshot;

use super::{FindingKind, Finding, Severity, Verifier};

/// The first entry of a key group whose key hashes to another key group.
struct Misplaced {
    state: String,
    key: String,
    belongs_in: u32,
    file: Option<String>,
    position: Option<crate::error::Position>,
}

/// What reading one key group found.
struct KeyGroupResult {
    kg: u32,
    entries: u64,
    opaque: u64,
    /// Entries whose key hashes to another key group, and the first of them.
    wrong: u64,
    example: Option<Misplaced>,
    /// The error that ended the key group.
    failed: Option<Error>,
    /// What the source could not decode in it.
    undecodable: Vec<Undecodable>,
}

/// RocksDB and ForSt handles of subtask `sub`: every block of every live table, also those no
/// entry read lies in (other column families, key groups outside the handle), must pass its
/// checksum and decode. The first failure of each handle.
fn check_blocks(s: &Snapshot, op: &OperatorState, sub: SubtaskRef) -> Vec<Error> {
    let handle = op.subtasks.get(sub.subtask).and_then(|st| st.state.as_ref()).and_then(|x| x.managed_keyed_state.as_ref());
    let incs: Vec<&crate::metadata::handles::IncrementalRemoteKeyedStateHandle> = match handle {
        Some(KeyedStateHandle::IncrementalRemote(i)) => vec![i],
        Some(KeyedStateHandle::Changelog(c)) => c
            .materialized
            .iter()
            .filter_map(|m| match m {
                KeyedStateHandle::IncrementalRemote(i) => Some(i),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    incs.into_iter()
        .filter_map(|inc| crate::readers::rocksdb::RocksDbHandleReader::open(s, op.operator_id, op.max_parallelism, inc, &[], None).and_then(|r| r.verify_blocks()).err())
        .collect()
}

/// Reads key group `kg` of `source` to its end (or first error), checking each key's hash.
fn check_key_group(s: &Snapshot, op: &OperatorState, key_serializer: &TypeSerializer, source: &mut KeyedSource<'_>, kg: u32) -> KeyGroupResult {
    let mut r = KeyGroupResult { kg, entries: 0, opaque: 0, wrong: 0, example: None, failed: None, undecodable: Vec::new() };
    let it = match source.read_key_group(kg) {
        Err(e) => {
            r.failed = Some(e);
            return r;
        }
        Ok(it) => it,
    };
    let mut it = it;
    loop {
        // Looked at where the source returned it, not moved out of its `Option` and `Result`:
        // a move is a copy of the entry.
        let item = it.next();
        let e = match &item {
            None => break,
            Some(Ok(e)) => e,
            Some(Err(_)) => {
                r.failed = item.and_then(Result::err);
                break;
            }
        };
        r.entries += 1;
        r.opaque += e.opaque_count() as u64;
        let Some(key) = &e.key else { continue };
        let Some(hash) = key_hash_code(key_serializer, key, &e.raw.key) else { continue };
        let want = key_group_for_hash(hash, op.max_parallelism);
        if want != kg {
            r.wrong += 1;
            r.example.get_or_insert_with(|| Misplaced {
                state: e.state.to_string(),
                key: key.to_json().to_string(),
                belongs_in: want,
                file: s.entry_file(e),
                position: e.origin.position,
            });
        }
    }
    r
}

impl Verifier<'_> {
    /// Invariant 3.
    pub(super) fn coverage(&self, s: &Snapshot, op: &OperatorState, keyed: &[(u32, &KeyedStateHandle)], without_keyed: &[u32]) -> Vec<Finding> {
        let max = op.max_parallelism;
        let mut out = Vec::new();
        if max == 0 || max > UPPER_BOUND_MAX_PARALLELISM {
            let mut f = self.finding(s, Some(op), None, Severity::Error, FindingKind::KeyGroupOutOfRange);
            f.file = Some(s.metadata_location.to_string());
            f.message = format!("max parallelism {max} is outside Flink's 1..={UPPER_BOUND_MAX_PARALLELISM}");
            return vec![f];
        }
        let mut owner: Vec<Option<u32>> = vec![None; max as usize];
        let mut overlaps: BTreeMap<(u32, u32), (u32, u32)> = BTreeMap::new();
        for &(subtask, h) in keyed {
            let r = h.key_group_range();
            let end = r.start as u64 + r.len as u64;
            if end > max as u64 {
                let mut f = self.finding(s, Some(op), Some(subtask), Severity::Error, FindingKind::KeyGroupOutOfRange);
                f.file = Some(s.metadata_location.to_string());
                f.message = format!("subtask {subtask} holds key groups {r}, beyond max parallelism {max}");
                out.push(f);
            }
            for kg in r.start..(end.min(max as u64) as u32) {
                match owner[kg as usize] {
                    Some(other) => {
                        let e = overlaps.entry((other, subtask)).or_insert((kg, kg));
                        e.1 = kg;
                    }
                    None => owner[kg as usize] = Some(subtask),
                }
            }
        }
        for ((a, b), (first, last)) in overlaps {
            let mut f = self.finding(s, Some(op), Some(b), Severity::Error, FindingKind::KeyGroupOverlap);
            f.file = Some(s.metadata_location.to_string());
            f.message = format!("subtasks {a} and {b} both hold key groups {first}..={last}");
            out.push(f);
        }
        let mut kg = 0u32;
        while kg < max {
            if owner[kg as usize].is_some() {
                kg += 1;
                continue;
            }
            let start = kg;
            while kg < max && owner[kg as usize].is_none() {
                kg += 1;
            }
            let expected = (0..op.parallelism.max(1)).find(|&i| KeyGroupRange::for_subtask(max, op.parallelism.max(1), i).contains(start));
            // A subtask whose backend had no state registered writes no keyed handle at all
            // (and a finished one writes nothing): its key groups are empty, not lost.
            let explained = expected.is_some_and(|i| without_keyed.contains(&i) || !op.subtasks.iter().any(|st| st.index == i));
            let mut f = self.finding(
                s,
                Some(op),
                expected,
                if explained { Severity::Warning } else { Severity::Error },
                FindingKind::KeyGroupGap,
            );
            f.file = Some(s.metadata_location.to_string());
            f.message = match (expected, explained) {
                (Some(i), true) => format!("key groups {start}..={} are in no keyed state handle: subtask {i} stored no keyed state (no state registered, or finished)", kg - 1),
                (Some(i), false) => format!("key groups {start}..={} are in no keyed state handle (Flink assigns them to subtask {i})", kg - 1),
                (None, _) => format!("key groups {start}..={} are in no keyed state handle", kg - 1),
            };
            out.push(f);
        }
        out
    }

    /// Invariant 4 for one subtask's managed keyed state: the proxy, every key group, every
    /// entry, key hashing. A key group that fails to decode is reported and the next one read.
    pub(super) fn keyed(&mut self, s: &Snapshot, op: &OperatorState, sub: SubtaskRef, subtask: u32) -> Vec<Finding> {
        // The key hash of SQL row keys is taken over the key's stored bytes (`key_hash_code`);
        // nothing else is read from them, and other keys need none. Of the decoded parts only the key is read (and
        // `opaque_count`, which the mode leaves as it is): the rest is checked, not built.
        let keys_only = Selection { raw: RawParts::KeyForHash, values: ValueParts::Key, ..Selection::default() };
        let mut source = match KeyedSource::open(s, sub, &keys_only) {
            Ok(Some(source)) => source,
            Ok(None) => return Vec::new(),
            Err(e) => return vec![self.error_finding(s, op, Some(subtask), &e)],
        };
        let key_groups = match source.key_groups() {
            Ok(kgs) => kgs,
            Err(e) => return vec![self.error_finding(s, op, Some(subtask), &e)],
        };
        let key_serializer = source.key_serializer().clone();
        let mut out = Vec::new();
        // The proxy's own records (states whose registration could not be read, states whose
        // serializer snapshots had to be read past: their contents go unchecked).
        let file = op.subtasks.get(sub.subtask).and_then(|st| st.state.as_ref()).and_then(|x| x.managed_keyed_state.as_ref()).and_then(|h| {
            h.streams().first().map(|(_, x)| super::stream_file(s, x, s.resolve(x).ok().flatten().as_ref()))
        });
        let untyped = Undecodable::untyped(op.operator_id, Some(source.key_serializer()), &source.meta().states, file);
        self.add_undecodable(s, op, subtask, sub, untyped, &mut out);
        self.take_undecodable(s, op, subtask, &mut source, &mut out);
        // Runs of key groups are read on the verifier's threads, each through a source of its
        // own, and their results taken here in key-group order: the report does not depend on
        // the number of threads.
        let threads = self.threads;
        let handle_bytes: u64 = op
            .subtasks
            .get(sub.subtask)
            .and_then(|st| st.state.as_ref())
            .and_then(|x| x.managed_keyed_state.as_ref())
            .map_or(0, |h| h.streams().iter().map(|(_, x)| x.size()).sum());
        let runs = crate::readers::parallel::split_key_groups(&key_groups, handle_bytes, threads);
        // The first run reads through the source opened above; the others open their own.
        let opened = std::sync::Mutex::new(Some(source));
        // Results are small (counts, a few findings): the window of runs bounds them.
        let mut read = || crate::readers::parallel::ordered(
            &runs,
            threads,
            usize::MAX,
            |_| 0,
            |run, emit| {
                let (Some(&first), Some(&last)) = (run.first(), run.last()) else { return Ok(()) };
                let taken = if std::ptr::eq(run.as_ptr(), runs[0].as_ptr()) { opened.lock().ok().and_then(|mut o| o.take()) } else { None };
                let mut source = match taken {
                    Some(source) => source,
                    None => {
                        let selection = Selection { key_groups: Some(KeyGroupRange::new(first, last - first + 1)), ..keys_only.clone() };
                        let mut own = KeyedSource::open(s, sub, &selection)?
                            .ok_or_else(|| Error::Invalid(format!("operator {}: no keyed state on reopening", op.operator_id)))?;
                        // The proxy's records, taken from the first source already.
                        own.take_undecodable();
                        own
                    }
                };
                let source = &mut source;
                for &kg in *run {
                    let mut r = check_key_group(s, op, &key_serializer, source, kg);
                    r.undecodable = source.take_undecodable();
                    emit(r)?;
                }
                Ok(())
            },
            |r| {
                self.key_group_result(s, op, subtask, sub, r, &mut out);
                Ok(())
            },
        );
        // The block check of RocksDB and ForSt handles reads other bytes than the entry scan and
        // takes a while: it runs beside the scan, not after it on one thread (its findings still
        // come after the scan's).
        let (read, blocks) = if threads > 1 {
            std::thread::scope(|scope| {
                let blocks = scope.spawn(|| check_blocks(s, op, sub));
                let read = read();
                (read, blocks.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            })
        } else {
            (read(), check_blocks(s, op, sub))
        };
        if let Err(e) = read {
            out.push(self.error_finding(s, op, Some(subtask), &e));
        }
        for e in blocks {
            out.push(self.error_finding(s, op, Some(subtask), &e));
        }
        out
    }

    /// Adds what reading key group `r.kg` found to the report, as the key groups come.
    fn key_group_result(&mut self, s: &Snapshot, op: &OperatorState, subtask: u32, sub: SubtaskRef, r: KeyGroupResult, out: &mut Vec<Finding>) {
        let kg = r.kg;
        self.totals.entries += r.entries;
        self.totals.opaque_values += r.opaque;
        self.add_undecodable(s, op, subtask, sub, r.undecodable, out);
        if let Some(e) = r.failed {
            let mut f = self.error_finding(s, op, Some(subtask), &e);
            if !f.message.contains(&format!("key group {kg}")) {
                f.message = format!("key group {kg}: {}", f.message);
            }
            out.push(f);
            return;
        }
        self.totals.key_groups += 1;
        if let Some(m) = r.example {
            let mut f = self.finding(s, Some(op), Some(subtask), Severity::Error, FindingKind::WrongKeyGroup);
            let at = m.position.map(|p| format!(" (the first at {p})")).unwrap_or_default();
            f.message = format!(
                "{}key group {kg} holds {} entries whose key hashes to another key group{at}, e.g. state {:?} key {} belongs in key group {}: a corrupted key",
                m.file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default(),
                r.wrong,
                m.state,
                m.key,
                m.belongs_in
            );
            f.file = m.file;
            f.set_position(m.position);
            out.push(f);
        }
    }

    /// What the source could not decode since the last call: kept for the report (merged per
    /// subtask and state) and a "not checked" finding for the first record of each.
    fn take_undecodable(&mut self, s: &Snapshot, op: &OperatorState, subtask: u32, source: &mut KeyedSource<'_>, out: &mut Vec<Finding>) {
        let taken = source.take_undecodable();
        self.add_undecodable(s, op, subtask, source.subtask(), taken, out);
    }

    /// Keeps `list` for the report (merged per subtask and state), with a "not checked" finding
    /// for the first record of each.
    pub(super) fn add_undecodable(&mut self, s: &Snapshot, op: &OperatorState, subtask: u32, sub: SubtaskRef, list: Vec<Undecodable>, out: &mut Vec<Finding>) {
        for mut u in list {
            u.subtask = Some(subtask);
            u.subtask_ref = Some(sub);
            let known = self.undecodable.iter().any(|x| x.operator_id == u.operator_id && x.subtask == u.subtask && x.state == u.state && x.state_index == u.state_index && x.kind == u.kind);
            if !known {
                let mut f = self.finding(s, Some(op), Some(subtask), Severity::Info, FindingKind::Unsupported);
                f.message = format!(
                    "not checked (unsupported serializer{}): state {}: {}",
                    u.class.as_ref().map(|c| format!(" {c}")).unwrap_or_default(),
                    u.state_label(),
                    u.reason
                );
                f.file = u.file.clone();
                f.set_position(u.position);
                out.push(f);
            }
            Undecodable::merge_into(&mut self.undecodable, u);
        }
    }
}
