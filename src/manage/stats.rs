//! `stats`: where a snapshot's bytes and entries are: per operator, state, subtask and key group;
//! skew; the heaviest key groups and keys.
//!
//! Two kinds of bytes:
//! - *stored* bytes, from `_metadata`: what each subtask's handles take in files and inline
//!   (per subtask), and per key group what the keyed source records for it (key-grouped
//!   handles — heap checkpoints, canonical savepoints — record where each key group starts);
//! - *entry* bytes, from the entries: the serialized key, namespace, user key and value of each
//!   entry as Flink's canonical layout writes them, uncompressed. This is the logical size and
//!   the same for every backend.
//!
//! Skew is max / median over the key groups that hold data (empty key groups are counted apart)
//! and over the subtasks that hold state.
//!
//! Memory: entries stream operator by operator; per operator one counter per key group and
//! state, and the keys of one key group at a time, for the heaviest-keys ranking (entries of
//! one key in one state are contiguous within its key group in every backend's order).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::error::Result;
use crate::metadata::OperatorState;
use crate::model::{Entry, OperatorId, StateKind, SubtaskRef, ValueParts};
use crate::readers::entries::Selection;
use crate::readers::parallel::{self, Piece};
use crate::readers::states::subtask_states;
use crate::readers::undecodable::Undecodable;
use crate::readers::source::KeyedSource;
use crate::snapshot::Snapshot;
use crate::storage::Storage;

/// Bytes of one subtask.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubtaskStats {
    /// Subtask index.
    pub subtask: u32,
    /// Stored bytes of its handles (files and inline).
    pub bytes: u64,
}

/// One state of an operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateStats {
    /// State name.
    pub name: String,
    /// Kind.
    pub kind: StateKind,
    /// Entries.
    pub entries: u64,
    /// Entry bytes.
    pub bytes: u64,
    /// Key groups holding entries of it (keyed state).
    pub key_groups: u64,
    /// The serializer snapshot class flinksnap does not know, when one of the state's serializers
    /// holds one: its entries are counted, their values (or keys) untyped (`{"class", "hex"}`).
    pub untyped: Option<String>,
}

/// One key group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyGroupStat {
    /// Key group.
    pub key_group: u32,
    /// Entries.
    pub entries: u64,
    /// Entry bytes.
    pub bytes: u64,
    /// Stored bytes (key-grouped handles), from the key-group offsets.
    pub stored_bytes: Option<u64>,
}

/// Key groups of an operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyGroupStats {
    /// Key groups holding entries.
    pub with_data: u64,
    /// Key groups holding none.
    pub empty: u64,
    /// Max / median entry bytes over key groups holding entries.
    pub bytes_skew: Option<f64>,
    /// Max / median entries over key groups holding entries.
    pub entries_skew: Option<f64>,
    /// The heaviest key groups by entry bytes.
    pub heaviest: Vec<KeyGroupStat>,
}

/// A heavy key: all entries of one key in one state (over namespaces and map keys).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyStat {
    /// State name.
    pub state: String,
    /// The key (JSON as `dump` prints it).
    pub key: serde_json::Value,
    /// Its key group.
    pub key_group: Option<u32>,
    /// Entries (map entries, windows, timers…).
    pub entries: u64,
    /// Entry bytes.
    pub bytes: u64,
}

/// One operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorStats {
    /// Operator id.
    pub operator_id: OperatorId,
    /// Uid, where known.
    pub operator_uid: Option<String>,
    /// Name (2.x).
    pub name: Option<String>,
    /// Parallelism.
    pub parallelism: u32,
    /// Max parallelism.
    pub max_parallelism: u32,
    /// Stored bytes over all subtasks.
    pub bytes: u64,
    /// Per subtask holding state.
    pub subtasks: Vec<SubtaskStats>,
    /// Max / median stored bytes over subtasks holding state.
    pub subtask_skew: Option<f64>,
    /// Whether every entry was read (false: some state flinksnap cannot read yet).
    pub entries_complete: bool,
    /// Entries read.
    pub entries: u64,
    /// Their bytes.
    pub entry_bytes: u64,
    /// Per state, by name.
    pub states: Vec<StateStats>,
    /// Key groups (keyed operators).
    pub key_groups: Option<KeyGroupStats>,
    /// The heaviest keys.
    pub heaviest_keys: Vec<KeyStat>,
    /// Why entries are incomplete, if they are.
    pub note: Option<String>,
    /// States (or parts of them) not decoded: serializers flinksnap cannot interpret whose
    /// entries could not be delimited or registered (the rest of the operator was read).
    pub undecodable: Vec<Undecodable>,
}

