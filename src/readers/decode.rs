//! Value-level decoding every state reader shares: a value with the exact bytes it took, the TTL
//! wrapper, list values in the RocksDB layout, timers. The readers of the keyed formats
//! (`keyed`), RocksDB column families (`rocksdb`), operator state (`operator`) and the changelog
//! replay (`changelog`) build on these; none of them imports another reader's internals.

use crate::bytes::Cursor;
use crate::consts::LIST_DELIMITER;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::model::value::Value;
use crate::readers::meta::StateMetaInfo;
use crate::readers::serializers::TypeSerializer;

type R<T> = std::result::Result<T, DecodeError>;

/// Decodes one value and returns it with the exact bytes it took.
pub(crate) fn decode_span(ser: &TypeSerializer, c: &mut Cursor<'_>) -> R<(Value, Vec<u8>)> {
    decode_slice(ser, c).map(|(v, b)| (v, b.to_vec()))
}

/// [`decode_span`] without copying the bytes: where they lie in `c`'s data.
pub(crate) fn decode_slice<'a>(ser: &TypeSerializer, c: &mut Cursor<'a>) -> R<(Value, &'a [u8])> {
    let at = c.position();
    let v = ser.decode(c)?;
    Ok((v, c.consumed_since(at)))
}

/// Decodes a value that fills the rest of `c` exactly; what its serializer cannot interpret stays
/// opaque bytes, corruption is an error.
pub(crate) fn decode_rest(ser: &TypeSerializer, c: &mut Cursor<'_>) -> R<Value> {
    ser.decode_rest(c)
}

/// Decodes a value, unwrapping a TTL wrapper into (value, last-access timestamp).
pub(crate) fn decode_value(ser: &TypeSerializer, c: &mut Cursor<'_>) -> R<(Value, Option<i64>)> {
    match ser.ttl_inner() {
        Some(inner) => {
            let ts = c.i64("TTL last-access timestamp")?;
            Ok((inner.decode(c)?, Some(ts)))
        }
        None => Ok((ser.decode(c)?, None)),
    }
}

/// Like [`decode_value`] for a value that fills the rest of `c`; opaque serializers keep the bytes.
pub(crate) fn decode_value_rest(ser: &TypeSerializer, c: &mut Cursor<'_>) -> R<(Value, Option<i64>)> {
    let (inner, ts) = match ser.ttl_inner() {
        Some(inner) => (inner, Some(c.i64("TTL last-access timestamp")?)),
        None => (ser, None),
    };
    Ok((decode_rest(inner, c)?, ts))
}

/// Decodes a value that must fill `c` exactly (no opaque fallback: the caller needs its end).
pub(crate) fn decode_exact(ser: &TypeSerializer, c: &mut Cursor<'_>, what: &'static str) -> R<Value> {
    let v = ser.decode(c)?;
    c.expect_end(what)?;
    Ok(v)
}

/// A list value in the RocksDB layout (elements joined by [`LIST_DELIMITER`]), which fills the
/// rest of `c`: calls `each` with every element, its TTL timestamp and the bytes it took.
pub(crate) fn for_each_delimited(elem: &TypeSerializer, c: &mut Cursor<'_>, mut each: impl FnMut(Value, Option<i64>, &[u8])) -> R<()> {
    while !c.is_empty() {
        let at = c.position();
        let (item, ttl) = decode_value(elem, c)?;
        each(item, ttl, c.consumed_since(at));
        if !c.is_empty() {
            let at = c.position();
            let d = c.u8("list delimiter")?;
            if d != LIST_DELIMITER {
                return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "list delimiter", value: d.into() }, at));
            }
        }
    }
    Ok(())
}

/// The checking twins of the functions above ([`TypeSerializer::check_at`]): `Some` only where
/// the decode would give a value with no opaque part, the cursor then where the decode leaves
/// it; `None` says "decode to learn more" (the caller falls back to the decode).
pub(crate) mod check {
    use super::*;

