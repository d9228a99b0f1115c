//! Magic numbers, versions and snapshot class names (`formats/serializers.md` § Snapshot classes).

/// `CompositeTypeSerializerSnapshot.MAGIC_NUMBER`.
pub const COMPOSITE_MAGIC: u32 = 911_108;
/// `NestedSerializersSnapshotDelegate.MAGIC_NUMBER`.
pub const NESTED_MAGIC: u32 = 1_333_245;
/// `NestedSerializersSnapshotDelegate` version.
pub const NESTED_VERSION: i32 = 1;
/// `CompositeTypeSerializerSnapshot.HIGHEST_LEGACY_READ_VERSION`: versions up to this one have no
/// composite magic and outer version.
pub const HIGHEST_LEGACY_COMPOSITE_VERSION: i32 = 2;
/// `TypeSerializerConfigSnapshot.ADAPTER_VERSION` (Flink ≤ 1.16).
pub const ADAPTER_VERSION: i32 = 0x7A53_C4F0;
/// `LinkedOptionalMapSerializer.HEADER`.
pub const OPTIONAL_MAP_HEADER: i64 = 0x4F2_C69A_3D70;

/// `TypeSerializerSnapshotSerializationProxy` version written by every release 1.7+.
pub const PROXY_VERSION: i32 = 2;
/// The pre-1.7 proxy version (read by 1.13–1.16 only).
pub const PROXY_VERSION_LEGACY: i32 = 1;

/// POJO value flags (`PojoSerializer`).
pub mod pojo_flags {
    /// The POJO is null; nothing follows.
    pub const IS_NULL: u8 = 1;
    /// Exactly the POJO class: the fields follow.
    pub const NO_SUBCLASS: u8 = 2;
    /// A subclass by name: `utf` class name, then that class's serializer bytes.
    pub const IS_SUBCLASS: u8 = 4;
    /// A registered subclass: `u8` tag, then that class's serializer bytes.
    pub const IS_TAGGED_SUBCLASS: u8 = 8;
}

use super::SimpleType;

const BASE: &str = "org.apache.flink.api.common.typeutils.base.";
const ARRAY: &str = "org.apache.flink.api.common.typeutils.base.array.";
const RUNTIME: &str = "org.apache.flink.api.java.typeutils.runtime.";
const SCALA: &str = "org.apache.flink.api.scala.typeutils.";

/// Which snapshot family a class name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A `SimpleTypeSerializerSnapshot` of a type in [`super::SimpleType`].
    Simple(super::SimpleType),
    /// A `SimpleTypeSerializerSnapshot` of a primitive array (or `String[]`), by element type.
    PrimitiveArray(super::SimpleType),
    /// `EnumSerializer$EnumSerializerSnapshot`.
    Enum,
    /// `ListSerializerSnapshot`.
    List,
    /// `MapSerializerSnapshot`.
    Map,
    /// `SetSerializerSnapshot` (2.0+).
    Set,
    /// `GenericArraySerializerSnapshot`.
    GenericArray,
    /// `TupleSerializerSnapshot`.
    Tuple,
    /// `RowSerializer$RowSerializerSnapshot`.
    Row,
    /// `PojoSerializerSnapshot`.
    Pojo,
    /// `NullableSerializer$NullableSerializerSnapshot`.
    Nullable,
    /// `JavaEitherSerializerSnapshot`.
    Either,
    /// `ValueSerializer$ValueSerializerSnapshot` and `CopyableValueSerializer$CopyableValueSerializerSnapshot`.
    GenericValue,
    /// `KryoSerializerSnapshot`.
    Kryo,
    /// `AvroSerializerSnapshot`.
    Avro,
    /// `TtlStateFactory$TtlSerializerSnapshot` (v1 and 2.x v2 state).
    Ttl,
    /// `TimerSerializerSnapshot`.
    Timer,
    /// `ScalaOptionSerializerSnapshot`.
    ScalaOption,
    /// `ScalaEitherSerializerSnapshot`.
    ScalaEither,
    /// `ScalaCaseClassSerializerSnapshot` and `Tuple2CaseClassSerializerSnapshot`.
    ScalaProduct,
    /// `TraversableSerializerSnapshot`.
    ScalaTraversable,
    /// `ScalaTrySerializerSnapshot`: `[element, throwable]`.
    ScalaTry,
    /// `ScalaEnumSerializerSnapshot` (an `Enumeration`'s values by id).
    ScalaEnum,
    /// `org.apache.flink.runtime.state.JavaSerializer$JavaSerializerSnapshot`: Java object
    /// serialization, one stream per value.
    JavaSerialized,
    /// `StreamElementSerializer$StreamElementSerializerSnapshot` (async I/O's in-flight
    /// elements): `[contained]`.
    StreamElement,
    /// A table runtime serializer (`table/snapshot.rs`).
    Table(super::table::snapshot_family::TableFamily),
    /// A CEP serializer (`cep.rs`).
    Cep(super::cep::CepFamily),
}

