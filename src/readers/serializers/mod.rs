//! Flink's serializer snapshots and the value encodings they describe (spec:
//! `formats/serializers.md`).
//!
//! Structure:
//! - [`read_proxy_snapshot`] / [`read_versioned_snapshot`] (`snapshot.rs`): a
//!   `TypeSerializerSnapshot` in its proxy or versioned form, into a [`TypeSerializer`];
//!   composite framing, POJO (`pojo.rs`), Kryo and Avro snapshots;
//! - [`TypeSerializer::decode`] (`decode.rs`): one value, as that serializer wrote it, into a
//!   [`Value`](crate::model::value::Value); Avro values (`avro.rs`) follow Flink's
//!   `DataOutputEncoder`, not Avro's binary encoding;
//! - [`TypeSerializer::encode`] (`encode.rs`): the inverse, a value back into the bytes its
//!   serializer writes;
//! - [`TypeSerializer::value_from_json`] (`from_json.rs`): the dump's JSON form of a value back
//!   into a value, guided by the serializer;
//! - [`java_hash_code`] / [`key_group_for_hash`] (`hash.rs`): key → key group;
//! - [`read_fstr`] / [`write_fstr`] (`strings.rs`): `StringSerializer`'s char-varint strings.
//!
//! A serializer flinksnap cannot interpret (Kryo, generic `Value` types, unknown snapshot classes
//! inside length-framed blobs) is kept, and its values become
//! [`Value::Opaque`](crate::model::value::Value::Opaque) wherever the bytes are framed by a length
//! ([`TypeSerializer::decode_framed`]).

mod avro;
pub mod cep;
mod check;
pub(crate) mod consts;
mod decode;
mod encode;
mod from_json;
mod hash;
pub(crate) mod kryo;
mod pojo;
pub(crate) mod resync;
mod snapshot;
mod strings;
pub mod table;
#[cfg(test)]
pub(crate) mod testutil;

pub use avro::AvroSchema;
pub use encode::{encode_delimited_list, EncodeError};
pub use hash::{java_hash_code, key_group_for_hash, key_hash_code, key_hash_needs_bytes, raw_for_key_hash};
pub use snapshot::{read_proxy_snapshot, read_versioned_snapshot};
pub(crate) use snapshot::read_proxy;
pub use strings::{read_fstr, write_fstr};

/// Deepest nesting of serializer snapshots and of decoded values accepted (Flink has no limit;
/// real types nest a handful of levels). Deeper input is an error, never a stack overflow.
pub const MAX_DEPTH: usize = 64;

/// A serializer restored from its snapshot: what Flink's `restoreSerializer()` would give,
/// without the JVM.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeSerializer {
    class_name: String,
    version: i32,
    kind: SerializerKind,
}

