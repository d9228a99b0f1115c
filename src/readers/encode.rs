//! Entries back into the bytes a state stores: the inverse of the readers' value-level decoding
//! ([`super::decode`], the RocksDB key/value layout of `keyed::kv`, operator and broadcast state).
//! Given a state's registration and an entry's decoded parts, [`encode_entry`] gives the
//! [`RawEntry`] the readers would have read: what `flinksnap import` writes and `flinksnap edit`
//! matches keys with.
//!
//! TTL: a value of a TTL state is stored behind its last-access timestamp; a list state with TTL
//! stores one per element, and the model keeps only the latest, which every element then gets.

use crate::model::value::Value;
use crate::model::{RawEntry, StateKind};
use crate::readers::meta::{StateMetaInfo, KEY_SERIALIZER, VALUE_SERIALIZER};
use crate::readers::serializers::{encode_delimited_list, EncodeError, TypeSerializer};

type E<T> = Result<T, EncodeError>;

fn bad(message: String) -> EncodeError {
    EncodeError { path: Vec::new(), message, unsupported: false }
}

fn within(what: &str, mut e: EncodeError) -> EncodeError {
    e.path.insert(0, what.to_owned());
    e
}

/// The decoded parts of one entry (as [`crate::model::Entry`] holds them).
#[derive(Debug, Clone, Copy)]
pub struct EntryValues<'a> {
    /// The key (keyed state).
    pub key: Option<&'a Value>,
    /// The namespace (keyed state).
    pub namespace: Option<&'a Value>,
    /// The map key (map and broadcast state).
    pub user_key: Option<&'a Value>,
    /// The value: a list for list state, the timestamp for timers.
    pub value: &'a Value,
    /// The last-access timestamp of a TTL state's value.
    pub ttl_timestamp: Option<i64>,
}

/// A value behind its TTL timestamp when `ser` is the TTL wrapper.
fn encode_maybe_ttl(ser: &TypeSerializer, v: &Value, ttl: Option<i64>, out: &mut Vec<u8>) -> E<()> {
    match (ser.ttl_inner(), ttl) {
        (Some(inner), Some(ts)) => {
            out.extend_from_slice(&ts.to_be_bytes());
            inner.encode(v, out)
        }
        (Some(_), None) => Err(bad("a state with TTL needs the last-access timestamp (ttl_timestamp)".into())),
        (None, Some(_)) => Err(bad("a ttl_timestamp was given, but the state has no TTL".into())),
        (None, None) => ser.encode(v, out),
    }
}

