//! One way to open the keyed state of a subtask, whatever wrote it: [`KeyedSource`].
//!
//! A managed keyed-state handle is one of a few kinds, each with its own reader: key-grouped
//! streams (canonical savepoints, heap checkpoints, full checkpoints up to 1.15: [`keyed`]),
//! RocksDB native snapshots ([`rocksdb`]), the changelog backend (materialized state plus logged
//! changes: [`changelog`]). `open_reader` is the one place that maps a handle kind to its
//! reader; every reader implements [`KeyGroupReader`], so everything above — the snapshot-wide
//! stream ([`entries`]), the state listing ([`states`]), `verify`, `diff`, `stats`, `convert`,
//! `export` — reads all of them the same way: the serialization proxy first, then key group by
//! key group, entry by entry. A new reader (ForSt, another storage) is one more arm there.
//!
//! Opening is cheap: it reads the serialization proxy and nothing else; the expensive work (a
//! RocksDB working directory, the state-change log) happens on the first key-group request.
//!
//! [`keyed`]: crate::readers::keyed
//! [`rocksdb`]: crate::readers::rocksdb
//! [`changelog`]: crate::readers::changelog
//! [`entries`]: crate::readers::entries
//! [`states`]: crate::readers::states

use std::fmt;

use crate::error::{Error, Result};
use crate::metadata::handles::{KeyedStateHandle, StreamStateHandle};
use crate::model::{Entry, KeyGroupRange, OperatorId, RawParts, SubtaskRef, ValueParts};
use crate::readers::changelog::ChangelogReader;
use crate::readers::keyed::KeyGroupsReader;
use crate::readers::meta::KeyedBackendMeta;
use crate::readers::rocksdb::RocksDbSource;
use crate::readers::serializers::TypeSerializer;
use crate::readers::undecodable::Undecodable;
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
    /// Which stored bytes keyed entries keep ([`RawEntry`](crate::model::RawEntry)): all by default; readers that only
    /// look at decoded values ask for none and save their copies.
    pub raw: RawParts,
    /// Which decoded parts keyed entries carry ([`ValueParts`]): all by default; readers that
    /// only check or copy the stored bytes ask for the key only.
    pub values: ValueParts,
}

impl Selection {
    /// Whether operator `id` is selected.
    pub fn operator(&self, id: &OperatorId) -> bool {
        self.operators.is_empty() || self.operators.contains(id)
    }

    /// Whether the state named `name` is selected.
    pub fn state(&self, name: &str) -> bool {
        self.states.is_empty() || self.states.iter().any(|s| s == name)
    }

    /// Whether key group `kg` is selected.
    pub fn key_group(&self, kg: u32) -> bool {
        self.key_groups.is_none_or(|r| r.contains(kg))
    }
}

/// The reader of one keyed-state handle, key group by key group. Every keyed format implements
/// it; `open_reader` (the crate's one dispatch from handle kind to reader) picks the implementation.
pub trait KeyGroupReader: fmt::Debug + Send {
    /// The handle's serialization proxy: key serializer and states (for a changelog handle
    /// including the states registered after its materialization).
    fn meta(&self) -> &KeyedBackendMeta;

    /// The key groups that may hold entries, ascending; each may still turn out empty.
    fn key_groups(&mut self) -> Result<Vec<u32>>;

    /// Starts key group `kg`: the next [`KeyGroupReader::next_entry`] calls give its entries.
    /// Key groups may be started in any order, each at most once.
    fn start(&mut self, kg: u32) -> Result<()>;

    /// The next entry of the key group started last; `None` at its end. Stops after an error.
    fn next_entry(&mut self) -> Option<Result<Entry>>;

    /// Bytes the handle stores per key group (key group, bytes), where the format records where
    /// key groups start (key-grouped streams); `None` otherwise.
    fn stored_bytes(&self) -> Option<Vec<(u32, u64)>> {
        None
    }

    /// What the reader could not decode since the last call (entries of a serializer it cannot
    /// delimit, states whose registration could not be read), taken: reported once. Subtask and
    /// registration records are filled in by [`KeyedSource`].
    fn take_undecodable(&mut self) -> Vec<Undecodable> {
        Vec::new()
    }

    /// Whether every key group gives its states' entries in the order of the proxy's states
    /// (state by state, never back to an earlier one): true for RocksDB (a scan per state);
    /// not for key-grouped streams, whose key groups hold states in their writer's order (the
    /// heap backend's, canonical savepoints included, follows its state map: a 1.13 heap
    /// savepoint has state 4 before state 1), nor for a changelog's replay.
    fn states_in_proxy_order(&mut self) -> Result<bool> {
        Ok(false)
    }
}

