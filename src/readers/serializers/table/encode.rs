//! Values of the table runtime's serializers back into the bytes Flink writes: the inverse of
//! `decode.rs` and `binary.rs` (`formats/sql-serializers.md` § "Writing").
//!
//! A `RowData` is written as `RowDataSerializer.toBinaryRow` and `BinaryRowWriter` lay it out:
//! the header byte (the row kind), the null bits, one 8-byte slot per field, then the variable
//! part, every piece of it padded with zeros to a multiple of 8 bytes. Strings and bytes of at
//! most 7 bytes stand in their slot; a non-compact `DECIMAL` takes 16 bytes of the variable part
//! (its unscaled bytes first) and a non-compact `TIMESTAMP` 8 (its milliseconds, the slot holding
//! the offset and the nanoseconds of the millisecond), null or not (`BinaryRowWriter` keeps the
//! room for an update in place). Arrays are `BinaryArrayWriter`'s (4-byte count, null bits in
//! 4-byte words, elements of 1, 2, 4 or 8 bytes, the fixed part padded to 8 bytes), maps
//! `BinaryMapData.valueOf`'s (the key array's size, the key array, the value array).
//!
//! Multi-byte numbers inside the binary formats are little-endian (`MemorySegment` on every
//! machine Flink runs on); the lengths and numbers the serializers write around them are
//! big-endian (`DataOutputView`).

use super::binary::{array_header_width, row_bit_set_width};
use super::logical_type::{decimal_is_compact, timestamp_is_compact, LogicalType, TypeKind};
use super::TableSerializer as T;
use crate::bytes::DataOutput;
use crate::model::value::{days_from_civil, RowKind, Value};
use crate::readers::serializers::encode::{bad, field, mismatch, parse_big_integer, put_count, unsupported, EncodeError, Within};
use crate::readers::serializers::TypeSerializer;

type E<T> = Result<T, EncodeError>;

/// Bits of a row header (`BinaryRowData.HEADER_SIZE_IN_BITS`).
const HEADER_BITS: usize = 8;

