//! Snapshot payloads of the table runtime's serializers (`formats/sql-serializers.md`
//! § "Snapshots"). Java-serialized parts (`LogicalType`s, `DataType`s, comparators, element
//! serializer objects) are read with [`crate::java_serialization`].

use super::logical_type::{self, LogicalType};
use super::TableSerializer as T;
use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, ResultExt};
use crate::java_serialization::{read_stream, JavaGraph};
use crate::readers::serializers::consts;
use crate::readers::serializers::resync::Ctx;
use crate::readers::serializers::snapshot::read_versioned;
use crate::readers::serializers::{SerializerKind, TypeSerializer};

type R<T> = Result<T, DecodeError>;

const RUNTIME: &str = "org.apache.flink.table.runtime.typeutils.";
const WINDOW: &str = "org.apache.flink.table.runtime.operators.window.";
const DATAVIEW: &str = "org.apache.flink.table.dataview.";

/// The table runtime snapshot classes flinksnap reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFamily {
    RowData,
    BinaryRow,
    StringData,
    Decimal,
    Timestamp,
    Array,
    Map,
    RawValue,
    External,
    LinkedList,
    SortedMap,
    WindowKey,
    TimeWindow,
    CountWindow,
    GlobalWindow,
    ListView,
    MapView,
    NullAwareMap,
    Null,
    SortedLong,
    RowDataKey,
    MetaSqnInfo,
    RowSqnInfo,
    Node,
}

/// The family of a table runtime snapshot class, or `None`.
pub(crate) fn family(class: &str) -> Option<TableFamily> {
    use TableFamily as F;
    if let Some(rest) = class.strip_prefix(RUNTIME) {
        return Some(match rest {
            "RowDataSerializer$RowDataSerializerSnapshot" => F::RowData,
            "BinaryRowDataSerializer$BinaryRowDataSerializerSnapshot" => F::BinaryRow,
            "StringDataSerializer$StringDataSerializerSnapshot" => F::StringData,
            "DecimalDataSerializer$DecimalSerializerSnapshot" => F::Decimal,
            "TimestampDataSerializer$TimestampDataSerializerSnapshot" => F::Timestamp,
            "ArrayDataSerializer$ArrayDataSerializerSnapshot" => F::Array,
            "MapDataSerializer$MapDataSerializerSnapshot" => F::Map,
            "RawValueDataSerializer$RawValueDataSerializerSnapshot" => F::RawValue,
            "ExternalSerializer$ExternalSerializerSnapshot" => F::External,
            "LinkedListSerializer$LinkedListSerializerSnapshot" => F::LinkedList,
            "SortedMapSerializerSnapshot" => F::SortedMap,
            "WindowKeySerializer$WindowKeySerializerSnapshot" => F::WindowKey,
            _ => return None,
        });
    }
    if let Some(rest) = class.strip_prefix(WINDOW) {
        return Some(match rest {
            "TimeWindow$Serializer$TimeWindowSerializerSnapshot" => F::TimeWindow,
            "CountWindow$Serializer$CountWindowSerializerSnapshot" => F::CountWindow,
            "GlobalWindow$Serializer$GlobalWindowSerializerSnapshot" => F::GlobalWindow,
            _ => return None,
        });
    }
    if let Some(rest) = class.strip_prefix(DATAVIEW) {
        return Some(match rest {
            "ListViewSerializerSnapshot" => F::ListView,
            "MapViewSerializerSnapshot" => F::MapView,
            "NullAwareMapSerializerSnapshot" => F::NullAwareMap,
            "NullSerializer$NullSerializerSnapshot" => F::Null,
            _ => return None,
        });
    }
    if let Some(rest) = class.strip_prefix("org.apache.flink.table.runtime.sequencedmultisetstate.linked.") {
        return Some(match rest {
            "RowDataKeySerializerSnapshot" => F::RowDataKey,
            "MetaSqnInfoSerializer$MetaSqnInfoSerializerSnapshot" => F::MetaSqnInfo,
            "RowSqnInfoSerializer$RowSqnInfoSerializerSnapshot" => F::RowSqnInfo,
            "NodeSerializer$NodeSerializerSnapshot" => F::Node,
            _ => return None,
        });
    }
    match class {
        "org.apache.flink.table.runtime.operators.sink.SortedLongSerializer$SortedLongSerializerSnapshot" => Some(F::SortedLong),
        _ => None,
    }
}

