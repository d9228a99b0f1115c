//! Applies the SQL column names a job's plan fixes ([`ColumnNames`]) to a keyed backend's
//! serializers and to the entries read with them (`formats/job-plan.md` § "Column names"). A
//! name is given only to a `RowDataSerializer` whose arity and type roots equal the plan's row
//! type; a value's rows are renamed after the serializer that decoded them.

use crate::model::columns::{ColumnNames, OperatorColumns, PlanColumn};
use crate::model::value::Value;
use crate::model::{Entry, OperatorId, StateKind};
use crate::readers::meta::{KeyedBackendMeta, StateMetaInfo, VALUE_SERIALIZER};
use crate::readers::serializers::table::{LogicalType, TableSerializer, TypeKind};
use crate::readers::serializers::TypeSerializer;

/// Gives the RowData serializers of a keyed backend's proxy the names the plan fixes
/// (key serializer; each state's value, map key/value, list element).
pub fn apply_to_meta(names: &ColumnNames, operator: OperatorId, meta: &mut KeyedBackendMeta) {
    let Some(cols) = names.operators.get(&operator) else { return };
    if let Some(key) = &cols.key {
        name_row(&mut meta.key_serializer, std::slice::from_ref(key));
    }
    for s in &mut meta.states {
        // A timer queue's elements carry the key too (`TimerSerializer`): named alike, so its
        // key column and the renamed entries agree.
        if let Some(key) = &cols.key {
            for (_, ser) in &mut s.serializers {
                if let Some(k) = ser.timer_key_mut() {
                    name_row(k, std::slice::from_ref(key));
                }
            }
        }
        apply_to_state(cols, s);
    }
}

fn apply_to_state(cols: &OperatorColumns, s: &mut StateMetaInfo) {
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
    let Some(s) = meta.states.iter().find(|s| *s.name == *e.state) else { return };
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

/// Names the rows of a state's value serializer: the value itself, a map's key and value, a
/// list's element, a Java tuple's fields (TTL wrappers looked through).
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
/// names (TTL wrapper, map key and value, list element, tuple field, the row itself).
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
    if let Some(fs) = ser.tuple_fields() {
        if let Value::Struct { fields } = v {
            fields.iter_mut().zip(fs).for_each(|((_, fv), f)| rename(fv, f));
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


#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, root: &str) -> PlanColumn {
        PlanColumn { name: name.into(), root: root.into() }
    }

    #[test]
    fn a_row_type_applies_only_with_its_arity_and_type_roots() {
        let ty = |kind| LogicalType { nullable: true, kind };
        let types = [ty(TypeKind::VarChar(i32::MAX as u32)), ty(TypeKind::BigInt)];
        assert!(row_fits(&types, &[col("user_name", "VARCHAR"), col("cnt", "BIGINT")]));
        // Another arity, another type root (INT is not BIGINT): f0…fn stay.
        assert!(!row_fits(&types, &[col("user_name", "VARCHAR")]));
        assert!(!row_fits(&types, &[col("user_name", "VARCHAR"), col("cnt", "INT")]));
        assert!(!row_fits(&types, &[col("user_name", "VARCHAR"), col("cnt", "BIGINT"), col("x", "INT")]));
        // An unknown plan type never fits.
        assert!(!row_fits(&types[..1], &[col("user_name", "?")]));
    }
}