/// The `…typeutils.base.<Name>` serializers whose snapshot is `<Name>$<Name>Snapshot` (a
/// `SimpleTypeSerializerSnapshot`), with the type each serializes.
const SIMPLE: &[(&str, SimpleType)] = &[
    ("BooleanSerializer", SimpleType::Boolean),
    ("ByteSerializer", SimpleType::Byte),
    ("ShortSerializer", SimpleType::Short),
    ("IntSerializer", SimpleType::Int),
    ("LongSerializer", SimpleType::Long),
    ("FloatSerializer", SimpleType::Float),
    ("DoubleSerializer", SimpleType::Double),
    ("CharSerializer", SimpleType::Char),
    ("StringSerializer", SimpleType::String),
    ("BigIntSerializer", SimpleType::BigInteger),
    ("BigDecSerializer", SimpleType::BigDecimal),
    ("InstantSerializer", SimpleType::Instant),
    ("LocalDateSerializer", SimpleType::LocalDate),
    ("LocalTimeSerializer", SimpleType::LocalTime),
    ("LocalDateTimeSerializer", SimpleType::LocalDateTime),
    ("DateSerializer", SimpleType::Date),
    ("SqlDateSerializer", SimpleType::SqlDate),
    ("SqlTimeSerializer", SimpleType::SqlTime),
    ("SqlTimestampSerializer", SimpleType::SqlTimestamp),
    ("VoidSerializer", SimpleType::Void),
    ("BooleanValueSerializer", SimpleType::BooleanValue),
    ("ByteValueSerializer", SimpleType::ByteValue),
    ("ShortValueSerializer", SimpleType::ShortValue),
    ("IntValueSerializer", SimpleType::IntValue),
    ("LongValueSerializer", SimpleType::LongValue),
    ("FloatValueSerializer", SimpleType::FloatValue),
    ("DoubleValueSerializer", SimpleType::DoubleValue),
    ("CharValueSerializer", SimpleType::CharValue),
    ("StringValueSerializer", SimpleType::StringValue),
    ("NullValueSerializer", SimpleType::NullValue),
];

/// The `…typeutils.base.array.<Name>` serializers (snapshot `<Name>$<Name>Snapshot`), with the
/// element type.
const ARRAYS: &[(&str, SimpleType)] = &[
    ("BooleanPrimitiveArraySerializer", SimpleType::Boolean),
    ("BytePrimitiveArraySerializer", SimpleType::Byte),
    ("ShortPrimitiveArraySerializer", SimpleType::Short),
    ("IntPrimitiveArraySerializer", SimpleType::Int),
    ("LongPrimitiveArraySerializer", SimpleType::Long),
    ("FloatPrimitiveArraySerializer", SimpleType::Float),
    ("DoublePrimitiveArraySerializer", SimpleType::Double),
    ("CharPrimitiveArraySerializer", SimpleType::Char),
    ("StringArraySerializer", SimpleType::String),
];

/// The snapshot class Flink writes for a serializer of `t` (a `SimpleTypeSerializerSnapshot`),
/// or of an array of `t`: the inverse of [`family`] for those.
#[cfg_attr(not(feature = "parquet"), allow(dead_code))] // only import (parquet) writes registrations
pub(crate) fn simple_snapshot_class(t: SimpleType, array: bool) -> Option<String> {
    let (table, prefix) = if array { (ARRAYS, ARRAY) } else { (SIMPLE, BASE) };
    table.iter().find(|(_, ty)| *ty == t).map(|(name, _)| format!("{prefix}{name}${name}Snapshot"))
}

