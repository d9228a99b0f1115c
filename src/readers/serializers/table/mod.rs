//! The serializers of Flink's table runtime (`flink-table-runtime`, `flink-table-common`,
//! `flink-table-api-java`'s data views), the state serializers of every SQL operator: their
//! snapshots, their values (`RowData` decoded by its logical types) and the key-group hash of
//! `BinaryRowData` keys. Spec: `formats/sql-serializers.md`.
//!
//! Structure:
//! - [`logical_type`]: `LogicalType`s from the Java-serialized objects the snapshots store;
//! - `snapshot.rs`: the snapshot payload of each table serializer class (`family`, `read`);
//! - `decode.rs`: values as each serializer writes them into a state stream;
//! - `binary.rs`: `BinaryRowData`, `BinaryArrayData`, `BinaryMapData` and their field encodings;
//! - `encode.rs`, `from_json.rs`: the way back, values into the bytes Flink writes and the
//!   dump's JSON into values;
//! - `hash.rs`: `BinaryRowData.hashCode()`, which decides the key group of every SQL key.

mod binary;
mod decode;
mod encode;
mod from_json;
mod hash;
mod java_objects;
pub mod logical_type;
mod snapshot;
#[cfg(test)]
mod tests;

pub use binary::{decimal_text_bytes, decimal_text_i128};
pub use hash::binary_row_hash_code;
pub use logical_type::{LogicalType, RowField, TimestampKind, TypeKind};
pub(crate) use decode::{check as check_value, decode as decode_value, min_len};
pub(crate) use encode::encode as encode_value;
pub(crate) use from_json::value_from_json;
pub(crate) use snapshot::{family, read as read_snapshot};

/// The snapshot framing helpers the table runtime's readers share with CEP's.
pub(crate) mod snapshot_helpers {
    pub(crate) use super::snapshot::{composite_header, nested, simple};
}

/// The snapshot families of the table runtime (for `consts::Family`).
pub(crate) mod snapshot_family {
    pub use super::snapshot::TableFamily;
}

use super::{SerializerKind, SimpleType, TypeSerializer};

/// A table runtime serializer, restored from its snapshot.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TableSerializer {
    /// `RowDataSerializer`: `i32` length, then a `BinaryRowData` of the field types.
    RowData {
        /// The field types, as the snapshot stores them.
        types: Vec<LogicalType>,
        /// The field serializers (one per field), restored from the nested snapshots.
        fields: Vec<TypeSerializer>,
        /// Field names: `f0`, `f1`, ... unless given (from a compiled plan, or the `ROW` type of
        /// an enclosing serializer).
        names: Option<Vec<String>>,
    },
    /// `BinaryRowDataSerializer`: `i32` length and a `BinaryRowData` whose field types the
    /// snapshot does not store: its values stay opaque (their key-group hash does not need them).
    BinaryRow {
        /// The arity.
        arity: u32,
    },
    /// `StringDataSerializer`: `i32` length, UTF-8 bytes.
    StringData,
    /// `DecimalDataSerializer`: an unscaled `i64` (precision ≤ 18), else `i32` length and the
    /// unscaled value's two's-complement bytes.
    Decimal {
        /// Precision.
        precision: u32,
        /// Scale.
        scale: u32,
    },
    /// `TimestampDataSerializer`: epoch millis (precision ≤ 3), else millis and `i32` nanos of
    /// the millisecond.
    Timestamp {
        /// Precision.
        precision: u32,
    },
    /// `ArrayDataSerializer`: `i32` length, a `BinaryArrayData`.
    Array {
        /// The element type.
        element: LogicalType,
    },
    /// `MapDataSerializer` (also `MULTISET`s: a map to `INT NOT NULL` counts): `i32` length,
    /// a `BinaryMapData`.
    Map {
        /// The key type.
        key: LogicalType,
        /// The value type.
        value: LogicalType,
    },
    /// `RawValueDataSerializer`: `i32` length, the inner serializer's bytes.
    RawValue(Box<TypeSerializer>),
    /// `ExternalSerializer`: the values of a `DataType`'s conversion class, written by the
    /// internal serializer after conversion.
    External {
        /// The `DataType`'s logical type.
        logical_type: LogicalType,
        /// The conversion class, when the `DataType` names one.
        conversion_class: Option<String>,
        /// The internal serializer, which writes the bytes.
        internal: Box<TypeSerializer>,
    },
    /// `LinkedListSerializer`: `i32` size, a null mask (when `null_mask`), the non-null elements.
    LinkedList {
        /// The element serializer.
        element: Box<TypeSerializer>,
        /// Whether a null mask precedes the elements (outer snapshot version ≥ 2).
        null_mask: bool,
    },
    /// `SortedMapSerializer`: `i32` size; per entry the key, `bool` null flag, the value.
    SortedMap {
        /// The key serializer.
        key: Box<TypeSerializer>,
        /// The value serializer.
        value: Box<TypeSerializer>,
        /// The class of the key comparator (Java-serialized in the snapshot).
        comparator: String,
    },
    /// `WindowKeySerializer`: `i64` window, then the key.
    WindowKey(Box<TypeSerializer>),
    /// The table runtime's `TimeWindow.Serializer`: `i64` start, `i64` end.
    TimeWindow,
    /// The table runtime's `CountWindow.Serializer`: `i64` id.
    CountWindow,
    /// The table runtime's `GlobalWindow.Serializer` (2.x): one byte.
    GlobalWindow,
    /// `ListViewSerializer`: the list, written by its `ListSerializer`.
    ListView(Box<TypeSerializer>),
    /// `MapViewSerializer`: the map, written by its map serializer.
    MapView(Box<TypeSerializer>),
    /// `NullAwareMapSerializer`: `i32` size; per entry `bool` key-is-null, \[key\], `bool`
    /// value-is-null, \[value\].
    NullAwareMap(Box<TypeSerializer>, Box<TypeSerializer>),
    /// The data views' `NullSerializer`: one zero byte, `null`.
    Null,
    /// `SortedLongSerializer` (2.3, sink upsert materializer): a `long`.
    SortedLong,
    /// `RowDataKeySerializer` (2.3, the sink upsert materializer's sequenced multiset): the row.
    RowDataKey(Box<TypeSerializer>),
    /// A `CompositeSerializer` of the 2.3 sequenced multiset (`MetaSqnInfo`, `RowSqnInfo`,
    /// `Node`): its fields in order, each by its serializer.
    Fields {
        /// The fields' names (the Java class's field names).
        names: &'static [&'static str],
        /// The fields' serializers.
        fields: Vec<TypeSerializer>,
    },
}

