//! Flink's binary table formats (`flink-table-common`'s `org.apache.flink.table.data.binary`):
//! `BinaryRowData`, `BinaryArrayData`, `BinaryMapData`, `BinaryStringData` and the compact and
//! non-compact forms of `DecimalData` and `TimestampData`, decoded by their logical types.
//! Spec: `formats/sql-serializers.md` § "Binary formats".
//!
//! Flink writes these through `MemorySegment` in the machine's byte order; every machine Flink
//! runs on is little-endian, and so is everything here (a snapshot written on a big-endian JVM
//! would not restore on a little-endian one either).

use super::logical_type::{decimal_is_compact, timestamp_is_compact, LogicalType, TypeKind};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::model::value::{RowKind, Value};
use crate::readers::serializers::{SimpleType, TypeSerializer};

type R<T> = Result<T, DecodeError>;

/// Deepest nesting of rows, arrays and maps decoded.
pub const MAX_NESTING: usize = 64;

/// Bits of a row header (`BinaryRowData.HEADER_SIZE_IN_BITS`): the row kind byte.
const HEADER_BITS: usize = 8;

/// A section of bytes (a row, array or map) with the absolute offset of its first byte, for
/// errors.
#[derive(Clone, Copy)]
pub(crate) struct Section<'a> {
    pub bytes: &'a [u8],
    pub base: u64,
}

impl<'a> Section<'a> {
    pub fn new(bytes: &'a [u8], base: u64) -> Self {
        Section { bytes, base }
    }

    fn err(&self, at: usize, msg: impl Into<String>) -> DecodeError {
        DecodeError::new(DecodeErrorKind::Invalid(msg.into()), self.base + at as u64)
    }

    fn get(&self, at: usize, n: usize, what: &str) -> R<&'a [u8]> {
        at.checked_add(n).and_then(|end| self.bytes.get(at..end)).ok_or_else(|| {
            self.err(at, format!("{what}: {n} bytes at {at} lie outside the {} bytes of the binary section", self.bytes.len()))
        })
    }

    fn u8(&self, at: usize, what: &str) -> R<u8> {
        Ok(self.get(at, 1, what)?[0])
    }

    fn i16(&self, at: usize, what: &str) -> R<i16> {
        let mut b = [0u8; 2];
        b.copy_from_slice(self.get(at, 2, what)?);
        Ok(i16::from_le_bytes(b))
    }

    fn i32(&self, at: usize, what: &str) -> R<i32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.get(at, 4, what)?);
        Ok(i32::from_le_bytes(b))
    }

    fn i64(&self, at: usize, what: &str) -> R<i64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.get(at, 8, what)?);
        Ok(i64::from_le_bytes(b))
    }

    /// A sub-section at `offset` of `size` bytes (nested rows, arrays, maps, long strings).
    fn sub(&self, offset: usize, size: usize, what: &str) -> R<Section<'a>> {
        Ok(Section { bytes: self.get(offset, size, what)?, base: self.base + offset as u64 })
    }

    /// `BinarySegmentUtils.bitGet`: bit `index` of the bit set at `at`, LSB first in each byte.
    fn bit(&self, at: usize, index: usize, what: &str) -> R<bool> {
        Ok(self.u8(at + index / 8, what)? & (1 << (index % 8)) != 0)
    }
}

/// `BinaryRowData.calculateBitSetWidthInBytes`: header and null bits, in whole 8-byte words.
pub fn row_bit_set_width(arity: usize) -> usize {
    ((arity + 63 + HEADER_BITS) / 64) * 8
}

/// `BinaryArrayData.calculateHeaderInBytes`: the element count and the null bits, in 4-byte words.
pub fn array_header_width(n: usize) -> usize {
    4 + n.div_ceil(32) * 4
}

/// How nested raw values are decoded, for fields whose serializer the snapshot stores.
#[derive(Clone, Copy, Default)]
pub(crate) struct FieldSerializers<'s> {
    /// The row's field serializers (a `RowDataSerializer` snapshot's nested snapshots), or
    /// nothing for nested positions (their raw values decode by the `RawType`'s serializer).
    pub fields: Option<&'s [TypeSerializer]>,
}