/// Appends `v` as the table serializer `t` writes it.
pub(crate) fn encode(t: &T, v: &Value, out: &mut Vec<u8>, depth: usize) -> E<()> {
    let d = depth + 1;
    match t {
        T::RowData { types, fields, .. } => {
            let row = row_bytes(types, Some(fields), v, d)?;
            put_section(&row, out)
        }
        // Its values are opaque bytes (written as they came, before this is reached).
        T::BinaryRow { .. } => Err(unsupported(
            "values of a BinaryRowDataSerializer (no field types in its snapshot) can only be written as the opaque bytes they were read as".into(),
        )),
        T::StringData => match v {
            Value::String(s) => put_section(s.as_bytes(), out),
            other => Err(mismatch("a string", other)),
        },
        T::Decimal { precision, scale } => {
            let Value::BigDecimal(text) = v else { return Err(mismatch("a decimal", v)) };
            let unscaled = unscaled_bytes(text, *scale, *precision)?;
            if decimal_is_compact(*precision) {
                out.put_i64(compact(&unscaled));
                Ok(())
            } else {
                put_section(&unscaled, out)
            }
        }
        T::Timestamp { precision } => {
            let (millis, nanos) = timestamp_parts(v)?;
            out.put_i64(millis);
            if !timestamp_is_compact(*precision) {
                out.put_i32(nanos);
            }
            Ok(())
        }
        T::Array { element } => {
            let a = array_bytes(element, v, d)?;
            put_section(&a, out)
        }
        T::Map { key, value } => {
            let m = map_bytes(key, value, v, d)?;
            put_section(&m, out)
        }
        T::RawValue(inner) => {
            let mut b = Vec::new();
            inner.encode_at(v, &mut b, d)?;
            put_section(&b, out)
        }
        T::External { internal, .. } | T::ListView(internal) | T::MapView(internal) | T::RowDataKey(internal) => internal.encode_at(v, out, d),
        T::LinkedList { element, null_mask } => {
            let Value::List(items) = v else { return Err(mismatch("a list", v)) };
            put_count(items.len(), out)?;
            if *null_mask {
                // MaskUtils.writeMask: one bit per element, most significant first.
                let mut mask = vec![0u8; items.len().div_ceil(8)];
                for (i, item) in items.iter().enumerate() {
                    if matches!(item, Value::Null) {
                        mask[i / 8] |= 0x80 >> (i % 8);
                    }
                }
                out.extend_from_slice(&mask);
            }
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Null if *null_mask => {}
                    Value::Null => return Err(bad(format!("list element {i}: this LinkedListSerializer (no null mask) cannot write a null element"))),
                    item => element.encode_at(item, out, d).within(|| format!("list element {i}"))?,
                }
            }
            Ok(())
        }
        T::SortedMap { key, value, .. } => {
            let Value::Map(entries) = v else { return Err(mismatch("a map", v)) };
            put_count(entries.len(), out)?;
            for (i, (k, x)) in entries.iter().enumerate() {
                key.encode_at(k, out, d).within(|| format!("map key {i}"))?;
                match x {
                    Value::Null => out.put_bool(true),
                    x => {
                        out.put_bool(false);
                        value.encode_at(x, out, d).within(|| format!("map value {i}"))?;
                    }
                }
            }
            Ok(())
        }
        T::NullAwareMap(key, value) => {
            let Value::Map(entries) = v else { return Err(mismatch("a map", v)) };
            put_count(entries.len(), out)?;
            for (i, (k, x)) in entries.iter().enumerate() {
                for (part, ser, what) in [(k, key, "map key"), (x, value, "map value")] {
                    match part {
                        Value::Null => out.put_bool(true),
                        part => {
                            out.put_bool(false);
                            ser.encode_at(part, out, d).within(|| format!("{what} {i}"))?;
                        }
                    }
                }
            }
            Ok(())
        }
        T::WindowKey(key) => {
            let Value::Struct { fields } = v else { return Err(mismatch("a window key {window, key}", v)) };
            let Value::Int(window) = field(fields, "window")? else { return Err(bad("window key: window must be an integer".into())) };
            out.put_i64(*window);
            key.encode_at(field(fields, "key")?, out, d).within(|| "key".into())
        }
        T::TimeWindow => match v {
            Value::TimeWindow { start, end } => {
                out.put_i64(*start);
                out.put_i64(*end);
                Ok(())
            }
            other => Err(mismatch("a time window", other)),
        },
        T::CountWindow => {
            let Value::Struct { fields } = v else { return Err(mismatch("a count window {id}", v)) };
            let Value::Int(id) = field(fields, "id")? else { return Err(bad("count window: id must be an integer".into())) };
            out.put_i64(*id);
            Ok(())
        }
        T::GlobalWindow | T::Null => match v {
            Value::Null => {
                out.put_u8(0);
                Ok(())
            }
            other => Err(mismatch("null", other)),
        },
        T::SortedLong => match v {
            Value::Int(i) => {
                out.put_i64(i ^ i64::MIN);
                Ok(())
            }
            other => Err(mismatch("a long", other)),
        },
        T::Fields { names, fields } => {
            let Value::Struct { fields: values } = v else { return Err(mismatch("a struct", v)) };
            for (name, f) in names.iter().zip(fields) {
                f.encode_at(field(values, name)?, out, d).within(|| format!("field {name}"))?;
            }
            Ok(())
        }
    }
}

/// `i32` length (big-endian), then the bytes.
fn put_section(b: &[u8], out: &mut Vec<u8>) -> E<()> {
    out.put_len_prefixed(b).map_err(bad)
}

fn put_le(buf: &mut [u8], at: usize, b: &[u8]) {
    buf[at..at + b.len()].copy_from_slice(b);
}

/// `offsetAndSize`: the offset in the high, the size in the low 32 bits.
fn offset_and_size(offset: usize, size: usize) -> E<[u8; 8]> {
    let o = u32::try_from(offset).map_err(|_| bad(format!("a binary row of more than {} bytes", u32::MAX)))?;
    let s = u32::try_from(size).map_err(|_| bad(format!("a field of more than {} bytes", u32::MAX)))?;
    Ok(((u64::from(o) << 32) | u64::from(s)).to_le_bytes())
}

