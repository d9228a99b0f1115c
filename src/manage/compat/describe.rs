//! The job description `compat` compares: per operator (by operator id, with its uid where
//! known) its max parallelism and its states, each with its kind, distribution mode and
//! serializers as a [`TypeDesc`] tree. The same model comes from a snapshot
//! ([`describe_snapshot`]), from a JSON file written by hand or by `flinksnap compat --describe`
//! (spec: `formats/compat-target.md`), or in part from a compiled SQL plan (`plan.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::metadata::handles::KeyedStateHandle;
use crate::model::OperatorId;
use crate::readers::entries::SubtaskRef;
use crate::readers::meta::{StateMetaInfo, KEY_SERIALIZER, NAMESPACE_SERIALIZER, OPERATOR_STATE_DISTRIBUTION_MODE, USER_KEY_SERIALIZER, VALUE_SERIALIZER};
use crate::readers::serializers::table::TableSerializer;
use crate::readers::serializers::{SerializerKind, TypeSerializer};
use crate::readers::source::Selection;
use crate::readers::states::subtask_states;
use crate::snapshot::Snapshot;

/// The `format` value of a description file.
pub const FORMAT: &str = "flinksnap-compat-target";
/// The description file version this build writes and reads.
pub const VERSION: u32 = 1;

/// What a job (old: the snapshot; new: the target) has, as far as a restore cares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDescription {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// Where it came from (a snapshot path, a plan file), for messages.
    #[serde(default)]
    pub source: Option<String>,
    /// The Flink release line that wrote it (`1.20`, `2.x`, ...), where known.
    #[serde(default)]
    pub flink_version: Option<String>,
    /// The state backend (`hashmap`, `rocksdb`, `forst`), where known.
    #[serde(default)]
    pub backend: Option<String>,
    /// The operators.
    pub operators: Vec<OperatorDesc>,
}

/// One operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorDesc {
    /// The operator id (32 hex digits). Optional in a file when `uid` is given: Flink derives it
    /// from the uid.
    #[serde(default)]
    pub id: Option<String>,
    /// The uid, where known.
    #[serde(default)]
    pub uid: Option<String>,
    /// The operator's name, for messages.
    #[serde(default)]
    pub name: Option<String>,
    /// Parallelism.
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// Max parallelism.
    #[serde(default)]
    pub max_parallelism: Option<u32>,
    /// Whether the job sets the max parallelism (then Flink refuses another one in the snapshot);
    /// `None`: not known.
    #[serde(default)]
    pub max_parallelism_explicit: Option<bool>,
    /// Whether any subtask or the coordinator holds state (snapshots only; a dropped operator
    /// without state restores without `--allow-non-restored-state`).
    #[serde(default)]
    pub has_state: Option<bool>,
    /// Whether the coordinator (e.g. a FLIP-27 source enumerator) holds state.
    #[serde(default)]
    pub coordinator_state: bool,
    /// The states; `None` when not known (a SQL plan names operators, not their serializers).
    #[serde(default)]
    pub states: Option<Vec<StateDesc>>,
}

impl OperatorDesc {
    /// The operator id: given, or derived from the uid.
    pub fn operator_id(&self) -> Option<OperatorId> {
        match &self.id {
            Some(h) => h.parse().ok(),
            None => self.uid.as_deref().map(OperatorId::from_uid),
        }
    }

    /// `uid (id)`, or the id.
    pub fn label(&self) -> String {
        let id = self.operator_id().map_or_else(|| "?".to_owned(), |i| i.to_hex());
        match &self.uid {
            Some(u) => format!("{u} ({id})"),
            None => id,
        }
    }
}

/// One registered state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateDesc {
    /// The state name.
    pub name: String,
    /// `value`, `list`, `map`, `reducing`, `aggregating`, `timer`, `operator_list`,
    /// `operator_union`, `broadcast` (`flinksnap dump`'s names).
    pub kind: String,
    /// Operator state: `SPLIT_DISTRIBUTE`, `UNION` or `BROADCAST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_mode: Option<String>,
    /// Keyed state: the backend's key serializer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<TypeDesc>,
    /// Keyed state: the namespace serializer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<TypeDesc>,
    /// Broadcast state: the map key serializer; 2.x async map state: the user key serializer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_key: Option<TypeDesc>,
    /// The value serializer (list state: the element; map state: the map; timers: the timer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<TypeDesc>,
    /// Whether the state has TTL; set when known without a value serializer (a SQL plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<bool>,
}

