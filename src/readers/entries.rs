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
                    entries.retain(|e| e.kind != StateKind::Broadcast || owner.get(&(sub.operator, e.state.clone())) == Some(&sub.subtask));
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
