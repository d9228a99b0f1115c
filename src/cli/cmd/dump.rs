//! `flinksnap dump`: every logical state entry of a snapshot, decoded.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;
use flinksnap::model::{Entry, KeyGroupRange, SubtaskRef};
use flinksnap::readers::undecodable::Undecodable;
use flinksnap::Snapshot;

use super::operators::{plan_uids, read_plan, NamedOperators};
use crate::cli::output::Table;
use crate::cli::Outcome;

/// Output format of `dump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpFormat {
    /// One JSON object per entry (formats/dump.md).
    Jsonl,
    /// CSV with a header; structured values as compact JSON.
    Csv,
    /// An aligned table.
    Table,
}

/// Print every logical state entry of a snapshot: keyed value, list, map, reducing and
/// aggregating state, timers, operator list and union state, broadcast state.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap dump savepoint-1a2b3c-4d5e6f7a8b9c > state.jsonl
  flinksnap dump chk-42 --operator orders-dedup --state seen --format table
  flinksnap dump chk-42 --key-group 0..=9 --uid sessionizer | jq .value
  flinksnap dump chk-42 --origin | jq 'select(.key == \"k42\") | .origin'
  flinksnap dump chk-42 --threads 1 > state.jsonl   # one core; the same bytes as any --threads

OUTPUT (jsonl), one object per entry:
  {\"operator_id\", \"operator_uid\", \"state\", \"kind\", \"key_group\", \"key\", \"namespace\",
   \"user_key\" (map and broadcast only), \"value\", \"ttl_timestamp\" (TTL states only)}
Values a serializer cannot interpret (Kryo, custom serializers) are printed as
{\"class\": ..., \"hex\": ...} and counted on stderr; they never fail the dump.")]
pub struct Args {
    /// A snapshot directory (holding `_metadata`) or a `_metadata` file.
    pub path: String,
    /// Only this operator, by uid or 32-digit hex id (repeatable).
    #[arg(long = "operator", value_name = "UID|ID")]
    pub operators: Vec<String>,
    /// Only the state with this name (repeatable). Timers are named like
    /// `_timer_state/event_user-timers`.
    #[arg(long = "state", value_name = "NAME")]
    pub states: Vec<String>,
    /// Only keyed state in these key groups: `N`, `A..B` (end exclusive), `A..=B` or `A-B`.
    /// Operator state has no key group and is left out.
    #[arg(long = "key-group", value_name = "RANGE", value_parser = parse_key_groups)]
    pub key_groups: Option<KeyGroupRange>,
    /// An operator uid of the job (repeatable): fills `operator_uid` for snapshots that store
    /// no uids (Flink before 2.0).
    #[arg(long = "uid", value_name = "NAME")]
    pub uids: Vec<String>,
    /// The job's compiled SQL plan: names operators by the planner uids it implies
    /// (`<node id>_<transformation>`) where the metadata stores none (Flink 1.18, 1.20), and
    /// RowData keys and values by the SQL column names where the plan fixes their row type.
    #[arg(long, value_name = "PLAN.json")]
    pub plan: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DumpFormat::Jsonl)]
    pub format: DumpFormat,
    /// Add where each entry was read (jsonl only): `"origin": {"file", "position"}`, the file
    /// (or `_metadata` for inline state; `null` for RocksDB tables) and the typed position of
    /// the stored entry (formats/dump.md).
    #[arg(long)]
    pub origin: bool,
    /// Threads reading and formatting (default: one per CPU). Subtasks and key-group ranges of
    /// each keyed-state handle are read in parallel; the output is the same, in the same order,
    /// for any N.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