impl StateDesc {
    /// Whether TTL is on: the value is a `TtlValue` wrapper (or the `ttl` field says so).
    pub fn has_ttl(&self) -> Option<bool> {
        match &self.value {
            Some(v) => Some(v.is_ttl()),
            None => self.ttl,
        }
    }
}

/// A serializer, as much as its snapshot tells: enough for Flink's compatibility rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TypeDesc {
    /// A simple serializer: `long`, `string`, `int`, `instant`, `void_namespace`, `time_window`, ...
    Simple {
        /// Its name.
        name: String,
    },
    /// A primitive array (`long[]`: element `long`).
    PrimitiveArray {
        /// The element's simple name.
        element: String,
    },
    /// A Java enum.
    Enum {
        /// The enum class.
        class: String,
        /// Constant names in order.
        constants: Vec<String>,
    },
    /// `java.util.List`.
    List {
        /// Element.
        element: Box<TypeDesc>,
    },
    /// `java.util.Map`.
    Map {
        /// Key.
        key: Box<TypeDesc>,
        /// Value.
        value: Box<TypeDesc>,
    },
    /// `java.util.Set`.
    Set {
        /// Element.
        element: Box<TypeDesc>,
    },
    /// An object array.
    Array {
        /// Component class.
        component_class: String,
        /// Element.
        element: Box<TypeDesc>,
    },
    /// A Java `TupleN`.
    Tuple {
        /// Tuple class.
        class: String,
        /// Fields `f0` ….
        fields: Vec<TypeDesc>,
    },
    /// `org.apache.flink.types.Row`.
    Row {
        /// Fields by position.
        fields: Vec<TypeDesc>,
    },
    /// A POJO.
    Pojo {
        /// The class.
        class: String,
        /// Fields by name; a `null` type: the snapshot has no serializer for the field.
        fields: Vec<PojoField>,
        /// Registered subclasses, in tag order.
        #[serde(default)]
        registered_subclasses: Vec<String>,
    },
    /// `NullableSerializer`.
    Nullable {
        /// Whether nulls are padded.
        padded: bool,
        /// Inner.
        inner: Box<TypeDesc>,
    },
    /// Java or Scala `Either`.
    Either {
        /// Left.
        left: Box<TypeDesc>,
        /// Right.
        right: Box<TypeDesc>,
        /// Scala's.
        #[serde(default)]
        scala: bool,
    },
    /// A generic `org.apache.flink.types.Value` type.
    Value {
        /// The class.
        class: String,
    },
    /// Kryo.
    Kryo {
        /// The type class.
        class: String,
        /// Registered classes, in registration order.
        #[serde(default)]
        registrations: Vec<String>,
    },
    /// Avro.
    Avro {
        /// The runtime class (`GenericRecord`, a specific record class, a reflect class).
        class: String,
        /// The (writer) schema, as JSON.
        schema: serde_json::Value,
    },
    /// The TTL wrapper `TtlValue`.
    Ttl {
        /// The user value.
        value: Box<TypeDesc>,
    },
    /// A timer: key and namespace.
    Timer {
        /// Key.
        key: Box<TypeDesc>,
        /// Namespace.
        namespace: Box<TypeDesc>,
    },
    /// A serializer of the Scala API (`flink-scala`, removed in Flink 2.0).
    Scala {
        /// What (`option`, `case_class`, `traversable`, `try`, `enumeration`, `unit`, `nothing`).
        what: String,
        /// The class (case class, enumeration), or the traversable's builder code.
        #[serde(default)]
        class: Option<String>,
        /// Nested serializers (fields, element).
        #[serde(default)]
        nested: Vec<TypeDesc>,
    },
    /// Java object serialization (`JavaSerializer`).
    JavaSerialized,
    /// `StreamElementSerializer`.
    StreamElement {
        /// The record serializer.
        inner: Box<TypeDesc>,
    },
    /// SQL's `RowDataSerializer`: the fields' logical types, as `LogicalType#asSummaryString`.
    RowData {
        /// Field logical types.
        fields: Vec<String>,
    },
    /// Another serializer of the table runtime or CEP: its snapshot class, parameters that
    /// decide compatibility, nested serializers.
    Table {
        /// The snapshot class.
        class: String,
        /// Parameters (precision, element types, ...), as text.
        #[serde(default)]
        params: String,
        /// Nested serializers.
        #[serde(default)]
        nested: Vec<TypeDesc>,
    },
    /// A serializer flinksnap cannot interpret: only its snapshot class.
    Other {
        /// The snapshot class.
        class: String,
    },
}