/// The bytes of one entry of state `meta` (kind `kind`) of a keyed backend whose key serializer
/// is `key_serializer`, or of an operator / broadcast state (`key_serializer` unused).
pub fn encode_entry<'a>(meta: &StateMetaInfo, kind: StateKind, key_serializer: Option<&TypeSerializer>, e: EntryValues<'a>) -> Result<RawEntry, EncodeError> {
    let value_ser = meta.serializer(VALUE_SERIALIZER).ok_or_else(|| bad(format!("state {:?} has no value serializer", meta.name)))?;
    let need = |v: Option<&'a Value>, what: &str| -> E<&'a Value> { v.ok_or_else(|| bad(format!("a {} entry needs a {what}", kind.as_str()))) };
    match kind {
        StateKind::OperatorList | StateKind::OperatorUnion => {
            let value = value_ser.encode_to_vec(e.value).map_err(|x| within("value", x))?;
            Ok(RawEntry { value, ..Default::default() })
        }
        StateKind::Broadcast => {
            let key_ser = meta.serializer(KEY_SERIALIZER).ok_or_else(|| bad(format!("broadcast state {:?} has no key serializer", meta.name)))?;
            let uk = key_ser.encode_to_vec(need(e.user_key, "user key")?).map_err(|x| within("user_key", x))?;
            let value = value_ser.encode_to_vec(e.value).map_err(|x| within("value", x))?;
            Ok(RawEntry { user_key: Some(uk), value, ..Default::default() })
        }
        StateKind::Timer => {
            let (key_ser, ns_ser) = value_ser.timer_key_namespace().ok_or_else(|| bad(format!("timer state {:?} without a timer serializer", meta.name)))?;
            if !matches!(e.value, Value::Int(_)) {
                return Err(bad("a timer's value is its timestamp, an integer".into()));
            }
            let key = key_ser.encode_to_vec(need(e.key, "key")?).map_err(|x| within("key", x))?;
            let namespace = ns_ser.encode_to_vec(need(e.namespace, "namespace")?).map_err(|x| within("namespace", x))?;
            Ok(RawEntry { key, namespace, user_key: None, value: Vec::new(), stored_key: None })
        }
        StateKind::Value | StateKind::List | StateKind::Map | StateKind::Reducing | StateKind::Aggregating => {
            let key_ser = key_serializer.ok_or_else(|| bad("keyed state without the backend's key serializer".into()))?;
            let ns_ser = meta
                .serializer(crate::readers::meta::NAMESPACE_SERIALIZER)
                .ok_or_else(|| bad(format!("state {:?} has no namespace serializer", meta.name)))?;
            let key = key_ser.encode_to_vec(need(e.key, "key")?).map_err(|x| within("key", x))?;
            let namespace = ns_ser.encode_to_vec(need(e.namespace, "namespace")?).map_err(|x| within("namespace", x))?;
            let mut value = Vec::new();
            let mut user_key = None;
            match kind {
                StateKind::Map => {
                    let (uk_ser, uv_ser) = value_ser.map_key_value().ok_or_else(|| bad(format!("map state {:?} without a map serializer", meta.name)))?;
                    user_key = Some(uk_ser.encode_to_vec(need(e.user_key, "user key")?).map_err(|x| within("user_key", x))?);
                    // RocksDB's map values carry a null flag.
                    match e.value {
                        Value::Null => value.push(1),
                        v => {
                            value.push(0);
                            encode_maybe_ttl(uv_ser, v, e.ttl_timestamp, &mut value).map_err(|x| within("value", x))?;
                        }
                    }
                }
                StateKind::List => {
                    let elem = value_ser.list_element().ok_or_else(|| bad(format!("list state {:?} without a list serializer", meta.name)))?;
                    let Value::List(items) = e.value else { return Err(bad("a list state's value is a list".into())) };
                    match (elem.ttl_inner(), e.ttl_timestamp) {
                        (Some(inner), Some(ts)) => {
                            for (i, item) in items.iter().enumerate() {
                                if i > 0 {
                                    value.push(crate::consts::LIST_DELIMITER);
                                }
                                value.extend_from_slice(&ts.to_be_bytes());
                                inner.encode(item, &mut value).map_err(|x| within(&format!("value / list element {i}"), x))?;
                            }
                        }
                        // An empty list needs no timestamp (it is no entry at all).
                        (Some(_), None) if items.is_empty() => {}
                        (Some(_), None) => return Err(bad("a list state with TTL needs the last-access timestamp (ttl_timestamp)".into())),
                        (None, Some(_)) => return Err(bad("a ttl_timestamp was given, but the state has no TTL".into())),
                        (None, None) => encode_delimited_list(elem, items, &mut value).map_err(|x| within("value", x))?,
                    }
                }
                _ => encode_maybe_ttl(value_ser, e.value, e.ttl_timestamp, &mut value).map_err(|x| within("value", x))?,
            }
            Ok(RawEntry { key, namespace, user_key, value, stored_key: None })
        }
    }
}

/// The decoded parts of one entry, owned (what [`values_from_json`] gives).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedEntryValues {
    /// The key (keyed state).
    pub key: Option<Value>,
    /// The namespace (keyed state).
    pub namespace: Option<Value>,
    /// The map key (map and broadcast state).
    pub user_key: Option<Value>,
    /// The value.
    pub value: Value,
    /// The last-access timestamp of a TTL state's value.
    pub ttl_timestamp: Option<i64>,
}

impl OwnedEntryValues {
    /// Borrowed, for [`encode_entry`].
    pub fn as_values(&self) -> EntryValues<'_> {
        EntryValues { key: self.key.as_ref(), namespace: self.namespace.as_ref(), user_key: self.user_key.as_ref(), value: &self.value, ttl_timestamp: self.ttl_timestamp }
    }
}