/// A `BinaryRowData` of `types`: the header byte (the row kind), the null bits, one 8-byte slot
/// per field, the variable part. Field names from `names` (else `f0`, `f1`, ...).
pub(crate) fn row(s: Section<'_>, types: &[LogicalType], names: Option<&[String]>, sers: FieldSerializers<'_>, depth: usize) -> R<Value> {
    if depth > MAX_NESTING {
        return Err(s.err(0, format!("rows nested deeper than {MAX_NESTING} levels")));
    }
    let arity = types.len();
    let width = row_bit_set_width(arity);
    let fixed = width + 8 * arity;
    if s.bytes.len() < fixed {
        return Err(s.err(0, format!("a binary row of {arity} fields needs {fixed} bytes for its fixed part, it has {}", s.bytes.len())));
    }
    let kind_byte = s.u8(0, "row kind")?;
    let kind = RowKind::from_byte(kind_byte).ok_or_else(|| s.err(0, format!("invalid row kind byte {kind_byte}")))?;
    let mut fields = Vec::with_capacity(arity);
    for (i, ty) in types.iter().enumerate() {
        let name = names.and_then(|n| n.get(i)).cloned().unwrap_or_else(|| format!("f{i}"));
        let slot = width + 8 * i;
        let v = if s.bit(0, i + HEADER_BITS, "null bits")? {
            Value::Null
        } else {
            let field_ser = sers.fields.and_then(|f| f.get(i));
            slot_value(s, slot, ty, field_ser, depth)
                .map_err(|e| e.context(format!("field {name} ({})", ty.summary())))?
        };
        fields.push((name, v));
    }
    Ok(Value::Row { kind, fields })
}

/// [`row`] without the value (the checking walk, `check.rs`): `Some(())` only where [`row`]
/// gives a row with no opaque part. Fixed-size fields, strings and binaries (whose bytes only
/// need to lie in the section), compact decimals, dates, times and timestamps are checked in
/// place; nested rows, arrays, maps, raw values and the rest are decoded and dropped.
pub(crate) fn check_row(s: Section<'_>, types: &[LogicalType], sers: FieldSerializers<'_>, depth: usize) -> Option<()> {
    if depth > MAX_NESTING {
        return None;
    }
    let arity = types.len();
    let width = row_bit_set_width(arity);
    if s.bytes.len() < width + 8 * arity {
        return None;
    }
    RowKind::from_byte(s.bytes[0])?;
    types.iter().enumerate().try_for_each(|(i, ty)| {
        let bit = i + HEADER_BITS;
        if s.bytes[bit / 8] & (1 << (bit % 8)) != 0 {
            return Some(());
        }
        let slot = width + 8 * i;
        let ty = ty.storage();
        match &ty.kind {
            TypeKind::Boolean
            | TypeKind::TinyInt
            | TypeKind::SmallInt
            | TypeKind::Integer
            | TypeKind::IntervalYearMonth { .. }
            | TypeKind::BigInt
            | TypeKind::IntervalDayTime { .. }
            | TypeKind::Float
            | TypeKind::Double
            | TypeKind::Null => Some(()),
            TypeKind::Char(_) | TypeKind::VarChar(_) | TypeKind::Binary(_) | TypeKind::VarBinary(_) => var_bytes(s, slot, "").ok().map(drop),
            TypeKind::Decimal { precision, .. } if decimal_is_compact(*precision) => Some(()),
            TypeKind::Date => date(s.i32(slot, "").ok()?).ok().map(drop),
            TypeKind::Time(_) => time(s.i32(slot, "").ok()?).ok().map(drop),
            TypeKind::Timestamp { precision, .. } | TypeKind::TimestampLtz { precision, .. } if timestamp_is_compact(*precision) => {
                timestamp(s.i64(slot, "").ok()?, 0, matches!(ty.kind, TypeKind::TimestampLtz { .. })).ok().map(drop)
            }
            _ => {
                let v = slot_value(s, slot, ty, sers.fields.and_then(|f| f.get(i)), depth).ok()?;
                (v.opaque_count() == 0).then_some(())
            }
        }
    })
}

