//! Registrations of keyed states new to a snapshot, for built-in types: what `import` adds to
//! an operator's serialization proxy for a state the snapshot lacks when no `--like` is given.
//! The types come from the file's Arrow column types (`value`, and `user_key` of map state);
//! the bytes are those Flink writes for a state of those types (a `StateMetaInfoSnapshot`:
//! name, backend type, the `KEYED_STATE_TYPE` option, the value and namespace serializer
//! snapshots in versioned form). Spec: `formats/import.md` § "New states".

use arrow_schema::{DataType, Schema};

use crate::bytes::{Cursor, DataOutput};
use crate::error::{Error, Result};
use crate::model::StateKind;
use crate::readers::meta::{read_state_meta_info, StateMetaInfo};
use crate::readers::serializers::consts::{COMPOSITE_MAGIC, NESTED_MAGIC, NESTED_VERSION, PROXY_VERSION};

const BASE: &str = "org.apache.flink.api.common.typeutils.base.";

/// `SimpleTypeSerializerSnapshot`s have version 3 and no payload; so do the composite
/// snapshots' own versions here (`CompositeTypeSerializerSnapshot`, outer version 1).
const SNAPSHOT_VERSION: i32 = 3;
const OUTER_VERSION: i32 = 1;

/// A type whose serializer snapshot flinksnap writes for a new state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BuiltinType {
    /// A `SimpleTypeSerializerSnapshot`: the serializer's simple class name under `…typeutils.base.`.
    Simple(&'static str),
    /// `List<T>` (`ListSerializer`), the value serializer of list state.
    List(Box<BuiltinType>),
    /// `Map<K, V>` (`MapSerializer`), the value serializer of map state.
    Map(Box<BuiltinType>, Box<BuiltinType>),
}

impl BuiltinType {
    /// The Java type a column of `t` holds, as `export` writes it (the first of several Java
    /// types an Arrow type could hold: `Utf8` is a `String`, `Binary` a `byte[]`).
    fn of_column(t: &DataType) -> Option<BuiltinType> {
        Some(BuiltinType::Simple(match t {
            DataType::Int64 => "LongSerializer$LongSerializerSnapshot",
            DataType::Int32 => "IntSerializer$IntSerializerSnapshot",
            DataType::Int16 => "ShortSerializer$ShortSerializerSnapshot",
            DataType::Int8 => "ByteSerializer$ByteSerializerSnapshot",
            DataType::Boolean => "BooleanSerializer$BooleanSerializerSnapshot",
            DataType::Float64 => "DoubleSerializer$DoubleSerializerSnapshot",
            DataType::Float32 => "FloatSerializer$FloatSerializerSnapshot",
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "StringSerializer$StringSerializerSnapshot",
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "array.BytePrimitiveArraySerializer$BytePrimitiveArraySerializerSnapshot",
            _ => return None,
        }))
    }

    /// The snapshot in versioned form: `utf` class, `i32` version, payload.
    fn write(&self, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        match self {
            BuiltinType::Simple(class) => {
                out.put_utf(&format!("{BASE}{class}"))?;
                out.put_i32(SNAPSHOT_VERSION);
                Ok(())
            }
            BuiltinType::List(e) => composite(out, "ListSerializerSnapshot", &[e]),
            BuiltinType::Map(k, v) => composite(out, "MapSerializerSnapshot", &[k, v]),
        }
    }
}

/// A `CompositeTypeSerializerSnapshot` without outer payload: magic, outer version, then the
/// nested snapshots (`NestedSerializersSnapshotDelegate`: magic, version, count, each snapshot).
fn composite(out: &mut Vec<u8>, class: &str, nested: &[&BuiltinType]) -> std::result::Result<(), String> {
    out.put_utf(&format!("{BASE}{class}"))?;
    out.put_i32(SNAPSHOT_VERSION);
    out.put_i32(COMPOSITE_MAGIC as i32);
    out.put_i32(OUTER_VERSION);
    out.put_i32(NESTED_MAGIC as i32);
    out.put_i32(NESTED_VERSION);
    out.put_i32(nested.len() as i32);
    for n in nested {
        n.write(out)?;
    }
    Ok(())
}

