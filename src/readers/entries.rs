//! Every entry of a snapshot, streamed: handle by handle, and for keyed state key group by key
//! group, entry by entry, so memory holds one key group's bytes (or one operator-state handle)
//! at a time.

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::metadata::handles::{DistributionMode, KeyedStateHandle};
use crate::model::{Entry, KeyGroupRange, OperatorId, StateKind};
use crate::readers::changelog::{ChangelogHandleReader, ChangelogKeyGroupEntries};
use crate::readers::keyed::{KeyGroupEntries, KeyedHandleReader};
use crate::readers::operator::read_operator_state;
use crate::readers::rocksdb::RocksDbHandleReader;
use crate::snapshot::Snapshot;

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these operators (all when empty).
    pub operators: Vec<OperatorId>,
    /// Only states with these names (all when empty).
    pub states: Vec<String>,
    /// Only keyed state in these key groups (operator state is not keyed and is left out).
    pub key_groups: Option<KeyGroupRange>,
}

impl Selection {
    pub(crate) fn operator(&self, id: &OperatorId) -> bool {
        self.operators.is_empty() || self.operators.contains(id)
    }

    pub(crate) fn state(&self, name: &str) -> bool {
        self.states.is_empty() || self.states.iter().any(|s| s == name)
    }
}

#[derive(Debug)]
enum Work {
    Operator { operator: usize, subtask: usize },
    Keyed { operator: usize, subtask: usize },
}

impl Work {
    fn subtask_ref(&self) -> SubtaskRef {
        match *self {
            Work::Operator { operator, subtask } | Work::Keyed { operator, subtask } => SubtaskRef { operator, subtask },
        }
    }
}

/// One subtask of one operator: its keyed and operator state handles. Subtasks are read
/// independently of each other ([`SnapshotEntries::for_subtask`]), e.g. on separate threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubtaskRef {
    /// Index of the operator in the metadata's operator list.
    pub operator: usize,
    /// Index into that operator's subtask list (file order, normally the subtask index).
    pub subtask: usize,
}

/// Streams the selected entries of a snapshot.
#[derive(Debug)]
pub struct SnapshotEntries<'a> {
    snapshot: &'a Snapshot,
    selection: Selection,
    work: VecDeque<Work>,
    keyed: Option<(KeyedHandleReader, VecDeque<u32>)>,
    /// The changelog handle being read, and its key groups still to read.
    changelog: Option<(ChangelogHandleReader, VecDeque<u32>)>,
    /// The key group being read.
    key_group: Option<KeyGroupIter>,
    /// The RocksDB handle being read; dropping it removes its working directory.
    rocksdb: Option<RocksDbHandleReader>,
    buffer: std::vec::IntoIter<Entry>,
    failed: bool,
    /// (operator, broadcast state) -> the subtask whose copy is read. Every subtask stores a
    /// full copy and Flink restores each subtask from one of them, so only the first copy (in
    /// subtask order, over the whole snapshot) is an entry of its own. Decided up front so a
    /// read of one subtask ([`SnapshotEntries::for_subtask`]) agrees with a read of all.
    broadcast_owner: std::collections::BTreeMap<(usize, String), usize>,
}

impl<'a> SnapshotEntries<'a> {
    /// Plans the read; nothing is read until iteration.
    pub fn new(snapshot: &'a Snapshot, selection: Selection) -> Self {
        let mut work = VecDeque::new();
        let mut broadcast_owner = std::collections::BTreeMap::new();
        for (i, op) in snapshot.metadata.operators.iter().enumerate() {
            if !selection.operator(&op.operator_id) {
                continue;
            }
            for (j, st) in op.subtasks.iter().enumerate() {
                let Some(s) = &st.state else { continue };
                if let Some(h) = s.managed_operator_state.as_ref().filter(|_| selection.key_groups.is_none()) {
                    work.push_back(Work::Operator { operator: i, subtask: j });
                    for m in h.states.iter().filter(|m| m.mode == DistributionMode::Broadcast) {
                        broadcast_owner.entry((i, m.name.clone())).or_insert(j);
                    }
                }
                if s.managed_keyed_state.is_some() {
                    work.push_back(Work::Keyed { operator: i, subtask: j });
                }
            }
        }
        SnapshotEntries {
            snapshot,
            selection,
            work,
            keyed: None,
            changelog: None,
            key_group: None,
            rocksdb: None,
            buffer: Vec::new().into_iter(),
            failed: false,
            broadcast_owner,
        }
    }

    /// The subtasks holding selected state, in snapshot order: the units
    /// [`SnapshotEntries::for_subtask`] reads.
    pub fn subtasks(snapshot: &Snapshot, selection: &Selection) -> Vec<SubtaskRef> {
        let mut out: Vec<SubtaskRef> = SnapshotEntries::new(snapshot, selection.clone()).work.iter().map(Work::subtask_ref).collect();
        out.dedup();
        out
    }

