//! Every entry of a snapshot, streamed: handle by handle, and for keyed state key group by key
//! group, so memory holds one key group (or one operator-state handle) at a time.

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::metadata::handles::{DistributionMode, KeyedStateHandle};
use crate::model::{Entry, KeyGroupRange, OperatorId, StateKind};
use crate::readers::keyed::KeyedHandleReader;
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
    fn operator(&self, id: &OperatorId) -> bool {
        self.operators.is_empty() || self.operators.contains(id)
    }

    fn state(&self, name: &str) -> bool {
        self.states.is_empty() || self.states.iter().any(|s| s == name)
    }
}

#[derive(Debug)]
enum Work {
    Operator { operator: usize, subtask: usize },
    Keyed { operator: usize, subtask: usize },
}

/// Streams the selected entries of a snapshot.
#[derive(Debug)]
pub struct SnapshotEntries<'a> {
    snapshot: &'a Snapshot,
    selection: Selection,
    work: VecDeque<Work>,
    keyed: Option<(KeyedHandleReader, VecDeque<u32>)>,
    /// The RocksDB handle being read; dropping it removes its working directory.
    rocksdb: Option<RocksDbHandleReader>,
    buffer: std::vec::IntoIter<Entry>,
    failed: bool,
    /// Broadcast states already read: every subtask stores a full copy, and Flink restores
    /// each subtask from one of them, so only the first copy is an entry of its own.
    broadcast_seen: std::collections::BTreeSet<(usize, String)>,
}

impl<'a> SnapshotEntries<'a> {
    /// Plans the read; nothing is read until iteration.
    pub fn new(snapshot: &'a Snapshot, selection: Selection) -> Self {
        let mut work = VecDeque::new();
        for (i, op) in snapshot.metadata.operators.iter().enumerate() {
            if !selection.operator(&op.operator_id) {
                continue;
            }
            for (j, st) in op.subtasks.iter().enumerate() {
                let Some(s) = &st.state else { continue };
                if s.managed_operator_state.is_some() && selection.key_groups.is_none() {
                    work.push_back(Work::Operator { operator: i, subtask: j });
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
            rocksdb: None,
            buffer: Vec::new().into_iter(),
            failed: false,
            broadcast_seen: Default::default(),
        }
    }

    fn step(&mut self) -> Result<bool> {
        if let Some((reader, kgs)) = &mut self.keyed {
            if let Some(kg) = kgs.pop_front() {
                let mut entries = reader.read_key_group(kg)?;
                entries.retain(|e| self.selection.state(&e.state));
                self.buffer = entries.into_iter();
                return Ok(true);
            }
            self.keyed = None;
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
                    let first_copy: std::collections::BTreeSet<String> = h
                        .states
                        .iter()
                        .filter(|m| m.mode == DistributionMode::Broadcast)
                        .filter(|m| self.broadcast_seen.insert((operator, m.name.clone())))
                        .map(|m| m.name.clone())
                        .collect();
                    entries.retain(|e| e.kind != StateKind::Broadcast || first_copy.contains(&e.state));
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
                    Some(other) => {
                        return Err(Error::Invalid(format!(
                            "{}: operator {} subtask {}: {} state is not readable yet (changelog state backend)",
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
                    self.rocksdb = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl std::iter::FusedIterator for SnapshotEntries<'_> {}
