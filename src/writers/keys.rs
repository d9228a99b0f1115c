//! Keyed state as the canonical stream stores it, for the savepoint writer ([`super::savepoint`]):
//! the serialization proxy written (the union of what the source subtasks registered, exact
//! serializer snapshot bytes), and each entry encoded as the RocksDB-layout key/value pair of its
//! key group — moved to its key group for another max parallelism when asked — in the order the
//! stream needs (key groups ascending, states by id within a key group).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::metadata::OperatorState;
use crate::model::value::Value;
use crate::model::{Entry, StateKind};
use crate::readers::meta::{BackendStateType, KeyedBackendMeta, StateMetaInfo, NAMESPACE_SERIALIZER};
use crate::readers::serializers::{key_group_for_hash, key_hash_code, TypeSerializer};
use crate::writers::canonical::Record;

/// The states of a keyed operator as written: the proxy, and per state what its entries need.
pub(super) struct KeyedLayout {
    pub proxy_version: i32,
    pub key_serializer: TypeSerializer,
    pub key_serializer_raw: Vec<u8>,
    pub states: Vec<StateMetaInfo>,
    pub ids: HashMap<String, u16>,
}

impl KeyedLayout {
    pub(super) fn proxy(&self, compressed: bool) -> Result<Vec<u8>> {
        use crate::bytes::DataOutput;
        let mut p = Vec::new();
        p.put_i32(self.proxy_version);
        p.put_bool(compressed);
        p.extend_from_slice(&self.key_serializer_raw);
        let n = i16::try_from(self.states.len()).map_err(|_| Error::Invalid(format!("{} states do not fit a serialization proxy", self.states.len())))?;
        p.put_i16(n);
        for s in &self.states {
            p.extend_from_slice(&s.raw);
        }
        Ok(p)
    }

    /// The id of state `name` (its index in the proxy). Per entry: a few names compared cost
    /// less than hashing one.
    pub(super) fn id(&self, name: &str) -> Option<u16> {
        if self.states.len() <= 16 {
            return self.states.iter().position(|s| s.name == name).map(|i| i as u16);
        }
        self.ids.get(name).copied()
    }

    /// Keeps only the states `keep` says yes to (ids renumbered in proxy order).
    pub(super) fn retain_states(&mut self, keep: impl Fn(&str) -> bool) {
        self.states.retain(|s| keep(&s.name));
        self.ids = self.states.iter().enumerate().map(|(i, s)| (s.name.clone(), i as u16)).collect();
    }

    /// Adds a state the source does not declare (an imported one, registered like another).
    pub(super) fn add_state(&mut self, what: &str, meta: StateMetaInfo) -> Result<()> {
        if self.ids.contains_key(&meta.name) {
            return Err(Error::Invalid(format!("{what}: state {:?} is already registered", meta.name)));
        }
        let id = u16::try_from(self.states.len()).ok().filter(|&i| i < i16::MAX as u16).ok_or_else(|| Error::Invalid(format!("{what}: too many states")))?;
        self.ids.insert(meta.name.clone(), id);
        self.states.push(meta);
        Ok(())
    }

    /// The union of the states the source subtasks registered (a subtask that never saw a
    /// key registers nothing), first seen first; each keeps its exact serializer snapshot bytes.
    pub(super) fn union(what: &str, metas: &[KeyedBackendMeta]) -> Result<KeyedLayout> {
        let first = metas.first().ok_or_else(|| Error::Invalid(format!("{what}: no keyed state")))?;
        if first.key_serializer_raw.is_empty() {
            // A changelog handle before its first materialization records no key serializer.
            return Err(Error::unsupported(
                format!("{what}: the key serializer's snapshot is not recorded (changelog state not materialized yet), so no savepoint can name it"),
                None,
            ));
        }
        let mut layout = KeyedLayout {
            proxy_version: first.version,
            key_serializer: first.key_serializer.clone(),
            key_serializer_raw: first.key_serializer_raw.clone(),
            states: Vec::new(),
            ids: HashMap::new(),
        };
        for m in metas {
            if m.key_serializer_raw != layout.key_serializer_raw {
                return Err(Error::Corrupt { file: what.to_owned(), what: "subtasks disagree on the key serializer".into() });
            }
            for s in &m.states {
                if s.backend_type == BackendStateType::KeyValueV2 {
                    return Err(Error::unsupported(
                        format!("{what}: state {:?} belongs to the async state API (2.x), which Flink cannot restore from a canonical savepoint", s.name),
                        None,
                    ));
                }
                if s.kind().is_none() {
                    return Err(Error::Corrupt { file: what.to_owned(), what: format!("state {:?} has an unknown keyed state type", s.name) });
                }
                match layout.ids.get(&s.name) {
                    Some(&i) if layout.states[i as usize].raw != s.raw => {
                        return Err(Error::Corrupt { file: what.to_owned(), what: format!("subtasks disagree on the serializers of state {:?}", s.name) });
                    }
                    Some(_) => {}
                    None => {
                        let id = u16::try_from(layout.states.len()).ok().filter(|&i| i < i16::MAX as u16).ok_or_else(|| Error::Invalid(format!("{}: too many states", what)))?;
                        layout.ids.insert(s.name.clone(), id);
                        layout.states.push(s.clone());
                    }
                }
            }
        }
        Ok(layout)
    }
}

