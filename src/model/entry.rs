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
///
/// Readers keep only the parts [`RawParts`] asks for (`Selection::raw`, all by default): with
/// [`RawParts::Key`] `key` and `stored_key` only, with [`RawParts::None`] nothing — the
/// vectors are empty and `user_key`/`stored_key` `None` — while the decoded values are the
/// same. Operator-state entries always keep theirs (few, and read whole).
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

/// Which stored bytes ([`RawEntry`]) keyed-state readers keep beside the decoded values.
/// Copying them costs two or more allocations per entry, and only writers (`convert`, `edit`,
/// `import`), `stats` (stored sizes) and the key hash of SQL row keys (`verify`) read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum RawParts {
    /// None: every [`RawEntry`] of keyed state is empty.
    None,
    /// What `key_hash_code` needs: [`RawParts::Key`] where the key serializer is a SQL row's
    /// (its hash is taken over the stored bytes), else [`RawParts::None`]. Readers decide once,
    /// from the proxy's key serializer (`readers::serializers::raw_for_key_hash`); on its own
    /// ([`RawEntry::keep`]) it keeps what [`RawParts::Key`] keeps.
    KeyForHash,
    /// The key's bytes only ([`RawEntry::key`], or [`RawEntry::stored_key`] when the key
    /// cannot be split off): what `key_hash_code` needs for SQL row keys.
    Key,
    /// Everything (the default: what a writer needs).
    #[default]
    All,
}

impl RawParts {
    /// Whether the key's bytes are kept ([`RawParts::KeyForHash`] unresolved: kept).
    pub fn key(self) -> bool {
        self >= RawParts::KeyForHash
    }

    /// Whether the namespace, user key and value bytes are kept.
    pub fn all(self) -> bool {
        self == RawParts::All
    }
}

/// Which decoded parts keyed-state readers build. Building and dropping the decoded values is
/// most of the work of reading; readers that never look at them (`verify --level full`,
/// `convert`, which copy or check the stored bytes) ask for the key only.
///
/// With [`ValueParts::Key`] the key is decoded as always; the namespace, user key and value are
/// *checked* (`formats/serializers.md` § "Checking without decoding": the bytes are walked as the
/// decode reads them, nothing is built) and carry placeholders: `namespace` is
/// `Some(Value::Null)`, `user_key` `Some(Value::Null)` for map state, `value` [`Value::Null`],
/// except that a timer's value is still its timestamp ([`Value::Int`]). `ttl_timestamp`,
/// key groups, origins and the stored bytes ([`RawParts`]) are the same as with
/// [`ValueParts::All`]. An entry whose bytes are corrupt, or hold a part flinksnap cannot decode
/// (opaque), is decoded in full as with [`ValueParts::All`]: errors, [`Entry::opaque_count`] and
/// the undecodable reports do not depend on the mode.
///
/// Readers of keyed state honour it: key-grouped streams (heap checkpoints, canonical
/// savepoints, full checkpoints) and RocksDB native snapshots (both decode through the same
/// per-pair decoder), and the changelog replay for the materialized entries no change touches
/// (it matches changes by stored bytes; changed entries are decoded from the log in full).
/// Operator state builds every part whatever it says (few entries, read whole), which its
/// users must accept.
///
/// [`Value::Null`]: crate::model::value::Value::Null
/// [`Value::Int`]: crate::model::value::Value::Int
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ValueParts {
    /// The key only; namespace, user key and value checked, placeholders in the entry.
    Key,
    /// Every part decoded (the default).
    #[default]
    All,
}

impl RawEntry {
    /// Drops the parts `parts` does not keep (in place; nothing is allocated). Cheap when the
    /// reader kept no more (what most do): called per entry.
    #[inline]
    pub fn keep(&mut self, parts: RawParts) {
        fn clear(v: &mut Vec<u8>) {
            if v.capacity() != 0 {
                *v = Vec::new();
            }
        }
        if parts.all() {
            return;
        }
        if !parts.key() {
            clear(&mut self.key);
            if self.stored_key.is_some() {
                self.stored_key = None;
            }
        }
        clear(&mut self.namespace);
        if self.user_key.is_some() {
            self.user_key = None;
        }
        clear(&mut self.value);
    }
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
    /// State name as Flink registered it (timers: the timer queue's name). Shared: readers hand
    /// every entry of a state the same name (a copy per entry was an allocation per entry).
    pub state: std::sync::Arc<str>,
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
    /// About the bytes the entry takes as stored, from its decoded values (the same whatever
    /// [`RawParts`] kept), plus 64: what batches of entries (`export`'s chunks, the scan API's
    /// record batches) are sized by. [`RawEntry`] has the exact stored bytes where kept.
    pub fn size_hint(&self) -> usize {
        let parts = [&self.key, &self.namespace, &self.user_key].into_iter().flatten().map(Value::size_hint).sum::<usize>();
        64 + parts + self.value.size_hint()
    }

    /// The entry as one `flinksnap dump` JSON object, fields in the documented order
    /// (`formats/dump.md`): `user_key` only for map and broadcast state, `ttl_timestamp` only
    /// for TTL state.
    pub fn to_json(&self, operator_uid: Option<&str>) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("operator_id".into(), self.operator_id.to_hex().into());
        m.insert("operator_uid".into(), operator_uid.map_or(serde_json::Value::Null, Into::into));
        m.insert("state".into(), (&*self.state).into());
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

