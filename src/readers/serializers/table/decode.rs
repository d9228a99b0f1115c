//! Values of the table runtime's serializers as they stand in a state stream
//! (`formats/sql-serializers.md` § "Values").

use super::binary::{self, FieldSerializers, Section};
use super::logical_type::{decimal_is_compact, timestamp_is_compact};
use super::TableSerializer as T;
use crate::bytes::Cursor;
use crate::error::DecodeErrorKind;
use crate::model::value::Value;
use crate::readers::serializers::decode::Fail;

type F<T> = Result<T, Fail>;

fn corrupt(c: &Cursor<'_>, at: u64, msg: String) -> Fail {
    Fail::Corrupt(c.error_at(DecodeErrorKind::Invalid(msg), at))
}

/// `i32` length, then that many bytes (every binary-format serializer writes this).
fn section<'a>(c: &mut Cursor<'a>, what: &'static str) -> F<Section<'a>> {
    let at = c.position();
    let n = c.i32(what)?;
    let n = usize::try_from(n).map_err(|_| corrupt(c, at, format!("negative {what} {n}")))?;
    let base = c.position();
    Ok(Section::new(c.bytes(n, what)?, base))
}

/// Decodes one value of `t` at the cursor; `tail`: the value extends to the end of a frame.
pub(crate) fn decode(t: &T, c: &mut Cursor<'_>, depth: usize, tail: bool) -> F<Value> {
    let d = depth + 1;
    Ok(match t {
        T::RowData { types, fields, names } => {
            let s = section(c, "binary row length")?;
            binary::row(s, types, names.as_deref(), FieldSerializers { fields: Some(fields) }, d)?
        }
        T::BinaryRow { .. } => {
            let s = section(c, "binary row length")?;
            Value::opaque("org.apache.flink.table.data.binary.BinaryRowData".into(), s.bytes.to_vec())
        }
        T::StringData => {
            let s = section(c, "string length")?;
            Value::String(binary::utf8(s.bytes))
        }
        T::Decimal { precision, scale } => {
            if decimal_is_compact(*precision) {
                Value::BigDecimal(binary::decimal_text_i128(i128::from(c.i64("compact decimal")?), *scale))
            } else {
                let s = section(c, "decimal length")?;
                Value::BigDecimal(binary::decimal_text_bytes(s.bytes, *scale))
            }
        }
        T::Timestamp { precision } => {
            let at = c.position();
            let millis = c.i64("timestamp millis")?;
            let nanos = if timestamp_is_compact(*precision) { 0 } else { c.i32("timestamp nanos of millisecond")? };
            // The serializer alone does not say whether it is a TIMESTAMP or a TIMESTAMP_LTZ;
            // TimestampData prints as a local date-time.
            binary::timestamp(millis, nanos, false).map_err(|m| corrupt(c, at, m))?
        }
        T::Array { element } => {
            let s = section(c, "binary array length")?;
            binary::array(s, element, d)?
        }
        T::Map { key, value } => {
            let s = section(c, "binary map length")?;
            binary::map(s, key, value, d)?
        }
        T::RawValue(inner) => {
            let s = section(c, "raw value length")?;
            inner.decode_framed(s.bytes, s.base)?
        }
        T::External { internal, .. } => internal.decode_at(c, d, tail)?,
        T::LinkedList { element, null_mask } => {
            let n = c.count("linked list size", if *null_mask { 0 } else { element.min_len().max(1) })?;
            let nulls = if *null_mask {
                let mask = c.bytes(n.div_ceil(8), "linked list null mask")?;
                (0..n).map(|i| mask[i / 8] & (0x80 >> (i % 8)) != 0).collect()
            } else {
                vec![false; n]
            };
            let mut items = Vec::with_capacity(n.min(1024));
            for (i, null) in nulls.into_iter().enumerate() {
                items.push(if null {
                    Value::Null
                } else {
                    element.decode_at(c, d, false).map_err(|f| f.context(|| format!("list element {i}")))?
                });
            }
            Value::List(items)
        }
        T::SortedMap { key, value, .. } => {
            let n = c.count("sorted map size", key.min_len().max(1).saturating_add(1))?;
            let mut entries = Vec::with_capacity(n.min(1024));
            for i in 0..n {
                let k = key.decode_at(c, d, false).map_err(|f| f.context(|| format!("map key {i}")))?;
                let v = if c.bool("map value null flag")? {
                    Value::Null
                } else {
                    value.decode_at(c, d, false).map_err(|f| f.context(|| format!("map value {i}")))?
                };
                entries.push((k, v));
            }
            Value::Map(entries)
        }
        T::NullAwareMap(key, value) => {
            let n = c.count("map size", 2)?;
            let mut entries = Vec::with_capacity(n.min(1024));
            for i in 0..n {
                let k = if c.bool("map key null flag")? {
                    Value::Null
                } else {
                    key.decode_at(c, d, false).map_err(|f| f.context(|| format!("map key {i}")))?
                };
                let v = if c.bool("map value null flag")? {
                    Value::Null
                } else {
                    value.decode_at(c, d, false).map_err(|f| f.context(|| format!("map value {i}")))?
                };
                entries.push((k, v));
            }
            Value::Map(entries)
        }
        T::WindowKey(key) => {
            let window = c.i64("window key window")?;
            let k = key.decode_at(c, d, tail)?;
            Value::Struct { fields: vec![("window".into(), Value::Int(window)), ("key".into(), k)] }
        }
        T::TimeWindow => Value::TimeWindow { start: c.i64("window start")?, end: c.i64("window end")? },
        T::CountWindow => Value::Struct { fields: vec![("id".into(), Value::Int(c.i64("count window id")?))] },
        T::GlobalWindow | T::Null => {
            c.u8("placeholder byte")?;
            Value::Null
        }
        T::ListView(list) | T::MapView(list) => list.decode_at(c, d, tail)?,
        T::SortedLong => Value::Int(c.i64("sorted long")? ^ i64::MIN),
        T::RowDataKey(row) => row.decode_at(c, d, tail)?,
        T::Fields { names, fields } => {
            let mut out = Vec::with_capacity(fields.len());
            for (i, (name, f)) in names.iter().zip(fields).enumerate() {
                let last = i + 1 == fields.len();
                out.push(((*name).to_owned(), f.decode_at(c, d, tail && last).map_err(|e| e.context(|| format!("field {name}")))?));
            }
            Value::Struct { fields: out }
        }
    })
}

