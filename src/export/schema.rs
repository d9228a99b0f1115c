//! Arrow schemas from Flink's serializer snapshots: one [`Column`] per serializer, derived from
//! the [`TypeSerializer`] alone so that a state without any entry still gets its typed schema.
//! The mapping is specified in `formats/parquet-export.md`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, TimeUnit};

use crate::readers::serializers::{SerializerKind as K, SimpleType, TypeSerializer};

/// Field metadata: the serializer snapshot class a column was derived from.
pub const META_SERIALIZER: &str = "flinksnap.serializer";
/// Field metadata: for opaque (Binary) columns, the class of the values Kryo, a user `Value`
/// type or an unknown serializer wrote (what `dump` prints as `"class"`).
pub const META_OPAQUE_CLASS: &str = "flinksnap.opaque_class";
/// Field metadata: how a column's values map back to the dump form when its Arrow type alone
/// does not say it (`json`, `either`, `row`, `opaque`).
pub const META_ENCODING: &str = "flinksnap.encoding";
/// Field metadata: a Java enum's constants, as a JSON array in ordinal order.
pub const META_ENUM_CONSTANTS: &str = "flinksnap.enum_constants";
/// Field metadata: the Avro writer schema of an Avro column.
pub const META_AVRO_SCHEMA: &str = "flinksnap.avro_schema";

/// The name of the field holding a [`crate::model::value::RowKind`] in a `Row` struct, as the
/// dump form names it.
pub const ROW_KIND_FIELD: &str = crate::model::value::ROW_KIND_KEY;

/// How the values of one column are laid out, with everything needed to build its arrays.
#[derive(Debug, Clone)]
pub struct Column {
    /// The Arrow field (name, type, nullability, metadata).
    pub field: FieldRef,
    /// How [`crate::model::value::Value`]s become arrays of that type.
    pub shape: Shape,
}

/// What a column holds. Every variant names the [`crate::model::value::Value`] variants it
/// accepts; [`crate::model::value::Value::Null`] is a null in every nullable column.
#[derive(Debug, Clone)]
pub enum Shape {
    /// Arrow `Null`: VoidNamespace, `Void`, `NullValue`, GlobalWindow (always null).
    Null,
    /// `Boolean` from `Value::Bool`.
    Bool,
    /// `Int8` from `Value::Int`.
    Int8,
    /// `Int16` from `Value::Int`.
    Int16,
    /// `Int32` from `Value::Int`.
    Int32,
    /// `Int64` from `Value::Int`.
    Int64,
    /// `Float32` from `Value::Float` (a widened Java `float`, narrowed back exactly).
    Float32,
    /// `Float64` from `Value::Float`.
    Float64,
    /// `Utf8` from `Value::String`, `Char`, `BigInteger`, `BigDecimal` and `Enum`.
    Text,
    /// `Utf8` ISO-8601 text of a temporal value (`Instant`, `LocalDate`, `LocalDateTime`, SQL
    /// timestamps): no Arrow type holds their whole Java range.
    Iso8601,
    /// `Binary` from `Value::Bytes` (`byte[]`).
    Binary,
    /// `Binary` from `Value::Opaque`: bytes flinksnap cannot decode without the JVM.
    Opaque,
    /// `Timestamp(ms, UTC)` from `Value::Instant` of a Java type that stores epoch millis
    /// (`java.util.Date`, `java.sql.Date`, `java.sql.Time`): exact for every value.
    TimestampMillis,
    /// `Time64(ns)` from `Value::LocalTime`: exact for every value.
    TimeNanos,
    /// `Decimal128(precision, scale)` from `Value::BigDecimal` (SQL `DECIMAL`).
    Decimal128 {
        /// Precision, 1..=38.
        precision: u8,
        /// Scale.
        scale: i8,
    },
    /// `Timestamp(unit)` from `Value::LocalDateTime` (SQL `TIMESTAMP(p)`), or
    /// `Timestamp(unit, "UTC")` from `Value::Instant` (SQL `TIMESTAMP_LTZ(p)`).
    Timestamp {
        /// The unit of the precision.
        unit: TimeUnit,
        /// With the UTC zone (an instant).
        utc: bool,
    },
    /// `Date32` from `Value::LocalDate` (SQL `DATE`).
    Date32,
    /// `Time32(ms)` from `Value::LocalTime` (SQL `TIME`, milliseconds of the day).
    TimeMillis,
    /// `Duration(ms)` from `Value::Int` milliseconds (SQL `INTERVAL DAY TO SECOND`).
    DurationMillis,
    /// `Struct{start, end}` (Int64 epoch millis) from `Value::TimeWindow`.
    TimeWindow,
    /// `Struct` from `Value::Struct` (POJO, Java and Scala tuples, TTL wrapper, timer),
    /// fields matched by name.
    Struct(Vec<Column>),
    /// `Struct{f0, …, rowKind}` from `Value::Row`; `rowKind` (`+I`, `-U`, `+U`, `-D`) only
    /// when the serializer stores row kinds.
    Row {
        /// The fields `f0` ….
        fields: Vec<Column>,
        /// Whether a `rowKind` field follows them.
        row_kind: bool,
    },
    /// `Struct{is_left, left, right}` from `Value::Left` / `Value::Right` (Java and Scala
    /// `Either`); `is_left` keeps `Left(null)` apart from `Right(null)`.
    Either(Box<Column>, Box<Column>),
    /// `List` from `Value::List`.
    List(Box<Column>),
    /// `Map` (entries `key`, `value`) from `Value::Map`. Flink's map serializers reject null keys,
    /// as Arrow does.
    Map(Box<Column>, Box<Column>),
    /// `Utf8` holding the value's dump JSON: values with no single Arrow shape (Avro, POJOs with
    /// subclasses, empty structs, composites with an undecodable part that may become opaque as
    /// a whole).
    Json,
}

