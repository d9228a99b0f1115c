//! Decoded values into Arrow arrays, column by column, following the [`Shape`] the serializer
//! gave the column. A value that does not fit its column is an error naming both, never a
//! panic.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, Int8Array,
    Date32Array, Decimal128Array, DurationMillisecondArray, ListArray, MapArray, NullArray, StringArray, StructArray,
    Time32MillisecondArray, Time64NanosecondArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray,
};
use arrow_schema::TimeUnit;
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Fields};

use super::schema::{either_fields, map_entries_field, row_fields, time_window_fields, Column, Shape};
use crate::model::value::Value;

type R<T> = Result<T, String>;

/// The array of column `col` for `vals`; `None` and [`Value::Null`] are nulls. Nulls in a
/// non-nullable field are left to Arrow's own checks (`StructArray::try_new`,
/// `RecordBatch::try_new`), which know whether a parent's null masks them.
pub fn array(col: &Column, vals: &[Option<&Value>]) -> R<ArrayRef> {
    build(&col.shape, vals).map_err(|e| format!("{}: {e}", col.field.name()))
}

/// The value, or `None` for a null.
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !matches!(v, Value::Null))
}

fn mismatch(expected: &str, v: &Value) -> String {
    let found = v.kind_name();
    format!("expected {expected}, found {found}")
}