/// The checking walk (`check.rs`) of the binary-format serializers: `Some(Some(()))` where
/// [`decode`] gives a value with no opaque part (the cursor then where the decode leaves it),
/// `Some(None)` where it may not; `None` for the serializers walked elsewhere.
pub(crate) fn check(t: &T, c: &mut Cursor<'_>, d: usize) -> Option<Option<()>> {
    fn section<'a>(c: &mut Cursor<'a>) -> Option<Section<'a>> {
        let n = usize::try_from(c.i32("").ok()?).ok()?;
        let base = c.position();
        Some(Section::new(c.bytes(n, "").ok()?, base))
    }
    Some(match t {
        T::RowData { types, fields, .. } => section(c).and_then(|s| binary::check_row(s, types, FieldSerializers { fields: Some(fields) }, d)),
        T::StringData => section(c).map(drop),
        T::Decimal { precision, .. } => {
            if decimal_is_compact(*precision) {
                c.skip(8, "").ok()
            } else {
                section(c).map(drop)
            }
        }
        T::Timestamp { precision } => (|| {
            let millis = c.i64("").ok()?;
            let nanos = if timestamp_is_compact(*precision) { 0 } else { c.i32("").ok()? };
            binary::timestamp(millis, nanos, false).ok().map(drop)
        })(),
        _ => return None,
    })
}

/// Fewest bytes one value takes.
pub(crate) fn min_len(t: &T) -> usize {
    match t {
        T::RowData { .. } | T::BinaryRow { .. } | T::StringData | T::Array { .. } | T::Map { .. } | T::RawValue(_) => 4,
        T::Decimal { precision, .. } => {
            if decimal_is_compact(*precision) {
                8
            } else {
                4
            }
        }
        T::Timestamp { precision } => {
            if timestamp_is_compact(*precision) {
                8
            } else {
                12
            }
        }
        T::External { internal, .. } | T::ListView(internal) | T::MapView(internal) => internal.min_len(),
        T::LinkedList { .. } | T::SortedMap { .. } | T::NullAwareMap(..) => 4,
        T::WindowKey(k) => 8usize.saturating_add(k.min_len()),
        T::TimeWindow => 16,
        T::CountWindow | T::SortedLong => 8,
        T::GlobalWindow | T::Null => 1,
        T::RowDataKey(r) => r.min_len(),
        T::Fields { fields, .. } => fields.iter().fold(0usize, |a, f| a.saturating_add(f.min_len())),
    }
}