/// `writeSegmentsToVarLenPart` / `writeBytesToVarLenPart`: the bytes at the end of `buf`, padded
/// with zeros to 8 bytes; their offset and size in the slot.
fn put_var(buf: &mut Vec<u8>, slot: usize, b: &[u8]) -> E<()> {
    let offset = buf.len();
    let word = offset_and_size(offset, b.len())?;
    buf.extend_from_slice(b);
    buf.resize(offset + b.len().next_multiple_of(8), 0);
    put_le(buf, slot, &word);
    Ok(())
}

/// `writeBytes`: at most 7 bytes in the slot itself (the highest bit set, the length in bits
/// 56–62), longer ones in the variable part.
fn put_bytes(buf: &mut Vec<u8>, slot: usize, b: &[u8]) -> E<()> {
    if b.len() <= 7 {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        w[7] = 0x80 | b.len() as u8;
        put_le(buf, slot, &w);
        Ok(())
    } else {
        put_var(buf, slot, b)
    }
}

/// The bytes of a `BinaryRowData` of `types` holding the row `v` (`sers`: the row's field
/// serializers where its snapshot stores them, for raw and nested row fields).
pub(crate) fn row_bytes(types: &[LogicalType], sers: Option<&[TypeSerializer]>, v: &Value, depth: usize) -> E<Vec<u8>> {
    if depth > super::binary::MAX_NESTING {
        return Err(bad(format!("rows nested deeper than {} levels", super::binary::MAX_NESTING)));
    }
    let Value::Row { kind, fields } = v else { return Err(mismatch("a row", v)) };
    let arity = types.len();
    if fields.len() != arity {
        return Err(bad(format!("a row of {} fields, the row type has {arity}", fields.len())));
    }
    let width = row_bit_set_width(arity);
    let mut buf = vec![0u8; width + 8 * arity];
    buf[0] = kind_byte(*kind);
    for (i, (ty, (name, x))) in types.iter().zip(fields).enumerate() {
        let slot = width + 8 * i;
        let ser = sers.and_then(|s| s.get(i));
        let r = match x {
            // A data view placeholder decodes as null: written as the set field it was.
            Value::Null if raw_writes_null(ty, ser) => put_value(&mut buf, slot, ty, ser, x, depth),
            Value::Null => {
                let bit = i + HEADER_BITS;
                buf[bit / 8] |= 1 << (bit % 8);
                null_in_row(&mut buf, slot, ty)
            }
            x => put_value(&mut buf, slot, ty, ser, x, depth),
        };
        r.within(|| format!("field {name} ({})", ty.summary()))?;
    }
    Ok(buf)
}

fn kind_byte(k: RowKind) -> u8 {
    k.to_byte()
}

/// Whether `ty` is a `RAW` field of a data view placeholder: the table runtime's
/// `NullSerializer`, whose one zero byte decodes as null. Flink's accumulators always hold the
/// view there (the field is set, one byte long); a raw value of any other serializer that
/// decodes as null (a `StringSerializer`'s null) was a null field (null bit set), as real
/// Flink's CEP event rows show.
fn raw_writes_null(ty: &LogicalType, ser: Option<&TypeSerializer>) -> bool {
    matches!(ty.storage().kind, TypeKind::Raw { .. })
        && matches!(ser.and_then(TypeSerializer::table).and_then(T::raw_inner).and_then(TypeSerializer::table), Some(T::Null))
}