/// What a [`TypeSerializer`] is, with everything needed to decode its values.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SerializerKind {
    /// A fixed or simple type (`SimpleTypeSerializerSnapshot`).
    Simple(SimpleType),
    /// A primitive array (or `String[]`, element [`SimpleType::String`]): `i32 len` + elements.
    PrimitiveArray(SimpleType),
    /// A Java enum: `i32` index into `constants`.
    Enum {
        /// The enum class.
        class: String,
        /// Constant names in snapshot order.
        constants: Vec<String>,
    },
    /// `java.util.List`.
    List(Box<TypeSerializer>),
    /// `java.util.Map`: key, value.
    Map(Box<TypeSerializer>, Box<TypeSerializer>),
    /// `java.util.Set` (2.0+).
    Set(Box<TypeSerializer>),
    /// An object array.
    GenericArray {
        /// The component class.
        component_class: String,
        /// The element serializer.
        element: Box<TypeSerializer>,
    },
    /// A Java `Tuple1` … `Tuple25`.
    Tuple {
        /// The tuple class.
        class: String,
        /// Field serializers `f0` ….
        fields: Vec<TypeSerializer>,
    },
    /// `org.apache.flink.types.Row`.
    Row {
        /// Field serializers by position.
        fields: Vec<TypeSerializer>,
        /// Whether the mask carries the row kind (outer snapshot version ≥ 3).
        supports_row_kind: bool,
    },
    /// A POJO.
    Pojo(Box<PojoSerializer>),
    /// `NullableSerializer`: `bool isNull`, then `padding` zero bytes or the value.
    Nullable {
        /// Zero bytes written for a null.
        padding: u32,
        /// The wrapped serializer.
        inner: Box<TypeSerializer>,
    },
    /// Java `Either`: `bool isLeft`, then the side.
    Either(Box<TypeSerializer>, Box<TypeSerializer>),
    /// A generic `org.apache.flink.types.Value` type (`ValueSerializer`,
    /// `CopyableValueSerializer`): decodable only for Flink's own `*Value` classes.
    GenericValue {
        /// The value class.
        class: String,
    },
    /// Kryo: values are opaque, named by the class in their Kryo header (`kryo.rs`).
    Kryo {
        /// The type class Kryo serializes.
        type_class: String,
        /// The snapshot's registrations in map order (registration ids 85, 86, …): the type
        /// class, registered types, types with serializers, Avro's `GenericData.Array` dummy.
        registrations: Vec<String>,
    },
    /// Avro, decoded with the writer schema.
    Avro(Box<AvroSerializer>),
    /// The TTL wrapper `TtlValue`: the last-access timestamp, then the user value.
    Ttl {
        /// The timestamp serializer (a `LongSerializer`).
        timestamp: Box<TypeSerializer>,
        /// The user value serializer.
        value: Box<TypeSerializer>,
    },
    /// A timer: sign-flipped `i64` timestamp, key, namespace.
    Timer {
        /// The key serializer.
        key: Box<TypeSerializer>,
        /// The namespace serializer.
        namespace: Box<TypeSerializer>,
    },
    /// Scala `Option`: `bool isSome`, then the value.
    ScalaOption(Box<TypeSerializer>),
    /// Scala `Either`: `bool isLeft`, then the side.
    ScalaEither(Box<TypeSerializer>, Box<TypeSerializer>),
    /// A Scala case class or tuple: fields in order, no nulls.
    ScalaProduct {
        /// The class.
        class: String,
        /// Field serializers `_1` ….
        fields: Vec<TypeSerializer>,
    },
    /// A Scala collection: `i32 len`, per element `bool nonNull` and the element.
    ScalaTraversable {
        /// The Scala source of the collection builder, as stored.
        builder_code: String,
        /// The element serializer.
        element: Box<TypeSerializer>,
    },
    /// Scala `Try`: `bool isSuccess`, then the element or the throwable (Kryo).
    ScalaTry {
        /// The element serializer.
        element: Box<TypeSerializer>,
        /// The throwable serializer (Kryo).
        throwable: Box<TypeSerializer>,
    },
    /// Scala `Enumeration` values: `i32` id.
    ScalaEnum {
        /// The `Enumeration` object's class.
        class: String,
        /// Value names and ids, in snapshot order.
        constants: Vec<(String, i32)>,
    },
    /// Java object serialization (`JavaSerializer`): one stream (`aced0005` and an object) per
    /// value, read by [`crate::java_serialization`].
    JavaSerialized,
    /// `StreamElementSerializer`: a tag byte, then a record (with or without timestamp) of the
    /// contained serializer, a watermark, a watermark status, a latency marker or record
    /// attributes.
    StreamElement(Box<TypeSerializer>),
    /// A serializer of Flink's table runtime (SQL state: `RowData` and its parts, data views,
    /// table windows), `formats/sql-serializers.md`.
    Table(Box<table::TableSerializer>),
    /// A serializer of Flink CEP's operator (`MATCH_RECOGNIZE`): NFA state, shared buffer.
    Cep(Box<cep::CepSerializer>),
    /// A serializer flinksnap cannot interpret; only length-framed values can be kept, opaque.
    Opaque {
        /// Why.
        reason: String,
    },
}