/// Validity of each row, or `None` when every row is valid.
fn nulls_of(valid: Vec<bool>) -> Option<NullBuffer> {
    if valid.iter().all(|&b| b) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

/// A column of one scalar type, as Arrow array `$array`. Nulls stay null; a present value
/// goes through the first arm whose pattern it matches (each arm gives an `R<_>` of the
/// array's element), and a value no arm takes is an error naming `$what`.
/// The values are gathered into a vector of the exact length first: collecting the fallible
/// iterator straight into the array left Arrow no length to allocate for, and its buffers grew by
/// doubling (1.7% of an export's instructions in copies).
macro_rules! scalars {
    ($array:ty, $vals:expr, $what:expr, $($pat:pat => $val:expr),+ $(,)?) => {
        (|| -> R<$array> {
            let mut out = Vec::with_capacity($vals.len());
            for v in $vals.iter() {
                out.push(match present(*v) {
                    None => None,
                    $(Some($pat) => {
                        let v: R<_> = $val;
                        Some(v?)
                    })+
                    Some(o) => return Err(mismatch($what, o)),
                });
            }
            Ok(out.into_iter().collect::<$array>())
        })()
    };
}

/// An integer narrowed to a column's width.
fn narrow<T: TryFrom<i64>>(i: i64, what: &str) -> R<T> {
    T::try_from(i).map_err(|_| format!("{i} does not fit {what}"))
}

fn build(shape: &Shape, vals: &[Option<&Value>]) -> R<ArrayRef> {
    Ok(match shape {
        Shape::Null => {
            if let Some(v) = vals.iter().find_map(|v| present(*v)) {
                return Err(mismatch("null", v));
            }
            Arc::new(NullArray::new(vals.len()))
        }
        Shape::Bool => Arc::new(scalars!(BooleanArray, vals, "a boolean", Value::Bool(b) => Ok(*b))?),
        Shape::Int8 => Arc::new(scalars!(Int8Array, vals, "Int8", Value::Int(i) => narrow(*i, "Int8"))?),
        Shape::Int16 => Arc::new(scalars!(Int16Array, vals, "Int16", Value::Int(i) => narrow(*i, "Int16"))?),
        Shape::Int32 => Arc::new(scalars!(Int32Array, vals, "Int32", Value::Int(i) => narrow(*i, "Int32"))?),
        Shape::Int64 => Arc::new(scalars!(Int64Array, vals, "Int64", Value::Int(i) => Ok(*i))?),
        // A Java float was widened through its shortest decimal form; narrowing gives it back.
        Shape::Float32 => Arc::new(scalars!(Float32Array, vals, "a float", Value::Float(f) => Ok(*f as f32))?),
        Shape::Float64 => Arc::new(scalars!(Float64Array, vals, "a double", Value::Float(f) => Ok(*f))?),
        Shape::Text => Arc::new(scalars!(StringArray, vals, "text",
            Value::String(s) | Value::BigInteger(s) | Value::BigDecimal(s) | Value::Enum(s) => Ok(Cow::Borrowed(s.as_str())),
            // One UTF-16 code unit; a lone surrogate becomes U+FFFD, as in the dump.
            Value::Char(c) => Ok(Cow::Owned(String::from_utf16_lossy(&[*c]))),
        )?),
        // Not `scalars!`: every present value is asked for its form, there is no variant list.
        Shape::Iso8601 => Arc::new(
            vals.iter()
                .map(|v| match present(*v) {
                    None => Ok(None),
                    Some(v) => v.iso8601().map(Some).ok_or_else(|| mismatch("a temporal value", v)),
                })
                .collect::<R<StringArray>>()?,
        ),
        Shape::Json => Arc::new(
            vals.iter().map(|v| present(*v).map(|v| v.to_json().to_string())).collect::<StringArray>(),
        ),
        Shape::Binary => Arc::new(scalars!(BinaryArray, vals, "bytes", Value::Bytes(b) => Ok(b.as_slice()))?),
        Shape::Opaque => Arc::new(scalars!(BinaryArray, vals, "opaque bytes", Value::Opaque(o) => Ok(o.bytes.as_slice()))?),
        Shape::TimestampMillis => Arc::new(
            scalars!(TimestampMillisecondArray, vals, "an instant",
                Value::Instant { seconds, nanos } => seconds
                    .checked_mul(1000)
                    .and_then(|ms| ms.checked_add(i64::from(*nanos / 1_000_000)))
                    .ok_or_else(|| format!("instant {seconds}s does not fit epoch milliseconds")),
            )?
            .with_timezone("UTC"),
        ),
        Shape::TimeNanos => Arc::new(scalars!(Time64NanosecondArray, vals, "a local time",
            Value::LocalTime { hour, minute, second, nano } => {
                let secs = i64::from(*hour) * 3600 + i64::from(*minute) * 60 + i64::from(*second);
                Ok(secs * 1_000_000_000 + i64::from(*nano))
            },
        )?),
        Shape::Decimal128 { precision, scale } => Arc::new(
            scalars!(Decimal128Array, vals, "a decimal", Value::BigDecimal(s) => unscaled(s, *scale))?
                .with_precision_and_scale(*precision, *scale)
                .map_err(|e| e.to_string())?,
        ),
        Shape::Timestamp { unit, utc } => {
            let per_second: i64 = match unit {
                TimeUnit::Second => 1,
                TimeUnit::Millisecond => 1_000,
                TimeUnit::Microsecond => 1_000_000,
                TimeUnit::Nanosecond => 1_000_000_000,
            };
            let values: Vec<Option<i64>> = vals
                .iter()
                .map(|v| match present(*v) {
                    None => Ok(None),
                    Some(v) => epoch(v, *utc)
                        .and_then(|(s, n)| s.checked_mul(per_second)?.checked_add(i64::from(n) / (1_000_000_000 / per_second)))
                        .map(Some)
                        .ok_or_else(|| mismatch(if *utc { "an instant in range" } else { "a local date-time in range" }, v)),
                })
                .collect::<R<_>>()?;
            let tz = utc.then_some("UTC");
            match unit {
                TimeUnit::Second => Arc::new(TimestampSecondArray::from(values).with_timezone_opt(tz)),
                TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(values).with_timezone_opt(tz)),
                TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(tz)),
                TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from(values).with_timezone_opt(tz)),
            }
        }
        Shape::Date32 => Arc::new(scalars!(Date32Array, vals, "a local date",
            Value::LocalDate { year, month, day } => i32::try_from(days_from_civil(i64::from(*year), *month, *day))
                .map_err(|_| format!("date {year}-{month}-{day} does not fit Date32")),
        )?),
        Shape::TimeMillis => Arc::new(scalars!(Time32MillisecondArray, vals, "a local time",
            Value::LocalTime { hour, minute, second, nano } => {
                Ok((i32::from(*hour) * 3600 + i32::from(*minute) * 60 + i32::from(*second)) * 1000 + (*nano / 1_000_000) as i32)
            },
        )?),
        Shape::DurationMillis => Arc::new(scalars!(DurationMillisecondArray, vals, "milliseconds", Value::Int(i) => Ok(*i))?),
        Shape::TimeWindow => {
            let mut valid = Vec::with_capacity(vals.len());
            let mut start = Vec::with_capacity(vals.len());
            let mut end = Vec::with_capacity(vals.len());
            for v in vals {
                match present(*v) {
                    None => {
                        valid.push(false);
                        start.push(0);
                        end.push(0);
                    }
                    Some(Value::TimeWindow { start: s, end: e }) => {
                        valid.push(true);
                        start.push(*s);
                        end.push(*e);
                    }
                    Some(o) => return Err(mismatch("a time window", o)),
                }
            }
            let children: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(start)), Arc::new(Int64Array::from(end))];
            Arc::new(StructArray::try_new(time_window_fields(), children, nulls_of(valid)).map_err(|e| e.to_string())?)
        }
        Shape::Struct(fields) => {
            let valid = struct_validity(vals, "a struct", |v| matches!(v, Value::Struct { .. }))?;
            let children = field_arrays(fields, vals, |v| match v {
                Value::Struct { fields } => Some(fields),
                _ => None,
            })?;
            let fields: Fields = fields.iter().map(|c| c.field.clone()).collect();
            Arc::new(StructArray::try_new(fields, children, nulls_of(valid)).map_err(|e| e.to_string())?)
        }
        Shape::Row { fields, row_kind } => {
            let valid = struct_validity(vals, "a row", |v| matches!(v, Value::Row { .. }))?;
            let mut children = field_arrays(fields, vals, |v| match v {
                Value::Row { fields, .. } => Some(fields),
                _ => None,
            })?;
            if *row_kind {
                let kinds: StringArray = vals
                    .iter()
                    .map(|v| match present(*v) {
                        Some(Value::Row { kind, .. }) => Some(kind.short_string()),
                        // Masked by the row's null; any text keeps the non-null field valid.
                        _ => Some(""),
                    })
                    .collect();
                children.push(Arc::new(kinds));
            }
            Arc::new(StructArray::try_new(row_fields(fields, *row_kind), children, nulls_of(valid)).map_err(|e| e.to_string())?)
        }
        Shape::Either(l, r) => {
            let valid = struct_validity(vals, "an either", |v| matches!(v, Value::Left(_) | Value::Right(_)))?;
            let is_left: BooleanArray = vals.iter().map(|v| Some(matches!(present(*v), Some(Value::Left(_))))).collect();
            let left: Vec<Option<&Value>> =
                vals.iter().map(|v| if let Some(Value::Left(x)) = present(*v) { Some(x.as_ref()) } else { None }).collect();
            let right: Vec<Option<&Value>> =
                vals.iter().map(|v| if let Some(Value::Right(x)) = present(*v) { Some(x.as_ref()) } else { None }).collect();
            let children: Vec<ArrayRef> = vec![Arc::new(is_left), array(l, &left)?, array(r, &right)?];
            Arc::new(StructArray::try_new(either_fields(l, r), children, nulls_of(valid)).map_err(|e| e.to_string())?)
        }
        Shape::List(item) => {
            let mut valid = Vec::with_capacity(vals.len());
            let mut offsets = Vec::with_capacity(vals.len() + 1);
            offsets.push(0i32);
            let mut items: Vec<Option<&Value>> = Vec::new();
            for v in vals {
                match present(*v) {
                    None => valid.push(false),
                    Some(Value::List(xs)) => {
                        valid.push(true);
                        items.extend(xs.iter().map(Some));
                    }
                    Some(o) => return Err(mismatch("a list", o)),
                }
                offsets.push(offset(items.len())?);
            }
            let child = array(item, &items)?;
            let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
            Arc::new(ListArray::try_new(item.field.clone(), offsets, child, nulls_of(valid)).map_err(|e| e.to_string())?)
        }
        Shape::Map(k, v) => {
            let mut valid = Vec::with_capacity(vals.len());
            let mut offsets = Vec::with_capacity(vals.len() + 1);
            offsets.push(0i32);
            let mut keys: Vec<Option<&Value>> = Vec::new();
            let mut values: Vec<Option<&Value>> = Vec::new();
            for x in vals {
                match present(*x) {
                    None => valid.push(false),
                    Some(Value::Map(entries)) => {
                        valid.push(true);
                        for (key, value) in entries {
                            keys.push(Some(key));
                            values.push(Some(value));
                        }
                    }
                    Some(o) => return Err(mismatch("a map", o)),
                }
                offsets.push(offset(keys.len())?);
            }
            let entries_field = map_entries_field(k, v);
            let DataType::Struct(entry_fields) = entries_field.data_type() else {
                return Err("map entries are not a struct".into());
            };
            let entries = StructArray::try_new(entry_fields.clone(), vec![array(k, &keys)?, array(v, &values)?], None)
                .map_err(|e| e.to_string())?;
            let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
            Arc::new(MapArray::try_new(entries_field, offsets, entries, nulls_of(valid), false).map_err(|e| e.to_string())?)
        }
    })
}