/// What every reader is opened with.
#[derive(Debug)]
pub(crate) struct OpenContext<'a> {
    /// The snapshot.
    pub snapshot: &'a Snapshot,
    /// The operator.
    pub operator_id: OperatorId,
    /// Its max parallelism (key groups; the key-group prefix width).
    pub max_parallelism: u32,
    /// The subtask, for entry origins.
    pub subtask: SubtaskRef,
    /// The subtask's managed keyed handle (the outermost one: stream indices count in it).
    pub top: &'a KeyedStateHandle,
    /// The selected states (all when empty): readers that can skip the others do.
    pub states: Vec<String>,
    /// The selected key groups (all when `None`): readers that can skip the others do.
    pub key_groups: Option<KeyGroupRange>,
    /// The stored bytes to keep: readers that can skip copying the others do.
    pub raw: RawParts,
    /// The decoded parts to build: readers that can skip building the others do.
    pub values: ValueParts,
}

impl OpenContext<'_> {
    /// The index of `h` among the streams of the subtask's keyed handle, for entry origins.
    pub fn stream_index(&self, h: &StreamStateHandle) -> Option<u16> {
        self.top.streams().iter().position(|(_, s)| std::ptr::eq(*s, h)).and_then(|i| u16::try_from(i).ok())
    }

    /// Where the handle is, for messages.
    pub fn what(&self) -> String {
        format!("{}: operator {}", self.snapshot.metadata_location, self.operator_id)
    }
}

/// The dispatch from state-handle kind to reader: the only one. `nested` is set while opening
/// the materialized part of a changelog handle (which cannot be a changelog handle itself).
pub(crate) fn open_reader<'a>(cx: &OpenContext<'a>, handle: &'a KeyedStateHandle, nested: bool) -> Result<Box<dyn KeyGroupReader + 'a>> {
    match handle {
        // Canonical savepoints, heap checkpoints, RocksDB full checkpoints up to 1.15.
        KeyedStateHandle::KeyGroups(h) => Ok(Box::new(KeyGroupsReader::open(cx, h)?)),
        // RocksDB native snapshots (incremental and full checkpoints, native savepoints).
        KeyedStateHandle::IncrementalRemote(h) => Ok(Box::new(RocksDbSource::open(cx, h)?)),
        // The changelog backend: its materialized handles come back through this dispatch.
        KeyedStateHandle::Changelog(h) if !nested => Ok(Box::new(ChangelogReader::open(cx, h)?)),
        other => Err(Error::corrupt(
            cx.snapshot.metadata_location.as_str(),
            format!(
                "operator {}: a {} is not {}",
                cx.operator_id,
                other.class_name(),
                if nested { "the materialized state of a changelog handle" } else { "a subtask's keyed state" }
            ),
        )),
    }
}

/// The managed keyed state of one subtask, opened: its serialization proxy, the key groups that
/// hold entries, and each key group's entries, whatever the handle kind. Selected states only;
/// key groups within the handle's range and the selection only.
#[derive(Debug)]
pub struct KeyedSource<'a> {
    reader: Box<dyn KeyGroupReader + 'a>,
    operator_id: OperatorId,
    subtask: SubtaskRef,
    subtask_index: u32,
    range: KeyGroupRange,
    selection: Selection,
    /// The key group started last lies outside the range or the selection: it has no entries.
    outside: bool,
    /// Undecodable records not yet taken (the proxy's, from opening).
    undecodable: Vec<Undecodable>,
    /// The proxy with the SQL column names a plan fixes ([`crate::readers::columns`]), when it
    /// names any of this operator's rows: entries' rows are renamed after it.
    named: Option<KeyedBackendMeta>,
}

impl<'a> KeyedSource<'a> {
    /// Opens the managed keyed state of subtask `sub` of `snapshot` (`None` when it holds none),
    /// reading only its serialization proxy.
    pub fn open(snapshot: &'a Snapshot, sub: SubtaskRef, selection: &Selection) -> Result<Option<KeyedSource<'a>>> {
        let Some(op) = snapshot.metadata.operators.get(sub.operator) else { return Ok(None) };
        let Some(st) = op.subtasks.get(sub.subtask) else { return Ok(None) };
        let Some(handle) = st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()) else { return Ok(None) };
        let cx = OpenContext {
            snapshot,
            operator_id: op.operator_id,
            max_parallelism: op.max_parallelism,
            subtask: sub,
            top: handle,
            states: selection.states.clone(),
            key_groups: selection.key_groups,
            raw: selection.raw,
            values: selection.values,
        };
        let reader = open_reader(&cx, handle, false).map_err(|e| in_subtask(e, op.operator_id, st.index))?;
        // States whose registration could not be read (an unknown serializer snapshot whose end
        // the bytes do not determine): reported once per subtask, whatever the reader.
        let undecodable = reader.meta().unreadable.iter().map(|u| Undecodable::registrations(op.operator_id, u, Some(cx.what()))).collect();
        let named = snapshot.column_names.as_ref().filter(|c| c.operators.contains_key(&op.operator_id)).map(|c| {
            let mut meta = reader.meta().clone();
            crate::readers::columns::apply_to_meta(c, op.operator_id, &mut meta);
            meta
        });
        // What the readers kept of the stored bytes is what is handed on (a reader that keeps
        // more, the changelog replay, is trimmed to it).
        let selection = Selection { raw: crate::readers::serializers::raw_for_key_hash(selection.raw, &reader.meta().key_serializer), ..selection.clone() };
        Ok(Some(KeyedSource {
            named,
            reader,
            operator_id: op.operator_id,
            subtask: sub,
            subtask_index: st.index,
            range: handle.key_group_range(),
            selection,
            outside: true,
            undecodable,
        }))
    }

