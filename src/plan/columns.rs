//! SQL column names for RowData keys and values, from a compiled plan's row types
//! (`formats/job-plan.md` § "Column names").
//!
//! A node's state holds rows whose types the planner fixes from the node's input row type and
//! its config: the key of a group aggregate is the input projected on `grouping`, a join's
//! `left-records` hold left input rows, and so on. Names are given only where that holds for
//! every version, and only to a `RowDataSerializer` whose arity and type roots equal the
//! plan's row type: a plan of another job never renames a state, and accumulators (whose row
//! types are planner-internal) keep `f0`…`fn`.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{MatchedBy, Plan, PlanFormat};
use crate::model::value::Value;
use crate::model::{Entry, OperatorId, StateKind};
use crate::readers::meta::{KeyedBackendMeta, StateMetaInfo, VALUE_SERIALIZER};
use crate::readers::serializers::table::{LogicalType, TableSerializer, TypeKind};
use crate::readers::serializers::TypeSerializer;

/// One column of a plan's row type: its name and its type's root (`VARCHAR`, `TIMESTAMP`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanColumn {
    /// The SQL column name.
    pub name: String,
    /// The type root, as [`type_root`] names it (`?` when unknown: never matches).
    pub root: String,
}

/// The row types a plan fixes for one operator's state.
#[derive(Debug, Clone, Default)]
pub struct OperatorColumns {
    /// The plan node.
    pub node: u32,
    /// The backend key's row type.
    pub key: Option<Vec<PlanColumn>>,
    /// Row types of rows the named state holds (as user key, value or list element); `"*"`:
    /// every state of the operator.
    pub states: BTreeMap<String, Vec<Vec<PlanColumn>>>,
}

/// Row types the plan fixes, by operator.
#[derive(Debug, Clone, Default)]
pub struct ColumnNames {
    /// By operator id.
    pub operators: BTreeMap<OperatorId, OperatorColumns>,
}

impl ColumnNames {
    /// The row types `plan` fixes for the snapshot's operators (id, stored uid). REST plans hold
    /// no row types: nothing is named.
    pub fn from_plan<'a>(plan: &Plan, operators: impl IntoIterator<Item = (OperatorId, Option<&'a str>)>) -> ColumnNames {
        let mut out = ColumnNames::default();
        if plan.format != PlanFormat::Compiled {
            return out;
        }
        for m in plan.match_operators(operators) {
            // A REST-plan tie cannot happen here; stored and derived uids name the node exactly.
            if m.matched_by == MatchedBy::JobVertex {
                continue;
            }
            let Some(node) = plan.node(m.node) else { continue };
            if let Some(cols) = node_columns(node.id, &node.node_type, &node.raw, &plan.inputs(node.id)) {
                out.operators.insert(m.operator_id, cols);
            }
        }
        out
    }

    /// Gives the RowData serializers of a keyed backend's proxy the names the plan fixes
    /// (key serializer; each state's value, map key/value, list element).
    pub fn apply_to_meta(&self, operator: OperatorId, meta: &mut KeyedBackendMeta) {
        let Some(cols) = self.operators.get(&operator) else { return };
        if let Some(key) = &cols.key {
            name_row(&mut meta.key_serializer, std::slice::from_ref(key));
        }
        for s in &mut meta.states {
            self.apply_to_state(cols, s);
        }
    }

    fn apply_to_state(&self, cols: &OperatorColumns, s: &mut StateMetaInfo) {
        let mut rows: Vec<Vec<PlanColumn>> = cols.states.get("*").cloned().unwrap_or_default();
        rows.extend(cols.states.get(&s.name).cloned().unwrap_or_default());
        if rows.is_empty() {
            return;
        }
        for (role, ser) in &mut s.serializers {
            if role == VALUE_SERIALIZER {
                name_parts(ser, &rows);
            }
        }
    }

    /// Renames the fields of an entry's rows as its state's (named) serializers name them.
    pub fn rename_entry(meta: &KeyedBackendMeta, e: &mut Entry) {
        if let Some(k) = e.key.as_mut() {
            rename(k, &meta.key_serializer);
        }
        let Some(s) = meta.states.iter().find(|s| s.name == e.state) else { return };
        let Some(v) = s.serializer(VALUE_SERIALIZER) else { return };
        let v = v.ttl_inner().unwrap_or(v);
        match e.kind {
            StateKind::Map => {
                if let Some((uk, uv)) = v.map_key_value() {
                    if let Some(u) = e.user_key.as_mut() {
                        rename(u, uk);
                    }
                    rename(&mut e.value, uv.ttl_inner().unwrap_or(uv));
                }
            }
            StateKind::List => {
                // The whole list, or one element.
                match (&e.value, v.list_element()) {
                    (Value::List(_), _) => rename(&mut e.value, v),
                    (_, Some(el)) => rename(&mut e.value, el),
                    _ => {}
                }
            }
            StateKind::Value | StateKind::Reducing | StateKind::Aggregating => rename(&mut e.value, v),
            _ => {}
        }
    }
}