pub(crate) fn parse_key_groups(s: &str) -> std::result::Result<KeyGroupRange, String> {
    let num = |t: &str| t.trim().parse::<u32>().map_err(|_| format!("not a key group: {t:?}"));
    let (start, end_incl) = if let Some((a, b)) = s.split_once("..=") {
        (num(a)?, num(b)?)
    } else if let Some((a, b)) = s.split_once("..") {
        let b = num(b)?;
        (num(a)?, b.checked_sub(1).ok_or("empty key-group range")?)
    } else if let Some((a, b)) = s.split_once('-') {
        (num(a)?, num(b)?)
    } else {
        let n = num(s)?;
        (n, n)
    };
    if end_incl < start {
        return Err(format!("empty key-group range {s:?}"));
    }
    Ok(KeyGroupRange::new(start, end_incl - start + 1))
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    // Stdout is line-buffered: one write per entry would dominate the dump (measured by
    // `cargo xtask bench`: 36 s -> 17 s through a pipe on a 100 MiB savepoint).
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let out: &mut dyn Write = &mut out;
    let snapshot = Snapshot::open_with(crate::cli::storage(), &args.path)?;
    let plan = read_plan(args.plan.as_deref())?;
    let named = NamedOperators::resolve(&snapshot, &args.operators, &[args.uids.clone(), plan_uids(&snapshot, plan.as_ref())].concat())?;
    // The plan's SQL column names for RowData keys and values (formats/job-plan.md).
    let snapshot = match &plan {
        Some(p) => snapshot.with_plan(p),
        None => snapshot,
    };
    let snapshot = snapshot.with_uids(named.uids.into_values());
    // Uids stored in the metadata (2.x) win over those given.
    let uids = snapshot.uid_map();
    // The dump form for any selection: one state's entries are printed like many.
    let mut scan = snapshot.scan().typed(false);
    for id in &named.selected {
        scan = scan.operator(id.to_hex());
    }
    for s in &args.states {
        scan = scan.state(s.clone());
    }
    if let Some(r) = args.key_groups {
        scan = scan.key_groups(r.start..=r.start + (r.len - 1));
    }
    let scan = scan.build()?;
    let uid_of = |e: &Entry| uids.get(&e.operator_id).map(String::as_str);
    if args.origin && args.format != DumpFormat::Jsonl {
        anyhow::bail!("--origin is printed by --format jsonl only");
    }
    let threads = args.threads.unwrap_or_else(flinksnap::readers::parallel::default_threads).max(1);
    let mut table = (args.format == DumpFormat::Table)
        .then(|| Table::new(&COLUMNS.map(|c| c.to_uppercase()).iter().map(String::as_str).collect::<Vec<_>>()));
    if args.format == DumpFormat::Csv {
        let mut w = csv::Writer::from_writer(&mut *out);
        w.write_record(COLUMNS)?;
        w.flush()?;
    }
    let (mut opaque, mut count) = (0usize, 0usize);
    let mut undecodable: Vec<Undecodable> = Vec::new();
    let mut write_failed: Option<std::io::Error> = None;
    // Pieces of the snapshot are formatted on `threads` threads and written here in snapshot
    // order: the output does not depend on the number of threads.
    let read = scan.read_ordered(
        threads,
        READ_AHEAD_BYTES,
        Chunk::memory_size,
        |entries, emit| {
            let mut chunk = Chunk::default();
            // The file of each (subtask, stream), resolved once.
            let mut files: HashMap<(Option<SubtaskRef>, Option<u16>, bool), Option<String>> = HashMap::new();
            for e in entries.by_ref() {
                let e = match e {
                    Ok(e) => e,
                    Err(err) => {
                        // What came before the error is printed, as by one thread.
                        emit(std::mem::take(&mut chunk))?;
                        return Err(err);
                    }
                };
                chunk.opaque += e.opaque_count();
                chunk.count += 1;
                match args.format {
                    // Straight from the entry into the output: the same bytes as the JSON tree,
                    // at a quarter of the instructions (`cargo xtask bench --vs-flink`).
                    DumpFormat::Jsonl if !args.origin => {
                        // Into a Vec: cannot fail.
                        let _ = e.write_json(uid_of(&e), &mut chunk.bytes);
                        chunk.bytes.push(b'\n');
                    }
                    DumpFormat::Jsonl => {
                        let mut j = e.to_json(uid_of(&e));
                        let file = files.entry((e.origin.subtask, e.origin.stream, e.kind.is_keyed())).or_insert_with(|| snapshot.entry_file(&e)).clone();
                        let position = e.origin.position.map_or(serde_json::Value::Null, |p| serde_json::to_value(p).unwrap_or_default());
                        if let serde_json::Value::Object(m) = &mut j {
                            m.insert("origin".into(), serde_json::json!({ "file": file, "position": position }));
                        }
                        // Into a Vec: cannot fail.
                        let _ = serde_json::to_writer(&mut chunk.bytes, &j);
                        chunk.bytes.push(b'\n');
                    }
                    DumpFormat::Csv => {
                        let mut w = csv::Writer::from_writer(&mut chunk.bytes);
                        w.write_record(cells(&e, uid_of(&e))).map_err(|err| flinksnap::Error::Invalid(format!("CSV: {err}")))?;
                        w.flush().map_err(|err| flinksnap::Error::Invalid(format!("CSV: {err}")))?;
                    }
                    DumpFormat::Table => chunk.rows.push(cells(&e, uid_of(&e))),
                }
                if chunk.bytes.len() >= CHUNK_BYTES || chunk.rows.len() >= CHUNK_ROWS {
                    emit(std::mem::take(&mut chunk))?;
                }
            }
            chunk.undecodable = entries.undecodable();
            emit(chunk)
        },
        |chunk| {
            count += chunk.count;
            opaque += chunk.opaque;
            if let Err(e) = out.write_all(&chunk.bytes) {
                // Reported as itself below (a closed pipe ends the dump quietly).
                write_failed = Some(e);
                return Err(flinksnap::Error::Invalid("writing the output failed".into()));
            }
            if let Some(t) = &mut table {
                for r in chunk.rows {
                    t.row(r);
                }
            }
            for u in chunk.undecodable {
                Undecodable::merge_into(&mut undecodable, u);
            }
            Ok(())
        },
    );
    if let Some(e) = write_failed {
        return Err(e.into());
    }
    read?;
    if let Some(t) = table {
        t.write(out, "")?;
    }
    // Flush here, not on drop, so a failed write (a closed pipe) is reported.
    out.flush()?;
    if opaque > 0 {
        eprintln!("flinksnap: {count} entries; {opaque} values kept opaque (serializers flinksnap cannot interpret, e.g. Kryo)");
    }
    report_undecodable(&undecodable, &uids);
    Ok(Outcome::Ok)
}

