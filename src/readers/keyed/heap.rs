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
use crate::readers::decode::{check, decode_slice, decode_timer, decode_value, Timer};
use crate::readers::serializers::TypeSerializer;

use super::decoder::{KeyedDecoder, StateDecoder};

type R<T> = std::result::Result<T, DecodeError>;

/// How a heap entry's namespace, user keys and values are read: decoded ([`Decode`]), or checked
/// with placeholders left in the entry ([`Check`], `ValueParts::Key`). One walk over the format
/// serves both, so the two cannot drift apart.
trait PartReader {
    /// Why a read stopped: the decode's error, or the check's "decode it instead".
    type Fail;
    /// Whether values are built (else: placeholders).
    const BUILDS: bool;
    /// Bytes of a shape the format does not allow.
    fn invalid(c: &Cursor<'_>, what: &str) -> Self::Fail;
    /// A read both ways make alike (the key, a count, a flag).
    fn lift<T>(r: R<T>) -> Result<T, Self::Fail>;
    /// A namespace or user key: its value and bytes.
    fn slice<'a>(ser: &TypeSerializer, c: &mut Cursor<'a>) -> Result<(Value, &'a [u8]), Self::Fail>;
    /// A value and its TTL timestamp.
    fn value(ser: &TypeSerializer, c: &mut Cursor<'_>) -> Result<(Value, Option<i64>), Self::Fail>;
    /// A timer: timestamp, key, namespace, and the key's and namespace's bytes.
    fn timer<'a>(ser: &TypeSerializer, c: &mut Cursor<'a>) -> Result<Timer<'a>, Self::Fail>;
}

/// Every part decoded.
struct Decode;

impl PartReader for Decode {
    type Fail = DecodeError;
    const BUILDS: bool = true;
    fn invalid(c: &Cursor<'_>, what: &str) -> DecodeError {
        c.error(DecodeErrorKind::Invalid(what.into()))
    }
    fn lift<T>(r: R<T>) -> R<T> {
        r
    }
    fn slice<'a>(ser: &TypeSerializer, c: &mut Cursor<'a>) -> R<(Value, &'a [u8])> {
        decode_slice(ser, c)
    }
    fn value(ser: &TypeSerializer, c: &mut Cursor<'_>) -> R<(Value, Option<i64>)> {
        decode_value(ser, c)
    }
    fn timer<'a>(ser: &TypeSerializer, c: &mut Cursor<'a>) -> R<Timer<'a>> {
        decode_timer(ser, c)
    }
}

/// Namespace, user keys and values checked, not built: [`Value::Null`] in their place.
struct Check;

impl PartReader for Check {
    type Fail = ();
    const BUILDS: bool = false;
    fn invalid(_: &Cursor<'_>, _: &str) {}
    fn lift<T>(r: R<T>) -> Result<T, ()> {
        r.map_err(drop)
    }
    fn slice<'a>(ser: &TypeSerializer, c: &mut Cursor<'a>) -> Result<(Value, &'a [u8]), ()> {
        check::slice(ser, c).map(|b| (Value::Null, b)).ok_or(())
    }
    fn value(ser: &TypeSerializer, c: &mut Cursor<'_>) -> Result<(Value, Option<i64>), ()> {
        check::value(ser, c).map(|ttl| (Value::Null, ttl)).ok_or(())
    }
    fn timer<'a>(ser: &TypeSerializer, c: &mut Cursor<'a>) -> Result<Timer<'a>, ()> {
        check::timer(ser, c).map(|(timestamp, key, key_bytes, ns_bytes)| (timestamp, key, Value::Null, key_bytes, ns_bytes)).ok_or(())
    }
}