/// The serializers of an entry's parts for a state: (key, namespace, user key, value), the value
/// serializer without its TTL wrapper; a list state's is its element serializer.
pub fn part_serializers<'m>(meta: &'m StateMetaInfo, kind: StateKind, key_serializer: Option<&'m TypeSerializer>) -> Result<PartSerializers<'m>, EncodeError> {
    let value_ser = meta.serializer(VALUE_SERIALIZER).ok_or_else(|| bad(format!("state {:?} has no value serializer", meta.name)))?;
    let unwrap = |s: &'m TypeSerializer| s.ttl_inner().unwrap_or(s);
    let ns = || meta.serializer(crate::readers::meta::NAMESPACE_SERIALIZER).ok_or_else(|| bad(format!("state {:?} has no namespace serializer", meta.name)));
    let key = || key_serializer.ok_or_else(|| bad("keyed state without the backend's key serializer".into()));
    Ok(match kind {
        StateKind::OperatorList | StateKind::OperatorUnion => PartSerializers { key: None, namespace: None, user_key: None, value: Some(value_ser) },
        StateKind::Broadcast => PartSerializers { key: None, namespace: None, user_key: meta.serializer(KEY_SERIALIZER), value: Some(value_ser) },
        StateKind::Timer => {
            let (k, n) = value_ser.timer_key_namespace().ok_or_else(|| bad(format!("timer state {:?} without a timer serializer", meta.name)))?;
            PartSerializers { key: Some(k), namespace: Some(n), user_key: None, value: None }
        }
        StateKind::Map => {
            let (uk, uv) = value_ser.map_key_value().ok_or_else(|| bad(format!("map state {:?} without a map serializer", meta.name)))?;
            PartSerializers { key: Some(key()?), namespace: Some(ns()?), user_key: Some(uk), value: Some(unwrap(uv)) }
        }
        StateKind::List => {
            let e = value_ser.list_element().ok_or_else(|| bad(format!("list state {:?} without a list serializer", meta.name)))?;
            PartSerializers { key: Some(key()?), namespace: Some(ns()?), user_key: None, value: Some(unwrap(e)) }
        }
        StateKind::Value | StateKind::Reducing | StateKind::Aggregating => PartSerializers { key: Some(key()?), namespace: Some(ns()?), user_key: None, value: Some(unwrap(value_ser)) },
    })
}

/// See [`part_serializers`]. `value` is `None` for timers (the timestamp).
#[derive(Debug, Clone, Copy)]
pub struct PartSerializers<'m> {
    /// The key's.
    pub key: Option<&'m TypeSerializer>,
    /// The namespace's.
    pub namespace: Option<&'m TypeSerializer>,
    /// The map key's (map state: the map's key serializer; broadcast: `KEY_SERIALIZER`).
    pub user_key: Option<&'m TypeSerializer>,
    /// The value's, without TTL wrapper; a list state's element serializer.
    pub value: Option<&'m TypeSerializer>,
}

/// The parts of one entry from their dump JSON (`formats/dump.md`): `key`, `namespace`,
/// `user_key`, `value` (a list state's an array, a timer's its timestamp) and `ttl_timestamp`.
#[allow(clippy::too_many_arguments)] // the fields of one dump line, each optional in its own way
pub fn values_from_json(
    meta: &StateMetaInfo,
    kind: StateKind,
    key_serializer: Option<&TypeSerializer>,
    key: Option<&serde_json::Value>,
    namespace: Option<&serde_json::Value>,
    user_key: Option<&serde_json::Value>,
    value: &serde_json::Value,
    ttl_timestamp: Option<i64>,
) -> Result<OwnedEntryValues, EncodeError> {
    let s = part_serializers(meta, kind, key_serializer)?;
    let part = |ser: Option<&TypeSerializer>, j: Option<&serde_json::Value>, what: &str| -> E<Option<Value>> {
        match ser {
            None => Ok(None),
            Some(ser) => {
                let j = j.ok_or_else(|| bad(format!("a {} entry needs a {what}", kind.as_str())))?;
                ser.value_from_json(j).map(Some).map_err(|e| within(what, e))
            }
        }
    };
    let key = part(s.key, key, "key")?;
    let namespace = part(s.namespace, namespace, "namespace")?;
    let user_key = part(s.user_key, user_key, "user_key")?;
    let value = match (kind, s.value) {
        (StateKind::Timer, _) => Value::Int(value.as_i64().ok_or_else(|| bad("a timer's value is its timestamp, an integer".into()))?),
        (StateKind::List, Some(e)) => {
            let items = value.as_array().ok_or_else(|| bad("a list state's value is an array".into()))?;
            Value::List(items.iter().enumerate().map(|(i, x)| e.value_from_json(x).map_err(|err| within(&format!("value / list element {i}"), err))).collect::<E<_>>()?)
        }
        (StateKind::Map, _) if value.is_null() => Value::Null,
        (_, Some(ser)) => ser.value_from_json(value).map_err(|e| within("value", e))?,
        (_, None) => return Err(bad("no value serializer".into())),
    };
    Ok(OwnedEntryValues { key, namespace, user_key, value, ttl_timestamp })
}