/// The registration Flink writes for keyed state `name` of `kind` whose values (list state: its
/// elements; map state: with user keys of `user_key`) are of `value`, in namespace
/// `VoidNamespace` (a state a job declares without windows).
pub(crate) fn registration(name: &str, kind: StateKind, value: BuiltinType, user_key: Option<BuiltinType>) -> Result<StateMetaInfo> {
    let (type_name, serializer) = match (kind, user_key) {
        (StateKind::Value, None) => ("VALUE", value),
        (StateKind::Reducing, None) => ("REDUCING", value),
        (StateKind::Aggregating, None) => ("AGGREGATING", value),
        (StateKind::List, None) => ("LIST", BuiltinType::List(Box::new(value))),
        (StateKind::Map, Some(k)) => ("MAP", BuiltinType::Map(Box::new(k), Box::new(value))),
        (k, _) => return Err(Error::unsupported(format!("state {name:?}: new {} state cannot be registered from column types", k.as_str()), None)),
    };
    let io = |e: String| Error::Invalid(format!("state {name:?}: {e}"));
    let mut out = Vec::new();
    out.put_utf(name).map_err(io)?;
    out.put_i32(0); // BackendStateType.KEY_VALUE
    out.put_i32(1);
    out.put_utf("KEYED_STATE_TYPE").map_err(io)?;
    out.put_utf(type_name).map_err(io)?;
    // Flink's order (a HashMap's iteration order of the two keys): value, then namespace.
    out.put_i32(2);
    out.put_utf("VALUE_SERIALIZER").map_err(io)?;
    out.put_i32(PROXY_VERSION);
    serializer.write(&mut out).map_err(io)?;
    out.put_utf("NAMESPACE_SERIALIZER").map_err(io)?;
    out.put_i32(PROXY_VERSION);
    out.put_utf("org.apache.flink.runtime.state.VoidNamespaceSerializer$VoidNamespaceSerializerSnapshot").map_err(io)?;
    out.put_i32(SNAPSHOT_VERSION);
    read_state_meta_info(&mut Cursor::new(&out)).map_err(|e| Error::Invalid(format!("state {name:?}: the registration written does not read back: {e}")))
}

/// The registration of a new keyed state of `kind` from the types of its file's columns
/// (`value`; list state: a list column, its elements' type; map state: `user_key` and `value`).
/// `Err` names the column whose type has no built-in serializer here.
pub(crate) fn registration_from_columns(name: &str, kind: StateKind, schema: &Schema) -> Result<StateMetaInfo> {
    let column = |c: &str| schema.field_with_name(c).map(|f| f.data_type().clone()).map_err(|_| Error::Invalid(format!("no column {c:?}")));
    let builtin = |c: &str, t: &DataType| {
        BuiltinType::of_column(t).ok_or_else(|| {
            Error::unsupported(
                format!(
                    "column {c:?} is {t}: a new state is registered from Int8/16/32/64, Float32/64, Boolean, Utf8 and Binary \
                     columns (Byte, Short, Integer, Long, Float, Double, Boolean, String, byte[]); for other types give --like \
                     OPERATOR/STATE"
                ),
                None,
            )
        })
    };
    let value = column("value")?;
    let value = match (kind, &value) {
        (StateKind::List, DataType::List(f) | DataType::LargeList(f)) => builtin("value", f.data_type())?,
        (StateKind::List, t) => return Err(Error::Invalid(format!("column \"value\" of list state is {t}, not a list"))),
        (_, t) => builtin("value", t)?,
    };
    let user_key = match kind {
        StateKind::Map => Some(builtin("user_key", &column("user_key")?)?),
        _ => None,
    };
    registration(name, kind, value, user_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registrations Flink wrote in a canonical savepoint (value, list and map states of
    /// built-in types), in the oldest and newest release: written again from their types,
    /// byte for byte.
    #[test]
    fn registrations_are_the_bytes_flink_writes() {
        let cases: [(&str, StateKind, BuiltinType, Option<BuiltinType>); 7] = [
            ("v-long", StateKind::Value, BuiltinType::of_column(&DataType::Int64).unwrap(), None),
            ("v-int", StateKind::Value, BuiltinType::of_column(&DataType::Int32).unwrap(), None),
            ("v-string", StateKind::Value, BuiltinType::of_column(&DataType::Utf8).unwrap(), None),
            ("v-double", StateKind::Value, BuiltinType::of_column(&DataType::Float64).unwrap(), None),
            ("v-bool", StateKind::Value, BuiltinType::of_column(&DataType::Boolean).unwrap(), None),
            ("v-bytes", StateKind::Value, BuiltinType::of_column(&DataType::Binary).unwrap(), None),
            ("list", StateKind::List, BuiltinType::of_column(&DataType::Int64).unwrap(), None),
        ];
        let map = ("map", StateKind::Map, BuiltinType::of_column(&DataType::Int64).unwrap(), BuiltinType::of_column(&DataType::Utf8));
        for version in ["1.13.6", "2.3.0"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/flink-{version}/heap-savepoint-canonical"));
            let sp = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("savepoint-")).unwrap();
            let snapshot = crate::snapshot::Snapshot::open(std::sync::Arc::new(crate::storage::LocalStorage), sp.to_str().unwrap()).unwrap();
            let states: Vec<StateMetaInfo> = crate::readers::states::snapshot_states(&snapshot, &Default::default()).unwrap().into_iter().flat_map(|(_, s)| s).map(|s| s.meta).collect();
            let mut checked = 0;
            for (name, kind, value, user_key) in cases.iter().cloned().chain([map.clone()]) {
                let flink = states.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{version}: {name}"));
                let ours = registration(name, kind, value, user_key).unwrap();
                assert_eq!(ours.raw, flink.raw, "{version}: {name}");
                checked += 1;
            }
            assert_eq!(checked, 8);
        }
    }

    #[test]
    fn columns_without_a_builtin_serializer_are_named() {
        let schema = Schema::new(vec![arrow_schema::Field::new("value", DataType::Date32, true)]);
        let e = registration_from_columns("s", StateKind::Value, &schema).unwrap_err().to_string();
        assert!(e.contains("column \"value\" is Date32") && e.contains("--like"), "{e}");
    }
}
