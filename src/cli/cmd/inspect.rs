//! `flinksnap inspect`: what a snapshot is and what it holds, from its `_metadata`.

use std::io::Write;

use anyhow::Result;
use flinksnap::plan::{PlanFormat, PlanView};
use flinksnap::snapshot::{HandleSummary, Summary};
use flinksnap::Snapshot;

use crate::cli::output::{human_bytes, write_json, yes_no, Format, Table};
use super::operators::{plan_uids, read_plan};
use crate::cli::Outcome;

/// Show what a checkpoint or savepoint is: metadata version, kind and format, FLIP-47
/// properties, and per operator its state handles, files and sizes.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap inspect /checkpoints/7f3c.../chk-42
  flinksnap inspect savepoint-1a2b3c-4d5e6f7a8b9c/_metadata --format json
  flinksnap inspect chk-42 --uid orders-dedup --uid sessionizer
  flinksnap inspect savepoint-2d83b2-5bdf10505f77 --plan job.plan.json

With --plan (a SQL job's compiled plan, or the JSON `GET /jobs/<id>/plan` returns), the
stateful SQL nodes are listed largest first: which join or aggregate holds how much state.

A retained checkpoint that was copied or moved is read where it is now: absolute paths that
no longer exist are re-based onto the current job directory (shared/, chk-N/).")]
pub struct Args {
    /// A snapshot directory (holding `_metadata`) or a `_metadata` file.
    pub path: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// An operator uid of the job (repeatable): names the operator whose id Flink derives from
    /// it, for snapshots that store no uids (Flink before 2.0).
    #[arg(long = "uid", value_name = "NAME")]
    pub uids: Vec<String>,
    /// The job's plan: a compiled SQL plan (`COMPILE PLAN`) or the REST API's job plan. Lists
    /// the SQL nodes by the state they hold and names operators by their plan uid.
    #[arg(long, value_name = "PLAN.json")]
    pub plan: Option<String>,
}

/// The JSON of `inspect`: the summary, and with `--plan` the plan's view.
#[derive(serde::Serialize)]
struct InspectJson<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a PlanView>,
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let snapshot = Snapshot::open_with(crate::cli::storage(), &args.path)?;
    let plan = read_plan(args.plan.as_deref())?;
    let uids = [args.uids.clone(), plan_uids(&snapshot, plan.as_ref())].concat();
    let mut summary = snapshot.with_uids(uids).summary()?;
    for o in &mut summary.operators {
        if o.uid_source == Some("argument") && !o.uid.as_ref().is_some_and(|u| args.uids.contains(u)) {
            o.uid_source = Some("plan");
        }
    }
    let view = plan.as_ref().map(|p| PlanView::build(p, &summary));
    match args.format {
        Format::Json => write_json(out, "inspect", &InspectJson { summary: &summary, plan: view.as_ref() })?,
        Format::Table => {
            write_table(&summary, out)?;
            if let Some(v) = &view {
                write_plan(v, out)?;
            }
        }
    }
    Ok(Outcome::Ok)
}