fn invalid(c: &Cursor<'_>, at: u64, msg: String) -> DecodeError {
    c.error_at(DecodeErrorKind::Invalid(msg), at)
}

/// One Java serialization stream (`InstantiationUtil.serializeObject` writes one per object).
fn java(c: &mut Cursor<'_>, what: &str) -> R<JavaGraph> {
    read_stream(c).context_with(|| what.to_owned())
}

fn logical(c: &mut Cursor<'_>, what: &str) -> R<LogicalType> {
    let at = c.position();
    let g = java(c, what)?;
    logical_type::from_java(&g, &g.root).map_err(|e| invalid(c, at, format!("{what}: {e}")))
}

/// `SimpleTypeSerializerSnapshot`: version 3 has no payload, version 2 the serializer class.
pub(crate) fn simple(c: &mut Cursor<'_>, class: &str, version: i32, at: u64) -> R<()> {
    match version {
        3 => Ok(()),
        2 => c.utf("serializer class name").map(drop),
        v => Err(invalid(c, at, format!("unsupported version {v} of serializer snapshot {class}"))),
    }
}

fn magic(c: &mut Cursor<'_>, expected: u32, what: &'static str) -> R<()> {
    let at = c.position();
    let found = c.u32(what)?;
    if found != expected {
        return Err(c.error_at(DecodeErrorKind::BadMagic { what, expected, found }, at));
    }
    Ok(())
}

/// `NestedSerializersSnapshotDelegate`: magic, version 1, the nested snapshots.
/// A key and a value serializer from the two nested snapshots `nested` checked there are.
fn two(c: &Cursor<'_>, kv: Vec<TypeSerializer>) -> R<[Box<TypeSerializer>; 2]> {
    let at = c.position();
    let [k, v]: [TypeSerializer; 2] = kv.try_into().map_err(|kv: Vec<TypeSerializer>| invalid(c, at, format!("2 nested serializers expected, {} read", kv.len())))?;
    Ok([Box::new(k), Box::new(v)])
}

pub(crate) fn nested(c: &mut Cursor<'_>, depth: usize, want: Option<usize>, class: &str) -> R<Vec<TypeSerializer>> {
    magic(c, consts::NESTED_MAGIC, "nested serializer snapshots magic")?;
    let vat = c.position();
    let v = c.i32("nested serializer snapshots version")?;
    if v != consts::NESTED_VERSION {
        return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "nested serializer snapshots version", value: v.into() }, vat));
    }
    let nat = c.position();
    let n = c.count("number of nested serializer snapshots", 6)?;
    if let Some(w) = want {
        if n != w {
            return Err(invalid(c, nat, format!("{class} needs {w} nested serializers, the snapshot has {n}")));
        }
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(read_versioned(c, Ctx::at_depth(depth + 1)).context_with(|| format!("nested serializer {i}"))?);
    }
    Ok(out)
}

/// `CompositeTypeSerializerSnapshot` up to its outer payload: the outer version (the snapshot
/// version for legacy snapshots, version ≤ 2).
pub(crate) fn composite_header(c: &mut Cursor<'_>, version: i32) -> R<i32> {
    if version > consts::HIGHEST_LEGACY_COMPOSITE_VERSION {
        magic(c, consts::COMPOSITE_MAGIC, "composite serializer snapshot magic")?;
        c.i32("outer snapshot version")
    } else {
        Ok(version)
    }
}

