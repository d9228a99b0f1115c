//! `flinksnap export`: every selected state of a snapshot into files a query engine reads.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use flinksnap::{ExportFormat, ExportOptions, Manifest, NoProgress, ParquetCompression, Progress, Snapshot};

use super::operators::{plan_uids, read_plan, NamedOperators};
use crate::cli::Outcome;

/// Output format of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Parquet (zstd unless --compression; dictionary-encoded: operator_id, operator_uid, state, kind, key_group,
    /// namespace), columns typed from the state's serializers.
    Parquet,
    /// CSV, the columns of `dump --format csv`.
    Csv,
    /// JSON lines, the `dump` format.
    Jsonl,
}

/// Codec of the Parquet files' pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Codec {
    /// zstd level 3: the smallest files.
    Zstd,
    /// Snappy: files about 1.7x as large, about a tenth less CPU.
    Snappy,
    /// LZ4 (Parquet's LZ4_RAW): files about 1.7x as large, about a tenth less CPU.
    Lz4,
    /// Uncompressed: files about 4x as large, about a seventh less CPU.
    None,
}

/// Export every state of a snapshot: one file per operator and state, plus manifest.json.
#[derive(Debug, clap::Args)]
#[command(after_help = "LAYOUT:
  DIR/manifest.json                 files, row counts, schemas, the snapshot they came from
  DIR/<operator>/<state>.parquet    <operator> is the uid when known, else the operator id;
                                    characters other than A-Z a-z 0-9 - _ . become %XX
                                    (timers: _timer_state%2Fevent_user-timers.parquet)

Parquet columns: operator_id, operator_uid, state, kind, key_group, key, namespace,
user_key (map and broadcast state), value, ttl_timestamp (TTL state), typed from the
serializers (formats/parquet-export.md); values no serializer can interpret (Kryo, custom
serializers) are Binary, their class in the field metadata.

EXAMPLES:
  flinksnap export savepoint-1a2b3c-4d5e6f7a8b9c --to export/
  flinksnap export chk-42 --to out --operator orders-dedup --format jsonl
  flinksnap export chk-42 --to out --threads 2      # at most 2 cores
  flinksnap export chk-42 --to out --compression snappy   # larger files, less CPU
  duckdb -c \"SELECT key, value FROM 'export/keyed-string/v-pojo.parquet' LIMIT 5\"")]
pub struct Args {
    /// A snapshot directory (holding `_metadata`) or a `_metadata` file.
    pub path: String,
    /// The export directory (created if missing; must be empty unless --force).
    #[arg(long, value_name = "DIR")]
    pub to: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    pub format: Format,
    /// Codec of the Parquet files (the sizes and CPU are those of the bench heap savepoint,
    /// formats/parquet-export.md; pyarrow and arrow-rs read each of them back, tested).
    #[arg(long, value_enum, value_name = "CODEC", default_value_t = Codec::Zstd)]
    pub compression: Codec,
    /// Only this operator, by uid or 32-digit hex id (repeatable).
    #[arg(long = "operator", value_name = "UID|ID")]
    pub operators: Vec<String>,
    /// Only the state with this name (repeatable).
    #[arg(long = "state", value_name = "NAME")]
    pub states: Vec<String>,
    /// An operator uid of the job (repeatable): names operators in snapshots that store no
    /// uids (Flink before 2.0).
    #[arg(long = "uid", value_name = "NAME")]
    pub uids: Vec<String>,
    /// The job's compiled SQL plan: names operators by the planner uids it implies
    /// (`<node id>_<transformation>`) where the metadata stores none (Flink 1.18, 1.20), and
    /// RowData keys and values by the SQL column names where the plan fixes their row type.
    #[arg(long, value_name = "PLAN.json")]
    pub plan: Option<String>,
    /// Write into a non-empty DIR: files an earlier export listed in DIR/manifest.json are
    /// replaced or removed, other files are left alone.
    #[arg(long)]
    pub force: bool,
    /// Threads reading and encoding (default: one per CPU): subtasks and key-group ranges of
    /// each keyed-state handle are read in parallel; every file gets its rows in the same order
    /// for any N (formats/parquet-export.md).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Rows per Parquet record batch.
    #[arg(long, value_name = "N", default_value_t = 8192, hide = true)]
    pub batch_rows: usize,
}

/// A progress bar on stderr, drawn only when stderr is a terminal: the bar counts state bytes
/// read (a subtask at a time), the message the rows written.
struct Bar(indicatif::ProgressBar, AtomicU64);

