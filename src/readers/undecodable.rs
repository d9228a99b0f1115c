//! What a read could not decode, reported beside the entries instead of failing the read: an
//! unknown serializer costs at most its own state (`formats/serializers.md` § Unknown snapshots).
//!
//! Entries of a state whose serializer flinksnap does not know still come out where their bytes
//! are delimited (canonical streams, RocksDB, operator-state offsets): their values untyped,
//! `{"class", "hex"}`. What cannot come out is reported here: states whose registration could
//! not be read (an unknown serializer snapshot whose end the bytes do not determine), entries
//! that cannot be delimited (heap checkpoints and broadcast state store values without lengths).

use serde::Serialize;

use crate::error::Position;
use crate::model::{OperatorId, SubtaskRef};
use crate::readers::meta::{StateMetaInfo, UnreadableStates};
use crate::readers::serializers::TypeSerializer;

/// Why something was not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UndecodableKind {
    /// The state's registration (its meta info in the serialization proxy) could not be read:
    /// nothing of the state is read, and its name only where it precedes the unknown snapshot.
    Registration,
    /// Stored entries whose extent could not be determined (values without a length, of a
    /// serializer flinksnap cannot interpret): they are not read.
    Entries,
    /// The state's registration names a serializer snapshot flinksnap does not know, read past
    /// where what follows it fixes its end: the state's entries are read untyped
    /// (`{"class", "hex"}`), so their values (or, for an unknown key serializer, their keys) are
    /// not checked. `verify` reports it; a read emits the entries.
    Untyped,
}

/// A state, or some of its entries, not decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undecodable {
    /// The operator.
    pub operator_id: OperatorId,
    /// The subtask (as Flink numbers them), where known.
    pub subtask: Option<u32>,
    /// The subtask, by place in the metadata.
    #[serde(skip)]
    pub subtask_ref: Option<SubtaskRef>,
    /// The state's name, when it could be read.
    pub state: Option<String>,
    /// The state's index in its serialization proxy (the kv-state id of keyed state), where
    /// known.
    pub state_index: Option<usize>,
    /// What was not decoded.
    pub kind: UndecodableKind,
    /// The serializer (snapshot or type) class concerned, where known.
    pub class: Option<String>,
    /// Stored entries not read, where known (`None`: not counted, e.g. a RocksDB column family
    /// not scanned, or the rest of a key group).
    pub entries: Option<u64>,
    /// Key groups concerned (keyed state; 0 for operator state and registrations).
    pub key_groups: u64,
    /// The file, where known.
    pub file: Option<String>,
    /// The first place concerned, where known.
    pub position: Option<Position>,
    /// Why, in words.
    pub reason: String,
}

impl Undecodable {
    /// A record for a state of `operator_id` (subtask and file filled in by the caller).
    pub fn new(operator_id: OperatorId, kind: UndecodableKind, state: Option<String>, class: Option<String>, reason: String) -> Self {
        Undecodable {
            operator_id,
            subtask: None,
            subtask_ref: None,
            state,
            state_index: None,
            kind,
            class,
            entries: None,
            key_groups: 0,
            file: None,
            position: None,
            reason,
        }
    }

    /// The record of states whose registration could not be read.
    pub fn registrations(operator_id: OperatorId, u: &UnreadableStates, file: Option<String>) -> Self {
        let what = match (u.count, &u.name) {
            (Some(1), Some(n)) => format!("state {n:?}"),
            (Some(c), Some(n)) => format!("state {n:?} and the {} after it", c - 1),
            (Some(c), None) => format!("{c} states"),
            (None, _) => "the key serializer and every state".to_owned(),
        };
        let mut r = Undecodable::new(
            operator_id,
            UndecodableKind::Registration,
            u.name.clone(),
            u.class().map(str::to_owned),
            format!("{what} not read: {}", u.error),
        );
        r.state_index = Some(u.first);
        r.file = file;
        r.position = u.error.position();
        r
    }

    /// Records of the states of a serialization proxy that hold serializer snapshots flinksnap
    /// does not know, read past ([`UndecodableKind::Untyped`]): one per state, and one for the key
    /// serializer (`state` `None`), whose unknown snapshot leaves every state's keys unchecked.
    pub fn untyped(operator_id: OperatorId, key_serializer: Option<&TypeSerializer>, states: &[StateMetaInfo], file: Option<String>) -> Vec<Undecodable> {
        let mut out = Vec::new();
        if let Some(u) = key_serializer.and_then(TypeSerializer::unknown) {
            let mut r = Undecodable::new(
                operator_id,
                UndecodableKind::Untyped,
                None,
                Some(u.class_name().to_owned()),
                format!(
                    "the key serializer holds a snapshot flinksnap does not know ({}): keys are read untyped and not checked against their key groups",
                    u.class_name()
                ),
            );
            r.file = file.clone();
            out.push(r);
        }
        for (i, st) in states.iter().enumerate() {
            let Some((key, u)) = st.unknown_serializers().next() else { continue };
            let mut r = Undecodable::new(
                operator_id,
                UndecodableKind::Untyped,
                Some(st.name.clone()),
                Some(u.class_name().to_owned()),
                format!(
                    "its {} holds a snapshot flinksnap does not know ({}), read past where what follows it fixes its end: the entries are read untyped, their contents not checked",
                    key.to_lowercase().replace('_', " "),
                    u.class_name()
                ),
            );
            r.state_index = Some(i);
            r.file = file.clone();
            r.position = st.position;
            out.push(r);
        }
        out
    }

    /// A name for messages: the state's name, or its index.
    pub fn state_label(&self) -> String {
        match (&self.state, self.state_index) {
            (Some(n), _) => format!("{n:?}"),
            (None, Some(i)) => format!("#{i} (name not read)"),
            (None, None) => "(name not read)".to_owned(),
        }
    }

    /// Whether `other` is about the same thing (same subtask, state, kind, class and reason), so
    /// that the two can be merged.
    fn same(&self, other: &Undecodable) -> bool {
        self.operator_id == other.operator_id
            && self.subtask_ref == other.subtask_ref
            && self.state == other.state
            && self.state_index == other.state_index
            && self.kind == other.kind
            && self.class == other.class
            && self.reason == other.reason
    }

    /// Adds `r` to `list`, merged into a record about the same thing (entries and key groups
    /// summed, the first place kept).
    pub fn merge_into(list: &mut Vec<Undecodable>, r: Undecodable) {
        match list.iter_mut().find(|x| x.same(&r)) {
            Some(x) => {
                x.entries = match (x.entries, r.entries) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                x.key_groups += r.key_groups;
            }
            None => list.push(r),
        }
    }
}
