//! SQL column names from a compiled plan's row types (`formats/job-plan.md` § "Column names").
//!
//! A node's state holds rows whose types the planner fixes from the node's input row type and
//! its config: the key of a group aggregate is the input projected on `grouping`, a join's
//! `left-records` hold left input rows, and so on. Names are given only where that holds for
//! every version, and (`readers::columns`) only to a `RowDataSerializer` whose arity and type
//! roots equal the plan's row type: a plan of another job never renames a state, and
//! accumulators (whose row types are planner-internal) keep `f0`…`fn`.

use serde_json::Value as Json;

use super::{MatchedBy, Plan, PlanFormat};
use crate::model::columns::{ColumnNames, OperatorColumns, PlanColumn};
use crate::model::OperatorId;

/// The row types `plan` fixes for the snapshot's operators (id, stored uid). REST plans hold
/// no row types: nothing is named.
pub fn column_names<'a>(plan: &Plan, operators: impl IntoIterator<Item = (OperatorId, Option<&'a str>)>) -> ColumnNames {
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
        // Two-phase aggregates (mini-batch `MiniBatchGlobalGroupAggFunction`, the global half
        // of a window aggregate's `SlicingWindowOperator`): `grouping` indexes the local
        // aggregate's input row, whose grouping fields the local output leads with.
        "stream-exec-global-group-aggregate" | "stream-exec-global-window-aggregate" => {
            cols.key = project(&row_columns(raw.get("localAggInputRowType")?)?, raw.get("grouping")?);
        }
        // `MiniBatchIncrementalGroupAggFunction` (split distinct aggregates): keyed by the
        // partial grouping (`partialKeySelector`), which indexes its input, the partial
        // aggregate's output (the distinct keys' buckets `$f4`, ... as the plan names them).
        "stream-exec-incremental-group-aggregate" => cols.key = project(input, raw.get("partialAggGrouping")?),
        // One-phase window aggregates and legacy group windows (`WindowOperator`): keyed by the
        // grouping fields of the input.
        "stream-exec-window-aggregate" | "stream-exec-group-window-aggregate" => cols.key = project(input, raw.get("grouping")?),
        // Window Top-N (`WindowRankOperator`: sort key → input rows) and window deduplication
        // (`RowTimeWindowDeduplicateProcessor`: the input row kept): keyed by the partition.
        "stream-exec-window-rank" => {
            cols.key = project(input, raw.get("partitionSpec")?.get("fields")?);
            cols.states.insert("*".into(), vec![input.clone()]);
        }
        "stream-exec-window-deduplicate" => {
            cols.key = project(input, raw.get("partitionKeys")?);
            cols.states.insert("*".into(), vec![input.clone()]);
        }
        // Two-input joins whose state key type is the left side's key selector's.
        // `WindowJoinOperator` keeps each side's input rows per window (`left-records`,
        // `right-records`); `TemporalRowTimeJoinOperator` keeps them by row id (`left`,
        // `right`), the processing-time one the right row (`right`).
        "stream-exec-window-join" | "stream-exec-temporal-join" => {
            let right = inputs.get(1)?;
            cols.key = project(input, raw.get("joinSpec")?.get("leftKeys")?);
            let (l, r) = if ty == "stream-exec-window-join" { ("left-records", "right-records") } else { ("left", "right") };
            cols.states.insert(l.into(), vec![input.clone()]);
            cols.states.insert(r.into(), vec![right.clone()]);
        }
        // `TimeIntervalJoin` keeps each side's input rows by time, as `Tuple2<RowData, Boolean>`
        // (the row, whether it was emitted).
        "stream-exec-interval-join" => {
            let right = inputs.get(1)?;
            cols.key = project(input, raw.get("intervalJoinSpec")?.get("joinSpec")?.get("leftKeys")?);
            cols.states.insert("IntervalJoinLeftCache".into(), vec![input.clone()]);
            cols.states.insert("IntervalJoinRightCache".into(), vec![right.clone()]);
        }
        // OVER windows: keyed by `PARTITION BY`; the bounded ones keep input rows by time
        // (`inputState`), accumulators in `accState` stay unnamed.
        "stream-exec-over-aggregate" => {
            cols.key = project(input, raw.get("overSpec")?.get("partition")?.get("fields")?);
            cols.states.insert("inputState".into(), vec![input.clone()]);
        }
        // MATCH_RECOGNIZE (`CepOperator`): keyed by `PARTITION BY`; the input rows waiting for
        // their watermark (`eventQueuesStateName`). The shared buffer's rows sit inside CEP's
        // own types: not named.
        "stream-exec-match" => {
            cols.key = project(input, raw.get("matchSpec")?.get("partition")?.get("fields")?);
            cols.states.insert("eventQueuesStateName".into(), vec![input.clone()]);
        }
        // A sink with an upsert materializer (`SinkUpsertMaterializer`): keyed by the sink
        // table's primary key (positions in its physical columns, which are the input row's),
        // keeping the input rows of each key.
        "stream-exec-sink" if materializes(raw) => {
            cols.key = project(input, &sink_primary_key(raw)?);
            cols.states.insert("*".into(), vec![input.clone()]);
        }
        // `StreamingMultiJoinOperator` (2.1+): keyed by the common join key (input 0's fields
        // that input 1 joins on); `multi-join-input-<i>` holds input i's rows, as the map key
        // (count as value) or, for an input with a unique key, as the value under that key.
        // The plan's `state` array names them `input-state-<i>`, real snapshots do not.
        "stream-exec-multi-join" => {
            let pairs = raw.get("joinAttributeMap")?.get("1")?.as_array()?;
            let on_first: Json = pairs.iter().filter(|p| p.get("leftInputId").and_then(Json::as_i64) == Some(0)).filter_map(|p| p.get("leftFieldIndex").cloned()).collect();
            cols.key = project(input, &on_first);
            let unique = raw.get("inputUniqueKeys").and_then(Json::as_array);
            for (i, row) in inputs.iter().enumerate() {
                let mut rows = vec![row.clone()];
                if let Some(k) = unique.and_then(|u| u.get(i)?.as_array()?.first()).and_then(|k| project(row, k)) {
                    rows.push(k);
                }
                cols.states.insert(format!("multi-join-input-{i}"), rows);
            }
        }
        // A lookup join materialized for a non-deterministic update (`KeyedLookupJoinWrapper`,
        // `requireUpsertMaterialize`): keyed by the input's upsert key; `unique-value` (an input
        // with an upsert key) and `values` keep the lookup table's rows it joined, as the table
        // gives them (named only without a projection on the table).
        "stream-exec-lookup-join" if raw.get("requireUpsertMaterialize").and_then(Json::as_bool) == Some(true) => {
            cols.key = project(input, raw.get("inputUpsertKey")?);
            if raw.get("projectionOnTemporalTable").is_none_or(Json::is_null) {
                if let Some(table) = raw.get("temporalTable").and_then(|t| t.get("outputType")).and_then(row_columns) {
                    cols.states.insert("unique-value".into(), vec![table.clone()]);
                    cols.states.insert("values".into(), vec![table]);
                }
            }
        }
        // A process table function (`ProcessTableOperator`, 2.1+): keyed by the table
        // argument's PARTITION BY columns. Its states are the function's own types: not named.
        "stream-exec-process-table-function" => {
            let operands = raw.get("functionCall")?.get("operands")?.as_array()?;
            let table = operands.iter().find(|o| o.get("kind").and_then(Json::as_str) == Some("TABLE_ARG_CALL"))?;
            let at = usize::try_from(table.get("inputIndex")?.as_u64()?).ok()?;
            cols.key = project(inputs.get(at)?, table.get("partitionKeys")?);
        }
        _ => return None,
    }
    Some(cols)
}