impl Shape {
    /// Whether a value of this shape can contain `Value::Opaque` (opaque and JSON columns,
    /// at any depth).
    pub fn may_hold_opaque(&self) -> bool {
        match self {
            Shape::Opaque | Shape::Json => true,
            Shape::Struct(fields) | Shape::Row { fields, .. } => fields.iter().any(|c| c.shape.may_hold_opaque()),
            Shape::Either(a, b) | Shape::Map(a, b) => a.shape.may_hold_opaque() || b.shape.may_hold_opaque(),
            Shape::List(item) => item.shape.may_hold_opaque(),
            _ => false,
        }
    }
}

/// The column for values of `ser`, named `name`; `nullable` when the position may hold a null
/// (a map value, a POJO field) even if the serializer itself writes none.
pub fn column(name: &str, ser: &TypeSerializer, nullable: bool) -> Column {
    let nullable = nullable || can_be_null(ser);
    let mut meta = HashMap::from([(META_SERIALIZER.to_owned(), ser.class_name().to_owned())]);
    let shape = shape_of(ser, &mut meta);
    let field = Field::new(name, data_type(&shape), nullable).with_metadata(meta);
    Column { field: Arc::new(field), shape }
}

/// A column not derived from a serializer (e.g. `key_group`).
pub fn plain(name: &str, shape: Shape, nullable: bool) -> Column {
    Column { field: Arc::new(Field::new(name, data_type(&shape), nullable)), shape }
}