/// `BinaryRowWriter`'s null of a type: a non-compact `DECIMAL` or `TIMESTAMP` keeps its room in
/// the variable part (zeros; the slot holds its offset and size 0), every other type a zero slot.
/// That is the planner's generated code (`binaryWriterWriteNull`), which writes every key;
/// `RowDataSerializer.toBinaryRow` of a non-binary row writes a plain null instead (the same
/// value to Flink, other bytes; the decoded value cannot tell which one was written).
fn null_in_row(buf: &mut Vec<u8>, slot: usize, ty: &LogicalType) -> E<()> {
    let room = match &ty.storage().kind {
        TypeKind::Decimal { precision, .. } if !decimal_is_compact(*precision) => 16,
        TypeKind::Timestamp { precision, .. } | TypeKind::TimestampLtz { precision, .. } if !timestamp_is_compact(*precision) => 8,
        _ => return Ok(()),
    };
    let offset = buf.len();
    buf.resize(offset + room, 0);
    put_le(buf, slot, &offset_and_size(offset, 0)?);
    Ok(())
}

/// Writes the non-null value `v` of type `ty` into the slot (8 bytes in a row, the element's
/// width in an array) at `slot` of `buf` (a row or an array being built), its variable-length
/// bytes appended to `buf`.
fn put_value(buf: &mut Vec<u8>, slot: usize, ty: &LogicalType, ser: Option<&TypeSerializer>, v: &Value, depth: usize) -> E<()> {
    let ty = ty.storage();
    let int = |what: &str| match v {
        Value::Int(i) => Ok(*i),
        other => Err(mismatch(what, other)),
    };
    match &ty.kind {
        TypeKind::Boolean => match v {
            Value::Bool(b) => buf[slot] = u8::from(*b),
            other => return Err(mismatch("a boolean", other)),
        },
        TypeKind::TinyInt => buf[slot] = i8::try_from(int("a tinyint")?).map_err(|_| bad(format!("{v:?} does not fit a TINYINT")))? as u8,
        TypeKind::SmallInt => put_le(buf, slot, &i16::try_from(int("a smallint")?).map_err(|_| bad(format!("{v:?} does not fit a SMALLINT")))?.to_le_bytes()),
        TypeKind::Integer | TypeKind::IntervalYearMonth { .. } => {
            put_le(buf, slot, &i32::try_from(int("an int")?).map_err(|_| bad(format!("{v:?} does not fit an INT")))?.to_le_bytes())
        }
        TypeKind::BigInt | TypeKind::IntervalDayTime { .. } => put_le(buf, slot, &int("a bigint")?.to_le_bytes()),
        TypeKind::Float => match v {
            Value::Float(f) => put_le(buf, slot, &(*f as f32).to_bits().to_le_bytes()),
            other => return Err(mismatch("a float", other)),
        },
        TypeKind::Double => match v {
            Value::Float(f) => put_le(buf, slot, &f.to_bits().to_le_bytes()),
            other => return Err(mismatch("a double", other)),
        },
        TypeKind::Date => put_le(buf, slot, &date_days(v)?.to_le_bytes()),
        TypeKind::Time(_) => put_le(buf, slot, &time_millis(v)?.to_le_bytes()),
        TypeKind::Char(_) | TypeKind::VarChar(_) => match v {
            Value::String(s) => put_bytes(buf, slot, s.as_bytes())?,
            other => return Err(mismatch("a string", other)),
        },
        TypeKind::Binary(_) | TypeKind::VarBinary(_) => match v {
            Value::Bytes(b) => put_bytes(buf, slot, b)?,
            other => return Err(mismatch("bytes", other)),
        },
        TypeKind::Decimal { precision, scale } => {
            let Value::BigDecimal(text) = v else { return Err(mismatch("a decimal", v)) };
            let unscaled = unscaled_bytes(text, *scale, *precision)?;
            if decimal_is_compact(*precision) {
                put_le(buf, slot, &compact(&unscaled).to_le_bytes());
            } else {
                // writeDecimal: 16 bytes of room, the unscaled bytes first.
                if unscaled.len() > 16 {
                    return Err(bad(format!("{text} has more than 16 unscaled bytes")));
                }
                let offset = buf.len();
                buf.resize(offset + 16, 0);
                put_le(buf, offset, &unscaled);
                put_le(buf, slot, &offset_and_size(offset, unscaled.len())?);
            }
        }
        TypeKind::Timestamp { precision, .. } | TypeKind::TimestampLtz { precision, .. } => {
            let (millis, nanos) = timestamp_parts(v)?;
            if timestamp_is_compact(*precision) {
                put_le(buf, slot, &millis.to_le_bytes());
            } else {
                let offset = buf.len();
                buf.extend_from_slice(&millis.to_le_bytes());
                put_le(buf, slot, &offset_and_size(offset, nanos as u32 as usize)?);
            }
        }
        TypeKind::Array(elem) => {
            let a = array_bytes(elem, v, depth + 1)?;
            put_var(buf, slot, &a)?;
        }
        TypeKind::Map(k, val) => {
            let m = map_bytes(k, val, v, depth + 1)?;
            put_var(buf, slot, &m)?;
        }
        TypeKind::Multiset(e) => {
            let count = LogicalType { nullable: false, kind: TypeKind::Integer };
            let m = map_bytes(e, &count, v, depth + 1)?;
            put_var(buf, slot, &m)?;
        }
        TypeKind::Row(_) | TypeKind::Structured { .. } => {
            let types: Vec<LogicalType> = ty.fields().iter().map(|f| f.ty.clone()).collect();
            let nested = ser.and_then(TypeSerializer::table).and_then(T::row_field_serializers);
            let r = row_bytes(&types, nested, v, depth + 1)?;
            put_var(buf, slot, &r)?;
        }
        TypeKind::Raw { class, serializer, .. } => {
            let b = match v {
                Value::Opaque(o) => o.bytes.clone(),
                v => match (ser.and_then(TypeSerializer::table).and_then(T::raw_inner), serializer) {
                    (Some(inner), _) => inner.encode_to_vec(v)?,
                    (None, Some(t)) => TypeSerializer::simple(*t).encode_to_vec(v)?,
                    (None, None) => return Err(unsupported(format!("raw values of {class} can only be written as the opaque bytes they were read as"))),
                },
            };
            // writeRawValue: always in the variable part, however short.
            put_var(buf, slot, &b)?;
        }
        TypeKind::Null => {}
        TypeKind::Variant | TypeKind::Bitmap => match v {
            Value::Opaque(o) => put_var(buf, slot, &o.bytes)?,
            other => return Err(unsupported(format!("{} values can only be written as the opaque bytes they were read as, found {}", ty.summary(), other.kind_name()))),
        },
        TypeKind::TimestampTz(_) | TypeKind::Symbol | TypeKind::Unresolved | TypeKind::Descriptor | TypeKind::Distinct { .. } => {
            return Err(unsupported(format!("type {} has no binary form", ty.summary())));
        }
    }
    Ok(())
}