/// Names the rows of a state's value serializer: the value itself, a map's key and value, a
/// list's element (TTL wrappers looked through).
fn name_parts(ser: &mut TypeSerializer, rows: &[Vec<PlanColumn>]) {
    let parts = ser.state_parts_mut();
    if parts.is_empty() {
        name_row(ser, rows);
    } else {
        parts.into_iter().for_each(|p| name_parts(p, rows));
    }
}

/// Names a RowData serializer after the one candidate row type whose arity and type roots
/// equal its logical types; several candidates with other names, or none: unchanged.
fn name_row(ser: &mut TypeSerializer, rows: &[Vec<PlanColumn>]) -> bool {
    let Some(t) = ser.table_mut() else { return false };
    let Some(types) = t.row_types() else { return false };
    let fits: Vec<&Vec<PlanColumn>> = rows.iter().filter(|r| row_fits(types, r)).collect();
    let Some(first) = fits.first() else { return false };
    if fits.iter().any(|r| r.iter().map(|c| &c.name).ne(first.iter().map(|c| &c.name))) {
        return false;
    }
    t.set_field_names(first.iter().map(|c| c.name.clone()).collect())
}

/// Whether a plan row type is the row of these logical types: same arity, same type roots.
pub fn row_fits(types: &[LogicalType], row: &[PlanColumn]) -> bool {
    types.len() == row.len() && types.iter().zip(row).all(|(t, c)| logical_root(t) == c.root)
}

/// Renames a value's row fields as its serializer names them: the places [`name_parts`]
/// names (TTL wrapper, map key and value, list element, the row itself).
fn rename(v: &mut Value, ser: &TypeSerializer) {
    if let Some(inner) = ser.ttl_inner() {
        return rename(v, inner);
    }
    if let Some(el) = ser.list_element() {
        if let Value::List(items) = v {
            items.iter_mut().for_each(|i| rename(i, el));
        }
        return;
    }
    if let Some((k, val)) = ser.map_key_value() {
        if let Value::Map(entries) = v {
            for (ek, ev) in entries {
                rename(ek, k);
                rename(ev, val);
            }
        }
        return;
    }
    let Some(t) = ser.table() else { return };
    if !matches!(t, TableSerializer::RowData { names: Some(_), .. } | TableSerializer::External { .. }) {
        return;
    }
    let names = t.field_names();
    if let Value::Row { fields, .. } = v {
        if fields.len() == names.len() && !names.is_empty() {
            for ((n, _), name) in fields.iter_mut().zip(names) {
                *n = name;
            }
        }
    }
}

/// The root of a logical type, as [`type_root`] names a plan's.
fn logical_root(t: &LogicalType) -> &'static str {
    match &t.storage().kind {
        TypeKind::Char(_) => "CHAR",
        TypeKind::VarChar(_) => "VARCHAR",
        TypeKind::Boolean => "BOOLEAN",
        TypeKind::Binary(_) => "BINARY",
        TypeKind::VarBinary(_) => "VARBINARY",
        TypeKind::Decimal { .. } => "DECIMAL",
        TypeKind::TinyInt => "TINYINT",
        TypeKind::SmallInt => "SMALLINT",
        TypeKind::Integer => "INT",
        TypeKind::BigInt => "BIGINT",
        TypeKind::Float => "FLOAT",
        TypeKind::Double => "DOUBLE",
        TypeKind::Date => "DATE",
        TypeKind::Time(_) => "TIME",
        TypeKind::Timestamp { .. } => "TIMESTAMP",
        TypeKind::TimestampLtz { .. } => "TIMESTAMP_LTZ",
        TypeKind::TimestampTz(_) => "TIMESTAMP_TZ",
        TypeKind::IntervalYearMonth { .. } | TypeKind::IntervalDayTime { .. } => "INTERVAL",
        TypeKind::Array(_) => "ARRAY",
        TypeKind::Multiset(_) => "MULTISET",
        TypeKind::Map(..) => "MAP",
        TypeKind::Row(_) => "ROW",
        TypeKind::Raw { .. } => "RAW",
        TypeKind::Null => "NULL",
        _ => "!",
    }
}