    /// [`decode_slice`](super::decode_slice) without the value: the bytes it took.
    pub(crate) fn slice<'a>(ser: &TypeSerializer, c: &mut Cursor<'a>) -> Option<&'a [u8]> {
        let at = c.position();
        ser.check_at(c, 0, false)?;
        Some(c.consumed_since(at))
    }

    /// [`decode_value`](super::decode_value) without the value: the TTL timestamp.
    pub(crate) fn value(ser: &TypeSerializer, c: &mut Cursor<'_>) -> Option<Option<i64>> {
        match ser.ttl_inner() {
            Some(inner) => {
                let ts = c.i64("").ok()?;
                inner.check_at(c, 0, false)?;
                Some(Some(ts))
            }
            None => ser.check_at(c, 0, false).map(|_| None),
        }
    }

    /// [`decode_rest`](super::decode_rest) without the value.
    pub(crate) fn rest(ser: &TypeSerializer, c: &mut Cursor<'_>) -> Option<()> {
        ser.check_at(c, 0, true)?;
        c.is_empty().then_some(())
    }

    /// [`decode_value_rest`](super::decode_value_rest) without the value: the TTL timestamp.
    pub(crate) fn value_rest(ser: &TypeSerializer, c: &mut Cursor<'_>) -> Option<Option<i64>> {
        let (inner, ts) = match ser.ttl_inner() {
            Some(inner) => (inner, Some(c.i64("").ok()?)),
            None => (ser, None),
        };
        rest(inner, c)?;
        Some(ts)
    }

    /// [`for_each_delimited`](super::for_each_delimited) without the values: the largest TTL
    /// timestamp.
    pub(crate) fn delimited(elem: &TypeSerializer, c: &mut Cursor<'_>) -> Option<Option<i64>> {
        let mut ttl = None;
        while !c.is_empty() {
            ttl = ttl.max(value(elem, c)?);
            if !c.is_empty() && c.u8("").ok()? != LIST_DELIMITER {
                return None;
            }
        }
        Some(ttl)
    }

    /// [`decode_timer`](super::decode_timer) with the namespace checked, not built: timestamp,
    /// key, and the bytes the key and the namespace took.
    pub(crate) fn timer<'a>(ser: &TypeSerializer, c: &mut Cursor<'a>) -> Option<(i64, Value, &'a [u8], &'a [u8])> {
        let (key_ser, ns_ser) = ser.timer_key_namespace()?;
        let timestamp = c.i64("").ok()? ^ i64::MIN;
        let (key, key_bytes) = super::decode_slice(key_ser, c).ok()?;
        let ns_bytes = slice(ns_ser, c)?;
        Some((timestamp, key, key_bytes, ns_bytes))
    }
}

/// A decoded timer: timestamp, key, namespace, and the bytes the key and the namespace took.
pub(crate) type Timer<'a> = (i64, Value, Value, &'a [u8], &'a [u8]);

/// `TimerSerializer`: sign-flipped `i64` timestamp, key, namespace.
pub(crate) fn decode_timer<'a>(ser: &TypeSerializer, c: &mut Cursor<'a>) -> R<Timer<'a>> {
    let (key_ser, ns_ser) = ser
        .timer_key_namespace()
        .ok_or_else(|| c.error(DecodeErrorKind::Invalid(format!("timer state with serializer {}", ser.class_name()))))?;
    let timestamp = c.i64("timer timestamp")? ^ i64::MIN;
    let (key, key_bytes) = decode_slice(key_ser, c)?;
    let (ns, ns_bytes) = decode_slice(ns_ser, c)?;
    Ok((timestamp, key, ns, key_bytes, ns_bytes))
}

/// An error about no particular place in the bytes.
pub(crate) fn unplaced(msg: String) -> DecodeError {
    DecodeError::unplaced(DecodeErrorKind::Invalid(msg))
}

/// An error about a state's registration as a whole: at its meta info, where that is known.
pub(crate) fn at_state(meta: &StateMetaInfo, msg: String) -> DecodeError {
    match meta.position {
        Some(p) => DecodeError::at(DecodeErrorKind::Invalid(msg), p),
        None => unplaced(msg),
    }
}