/// The family of a snapshot class, or `None` for a class flinksnap does not know.
pub fn family(class: &str) -> Option<Family> {
    use super::SimpleType as S;
    use Family as F;
    if let Some(t) = super::table::family(class) {
        return Some(F::Table(t));
    }
    if let Some(t) = super::cep::family(class) {
        return Some(F::Cep(t));
    }
    if let Some(rest) = class.strip_prefix(BASE) {
        // `<Name>$<Name>Snapshot`.
        let simple = |name: &str| rest.split_once('$').is_some_and(|(o, i)| o == name && i.strip_suffix("Snapshot") == Some(name));
        for (name, ty) in SIMPLE {
            if simple(name) {
                return Some(F::Simple(*ty));
            }
        }
        return match rest {
            "ListSerializerSnapshot" => Some(F::List),
            "MapSerializerSnapshot" => Some(F::Map),
            "SetSerializerSnapshot" => Some(F::Set),
            "GenericArraySerializerSnapshot" => Some(F::GenericArray),
            "EnumSerializer$EnumSerializerSnapshot" => Some(F::Enum),
            _ => array_family(class),
        };
    }
    if let Some(rest) = class.strip_prefix(RUNTIME) {
        return match rest {
            "TupleSerializerSnapshot" => Some(F::Tuple),
            "Tuple0SerializerSnapshot" => Some(F::Simple(S::Tuple0)),
            "RowSerializer$RowSerializerSnapshot" => Some(F::Row),
            "PojoSerializerSnapshot" => Some(F::Pojo),
            "NullableSerializer$NullableSerializerSnapshot" => Some(F::Nullable),
            // EitherSerializerSnapshot: the pre-1.8 class, version 2 (no outer part) still read by 1.x.
            "JavaEitherSerializerSnapshot" | "EitherSerializerSnapshot" => Some(F::Either),
            "ValueSerializer$ValueSerializerSnapshot" | "CopyableValueSerializer$CopyableValueSerializerSnapshot" => {
                Some(F::GenericValue)
            }
            "kryo.KryoSerializerSnapshot" => Some(F::Kryo),
            _ => None,
        };
    }
    if let Some(rest) = class.strip_prefix(SCALA) {
        return match rest {
            "ScalaOptionSerializerSnapshot" => Some(F::ScalaOption),
            "ScalaEitherSerializerSnapshot" => Some(F::ScalaEither),
            "ScalaCaseClassSerializerSnapshot" | "Tuple2CaseClassSerializerSnapshot" => Some(F::ScalaProduct),
            "TraversableSerializerSnapshot" => Some(F::ScalaTraversable),
            "ScalaTrySerializerSnapshot" => Some(F::ScalaTry),
            "ScalaEnumSerializerSnapshot" => Some(F::ScalaEnum),
            "UnitSerializer$UnitSerializerSnapshot" => Some(F::Simple(S::ScalaUnit)),
            "NothingSerializerSnapshot" => Some(F::Simple(S::ScalaNothing)),
            _ => None,
        };
    }
    match class {
        "org.apache.flink.runtime.state.VoidNamespaceSerializer$VoidNamespaceSerializerSnapshot"
        | "org.apache.flink.queryablestate.client.VoidNamespaceSerializer$VoidNamespaceSerializerSnapshot" => {
            Some(F::Simple(S::VoidNamespace))
        }
        "org.apache.flink.streaming.api.windowing.windows.TimeWindow$Serializer$TimeWindowSerializerSnapshot" => {
            Some(F::Simple(S::TimeWindow))
        }
        "org.apache.flink.streaming.api.windowing.windows.GlobalWindow$Serializer$GlobalWindowSerializerSnapshot" => {
            Some(F::Simple(S::GlobalWindow))
        }
        "org.apache.flink.runtime.state.ttl.TtlStateFactory$TtlSerializerSnapshot"
        | "org.apache.flink.runtime.state.v2.ttl.TtlStateFactory$TtlSerializerSnapshot" => Some(F::Ttl),
        "org.apache.flink.streaming.api.operators.TimerSerializerSnapshot" => Some(F::Timer),
        "org.apache.flink.formats.avro.typeutils.AvroSerializerSnapshot" => Some(F::Avro),
        "org.apache.flink.runtime.state.JavaSerializer$JavaSerializerSnapshot" => Some(F::JavaSerialized),
        "org.apache.flink.streaming.runtime.streamrecord.StreamElementSerializer$StreamElementSerializerSnapshot" => Some(F::StreamElement),
        _ => None,
    }
}

fn array_family(class: &str) -> Option<Family> {
    let rest = class.strip_prefix(ARRAY)?;
    let (outer, inner) = rest.split_once('$')?;
    ARRAYS
        .iter()
        .find(|(name, _)| *name == outer && inner.strip_suffix("Snapshot") == Some(outer))
        .map(|(_, ty)| Family::PrimitiveArray(*ty))
}

/// The `*Value` types of `org.apache.flink.types` that a generic `ValueSerializer` (or
/// `CopyableValueSerializer`) snapshot may name, and how they are encoded.
pub fn known_value_class(class: &str) -> Option<super::SimpleType> {
    use super::SimpleType as S;
    Some(match class.strip_prefix("org.apache.flink.types.")? {
        "BooleanValue" => S::BooleanValue,
        "ByteValue" => S::ByteValue,
        "ShortValue" => S::ShortValue,
        "IntValue" => S::IntValue,
        "LongValue" => S::LongValue,
        "FloatValue" => S::FloatValue,
        "DoubleValue" => S::DoubleValue,
        "CharValue" => S::CharValue,
        "StringValue" => S::StringValue,
        "NullValue" => S::NullValue,
        _ => return None,
    })
}