/// Whether a sink node puts an upsert materializer before the sink: `requireUpsertMaterialize`
/// (1.15–1.20), or the materializer's `state` entry (2.x, where the flag is also written).
fn materializes(raw: &Json) -> bool {
    raw.get("requireUpsertMaterialize").and_then(Json::as_bool).unwrap_or(false) || raw.get("state").and_then(Json::as_array).is_some_and(|s| !s.is_empty())
}

/// The positions of a sink table's primary key columns among its physical columns, as a JSON
/// index list; `None` without a key or when a key column is not physical.
fn sink_primary_key(raw: &Json) -> Option<Json> {
    let schema = raw.get("dynamicTableSink")?.get("table")?.get("resolvedTable")?.get("schema")?;
    let physical: Vec<&str> = schema
        .get("columns")?
        .as_array()?
        .iter()
        .filter(|c| c.get("kind").and_then(Json::as_str).is_none_or(|k| k == "PHYSICAL"))
        .map(|c| c.get("name").and_then(Json::as_str))
        .collect::<Option<_>>()?;
    let key = schema.get("primaryKey")?.get("columns")?.as_array()?;
    key.iter().map(|k| physical.iter().position(|c| Some(*c) == k.as_str()).map(Json::from)).collect::<Option<Vec<_>>>().map(Json::Array)
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