/// The root of a type as a compiled plan prints it: SQL text (`VARCHAR(2147483647) NOT NULL`,
/// `TIMESTAMP(3) WITH LOCAL TIME ZONE`) or a JSON object (`{"type":
/// "TIMESTAMP_WITHOUT_TIME_ZONE", ...}`).
pub fn type_root(t: &Json) -> String {
    let text = match t {
        Json::String(s) => s.trim().to_ascii_uppercase(),
        Json::Object(o) => {
            return match o.get("type").and_then(Json::as_str).unwrap_or("?") {
                "TIMESTAMP_WITHOUT_TIME_ZONE" => "TIMESTAMP",
                "TIMESTAMP_WITH_LOCAL_TIME_ZONE" => "TIMESTAMP_LTZ",
                "TIMESTAMP_WITH_TIME_ZONE" => "TIMESTAMP_TZ",
                "INTEGER" => "INT",
                "STRUCTURED_TYPE" => "?",
                "INTERVAL_YEAR_MONTH" | "INTERVAL_DAY_TIME" => "INTERVAL",
                other => other,
            }
            .to_owned()
        }
        _ => return "?".into(),
    };
    let head: String = text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    match head.as_str() {
        "STRING" => "VARCHAR".into(),
        "BYTES" => "VARBINARY".into(),
        "INTEGER" => "INT".into(),
        "DEC" | "NUMERIC" => "DECIMAL".into(),
        "TIMESTAMP" if text.contains("WITH LOCAL TIME ZONE") => "TIMESTAMP_LTZ".into(),
        "TIMESTAMP" if text.contains("WITH TIME ZONE") && !text.contains("WITHOUT") => "TIMESTAMP_TZ".into(),
        "TIMESTAMP_LTZ" => "TIMESTAMP_LTZ".into(),
        "TIME" if text.contains("WITH") => "?".into(),
        "" => "?".into(),
        h => h.to_owned(),
    }
}

/// The columns of a row type as a compiled plan prints it: `ROW<`a` INT, ...>` or `{"type":
/// "ROW", "fields": [{"name", "fieldType"}]}`. `None` for anything else.
pub fn row_columns(t: &Json) -> Option<Vec<PlanColumn>> {
    match t {
        Json::Object(o) if o.get("type").and_then(Json::as_str) == Some("ROW") => o
            .get("fields")?
            .as_array()?
            .iter()
            .map(|f| Some(PlanColumn { name: f.get("name")?.as_str()?.to_owned(), root: type_root(f.get("fieldType")?) }))
            .collect(),
        Json::String(s) => {
            let s = s.trim();
            let inner = s.strip_prefix("ROW<")?;
            let end = inner.rfind('>')?;
            let tail = inner[end + 1..].trim();
            if !(tail.is_empty() || tail == "NOT NULL") {
                return None;
            }
            split_fields(&inner[..end])?
                .into_iter()
                .map(|f| {
                    let (name, ty) = backticked(f.trim())?;
                    Some(PlanColumn { name, root: type_root(&Json::String(ty.to_owned())) })
                })
                .collect()
        }
        _ => None,
    }
}

/// Splits `a INT, b MAP<INT, STRING>` at its top-level commas (outside `<>`, `()`, backticks
/// and quotes).
fn split_fields(s: &str) -> Option<Vec<&str>> {
    let (mut depth, mut tick, mut quote, mut start) = (0i32, false, false, 0);
    let mut out = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '`' if !quote => tick = !tick,
            '\'' if !tick => quote = !quote,
            '<' | '(' if !tick && !quote => depth += 1,
            '>' | ')' if !tick && !quote => depth -= 1,
            ',' if !tick && !quote && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return None;
        }
    }
    if !s[start..].trim().is_empty() {
        out.push(&s[start..]);
    }
    Some(out)
}