/// The value of a field or element whose 8-byte (or narrower, in arrays) slot is at `slot`.
fn slot_value(s: Section<'_>, slot: usize, ty: &LogicalType, field_ser: Option<&TypeSerializer>, depth: usize) -> R<Value> {
    let ty = ty.storage();
    Ok(match &ty.kind {
        TypeKind::Boolean => Value::Bool(s.u8(slot, "boolean")? != 0),
        TypeKind::TinyInt => Value::Int(i64::from(s.u8(slot, "tinyint")? as i8)),
        TypeKind::SmallInt => Value::Int(i64::from(s.i16(slot, "smallint")?)),
        TypeKind::Integer | TypeKind::IntervalYearMonth { .. } => Value::Int(i64::from(s.i32(slot, "int")?)),
        TypeKind::BigInt | TypeKind::IntervalDayTime { .. } => Value::Int(s.i64(slot, "bigint")?),
        TypeKind::Float => Value::Float(crate::model::numbers::widen(f32::from_bits(s.i32(slot, "float")? as u32))),
        TypeKind::Double => Value::Float(f64::from_bits(s.i64(slot, "double")? as u64)),
        TypeKind::Date => date(s.i32(slot, "date")?).map_err(|m| s.err(slot, m))?,
        TypeKind::Time(_) => time(s.i32(slot, "time")?).map_err(|m| s.err(slot, m))?,
        TypeKind::Char(_) | TypeKind::VarChar(_) => {
            let b = var_bytes(s, slot, "string")?;
            Value::String(utf8(b))
        }
        TypeKind::Binary(_) | TypeKind::VarBinary(_) => Value::Bytes(var_bytes(s, slot, "bytes")?.to_vec()),
        TypeKind::Decimal { precision, scale } => {
            if decimal_is_compact(*precision) {
                Value::BigDecimal(decimal_text_i128(i128::from(s.i64(slot, "compact decimal")?), *scale))
            } else {
                let (offset, size) = offset_and_size(s.i64(slot, "decimal offset and size")?);
                let b = s.get(offset, size, "decimal bytes")?;
                Value::BigDecimal(decimal_text_bytes(b, *scale))
            }
        }
        TypeKind::Timestamp { precision, .. } | TypeKind::TimestampLtz { precision, .. } => {
            let (millis, nanos) = if timestamp_is_compact(*precision) {
                (s.i64(slot, "compact timestamp")?, 0)
            } else {
                let v = s.i64(slot, "timestamp offset and nanos")?;
                let (offset, nanos) = ((v >> 32) as u32 as usize, v as i32);
                (s.i64(offset, "timestamp millis")?, nanos)
            };
            timestamp(millis, nanos, matches!(ty.kind, TypeKind::TimestampLtz { .. })).map_err(|m| s.err(slot, m))?
        }
        TypeKind::Array(elem) => {
            let (offset, size) = offset_and_size(s.i64(slot, "array offset and size")?);
            array(s.sub(offset, size, "array")?, elem, depth + 1)?
        }
        TypeKind::Map(k, v) => {
            let (offset, size) = offset_and_size(s.i64(slot, "map offset and size")?);
            map(s.sub(offset, size, "map")?, k, v, depth + 1)?
        }
        TypeKind::Multiset(e) => {
            let (offset, size) = offset_and_size(s.i64(slot, "multiset offset and size")?);
            let count = LogicalType { nullable: false, kind: TypeKind::Integer };
            map(s.sub(offset, size, "multiset")?, e, &count, depth + 1)?
        }
        TypeKind::Row(_) | TypeKind::Structured { .. } => {
            let (offset, size) = offset_and_size(s.i64(slot, "row offset and size")?);
            let fields = ty.fields();
            let types: Vec<LogicalType> = fields.iter().map(|f| f.ty.clone()).collect();
            let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
            // A nested row's field serializers, when the snapshot stores them (a ROW field of a
            // RowDataSerializer snapshot is itself one).
            let nested = field_ser.and_then(|f| f.table()).and_then(super::TableSerializer::row_field_serializers);
            row(s.sub(offset, size, "nested row")?, &types, Some(&names), FieldSerializers { fields: nested }, depth + 1)?
        }
        TypeKind::Raw { class, serializer, .. } => {
            let (offset, size) = offset_and_size(s.i64(slot, "raw value offset and size")?);
            let b = s.get(offset, size, "raw value")?;
            raw(b, s.base + offset as u64, class, *serializer, field_ser)?
        }
        TypeKind::Null => Value::Null,
        TypeKind::Variant | TypeKind::Bitmap => {
            let (offset, size) = offset_and_size(s.i64(slot, "value offset and size")?);
            let b = s.get(offset, size, "value")?;
            let class = if matches!(ty.kind, TypeKind::Variant) { "org.apache.flink.types.variant.BinaryVariant" } else { "org.apache.flink.types.bitmap.Bitmap" };
            Value::opaque(class.into(), b.to_vec())
        }
        TypeKind::TimestampTz(_) | TypeKind::Symbol | TypeKind::Unresolved | TypeKind::Descriptor | TypeKind::Distinct { .. } => {
            return Err(s.err(slot, format!("type {} has no binary form", ty.summary())));
        }
    })
}