/// The bytes of a `BinaryArrayData` of `elem` holding the list `v`.
pub(crate) fn array_bytes(elem: &LogicalType, v: &Value, depth: usize) -> E<Vec<u8>> {
    if depth > super::binary::MAX_NESTING {
        return Err(bad(format!("arrays nested deeper than {} levels", super::binary::MAX_NESTING)));
    }
    let Value::List(items) = v else { return Err(mismatch("a list", v)) };
    let size = elem.array_element_size().ok_or_else(|| bad(format!("type {} cannot be an array element", elem.summary())))?;
    let n = items.len();
    let count = i32::try_from(n).map_err(|_| bad(format!("{n} elements do not fit an array")))?;
    let header = array_header_width(n);
    let fixed = n.checked_mul(size).and_then(|b| b.checked_add(header)).ok_or_else(|| bad("array too large".into()))?.next_multiple_of(8);
    let mut buf = vec![0u8; fixed];
    put_le(&mut buf, 0, &count.to_le_bytes());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::Null => buf[4 + i / 8] |= 1 << (i % 8),
            item => put_value(&mut buf, header + i * size, elem, None, item, depth).within(|| format!("element {i}"))?,
        }
    }
    Ok(buf)
}

/// The bytes of a `BinaryMapData`: the key array's size (`i32`), the key array, the value array.
fn map_bytes(k: &LogicalType, v: &LogicalType, m: &Value, depth: usize) -> E<Vec<u8>> {
    let Value::Map(entries) = m else { return Err(mismatch("a map", m)) };
    let (keys, values): (Vec<Value>, Vec<Value>) = entries.iter().cloned().unzip();
    let keys = array_bytes(k, &Value::List(keys), depth).within(|| "map keys".into())?;
    let values = array_bytes(v, &Value::List(values), depth).within(|| "map values".into())?;
    let mut out = Vec::with_capacity(4 + keys.len() + values.len());
    out.extend_from_slice(&(keys.len() as i32).to_le_bytes());
    out.extend_from_slice(&keys);
    out.extend_from_slice(&values);
    Ok(out)
}

