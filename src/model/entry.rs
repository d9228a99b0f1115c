//! One logical state entry: what every reader produces and every writer consumes.

use serde::Serialize;

use super::value::Value;
use super::OperatorId;
use crate::error::Position;

/// What kind of state an entry belongs to (the `kind` of `flinksnap dump`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    /// Keyed `ValueState`.
    Value,
    /// Keyed `ListState`.
    List,
    /// Keyed `MapState`.
    Map,
    /// Keyed `ReducingState`.
    Reducing,
    /// Keyed `AggregatingState`.
    Aggregating,
    /// A timer of a keyed operator's timer service.
    Timer,
    /// Operator list state, split on rescale.
    OperatorList,
    /// Operator union list state.
    OperatorUnion,
    /// Broadcast state.
    Broadcast,
}

impl StateKind {
    /// The name `flinksnap dump` prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
            StateKind::Reducing => "reducing",
            StateKind::Aggregating => "aggregating",
            StateKind::Timer => "timer",
            StateKind::OperatorList => "operator_list",
            StateKind::OperatorUnion => "operator_union",
            StateKind::Broadcast => "broadcast",
        }
    }

    /// Keyed kinds have a key, a key group and a namespace.
    pub fn is_keyed(&self) -> bool {
        matches!(self, StateKind::Value | StateKind::List | StateKind::Map | StateKind::Reducing | StateKind::Aggregating | StateKind::Timer)
    }
}

/// The exact serialized bytes of an entry, kept beside the decoded values so a writer can copy
/// what it need not understand. Keyed entries use the layout of Flink's canonical stream:
/// `key` and `namespace` as their serializers write them (no key-group prefix, no length
/// suffixes), `user_key` for map state, and `value` as the canonical stream stores it (with the
/// TTL wrapper; list elements joined by `,`; map values with their null flag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEntry {
    /// Key bytes.
    pub key: Vec<u8>,
    /// Namespace bytes.
    pub namespace: Vec<u8>,
    /// User-key bytes (map and broadcast state).
    pub user_key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Vec<u8>,
    /// The stored key after its key-group prefix, exactly as the canonical stream and RocksDB
    /// store it, when it cannot be split into `key`, `namespace` and `user_key` (an unknown key
    /// or namespace serializer: then those three are empty and a writer copies this verbatim).
    pub stored_key: Option<Vec<u8>>,
}

/// One subtask of one operator, by place in the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SubtaskRef {
    /// Index of the operator in the metadata's operator list.
    pub operator: usize,
    /// Index into that operator's subtask list (file order, normally the subtask index).
    pub subtask: usize,
}

/// Where an entry was read: which subtask, which stream of its state handle, where in it. Plain
/// data filled in as the readers go (no allocation per entry); what is not known stays `None`.
/// [`Snapshot::entry_stream`](crate::snapshot::Snapshot::entry_stream) names the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Origin {
    /// The subtask whose state holds the entry.
    pub subtask: Option<SubtaskRef>,
    /// The stream (file, file segment or inline bytes): its index in the subtask's managed
    /// keyed-state handle's `streams()` (keyed state), or 0 for the operator-state handle's
    /// stream. `None` when not known: entries of RocksDB tables (RocksDB merges its files),
    /// state changes held inline in `_metadata`.
    pub stream: Option<u16>,
    /// Where the stored entry starts: a file offset, or an offset in a decompressed block. For an
    /// entry the changelog replay changed: where the last change applied to it starts.
    pub position: Option<Position>,
}

/// One logical entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The operator.
    pub operator_id: OperatorId,
    /// State name as Flink registered it (timers: the timer queue's name).
    pub state: String,
    /// What kind of state.
    pub kind: StateKind,
    /// Key group (keyed state).
    pub key_group: Option<u32>,
    /// The key (keyed state).
    pub key: Option<Value>,
    /// The namespace (keyed state; `Value::Null` for VoidNamespace).
    pub namespace: Option<Value>,
    /// The map key (map and broadcast state).
    pub user_key: Option<Value>,
    /// The value: list state an array in list order, timers the timestamp.
    pub value: Value,
    /// Last-access timestamp of a TTL state's value.
    pub ttl_timestamp: Option<i64>,
    /// The bytes as stored.
    pub raw: RawEntry,
    /// Where it was read.
    pub origin: Origin,
}

impl Entry {
    /// The entry as one `flinksnap dump` JSON object, fields in the documented order
    /// (`formats/dump.md`): `user_key` only for map and broadcast state, `ttl_timestamp` only
    /// for TTL state.
    pub fn to_json(&self, operator_uid: Option<&str>) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("operator_id".into(), self.operator_id.to_hex().into());
        m.insert("operator_uid".into(), operator_uid.map_or(serde_json::Value::Null, Into::into));
        m.insert("state".into(), self.state.clone().into());
        m.insert("kind".into(), self.kind.as_str().into());
        m.insert("key_group".into(), self.key_group.map_or(serde_json::Value::Null, Into::into));
        m.insert("key".into(), self.key.as_ref().map_or(serde_json::Value::Null, Value::to_json));
        m.insert("namespace".into(), self.namespace.as_ref().map_or(serde_json::Value::Null, Value::to_json));
        if matches!(self.kind, StateKind::Map | StateKind::Broadcast) {
            m.insert("user_key".into(), self.user_key.as_ref().map_or(serde_json::Value::Null, Value::to_json));
        }
        m.insert("value".into(), self.value.to_json());
        if let Some(ts) = self.ttl_timestamp {
            m.insert("ttl_timestamp".into(), ts.into());
        }
        serde_json::Value::Object(m)
    }

    /// Opaque values (Kryo, custom serializers) inside this entry.
    pub fn opaque_count(&self) -> usize {
        [self.key.as_ref(), self.namespace.as_ref(), self.user_key.as_ref(), Some(&self.value)]
            .into_iter()
            .flatten()
            .map(Value::opaque_count)
            .sum()
    }
}