    /// Writes [`Entry::to_json`] as `serde_json::to_writer` prints it, byte for byte, without
    /// building the JSON tree (`dump` writes every entry; the tree cost more than the decoding).
    pub fn write_json<W: std::io::Write + ?Sized>(&self, operator_uid: Option<&str>, out: &mut W) -> std::io::Result<()> {
        use super::value::{write_hex, write_scalar};
        let opt = |out: &mut W, v: Option<&Value>| match v {
            Some(v) => v.write_json(out),
            None => out.write_all(b"null"),
        };
        out.write_all(b"{\"operator_id\":\"")?;
        write_hex(out, &self.operator_id.0)?;
        out.write_all(b"\",\"operator_uid\":")?;
        match operator_uid {
            Some(u) => write_scalar(out, u)?,
            None => out.write_all(b"null")?,
        }
        out.write_all(b",\"state\":")?;
        write_scalar(out, &*self.state)?;
        out.write_all(b",\"kind\":\"")?;
        out.write_all(self.kind.as_str().as_bytes())?;
        out.write_all(b"\",\"key_group\":")?;
        match self.key_group {
            Some(kg) => write_scalar(out, &kg)?,
            None => out.write_all(b"null")?,
        }
        out.write_all(b",\"key\":")?;
        opt(out, self.key.as_ref())?;
        out.write_all(b",\"namespace\":")?;
        opt(out, self.namespace.as_ref())?;
        if matches!(self.kind, StateKind::Map | StateKind::Broadcast) {
            out.write_all(b",\"user_key\":")?;
            opt(out, self.user_key.as_ref())?;
        }
        out.write_all(b",\"value\":")?;
        self.value.write_json(out)?;
        if let Some(ts) = self.ttl_timestamp {
            out.write_all(b",\"ttl_timestamp\":")?;
            write_scalar(out, &ts)?;
        }
        out.write_all(b"}")
    }

    /// Opaque values (Kryo, custom serializers) inside this entry.
    #[inline]
    pub fn opaque_count(&self) -> usize {
        let part = |v: &Option<Value>| v.as_ref().map_or(0, Value::opaque_count);
        part(&self.key) + part(&self.namespace) + part(&self.user_key) + self.value.opaque_count()
    }

    /// This entry as a read with [`ValueParts::Key`] gives it where the check vouched for it:
    /// namespace, user key and value replaced by their placeholders ([`Value::Null`]; a timer
    /// keeps its timestamp). Tests and fuzz targets compare the two reads with it.
    pub fn checked_form(&self) -> Entry {
        let mut p = self.clone();
        p.namespace = self.namespace.as_ref().map(|_| Value::Null);
        p.user_key = self.user_key.as_ref().map(|_| Value::Null);
        if self.kind != StateKind::Timer {
            p.value = Value::Null;
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reader moves each entry through a few layers (decoder, key group, source,
    /// consumer), a copy of the whole entry per move: the sizes are pinned so they do not grow
    /// back unnoticed. `Value` is 32 bytes because its rare opaque payload is boxed; an entry's
    /// state name is shared (`Arc<str>`), not a `String` per entry.
    #[test]
    fn entry_sizes_stay_small() {
        use std::mem::size_of;
        assert_eq!((size_of::<Value>(), size_of::<Option<Value>>()), (32, 32), "a value (48 with the opaque payload inline)");
        assert!(size_of::<Entry>() <= 368, "an entry: {} bytes (440 before)", size_of::<Entry>());
    }

    /// `write_json` prints `to_json`: optional parts absent and present, `user_key` only for map
    /// and broadcast state, `ttl_timestamp` only when set, a uid that needs escaping.
    #[test]
    fn write_json_prints_to_json() {
        let base = Entry {
            operator_id: OperatorId([0xab; 16]),
            state: "st\"ate".into(),
            kind: StateKind::Value,
            key_group: Some(127),
            key: Some(Value::Int(-4)),
            namespace: Some(Value::Null),
            user_key: None,
            value: Value::String("v".into()),
            ttl_timestamp: None,
            raw: RawEntry::default(),
            origin: Origin::default(),
        };
        let map = Entry { kind: StateKind::Map, user_key: Some(Value::String("uk".into())), ttl_timestamp: Some(i64::MIN), ..base.clone() };
        let map_no_user_key = Entry { kind: StateKind::Map, ..base.clone() };
        let broadcast = Entry { kind: StateKind::Broadcast, key_group: None, key: None, namespace: None, ..map.clone() };
        let list = Entry { kind: StateKind::List, value: Value::List(vec![Value::Int(1)]), ttl_timestamp: Some(5), ..base.clone() };
        for e in [base, map, map_no_user_key, broadcast, list] {
            for uid in [None, Some("uid \"x\"")] {
                let mut out = Vec::new();
                e.write_json(uid, &mut out).unwrap();
                assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&e.to_json(uid)).unwrap(), "{e:?} {uid:?}");
            }
        }
    }
}