/// The result of `stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsReport {
    /// The snapshot directory.
    pub path: String,
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// Stored bytes of all operators.
    pub bytes: u64,
    /// Entries read.
    pub entries: u64,
    /// Operators holding state, heaviest first.
    pub operators: Vec<OperatorStats>,
}

/// Max / median of the non-zero values; `None` without any.
pub fn skew(values: impl IntoIterator<Item = u64>) -> Option<f64> {
    let mut v: Vec<u64> = values.into_iter().filter(|&x| x > 0).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] as f64 } else { (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0 };
    let max = *v.last().unwrap_or(&0) as f64;
    // Two decimals are all a reader needs, and they keep JSON output stable.
    Some(((max / median) * 100.0).round() / 100.0)
}

fn entry_bytes(e: &Entry) -> u64 {
    (e.raw.key.len() + e.raw.namespace.len() + e.raw.user_key.as_ref().map_or(0, Vec::len) + e.raw.value.len() + e.raw.stored_key.as_ref().map_or(0, Vec::len)) as u64
}

/// Keeps the `n` heaviest keys, fed one key group at a time.
#[derive(Default)]
struct TopKeys {
    n: usize,
    best: Vec<KeyStat>,
    current: BTreeMap<(String, Vec<u8>), KeyStat>,
    current_kg: Option<u32>,
}

impl TopKeys {
    fn add(&mut self, e: &Entry) {
        if e.key_group != self.current_kg {
            self.flush();
            self.current_kg = e.key_group;
        }
        let bytes = entry_bytes(e);
        let k = self.current.entry((e.state.to_string(), e.raw.stored_key.clone().unwrap_or_else(|| e.raw.key.clone()))).or_insert_with(|| KeyStat {
            state: e.state.to_string(),
            key: e.key.as_ref().map_or(serde_json::Value::Null, |k| k.to_json()),
            key_group: e.key_group,
            entries: 0,
            bytes: 0,
        });
        k.entries += 1;
        k.bytes += bytes;
    }

    fn flush(&mut self) {
        self.best.extend(std::mem::take(&mut self.current).into_values());
        if self.best.len() > 4 * self.n.max(1) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.best.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.entries.cmp(&a.entries)).then_with(|| a.key.to_string().cmp(&b.key.to_string())));
        self.best.truncate(self.n);
    }

    fn finish(mut self) -> Vec<KeyStat> {
        self.flush();
        self.trim();
        self.best
    }
}

/// What the entries of one piece of an operator's state (or all of it) add up to.
#[derive(Default)]
struct PieceCounts {
    states: BTreeMap<String, StateStats>,
    /// (state, key group) pairs with entries.
    state_kgs: std::collections::BTreeSet<(String, u32)>,
    /// Per key group: entries, entry bytes.
    kgs: BTreeMap<u32, (u64, u64)>,
    top_keys: TopKeys,
    entries: u64,
    entry_bytes: u64,
    /// Why the entries after this piece's last were not read.
    note: Option<String>,
    undecodable: Vec<Undecodable>,
}

/// Counts of pieces the reading threads hold ahead of the one being added up, at most (about).
const READ_AHEAD_BYTES: usize = 32 * 1024 * 1024;

impl PieceCounts {
    fn add(&mut self, e: &Entry) {
        let b = entry_bytes(e);
        self.entries += 1;
        self.entry_bytes += b;
        let st = self.states.entry(e.state.to_string()).or_insert_with(|| StateStats { name: e.state.to_string(), kind: e.kind, entries: 0, bytes: 0, key_groups: 0, untyped: None });
        st.entries += 1;
        st.bytes += b;
        if let Some(kg) = e.key_group {
            if self.state_kgs.insert((e.state.to_string(), kg)) {
                st.key_groups += 1;
            }
            let k = self.kgs.entry(kg).or_default();
            k.0 += 1;
            k.1 += b;
            self.top_keys.add(e);
        }
    }

