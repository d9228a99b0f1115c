//! The heap backend's checkpoint format of one stored entry: (namespace, key, value) as the
//! state's serializers write them, a map state's whole map per key, a list state's whole list
//! (`StateTableByKeyGroupReaders`, `CopyOnWriteStateMapSnapshot`). Spec:
//! `formats/heap-checkpoint.md`.

use std::collections::VecDeque;

use crate::bytes::Cursor;
use crate::consts::LIST_DELIMITER;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::model::value::Value;
use crate::model::{Entry, RawEntry, StateKind, ValueParts};
use crate::readers::decode::{check, decode_slice, decode_timer, decode_value};

use super::decoder::{KeyedDecoder, StateDecoder};

type R<T> = std::result::Result<T, DecodeError>;

impl KeyedDecoder {
    /// Decodes one stored entry of the heap checkpoint format into `out` (appended): one entry,
    /// or one per map entry (each with the position of its user key). On an error `out` may
    /// hold some of them: the caller drops them.
    pub(super) fn heap_entry(&self, d: &StateDecoder, kg: u32, c: &mut Cursor<'_>, out: &mut VecDeque<Entry>) -> R<()> {
        if self.values == ValueParts::Key {
            // Checked, not built; anything the check does not vouch for is decoded below.
            let mut checked = c.clone();
            let before = out.len();
            if self.checked_heap_entry(d, kg, &mut checked, out).is_some() {
                *c = checked;
                return Ok(());
            }
            out.truncate(before);
        }
        if d.kind == StateKind::Timer {
            let (timestamp, tkey, tns, key_bytes, ns_bytes) = decode_timer(&d.value, c)?;
            let raw = RawEntry { key: self.key_bytes(key_bytes), namespace: self.other_bytes(ns_bytes), user_key: None, value: Vec::new(), stored_key: None };
            out.push_back(self.entry(d, kg, tkey, tns, None, Value::Int(timestamp), None, raw));
            return Ok(());
        }
        let ns_ser = d.namespace.as_ref().ok_or_else(|| c.error(DecodeErrorKind::Invalid("no namespace serializer".into())))?;
        let (ns_value, ns_bytes) = decode_slice(ns_ser, c)?;
        let (key_value, key_bytes) = decode_slice(&self.key_serializer, c)?;
        // Only the parts asked for are copied (`RawParts`).
        let (key_bytes, ns_bytes) = (self.key_bytes(key_bytes), self.other_bytes(ns_bytes));
        let all = self.raw.all();
        match d.kind {
            StateKind::Map => {
                let (uk_ser, uv_ser) = d.value.map_key_value().ok_or_else(|| c.error(DecodeErrorKind::Invalid("map state without a map serializer".into())))?;
                let n = c.count("map size", 1)?;
                out.reserve(n);
                for _ in 0..n {
                    let at = c.position();
                    let (uk, uk_bytes) = decode_slice(uk_ser, c)?;
                    let null_at = c.position();
                    let is_null = c.bool("map value null flag")?;
                    let (value, ttl) = if is_null { (Value::Null, None) } else { decode_value(uv_ser, c)? };
                    let value_bytes = self.other_bytes(c.consumed_since(null_at));
                    let mut e = self.entry(
                        d,
                        kg,
                        key_value.clone(),
                        ns_value.clone(),
                        Some(uk),
                        value,
                        ttl,
                        RawEntry { key: key_bytes.clone(), namespace: ns_bytes.clone(), user_key: all.then(|| uk_bytes.to_vec()), value: value_bytes, stored_key: None },
                    );
                    e.origin.position = c.frame().position(at);
                    out.push_back(e);
                }
                Ok(())
            }
            StateKind::List => {
                let elem = d.value.list_element().ok_or_else(|| c.error(DecodeErrorKind::Invalid("list state without a list serializer".into())))?;
                let n = c.count("list size", 1)?;
                let mut items = Vec::with_capacity(n);
                let mut raw = Vec::new();
                let mut ttl = None;
                for i in 0..n {
                    let at = c.position();
                    let (item, t) = decode_value(elem, c)?;
                    if all {
                        if i > 0 {
                            raw.push(LIST_DELIMITER);
                        }
                        raw.extend_from_slice(c.consumed_since(at));
                    }
                    ttl = ttl.max(t);
                    items.push(item);
                }
                out.push_back(self.entry(d, kg, key_value, ns_value, None, Value::List(items), ttl, RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: raw, stored_key: None }));
                Ok(())
            }
            _ => {
                let at = c.position();
                let (value, ttl) = decode_value(&d.value, c)?;
                let raw = self.other_bytes(c.consumed_since(at));
                out.push_back(self.entry(d, kg, key_value, ns_value, None, value, ttl, RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: raw, stored_key: None }));
                Ok(())
            }
        }
    }

    /// [`KeyedDecoder::heap_entry`] with only the key built ([`ValueParts::Key`]): the same
    /// entries but for the placeholders, or `None` where the decode must tell (corrupt bytes,
    /// opaque parts).
    fn checked_heap_entry(&self, d: &StateDecoder, kg: u32, c: &mut Cursor<'_>, out: &mut VecDeque<Entry>) -> Option<()> {
        if d.kind == StateKind::Timer {
            let (timestamp, tkey, key_bytes, ns_bytes) = check::timer(&d.value, c)?;
            let raw = RawEntry { key: self.key_bytes(key_bytes), namespace: self.other_bytes(ns_bytes), user_key: None, value: Vec::new(), stored_key: None };
            out.push_back(self.entry(d, kg, tkey, Value::Null, None, Value::Int(timestamp), None, raw));
            return Some(());
        }
        let ns_ser = d.namespace.as_ref()?;
        let ns_bytes = check::slice(ns_ser, c)?;
        let (key_value, key_bytes) = decode_slice(&self.key_serializer, c).ok()?;
        let (key_bytes, ns_bytes) = (self.key_bytes(key_bytes), self.other_bytes(ns_bytes));
        let all = self.raw.all();
        match d.kind {
            StateKind::Map => {
                let (uk_ser, uv_ser) = d.value.map_key_value()?;
                let n = c.count("", 1).ok()?;
                out.reserve(n);
                for _ in 0..n {
                    let at = c.position();
                    let uk_bytes = check::slice(uk_ser, c)?;
                    let null_at = c.position();
                    let ttl = if c.bool("").ok()? { None } else { check::value(uv_ser, c)? };
                    let value_bytes = self.other_bytes(c.consumed_since(null_at));
                    let raw = RawEntry { key: key_bytes.clone(), namespace: ns_bytes.clone(), user_key: all.then(|| uk_bytes.to_vec()), value: value_bytes, stored_key: None };
                    let mut e = self.entry(d, kg, key_value.clone(), Value::Null, Some(Value::Null), Value::Null, ttl, raw);
                    e.origin.position = c.frame().position(at);
                    out.push_back(e);
                }
                Some(())
            }
            StateKind::List => {
                let elem = d.value.list_element()?;
                let n = c.count("", 1).ok()?;
                let mut raw = Vec::new();
                let mut ttl = None;
                for i in 0..n {
                    let at = c.position();
                    ttl = ttl.max(check::value(elem, c)?);
                    if all {
                        if i > 0 {
                            raw.push(LIST_DELIMITER);
                        }
                        raw.extend_from_slice(c.consumed_since(at));
                    }
                }
                out.push_back(self.entry(d, kg, key_value, Value::Null, None, Value::Null, ttl, RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: raw, stored_key: None }));
                Some(())
            }
            _ => {
                let at = c.position();
                let ttl = check::value(&d.value, c)?;
                let raw = self.other_bytes(c.consumed_since(at));
                out.push_back(self.entry(d, kg, key_value, Value::Null, None, Value::Null, ttl, RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: raw, stored_key: None }));
                Some(())
            }
        }
    }
}