/// Validity of struct-like values, checking each present value is what the shape expects.
fn struct_validity(vals: &[Option<&Value>], what: &str, fits: impl Fn(&Value) -> bool) -> R<Vec<bool>> {
    // A loop into a vector of the exact length: collecting a fallible iterator grows by doubling.
    let mut valid = Vec::with_capacity(vals.len());
    for v in vals {
        valid.push(match present(*v) {
            None => false,
            Some(v) if fits(v) => true,
            Some(o) => return Err(mismatch(what, o)),
        });
    }
    Ok(valid)
}

/// The child arrays of a struct-like column, one per field column: the field of each value
/// `fields_of` takes (by position, else by name), null where the value is null.
fn field_arrays(columns: &[Column], vals: &[Option<&Value>], fields_of: impl for<'v> Fn(&'v Value) -> Option<&'v Vec<(String, Value)>>) -> R<Vec<ArrayRef>> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut child: Vec<Option<&Value>> = Vec::with_capacity(vals.len());
            for v in vals {
                child.push(match present(*v).and_then(&fields_of) {
                    Some(fields) => field(fields, i, c.field.name())?,
                    None => None,
                });
            }
            array(c, &child)
        })
        .collect()
}

/// Field `name` of a decoded struct: at position `i` (the serializer's order), else by name.
fn field<'a>(fields: &'a [(String, Value)], i: usize, name: &str) -> R<Option<&'a Value>> {
    match fields.get(i) {
        Some((n, v)) if n == name => Ok(Some(v)),
        _ => fields.iter().find(|(n, _)| n == name).map(|(_, v)| Some(v)).ok_or_else(|| format!("no field {name} in the value")),
    }
}