fn shape_of(ser: &TypeSerializer, meta: &mut HashMap<String, String>) -> Shape {
    // Undecodable serializers keep their bytes: the whole value is opaque.
    if ser.is_opaque() {
        if is_self_opaque(ser) {
            meta.insert(META_OPAQUE_CLASS.into(), ser.opaque_class().to_owned());
            meta.insert(META_ENCODING.into(), "opaque".into());
            return Shape::Opaque;
        }
        // A composite with an undecodable part: a value is decoded up to that part, and the
        // part (or, when it is not last, the whole value) becomes opaque bytes. No one Arrow
        // type holds both outcomes; JSON holds each exactly as `dump` prints it.
        meta.insert(META_ENCODING.into(), "json".into());
        return Shape::Json;
    }
    match ser.kind() {
        K::Simple(t) => simple(*t, meta),
        K::PrimitiveArray(SimpleType::Byte) => Shape::Binary,
        K::PrimitiveArray(t) => {
            let mut m = HashMap::new();
            let elem = simple(*t, &mut m);
            // Only String[] elements can be null; primitive array elements never are.
            let nullable = *t == SimpleType::String;
            let f = Field::new("item", data_type(&elem), nullable).with_metadata(m);
            Shape::List(Box::new(Column { field: Arc::new(f), shape: elem }))
        }
        K::Enum { constants, .. } => {
            meta.insert(META_ENUM_CONSTANTS.into(), serde_json::Value::from(constants.clone()).to_string());
            Shape::Text
        }
        K::List(e) => Shape::List(Box::new(column("item", e, false))),
        // These write a null flag per element.
        K::Set(e) => Shape::List(Box::new(column("item", e, true))),
        K::GenericArray { element, .. } | K::ScalaTraversable { element, .. } => Shape::List(Box::new(column("item", element, true))),
        K::Map(k, v) => {
            // Arrow requires non-null map keys; Flink's map serializers write no null key either.
            let mut key = column("key", k, false);
            key.field = Arc::new(key.field.as_ref().clone().with_nullable(false));
            Shape::Map(Box::new(key), Box::new(column("value", v, true)))
        }
        K::Tuple { fields, .. } => positional(fields, "f", 0, meta),
        K::ScalaProduct { fields, .. } => positional(fields, "_", 1, meta),
        K::Row { fields, supports_row_kind } => {
            meta.insert(META_ENCODING.into(), "row".into());
            // Row fields are nullable: the row's mask has a null bit for each.
            let fields = fields.iter().enumerate().map(|(i, f)| column(&format!("f{i}"), f, true)).collect();
            Shape::Row { fields, row_kind: *supports_row_kind }
        }
        K::Pojo(p) => {
            // A subclass value carries the subclass's fields, which the base class's struct
            // cannot hold; an empty struct cannot be written to Parquet.
            if !p.registered_subclasses.is_empty() || !p.non_registered_subclasses.is_empty() || p.fields.is_empty() {
                meta.insert(META_ENCODING.into(), "json".into());
                return Shape::Json;
            }
            // Every POJO field has a null flag.
            Shape::Struct(p.fields.iter().filter_map(|(name, s)| s.as_ref().map(|s| column(name, s, true))).collect())
        }
        K::Nullable { inner, .. } => shape_of(inner, meta),
        K::ScalaOption(inner) => shape_of(inner, meta),
        K::Either(l, r) | K::ScalaEither(l, r) => {
            meta.insert(META_ENCODING.into(), "either".into());
            Shape::Either(Box::new(column("left", l, true)), Box::new(column("right", r, true)))
        }
        K::GenericValue { .. } => match ser.value_class_type() {
            Some(t) => simple(t, meta),
            None => {
                meta.insert(META_OPAQUE_CLASS.into(), ser.opaque_class().to_owned());
                meta.insert(META_ENCODING.into(), "opaque".into());
                Shape::Opaque
            }
        },
        K::Avro(a) => {
            // Avro records can be recursive and unions of any branches; the dump JSON keeps
            // every value exactly. The writer schema goes along for readers that want it.
            meta.insert(META_ENCODING.into(), "json".into());
            meta.insert(META_AVRO_SCHEMA.into(), a.schema_json.clone());
            Shape::Json
        }
        K::Ttl { timestamp, value } => {
            Shape::Struct(vec![column("lastAccessTimestamp", timestamp, false), column("userValue", value, false)])
        }
        K::Table(t) => super::sql::table_shape(t, meta),
        K::Timer { key, namespace } => Shape::Struct(vec![
            plain("timestamp", Shape::Int64, false),
            column("key", key, false),
            column("namespace", namespace, false),
        ]),
        // Kryo and unknown serializers are opaque (handled above); a new kind added to the
        // serializer model is kept exactly until it gets a mapping of its own.
        _ => {
            meta.insert(META_ENCODING.into(), "json".into());
            Shape::Json
        }
    }
}

