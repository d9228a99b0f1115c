//! Arrow columns of SQL state (`formats/parquet-export.md` § "SQL types"): the table runtime's
//! serializers and every logical type of their rows, mapped to the Arrow type a SQL engine reads
//! back as the same SQL type (DECIMAL → `Decimal128(p, s)`, TIMESTAMP(p) → `Timestamp(unit)`,
//! TIMESTAMP_LTZ(p) → `Timestamp(unit, "UTC")`, DATE → `Date32`, TIME → `Time32(ms)`, ...).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{Field, TimeUnit};

use super::schema::{column, data_type, Column, Shape, META_ENCODING, META_OPAQUE_CLASS, META_SERIALIZER};
use crate::readers::serializers::table::{LogicalType, TableSerializer as T, TypeKind};
use crate::readers::serializers::TypeSerializer;

/// Field metadata: a logical type's SQL text (`DECIMAL(10, 2)`, `TIMESTAMP(3) *ROWTIME*`).
pub const META_SQL_TYPE: &str = "flinksnap.sql_type";
/// Field metadata: the unit of an integer column (`months` for INTERVAL YEAR TO MONTH).
pub const META_UNIT: &str = "flinksnap.unit";

/// The Arrow unit of a fractional-second precision.
fn unit(precision: u32) -> TimeUnit {
    match precision {
        0 => TimeUnit::Second,
        1..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

/// The shape of a table runtime serializer's values.
pub(super) fn table_shape(t: &T, meta: &mut HashMap<String, String>) -> Shape {
    match t {
        T::RowData { types, fields, .. } => {
            meta.insert(META_ENCODING.into(), "row".into());
            let names = t.field_names();
            let cols = types
                .iter()
                .enumerate()
                .map(|(i, ty)| logical_column(&names[i], ty, fields.get(i), true))
                .collect();
            Shape::Row { fields: cols, row_kind: true }
        }
        T::BinaryRow { .. } => {
            meta.insert(META_ENCODING.into(), "opaque".into());
            meta.insert(META_OPAQUE_CLASS.into(), "org.apache.flink.table.data.binary.BinaryRowData".into());
            Shape::Opaque
        }
        T::StringData => Shape::Text,
        T::Decimal { precision, scale } => Shape::Decimal128 { precision: *precision as u8, scale: *scale as i8 },
        T::Timestamp { precision } => Shape::Timestamp { unit: unit(*precision), utc: false },
        T::Array { element } => Shape::List(Box::new(logical_column("item", element, None, element.nullable))),
        T::Map { key, value } => map_shape(key, value),
        T::RawValue(inner) | T::External { internal: inner, .. } | T::ListView(inner) | T::MapView(inner) | T::RowDataKey(inner) => {
            column("x", inner, true).shape
        }
        T::LinkedList { element, .. } => Shape::List(Box::new(column("item", element, true))),
        T::SortedMap { key, value, .. } => {
            let mut k = column("key", key, false);
            k.field = Arc::new(k.field.as_ref().clone().with_nullable(false));
            Shape::Map(Box::new(k), Box::new(column("value", value, true)))
        }
        T::WindowKey(key) => Shape::Struct(vec![plain("window", Shape::Int64, false), column("key", key, false)]),
        T::TimeWindow => Shape::TimeWindow,
        T::CountWindow => Shape::Struct(vec![plain("id", Shape::Int64, false)]),
        T::GlobalWindow | T::Null => Shape::Null,
        T::SortedLong => Shape::Int64,
        T::Fields { names, fields } => Shape::Struct(names.iter().zip(fields).map(|(n, f)| column(n, f, true)).collect()),
        // null keys (which Arrow maps cannot hold) and anything newer: the dump JSON
        _ => {
            meta.insert(META_ENCODING.into(), "json".into());
            Shape::Json
        }
    }
}

fn plain(name: &str, shape: Shape, nullable: bool) -> Column {
    Column { field: Arc::new(Field::new(name, data_type(&shape), nullable)), shape }
}

fn map_shape(key: &LogicalType, value: &LogicalType) -> Shape {
    let mut k = logical_column("key", key, None, false);
    k.field = Arc::new(k.field.as_ref().clone().with_nullable(false));
    Shape::Map(Box::new(k), Box::new(logical_column("value", value, None, true)))
}

/// The column of a value of logical type `ty` (a row field, an array element, a map key or
/// value); `ser`: the field's serializer where the row's snapshot stores it (for raw values).
pub(crate) fn logical_column(name: &str, ty: &LogicalType, ser: Option<&TypeSerializer>, nullable: bool) -> Column {
    let mut meta = HashMap::from([(META_SQL_TYPE.to_owned(), ty.summary())]);
    if let Some(s) = ser {
        meta.insert(META_SERIALIZER.into(), s.class_name().to_owned());
    }
    let shape = logical_shape(ty, ser, &mut meta);
    let field = Field::new(name, data_type(&shape), nullable || ty.nullable).with_metadata(meta);
    Column { field: Arc::new(field), shape }
}

fn logical_shape(ty: &LogicalType, ser: Option<&TypeSerializer>, meta: &mut HashMap<String, String>) -> Shape {
    match &ty.storage().kind {
        TypeKind::Char(_) | TypeKind::VarChar(_) => Shape::Text,
        TypeKind::Boolean => Shape::Bool,
        TypeKind::Binary(_) | TypeKind::VarBinary(_) => Shape::Binary,
        TypeKind::Decimal { precision, scale } => Shape::Decimal128 { precision: *precision as u8, scale: *scale as i8 },
        TypeKind::TinyInt => Shape::Int8,
        TypeKind::SmallInt => Shape::Int16,
        TypeKind::Integer => Shape::Int32,
        TypeKind::BigInt => Shape::Int64,
        TypeKind::Float => Shape::Float32,
        TypeKind::Double => Shape::Float64,
        TypeKind::Date => Shape::Date32,
        TypeKind::Time(_) => Shape::TimeMillis,
        TypeKind::Timestamp { precision, .. } => Shape::Timestamp { unit: unit(*precision), utc: false },
        TypeKind::TimestampLtz { precision, .. } => Shape::Timestamp { unit: unit(*precision), utc: true },
        TypeKind::IntervalYearMonth { .. } => {
            meta.insert(META_UNIT.into(), "months".into());
            Shape::Int32
        }
        TypeKind::IntervalDayTime { .. } => Shape::DurationMillis,
        TypeKind::Array(e) => Shape::List(Box::new(logical_column("item", e, None, e.nullable))),
        TypeKind::Multiset(e) => {
            let count = LogicalType { nullable: false, kind: TypeKind::Integer };
            map_shape(e, &count)
        }
        TypeKind::Map(k, v) => map_shape(k, v),
        TypeKind::Row(_) | TypeKind::Structured { .. } => {
            let nested = ser.and_then(|s| s.table()).and_then(|t| match t {
                T::RowData { fields, .. } => Some(fields.as_slice()),
                _ => None,
            });
            let cols = ty.fields().iter().enumerate().map(|(i, f)| logical_column(&f.name, &f.ty, nested.and_then(|n| n.get(i)), true)).collect();
            Shape::Row { fields: cols, row_kind: false }
        }
        TypeKind::Raw { class, serializer, .. } => {
            if let Some(inner) = ser.and_then(|s| s.table()).and_then(|t| match t {
                T::RawValue(inner) => Some(inner),
                _ => None,
            }) {
                return column("x", inner, true).shape;
            }
            if let Some(t) = serializer {
                return column("x", &TypeSerializer::simple(*t), true).shape;
            }
            meta.insert(META_ENCODING.into(), "opaque".into());
            meta.insert(META_OPAQUE_CLASS.into(), class.clone());
            Shape::Opaque
        }
        TypeKind::Null => Shape::Null,
        TypeKind::Variant | TypeKind::Bitmap => {
            meta.insert(META_ENCODING.into(), "opaque".into());
            Shape::Opaque
        }
        _ => {
            meta.insert(META_ENCODING.into(), "json".into());
            Shape::Json
        }
    }
}