const COLUMNS: [&str; 10] =
    ["operator_id", "operator_uid", "state", "kind", "key_group", "key", "namespace", "user_key", "value", "ttl_timestamp"];

/// An entry as text cells: strings bare, other values as compact JSON.
fn cells(e: &Entry, uid: Option<&str>) -> Vec<String> {
    let j = e.to_json(uid);
    COLUMNS
        .iter()
        .map(|c| match j.get(*c) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        })
        .collect()
}

/// Output bytes (or table rows) of a run of entries, formatted on a reading thread.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    rows: Vec<Vec<String>>,
    count: usize,
    opaque: usize,
    /// At the end of a piece: what it could not decode.
    undecodable: Vec<Undecodable>,
}

/// A chunk is handed on once it holds this many bytes or table rows.
const CHUNK_BYTES: usize = 256 * 1024;
const CHUNK_ROWS: usize = 1024;
/// Formatted chunks the reading threads hold ahead of the output, at most (about).
const READ_AHEAD_BYTES: usize = 32 * 1024 * 1024;

impl Chunk {
    /// The memory it takes (about).
    fn memory_size(&self) -> usize {
        self.bytes.capacity() + self.rows.iter().map(|r| r.iter().map(|c| c.capacity() + 24).sum::<usize>() + 24).sum::<usize>() + 256 * self.undecodable.len()
    }
}

/// Tells, on stderr, which states (or parts of them) were not decoded and why: the read went on
/// past them.
pub(crate) fn report_undecodable(list: &[flinksnap::readers::undecodable::Undecodable], uids: &std::collections::BTreeMap<flinksnap::model::OperatorId, String>) {
    for u in list {
        let op = uids.get(&u.operator_id).map_or_else(|| u.operator_id.to_string(), |n| format!("{n} ({})", u.operator_id));
        let sub = u.subtask.map(|s| format!(" subtask {s}")).unwrap_or_default();
        let count = match (u.entries, u.key_groups) {
            (Some(n), k) if k > 0 => format!(" ({n} stored entries in {k} key groups)"),
            (Some(n), _) => format!(" ({n} stored entries)"),
            (None, k) if k > 0 => format!(" ({k} key groups)"),
            _ => String::new(),
        };
        let at = match (&u.file, &u.position) {
            (Some(f), Some(p)) => format!(" at {f}, {p}"),
            (Some(f), None) => format!(" in {f}"),
            _ => String::new(),
        };
        eprintln!("flinksnap: not decoded: operator {op}{sub} state {}{count}{at}: {}", u.state_label(), u.reason);
    }
}
