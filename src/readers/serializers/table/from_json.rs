//! The dump's JSON form of the table runtime's values back into values, guided by the serializer
//! and the logical types of its rows: the inverse of `Value::to_json` on what `decode.rs` and
//! `binary.rs` give (`formats/sql-serializers.md` § "Writing").

use serde_json::Value as Json;

use super::binary::{decimal_text_bytes, decimal_text_i128};
use super::logical_type::{decimal_is_compact, LogicalType, TypeKind};
use super::TableSerializer as T;
use crate::model::value::{Value, ROW_KIND_KEY};
use crate::readers::serializers::encode::{unsupported, EncodeError};
use crate::readers::serializers::from_json::{bad, bytes_from_json, check_names, expected, float, integer, member, object, only_opaque, row_kind, simple_from_json, text, within};
use crate::readers::serializers::{SimpleType, TypeSerializer};

type E<T> = Result<T, EncodeError>;

/// The value of table serializer `t` for `j` (opaque `{"class", "hex"}` already taken).
pub(crate) fn value_from_json(t: &T, j: &Json, depth: usize) -> E<Value> {
    let d = depth + 1;
    Ok(match t {
        // Without names of its own (`f0`, `f1`, …) a row also takes the names a plan gave its
        // fields (`dump --plan`, `export --plan`), by position.
        T::RowData { types, fields, names } => row(types, &t.field_names(), Some(fields), names.is_none(), j, d)?,
        T::BinaryRow { .. } => return Err(only_opaque("values of a BinaryRowDataSerializer (no field types in its snapshot)", j)),
        T::StringData => Value::String(text(j, "a string")?.to_owned()),
        T::Decimal { precision, scale } => decimal(j, *precision, *scale)?,
        T::Timestamp { .. } => timestamp(j, false)?,
        T::Array { element } => list(element, j, d)?,
        T::Map { key, value } => map(key, value, j, d)?,
        T::RawValue(inner) => inner.value_from_json_at(j, d)?,
        T::External { internal, .. } | T::ListView(internal) | T::MapView(internal) | T::RowDataKey(internal) => internal.value_from_json_at(j, d)?,
        T::LinkedList { element, .. } => {
            let a = j.as_array().ok_or_else(|| expected("an array", j))?;
            Value::List(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| within(if x.is_null() { Ok(Value::Null) } else { element.value_from_json_at(x, d) }, || format!("list element {i}")))
                    .collect::<E<_>>()?,
            )
        }
        T::SortedMap { key, value, .. } | T::NullAwareMap(key, value) => {
            let a = j.as_array().ok_or_else(|| expected("an array of {\"key\", \"value\"}", j))?;
            let mut entries = Vec::with_capacity(a.len());
            for (i, x) in a.iter().enumerate() {
                let m = within(object(x, "{\"key\", \"value\"}"), || format!("map entry {i}"))?;
                let part = |name: &str, ser: &TypeSerializer| match m.get(name) {
                    None | Some(Json::Null) => Ok(Value::Null),
                    Some(x) => within(ser.value_from_json_at(x, d), || format!("map {name} {i}")),
                };
                entries.push((part("key", key)?, part("value", value)?));
            }
            Value::Map(entries)
        }
        T::WindowKey(key) => {
            let m = object(j, "a window key {\"window\", \"key\"}")?;
            let window = integer(member(m, "window")?, "an integer")?;
            Value::Struct { fields: vec![("window".into(), Value::Int(window)), ("key".into(), within(key.value_from_json_at(member(m, "key")?, d), || "key".into())?)] }
        }
        T::TimeWindow => simple_from_json(SimpleType::TimeWindow, j)?,
        T::CountWindow => {
            let m = object(j, "a count window {\"id\"}")?;
            Value::Struct { fields: vec![("id".into(), Value::Int(integer(member(m, "id")?, "an integer")?))] }
        }
        T::GlobalWindow | T::Null => match j {
            Json::Null => Value::Null,
            other => return Err(expected("null", other)),
        },
        T::SortedLong => Value::Int(integer(j, "an integer")?),
        T::Fields { names, fields } => {
            let m = object(j, "an object")?;
            check_names(m, names.iter().map(|n| (*n).to_owned()), "the value")?;
            let mut out = Vec::with_capacity(fields.len());
            for (name, f) in names.iter().zip(fields) {
                out.push(((*name).to_owned(), within(f.value_from_json_at(member(m, name)?, d), || format!("field {name}"))?));
            }
            Value::Struct { fields: out }
        }
    })
}

/// A row of `types` named `names`: an object of its fields (a missing or `null` field is null),
/// and `"rowKind"` when not an insertion. `by_position`: an object of exactly as many fields
/// under other names is taken in order (the names are `f0`… and the JSON's a plan's).
fn row(types: &[LogicalType], names: &[String], sers: Option<&[TypeSerializer]>, by_position: bool, j: &Json, depth: usize) -> E<Value> {
    if depth > super::binary::MAX_NESTING {
        return Err(bad(format!("rows nested deeper than {} levels", super::binary::MAX_NESTING)));
    }
    let m = object(j, "a row object")?;
    let kind = row_kind(m)?;
    let given: Vec<&String> = m.keys().filter(|k| *k != ROW_KIND_KEY).collect();
    let positional = by_position && given.len() == types.len() && given.iter().any(|k| !names.contains(k));
    if !positional {
        check_names(m, names.iter().cloned().chain([ROW_KIND_KEY.to_owned()]), "the row")?;
    }
    let mut fields = Vec::with_capacity(types.len());
    for (i, (ty, name)) in types.iter().zip(names).enumerate() {
        let x = if positional { m.get(given[i].as_str()) } else { m.get(name) };
        let v = match x {
            None | Some(Json::Null) => Value::Null,
            Some(x) => within(logical(ty, sers.and_then(|s| s.get(i)), x, depth), || format!("field {name} ({})", ty.summary()))?,
        };
        fields.push((name.clone(), v));
    }
    Ok(Value::Row { kind, fields })
}

