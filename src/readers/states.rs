//! Which states a snapshot holds and with which serializers, read from the serialization proxy at
//! the head of each state file, without reading any entry. Writers that lay out typed output
//! per state (`flinksnap export`) need this before the first entry, and for states that hold
//! no entry at all.

use crate::error::{Error, Result};
use crate::model::{OperatorId, StateKind};
use crate::readers::entries::{Selection, SnapshotEntries, SubtaskRef};
use crate::readers::meta::StateMetaInfo;
use crate::readers::operator::read_operator_meta;
use crate::readers::source::KeyedSource;
use crate::readers::serializers::TypeSerializer;
use crate::snapshot::Snapshot;

/// One registered state of one operator, as a subtask's state file declares it.
#[derive(Debug, Clone)]
pub struct StateInfo {
    /// The operator.
    pub operator_id: OperatorId,
    /// The state's kind, as [`crate::model::Entry::kind`] will name it.
    pub kind: StateKind,
    /// The keyed backend's key serializer (keyed state only; timers carry their own).
    pub key_serializer: Option<TypeSerializer>,
    /// Its snapshot as the proxy stores it (versioned form); empty where not recorded.
    pub key_serializer_raw: Vec<u8>,
    /// The registration: name, options and serializers by role.
    pub meta: StateMetaInfo,
}

impl StateInfo {
    /// The state name.
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// The serializers of this state that hold a snapshot flinksnap does not know, as (role,
    /// class): the keyed backend's key serializer first, as `key`, then the registration's in
    /// stored order by short role (`VALUE_SERIALIZER` → `value`). Empty for a fully typed state.
    pub fn unknown_serializers(&self) -> Vec<(String, String)> {
        let key = self.key_serializer.as_ref().and_then(TypeSerializer::unknown).map(|u| ("key".to_owned(), u.class_name().to_owned()));
        let roles = self.meta.unknown_serializers().map(|(role, u)| (role.to_lowercase().trim_end_matches("_serializer").to_owned(), u.class_name().to_owned()));
        key.into_iter().chain(roles).collect()
    }
}

/// The selected states declared by one subtask's keyed and operator state files, keyed state
/// first, each in the order its proxy lists them. Entries of a subtask read with
/// [`SnapshotEntries::for_subtask`] belong to these states.
pub fn subtask_states(snapshot: &Snapshot, selection: &Selection, sub: SubtaskRef) -> Result<Vec<StateInfo>> {
    let Some(op) = snapshot.metadata.operators.get(sub.operator) else { return Ok(Vec::new()) };
    let Some(st) = op.subtasks.get(sub.subtask) else { return Ok(Vec::new()) };
    let Some(s) = &st.state else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    if !selection.operator(&op.operator_id) {
        return Ok(out);
    }
    // The proxy only: a RocksDB handle's comes from its meta-data file, no database opened.
    if let Some(source) = KeyedSource::open(snapshot, sub, selection)? {
        let meta = source.meta().clone();
        for m in meta.states {
            if !selection.state(&m.name) {
                continue;
            }
            let kind = m.kind().ok_or_else(|| Error::corrupt(snapshot.metadata_location.as_str(), format!("operator {}: state {:?}: unknown keyed state type", op.operator_id, m.name)))?;
            out.push(StateInfo { operator_id: op.operator_id, kind, key_serializer: Some(meta.key_serializer.clone()), key_serializer_raw: meta.key_serializer_raw.clone(), meta: m });
        }
    }
    // Operator state has no key groups: a key-group selection leaves it out (as the entries do).
    if let Some(h) = s.managed_operator_state.as_ref().filter(|h| selection.key_groups.is_none() && !h.is_empty()) {
        let meta = read_operator_meta(snapshot, h)?;
        for m in meta.operator_states.into_iter().chain(meta.broadcast_states) {
            if !selection.state(&m.name) {
                continue;
            }
            let kind = m.kind().ok_or_else(|| Error::corrupt(snapshot.metadata_location.as_str(), format!("operator {}: state {:?}: unknown operator state type", op.operator_id, m.name)))?;
            out.push(StateInfo { operator_id: op.operator_id, kind, key_serializer: None, key_serializer_raw: Vec::new(), meta: m });
        }
    }
    Ok(out)
}

/// Every selected state of the snapshot: [`subtask_states`] over
/// [`SnapshotEntries::subtasks`], in that order (a state registered by several subtasks
/// appears once per subtask).
pub fn snapshot_states(snapshot: &Snapshot, selection: &Selection) -> Result<Vec<(SubtaskRef, Vec<StateInfo>)>> {
    SnapshotEntries::subtasks(snapshot, selection).into_iter().map(|sub| Ok((sub, subtask_states(snapshot, selection, sub)?))).collect()
}