    /// Plans the read of one subtask's selected entries (keyed state, then operator state, as
    /// [`SnapshotEntries::new`] orders them). Reading every subtask this way gives exactly the
    /// entries of one [`SnapshotEntries::new`] read.
    pub fn for_subtask(snapshot: &'a Snapshot, selection: Selection, subtask: SubtaskRef) -> Self {
        let mut all = SnapshotEntries::new(snapshot, selection);
        all.work.retain(|w| w.subtask_ref() == subtask);
        all
    }

    fn step(&mut self) -> Result<bool> {
        if let Some((reader, kgs)) = &mut self.keyed {
            if let Some(kg) = kgs.pop_front() {
                self.key_group = Some(KeyGroupIter::Plain(reader.key_group_entries(kg)?));
                return Ok(true);
            }
            self.keyed = None;
        }
        if let Some((reader, kgs)) = &mut self.changelog {
            if let Some(kg) = kgs.pop_front() {
                self.key_group = Some(KeyGroupIter::Changelog(reader.key_group_entries(kg)?));
                return Ok(true);
            }
            self.changelog = None;
        }
        if let Some(reader) = &mut self.rocksdb {
            // The reader selects states and key groups itself.
            if let Some(entries) = reader.next_batch()? {
                self.buffer = entries.into_iter();
                return Ok(true);
            }
            self.rocksdb = None;
        }
        let Some(w) = self.work.pop_front() else { return Ok(false) };
        match w {
            Work::Operator { operator, subtask } => {
                let op = &self.snapshot.metadata.operators[operator];
                let s = op.subtasks[subtask].state.as_ref();
                let h = s.and_then(|s| s.managed_operator_state.as_ref());
                if let Some(h) = h {
                    let mut entries = read_operator_state(self.snapshot, op.operator_id, h)?;
                    entries.retain(|e| self.selection.state(&e.state));
                    let owner = &self.broadcast_owner;
                    entries.retain(|e| e.kind != StateKind::Broadcast || owner.get(&(operator, e.state.clone())) == Some(&subtask));
                    self.buffer = entries.into_iter();
                }
            }
            Work::Keyed { operator, subtask } => {
                let op = &self.snapshot.metadata.operators[operator];
                let st = &op.subtasks[subtask];
                match st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()) {
                    Some(KeyedStateHandle::KeyGroups(h)) => {
                        let reader = KeyedHandleReader::open(self.snapshot, op.operator_id, op.max_parallelism, h)?;
                        let kgs = reader
                            .key_groups()
                            .filter(|kg| self.selection.key_groups.is_none_or(|r| r.contains(*kg)))
                            .collect();
                        self.keyed = Some((reader, kgs));
                    }
                    Some(KeyedStateHandle::IncrementalRemote(h)) => {
                        let states = &self.selection.states;
                        let reader = RocksDbHandleReader::open(self.snapshot, op.operator_id, op.max_parallelism, h, states, self.selection.key_groups)?;
                        self.rocksdb = Some(reader);
                    }
                    Some(KeyedStateHandle::Changelog(h)) => {
                        let reader = ChangelogHandleReader::open(self.snapshot, op.operator_id, op.max_parallelism, h)?;
                        let kgs = reader
                            .key_groups()
                            .filter(|kg| self.selection.key_groups.is_none_or(|r| r.contains(*kg)))
                            .collect();
                        self.changelog = Some((reader, kgs));
                    }
                    Some(other) => {
                        return Err(Error::Invalid(format!(
                            "{}: operator {} subtask {}: a {} is not a subtask's keyed state",
                            self.snapshot.metadata_location,
                            op.operator_id,
                            st.index,
                            other.class_name()
                        )))
                    }
                    None => {}
                }
            }
        }
        Ok(true)
    }
}

impl Iterator for SnapshotEntries<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(e) = self.buffer.next() {
                return Some(Ok(e));
            }
            if let Some(kg) = &mut self.key_group {
                match kg.next() {
                    Some(Ok(e)) if self.selection.state(&e.state) => return Some(Ok(e)),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        self.failed = true;
                        self.work.clear();
                        self.keyed = None;
                        self.changelog = None;
                        self.key_group = None;
                        return Some(Err(e));
                    }
                    None => {
                        self.key_group = None;
                        continue;
                    }
                }
            }
            if self.failed {
                return None;
            }
            match self.step() {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(e) => {
                    // Stop after the first error: later entries could be misattributed.
                    self.failed = true;
                    self.work.clear();
                    self.keyed = None;
                    self.changelog = None;
                    self.key_group = None;
                    self.rocksdb = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl std::iter::FusedIterator for SnapshotEntries<'_> {}

/// The entries of one key group: of a key-groups handle, or of a changelog handle (materialized
/// entries with the logged changes applied).
#[derive(Debug)]
enum KeyGroupIter {
    Plain(KeyGroupEntries),
    Changelog(ChangelogKeyGroupEntries),
}

impl Iterator for KeyGroupIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        match self {
            KeyGroupIter::Plain(e) => e.next(),
            KeyGroupIter::Changelog(e) => e.next(),
        }
    }
}
