//! `flinksnap stats`: where a snapshot's bytes and entries are.

use std::io::Write;

use anyhow::Result;
use flinksnap::{stats_threads, StatsReport};

use crate::cli::output::{human_bytes, write_json, Format, Table};
use crate::cli::Outcome;

/// Show bytes and entries per operator, state and key group, the skew (max / median) over key
/// groups and subtasks, and the heaviest key groups and keys.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap stats savepoint-1a2b3c-4d5e6f7a8b9c
  flinksnap stats chk-42 --top 20 --format json | jq '.data.operators[0].heaviest_keys'
  flinksnap stats chk-42 --threads 1   # one core; the same report as any --threads

BYTES: \"stored\" bytes come from _metadata (per subtask; per key group from the key-group
offsets of heap and canonical snapshots); \"entry\" bytes are the serialized key, namespace,
user key and value of each entry, uncompressed, the same for every backend. Skew is max / median
over the key groups (or subtasks) that hold data. State flinksnap cannot read yet (RocksDB
native) shows stored bytes only.")]
pub struct Args {
    /// A snapshot directory (holding `_metadata`) or a `_metadata` file.
    pub path: String,
    /// How many heaviest key groups and keys to show per operator.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// An operator uid of the job (repeatable), for snapshots that store no uids (before 2.0).
    #[arg(long = "uid", value_name = "NAME")]
    pub uids: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Threads reading entries (default: one per CPU). Subtasks and key-group ranges of each
    /// keyed-state handle are read in parallel; the report is the same for any N.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let threads = args.threads.unwrap_or_else(flinksnap::readers::parallel::default_threads).max(1);
    let report = stats_threads(crate::cli::storage(), &args.path, args.top, &args.uids, threads)?;
    match args.format {
        Format::Json => write_json(out, "stats", &report)?,
        Format::Table => write_table(&report, out)?,
    }
    Ok(Outcome::Ok)
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

fn write_table(r: &StatsReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "Snapshot    {} (checkpoint id {})", r.path, r.checkpoint_id)?;
    writeln!(out, "State       {} stored, {} entries", human_bytes(r.bytes), r.entries)?;
    writeln!(out)?;
    let mut t = Table::new(&["OPERATOR ID", "UID", "PAR>", "MAXPAR>", "STORED>", "ENTRIES>", "ENTRY BYTES>", "SUBTASK SKEW>", "KEY GROUPS>", "KG SKEW>"]);
    for o in &r.operators {
        t.row(vec![
            o.operator_id.to_string(),
            o.operator_uid.clone().unwrap_or_else(|| "-".into()),
            o.parallelism.to_string(),
            o.max_parallelism.to_string(),
            human_bytes(o.bytes),
            if o.entries_complete { o.entries.to_string() } else { format!("{}+", o.entries) },
            human_bytes(o.entry_bytes),
            ratio(o.subtask_skew),
            o.key_groups.as_ref().map_or_else(|| "-".into(), |k| k.with_data.to_string()),
            ratio(o.key_groups.as_ref().and_then(|k| k.bytes_skew)),
        ]);
    }
    t.write(out, "")?;
    for o in &r.operators {
        writeln!(out)?;
        let label = o.operator_uid.as_ref().map_or_else(|| o.operator_id.to_string(), |u| format!("{u} ({})", o.operator_id));
        writeln!(out, "Operator {label}")?;
        if let Some(n) = &o.note {
            writeln!(out, "  note: {n}")?;
        }
        for u in &o.undecodable {
            let sub = u.subtask.map(|s| format!(" subtask {s}")).unwrap_or_default();
            let class = u.class.as_ref().map(|c| format!(" [{c}]")).unwrap_or_default();
            writeln!(out, "  not decoded:{sub} state {}{class}: {}", u.state_label(), u.reason)?;
        }
        if o.subtasks.len() > 1 {
            let mut t = Table::new(&["SUBTASK>", "STORED>"]);
            for s in &o.subtasks {
                t.row(vec![s.subtask.to_string(), human_bytes(s.bytes)]);
            }
            t.write(out, "  ")?;
        }
        if !o.states.is_empty() {
            let mut t = Table::new(&["STATE", "KIND", "ENTRIES>", "ENTRY BYTES>", "KEY GROUPS>"]);
            for s in &o.states {
                t.row(vec![s.name.clone(), s.kind.as_str().into(), s.entries.to_string(), s.bytes.to_string(), s.key_groups.to_string()]);
            }
            t.write(out, "  ")?;
            for st in &o.states {
                if let Some(c) = &st.untyped {
                    writeln!(out, "  untyped: state {:?}: serializer snapshot {c} is unknown to flinksnap: its entries are counted, their values not typed", st.name)?;
                }
            }
        }
        if let Some(k) = &o.key_groups {
            if !k.heaviest.is_empty() {
                writeln!(
                    out,
                    "  key groups: {} with data, {} empty; skew {} by bytes, {} by entries",
                    k.with_data,
                    k.empty,
                    ratio(k.bytes_skew),
                    ratio(k.entries_skew)
                )?;
                let mut t = Table::new(&["KEY GROUP>", "ENTRIES>", "ENTRY BYTES>", "STORED>"]);
                for g in &k.heaviest {
                    t.row(vec![
                        g.key_group.to_string(),
                        g.entries.to_string(),
                        g.bytes.to_string(),
                        g.stored_bytes.map_or_else(|| "-".into(), |b| b.to_string()),
                    ]);
                }
                t.write(out, "  ")?;
            }
        }
        if !o.heaviest_keys.is_empty() {
            let mut t = Table::new(&["STATE", "KEY", "KEY GROUP>", "ENTRIES>", "ENTRY BYTES>"]);
            for k in &o.heaviest_keys {
                t.row(vec![
                    k.state.clone(),
                    k.key.to_string(),
                    k.key_group.map_or_else(|| "-".into(), |g| g.to_string()),
                    k.entries.to_string(),
                    k.bytes.to_string(),
                ]);
            }
            t.write(out, "  ")?;
        }
    }
    Ok(())
}
