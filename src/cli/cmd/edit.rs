//! `flinksnap edit`: a snapshot written as a canonical savepoint with operators renamed or
//! dropped, states dropped, keys forgotten (spec: `formats/edit.md`).

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use flinksnap::model::KeyGroupRange;
use flinksnap::{edit_with, EditOptions, EditReport, ForgetKey, KeyInput};

use super::convert::WriteArgs;
use super::dump::parse_key_groups;
use crate::cli::output::{human_bytes, write_json, Format, Table};
use crate::cli::Outcome;

/// Write a snapshot as a canonical savepoint with operators renamed or dropped, states dropped
/// and keys forgotten (the State Processor API's writing half, without a JVM).
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  # a job without uids: give its operators' state to the new job's uids
  flinksnap inspect chk-42                     # lists the operator ids (auto-generated hashes)
  flinksnap edit chk-42 sp-with-uids \\
      --rename-operator 6cdc5bb954874d922eaee11a8e7ca5ff=orders-dedup \\
      --rename-operator 90bea66de1c231edf33913ecd54406c1=enrich
  # an operator or a state the job no longer has (then no --allowNonRestoredState is needed)
  flinksnap edit sp sp-clean --drop-operator legacy-join --drop-state enrich/cache
  # GDPR erasure: every entry of a key, all states, namespaces, map entries and timers
  flinksnap edit sp sp-erased --forget-key 'orders-dedup=user-4711' --dry-run
  flinksnap edit sp sp-erased --forget-key '*=user-4711' --forget-keys-from erase.jsonl
  flinksnap edit sp sp-part --filter-key-groups 0..=63 --max-parallelism 256

The source is only read. DST is written as `convert` writes it (a canonical savepoint any
state backend restores, relative paths only, under a temporary name renamed at the end).

OPERATOR is a uid or a 32-digit hex operator id; NEW in --rename-operator too (a uid: Flink
derives the id from it, as `flinksnap inspect --uid NEW` shows). STATE is the name the state
was registered under (timers: `_timer_state/event_user-timers` and the like).

KEY is the key as `flinksnap dump` prints it: JSON (`42`, `\"k\"`, `{\"f0\":1,\"f1\":\"a\"}`) or
plain text for a string key. OPERATOR `*` forgets the key in every keyed operator whose key
type it fits. --forget-keys-from reads JSON lines: a key per line, or objects with `key` and
optionally `operator` (or `operator_uid` / `operator_id`, as dump lines have them) and `state`;
FILE may be prefixed with OPERATOR[/STATE]= for plain keys. Keys whose hash flinksnap cannot
compute (POJO, enum, Kryo keys) are refused by name.")]
pub struct Args {
    /// The snapshot to edit: a checkpoint or savepoint directory, or its `_metadata` file.
    pub src: String,
    /// The savepoint directory to write (not needed with --dry-run).
    #[arg(required_unless_present = "dry_run")]
    pub dst: Option<String>,
    /// Give operator OLD's state to NEW (each a uid or a 32-digit hex id).
    #[arg(long = "rename-operator", value_name = "OLD=NEW", value_parser = parse_pair)]
    pub renames: Vec<(String, String)>,
    /// Leave an operator out.
    #[arg(long = "drop-operator", value_name = "UID|ID")]
    pub drop_operators: Vec<String>,
    /// Leave a state out.
    #[arg(long = "drop-state", value_name = "OPERATOR/STATE")]
    pub drop_states: Vec<String>,
    /// Remove every entry of KEY from an operator's keyed state (or one state's).
    #[arg(long = "forget-key", value_name = "OPERATOR[/STATE]=KEY", value_parser = parse_pair)]
    pub forget_keys: Vec<(String, String)>,
    /// Keys to forget, JSON lines (see below).
    #[arg(long = "forget-keys-from", value_name = "[OPERATOR[/STATE]=]FILE")]
    pub forget_keys_from: Vec<String>,
    /// Keep only keyed state in these key groups (of the source's max parallelism), e.g.
    /// `0..=63`, `64..128`, `7`.
    #[arg(long = "filter-key-groups", value_name = "RANGE", value_parser = parse_key_groups)]
    pub key_groups: Option<KeyGroupRange>,
    /// Report what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub write: WriteArgs,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn parse_pair(s: &str) -> std::result::Result<(String, String), String> {
    let (a, b) = s.split_once('=').ok_or_else(|| format!("expected LEFT=RIGHT, got {s:?}"))?;
    if a.is_empty() {
        return Err(format!("nothing before '=' in {s:?}"));
    }
    Ok((a.to_owned(), b.to_owned()))
}