impl KeyedDecoder {
    /// Decodes one stored entry of the heap checkpoint format into `out` (appended): one entry,
    /// or one per map entry (each with the position of its user key). On an error `out` may
    /// hold some of them: the caller drops them.
    pub(super) fn heap_entry(&self, d: &StateDecoder, kg: u32, c: &mut Cursor<'_>, out: &mut VecDeque<Entry>) -> R<()> {
        if self.values == ValueParts::Key {
            // Checked, not built; anything the check does not vouch for is decoded below.
            let mut checked = c.clone();
            let before = out.len();
            if self.heap_walk::<Check>(d, kg, &mut checked, out).is_ok() {
                *c = checked;
                return Ok(());
            }
            out.truncate(before);
        }
        self.heap_walk::<Decode>(d, kg, c, out)
    }

    /// One stored entry, its parts read as `P` reads them.
    fn heap_walk<P: PartReader>(&self, d: &StateDecoder, kg: u32, c: &mut Cursor<'_>, out: &mut VecDeque<Entry>) -> Result<(), P::Fail> {
        if d.kind == StateKind::Timer {
            let (timestamp, tkey, tns, key_bytes, ns_bytes) = P::timer(&d.value, c)?;
            let raw = RawEntry { key: self.key_bytes(key_bytes), namespace: self.other_bytes(ns_bytes), user_key: None, value: Vec::new(), stored_key: None };
            out.push_back(self.entry(d, kg, tkey, tns, None, Value::Int(timestamp), None, raw));
            return Ok(());
        }
        let ns_ser = d.namespace.as_ref().ok_or_else(|| P::invalid(c, "no namespace serializer"))?;
        let (ns_value, ns_bytes) = P::slice(ns_ser, c)?;
        let (key_value, key_bytes) = P::lift(decode_slice(&self.key_serializer, c))?;
        // Only the parts asked for are copied (`RawParts`).
        let (key_bytes, ns_bytes) = (self.key_bytes(key_bytes), self.other_bytes(ns_bytes));
        let all = self.raw.all();
        match d.kind {
            StateKind::Map => {
                let (uk_ser, uv_ser) = d.value.map_key_value().ok_or_else(|| P::invalid(c, "map state without a map serializer"))?;
                let n = P::lift(c.count("map size", 1))?;
                out.reserve(n);
                for _ in 0..n {
                    let at = c.position();
                    let (uk, uk_bytes) = P::slice(uk_ser, c)?;
                    let null_at = c.position();
                    let is_null = P::lift(c.bool("map value null flag"))?;
                    let (value, ttl) = if is_null { (Value::Null, None) } else { P::value(uv_ser, c)? };
                    let value_bytes = self.other_bytes(c.consumed_since(null_at));
                    let raw = RawEntry { key: key_bytes.clone(), namespace: ns_bytes.clone(), user_key: all.then(|| uk_bytes.to_vec()), value: value_bytes, stored_key: None };
                    let mut e = self.entry(d, kg, key_value.clone(), ns_value.clone(), Some(uk), value, ttl, raw);
                    e.origin.position = c.frame().position(at);
                    out.push_back(e);
                }
                Ok(())
            }
            StateKind::List => {
                let elem = d.value.list_element().ok_or_else(|| P::invalid(c, "list state without a list serializer"))?;
                let n = P::lift(c.count("list size", 1))?;
                let mut items = Vec::with_capacity(if P::BUILDS { n } else { 0 });
                let mut raw = Vec::new();
                let mut ttl = None;
                for i in 0..n {
                    let at = c.position();
                    let (item, t) = P::value(elem, c)?;
                    if all {
                        if i > 0 {
                            raw.push(LIST_DELIMITER);
                        }
                        raw.extend_from_slice(c.consumed_since(at));
                    }
                    ttl = ttl.max(t);
                    if P::BUILDS {
                        items.push(item);
                    }
                }
                let value = if P::BUILDS { Value::List(items) } else { Value::Null };
                out.push_back(self.entry(d, kg, key_value, ns_value, None, value, ttl, RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: raw, stored_key: None }));
                Ok(())
            }
            _ => {
                let at = c.position();
                let (value, ttl) = P::value(&d.value, c)?;
                let raw = self.other_bytes(c.consumed_since(at));
                out.push_back(self.entry(d, kg, key_value, ns_value, None, value, ttl, RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: raw, stored_key: None }));
                Ok(())
            }
        }
    }
}
