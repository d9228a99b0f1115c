//! The columns of one state's output, from its registration ([`StateInfo`]): which serializer
//! each column comes from, and how a batch of entries becomes a `RecordBatch`, a CSV or a JSONL
//! chunk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_buffer::{Buffer, OffsetBuffer};
use arrow_schema::{Schema, SchemaRef};
use serde::Serialize;

use super::arrays::array;
use super::schema::{column, plain, type_summary, Column, Shape, META_ENCODING, META_OPAQUE_CLASS, META_SERIALIZER};
use crate::model::{Entry, OperatorId, StateKind};
use crate::readers::meta::{KEY_SERIALIZER, NAMESPACE_SERIALIZER, VALUE_SERIALIZER};
use crate::readers::serializers::TypeSerializer;
use crate::readers::states::StateInfo;

/// Picks one part (key, namespace, user key) out of an entry.
type PartOf = fn(&Entry) -> Option<&crate::model::value::Value>;

/// Schema metadata keys every exported Parquet file carries (see `formats/parquet-export.md`).
pub mod keys {
    /// The flinksnap version that wrote the file.
    pub const VERSION: &str = "flinksnap.version";
    /// The snapshot directory exported.
    pub const SNAPSHOT: &str = "flinksnap.snapshot";
    /// Its checkpoint id.
    pub const CHECKPOINT_ID: &str = "flinksnap.checkpoint_id";
    /// Its `_metadata` format version.
    pub const METADATA_VERSION: &str = "flinksnap.metadata_version";
    /// The Flink releases that write that metadata version.
    pub const WRITTEN_BY: &str = "flinksnap.written_by";
    /// The operator id (32 hex digits).
    pub const OPERATOR_ID: &str = "flinksnap.operator_id";
    /// The operator uid, when known.
    pub const OPERATOR_UID: &str = "flinksnap.operator_uid";
    /// The state name.
    pub const STATE: &str = "flinksnap.state";
    /// The state kind, as `dump` names it.
    pub const KIND: &str = "flinksnap.kind";
    /// The state's serializers by role, as a JSON object of snapshot class names.
    pub const SERIALIZERS: &str = "flinksnap.serializers";
    /// The state's registration as the snapshot stores it (Flink's `StateMetaInfoSnapshot`:
    /// name, type, options, serializer snapshots), hex: what `import` registers a state the
    /// target lacks with, so any type round-trips without `--like`.
    pub const REGISTRATION: &str = "flinksnap.registration";
    /// A keyed state's key serializer snapshot as the keyed backend's proxy stores it, hex.
    pub const KEY_SERIALIZER: &str = "flinksnap.key_serializer";
    /// Opaque (Binary) columns, as a JSON array of `{"column", "class"}`.
    pub const OPAQUE_COLUMNS: &str = "flinksnap.opaque_columns";
}

/// The output columns of one state.
#[derive(Debug)]
pub struct StateLayout {
    /// The operator.
    pub operator_id: OperatorId,
    /// Its uid, when known.
    pub operator_uid: Option<String>,
    /// The state name.
    pub name: String,
    /// The state kind.
    pub kind: StateKind,
    key: Option<Column>,
    namespace: Option<Column>,
    user_key: Option<Column>,
    value: Column,
    ttl: bool,
    /// The Arrow schema, with the file-level metadata.
    pub schema: SchemaRef,
    /// The four columns every row of the state repeats (operator id, uid, state, kind), built
    /// once for the longest batch so far; a batch takes a zero-copy slice of them instead of
    /// writing the texts again for every row.
    constants: Mutex<Option<[ArrayRef; 4]>>,
}

/// One column of the manifest's schema summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnSummary {
    /// Column name.
    pub name: String,
    /// The Arrow type.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether it may hold nulls.
    pub nullable: bool,
    /// The serializer snapshot class it was derived from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serializer: Option<String>,
    /// How values map back to the dump form, when the Arrow type does not say it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// The class of opaque values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opaque_class: Option<String>,
}

fn serializer<'a>(info: &'a StateInfo, role: &str) -> Result<&'a TypeSerializer, String> {
    info.meta.serializer(role).ok_or_else(|| format!("state {:?} has no {role}", info.name()))
}

/// The user value serializer under a TTL wrapper, and whether there was one.
fn unwrap_ttl(ser: &TypeSerializer) -> (&TypeSerializer, bool) {
    match ser.ttl_inner() {
        Some(inner) => (inner, true),
        None => (ser, false),
    }
}

