//! Arrow cells back into the dump's JSON form of a value (`formats/dump.md`), the inverse of the
//! export's column mapping (`formats/parquet-export.md`, "value read back as"): the serializers
//! then read that JSON ([`crate::readers::serializers::TypeSerializer::value_from_json`]).
//! The field is the export's own for the state (its metadata says how a `Utf8` or `Binary`
//! column maps back), so a file rewritten by a tool that dropped field metadata still imports.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::Array;
use arrow_schema::{DataType, Field, TimeUnit};
use serde_json::{json, Value as Json};

use crate::model::value::Value;
use crate::readers::serializers::table::decimal_text_i128;

/// Field metadata keys the export writes (`export::schema`).
const ENCODING: &str = "flinksnap.encoding";
const OPAQUE_CLASS: &str = "flinksnap.opaque_class";

fn float(f: f64) -> Json {
    match serde_json::Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The dump JSON of row `row` of `array`, a column (or nested child) shaped as `field` says.
pub(crate) fn cell(field: &Field, array: &dyn Array, row: usize) -> Result<Json, String> {
    if array.is_null(row) {
        return Ok(Json::Null);
    }
    let encoding = field.metadata().get(ENCODING).map(String::as_str);
    Ok(match array.data_type() {
        DataType::Null => Json::Null,
        DataType::Boolean => Json::Bool(array.as_boolean().value(row)),
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        // A Java float is exactly an f32: widened here, narrowed again by its serializer.
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = match array.data_type() {
                DataType::Utf8 => array.as_string::<i32>().value(row),
                DataType::LargeUtf8 => array.as_string::<i64>().value(row),
                _ => array.as_string_view().value(row),
            };
            if encoding == Some("json") {
                serde_json::from_str(text).map_err(|e| format!("not the JSON text this column holds: {e}"))?
            } else {
                Json::String(text.to_owned())
            }
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let b = match array.data_type() {
                DataType::Binary => array.as_binary::<i32>().value(row),
                DataType::LargeBinary => array.as_binary::<i64>().value(row),
                _ => array.as_binary_view().value(row),
            };
            match (encoding, field.metadata().get(OPAQUE_CLASS)) {
                (Some("opaque"), Some(class)) => json!({"class": class, "hex": hex(b)}),
                _ => json!({"hex": hex(b)}),
            }
        }
        DataType::Struct(_) => {
            let s = array.as_struct();
            let DataType::Struct(fields) = field.data_type() else { return Err(format!("expected {}, found a struct", field.data_type())) };
            let child = |name: &str| -> Result<Json, String> {
                let (i, f) = fields.find(name).ok_or_else(|| format!("no field {name}"))?;
                cell(f, s.column(i).as_ref(), row).map_err(|e| format!("{name}: {e}"))
            };
            if encoding == Some("either") {
                return Ok(match child("is_left")? {
                    Json::Bool(true) => json!({"left": child("left")?}),
                    _ => json!({"right": child("right")?}),
                });
            }
            let mut m = serde_json::Map::new();
            for f in fields.iter() {
                let v = child(f.name())?;
                // A row's kind is printed only when not an insertion.
                if encoding == Some("row") && f.name() == "rowKind" && (v == "+I" || v.is_null()) {
                    continue;
                }
                m.insert(f.name().clone(), v);
            }
            Json::Object(m)
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let (values, range) = match array.data_type() {
                DataType::List(_) => {
                    let l = array.as_list::<i32>();
                    let o = l.value_offsets();
                    (l.values().clone(), o[row] as usize..o[row + 1] as usize)
                }
                _ => {
                    let l = array.as_list::<i64>();
                    let o = l.value_offsets();
                    (l.values().clone(), o[row] as usize..o[row + 1] as usize)
                }
            };
            let item = match field.data_type() {
                DataType::List(f) | DataType::LargeList(f) => f.clone(),
                other => return Err(format!("expected {other}, found a list")),
            };
            Json::Array(range.enumerate().map(|(i, r)| cell(&item, values.as_ref(), r).map_err(|e| format!("element {i}: {e}"))).collect::<Result<_, _>>()?)
        }
        DataType::Map(_, _) => {
            let m = array.as_map();
            let DataType::Map(entries, _) = field.data_type() else { return Err(format!("expected {}, found a map", field.data_type())) };
            let DataType::Struct(kv) = entries.data_type() else { return Err("map entries are not a struct".into()) };
            let (kf, vf) = (&kv[0], &kv[1]);
            let o = m.value_offsets();
            let (keys, values) = (m.keys(), m.values());
            let mut out = Vec::new();
            for (i, r) in (o[row] as usize..o[row + 1] as usize).enumerate() {
                let k = cell(kf, keys.as_ref(), r).map_err(|e| format!("map key {i}: {e}"))?;
                let v = cell(vf, values.as_ref(), r).map_err(|e| format!("map value {i}: {e}"))?;
                out.push(json!({"key": k, "value": v}));
            }
            Json::Array(out)
        }
        DataType::Timestamp(unit, zone) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            let (seconds, nanos) = split(v, *unit);
            let text = Value::Instant { seconds, nanos }.iso8601().unwrap_or_default();
            // With a zone the value is an instant (TIMESTAMP_LTZ, java.util.Date, java.sql.*);
            // without one a wall-clock date-time (TIMESTAMP), stored as if in UTC.
            match zone {
                Some(_) => Json::String(text),
                None => Json::String(text.trim_end_matches('Z').to_owned()),
            }
        }
        DataType::Date32 => {
            let days = i64::from(array.as_primitive::<Date32Type>().value(row));
            let text = Value::Instant { seconds: days * 86_400, nanos: 0 }.iso8601().unwrap_or_default();
            Json::String(text.split('T').next().unwrap_or_default().to_owned())
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let (nanos_of_day, unit) = match array.data_type() {
                DataType::Time32(TimeUnit::Second) => (i64::from(array.as_primitive::<Time32SecondType>().value(row)) * 1_000_000_000, "s"),
                DataType::Time32(_) => (i64::from(array.as_primitive::<Time32MillisecondType>().value(row)) * 1_000_000, "ms"),
                DataType::Time64(TimeUnit::Microsecond) => (array.as_primitive::<Time64MicrosecondType>().value(row) * 1000, "us"),
                _ => (array.as_primitive::<Time64NanosecondType>().value(row), "ns"),
            };
            if !(0..86_400_000_000_000).contains(&nanos_of_day) {
                return Err(format!("time of day {nanos_of_day} ns ({unit} column) is not within a day"));
            }
            let secs = nanos_of_day / 1_000_000_000;
            let t = Value::LocalTime { hour: (secs / 3600) as u8, minute: (secs / 60 % 60) as u8, second: (secs % 60) as u8, nano: (nanos_of_day % 1_000_000_000) as u32 };
            Json::String(t.iso8601().unwrap_or_default())
        }
        DataType::Decimal128(_, scale) => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            match u32::try_from(*scale) {
                Ok(scale) => Json::String(decimal_text_i128(v, scale)),
                // A negative scale: the unscaled value times 10^-scale.
                Err(_) => Json::String(if v == 0 { "0".into() } else { format!("{v}{}", "0".repeat(scale.unsigned_abs() as usize)) }),
            }
        }
        // INTERVAL DAY TO SECOND: milliseconds.
        DataType::Duration(unit) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<DurationSecondType>().value(row).checked_mul(1000),
                TimeUnit::Millisecond => Some(array.as_primitive::<DurationMillisecondType>().value(row)),
                TimeUnit::Microsecond => {
                    let us = array.as_primitive::<DurationMicrosecondType>().value(row);
                    (us % 1000 == 0).then_some(us / 1000)
                }
                TimeUnit::Nanosecond => {
                    let ns = array.as_primitive::<DurationNanosecondType>().value(row);
                    (ns % 1_000_000 == 0).then_some(ns / 1_000_000)
                }
            };
            json!(v.ok_or_else(|| format!("duration {} is not a whole number of milliseconds", array.data_type()))?)
        }
        other => {
            return Err(format!(
                "values of Arrow type {other} cannot be imported (flinksnap imports Null, Boolean, integers, floats, Decimal128, Utf8, Binary, \
                 Timestamp, Date32, Time32, Time64, Duration, Struct, List and Map columns)"
            ))
        }
    })
}

