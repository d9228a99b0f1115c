//! The REST API's job plan (`GET /jobs/:jobid/plan`: `{"plan": {"jid", "name", "nodes": [{"id",
//! "description", "operator", "inputs"}]}}`). A vertex id is its chain head's operator id; the
//! description of a SQL job's vertex lists the chain's nodes as `[<node id>]:<name>(...)`, head
//! first, separated by `<br/>` (tree mode, the default) or ` -> ` (cascading mode).

use serde_json::Value;

use super::{Plan, PlanFormat, PlanNode};
use crate::error::{Error, Result};
use crate::model::OperatorId;

pub(super) fn parse(v: &Value, what: &str) -> Result<Plan> {
    let vertices = v
        .get("nodes")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Invalid(format!("{what}: a REST job plan without a \"nodes\" array")))?;
    let mut nodes: Vec<PlanNode> = Vec::new();
    for (i, vertex) in vertices.iter().enumerate() {
        let id = vertex.get("id").and_then(Value::as_str).unwrap_or_default();
        let job_vertex = id
            .parse::<OperatorId>()
            .map_err(|_| Error::Invalid(format!("{what}: vertex {i} has no 32-digit hex \"id\" (found {id:?})")))?;
        let description = vertex.get("description").and_then(Value::as_str).unwrap_or_default();
        for (k, (node, text)) in chain(description).into_iter().enumerate() {
            let Some(node) = node else { continue };
            // One SQL node can make several chained operators ([23]:SinkMaterializer,
            // [23]:ConstraintEnforcer): the node is listed once, described by its first.
            let at = match nodes.iter().position(|n| n.id == node) {
                Some(at) => at,
                None => {
                    nodes.push(PlanNode {
                        id: node,
                        node_type: text.split(['(', '[']).next().unwrap_or_default().trim().to_owned(),
                        description: text.to_owned(),
                        states: Vec::new(),
                        output_type: None,
                        heads: Vec::new(),
                        raw: serde_json::Value::Null,
                    });
                    nodes.len() - 1
                }
            };
            // Only a chain whose first operator is this node has its operator id as vertex id
            // (a connector's source can head a chain of SQL nodes).
            if k == 0 {
                nodes[at].heads.push(job_vertex);
            }
        }
    }
    Ok(Plan { format: PlanFormat::Rest, flink_version: None, nodes, edges: Vec::new() })
}

/// The operators of a vertex description in chain order: `[<node id>]:<text>` parts with their
/// node id, others (a connector's `Source: ...`) without.
fn chain(description: &str) -> Vec<(Option<u32>, &str)> {
    description
        .split("<br/>")
        .flat_map(|line| line.split(" -> "))
        .map(|part| part.trim_start_matches([' ', '+', '-', ':']).trim_end())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let node = part.strip_prefix('[').and_then(|r| r.split_once("]:")).and_then(|(id, text)| Some((id.parse().ok()?, text.trim())));
            match node {
                Some((id, text)) => (Some(id), text),
                None => (None, part),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[test]
    fn tree_and_cascading_descriptions() {
        let tree = "[4]:GroupAggregate(groupBy=[a])<br/>+- [5]:ConstraintEnforcer[x]<br/>   +- Sink: collect<br/>";
        assert_eq!(
            chain(tree),
            vec![(Some(4), "GroupAggregate(groupBy=[a])"), (Some(5), "ConstraintEnforcer[x]"), (None, "Sink: collect")]
        );
        let cascading = "[7]:Calc(select=[a]) -> [8]:SinkMaterializer(pk=[a])";
        assert_eq!(chain(cascading), vec![(Some(7), "Calc(select=[a])"), (Some(8), "SinkMaterializer(pk=[a])")]);
        assert_eq!(chain("Source: queue<br/>+- [87]:Calc()<br/>")[0], (None, "Source: queue"));
    }
}