/// `DATE`: days since 1970-01-01.
fn date_days(v: &Value) -> E<i32> {
    let Value::LocalDate { year, month, day } = v else { return Err(mismatch("a date", v)) };
    i32::try_from(days_from_civil(i64::from(*year), *month, *day)).map_err(|_| bad(format!("date {year}-{month}-{day} out of range")))
}

/// `TIME`: milliseconds of the day (the type keeps no finer digits).
fn time_millis(v: &Value) -> E<i32> {
    let Value::LocalTime { hour, minute, second, nano } = v else { return Err(mismatch("a time of day", v)) };
    if nano % 1_000_000 != 0 {
        return Err(bad(format!("{} has sub-millisecond digits, which a TIME value does not keep", v.iso8601().unwrap_or_default())));
    }
    Ok((i32::from(*hour) * 3600 + i32::from(*minute) * 60 + i32::from(*second)) * 1000 + (nano / 1_000_000) as i32)
}

/// `TimestampData`: epoch milliseconds and the nanoseconds of the millisecond, of a local
/// date-time (`TIMESTAMP`) or an instant (`TIMESTAMP_LTZ`).
fn timestamp_parts(v: &Value) -> E<(i64, i32)> {
    let (seconds, nanos) = match v {
        Value::Instant { seconds, nanos } => (*seconds, *nanos),
        Value::LocalDateTime { date, time } => {
            let days = i64::from(date_days(date)?);
            let Value::LocalTime { hour, minute, second, nano } = time.as_ref() else { return Err(mismatch("a time of day", time)) };
            (days * 86_400 + i64::from(*hour) * 3600 + i64::from(*minute) * 60 + i64::from(*second), *nano)
        }
        other => return Err(mismatch("a timestamp", other)),
    };
    let millis = seconds
        .checked_mul(1000)
        .and_then(|m| m.checked_add(i64::from(nanos / 1_000_000)))
        .ok_or_else(|| bad("timestamp out of range".into()))?;
    Ok((millis, (nanos % 1_000_000) as i32))
}

/// The unscaled value of a decimal's text at `scale`, as `BigInteger.toByteArray()` gives it
/// (minimal two's complement, big-endian). Fewer fraction digits than the scale are padded;
/// more, or more digits than the precision, are an error (Flink would round or give `NULL`).
pub(crate) fn unscaled_bytes(text: &str, scale: u32, precision: u32) -> E<Vec<u8>> {
    let t = text.trim();
    let invalid = || bad(format!("{text:?} is not a decimal of scale {scale}"));
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = scale as usize;
    if (int.is_empty() && frac.is_empty()) || frac.len() > scale || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let all = format!("{int}{frac}{}", "0".repeat(scale - frac.len()));
    let significant = all.trim_start_matches('0');
    if significant.len() > precision as usize {
        return Err(bad(format!("{text} has more digits than DECIMAL({precision}, {scale}) holds")));
    }
    let sign = if neg { "-" } else { "" };
    parse_big_integer(&format!("{sign}{}", if significant.is_empty() { "0" } else { significant }))
}