/// `--forget-keys-from [OPERATOR[/STATE]=]FILE`: the keys of a JSON-lines file.
fn keys_from_file(spec: &str) -> Result<Vec<ForgetKey>> {
    let (target, file) = match spec.split_once('=') {
        Some((t, f)) if !Path::new(spec).is_file() && !t.is_empty() => (t, f),
        _ => ("*", spec),
    };
    let f = std::fs::File::open(file).with_context(|| format!("--forget-keys-from {file}"))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{file}: line {}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let j: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("{file}: line {}: not JSON", i + 1))?;
        // A record (a dump line, or {"operator", "state", "key"}), or a key alone.
        if let Some(key) = j.as_object().and_then(|m| m.get("key")) {
            let m = j.as_object().map(|m| m.to_owned()).unwrap_or_default();
            let op = ["operator", "operator_uid", "operator_id"].iter().find_map(|k| m.get(*k).and_then(|v| v.as_str()).map(str::to_owned));
            let op = op.unwrap_or_else(|| target.to_owned());
            let t = match m.get("state").and_then(|v| v.as_str()) {
                Some(_) if op == "*" => bail!("{file}: line {}: a state needs an operator", i + 1),
                Some(s) => format!("{op}/{s}"),
                None => op,
            };
            out.push(ForgetKey { target: t, key: KeyInput::Json(key.clone()) });
        } else {
            out.push(ForgetKey { target: target.to_owned(), key: KeyInput::Json(j) });
        }
    }
    Ok(out)
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let mut forget_keys: Vec<ForgetKey> = args.forget_keys.iter().map(|(t, k)| ForgetKey { target: t.clone(), key: KeyInput::Text(k.clone()) }).collect();
    for spec in &args.forget_keys_from {
        forget_keys.extend(keys_from_file(spec)?);
    }
    let opts = EditOptions {
        convert: args.write.options(),
        renames: args.renames.clone(),
        drop_operators: args.drop_operators.clone(),
        drop_states: args.drop_states.clone(),
        forget_keys,
        key_groups: args.key_groups,
        dry_run: args.dry_run,
    };
    let r = edit_with(crate::cli::storage(), &args.src, args.dst.as_deref(), &opts)?;
    if let Some(w) = &r.written {
        for n in &w.notes {
            eprintln!("flinksnap: note: {n}");
        }
    }
    match args.format {
        Format::Json => write_json(out, "edit", &r)?,
        Format::Table => print_table(&r, &args.src, out)?,
    }
    Ok(Outcome::Ok)
}

fn uid_text(uid: &Option<String>) -> String {
    uid.as_ref().map(|u| format!(" (uid {u})")).unwrap_or_default()
}

fn print_table(r: &EditReport, src: &str, out: &mut dyn Write) -> Result<()> {
    match &r.written {
        Some(w) => writeln!(out, "Wrote edited savepoint {}\n  from {}", w.target, w.source)?,
        None => writeln!(out, "Dry run: nothing written; editing {src} would")?,
    }
    for x in &r.renamed {
        writeln!(out, "  rename operator  {}{} -> {}{}", x.from_id, uid_text(&x.from_uid), x.to_id, uid_text(&x.to_uid))?;
    }
    for x in &r.dropped_operators {
        writeln!(out, "  drop operator    {}{}: {} state(s) {}", x.operator_id, uid_text(&x.operator_uid), x.states.len(), x.states.join(", "))?;
    }
    for x in &r.dropped_states {
        writeln!(out, "  drop state       {} {:?} ({})", x.operator_id, x.state, x.kind)?;
    }
    for x in &r.forgotten_keys {
        let state = x.state.as_ref().map(|s| format!(" state {s:?}")).unwrap_or_default();
        writeln!(out, "  forget key       {} in {}{state} (key group {}): {} entries", x.key, x.operator_id, x.key_group, x.entries_removed)?;
    }
    for s in &r.skipped_operators {
        writeln!(out, "  not applicable   {s}")?;
    }
    if let Some(kg) = r.key_groups {
        writeln!(out, "  keep key groups  {kg}")?;
    }
    if !r.removed.is_empty() {
        writeln!(out, "  entries removed:")?;
        let mut t = Table::new(&["operator", "state", "kind", "forgotten>", "filtered>"]);
        for x in &r.removed {
            t.row(vec![x.operator_id.to_hex(), x.state.clone(), x.kind.to_owned(), x.forgotten.to_string(), x.filtered.to_string()]);
        }
        t.write(out, "    ")?;
    }
    if let Some(w) = &r.written {
        writeln!(out, "  operators       {} ({} keyed)", w.operators, w.keyed_operators)?;
        writeln!(out, "  entries         {} keyed, {} operator/broadcast", w.keyed_entries, w.operator_entries)?;
        writeln!(out, "  state           {} in {} files and {} inline streams; _metadata {}", human_bytes(w.state_bytes), w.files, w.inline_streams, human_bytes(w.metadata_bytes))?;
    }
    Ok(())
}