impl StateLayout {
    /// The layout of a state; `file_meta` is the snapshot-level metadata every file carries.
    pub fn new(info: &StateInfo, operator_uid: Option<&str>, file_meta: &[(String, String)]) -> Result<StateLayout, String> {
        let mut key = None;
        let mut namespace = None;
        let mut user_key = None;
        let mut ttl = false;
        let value;
        if info.kind == StateKind::Timer {
            // Timers store key and namespace inside the timer; the value is the timestamp.
            let timer = serializer(info, VALUE_SERIALIZER)?;
            let (k, n) = timer
                .timer_key_namespace()
                .ok_or_else(|| format!("timer state {:?} with serializer {}", info.name(), timer.class_name()))?;
            key = Some(column("key", k, false));
            namespace = Some(column("namespace", n, false));
            value = plain("value", Shape::Int64, false);
        } else if info.kind.is_keyed() {
            let key_ser = info.key_serializer.as_ref().ok_or_else(|| format!("keyed state {:?} without a key serializer", info.name()))?;
            key = Some(column("key", key_ser, false));
            namespace = Some(column("namespace", serializer(info, NAMESPACE_SERIALIZER)?, false));
            let v = serializer(info, VALUE_SERIALIZER)?;
            match info.kind {
                StateKind::List => {
                    let elem = v.list_element().ok_or_else(|| format!("list state {:?} with serializer {}", info.name(), v.class_name()))?;
                    let (elem, t) = unwrap_ttl(elem);
                    ttl = t;
                    // The value is the whole list of the key and namespace (Flink's `ListState.get()`).
                    let item = column("item", elem, false);
                    let field = arrow_schema::Field::new("value", arrow_schema::DataType::List(item.field.clone()), false)
                        .with_metadata(HashMap::from([(META_SERIALIZER.to_owned(), v.class_name().to_owned())]));
                    value = Column { field: Arc::new(field), shape: Shape::List(Box::new(item)) };
                }
                StateKind::Map => {
                    let (uk, uv) = v.map_key_value().ok_or_else(|| format!("map state {:?} with serializer {}", info.name(), v.class_name()))?;
                    let (uv, t) = unwrap_ttl(uv);
                    ttl = t;
                    user_key = Some(column("user_key", uk, false));
                    // Map state stores a null flag per user value.
                    value = column("value", uv, true);
                }
                _ => {
                    let (v, t) = unwrap_ttl(v);
                    ttl = t;
                    value = column("value", v, false);
                }
            }
        } else {
            if info.kind == StateKind::Broadcast {
                user_key = Some(column("user_key", serializer(info, KEY_SERIALIZER)?, false));
            }
            value = column("value", serializer(info, VALUE_SERIALIZER)?, info.kind == StateKind::Broadcast);
        }

        let mut fields = vec![
            plain("operator_id", Shape::Text, false).field,
            plain("operator_uid", Shape::Text, true).field,
            plain("state", Shape::Text, false).field,
            plain("kind", Shape::Text, false).field,
        ];
        if info.kind.is_keyed() {
            fields.push(plain("key_group", Shape::Int32, false).field);
        }
        for c in [&key, &namespace, &user_key].into_iter().flatten() {
            fields.push(c.field.clone());
        }
        fields.push(value.field.clone());
        if ttl {
            fields.push(plain("ttl_timestamp", Shape::Int64, true).field);
        }

        let mut meta: HashMap<String, String> = file_meta.iter().cloned().collect();
        meta.insert(keys::OPERATOR_ID.into(), info.operator_id.to_hex());
        if let Some(u) = operator_uid {
            meta.insert(keys::OPERATOR_UID.into(), u.to_owned());
        }
        meta.insert(keys::STATE.into(), info.name().to_owned());
        meta.insert(keys::KIND.into(), info.kind.as_str().to_owned());
        let mut sers = serde_json::Map::new();
        if let Some(k) = &info.key_serializer {
            sers.insert("BACKEND_KEY_SERIALIZER".into(), k.class_name().into());
        }
        for (role, s) in &info.meta.serializers {
            sers.insert(role.clone(), s.class_name().into());
        }
        meta.insert(keys::SERIALIZERS.into(), serde_json::Value::Object(sers).to_string());
        if !info.meta.raw.is_empty() {
            meta.insert(keys::REGISTRATION.into(), crate::model::value::hex(&info.meta.raw));
        }
        if info.kind.is_keyed() && !info.key_serializer_raw.is_empty() {
            meta.insert(keys::KEY_SERIALIZER.into(), crate::model::value::hex(&info.key_serializer_raw));
        }
        let mut opaque = Vec::new();
        for f in &fields {
            opaque_columns(f, f.name(), &mut opaque);
        }
        if !opaque.is_empty() {
            meta.insert(keys::OPAQUE_COLUMNS.into(), serde_json::Value::Array(opaque).to_string());
        }
        let schema = Arc::new(Schema::new(fields).with_metadata(meta));
        Ok(StateLayout {
            operator_id: info.operator_id,
            operator_uid: operator_uid.map(str::to_owned),
            name: info.name().to_owned(),
            kind: info.kind,
            key,
            namespace,
            user_key,
            value,
            ttl,
            schema,
            constants: Mutex::new(None),
        })
    }