/// A POJO field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PojoField {
    /// Field name.
    pub name: String,
    /// Its serializer (`None`: the snapshot has none, the class is gone).
    #[serde(default, rename = "type")]
    pub ty: Option<TypeDesc>,
}

impl TypeDesc {
    /// Whether this is a TTL wrapper.
    pub fn is_ttl(&self) -> bool {
        matches!(self, TypeDesc::Ttl { .. })
    }

    /// The serializers directly nested in this one.
    pub fn nested(&self) -> Vec<&TypeDesc> {
        use TypeDesc as T;
        match self {
            T::List { element } | T::Set { element } | T::Array { element, .. } => vec![element],
            T::Map { key, value } => vec![key, value],
            T::Tuple { fields, .. } | T::Row { fields } => fields.iter().collect(),
            T::Pojo { fields, .. } => fields.iter().filter_map(|f| f.ty.as_ref()).collect(),
            T::Nullable { inner, .. } | T::StreamElement { inner } => vec![inner],
            T::Either { left, right, .. } => vec![left, right],
            T::Ttl { value } => vec![value],
            T::Timer { key, namespace } => vec![key, namespace],
            T::Scala { nested, .. } | T::Table { nested, .. } => nested.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// A short text for messages: `long`, `Pojo(com.example.Order)`, `List<string>`.
    pub fn short(&self) -> String {
        use TypeDesc as T;
        match self {
            T::Simple { name } => name.clone(),
            T::PrimitiveArray { element } => format!("{element}[]"),
            T::Enum { class, .. } => format!("Enum({class})"),
            T::List { element } => format!("List<{}>", element.short()),
            T::Map { key, value } => format!("Map<{}, {}>", key.short(), value.short()),
            T::Set { element } => format!("Set<{}>", element.short()),
            T::Array { element, .. } => format!("{}[]", element.short()),
            T::Tuple { class, fields } => format!("{}<{}>", simple_class(class), join(fields)),
            T::Row { fields } => format!("Row<{}>", join(fields)),
            T::Pojo { class, .. } => format!("Pojo({class})"),
            T::Nullable { inner, .. } => format!("Nullable<{}>", inner.short()),
            T::Either { left, right, .. } => format!("Either<{}, {}>", left.short(), right.short()),
            T::Value { class } => format!("Value({class})"),
            T::Kryo { class, .. } => format!("Kryo({class})"),
            T::Avro { class, .. } => format!("Avro({class})"),
            T::Ttl { value } => format!("Ttl<{}>", value.short()),
            T::Timer { key, namespace } => format!("Timer<{}, {}>", key.short(), namespace.short()),
            T::Scala { what, class, .. } => format!("Scala {what}{}", class.as_deref().map(|c| format!("({c})")).unwrap_or_default()),
            T::JavaSerialized => "JavaSerialized".into(),
            T::StreamElement { inner } => format!("StreamElement<{}>", inner.short()),
            T::RowData { fields } => format!("RowData<{}>", fields.join(", ")),
            T::Table { class, params, .. } => format!("{}{}", simple_class(class), if params.is_empty() { String::new() } else { format!("({params})") }),
            T::Other { class } => simple_class(class).to_owned(),
        }
    }
}

fn join(fields: &[TypeDesc]) -> String {
    fields.iter().map(TypeDesc::short).collect::<Vec<_>>().join(", ")
}

/// `a.b.C$D` → `C$D`.
pub(crate) fn simple_class(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

impl From<&TypeSerializer> for TypeDesc {
    fn from(s: &TypeSerializer) -> TypeDesc {
        describe_serializer(s, 0)
    }
}

fn boxed(s: &TypeSerializer, depth: usize) -> Box<TypeDesc> {
    Box::new(describe_serializer(s, depth + 1))
}

fn describe_serializer(s: &TypeSerializer, depth: usize) -> TypeDesc {
    use SerializerKind as K;
    use TypeDesc as T;
    if depth > crate::readers::serializers::MAX_DEPTH {
        return T::Other { class: s.class_name().to_owned() };
    }
    let all = |v: &[TypeSerializer]| v.iter().map(|f| describe_serializer(f, depth + 1)).collect::<Vec<_>>();
    match s.kind() {
        K::Simple(t) => T::Simple { name: simple_name(&format!("{t:?}")) },
        K::PrimitiveArray(t) => T::PrimitiveArray { element: simple_name(&format!("{t:?}")) },
        K::Enum { class, constants } => T::Enum { class: class.clone(), constants: constants.clone() },
        K::List(e) => T::List { element: boxed(e, depth) },
        K::Map(k, v) => T::Map { key: boxed(k, depth), value: boxed(v, depth) },
        K::Set(e) => T::Set { element: boxed(e, depth) },
        K::GenericArray { component_class, element } => T::Array { component_class: component_class.clone(), element: boxed(element, depth) },
        K::Tuple { class, fields } => T::Tuple { class: class.clone(), fields: all(fields) },
        K::Row { fields, .. } => T::Row { fields: all(fields) },
        K::Pojo(p) => T::Pojo {
            class: p.class.clone(),
            fields: p.fields.iter().map(|(n, f)| PojoField { name: n.clone(), ty: f.as_ref().map(|f| describe_serializer(f, depth + 1)) }).collect(),
            registered_subclasses: p.registered_subclasses.iter().map(|(n, _)| n.clone()).collect(),
        },
        K::Nullable { padding, inner } => T::Nullable { padded: *padding > 0, inner: boxed(inner, depth) },
        K::Either(l, r) => T::Either { left: boxed(l, depth), right: boxed(r, depth), scala: false },
        K::ScalaEither(l, r) => T::Either { left: boxed(l, depth), right: boxed(r, depth), scala: true },
        K::GenericValue { class } => T::Value { class: class.clone() },
        K::Kryo { type_class, registrations } => T::Kryo { class: type_class.clone(), registrations: registrations.clone() },
        K::Avro(a) => T::Avro {
            class: a.runtime_class.clone(),
            schema: serde_json::from_str(&a.schema_json).unwrap_or_else(|_| serde_json::Value::String(a.schema_json.clone())),
        },
        K::Ttl { value, .. } => T::Ttl { value: boxed(value, depth) },
        K::Timer { key, namespace } => T::Timer { key: boxed(key, depth), namespace: boxed(namespace, depth) },
        K::ScalaOption(e) => T::Scala { what: "option".into(), class: None, nested: vec![describe_serializer(e, depth + 1)] },
        K::ScalaProduct { class, fields } => T::Scala { what: "case_class".into(), class: Some(class.clone()), nested: all(fields) },
        K::ScalaTraversable { builder_code, element } => {
            T::Scala { what: "traversable".into(), class: Some(builder_code.clone()), nested: vec![describe_serializer(element, depth + 1)] }
        }
        K::ScalaTry { element, throwable } => {
            T::Scala { what: "try".into(), class: None, nested: vec![describe_serializer(element, depth + 1), describe_serializer(throwable, depth + 1)] }
        }
        K::ScalaEnum { class, constants } => T::Scala {
            what: "enumeration".into(),
            class: Some(class.clone()),
            nested: constants.iter().map(|(n, i)| T::Simple { name: format!("{n}={i}") }).collect(),
        },
        K::JavaSerialized => T::JavaSerialized,
        K::StreamElement(inner) => T::StreamElement { inner: boxed(inner, depth) },
        K::Table(t) => match t.as_ref() {
            TableSerializer::RowData { types, .. } => T::RowData { fields: types.iter().map(|t| t.summary()).collect() },
            other => T::Table { class: s.class_name().to_owned(), params: table_params(other), nested: s.nested().into_iter().map(|n| describe_serializer(n, depth + 1)).collect() },
        },
        K::Cep(_) => T::Table { class: s.class_name().to_owned(), params: String::new(), nested: s.nested().into_iter().map(|n| describe_serializer(n, depth + 1)).collect() },
        K::Opaque { .. } => T::Other { class: s.class_name().to_owned() },
        // SerializerKind is non-exhaustive.
        #[allow(unreachable_patterns)]
        _ => T::Other { class: s.class_name().to_owned() },
    }
}

/// The parameters of a table runtime serializer that its snapshot's compatibility check
/// compares (precision, element types): a change is incompatible.
fn table_params(t: &TableSerializer) -> String {
    match t {
        TableSerializer::BinaryRow { arity } => format!("arity {arity}"),
        TableSerializer::Decimal { precision, scale } => format!("DECIMAL({precision}, {scale})"),
        TableSerializer::Timestamp { precision } => format!("TIMESTAMP({precision})"),
        TableSerializer::Array { element } => format!("ARRAY<{}>", element.summary()),
        TableSerializer::Map { key, value } => format!("MAP<{}, {}>", key.summary(), value.summary()),
        TableSerializer::External { logical_type, conversion_class, .. } => {
            format!("{}{}", logical_type.summary(), conversion_class.as_deref().map(|c| format!(" AS {c}")).unwrap_or_default())
        }
        TableSerializer::SortedMap { comparator, .. } => format!("comparator {comparator}"),
        TableSerializer::LinkedList { null_mask, .. } => if *null_mask { String::new() } else { "no null mask".into() },
        _ => String::new(),
    }
}

/// `LocalDateTime` → `local_date_time`.
fn simple_name(debug: &str) -> String {
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn state_desc(m: &StateMetaInfo, kind: crate::model::StateKind, key: Option<&TypeSerializer>) -> StateDesc {
    let value = m.serializer(VALUE_SERIALIZER).map(TypeDesc::from);
    StateDesc {
        name: m.name.clone(),
        kind: kind.as_str().to_owned(),
        distribution_mode: m.option(OPERATOR_STATE_DISTRIBUTION_MODE).map(str::to_owned).or_else(|| {
            (kind == crate::model::StateKind::Broadcast).then(|| "BROADCAST".to_owned())
        }),
        key: if kind.is_keyed() { key.map(TypeDesc::from) } else { None },
        namespace: m.serializer(NAMESPACE_SERIALIZER).map(TypeDesc::from),
        user_key: m.serializer(KEY_SERIALIZER).or_else(|| m.serializer(USER_KEY_SERIALIZER)).map(TypeDesc::from),
        ttl: None,
        value,
    }
}

/// The backend that wrote a keyed state handle, as far as the handle kind tells.
fn backend_of(h: &KeyedStateHandle) -> Option<&'static str> {
    match h {
        KeyedStateHandle::IncrementalRemote(_) => Some("rocksdb"),
        _ => None,
    }
}

/// The releases that write a metadata version (a range where several do: the rules that
/// differ inside it, such as TTL migration from 2.1/2.2, stay undecided without
/// `--flink-version`).
pub fn flink_line(metadata_version: i32) -> Option<&'static str> {
    match metadata_version {
        2 => Some("1.3–1.10"),
        3 => Some("1.11–1.15"),
        4 => Some("1.16–1.20"),
        5 => Some("2.0"),
        6 => Some("2.1–2.3"),
        7 => Some("2.4"),
        _ => None,
    }
}

/// A snapshot's description: every operator, and the states its subtasks' state files declare
/// (their serialization proxies only; no entry is read). A state declared by several subtasks
/// is described once, from the first.
pub fn describe_snapshot(snapshot: &Snapshot, uids: &[String]) -> Result<JobDescription> {
    let mut operators = Vec::new();
    let selection = Selection::default();
    let mut backend = None;
    for (oi, op) in snapshot.metadata.operators.iter().enumerate() {
        let mut states: BTreeMap<(bool, String), StateDesc> = BTreeMap::new();
        let mut has_state = op.coordinator_state.is_some();
        for (si, st) in op.subtasks.iter().enumerate() {
            let Some(s) = &st.state else { continue };
            if !s.is_empty() {
                has_state = true;
            }
            for h in s.managed_keyed_state.iter() {
                backend = backend.or(backend_of(h));
            }
            let sub = SubtaskRef { operator: oi, subtask: si };
            for info in subtask_states(snapshot, &selection, sub)? {
                let d = state_desc(&info.meta, info.kind, info.key_serializer.as_ref());
                states.entry((!info.kind.is_keyed(), d.name.clone())).or_insert(d);
            }
        }
        operators.push(OperatorDesc {
            id: Some(op.operator_id.to_hex()),
            uid: crate::manage::operator_uid(snapshot, &op.operator_id, uids),
            name: op.name.clone(),
            parallelism: Some(op.parallelism),
            max_parallelism: Some(op.max_parallelism),
            max_parallelism_explicit: None,
            has_state: Some(has_state),
            coordinator_state: op.coordinator_state.is_some(),
            states: Some(states.into_values().collect()),
        });
    }
    Ok(JobDescription {
        format: FORMAT.to_owned(),
        version: VERSION,
        source: Some(snapshot.dir.to_string()),
        flink_version: flink_line(snapshot.metadata.version).map(str::to_owned),
        backend: backend.map(str::to_owned),
        operators,
    })
}