/// Turns entries of one keyed operator into records for the written stream.
#[derive(Clone, Copy)]
pub(super) struct RecordContext<'a> {
    pub op: &'a OperatorState,
    pub layout: &'a KeyedLayout,
    pub source_max_parallelism: u32,
    pub max_parallelism: u32,
    pub regroup: bool,
}

impl RecordContext<'_> {
    fn fail(&self, e: &Entry, msg: impl std::fmt::Display) -> Error {
        Error::Invalid(self.about(e, msg))
    }

    fn about(&self, e: &Entry, msg: impl std::fmt::Display) -> String {
        let key = e.key.as_ref().map_or("null".to_owned(), |k| k.to_json().to_string());
        format!("operator {} state {:?} key {key}: {msg}", self.op.operator_id, e.state)
    }

    /// The record of one entry; `None` for what the canonical stream does not hold (empty lists).
    pub(super) fn record(&self, e: &Entry) -> Result<Option<Record>> {
        self.record_owned(e.clone())
    }

    /// [`Self::record`] of an entry no longer needed: its value (and key) bytes move into the
    /// record instead of being copied.
    pub(super) fn record_owned(&self, mut e: Entry) -> Result<Option<Record>> {
        if !e.kind.is_keyed() {
            return Ok(None);
        }
        let state = self.layout.id(&e.state).ok_or_else(|| self.fail(&e, "state is not in the serialization proxy"))?;
        let meta = &self.layout.states[state as usize];
        let source_kg = e.key_group.ok_or_else(|| self.fail(&e, "keyed entry without a key group"))?;
        let key_group = if self.regroup { self.new_key_group(&e, source_kg)? } else { source_kg };
        if key_group >= self.max_parallelism {
            return Err(self.fail(&e, format!("key group {key_group} is beyond max parallelism {}", self.max_parallelism)));
        }
        let (key, value) = match e.kind {
            StateKind::Timer => {
                // TimerSerializer: sign-flipped timestamp (so byte order is numeric order), key,
                // namespace; the value is empty.
                let Value::Int(ts) = e.value else { return Err(self.fail(&e, "timer without a timestamp")) };
                let raw = &e.raw;
                let mut k = Vec::with_capacity(8 + raw.key.len() + raw.namespace.len());
                k.extend_from_slice(&(ts ^ i64::MIN).to_be_bytes());
                match &raw.stored_key {
                    Some(stored) => k.extend_from_slice(stored),
                    None => {
                        k.extend_from_slice(&raw.key);
                        k.extend_from_slice(&raw.namespace);
                    }
                }
                (k, Vec::new())
            }
            // Key, namespace and user key that could not be split (an unknown key or namespace
            // serializer): copied as stored, suffixes included.
            _ if e.raw.stored_key.is_some() => (e.raw.stored_key.take().unwrap_or_default(), std::mem::take(&mut e.raw.value)),
            // An empty list is no entry in the canonical stream (RocksDB never stores one).
            StateKind::List if e.raw.value.is_empty() => return Ok(None),
            kind => {
                let ns = meta.serializer(NAMESPACE_SERIALIZER).ok_or_else(|| self.fail(&e, "state has no namespace serializer"))?;
                // CompositeKeySerializationUtils: length suffixes only when both key and namespace
                // are of variable length.
                let ambiguous = self.layout.key_serializer.fixed_length().is_none() && ns.fixed_length().is_none();
                let user_key = match kind {
                    StateKind::Map => Some(e.raw.user_key.take().ok_or_else(|| self.fail(&e, "map entry without a user key"))?),
                    _ => None,
                };
                let raw = &mut e.raw;
                let key_len = raw.key.len();
                // The key's bytes start the record's key: extended in place.
                let mut k = std::mem::take(&mut raw.key);
                k.reserve(raw.namespace.len() + user_key.as_ref().map_or(0, Vec::len) + 8);
                if ambiguous {
                    push_length_suffix(&mut k, key_len);
                }
                k.extend_from_slice(&raw.namespace);
                if ambiguous {
                    push_length_suffix(&mut k, raw.namespace.len());
                }
                if let Some(uk) = &user_key {
                    k.extend_from_slice(uk);
                }
                (k, std::mem::take(&mut raw.value))
            }
        };
        Ok(Some(Record { key_group, state, key, value }))
    }

    /// The key group of the entry's key for the new max parallelism: Flink's murmur of the
    /// key's Java `hashCode()`. Checked against the key group the source stored it in, so a key
    /// whose hash flinksnap gets wrong is refused instead of silently lost.
    fn new_key_group(&self, e: &Entry, source_kg: u32) -> Result<u32> {
        let key = e.key.as_ref().ok_or_else(|| self.fail(e, "keyed entry without a key"))?;
        let ser = &self.layout.key_serializer;
        let hash = key_hash_code(ser, key, &e.raw.key).ok_or_else(|| {
            Error::unsupported(
                self.about(
                    e,
                    format!(
                        "cannot move keys to another max parallelism: the Java hashCode() of keys of {} is not defined by their value \
                         (flinksnap computes it for Long, Integer, Short, Byte, Boolean, Double, Float, Character, String and \
                         Tuple/Row of these)",
                        ser.opaque_class()
                    ),
                ),
                Some(ser.opaque_class()),
            )
        })?;
        let old = key_group_for_hash(hash, self.source_max_parallelism);
        if old != source_kg {
            return Err(Error::unsupported(
                self.about(
                    e,
                    format!("the source stores this key in key group {source_kg}, but its hash puts it in {old}: its hashCode() is not the one flinksnap computes"),
                ),
                Some(ser.opaque_class()),
            ));
        }
        Ok(key_group_for_hash(hash, self.max_parallelism))
    }
}