/// Seconds and nanoseconds of the second of a timestamp `v` in `unit` since the epoch.
fn split(v: i64, unit: TimeUnit) -> (i64, u32) {
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    (v.div_euclid(per_second), (v.rem_euclid(per_second) * (1_000_000_000 / per_second)) as u32)
}


#[cfg(test)]
mod tests {
    use crate::export::arrays::array;
    use crate::export::schema::{column, type_summary};
    use crate::model::value::{RowKind, Value};
    use crate::readers::serializers::{SerializerKind as K, SimpleType as S, TypeSerializer};

    fn ser(kind: K) -> TypeSerializer {
        TypeSerializer::new("test.SerializerSnapshot".into(), 1, kind)
    }

    fn simple(t: S) -> TypeSerializer {
        ser(K::Simple(t))
    }

    /// Temporal and decimal values through their Arrow columns and back (issue 19): the column
    /// export builds (`Timestamp` of every unit with and without zone, `Date32`, `Time32(ms)`,
    /// `Time64(ns)`, `Decimal128`, `Duration(ms)`), read by import's cells into the dump's JSON, read
    /// by the serializer: the same value, and the JSON the dump prints for it.
    #[test]
    fn temporal_and_decimal_columns_read_back_as_the_same_values() {
        use crate::readers::serializers::table::{LogicalType, TableSerializer as T, TimestampKind, TypeKind};
        let table = |t: T| ser(K::Table(Box::new(t)));
        let ty = |kind: TypeKind| LogicalType { nullable: true, kind };
        let instant = |seconds: i64, nanos: u32| Value::Instant { seconds, nanos };
        let date = |year: i32, month: u8, day: u8| Value::LocalDate { year, month, day };
        let time = |hour: u8, minute: u8, second: u8, nano: u32| Value::LocalTime { hour, minute, second, nano };
        let date_time = |d: Value, t: Value| Value::LocalDateTime { date: Box::new(d), time: Box::new(t) };
        let dec = |s: &str| Value::BigDecimal(s.into());
        let cases: Vec<(TypeSerializer, &str, Vec<Value>)> = vec![
            // java.util.Date, java.sql.Date and Time: epoch milliseconds.
            (simple(S::Date), "Timestamp(ms, UTC)", vec![instant(-1, 5_000_000), instant(1_700_000_000, 0), Value::Null]),
            (simple(S::SqlDate), "Timestamp(ms, UTC)", vec![instant(-86_400 * 365, 0)]),
            (simple(S::SqlTime), "Timestamp(ms, UTC)", vec![instant(3_600, 999_000_000)]),
            (simple(S::LocalTime), "Time64(ns)", vec![time(23, 59, 59, 999_999_999), time(0, 0, 0, 0), Value::Null]),
            (simple(S::Instant), "Utf8", vec![instant(-62_135_596_801, 1)]),
            (simple(S::LocalDateTime), "Utf8", vec![date_time(date(2024, 2, 29), time(1, 2, 3, 4))]),
            (simple(S::BigDecimal), "Utf8", vec![dec("-1.23E+5"), dec("0.000")]),
            // SQL: TIMESTAMP(p) by its unit, DECIMAL compact and not.
            (table(T::Timestamp { precision: 0 }), "Timestamp(s)", vec![date_time(date(1969, 12, 31), time(23, 59, 59, 0))]),
            (table(T::Timestamp { precision: 3 }), "Timestamp(ms)", vec![date_time(date(2024, 1, 1), time(0, 0, 36, 123_000_000))]),
            (table(T::Timestamp { precision: 6 }), "Timestamp(us)", vec![date_time(date(1900, 1, 1), time(12, 0, 0, 123_456_000))]),
            (table(T::Timestamp { precision: 9 }), "Timestamp(ns)", vec![date_time(date(2262, 4, 11), time(23, 47, 16, 854_775_807))]),
            (table(T::Decimal { precision: 10, scale: 4 }), "Decimal128(10, 4)", vec![dec("0.9500"), dec("-123456.0001")]),
            (table(T::Decimal { precision: 38, scale: 2 }), "Decimal128(38, 2)", vec![dec("999999999999999999999999999999999999.99"), dec("-0.01")]),
            (
                table(T::RowData {
                    types: vec![
                        ty(TypeKind::TimestampLtz { precision: 3, kind: TimestampKind::Rowtime }),
                        ty(TypeKind::TimestampLtz { precision: 9, kind: TimestampKind::Regular }),
                        ty(TypeKind::Date),
                        ty(TypeKind::Time(0)),
                        ty(TypeKind::IntervalDayTime { resolution: "DAY_TO_SECOND".into(), day_precision: 2, fractional_precision: 3 }),
                        ty(TypeKind::Decimal { precision: 20, scale: 0 }),
                    ],
                    fields: Vec::new(),
                    names: None,
                }),
                "Struct<f0: Timestamp(ms, UTC), f1: Timestamp(ns, UTC), f2: Date32, f3: Time32(ms), f4: Duration(ms), f5: Decimal128(20, 0), rowKind: Utf8>",
                vec![
                    Value::Row {
                        kind: RowKind::UpdateAfter,
                        fields: vec![
                            ("f0".into(), instant(1_704_067_236, 5_000_000)),
                            ("f1".into(), instant(-1, 1)),
                            ("f2".into(), date(-5, 1, 1)),
                            ("f3".into(), time(10, 22, 22, 123_000_000)),
                            ("f4".into(), Value::Int(-86_400_001)),
                            ("f5".into(), dec("12345678901234567890")),
                        ],
                    },
                    Value::Row { kind: RowKind::Insert, fields: (0..6).map(|i| (format!("f{i}"), Value::Null)).collect() },
                ],
            ),
        ];
        for (s, want_type, vals) in cases {
            let col = column("v", &s, true);
            assert_eq!(type_summary(col.field.data_type()), want_type, "{s:?}");
            let refs: Vec<Option<&Value>> = vals.iter().map(Some).collect();
            let a = array(&col, &refs).unwrap_or_else(|e| panic!("{want_type}: {e}"));
            for (row, v) in vals.iter().enumerate() {
                let j = super::cell(&col.field, a.as_ref(), row).unwrap_or_else(|e| panic!("{want_type} row {row}: {e}"));
                assert_eq!(j, v.to_json(), "{want_type} row {row}: the dump's JSON");
                assert_eq!(&s.value_from_json(&j).unwrap(), v, "{want_type} row {row}");
            }
        }
    }
}