/// A raw value: the bytes its serializer wrote. Decoded with the field's serializer when the
/// snapshot stores one (a `RawValueDataSerializer`), else with the `RawType`'s serializer when
/// it is one of Flink's base serializers, else kept opaque under the value class.
fn raw(b: &[u8], base: u64, class: &str, simple: Option<SimpleType>, field_ser: Option<&TypeSerializer>) -> R<Value> {
    if let Some(inner) = field_ser.and_then(|f| f.table()).and_then(super::TableSerializer::raw_inner) {
        return inner.decode_framed(b, base);
    }
    if let Some(t) = simple {
        return TypeSerializer::simple(t).decode_framed(b, base);
    }
    Ok(Value::opaque(class.to_owned(), b.to_vec()))
}

/// `offsetAndSize` of a variable-length field: offset in the high, size in the low 32 bits.
fn offset_and_size(v: i64) -> (usize, usize) {
    ((v as u64 >> 32) as usize, v as u32 as usize)
}

/// `BinarySegmentUtils.readBinary` / `readStringData`: when the slot's highest bit is set, the
/// bytes (at most 7) are in the slot itself (little-endian: from its first byte) and bits 56–62
/// hold their length; otherwise the slot is an offset and a length.
fn var_bytes<'a>(s: Section<'a>, slot: usize, what: &str) -> R<&'a [u8]> {
    let v = s.i64(slot, what)? as u64;
    if v & (1 << 63) == 0 {
        let (offset, size) = offset_and_size(v as i64);
        s.get(offset, size, what)
    } else {
        let len = ((v >> 56) & 0x7f) as usize;
        if len > 7 {
            return Err(s.err(slot, format!("{what}: inline length {len} exceeds 7")));
        }
        s.get(slot, len, what)
    }
}

/// A `BinaryArrayData` of `elem`: the element count, null bits, elements, variable part.
pub(crate) fn array(s: Section<'_>, elem: &LogicalType, depth: usize) -> R<Value> {
    if depth > MAX_NESTING {
        return Err(s.err(0, format!("arrays nested deeper than {MAX_NESTING} levels")));
    }
    let n = s.i32(0, "array size")?;
    let n = usize::try_from(n).map_err(|_| s.err(0, format!("negative array size {n}")))?;
    let size = elem.array_element_size().ok_or_else(|| s.err(0, format!("type {} cannot be an array element", elem.summary())))?;
    let header = array_header_width(n);
    let need = n.checked_mul(size).and_then(|b| b.checked_add(header));
    if need.is_none_or(|need| need > s.bytes.len()) {
        return Err(s.err(0, format!("an array of {n} elements of {size} bytes does not fit its {} bytes", s.bytes.len())));
    }
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        if s.bit(4, i, "array null bits")? {
            items.push(Value::Null);
            continue;
        }
        let at = header + i * size;
        let v = match size {
            8 => slot_value(s, at, elem, None, depth),
            _ => narrow_element(s, at, elem),
        };
        items.push(v.map_err(|e| e.context(format!("element {i}")))?);
    }
    Ok(Value::List(items))
}

/// An element of 1, 2 or 4 bytes (arrays pack them; rows give every field 8).
fn narrow_element(s: Section<'_>, at: usize, elem: &LogicalType) -> R<Value> {
    Ok(match &elem.storage().kind {
        TypeKind::Boolean => Value::Bool(s.u8(at, "boolean")? != 0),
        TypeKind::TinyInt => Value::Int(i64::from(s.u8(at, "tinyint")? as i8)),
        TypeKind::SmallInt => Value::Int(i64::from(s.i16(at, "smallint")?)),
        TypeKind::Integer | TypeKind::IntervalYearMonth { .. } => Value::Int(i64::from(s.i32(at, "int")?)),
        TypeKind::Float => Value::Float(crate::model::numbers::widen(f32::from_bits(s.i32(at, "float")? as u32))),
        TypeKind::Date => date(s.i32(at, "date")?).map_err(|m| s.err(at, m))?,
        TypeKind::Time(_) => time(s.i32(at, "time")?).map_err(|m| s.err(at, m))?,
        _ => return Err(s.err(at, format!("type {} is not a narrow array element", elem.summary()))),
    })
}

