//! `flinksnap diff`: what changed between two snapshots.

use std::io::Write;

use anyhow::Result;
use flinksnap::{diff_with, DiffOptions, DiffReport, EntryDiff};

use crate::cli::output::write_json;
use crate::cli::output::Table;
use crate::cli::Outcome;

/// Output format of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// Counts per operator and state, with a few examples.
    Table,
    /// One JSON document: counts, examples, operators in only one snapshot.
    Json,
    /// Every differing entry, one JSON object per line, streamed.
    Jsonl,
}

/// Compare the state of two snapshots (of one job): entries added, removed and changed, per
/// operator and state. Snapshots of different formats and backends compare by decoded value.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap diff chk-41 chk-42
  flinksnap diff savepoint-before savepoint-after --ignore-ttl --format jsonl | jq -c 'select(.change==\"changed\")'

Entries match on (key, namespace), plus the map key for map and broadcast state; timers on
(key, namespace, timestamp); operator list elements as a multiset. Keyed state is compared one
key group at a time (same max parallelism on both sides), so memory stays flat.

EXIT STATUS (like diff(1)):
  0  same entries
  1  different (an entry added, removed or changed, or an operator in only one snapshot)
  2  error")]
pub struct Args {
    /// Snapshot A (directory or `_metadata`).
    pub a: String,
    /// Snapshot B.
    pub b: String,
    /// Ignore TTL last-access timestamps, which change on every access.
    #[arg(long)]
    pub ignore_ttl: bool,
    /// Differing entries shown per state (table and json).
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
    /// An operator uid of the job (repeatable), for snapshots that store no uids (before 2.0).
    #[arg(long = "uid", value_name = "NAME")]
    pub uids: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Table)]
    pub format: DiffFormat,
}

fn line(d: &EntryDiff) -> String {
    serde_json::to_string(d).unwrap_or_default()
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let opts = DiffOptions { ignore_ttl: args.ignore_ttl, examples: args.examples, uids: args.uids.clone() };
    let jsonl = args.format == DiffFormat::Jsonl;
    let mut io_error: Option<std::io::Error> = None;
    let mut sink = |d: &EntryDiff| -> flinksnap::Result<()> {
        if jsonl && io_error.is_none() {
            if let Err(e) = writeln!(out, "{}", line(d)) {
                io_error = Some(e);
            }
        }
        Ok(())
    };
    let report = diff_with(crate::cli::storage(), &args.a, &args.b, &opts, &mut sink)?;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    match args.format {
        DiffFormat::Jsonl => {}
        DiffFormat::Json => write_json(out, "diff", &report)?,
        DiffFormat::Table => write_table(&report, out)?,
    }
    Ok(if report.different { Outcome::Problems } else { Outcome::Ok })
}

fn write_table(r: &DiffReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "A  {}", r.a)?;
    writeln!(out, "B  {}", r.b)?;
    for o in &r.operators {
        let label = o.operator_uid.as_ref().map_or_else(|| o.operator_id.to_string(), |u| format!("{u} ({})", o.operator_id));
        match o.only_in {
            Some(side) => writeln!(out, "operator {label} only in {}", side.to_uppercase())?,
            None => writeln!(
                out,
                "operator {label}: parallelism {:?} -> {:?}, max parallelism {:?} -> {:?}",
                o.parallelism.0.unwrap_or(0),
                o.parallelism.1.unwrap_or(0),
                o.max_parallelism.0.unwrap_or(0),
                o.max_parallelism.1.unwrap_or(0)
            )?,
        }
    }
    let mut t = Table::new(&["OPERATOR", "STATE", "KIND", "ADDED>", "REMOVED>", "CHANGED>", "UNCHANGED>"]);
    for s in &r.states {
        t.row(vec![
            s.operator_uid.clone().unwrap_or_else(|| s.operator_id.to_string()),
            s.state.clone(),
            s.kind.as_str().into(),
            s.added.to_string(),
            s.removed.to_string(),
            s.changed.to_string(),
            s.unchanged.to_string(),
        ]);
    }
    writeln!(out)?;
    t.write(out, "")?;
    let examples: Vec<&EntryDiff> = r.states.iter().flat_map(|s| &s.examples).collect();
    if !examples.is_empty() {
        writeln!(out)?;
        writeln!(out, "Examples")?;
        for e in examples {
            writeln!(out, "  {}", line(e))?;
        }
    }
    let t = &r.totals;
    writeln!(out)?;
    writeln!(
        out,
        "{}: {} added, {} removed, {} changed, {} unchanged",
        if r.different { "different" } else { "same" },
        t.added,
        t.removed,
        t.changed,
        t.unchanged
    )
}