fn list(elem: &LogicalType, j: &Json, depth: usize) -> E<Value> {
    let a = j.as_array().ok_or_else(|| expected("an array", j))?;
    Ok(Value::List(
        a.iter()
            .enumerate()
            .map(|(i, x)| within(if x.is_null() { Ok(Value::Null) } else { logical(elem, None, x, depth + 1) }, || format!("element {i}")))
            .collect::<E<_>>()?,
    ))
}

fn map(k: &LogicalType, v: &LogicalType, j: &Json, depth: usize) -> E<Value> {
    let a = j.as_array().ok_or_else(|| expected("an array of {\"key\", \"value\"}", j))?;
    let mut entries = Vec::with_capacity(a.len());
    for (i, x) in a.iter().enumerate() {
        let m = within(object(x, "{\"key\", \"value\"}"), || format!("map entry {i}"))?;
        let part = |name: &str, ty: &LogicalType| match m.get(name) {
            None | Some(Json::Null) => Ok(Value::Null),
            Some(x) => within(logical(ty, None, x, depth + 1), || format!("map {name} {i}")),
        };
        entries.push((part("key", k)?, part("value", v)?));
    }
    Ok(Value::Map(entries))
}

/// A value of logical type `ty` (`ser`: the field's serializer, where the row's snapshot stores
/// one).
fn logical(ty: &LogicalType, ser: Option<&TypeSerializer>, j: &Json, depth: usize) -> E<Value> {
    let ty = ty.storage();
    if let Some(v) = crate::readers::serializers::from_json::opaque(j) {
        return v;
    }
    let simple = |t: SimpleType| simple_from_json(t, j);
    Ok(match &ty.kind {
        TypeKind::Boolean => simple(SimpleType::Boolean)?,
        TypeKind::TinyInt | TypeKind::SmallInt | TypeKind::Integer | TypeKind::BigInt | TypeKind::IntervalYearMonth { .. } | TypeKind::IntervalDayTime { .. } => {
            Value::Int(integer(j, "an integer")?)
        }
        TypeKind::Float | TypeKind::Double => Value::Float(float(j)?),
        TypeKind::Char(_) | TypeKind::VarChar(_) => Value::String(text(j, "a string")?.to_owned()),
        TypeKind::Binary(_) | TypeKind::VarBinary(_) => bytes_from_json(j)?,
        TypeKind::Decimal { precision, scale } => decimal(j, *precision, *scale)?,
        TypeKind::Date => simple(SimpleType::LocalDate)?,
        TypeKind::Time(_) => simple(SimpleType::LocalTime)?,
        TypeKind::Timestamp { .. } => timestamp(j, false)?,
        TypeKind::TimestampLtz { .. } => timestamp(j, true)?,
        TypeKind::Array(e) => list(e, j, depth)?,
        TypeKind::Map(k, v) => map(k, v, j, depth)?,
        TypeKind::Multiset(e) => map(e, &LogicalType { nullable: false, kind: TypeKind::Integer }, j, depth)?,
        TypeKind::Row(_) | TypeKind::Structured { .. } => {
            let fields = ty.fields();
            let types: Vec<LogicalType> = fields.iter().map(|f| f.ty.clone()).collect();
            let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
            let nested = ser.and_then(TypeSerializer::table).and_then(T::row_field_serializers);
            row(&types, &names, nested, false, j, depth + 1)?
        }
        TypeKind::Raw { class, serializer, .. } => match (ser.and_then(TypeSerializer::table).and_then(T::raw_inner), serializer) {
            (Some(inner), _) => inner.value_from_json_at(j, depth + 1)?,
            (None, Some(t)) => simple(*t)?,
            (None, None) => return Err(only_opaque(&format!("raw values of {class}"), j)),
        },
        TypeKind::Null => match j {
            Json::Null => Value::Null,
            other => return Err(expected("null", other)),
        },
        TypeKind::Variant | TypeKind::Bitmap => return Err(only_opaque(&format!("{} values", ty.summary()), j)),
        TypeKind::TimestampTz(_) | TypeKind::Symbol | TypeKind::Unresolved | TypeKind::Descriptor | TypeKind::Distinct { .. } => {
            return Err(unsupported(format!("type {} has no binary form", ty.summary())));
        }
    })
}

/// A `DECIMAL(precision, scale)`: its text (or a JSON number), read at the type's scale and
/// printed as the decoder prints it (exactly `scale` fraction digits).
fn decimal(j: &Json, precision: u32, scale: u32) -> E<Value> {
    let t = match j {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        other => return Err(expected("a decimal number", other)),
    };
    let b = super::encode::unscaled_bytes(&t, scale, precision)?;
    Ok(Value::BigDecimal(if decimal_is_compact(precision) { decimal_text_i128(i128::from(super::encode::compact(&b)), scale) } else { decimal_text_bytes(&b, scale) }))
}

/// A `TIMESTAMP` (local date-time text) or `TIMESTAMP_LTZ` (instant text, `…Z`).
fn timestamp(j: &Json, instant: bool) -> E<Value> {
    let s = text(j, "a timestamp")?;
    let v = if instant { Value::parse_instant(s) } else { Value::parse_local_date_time(s) };
    v.ok_or_else(|| bad(format!("{s:?} is not {} (ISO-8601, as the dump prints it)", if instant { "an instant" } else { "a local date-time" })))
}