/// The stateful SQL nodes, largest first.
fn write_plan(v: &PlanView, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out)?;
    let from = match v.format {
        PlanFormat::Compiled => "compiled plan",
        PlanFormat::Rest => "REST job plan",
    };
    writeln!(out, "State by plan node ({from})")?;
    let mut t = Table::new(&["NODE>", "TYPE", "STATE>", "OPERATOR", "PLAN STATES", "DESCRIPTION"]);
    for n in &v.nodes {
        let ops = if n.operators.is_empty() {
            "-".to_owned()
        } else {
            n.operators.iter().map(|m| m.uid.clone().unwrap_or_else(|| m.operator_id.to_hex())).collect::<Vec<_>>().join(", ")
        };
        let states = n.plan_states.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
        let mut description: String = n.description.chars().take(60).collect();
        if description.len() < n.description.len() {
            description.push('…');
        }
        t.row(vec![
            n.node.to_string(),
            n.node_type.clone(),
            if n.operators.is_empty() { "-".to_owned() } else { human_bytes(n.state_bytes) },
            ops,
            if states.is_empty() { "-".to_owned() } else { states },
            description,
        ]);
    }
    t.write(out, "  ")?;
    if !v.unmapped_operators.is_empty() {
        let ids: Vec<String> = v.unmapped_operators.iter().map(|o| o.to_hex()).collect();
        writeln!(out, "  Not in the plan, with state: {}", ids.join(", "))?;
    }
    Ok(())
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn write_table(s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "Snapshot    {}", s.path)?;
    writeln!(
        out,
        "Type        {}, {} (type from {})",
        match s.snapshot_type {
            flinksnap::snapshot::SnapshotType::Savepoint => "savepoint",
            flinksnap::snapshot::SnapshotType::Checkpoint => "checkpoint",
        },
        s.format.describe(),
        s.snapshot_type_source
    )?;
    writeln!(
        out,
        "Metadata    version {} (written by {}), {}, checkpoint id {}",
        s.metadata_version,
        s.written_by,
        human_bytes(s.metadata_bytes),
        s.checkpoint_id
    )?;
    if let Some(p) = &s.checkpoint_properties {
        let mut parts = vec![p.type_name.clone()];
        parts.extend(p.format_type.clone());
        parts.extend(p.sharing_files_strategy.clone());
        if p.forced {
            parts.push("forced".into());
        }
        if !p.discard_cancelled {
            parts.push("retained on cancellation".into());
        }
        writeln!(out, "Recorded    {}", parts.join(", "))?;
    }
    let t = &s.totals;
    writeln!(
        out,
        "State       {} in {} own files ({}), {} shared files ({}), {} inline",
        human_bytes(t.total_bytes),
        t.own_files,
        human_bytes(t.own_bytes),
        t.shared_files,
        human_bytes(t.shared_bytes),
        human_bytes(t.inline_bytes)
    )?;
    // A checkpoint of a job restored in CLAIM or LEGACY mode references the old job's files
    // (FLIP-47: not self-contained); say where.
    for e in &s.external_references {
        writeln!(out, "Outside     {} files ({}) outside its job directory, in {}", e.files, human_bytes(e.bytes), e.directory)?;
    }
    if s.master_states > 0 {
        writeln!(out, "Masters     {} master states", s.master_states)?;
    }
    let p = &s.properties;
    writeln!(out)?;
    writeln!(out, "Properties (FLIP-47)")?;
    let mut props = Table::new(&["PROPERTY", "VALUE"]);
    for (k, v) in [
        ("user-controlled", p.user_controlled),
        ("incremental", p.incremental),
        ("self-contained", p.self_contained),
        ("relocatable", p.relocatable),
        ("rescalable", p.rescalable),
        ("unified format", p.unified_format),
    ] {
        props.row(vec![k.into(), yes_no(v).into()]);
    }
    props.write(out, "  ")?;

    writeln!(out)?;
    writeln!(out, "Operators")?;
    let mut ops = Table::new(&[
        "OPERATOR ID", "UID", "NAME", "PAR>", "MAXPAR>", "SUBTASKS>", "KEYED>", "OPERATOR>", "COORD>", "CHANNEL>", "FILES>",
        "SHARED>", "INLINE>", "TOTAL>",
    ]);
    for o in &s.operators {
        let uid = match (o.uid.as_deref(), o.uid_source) {
            (Some(u), Some("argument")) => format!("{u} (--uid)"),
            (Some(u), Some("plan")) => format!("{u} (plan)"),
            (Some(u), _) => u.to_owned(),
            (None, _) => "-".to_owned(),
        };
        let subtasks = if o.fully_finished {
            "finished".to_owned()
        } else if o.finished_subtasks > 0 {
            format!("{} ({} finished)", o.subtasks, o.finished_subtasks)
        } else {
            o.subtasks.to_string()
        };
        ops.row(vec![
            o.operator_id.to_hex(),
            uid,
            opt(o.name.as_deref()),
            o.parallelism.to_string(),
            o.max_parallelism.to_string(),
            subtasks,
            o.keyed_state.len().to_string(),
            o.operator_state.len().to_string(),
            opt(o.coordinator_state_bytes.map(human_bytes)),
            o.channel_state.len().to_string(),
            o.totals.own_files.to_string(),
            o.totals.shared_files.to_string(),
            human_bytes(o.totals.inline_bytes),
            human_bytes(o.totals.total_bytes),
        ]);
    }
    ops.write(out, "  ")?;

    for o in &s.operators {
        let handles: Vec<(&str, &HandleSummary)> = o
            .keyed_state
            .iter()
            .map(|h| ("keyed", h))
            .chain(o.operator_state.iter().map(|h| ("operator", h)))
            .chain(o.channel_state.iter().map(|h| ("channel", h)))
            .collect();
        if handles.is_empty() && o.coordinator_state_bytes.is_none() {
            continue;
        }
        writeln!(out)?;
        let label = o.uid.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
        writeln!(out, "Operator {}{}", o.operator_id, label)?;
        let mut t = Table::new(&["SUBTASK>", "STATE", "HANDLE", "KEY GROUPS", "BYTES>", "INLINE>", "FILES>", "DETAIL"]);
        if let Some(b) = o.coordinator_state_bytes {
            t.row(vec![
                "-".into(),
                "coordinator".into(),
                "ByteStreamStateHandle".into(),
                "-".into(),
                human_bytes(b),
                human_bytes(b),
                "0".into(),
                String::new(),
            ]);
        }
        for (what, h) in handles {
            let detail = if !h.states.is_empty() {
                h.states.iter().map(|e| format!("{} ({}, {})", e.name, e.mode.as_str(), e.elements)).collect::<Vec<_>>().join("; ")
            } else if let Some(id) = h.checkpoint_id {
                format!("from checkpoint {id}")
            } else {
                String::new()
            };
            t.row(vec![
                h.subtask.to_string(),
                format!("{} {what}", h.scope),
                h.handle.to_owned(),
                opt(h.key_group_range),
                human_bytes(h.bytes),
                human_bytes(h.inline_bytes),
                h.files.to_string(),
                detail,
            ]);
        }
        t.write(out, "  ")?;
    }
    if !s.notes.is_empty() {
        writeln!(out)?;
        for n in &s.notes {
            writeln!(out, "note: {n}")?;
        }
    }
    Ok(())
}
