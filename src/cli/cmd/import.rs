//! `flinksnap import`: the Parquet files of an export (edited with any tool) written back into
//! a snapshot's states, as a canonical savepoint (spec: `formats/import.md`).

use std::io::Write;

use anyhow::Result;
use flinksnap::{bootstrap_with, import_with, ImportOptions, ImportReport};

use super::convert::WriteArgs;
use crate::cli::output::{human_bytes, write_json, Format, Table};
use crate::cli::Outcome;

/// Write state from an export's Parquet files (edited with any tool) into a snapshot, as a
/// canonical savepoint (the State Processor API's bootstrapping, without a JVM).
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  # export, edit the Parquet with any tool, import into the same snapshot
  flinksnap export sp --to state --operator orders-dedup --state last-seen
  python -c 'import pyarrow.parquet as pq, pyarrow.compute as pc; \\
      t = pq.read_table(\"state/orders-dedup/last-seen.parquet\"); \\
      pq.write_table(t.filter(pc.field(\"key\") != \"user-4711\"), \"state/orders-dedup/last-seen.parquet\")'
  flinksnap import state --into sp sp-fixed --dry-run
  flinksnap import state --into sp sp-fixed
  # a state the snapshot does not have yet: registered for its columns' types when they are
  # built-in (Long, Integer, String, byte[], ..., TupleN, Row, POJO, SQL RowData, List/Map of
  # them), else --like one
  flinksnap import state --into sp sp-new
  flinksnap import state --into sp sp-new --like orders-dedup/last-seen
  # struct columns of a file another tool wrote: SQL rows (RowData), a POJO's fields, a Row
  flinksnap import state --into sp sp-new --type 4_deduplicate/deduplicate-state=rowdata
  flinksnap import state --new sp-sql --max-parallelism 128 --type '*/*=rowdata'
  flinksnap import state --into sp sp-new --type orders/last-order=pojo:com.example.Order
  flinksnap import state --into sp sp-new --type orders/pairs=row
  # an operator the snapshot does not have (e.g. dropped with `edit --drop-operator`): created
  # under the id Flink derives from the manifest's operator_uid, with the snapshot's parallelism
  flinksnap import state --into sp-without-dedup sp-with-dedup
  flinksnap import state --into sp sp-new --parallelism 4
  # a new savepoint from the export alone (bootstrapping a job's state; no --into)
  flinksnap import state --new sp-bootstrap --max-parallelism 128 --parallelism 2
  flink run -s sp-bootstrap job.jar
  # an export on an object store
  flinksnap import s3://bucket/exports/state --into s3://bucket/savepoints/sp s3://bucket/savepoints/sp-fixed

Every file the export's manifest.json lists replaces ALL entries of its state in the snapshot
--into (a file with no rows empties the state); states without a file are kept as they are.
The manifest says each file's operator (uid or id), state and kind; rows are read with the
serializers the snapshot registered for the state (a state or operator the snapshot lacks:
registered as its file records it, else for its columns' types (--type says what a struct is), or
--like an existing state), and the `key_group` column is ignored: key
groups are computed from the keys (Flink's murmur hash of the key's hashCode(); keys whose
hash flinksnap cannot compute, e.g. POJO, enum or Kryo keys, are refused by name). Errors name
the Parquet file, the row (counting from 0) and the column.

DST is written as `convert` writes it: a canonical savepoint any state backend restores,
relative paths only, under a temporary name renamed at the end (on object stores `_metadata`
last). The snapshot --into and PARQUET_DIR are only read.

NEW OPERATORS: a manifest operator the snapshot --into lacks is created under the id Flink's
OperatorIDGenerator.fromUid gives its operator_uid (or its 32-hex operator_id when it has no
uid), with the parallelism the snapshot's operators share (else --parallelism) and their max
parallelism (else --max-parallelism, which then applies to every operator). Its keyed state's
key serializer is the one the file records, else the built-in type of the `key` column (Long,
Integer, String, ..., SQL RowData with --type) or the key serializer of a keyed --like state's
operator. With --new there is no snapshot: every
operator is new, --max-parallelism is required, the parallelism defaults to 1, the checkpoint
id to 1 (--checkpoint-id), and the savepoint holds no master state.")]
pub struct Args {
    /// A directory `flinksnap export --format parquet` wrote (with its manifest.json): a local
    /// path or an object-store URL (`s3://…`, `gs://…`, `abfss://…`).
    pub parquet_dir: String,
    /// The snapshot whose states are replaced (a checkpoint or savepoint directory, or its
    /// `_metadata` file; local or an object-store URL).
    #[arg(long = "into", value_name = "SRC", required_unless_present = "new")]
    pub into: Option<String>,
    /// Write a new savepoint holding only the export's states (every operator new; needs
    /// --max-parallelism).
    #[arg(long, conflicts_with = "into", requires = "max_parallelism")]
    pub new: bool,
    /// Parallelism of operators the import creates (default: the one the snapshot's operators
    /// share; with --new: 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=32768))]
    pub parallelism: Option<u32>,
    /// Checkpoint id of the savepoint --new writes (Flink continues counting from it).
    #[arg(long, value_name = "ID", requires = "new")]
    pub checkpoint_id: Option<u64>,
    /// The savepoint directory to write (not needed with --dry-run).
    #[arg(required_unless_present = "dry_run")]
    pub dst: Option<String>,
    /// A state new to the snapshot takes its serializer snapshots from this existing state
    /// (same kind, same key type) (repeatable); without it, a new state of built-in types is
    /// registered from its file's column types.
    #[arg(long, value_name = "OPERATOR/STATE")]
    pub like: Vec<String>,
    /// What the struct columns of a state registered from its file's column types hold, where
    /// the file does not record it (repeatable; `*` for any operator or state): `rowdata` (SQL
    /// `RowData`: a SQL operator's rows and keys; field types from the columns), `row` (Flink's
    /// `Row`, fields f0, f1, ...), `pojo:CLASS` (a POJO of that class, fields by name), `tuple`
    /// (`TupleN`, fields f0, f1, ...; the default).
    #[arg(long = "type", value_name = "OPERATOR/STATE=TYPE")]
    pub types: Vec<String>,
    /// Read and check every file, report what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub write: WriteArgs,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let opts = ImportOptions {
        convert: args.write.options(),
        like: args.like.clone(),
        dry_run: args.dry_run,
        parallelism: args.parallelism,
        checkpoint_id: args.checkpoint_id,
        types: args.types.clone(),
    };
    let r = match &args.into {
        Some(into) => import_with(crate::cli::storage(), &args.parquet_dir, into, args.dst.as_deref(), &opts)?,
        None => bootstrap_with(crate::cli::storage(), &args.parquet_dir, args.dst.as_deref(), &opts)?,
    };
    let into = args.into.as_deref().unwrap_or("a new savepoint");
    if let Some(w) = &r.written {
        for n in &w.notes {
            eprintln!("flinksnap: note: {n}");
        }
    }
    match args.format {
        Format::Json => write_json(out, "import", &r)?,
        Format::Table => print_table(&r, into, out)?,
    }
    Ok(Outcome::Ok)
}

fn print_table(r: &ImportReport, into: &str, out: &mut dyn Write) -> Result<()> {
    match &r.written {
        Some(w) => writeln!(out, "Wrote savepoint {}\n  from {} with the states of {}", w.target, w.source, r.from)?,
        None => writeln!(out, "Dry run: nothing written; importing {} into {into} would replace", r.from)?,
    }
    let mut t = Table::new(&["operator", "state", "kind", "file", "rows>", "replaced>", "new (like)"]);
    for s in &r.states {
        let mut op = s.operator_uid.clone().unwrap_or_else(|| s.operator_id.to_hex());
        if s.new_operator {
            op.push_str(" (new)");
        }
        t.row(vec![op, s.state.clone(), s.kind.to_owned(), s.file.clone(), s.rows.to_string(), s.replaced.to_string(), s.like.clone().unwrap_or_default()]);
    }
    t.write(out, "  ")?;
    if let Some(w) = &r.written {
        writeln!(out, "  operators       {} ({} keyed)", w.operators, w.keyed_operators)?;
        writeln!(out, "  entries         {} keyed, {} operator/broadcast", w.keyed_entries, w.operator_entries)?;
        writeln!(out, "  state           {} in {} files and {} inline streams; _metadata {}", human_bytes(w.state_bytes), w.files, w.inline_streams, human_bytes(w.metadata_bytes))?;
    }
    Ok(())
}