impl TableSerializer {
    /// A nested `RowDataSerializer`'s field serializers (for the nested row's raw fields).
    pub(crate) fn row_field_serializers(&self) -> Option<&[TypeSerializer]> {
        match self {
            TableSerializer::RowData { fields, .. } => Some(fields),
            _ => None,
        }
    }

    /// A `RawValueDataSerializer`'s inner serializer.
    pub(crate) fn raw_inner(&self) -> Option<&TypeSerializer> {
        match self {
            TableSerializer::RawValue(inner) => Some(inner),
            _ => None,
        }
    }

    /// Flink's `getLength()`: `Some(n)` fixed, `None` variable.
    pub(crate) fn fixed_length(&self) -> Option<usize> {
        match self {
            TableSerializer::Timestamp { precision } => Some(if logical_type::timestamp_is_compact(*precision) { 8 } else { 12 }),
            TableSerializer::TimeWindow => Some(16),
            TableSerializer::CountWindow | TableSerializer::SortedLong => Some(8),
            TableSerializer::GlobalWindow | TableSerializer::Null => Some(1),
            TableSerializer::External { internal, .. } => internal.fixed_length(),
            _ => None,
        }
    }

    /// The serializers nested in this one.
    pub(crate) fn nested(&self) -> Vec<&TypeSerializer> {
        match self {
            TableSerializer::RowData { fields, .. } => fields.iter().collect(),
            TableSerializer::RawValue(s)
            | TableSerializer::WindowKey(s)
            | TableSerializer::ListView(s)
            | TableSerializer::MapView(s)
            | TableSerializer::LinkedList { element: s, .. } => vec![s],
            TableSerializer::External { internal, .. } | TableSerializer::RowDataKey(internal) => vec![internal],
            TableSerializer::Fields { fields, .. } => fields.iter().collect(),
            TableSerializer::SortedMap { key, value, .. } | TableSerializer::NullAwareMap(key, value) => vec![key, value],
            _ => Vec::new(),
        }
    }

    /// Whether this serializer itself (nested ones aside) cannot decode its values.
    pub(crate) fn is_self_opaque(&self) -> bool {
        matches!(self, TableSerializer::BinaryRow { .. })
    }

    /// Gives a `RowData` serializer its field names (from a compiled plan). Extra or missing
    /// names are ignored: the names must match the arity.
    pub fn set_field_names(&mut self, names: Vec<String>) -> bool {
        match self {
            TableSerializer::RowData { types, names: n, .. } if types.len() == names.len() => {
                *n = Some(names);
                true
            }
            TableSerializer::External { internal, .. } => match &mut internal.kind {
                SerializerKind::Table(t) => t.set_field_names(names),
                _ => false,
            },
            _ => false,
        }
    }

    /// The logical types of a `RowData` serializer's fields.
    pub fn row_types(&self) -> Option<&[LogicalType]> {
        match self {
            TableSerializer::RowData { types, .. } => Some(types),
            TableSerializer::External { internal, .. } => internal.table().and_then(TableSerializer::row_types),
            _ => None,
        }
    }

    /// The names a `RowData` serializer gives its fields.
    pub fn field_names(&self) -> Vec<String> {
        match self {
            TableSerializer::RowData { types, names, .. } => {
                names.clone().unwrap_or_else(|| (0..types.len()).map(|i| format!("f{i}")).collect())
            }
            TableSerializer::External { internal, .. } => internal.table().map(TableSerializer::field_names).unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

impl TypeSerializer {
    /// The table runtime serializer this is, if it is one.
    pub fn table(&self) -> Option<&TableSerializer> {
        match &self.kind {
            SerializerKind::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The table runtime serializer this is, mutably (to give rows their field names).
    pub fn table_mut(&mut self) -> Option<&mut TableSerializer> {
        match &mut self.kind {
            SerializerKind::Table(t) => Some(t),
            _ => None,
        }
    }

    /// A serializer of one of Flink's simple types, for values a snapshot does not describe
    /// (the raw values of nested positions, whose `RawType` names a base serializer).
    pub(crate) fn simple(t: SimpleType) -> TypeSerializer {
        TypeSerializer::new(format!("flinksnap.simple.{t:?}"), 3, SerializerKind::Simple(t))
    }
}