/// `` `na``me` TYPE `` → (``na`me``, `TYPE`); a field description (`'...'`) stays in the type
/// text, whose root alone is read.
fn backticked(f: &str) -> Option<(String, &str)> {
    let rest = f.strip_prefix('`')?;
    let mut name = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '`' {
            if chars.peek().map(|(_, c)| *c) == Some('`') {
                chars.next();
                name.push('`');
                continue;
            }
            return Some((name, rest[i + 1..].trim()));
        }
        name.push(c);
    }
    None
}

/// Projects a row type on field indices; `None` when an index is out of range.
fn project(row: &[PlanColumn], idx: &Json) -> Option<Vec<PlanColumn>> {
    idx.as_array()?.iter().map(|i| row.get(usize::try_from(i.as_u64()?).ok()?).cloned()).collect()
}

/// What a node's state holds, by exec node type (flink-table-planner's `StreamExec*` and the
/// runtime operators they create, 1.15–2.3).
fn node_columns(id: u32, node_type: &str, raw: &Json, inputs: &[Vec<PlanColumn>]) -> Option<OperatorColumns> {
    let ty = node_type.rsplit_once('_').map_or(node_type, |(t, _)| t);
    let mut cols = OperatorColumns { node: id, ..OperatorColumns::default() };
    let input = inputs.first()?;
    match ty {
        // GroupAggFunction: keyed by the grouping fields; accState holds accumulators
        // (planner-internal types), not named.
        "stream-exec-group-aggregate" => cols.key = project(input, raw.get("grouping")?),
        // (Row|ProcTime)Deduplicate*Function: keyed by the unique key; the state holds the
        // input row (keep-last / rowtime) or a boolean (proctime first row).
        "stream-exec-deduplicate" => {
            cols.key = project(input, raw.get("uniqueKeys")?);
            cols.states.insert("*".into(), vec![input.clone()]);
        }
        // ProcTimeDeduplicateKeepLastRowFunction over the upsert key.
        "stream-exec-changelog-normalize" => {
            cols.key = project(input, raw.get("uniqueKeys")?);
            cols.states.insert("*".into(), vec![input.clone()]);
        }
        // StreamingJoinOperator: the key type is the left join key's (`setStateKeyType`);
        // `left-records`/`right-records` hold the input rows of each side.
        "stream-exec-join" => {
            let right = inputs.get(1)?;
            let spec = raw.get("joinSpec")?;
            cols.key = project(input, spec.get("leftKeys")?);
            cols.states.insert("left-records".into(), vec![input.clone()]);
            cols.states.insert("right-records".into(), vec![right.clone()]);
        }
        // (Append|Retract|Update)RankFunction: keyed by the partition; the state holds input
        // rows (sort keys are projections of other arity, left as they are unless they fit).
        "stream-exec-rank" => {
            cols.key = project(input, raw.get("partition")?.get("fields")?);
            cols.states.insert("*".into(), vec![input.clone()]);
        }
        _ => return None,
    }
    Some(cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_types_of_both_forms() {
        let s = Json::String("ROW<`user_name` VARCHAR(2147483647), `codes` MULTISET<CHAR(3)> NOT NULL, `a,b` DECIMAL(10, 2), `t` TIMESTAMP(3) WITH LOCAL TIME ZONE> NOT NULL".into());
        let c = row_columns(&s).unwrap();
        let got: Vec<(&str, &str)> = c.iter().map(|c| (c.name.as_str(), c.root.as_str())).collect();
        assert_eq!(got, [("user_name", "VARCHAR"), ("codes", "MULTISET"), ("a,b", "DECIMAL"), ("t", "TIMESTAMP_LTZ")]);
        let o: Json = serde_json::json!({"type": "ROW", "fields": [{"name": "id", "fieldType": "BIGINT NOT NULL"},
            {"name": "ts", "fieldType": {"type": "TIMESTAMP_WITHOUT_TIME_ZONE", "precision": 3, "kind": "ROWTIME"}}]});
        let c = row_columns(&o).unwrap();
        assert_eq!(c[1], PlanColumn { name: "ts".into(), root: "TIMESTAMP".into() });
        assert!(row_columns(&Json::String("INT".into())).is_none());
        assert_eq!(backticked("`a``b` INT"), Some(("a`b".into(), "INT")));
    }
}