    /// Adds the counts of the next piece.
    fn merge(&mut self, o: PieceCounts, undecodable: &mut Vec<Undecodable>) {
        self.entries += o.entries;
        self.entry_bytes += o.entry_bytes;
        for (name, st) in o.states {
            let t = self.states.entry(name).or_insert_with(|| StateStats { entries: 0, bytes: 0, key_groups: 0, ..st.clone() });
            t.entries += st.entries;
            t.bytes += st.bytes;
        }
        // A (state, key group) pair is in one piece only, unless a subtask is read in two
        // pieces (its operator state apart): counted once.
        for sk in o.state_kgs {
            if !self.state_kgs.contains(&sk) {
                if let Some(t) = self.states.get_mut(&sk.0) {
                    t.key_groups += 1;
                }
                self.state_kgs.insert(sk);
            }
        }
        for (kg, (n, b)) in o.kgs {
            let k = self.kgs.entry(kg).or_default();
            k.0 += n;
            k.1 += b;
        }
        self.top_keys.best.extend(o.top_keys.best);
        if self.top_keys.best.len() > 4 * self.top_keys.n.max(1) {
            self.top_keys.trim();
        }
        self.note = o.note;
        for u in o.undecodable {
            Undecodable::merge_into(undecodable, u);
        }
    }

    fn weight(&self) -> usize {
        64 * (self.state_kgs.len() + self.kgs.len() + self.states.len()) + 256 * (self.top_keys.best.len() + self.undecodable.len())
    }
}

/// Computes the statistics of the snapshot at `path`; `top` bounds the heaviest lists. The
/// entries are read on `threads` threads; the report is the same for any number.
pub fn stats(storage: Arc<dyn Storage>, path: &str, top: usize, uids: &[String], threads: usize) -> Result<StatsReport> {
    let s = Snapshot::open(storage, path)?;
    let mut operators = Vec::new();
    let streams = s.streams();
    for (i, op) in s.metadata.operators.iter().enumerate() {
        let mut per_subtask: BTreeMap<u32, u64> = BTreeMap::new();
        for r in streams.iter().filter(|r| r.operator == Some(i)) {
            if let Some(st) = r.subtask {
                *per_subtask.entry(st).or_default() += r.handle.size();
            }
        }
        let o = operator_stats(&s, i, op, per_subtask, top, uids, threads.max(1))?;
        if o.bytes > 0 || o.entries > 0 || !o.entries_complete {
            operators.push(o);
        }
    }
    operators.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.entry_bytes.cmp(&a.entry_bytes)).then(a.operator_id.cmp(&b.operator_id)));
    Ok(StatsReport {
        path: s.dir.to_string(),
        checkpoint_id: s.metadata.checkpoint_id,
        bytes: operators.iter().map(|o| o.bytes).sum(),
        entries: operators.iter().map(|o| o.entries).sum(),
        operators,
    })
}

