//! `flinksnap latest`: the snapshot to restore from.

use std::io::Write;

use anyhow::Result;
use flinksnap::latest_with;

use crate::cli::output::{write_json, Format};
use crate::cli::Outcome;

/// Print the newest complete snapshot under a checkpoint or savepoint directory, and nothing
/// else, so that `flink run -s "$(flinksnap latest DIR)"` works.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flink run -s \"$(flinksnap latest /checkpoints/7f3c...)\" job.jar
  flinksnap latest /checkpoints            # every job directory below
  flinksnap latest /savepoints --format json

NEWEST:
  Within a job directory, the highest checkpoint id (chk-N). Across job directories and
  savepoints, the newest _metadata modification time (Flink writes _metadata last).
  Skipped: snapshots without _metadata (in flight or abandoned) and those failing
  `flinksnap verify --level shallow`; why is said on stderr (unless --quiet).

EXIT STATUS:
  0  found (its path on stdout)
  1  no complete, sound snapshot under DIR (nothing on stdout)
  2  DIR unreadable")]
pub struct Args {
    /// A checkpoint directory (job directories below), a job directory (chk-N below), a
    /// savepoint directory, or a snapshot directory.
    pub dir: String,
    /// Output format: the bare path (table), or a JSON document with what was skipped.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Do not say on stderr which newer snapshots were skipped.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let report = latest_with(crate::cli::storage(), &args.dir)?;
    match args.format {
        Format::Json => write_json(out, "latest", &report)?,
        Format::Table => {
            if !args.quiet {
                for s in &report.skipped {
                    eprintln!("flinksnap: skipped {}: {}", s.path, s.reason);
                }
            }
            match &report.path {
                Some(p) => writeln!(out, "{p}")?,
                None => eprintln!("flinksnap: {}: no complete snapshot that passes shallow verification", args.dir),
            }
        }
    }
    Ok(if report.path.is_some() { Outcome::Ok } else { Outcome::Problems })
}