/// Simple types: the serializers of `SimpleTypeSerializerSnapshot`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimpleType {
    /// `BooleanSerializer`.
    Boolean,
    /// `ByteSerializer`.
    Byte,
    /// `ShortSerializer`.
    Short,
    /// `IntSerializer`.
    Int,
    /// `LongSerializer`.
    Long,
    /// `FloatSerializer`.
    Float,
    /// `DoubleSerializer`.
    Double,
    /// `CharSerializer`.
    Char,
    /// `StringSerializer` (`fstr`, null OK).
    String,
    /// `BigIntSerializer`.
    BigInteger,
    /// `BigDecSerializer`.
    BigDecimal,
    /// `InstantSerializer`.
    Instant,
    /// `LocalDateSerializer`.
    LocalDate,
    /// `LocalTimeSerializer`.
    LocalTime,
    /// `LocalDateTimeSerializer`.
    LocalDateTime,
    /// `DateSerializer` (`java.util.Date`).
    Date,
    /// `SqlDateSerializer`.
    SqlDate,
    /// `SqlTimeSerializer`.
    SqlTime,
    /// `SqlTimestampSerializer`.
    SqlTimestamp,
    /// `VoidSerializer`.
    Void,
    /// `VoidNamespaceSerializer`.
    VoidNamespace,
    /// `TimeWindow.Serializer`.
    TimeWindow,
    /// `GlobalWindow.Serializer`.
    GlobalWindow,
    /// `Tuple0Serializer`.
    Tuple0,
    /// `BooleanValueSerializer`.
    BooleanValue,
    /// `ByteValueSerializer`.
    ByteValue,
    /// `ShortValueSerializer`.
    ShortValue,
    /// `IntValueSerializer`.
    IntValue,
    /// `LongValueSerializer`.
    LongValue,
    /// `FloatValueSerializer`.
    FloatValue,
    /// `DoubleValueSerializer`.
    DoubleValue,
    /// `CharValueSerializer`.
    CharValue,
    /// `StringValueSerializer` (plain length, no null).
    StringValue,
    /// `NullValueSerializer` (writes nothing).
    NullValue,
    /// Scala `UnitSerializer`: one zero byte.
    ScalaUnit,
    /// Scala `NothingSerializer`: has no values.
    ScalaNothing,
}

impl SimpleType {
    /// Flink's `getLength()` for this type: `Some(n)` fixed, `None` variable (-1).
    pub fn fixed_length(self) -> Option<usize> {
        use SimpleType::*;
        Some(match self {
            Boolean | Byte | BooleanValue | ByteValue | Void | Tuple0 | GlobalWindow | ScalaUnit => 1,
            Short | Char | ShortValue | CharValue => 2,
            Int | Float | IntValue | FloatValue => 4,
            Long | Double | LongValue | DoubleValue | Date | SqlDate | SqlTime => 8,
            Instant | SqlTimestamp => 12,
            LocalDate => 6,
            LocalTime => 7,
            LocalDateTime => 13,
            // getLength() == 0 although one byte is written (spec §4.4).
            VoidNamespace => 0,
            // 16 from 1.15; 1.13 and 1.14 report 0. Either way non-negative.
            TimeWindow => 16,
            NullValue => 0,
            ScalaNothing => return None,
            String | BigInteger | BigDecimal | StringValue => return None,
        })
    }

    /// Fewest bytes one value takes.
    fn min_len(self) -> usize {
        use SimpleType::*;
        match self {
            VoidNamespace => 1,
            String | StringValue => 1,
            BigInteger | BigDecimal => 4,
            t => t.fixed_length().unwrap_or(1),
        }
    }
}

/// A POJO serializer (`PojoSerializerSnapshot` v2).
#[derive(Debug, Clone, PartialEq)]
pub struct PojoSerializer {
    /// The POJO class.
    pub class: String,
    /// Fields in serialization order; `None` where the snapshot has no serializer for the field
    /// (then the POJO cannot be decoded).
    pub fields: Vec<(String, Option<TypeSerializer>)>,
    /// Registered subclasses in tag order.
    pub registered_subclasses: Vec<(String, Option<TypeSerializer>)>,
    /// Subclasses seen at runtime, by class name.
    pub non_registered_subclasses: Vec<(String, Option<TypeSerializer>)>,
}

/// An Avro serializer (`AvroSerializerSnapshot` v1–v3).
#[derive(Debug, Clone, PartialEq)]
pub struct AvroSerializer {
    /// The runtime class (`GenericRecord`, a specific record, or a reflect class).
    pub runtime_class: String,
    /// The writer schema, as stored.
    pub schema_json: String,
    /// The parsed writer schema, or why it could not be parsed (then values are opaque).
    pub schema: Result<AvroSchema, String>,
}

impl TypeSerializer {
    pub(crate) fn new(class_name: String, version: i32, kind: SerializerKind) -> Self {
        TypeSerializer { class_name, version, kind }
    }

    /// The snapshot class name as stored (e.g.
    /// `org.apache.flink.api.common.typeutils.base.LongSerializer$LongSerializerSnapshot`).
    pub fn class_name(&self) -> &str {
        &self.class_name
    }

    /// The snapshot version as stored.
    pub fn version(&self) -> i32 {
        self.version
    }

    /// What this serializer is.
    pub fn kind(&self) -> &SerializerKind {
        &self.kind
    }