impl Progress for Bar {
    fn start(&self, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }
    fn rows(&self, rows: u64) {
        let done = self.1.fetch_add(rows, Ordering::Relaxed) + rows;
        self.0.set_message(done.to_string());
    }
    fn bytes(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

/// Runs the command.
pub fn run(args: &Args, _out: &mut dyn Write) -> Result<Outcome> {
    let snapshot = Snapshot::open_with(crate::cli::storage(), &args.path)?;
    let plan = read_plan(args.plan.as_deref())?;
    let named = NamedOperators::resolve(&snapshot, &args.operators, &[args.uids.clone(), plan_uids(&snapshot, plan.as_ref())].concat())?;
    // The plan's SQL column names for RowData keys and values (formats/job-plan.md).
    let snapshot = match &plan {
        Some(p) => snapshot.with_plan(p),
        None => snapshot,
    };
    // Every selected state, each into its own typed file: the scan keeps the dump form, and a
    // misspelt --state selects nothing (said below) rather than failing.
    let mut scan = snapshot.with_uids(named.uids.into_values()).scan().typed(false);
    for id in &named.selected {
        scan = scan.operator(id.to_hex());
    }
    for s in &args.states {
        scan = scan.state(s.clone());
    }
    let scan = scan.build()?;
    let mut opts = ExportOptions::new(&args.to);
    opts.storage = crate::cli::storage();
    opts.format = match args.format {
        Format::Parquet => ExportFormat::Parquet,
        Format::Csv => ExportFormat::Csv,
        Format::Jsonl => ExportFormat::Jsonl,
    };
    opts.compression = match args.compression {
        Codec::Zstd => ParquetCompression::Zstd,
        Codec::Snappy => ParquetCompression::Snappy,
        Codec::Lz4 => ParquetCompression::Lz4,
        Codec::None => ParquetCompression::None,
    };
    if opts.format != ExportFormat::Parquet && opts.compression != ParquetCompression::Zstd {
        anyhow::bail!("--compression applies to Parquet files only (--format {})", opts.format.extension());
    }
    opts.force = args.force;
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    opts.batch_rows = args.batch_rows.max(1);

    let manifest = if std::io::stderr().is_terminal() {
        let style = indicatif::ProgressStyle::with_template("{spinner} exporting [{bar:30}] {bytes}/{total_bytes} of state, {msg} rows ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = indicatif::ProgressBar::new(0).with_style(style).with_message("0");
        bar.enable_steady_tick(Duration::from_millis(200));
        let bar = Bar(bar, AtomicU64::new(0));
        let m = scan.export(&opts, &bar);
        bar.0.finish_and_clear();
        m?
    } else {
        scan.export(&opts, &NoProgress)?
    };
    report(&manifest, &args.to);
    // A misspelt --state selects nothing; say so rather than leave an export that looks empty.
    for s in args.states.iter().filter(|s| !manifest.states.iter().any(|m| &m.state == *s)) {
        eprintln!("flinksnap: no state named {s:?} in the selected operators (`flinksnap dump` or manifest.json list them)");
    }
    Ok(Outcome::Ok)
}

fn report(m: &Manifest, dir: &str) {
    let mb = |b: f64| b / 1_000_000.0;
    let mut line = format!(
        "flinksnap: exported {} rows of {} states into {dir} ({}, {:.1} MB) in {:.2} s ({:.1} MB/s of snapshot",
        m.totals.rows,
        m.totals.states,
        serde_json::to_value(m.format).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        mb(m.totals.bytes as f64),
        m.run.seconds,
        mb(m.run.snapshot_bytes_per_second),
    );
    if let Some(rss) = m.run.peak_rss_bytes {
        line.push_str(&format!(", peak RSS {:.0} MB", mb(rss as f64)));
    }
    line.push(')');
    eprintln!("{line}");
    if m.totals.opaque_values > 0 {
        eprintln!("flinksnap: {} values kept opaque (serializers flinksnap cannot interpret, e.g. Kryo)", m.totals.opaque_values);
    }
    let operator = |id: &str, uid: &Option<String>| uid.as_ref().map_or_else(|| id.to_owned(), |u| format!("{u} ({id})"));
    for u in &m.untyped {
        eprintln!(
            "flinksnap: untyped: operator {} state {:?}: its {} serializer's snapshot {} is unknown to flinksnap: exported as {{\"class\", \"hex\"}} ({})",
            operator(&u.operator_id, &u.operator_uid),
            u.state,
            u.serializer,
            u.class,
            u.file
        );
    }
    for u in &m.undecodable {
        let r = &u.record;
        let sub = r.subtask.map(|s| format!(" subtask {s}")).unwrap_or_default();
        let entries = r.entries.map(|n| format!(" ({n} stored entries)")).unwrap_or_default();
        let class = r.class.as_ref().map(|c| format!(" [{c}]")).unwrap_or_default();
        eprintln!("flinksnap: not exported: operator {}{sub} state {}{entries}{class}: {}", operator(&r.operator_id.to_hex(), &u.operator_uid), r.state_label(), r.reason);
    }
    if !m.undecodable.is_empty() {
        eprintln!("flinksnap: {} state(s) not (fully) exported; manifest.json lists them under \"undecodable\"", m.totals.undecodable_states);
    }
}