fn operator_stats(s: &Snapshot, index: usize, op: &OperatorState, per_subtask: BTreeMap<u32, u64>, top: usize, uids: &[String], threads: usize) -> Result<OperatorStats> {
    let mut stored: BTreeMap<u32, u64> = BTreeMap::new();
    let mut keyed = false;
    let mut note = None;
    for (j, st) in op.subtasks.iter().enumerate() {
        if st.state.as_ref().is_some_and(|x| x.managed_keyed_state.is_some()) {
            keyed = true;
            // The proxy only: what each key group takes is in the handle's offsets.
            match KeyedSource::open(s, SubtaskRef { operator: index, subtask: j }, &Selection::default()) {
                Ok(source) => {
                    for (kg, bytes) in source.and_then(|s| s.stored_bytes()).unwrap_or_default() {
                        *stored.entry(kg).or_default() += bytes;
                    }
                }
                Err(e) if e.is_unsupported() => note = Some(format!("entries incomplete: {e}")),
                Err(e) => return Err(e),
            }
        }
    }
    // Each piece of the operator's state is counted on a reading thread; the counts are added
    // up here in piece order (key groups never span pieces), as one thread would count them.
    // Stored sizes and keys are counted: the other decoded parts are checked, not built.
    let selection = Selection { operators: vec![op.operator_id], values: ValueParts::Key, ..Default::default() };
    let pieces = parallel::pieces(s, &selection, threads);
    let produce = |piece: &Piece, emit: &mut dyn FnMut(PieceCounts) -> Result<()>| -> Result<()> {
        let mut c = PieceCounts { top_keys: TopKeys { n: top, best: Vec::new(), current: BTreeMap::new(), current_kg: None }, ..Default::default() };
        let mut all = piece.entries(s, &selection);
        for e in all.by_ref() {
            let e = match e {
                Ok(e) => e,
                Err(e) if e.is_unsupported() => {
                    c.note = Some(format!("entries incomplete: {e}"));
                    break;
                }
                Err(e) => return Err(e),
            };
            c.add(&e);
        }
        c.top_keys.flush();
        c.undecodable = all.undecodable().to_vec();
        emit(c)
    };
    let mut total = PieceCounts { top_keys: TopKeys { n: top, best: Vec::new(), current: BTreeMap::new(), current_kg: None }, ..Default::default() };
    let mut undecodable: Vec<Undecodable> = Vec::new();
    parallel::ordered(&pieces, threads, READ_AHEAD_BYTES, PieceCounts::weight, produce, |c| {
        // After a piece that could not be read to its end, nothing more is counted.
        if total.note.is_none() {
            total.merge(c, &mut undecodable);
        }
        Ok(())
    })?;
    if total.note.is_some() {
        note = total.note.take();
    }
    let PieceCounts { mut states, kgs, top_keys, entries, entry_bytes: entry_bytes_total, .. } = total;
    // States of a serializer snapshot flinksnap does not know (read past): named with the class.
    let selection = Selection { operators: vec![op.operator_id], ..Default::default() };
    for j in 0..op.subtasks.len() {
        for info in subtask_states(s, &selection, SubtaskRef { operator: index, subtask: j }).unwrap_or_default() {
            if let (Some((_, class)), Some(st)) = (info.unknown_serializers().into_iter().next(), states.get_mut(info.name())) {
                st.untyped.get_or_insert(class);
            }
        }
    }
    let key_groups = keyed.then(|| {
        let mut heaviest: Vec<KeyGroupStat> = kgs
            .iter()
            .map(|(&kg, &(entries, bytes))| KeyGroupStat { key_group: kg, entries, bytes, stored_bytes: stored.get(&kg).copied() })
            .collect();
        heaviest.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.key_group.cmp(&b.key_group)));
        heaviest.truncate(top);
        let with_data = kgs.len() as u64;
        KeyGroupStats {
            with_data,
            empty: u64::from(op.max_parallelism).saturating_sub(with_data),
            bytes_skew: skew(kgs.values().map(|v| v.1)),
            entries_skew: skew(kgs.values().map(|v| v.0)),
            heaviest,
        }
    });
    Ok(OperatorStats {
        operator_id: op.operator_id,
        operator_uid: super::operator_uid(s, &op.operator_id, uids),
        name: op.name.clone(),
        parallelism: op.parallelism,
        max_parallelism: op.max_parallelism,
        bytes: per_subtask.values().sum(),
        subtask_skew: skew(per_subtask.values().copied()),
        subtasks: per_subtask.into_iter().map(|(subtask, bytes)| SubtaskStats { subtask, bytes }).collect(),
        entries_complete: note.is_none() && undecodable.is_empty(),
        entries,
        entry_bytes: entry_bytes_total,
        states: states.into_values().collect(),
        key_groups,
        heaviest_keys: top_keys.finish(),
        note,
        undecodable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_max_over_median_of_non_empty() {
        assert_eq!(skew([]), None);
        assert_eq!(skew([0, 0]), None);
        assert_eq!(skew([10]), Some(1.0));
        assert_eq!(skew([1, 2, 9, 0]), Some(4.5));
        assert_eq!(skew([1, 2, 3, 12]), Some(4.8));
    }
}