    /// Flink's `getLength()`: `Some(n)` for a fixed-length serializer (n ≥ 0), `None` for a
    /// variable-length one. The RocksDB key layout appends length suffixes only when both key
    /// and namespace serializers are variable-length. Note `VoidNamespaceSerializer` reports 0
    /// but writes one byte.
    pub fn fixed_length(&self) -> Option<usize> {
        match &self.kind {
            SerializerKind::Simple(t) => t.fixed_length(),
            SerializerKind::Enum { .. } => Some(4),
            // TupleSerializerBase (also Scala's CaseClassSerializer): the sum when every field
            // has a length > 0 (a 0-length field makes the tuple variable-length).
            SerializerKind::Tuple { fields, .. } | SerializerKind::ScalaProduct { fields, .. } => {
                fields.iter().map(|f| f.fixed_length().filter(|&n| n > 0)).sum()
            }
            // NullableSerializer: 1 + padding when padding is on, whatever the inner length.
            SerializerKind::Nullable { padding, .. } => (*padding > 0).then(|| 1 + *padding as usize),
            // CompositeSerializer: the sum when every part is fixed.
            SerializerKind::Ttl { timestamp, value } => Some(timestamp.fixed_length()? + value.fixed_length()?),
            SerializerKind::Timer { key, namespace } => Some(8 + key.fixed_length()? + namespace.fixed_length()?),
            // CopyableValueSerializer: CopyableValue.getBinaryLength() of the class, known only
            // for Flink's own *Value types; ValueSerializer always reports -1.
            SerializerKind::GenericValue { class } if self.class_name.ends_with("CopyableValueSerializer$CopyableValueSerializerSnapshot") => {
                match consts::known_value_class(class)? {
                    SimpleType::NullValue => Some(1),
                    t => t.fixed_length(),
                }
            }
            SerializerKind::Table(t) => t.fixed_length(),
            SerializerKind::Cep(t) => t.fixed_length(),
            _ => None,
        }
    }

    /// True when values of this serializer, or of a serializer nested in it, cannot be decoded
    /// (Kryo, generic `Value` types, unknown classes, POJOs with a missing field serializer,
    /// Avro schemas flinksnap cannot parse). Such values decode only inside a length frame, to
    /// [`Value::Opaque`](crate::model::value::Value::Opaque) ([`TypeSerializer::decode_framed`]).
    pub fn is_opaque(&self) -> bool {
        if self.is_self_opaque() {
            return true;
        }
        self.nested().iter().any(|s| s.is_opaque())
    }

    /// True when this serializer itself (not counting nested ones) cannot decode.
    pub(crate) fn is_self_opaque(&self) -> bool {
        match &self.kind {
            SerializerKind::Kryo { .. } | SerializerKind::Opaque { .. } => true,
            SerializerKind::GenericValue { class } => consts::known_value_class(class).is_none(),
            SerializerKind::Avro(a) => a.schema.is_err(),
            SerializerKind::Pojo(p) => p.fields.iter().any(|(_, s)| s.is_none()),
            SerializerKind::Table(t) => t.is_self_opaque(),
            _ => false,
        }
    }

    /// The serializers directly nested in this one.
    pub fn nested(&self) -> Vec<&TypeSerializer> {
        use SerializerKind as K;
        match &self.kind {
            K::List(e) | K::Set(e) | K::ScalaOption(e) => vec![e],
            K::GenericArray { element, .. } | K::ScalaTraversable { element, .. } => vec![element],
            K::Nullable { inner, .. } | K::StreamElement(inner) => vec![inner],
            K::ScalaTry { element, throwable } => vec![element, throwable],
            K::Map(a, b) | K::Either(a, b) | K::ScalaEither(a, b) => vec![a, b],
            K::Ttl { timestamp, value } => vec![timestamp, value],
            K::Timer { key, namespace } => vec![key, namespace],
            K::Tuple { fields, .. } | K::Row { fields, .. } | K::ScalaProduct { fields, .. } => fields.iter().collect(),
            K::Pojo(p) => p.fields.iter().filter_map(|(_, s)| s.as_ref()).collect(),
            K::Table(t) => t.nested(),
            K::Cep(t) => t.nested(),
            _ => Vec::new(),
        }
    }