/// Reads the payload of a table runtime snapshot of `family`.
pub(crate) fn read(c: &mut Cursor<'_>, class: String, version: i32, family: TableFamily, depth: usize) -> R<TypeSerializer> {
    use TableFamily as F;
    let at = c.position();
    let short = class.rsplit('.').next().unwrap_or(&class).to_owned();
    let one = |mut v: Vec<TypeSerializer>| Box::new(v.remove(0));
    let kind = match family {
        F::RowData => {
            // i32 n, n Java-serialized LogicalTypes, the field serializers' snapshots
            let nat = c.position();
            let n = c.count("number of row fields", 4)?;
            let mut types = Vec::with_capacity(n);
            for i in 0..n {
                types.push(logical(c, &format!("logical type of field {i}"))?);
            }
            let fields = nested(c, depth, None, &short)?;
            if fields.len() != n {
                return Err(invalid(c, nat, format!("{short}: {n} field types but {} field serializers", fields.len())));
            }
            T::RowData { types, fields, names: None }
        }
        F::BinaryRow => T::BinaryRow { arity: c.non_negative_i32("binary row arity")? },
        F::StringData => {
            simple(c, &class, version, at)?;
            T::StringData
        }
        F::Decimal => T::Decimal { precision: c.non_negative_i32("decimal precision")?, scale: c.non_negative_i32("decimal scale")? },
        F::Timestamp => T::Timestamp { precision: c.non_negative_i32("timestamp precision")? },
        F::Array => {
            let element = logical(c, "array element type")?;
            // the element serializer object: its bytes follow from the element type
            java(c, "array element serializer")?;
            T::Array { element }
        }
        F::Map => {
            let key = logical(c, "map key type")?;
            let value = logical(c, "map value type")?;
            java(c, "map key serializer")?;
            java(c, "map value serializer")?;
            T::Map { key, value }
        }
        F::RawValue => {
            composite_header(c, version)?;
            T::RawValue(one(nested(c, depth, Some(1), &short)?))
        }
        F::External => {
            composite_header(c, version)?;
            let dat = c.position();
            let g = java(c, "external data type")?;
            let (logical_type, conversion_class) =
                logical_type::from_java_data_type(&g, &g.root).map_err(|e| invalid(c, dat, format!("external data type: {e}")))?;
            c.bool("external serializer internal-input flag")?;
            T::External { logical_type, conversion_class, internal: one(nested(c, depth, Some(1), &short)?) }
        }
        F::LinkedList => {
            let outer = composite_header(c, version)?;
            let null_mask = match outer {
                v if v < 2 => false,
                2 => true,
                _ => c.bool("linked list null mask flag")?,
            };
            T::LinkedList { element: one(nested(c, depth, Some(1), &short)?), null_mask }
        }
        F::SortedMap => {
            let cat = c.position();
            let g = java(c, "sorted map comparator")?;
            let comparator = g.class_of(&g.root).map(str::to_owned).ok_or_else(|| invalid(c, cat, "sorted map comparator is not an object".into()))?;
            let kv = nested(c, depth, Some(2), &short)?;
            let [key, value] = two(c, kv)?;
            T::SortedMap { key, value, comparator }
        }
        F::WindowKey => {
            composite_header(c, version)?;
            T::WindowKey(one(nested(c, depth, Some(1), &short)?))
        }
        F::ListView => {
            composite_header(c, version)?;
            T::ListView(one(nested(c, depth, Some(1), &short)?))
        }
        F::MapView => {
            composite_header(c, version)?;
            T::MapView(one(nested(c, depth, Some(1), &short)?))
        }
        F::NullAwareMap => {
            composite_header(c, version)?;
            let kv = nested(c, depth, Some(2), &short)?;
            let [key, value] = two(c, kv)?;
            T::NullAwareMap(key, value)
        }
        F::RowDataKey => {
            // the generated equaliser and hash function (Java-serialized, length-prefixed), then
            // the row serializer's snapshot
            for what in ["row equaliser", "row hash function"] {
                let n = c.count(what, 1)?;
                c.skip(n, what)?;
            }
            T::RowDataKey(Box::new(read_versioned(c, Ctx::at_depth(depth + 1)).context_with(|| "row serializer".to_owned())?))
        }
        F::MetaSqnInfo | F::RowSqnInfo | F::Node => {
            composite_header(c, version)?;
            let names: &'static [&'static str] = match family {
                F::MetaSqnInfo => &["highSqn", "size"],
                F::RowSqnInfo => &["firstSqn", "lastSqn"],
                _ => &["row", "sqn", "prevSqn", "nextSqn", "nextSqnForRecord", "timestamp"],
            };
            let fields = nested(c, depth, Some(names.len()), &short)?;
            T::Fields { names, fields }
        }
        F::TimeWindow | F::CountWindow | F::GlobalWindow | F::Null | F::SortedLong => {
            simple(c, &class, version, at)?;
            match family {
                F::TimeWindow => T::TimeWindow,
                F::CountWindow => T::CountWindow,
                F::GlobalWindow => T::GlobalWindow,
                F::Null => T::Null,
                _ => T::SortedLong,
            }
        }
    };
    Ok(TypeSerializer::new(class, version, SerializerKind::Table(Box::new(kind))))
}
