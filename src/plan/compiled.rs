//! Flink's compiled plan (`CompiledPlan#asJsonString`, 1.15+): `{"flinkVersion", "nodes": [{"id",
//! "type", "description", "outputType", "state": [{"index", "ttl", "name"}]}], "edges"}`. The
//! per-node `state` list exists from 1.18 (FLIP-292's state TTL per operator).

use serde_json::Value;

use super::{Plan, PlanFormat, PlanNode, PlanState};
use crate::error::{Error, Result};

pub(super) fn parse(v: &Value, what: &str) -> Result<Plan> {
    let nodes = v
        .get("nodes")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Invalid(format!("{what}: a compiled plan without a \"nodes\" array")))?;
    let nodes = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let id = n
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| Error::Invalid(format!("{what}: node {i} of the compiled plan has no numeric \"id\"")))?;
            let states = n
                .get("state")
                .and_then(Value::as_array)
                .map(|s| {
                    s.iter()
                        .filter_map(|s| {
                            Some(PlanState {
                                index: u32::try_from(s.get("index")?.as_u64()?).ok()?,
                                name: s.get("name")?.as_str()?.to_owned(),
                                ttl: s.get("ttl").and_then(Value::as_str).map(str::to_owned),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(PlanNode {
                id,
                node_type: n.get("type").and_then(Value::as_str).unwrap_or_default().to_owned(),
                description: n.get("description").and_then(Value::as_str).unwrap_or_default().to_owned(),
                states,
                output_type: n.get("outputType").and_then(Value::as_str).map(str::to_owned),
                heads: Vec::new(),
                raw: n.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan {
        format: PlanFormat::Compiled,
        flink_version: v.get("flinkVersion").and_then(Value::as_str).map(str::to_owned),
        nodes,
        edges: v
            .get("edges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| Some((u32::try_from(e.get("source")?.as_u64()?).ok()?, u32::try_from(e.get("target")?.as_u64()?).ok()?)))
            .collect(),
    })
}