/// Whether `ser` itself, not only something nested in it, cannot decode: then every value is
/// `Value::Opaque` (or null).
fn is_self_opaque(ser: &TypeSerializer) -> bool {
    match ser.kind() {
        K::Kryo { .. } | K::Opaque { .. } => true,
        K::GenericValue { .. } => ser.value_class_type().is_none(),
        K::Avro(a) => a.schema.is_err(),
        K::Pojo(p) => p.fields.iter().any(|(_, s)| s.is_none()),
        // A Nullable or Option wrapper is transparent: its inner serializer decides.
        K::Nullable { inner, .. } | K::ScalaOption(inner) => is_self_opaque(inner),
        _ => false,
    }
}

fn positional(fields: &[TypeSerializer], prefix: &str, first: usize, meta: &mut HashMap<String, String>) -> Shape {
    if fields.is_empty() {
        meta.insert(META_ENCODING.into(), "json".into());
        return Shape::Json;
    }
    Shape::Struct(fields.iter().enumerate().map(|(i, f)| column(&format!("{prefix}{}", i + first), f, false)).collect())
}

fn simple(t: SimpleType, meta: &mut HashMap<String, String>) -> Shape {
    use SimpleType as S;
    match t {
        S::Boolean | S::BooleanValue => Shape::Bool,
        S::Byte | S::ByteValue => Shape::Int8,
        S::Short | S::ShortValue => Shape::Int16,
        S::Int | S::IntValue => Shape::Int32,
        S::Long | S::LongValue => Shape::Int64,
        S::Float | S::FloatValue => Shape::Float32,
        S::Double | S::DoubleValue => Shape::Float64,
        S::Char | S::CharValue | S::String | S::StringValue | S::BigInteger | S::BigDecimal => Shape::Text,
        S::Date | S::SqlDate | S::SqlTime => Shape::TimestampMillis,
        S::LocalTime => Shape::TimeNanos,
        S::Instant | S::SqlTimestamp | S::LocalDate | S::LocalDateTime => Shape::Iso8601,
        S::Void | S::VoidNamespace | S::GlobalWindow | S::NullValue => Shape::Null,
        S::TimeWindow => Shape::TimeWindow,
        // Tuple0 is an empty struct, which Parquet cannot store.
        S::Tuple0 => {
            meta.insert(META_ENCODING.into(), "json".into());
            Shape::Json
        }
        // SimpleType is non-exhaustive: a new simple type is kept exactly as JSON.
        #[allow(unreachable_patterns)]
        _ => {
            meta.insert(META_ENCODING.into(), "json".into());
            Shape::Json
        }
    }
}

/// Whether a value of `ser` can decode as null: the serializer writes a null marker.
fn can_be_null(ser: &TypeSerializer) -> bool {
    use SimpleType as S;
    if ser.is_opaque() {
        return true;
    }
    match ser.kind() {
        K::Simple(t) => matches!(
            t,
            S::String
                | S::BigInteger
                | S::BigDecimal
                | S::Instant
                | S::LocalDate
                | S::LocalTime
                | S::LocalDateTime
                | S::Date
                | S::SqlDate
                | S::SqlTime
                | S::SqlTimestamp
                | S::Void
                | S::VoidNamespace
                | S::GlobalWindow
                | S::NullValue
        ),
        K::Pojo(_) | K::Nullable { .. } | K::ScalaOption(_) | K::Avro(_) | K::Kryo { .. } | K::Opaque { .. } => true,
        K::GenericValue { .. } => ser.value_class_type().is_none_or(|t| t == S::NullValue),
        _ => false,
    }
}