    /// The class of the serializer (this one or one nested in it) that makes values undecodable:
    /// the opaque label of the first one found ([`TypeSerializer::opaque_class`]); this
    /// serializer's own when none is.
    pub fn undecodable_class(&self) -> &str {
        fn find(s: &TypeSerializer) -> Option<&str> {
            if s.is_self_opaque() {
                return Some(s.opaque_class());
            }
            s.nested().into_iter().find_map(find)
        }
        find(self).unwrap_or_else(|| self.opaque_class())
    }

    /// The first serializer snapshot, this one or one nested in it, that flinksnap does not know
    /// (an unknown class or version, read past: [`SerializerKind::Opaque`]).
    pub fn unknown(&self) -> Option<&TypeSerializer> {
        if matches!(self.kind, SerializerKind::Opaque { .. }) {
            return Some(self);
        }
        self.nested().into_iter().find_map(TypeSerializer::unknown)
    }

    /// The class an opaque value of this serializer is labelled with: the type class where the
    /// snapshot names one (Kryo, POJO, generic `Value`, Avro), else the snapshot class.
    pub fn opaque_class(&self) -> &str {
        match &self.kind {
            SerializerKind::Kryo { type_class, .. } => type_class,
            SerializerKind::GenericValue { class } => class,
            SerializerKind::Pojo(p) => &p.class,
            SerializerKind::Avro(a) => &a.runtime_class,
            _ => &self.class_name,
        }
    }

    /// For a generic `Value` serializer of one of Flink's own `*Value` classes (`IntValue`,
    /// `StringValue`, ...): the simple type its values decode as.
    pub fn value_class_type(&self) -> Option<SimpleType> {
        match &self.kind {
            SerializerKind::GenericValue { class } => consts::known_value_class(class),
            _ => None,
        }
    }

    /// For a TTL wrapper (`TtlStateFactory$TtlSerializerSnapshot`): the user value serializer.
    /// The wrapped bytes are `i64 lastAccessTimestamp` followed by a user value.
    pub fn ttl_inner(&self) -> Option<&TypeSerializer> {
        match &self.kind {
            SerializerKind::Ttl { value, .. } => Some(value),
            _ => None,
        }
    }

    /// True for a TTL wrapper.
    pub fn is_ttl(&self) -> bool {
        self.ttl_inner().is_some()
    }

    /// For a `TimerSerializer`: the key and namespace serializers. Timer bytes are
    /// `i64 (timestamp ^ i64::MIN)`, key bytes, namespace bytes.
    pub fn timer_key_namespace(&self) -> Option<(&TypeSerializer, &TypeSerializer)> {
        match &self.kind {
            SerializerKind::Timer { key, namespace } => Some((key, namespace)),
            _ => None,
        }
    }

    /// For a `TimerSerializer`: its key serializer, mutably (the plan's column names go there
    /// as to the backend's key serializer).
    pub(crate) fn timer_key_mut(&mut self) -> Option<&mut TypeSerializer> {
        match &mut self.kind {
            SerializerKind::Timer { key, .. } => Some(key),
            _ => None,
        }
    }

    /// For a `ListSerializer`: the element serializer.
    pub fn list_element(&self) -> Option<&TypeSerializer> {
        match &self.kind {
            SerializerKind::List(e) => Some(e),
            _ => None,
        }
    }

    /// The serializers of a state's value parts, mutably: a TTL wrapper's value, a map's key
    /// and value, a list's element (empty for any other serializer).
    pub(crate) fn state_parts_mut(&mut self) -> Vec<&mut TypeSerializer> {
        match &mut self.kind {
            SerializerKind::Ttl { value, .. } => vec![value.as_mut()],
            SerializerKind::Map(k, v) => vec![k.as_mut(), v.as_mut()],
            SerializerKind::List(e) => vec![e.as_mut()],
            SerializerKind::Tuple { fields, .. } => fields.iter_mut().collect(),
            _ => Vec::new(),
        }
    }

    /// For a Java `Tuple` serializer: the field serializers `f0` ….
    pub fn tuple_fields(&self) -> Option<&[TypeSerializer]> {
        match &self.kind {
            SerializerKind::Tuple { fields, .. } => Some(fields),
            _ => None,
        }
    }

    /// For a `MapSerializer`: the key and value serializers.
    pub fn map_key_value(&self) -> Option<(&TypeSerializer, &TypeSerializer)> {
        match &self.kind {
            SerializerKind::Map(k, v) => Some((k, v)),
            _ => None,
        }
    }
}

/// Re-exported for callers that match on decoded values.
pub use crate::model::value::RowKind;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;