    /// The operator.
    pub fn operator_id(&self) -> OperatorId {
        self.operator_id
    }

    /// The subtask, by place in the metadata.
    pub fn subtask(&self) -> SubtaskRef {
        self.subtask
    }

    /// The subtask's index (as Flink numbers subtasks).
    pub fn subtask_index(&self) -> u32 {
        self.subtask_index
    }

    /// Key groups the handle covers.
    pub fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    /// Whether every key group gives its states' entries in proxy order
    /// ([`KeyGroupReader::states_in_proxy_order`]).
    pub fn states_in_proxy_order(&mut self) -> Result<bool> {
        self.reader.states_in_proxy_order()
    }

    /// The serialization proxy: key serializer and every state (unselected ones too).
    pub fn meta(&self) -> &KeyedBackendMeta {
        self.named.as_ref().unwrap_or_else(|| self.reader.meta())
    }

    /// The key serializer.
    pub fn key_serializer(&self) -> &TypeSerializer {
        &self.meta().key_serializer
    }

    /// The selected key groups of the handle's range that may hold entries, ascending.
    pub fn key_groups(&mut self) -> Result<Vec<u32>> {
        let mut kgs = self.reader.key_groups()?;
        let (range, selection) = (self.range, &self.selection);
        kgs.retain(|&kg| range.contains(kg) && selection.key_group(kg));
        Ok(kgs)
    }

    /// Starts key group `kg` (any order, each at most once): [`KeyedSource::next_entry`] gives
    /// its entries of the selected states. A key group outside the range or the selection has
    /// none.
    pub fn start(&mut self, kg: u32) -> Result<()> {
        self.outside = !self.range.contains(kg) || !self.selection.key_group(kg);
        if self.outside {
            return Ok(());
        }
        self.reader.start(kg)
    }

    /// The next selected entry of the key group started last; `None` at its end.
    pub fn next_entry(&mut self) -> Option<Result<Entry>> {
        if self.outside {
            return None;
        }
        // The entry is checked and renamed in place, never taken out of its `Option` nor its
        // `Result` (the reader's answer is returned as it came): each move of an `Entry` is a
        // memcpy per entry.
        loop {
            let mut next = self.reader.next_entry();
            if let Some(Ok(e)) = &mut next {
                if !self.selection.state(&e.state) {
                    continue;
                }
                if let Some(named) = &self.named {
                    crate::readers::columns::rename_entry(named, e);
                }
                // Readers that copy what they need skip the copies; this holds the rest (the
                // changelog replay needs every byte of what it merges) to the same rule.
                e.raw.keep(self.selection.raw);
            }
            return next;
        }
    }

    /// The entries of key group `kg` (see [`KeyedSource::start`]).
    pub fn read_key_group(&mut self, kg: u32) -> Result<KeyGroup<'_, 'a>> {
        self.start(kg)?;
        Ok(KeyGroup { source: self, done: false })
    }

    /// What could not be decoded since the last call (states of unknown serializers whose
    /// entries cannot be read, or not even registered), taken; the selected states only. Call
    /// it after each key group (or at the end): records of one state in several key groups are
    /// merged by [`Undecodable::merge_into`].
    pub fn take_undecodable(&mut self) -> Vec<Undecodable> {
        let mut out = std::mem::take(&mut self.undecodable);
        out.extend(self.reader.take_undecodable());
        for u in &mut out {
            u.subtask = Some(self.subtask_index);
            u.subtask_ref = Some(self.subtask);
        }
        let selection = &self.selection;
        out.retain(|u| u.state.as_deref().is_none_or(|s| selection.state(s)));
        out
    }

    /// Bytes the handle stores per key group of its range, where the format records them
    /// (key-grouped streams: from each key group's offset to the next).
    pub fn stored_bytes(&self) -> Option<Vec<(u32, u64)>> {
        let range = self.range;
        self.reader.stored_bytes().map(|mut v| {
            v.retain(|(kg, _)| range.contains(*kg));
            v
        })
    }
}

/// The entries of one key group of a [`KeyedSource`].
#[derive(Debug)]
pub struct KeyGroup<'s, 'a> {
    source: &'s mut KeyedSource<'a>,
    done: bool,
}

impl Iterator for KeyGroup<'_, '_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.done {
            return None;
        }
        let r = self.source.next_entry();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

impl std::iter::FusedIterator for KeyGroup<'_, '_> {}

/// Names the operator and subtask in messages that do not name them.
fn in_subtask(e: Error, operator_id: OperatorId, subtask: u32) -> Error {
    match e {
        Error::Corrupt { file, what } if !what.contains(&operator_id.to_hex()) => {
            Error::Corrupt { file, what: format!("operator {operator_id} subtask {subtask}: {what}") }
        }
        e => e,
    }
}
