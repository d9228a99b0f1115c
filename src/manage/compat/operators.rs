//! Operators: which of the snapshot's operators the new job has (matched by operator id, which
//! Flink derives from the uid), and their max parallelism.
//!
//! Flink's rules (`Checkpoints#loadAndValidateCheckpoint`, `StateAssignmentOperation`):
//! - an operator of the snapshot that the new job does not have fails the restore when it holds
//!   state (any subtask, or its coordinator) — unless `--allow-non-restored-state`, which drops
//!   that state; an operator without state is skipped silently;
//! - an operator only the new job has starts empty;
//! - another max parallelism fails the restore when the new job sets its max parallelism;
//!   one Flink derives itself (not set) adopts the snapshot's. The new parallelism must not
//!   exceed the snapshot's max parallelism.

use std::collections::HashMap;

use super::describe::{JobDescription, OperatorDesc};
use super::serializers::RuleContext;
use super::{states, Check, CompatOptions, Finding, Severity};
use crate::model::OperatorId;

/// Flink's default max parallelism for a parallelism
/// (`KeyGroupRangeAssignment.computeDefaultMaxParallelism`).
pub fn default_max_parallelism(parallelism: u32) -> u32 {
    let p = parallelism.saturating_add(parallelism / 2).max(1);
    p.checked_next_power_of_two().unwrap_or(1 << 15).clamp(128, 1 << 15)
}

/// `plan`: the target is a compiled SQL plan (source and sink uids uncertain, no states).
pub(super) fn check(old: &JobDescription, new: &JobDescription, opts: &CompatOptions, ctx: &RuleContext, plan: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let new_by_id: HashMap<OperatorId, &OperatorDesc> = new.operators.iter().filter_map(|o| Some((o.operator_id()?, o))).collect();
    let old_ids: Vec<OperatorId> = old.operators.iter().filter_map(OperatorDesc::operator_id).collect();
    let unmatched_new: Vec<&OperatorDesc> = new.operators.iter().filter(|o| o.operator_id().is_some_and(|id| !old_ids.contains(&id))).collect();
    for o in &old.operators {
        let Some(id) = o.operator_id() else { continue };
        let has_state = o.has_state.unwrap_or_else(|| o.states.as_ref().is_some_and(|s| !s.is_empty()) || o.coordinator_state);
        match new_by_id.get(&id) {
            None if !has_state => {}
            None if plan && !has_keyed_state(o) => out.push(Finding::new(
                Check::OperatorDropped,
                Severity::Undecided,
                o,
                None,
                "no operator of the plan derives this id; it holds operator state only (a source or sink?), whose uid a connector may choose: not decided".into(),
            ).remedy("compare against a savepoint of the new job version")),
            None => out.push(dropped(o, &unmatched_new, opts)),
            Some(n) => {
                out.extend(max_parallelism(o, n));
                if !plan {
                    out.extend(states::check(o, n, ctx));
                }
            }
        }
    }
    for n in unmatched_new {
        let states = n.states.as_ref().map_or(0, Vec::len);
        if n.has_state != Some(false) && (states > 0 || n.states.is_none()) {
            let what = if n.states.is_none() { String::new() } else { format!(" ({states} states)") };
            out.push(Finding::new(Check::OperatorAdded, Severity::Info, n, None, format!("new operator{what}: starts with empty state")));
        }
    }
    out
}

fn has_keyed_state(o: &OperatorDesc) -> bool {
    o.states.iter().flatten().any(|s| matches!(s.kind.as_str(), "value" | "list" | "map" | "reducing" | "aggregating" | "timer"))
}

/// A dropped operator with state, and the operator of the new job that looks like it renamed.
fn dropped(o: &OperatorDesc, unmatched_new: &[&OperatorDesc], opts: &CompatOptions) -> Finding {
    let names: Vec<&str> = o.states.iter().flatten().map(|s| s.name.as_str()).collect();
    let what = if names.is_empty() { "state".to_owned() } else { format!("state {}", names.join(", ")) };
    let lookalike = unmatched_new.iter().find(|n| {
        let theirs: Vec<&str> = n.states.iter().flatten().map(|s| s.name.as_str()).collect();
        (!names.is_empty() && theirs == names) || (n.name.is_some() && n.name == o.name)
    });
    let mut message = format!("the new job has no operator with this id: its {what} cannot be restored");
    if let Some(l) = lookalike {
        message.push_str(&format!("; the new operator {} has the same name or states: was its uid changed?", l.label()));
    }
    let mut remedy = "keep the operator's uid (uid() / setUidHash() in the new job)".to_owned();
    if let (Some(l), Some(uid)) = (lookalike, &o.uid) {
        remedy = format!("set uid(\"{uid}\") on {} in the new job, or ", l.name.as_deref().unwrap_or("that operator")) + "keep the old uid";
    }
    remedy.push_str(", or restore with --allow-non-restored-state to drop this state");
    if opts.allow_non_restored_state {
        Finding::new(Check::OperatorDropped, Severity::Warning, o, None, format!("{message} (dropped: --allow-non-restored-state)"))
    } else {
        Finding::new(Check::OperatorDropped, Severity::Incompatible, o, None, format!("{message} (Flink refuses the restore without --allow-non-restored-state)"))
            .remedy(remedy)
    }
}

fn max_parallelism(o: &OperatorDesc, n: &OperatorDesc) -> Option<Finding> {
    let old = o.max_parallelism?;
    if let Some(p) = n.parallelism.filter(|&p| p > old) {
        return Some(
            Finding::new(Check::MaxParallelism, Severity::Incompatible, o, None, format!("the new parallelism {p} exceeds the snapshot's max parallelism {old}"))
                .remedy(format!("lower the parallelism to at most {old}, or rewrite the snapshot with `flinksnap convert --max-parallelism N` (N ≥ {p})")),
        );
    }
    let new = n.max_parallelism?;
    if old == new {
        return None;
    }
    let remedy = format!("keep max parallelism {old} in the new job (setMaxParallelism), or rewrite the snapshot with `flinksnap convert --max-parallelism {new}`");
    let derived = n.parallelism.map(default_max_parallelism);
    let explicit = n.max_parallelism_explicit.or_else(|| derived.map(|d| d != new));
    Some(match explicit {
        Some(true) => Finding::new(
            Check::MaxParallelism,
            Severity::Incompatible,
            o,
            None,
            format!("max parallelism {old} in the snapshot, {new} set by the new job: key groups differ and Flink refuses the restore"),
        )
        .remedy(remedy),
        Some(false) => Finding::new(
            Check::MaxParallelism,
            Severity::Info,
            o,
            None,
            format!("max parallelism {old} in the snapshot, {new} in the new job derived by Flink (not set): Flink adopts {old}"),
        ),
        None => Finding::new(
            Check::MaxParallelism,
            Severity::Undecided,
            o,
            None,
            format!("max parallelism {old} in the snapshot, {new} in the new job: Flink refuses the restore if the job sets it, adopts {old} if not"),
        )
        .remedy(remedy),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_max_parallelism_is_flinks() {
        assert_eq!(default_max_parallelism(1), 128);
        assert_eq!(default_max_parallelism(100), 256);
        assert_eq!(default_max_parallelism(86), 256);
        assert_eq!(default_max_parallelism(85), 128);
        assert_eq!(default_max_parallelism(30000), 32768);
    }
}
