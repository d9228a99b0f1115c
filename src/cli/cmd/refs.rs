//! `flinksnap refs`: which files each snapshot of a directory references, and which nothing does.

use std::io::Write;

use anyhow::Result;
use flinksnap::manage::refs::refs;

use crate::cli::output::{human_bytes, write_json, yes_no, Format, Table};
use crate::cli::Outcome;

/// List, for a job's checkpoint directory (or a savepoint directory), the files each complete
/// snapshot references and the files no snapshot references.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap refs /checkpoints/7f3c...
  flinksnap refs /checkpoints/7f3c... --format json | jq '.data.unreferenced[].path'

A reference to an absolute path counts both as recorded and re-based onto where the snapshot
is now, so a copied job directory keeps its own shared files. Files outside Flink's layout
(role \"unknown\") are listed, and `flinksnap gc` never removes them.")]
pub struct Args {
    /// A job directory (chk-N/, shared/, taskowned/ below), or any directory of snapshots.
    pub dir: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn role(r: impl serde::Serialize) -> String {
    serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "-".into())
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let report = refs(crate::cli::storage(), &args.dir)?;
    if args.format == Format::Json {
        write_json(out, "refs", &report)?;
        return Ok(Outcome::Ok);
    }
    writeln!(out, "Directory   {}", report.root)?;
    let t = &report.totals;
    writeln!(
        out,
        "Files       {} ({}): {} referenced ({}), {} unreferenced ({})",
        t.files,
        human_bytes(t.bytes),
        t.referenced_files,
        human_bytes(t.referenced_bytes),
        t.unreferenced_files,
        human_bytes(t.unreferenced_bytes)
    )?;
    for s in &report.snapshots {
        writeln!(out)?;
        writeln!(
            out,
            "Snapshot {} (checkpoint id {}): {} files, {}{}",
            s.path,
            s.checkpoint_id,
            s.files.len(),
            human_bytes(s.bytes),
            if s.missing > 0 { format!(", {} MISSING", s.missing) } else { String::new() }
        )?;
        let mut table = Table::new(&["PATH", "ROLE", "HOLDS", "OWN", "EXISTS", "SNAPSHOTS>", "BYTES>"]);
        for f in &s.files {
            table.row(vec![
                f.path.clone(),
                role(f.role),
                f.holds.map_or_else(|| "metadata".to_owned(), role),
                yes_no(f.own).into(),
                yes_no(f.exists).into(),
                f.referenced_by.to_string(),
                f.size.to_string(),
            ]);
        }
        table.write(out, "  ")?;
    }
    for (title, list) in [("Incomplete", &report.incomplete), ("Unreadable (references unknown)", &report.unreadable)] {
        if !list.is_empty() {
            writeln!(out)?;
            writeln!(out, "{title}")?;
            for s in list {
                writeln!(out, "  {}: {}", s.path, s.reason)?;
            }
        }
    }
    writeln!(out)?;
    writeln!(out, "Unreferenced ({} files, {})", t.unreferenced_files, human_bytes(t.unreferenced_bytes))?;
    let mut table = Table::new(&["PATH", "ROLE", "IN", "BYTES>"]);
    for f in &report.unreferenced {
        let within = match (&f.snapshot, f.in_incomplete_snapshot) {
            (Some(s), true) => format!("{s} (incomplete)"),
            (Some(s), false) => s.clone(),
            (None, _) => "-".into(),
        };
        table.row(vec![f.path.clone(), role(f.role), within, f.size.to_string()]);
    }
    table.write(out, "  ")?;
    Ok(Outcome::Ok)
}