/// `CompositeKeySerializationUtils.writeLengthFrom`: the length little-endian in as few bytes
/// as it needs (at least one), no continuation bits.
fn push_length_suffix(out: &mut Vec<u8>, len: usize) {
    let mut v = len;
    loop {
        out.push(v as u8);
        v >>= 8;
        if v == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OperatorId, RawEntry};
    use crate::readers::serializers::{SerializerKind, SimpleType};

    #[test]
    fn length_suffix_is_little_endian_minimal() {
        let mut v = Vec::new();
        push_length_suffix(&mut v, 0);
        push_length_suffix(&mut v, 5);
        push_length_suffix(&mut v, 0x1234);
        assert_eq!(v, [0, 5, 0x34, 0x12]);
    }

    fn context_test(key_serializer: TypeSerializer, key: Value, source_kg: u32) -> Result<Option<Record>> {
        let ns = TypeSerializer::new("VoidNamespaceSerializerSnapshot".into(), 3, SerializerKind::Simple(SimpleType::VoidNamespace));
        context_with(key_serializer, ns, key, source_kg, (vec![1], vec![0]))
    }

    fn context_with(key_serializer: TypeSerializer, ns: TypeSerializer, key: Value, source_kg: u32, raw: (Vec<u8>, Vec<u8>)) -> Result<Option<Record>> {
        let value = TypeSerializer::new("LongSerializerSnapshot".into(), 3, SerializerKind::Simple(SimpleType::Long));
        let meta = StateMetaInfo {
            name: "s".into(),
            backend_type: BackendStateType::KeyValue,
            options: vec![("KEYED_STATE_TYPE".into(), "VALUE".into())],
            serializers: vec![("VALUE_SERIALIZER".into(), value), (NAMESPACE_SERIALIZER.into(), ns)],
            raw: Vec::new(),
            position: None,
        };
        let layout = KeyedLayout { proxy_version: 6, key_serializer, key_serializer_raw: Vec::new(), states: vec![meta], ids: [("s".to_owned(), 0u16)].into() };
        let op = OperatorState {
            operator_id: OperatorId([0; 16]),
            name: None,
            uid: None,
            parallelism: 1,
            max_parallelism: 128,
            coordinator_state: None,
            fully_finished: false,
            subtasks: Vec::new(),
        };
        let ctx = RecordContext { op: &op, layout: &layout, source_max_parallelism: 128, max_parallelism: 256, regroup: true };
        let e = Entry {
            operator_id: op.operator_id,
            state: "s".into(),
            kind: StateKind::Value,
            key_group: Some(source_kg),
            key: Some(key),
            namespace: Some(Value::Null),
            user_key: None,
            value: Value::Int(1),
            ttl_timestamp: None,
            raw: RawEntry { key: raw.0, namespace: raw.1, user_key: None, value: vec![0; 8], stored_key: None },
            origin: Default::default(),
        };
        ctx.record(&e)
    }

    #[test]
    fn variable_length_key_and_namespace_get_length_suffixes() {
        // String key "k" (02 6B) and String namespace "n" (02 6E): both variable-length, so
        // CompositeKeySerializationUtils appends each one's byte count (formats reference §4.4).
        let string = || TypeSerializer::new("StringSerializerSnapshot".into(), 3, SerializerKind::Simple(SimpleType::String));
        let r = context_with(string(), string(), Value::String("k".into()), 21, (vec![2, 0x6b], vec![2, 0x6e])).unwrap().unwrap();
        assert_eq!(r.key, [2, 0x6b, 2, 2, 0x6e, 2]);
        // And the reader's decoder (shared with the RocksDB column-family readers) agrees.
        let meta = crate::readers::meta::KeyedBackendMeta {
            version: 6,
            compressed: false,
            key_serializer: string(),
            states: vec![StateMetaInfo {
                name: "s".into(),
                backend_type: BackendStateType::KeyValue,
                options: vec![("KEYED_STATE_TYPE".into(), "VALUE".into())],
                serializers: vec![
                    ("VALUE_SERIALIZER".into(), TypeSerializer::new("LongSerializerSnapshot".into(), 3, SerializerKind::Simple(SimpleType::Long))),
                    (NAMESPACE_SERIALIZER.into(), string()),
                ],
                raw: Vec::new(),
                position: None,
            }],
            key_serializer_raw: Vec::new(),
            raw: Vec::new(),
            unreadable: None,
        };
        let dec = crate::readers::keyed::KeyedDecoder::new(OperatorId([0; 16]), 128, &meta).unwrap();
        let mut key = vec![21u8];
        key.extend(&r.key);
        let e = dec.decode_kv(0, &key, &r.value).unwrap();
        assert_eq!((e.key.clone(), e.namespace.clone()), (Some(Value::String("k".into())), Some(Value::String("n".into()))));
    }

    #[test]
    fn regrouping_refuses_keys_whose_hash_is_not_computable_or_disagrees() {
        // Kryo (or POJO, enum) keys: Java's hashCode() is not a function of the value.
        let kryo = TypeSerializer::new("KryoSerializerSnapshot".into(), 2, SerializerKind::Kryo { type_class: "com.example.Key".into(), registrations: vec!["com.example.Key".into()] });
        let e = context_test(kryo, Value::Bytes(vec![1]), 0).unwrap_err().to_string();
        assert!(e.contains("com.example.Key") && e.contains("hashCode()"), "{e}");
        // "k" hashes to key group 21 of 128 (release-verified); stored elsewhere, it is refused.
        let string = || TypeSerializer::new("StringSerializerSnapshot".into(), 3, SerializerKind::Simple(SimpleType::String));
        let e = context_test(string(), Value::String("k".into()), 20).unwrap_err().to_string();
        assert!(e.contains("key group 20") && e.contains("puts it in 21"), "{e}");
        let r = context_test(string(), Value::String("k".into()), 21).unwrap().unwrap();
        assert_eq!(r.key_group, key_group_for_hash(107, 256));
        assert_eq!(r.key, [1, 0], "key and namespace bytes, no length suffixes (VoidNamespace is fixed-length)");
    }
}