/// The `long` of minimal two's-complement bytes (at most 8: a precision ≤ 18 guarantees it).
pub(crate) fn compact(b: &[u8]) -> i64 {
    let mut v: i64 = if b.first().is_some_and(|x| x & 0x80 != 0) { -1 } else { 0 };
    for &x in b {
        v = (v << 8) | i64::from(x);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::super::logical_type::{LogicalType, RowField, TimestampKind, TypeKind as K};
    use super::super::TableSerializer as T;
    use crate::model::value::{RowKind, Value};
    use crate::readers::serializers::{SerializerKind, TypeSerializer};
    use proptest::prelude::*;

    fn ty(kind: K) -> LogicalType {
        LogicalType { nullable: true, kind }
    }

    fn row_ser(types: Vec<LogicalType>) -> TypeSerializer {
        TypeSerializer::new("RowDataSerializerSnapshot".into(), 3, SerializerKind::Table(Box::new(T::RowData { types, fields: Vec::new(), names: None })))
    }

    /// A logical type and a strategy for its non-null values, nested up to `depth`.
    fn typed(depth: u32) -> BoxedStrategy<(LogicalType, BoxedStrategy<Value>)> {
        let text = || "\\PC{0,12}".prop_map(Value::String).boxed();
        let leaf = prop_oneof![
            Just((ty(K::Boolean), any::<bool>().prop_map(Value::Bool).boxed())),
            Just((ty(K::TinyInt), any::<i8>().prop_map(|i| Value::Int(i.into())).boxed())),
            Just((ty(K::SmallInt), any::<i16>().prop_map(|i| Value::Int(i.into())).boxed())),
            Just((ty(K::Integer), any::<i32>().prop_map(|i| Value::Int(i.into())).boxed())),
            Just((ty(K::BigInt), any::<i64>().prop_map(Value::Int).boxed())),
            Just((ty(K::Double), any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(Value::Float).boxed())),
            Just((ty(K::VarChar(u32::MAX >> 1)), text())),
            Just((ty(K::VarBinary(100)), proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes).boxed())),
            Just((ty(K::Decimal { precision: 10, scale: 2 }), (-9_999_999_999_i64..9_999_999_999).prop_map(|u| Value::BigDecimal(super::super::binary::decimal_text_i128(u.into(), 2))).boxed())),
            Just((ty(K::Decimal { precision: 38, scale: 5 }), any::<i64>().prop_map(|u| Value::BigDecimal(super::super::binary::decimal_text_i128(i128::from(u) * 1_000_003, 5))).boxed())),
            Just((ty(K::Date), (-700_000i32..700_000).prop_map(|d| super::super::binary::date(d).unwrap()).boxed())),
            Just((ty(K::Time(3)), (0i32..86_400_000).prop_map(|t| super::super::binary::time(t).unwrap()).boxed())),
            Just((ty(K::Timestamp { precision: 3, kind: TimestampKind::Regular }), (-10i64.pow(13)..10i64.pow(13)).prop_map(|m| super::super::binary::timestamp(m, 0, false).unwrap()).boxed())),
            Just((ty(K::TimestampLtz { precision: 9, kind: TimestampKind::Regular }), (-10i64.pow(13)..10i64.pow(13), 0i32..1_000_000).prop_map(|(m, n)| super::super::binary::timestamp(m, n, true).unwrap()).boxed())),
        ];
        if depth == 0 {
            return leaf.boxed();
        }
        let inner = typed(depth - 1);
        prop_oneof![
            3 => leaf,
            1 => inner.clone().prop_map(|(e, vals)| {
                (ty(K::Array(Box::new(e))), proptest::collection::vec(proptest::option::of(vals), 0..5).prop_map(|v| Value::List(v.into_iter().map(|x| x.unwrap_or(Value::Null)).collect())).boxed())
            }),
            1 => inner.clone().prop_map(|(v, vals)| {
                let entries = proptest::collection::vec(("[a-z]{0,9}", proptest::option::of(vals)), 0..4)
                    .prop_map(|e| Value::Map(e.into_iter().map(|(k, v)| (Value::String(k), v.unwrap_or(Value::Null))).collect()));
                (ty(K::Map(Box::new(ty(K::VarChar(10))), Box::new(v))), entries.boxed())
            }),
            1 => (inner.clone(), inner).prop_map(|((a, va), (b, vb))| {
                let fields = vec![RowField { name: "a".into(), ty: a }, RowField { name: "b".into(), ty: b }];
                let vals = (proptest::option::of(va), proptest::option::of(vb))
                    .prop_map(|(x, y)| Value::Row { kind: RowKind::Insert, fields: vec![("a".into(), x.unwrap_or(Value::Null)), ("b".into(), y.unwrap_or(Value::Null))] });
                (ty(K::Row(fields)), vals.boxed())
            }),
        ]
        .boxed()
    }

    fn rows() -> impl Strategy<Value = (TypeSerializer, Value)> {
        proptest::collection::vec(typed(2), 0..6).prop_flat_map(|cols| {
            let types: Vec<LogicalType> = cols.iter().map(|(t, _)| t.clone()).collect();
            let vals: Vec<BoxedStrategy<Option<Value>>> = cols.into_iter().map(|(_, v)| proptest::option::of(v).boxed()).collect();
            let kind = prop_oneof![Just(RowKind::Insert), Just(RowKind::UpdateBefore), Just(RowKind::UpdateAfter), Just(RowKind::Delete)];
            (Just(row_ser(types)), (kind, vals)).prop_map(|(s, (kind, vals))| {
                let fields = vals.into_iter().enumerate().map(|(i, v)| (format!("f{i}"), v.unwrap_or(Value::Null))).collect();
                (s, Value::Row { kind, fields })
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]
        /// Every row written decodes back to itself, and its dump JSON reads back as the same row.
        #[test]
        fn rows_written_decode_back((s, v) in rows()) {
            let bytes = s.encode_to_vec(&v).unwrap();
            // BinaryRowWriter pads every variable part to whole words.
            prop_assert_eq!((bytes.len() - 4) % 8, 0);
            prop_assert_eq!(s.decode_framed(&bytes, 0).unwrap(), v.clone());
            prop_assert_eq!(s.value_from_json(&v.to_json()).unwrap(), v);
        }
    }

    #[test]
    fn a_row_without_names_takes_a_plans_names_by_position() {
        let s = row_ser(vec![ty(K::VarChar(10)), ty(K::BigInt)]);
        let want = Value::Row { kind: RowKind::UpdateBefore, fields: vec![("f0".into(), Value::String("alice".into())), ("f1".into(), Value::Null)] };
        assert_eq!(s.value_from_json(&serde_json::json!({"user_name": "alice", "total": null, "rowKind": "-U"})).unwrap(), want);
        assert_eq!(s.value_from_json(&serde_json::json!({"f0": "alice", "rowKind": "-U"})).unwrap(), want);
        // Other names of another count are refused, naming the field.
        let e = s.value_from_json(&serde_json::json!({"user_name": "alice"})).unwrap_err().to_string();
        assert!(e.contains("\"user_name\" is not a field of the row"), "{e}");
    }

    #[test]
    fn short_strings_stand_in_their_slot_and_decimals_keep_their_room() {
        let s = row_ser(vec![ty(K::VarChar(10)), ty(K::VarChar(10)), ty(K::Decimal { precision: 20, scale: 0 })]);
        let v = Value::Row { kind: RowKind::Delete, fields: vec![("f0".into(), Value::String("abc".into())), ("f1".into(), Value::String("12345678".into())), ("f2".into(), Value::Null)] };
        let b = s.encode_to_vec(&v).unwrap();
        let row = &b[4..];
        // header: kind 3, f2's null bit (8 + 2)
        assert_eq!(&row[..8], [3, 0b100, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&row[8..16], [b'a', b'b', b'c', 0, 0, 0, 0, 0x83]);
        // "12345678" at offset 32, 8 bytes; the null DECIMAL(20) keeps 16 zero bytes at 40.
        assert_eq!(&row[16..24], [8, 0, 0, 0, 32, 0, 0, 0]);
        assert_eq!(&row[24..32], [0, 0, 0, 0, 40, 0, 0, 0]);
        assert_eq!(&row[32..40], b"12345678");
        assert_eq!(row.len(), 56);
    }
}