    /// Entries of this state as one record batch.
    pub fn batch(&self, entries: &[Entry]) -> Result<RecordBatch, String> {
        let n = entries.len();
        let mut columns: Vec<ArrayRef> = self.constants(n).to_vec();
        if self.kind.is_keyed() {
            let kgs: Vec<i32> = entries
                .iter()
                .map(|e| e.key_group.and_then(|k| i32::try_from(k).ok()).ok_or_else(|| "a keyed entry without a key group".to_owned()))
                .collect::<Result<_, _>>()?;
            columns.push(Arc::new(Int32Array::from(kgs)));
        }
        let parts: [(&Option<Column>, PartOf); 3] =
            [(&self.key, |e| e.key.as_ref()), (&self.namespace, |e| e.namespace.as_ref()), (&self.user_key, |e| e.user_key.as_ref())];
        for (col, get) in parts {
            if let Some(c) = col {
                let vals: Vec<_> = entries.iter().map(get).collect();
                columns.push(array(c, &vals)?);
            }
        }
        let vals: Vec<_> = entries.iter().map(|e| Some(&e.value)).collect();
        columns.push(array(&self.value, &vals)?);
        if self.ttl {
            columns.push(Arc::new(entries.iter().map(|e| e.ttl_timestamp).collect::<Int64Array>()));
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| e.to_string())
    }

    /// The constant columns of `n` rows.
    fn constants(&self, n: usize) -> [ArrayRef; 4] {
        let build = || {
            let hex = self.operator_id.to_hex();
            [
                Arc::new(repeated(Some(hex.as_str()), n)) as ArrayRef,
                Arc::new(repeated(self.operator_uid.as_deref(), n)),
                Arc::new(repeated(Some(self.name.as_str()), n)),
                Arc::new(repeated(Some(self.kind.as_str()), n)),
            ]
        };
        // A poisoned lock only means another thread panicked building them: build anew.
        let Ok(mut cached) = self.constants.lock() else { return build() };
        match cached.as_ref() {
            Some(c) if c[0].len() >= n && c[0].len() / 2 <= n => c.clone().map(|a| a.slice(0, n)),
            // A slice counts its whole buffers in the batch's memory size (what the read-ahead
            // bound adds up): a much shorter batch gets its own.
            Some(c) if c[0].len() > n => build(),
            _ => cached.insert(build()).clone(),
        }
    }

    /// Whether values of this state can hold opaque bytes (only opaque and JSON columns can):
    /// counting them is skipped otherwise.
    pub fn may_hold_opaque(&self) -> bool {
        [&self.key, &self.namespace, &self.user_key].into_iter().flatten().chain([&self.value]).any(|c| c.shape.may_hold_opaque())
    }

    /// The manifest's schema summary: one line per top-level column.
    pub fn columns(&self) -> Vec<ColumnSummary> {
        self.schema
            .fields()
            .iter()
            .map(|f| {
                let m = f.metadata();
                ColumnSummary {
                    name: f.name().clone(),
                    data_type: type_summary(f.data_type()),
                    nullable: f.is_nullable(),
                    serializer: m.get(META_SERIALIZER).cloned(),
                    encoding: m.get(META_ENCODING).cloned(),
                    opaque_class: m.get(META_OPAQUE_CLASS).cloned(),
                }
            })
            .collect()
    }
}

/// `n` rows of the same text (or nulls), built in one go: the value buffer is the text
/// repeated and the offsets a progression (appending row by row cost 2% of an export).
fn repeated(text: Option<&str>, n: usize) -> StringArray {
    let Some(text) = text else { return StringArray::new_null(n) };
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(text.len(), n));
    StringArray::new(offsets, Buffer::from(text.repeat(n).into_bytes()), None)
}

/// Collects `{"column": path, "class": …}` for every opaque field at or below `f`.
fn opaque_columns(f: &arrow_schema::Field, path: &str, out: &mut Vec<serde_json::Value>) {
    if let Some(class) = f.metadata().get(META_OPAQUE_CLASS) {
        out.push(serde_json::json!({ "column": path, "class": class }));
    }
    let children: Vec<&arrow_schema::FieldRef> = match f.data_type() {
        arrow_schema::DataType::Struct(fs) => fs.iter().collect(),
        arrow_schema::DataType::List(item) => vec![item],
        arrow_schema::DataType::Map(entries, _) => match entries.data_type() {
            arrow_schema::DataType::Struct(fs) => fs.iter().collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    for c in children {
        opaque_columns(c, &format!("{path}.{}", c.name()), out);
    }
}

/// The text cells of an entry for CSV, as `flinksnap dump --format csv` writes them: strings
/// bare, other values as compact JSON, absent and null values empty.
pub fn csv_cells(e: &Entry, uid: Option<&str>) -> [String; 10] {
    let j = e.to_json(uid);
    CSV_COLUMNS.map(|c| match j.get(c) {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    })
}

/// The CSV header, the columns of `flinksnap dump --format csv`.
pub const CSV_COLUMNS: [&str; 10] =
    ["operator_id", "operator_uid", "state", "kind", "key_group", "key", "namespace", "user_key", "value", "ttl_timestamp"];