/// A list offset: Arrow's `List` counts elements in `i32`.
fn offset(n: usize) -> R<i32> {
    i32::try_from(n).map_err(|_| format!("more than {} list elements in one batch", i32::MAX))
}

/// The unscaled value of a plain decimal text (`"-6.85"`) at `scale`.
fn unscaled(text: &str, scale: i8) -> R<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).map_err(|_| format!("negative scale {scale}"))?;
    if frac.len() > scale || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(format!("{text} is not a decimal of scale {scale}"));
    }
    let all = format!("{int}{frac}{}", "0".repeat(scale - frac.len()));
    let v: i128 = all.parse().map_err(|_| format!("{text} does not fit Decimal128"))?;
    Ok(if neg { -v } else { v })
}

/// Seconds and nanoseconds since the epoch of an instant (`utc`) or a local date-time (taken as
/// UTC, as Arrow's zone-less timestamps are).
fn epoch(v: &Value, utc: bool) -> Option<(i64, u32)> {
    match (v, utc) {
        (Value::Instant { seconds, nanos }, true) => Some((*seconds, *nanos)),
        (Value::LocalDateTime { date, time }, false) => {
            let (Value::LocalDate { year, month, day }, Value::LocalTime { hour, minute, second, nano }) = (date.as_ref(), time.as_ref()) else {
                return None;
            };
            let days = days_from_civil(i64::from(*year), *month, *day);
            let secs = days.checked_mul(86_400)?.checked_add(i64::from(*hour) * 3600 + i64::from(*minute) * 60 + i64::from(*second))?;
            Some((secs, *nano))
        }
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