/// A `BinaryMapData`: the key array's size in bytes, the key array, the value array (same
/// length). Entries in stored order.
pub(crate) fn map(s: Section<'_>, k: &LogicalType, v: &LogicalType, depth: usize) -> R<Value> {
    let key_size = s.i32(0, "map key array size")?;
    let key_size = usize::try_from(key_size).map_err(|_| s.err(0, format!("negative map key array size {key_size}")))?;
    let keys_end = key_size.checked_add(4).filter(|&e| e <= s.bytes.len()).ok_or_else(|| {
        s.err(0, format!("map key array of {key_size} bytes does not fit the map's {} bytes", s.bytes.len()))
    })?;
    let keys = array(s.sub(4, key_size, "map keys")?, k, depth).map_err(|e| e.context("map keys".to_string()))?;
    let values = array(s.sub(keys_end, s.bytes.len() - keys_end, "map values")?, v, depth).map_err(|e| e.context("map values".to_string()))?;
    let (Value::List(keys), Value::List(values)) = (keys, values) else { unreachable!("arrays decode to lists") };
    if keys.len() != values.len() {
        return Err(s.err(0, format!("map with {} keys and {} values", keys.len(), values.len())));
    }
    Ok(Value::Map(keys.into_iter().zip(values).collect()))
}

/// UTF-8 text of a `BinaryStringData` (invalid sequences become U+FFFD, as Java's decoder does).
pub(crate) fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `DATE`: days since 1970-01-01.
pub(crate) fn date(days: i32) -> Result<Value, String> {
    let (y, m, d) = civil_from_days(i64::from(days));
    let year = i32::try_from(y).map_err(|_| format!("date {days} out of range"))?;
    Ok(Value::LocalDate { year, month: m, day: d })
}

/// `TIME`: milliseconds of the day.
pub(crate) fn time(millis: i32) -> Result<Value, String> {
    if !(0..86_400_000).contains(&millis) {
        return Err(format!("time of day {millis} ms out of range"));
    }
    let secs = millis / 1000;
    Ok(Value::LocalTime {
        hour: (secs / 3600) as u8,
        minute: (secs / 60 % 60) as u8,
        second: (secs % 60) as u8,
        nano: (millis % 1000) as u32 * 1_000_000,
    })
}

/// `TimestampData`: epoch milliseconds and nanoseconds of the millisecond (0..=999 999), as a
/// local date-time (`TIMESTAMP`) or an instant (`TIMESTAMP_LTZ`).
pub(crate) fn timestamp(millis: i64, nano_of_milli: i32, instant: bool) -> Result<Value, String> {
    if !(0..1_000_000).contains(&nano_of_milli) {
        return Err(format!("nanosecond of millisecond {nano_of_milli} out of range"));
    }
    let seconds = millis.div_euclid(1000);
    let nanos = (millis.rem_euclid(1000) * 1_000_000) as u32 + nano_of_milli as u32;
    if instant {
        return Ok(Value::Instant { seconds, nanos });
    }
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let year = i32::try_from(y).map_err(|_| format!("timestamp {millis} ms out of range"))?;
    Ok(Value::LocalDateTime {
        date: Box::new(Value::LocalDate { year, month: m, day: d }),
        time: Box::new(Value::LocalTime { hour: (secs / 3600) as u8, minute: (secs / 60 % 60) as u8, second: (secs % 60) as u8, nano: nanos }),
    })
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `DecimalData.toString()` (`BigDecimal.toPlainString()`) of an unscaled value and a scale:
/// no exponent, exactly `scale` fraction digits.
pub fn decimal_text_i128(unscaled: i128, scale: u32) -> String {
    plain(&unscaled.unsigned_abs().to_string(), unscaled < 0, scale)
}

/// The same for the two's-complement big-endian bytes of a non-compact decimal
/// (`BigInteger.toByteArray()`).
pub fn decimal_text_bytes(b: &[u8], scale: u32) -> String {
    if b.is_empty() {
        return plain("0", false, scale);
    }
    if b.len() <= 16 {
        let mut v: i128 = if b[0] & 0x80 != 0 { -1 } else { 0 };
        for &x in b {
            v = (v << 8) | i128::from(x);
        }
        return decimal_text_i128(v, scale);
    }
    let text = crate::model::numbers::big_integer_text(b);
    match text.strip_prefix('-') {
        Some(mag) => plain(mag, true, scale),
        None => plain(&text, false, scale),
    }
}

fn plain(digits: &str, negative: bool, scale: u32) -> String {
    let scale = scale as usize;
    let sign = if negative && digits.bytes().any(|d| d != b'0') { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = if digits.len() <= scale { format!("{}{digits}", "0".repeat(scale + 1 - digits.len())) } else { digits.to_owned() };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}