/// The Arrow type of a shape.
pub fn data_type(shape: &Shape) -> DataType {
    match shape {
        Shape::Null => DataType::Null,
        Shape::Bool => DataType::Boolean,
        Shape::Int8 => DataType::Int8,
        Shape::Int16 => DataType::Int16,
        Shape::Int32 => DataType::Int32,
        Shape::Int64 => DataType::Int64,
        Shape::Float32 => DataType::Float32,
        Shape::Float64 => DataType::Float64,
        Shape::Text | Shape::Iso8601 | Shape::Json => DataType::Utf8,
        Shape::Binary | Shape::Opaque => DataType::Binary,
        Shape::TimestampMillis => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        Shape::TimeNanos => DataType::Time64(TimeUnit::Nanosecond),
        Shape::Decimal128 { precision, scale } => DataType::Decimal128(*precision, *scale),
        Shape::Timestamp { unit, utc } => DataType::Timestamp(*unit, utc.then(|| "UTC".into())),
        Shape::Date32 => DataType::Date32,
        Shape::TimeMillis => DataType::Time32(TimeUnit::Millisecond),
        Shape::DurationMillis => DataType::Duration(TimeUnit::Millisecond),
        Shape::TimeWindow => DataType::Struct(time_window_fields()),
        Shape::Struct(fields) => DataType::Struct(fields.iter().map(|c| c.field.clone()).collect()),
        Shape::Row { fields, row_kind } => DataType::Struct(row_fields(fields, *row_kind)),
        Shape::Either(l, r) => DataType::Struct(either_fields(l, r)),
        Shape::List(item) => DataType::List(item.field.clone()),
        Shape::Map(k, v) => DataType::Map(map_entries_field(k, v), false),
    }
}

/// `start` and `end` of a TimeWindow, epoch milliseconds as Flink stores them.
pub fn time_window_fields() -> Fields {
    Fields::from(vec![Field::new("start", DataType::Int64, false), Field::new("end", DataType::Int64, false)])
}

/// The fields of a `Row` struct.
pub fn row_fields(fields: &[Column], row_kind: bool) -> Fields {
    let mut v: Vec<FieldRef> = fields.iter().map(|c| c.field.clone()).collect();
    if row_kind {
        v.push(Arc::new(Field::new(ROW_KIND_FIELD, DataType::Utf8, false)));
    }
    Fields::from(v)
}

/// The fields of an `Either` struct.
pub fn either_fields(l: &Column, r: &Column) -> Fields {
    Fields::from(vec![Arc::new(Field::new("is_left", DataType::Boolean, false)), l.field.clone(), r.field.clone()])
}

/// The entries field of a map: a non-null struct of a non-null key and a value.
pub fn map_entries_field(k: &Column, v: &Column) -> FieldRef {
    Arc::new(Field::new("entries", DataType::Struct(Fields::from(vec![k.field.clone(), v.field.clone()])), false))
}

/// A short, readable form of an Arrow type for the manifest's schema summary, e.g.
/// `Struct<count: Int32, name: Utf8>`, `List<Int64>`, `Map<Utf8, Int64>`, `Timestamp(ms, UTC)`
/// (nullability and field metadata are in the files' own Arrow schema).
pub fn type_summary(t: &DataType) -> String {
    let join = |fs: &Fields| fs.iter().map(|f| format!("{}: {}", f.name(), type_summary(f.data_type()))).collect::<Vec<_>>().join(", ");
    match t {
        DataType::Struct(fs) => format!("Struct<{}>", join(fs)),
        DataType::List(item) => format!("List<{}>", type_summary(item.data_type())),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!("Map<{}, {}>", type_summary(kv[0].data_type()), type_summary(kv[1].data_type())),
            other => format!("Map<{}>", type_summary(other)),
        },
        DataType::Timestamp(unit, tz) => format!("Timestamp({}{})", unit_text(unit), tz.as_ref().map(|z| format!(", {z}")).unwrap_or_default()),
        DataType::Time64(unit) => format!("Time64({})", unit_text(unit)),
        DataType::Time32(unit) => format!("Time32({})", unit_text(unit)),
        DataType::Duration(unit) => format!("Duration({})", unit_text(unit)),
        other => format!("{other:?}"),
    }
}

fn unit_text(u: &TimeUnit) -> &'static str {
    match u {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    }
}
