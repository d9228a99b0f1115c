//! `flinksnap refs`: which files each snapshot of a directory references, and which nothing does.

use std::io::Write;

use anyhow::Result;
use flinksnap::refs_with;

use crate::cli::output::{human_bytes, write_json, yes_no, Format, Table};
use crate::cli::Outcome;

/// List, for a job's checkpoint directory (or a savepoint directory), the files each complete
/// snapshot references, which snapshots (of which job directory) reference each file, the
/// snapshots elsewhere that reference files of the directory, and the files nothing references.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap refs /checkpoints/7f3c...
  flinksnap refs /checkpoints/7f3c... --format json | jq '.data.unreferenced[].path'
  flinksnap refs /checkpoints/7f3c... --format json | jq '.data.external[] | {path, files: (.files | length)}'
  flinksnap refs /savepoints --also /checkpoints

References cross job directories: a job restored in CLAIM or LEGACY mode checkpoints into a new
job directory and references the old job's shared/ files. So every complete snapshot of the
scanned roots counts (for a job directory: the whole checkpoint directory around it; --also
adds directories), and a file another job's snapshot references is flagged CROSS-JOB. A
reference to an absolute path counts both as recorded and re-based onto where the snapshot is
now, so a copied job directory keeps its own shared files. Files outside Flink's layout (role
\"unknown\") are listed, and `flinksnap gc` never removes them.")]
pub struct Args {
    /// A job directory (chk-N/, shared/, taskowned/ below), or any directory of snapshots.
    pub dir: String,
    /// Another directory whose snapshots' references count too: a savepoint directory, another
    /// checkpoint directory (repeatable).
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub also: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn role(r: impl serde::Serialize) -> String {
    serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "-".into())
}

/// A path as the tables show it: relative to the root it lies in (the checkpoint directory, for
/// a job directory), else as it is. JSON keeps full paths.
fn short(p: &str, roots: &[flinksnap::ScopeRoot]) -> String {
    roots
        .iter()
        .find_map(|r| p.strip_prefix(r.path.as_str()).and_then(|rest| rest.strip_prefix('/')).map(str::to_owned))
        .unwrap_or_else(|| p.to_owned())
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let report = refs_with(crate::cli::storage(), &args.dir, &args.also)?;
    if args.format == Format::Json {
        write_json(out, "refs", &report)?;
        return Ok(Outcome::Ok);
    }
    writeln!(out, "Directory   {}", report.root)?;
    for r in &report.roots {
        let why = serde_json::to_value(r.reason).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default();
        writeln!(out, "Scanned     {} ({why}): {} snapshots{}", r.path, r.snapshots, if r.unreadable > 0 { format!(", {} unreadable", r.unreadable) } else { String::new() })?;
    }
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
            "Snapshot {} (checkpoint id {}, job {}): {} files, {}{}{}",
            s.path,
            s.checkpoint_id,
            s.job,
            s.files.len(),
            human_bytes(s.bytes),
            if s.missing > 0 { format!(", {} MISSING", s.missing) } else { String::new() },
            if s.cross_job_files > 0 { format!(", {} outside its job directory", s.cross_job_files) } else { String::new() }
        )?;
        let mut table = Table::new(&["PATH", "ROLE", "HOLDS", "OWN", "EXISTS", "CROSS-JOB", "SNAPSHOTS>", "BYTES>", "REFERENCED BY"]);
        for f in &s.files {
            table.row(vec![
                f.path.clone(),
                role(f.role),
                f.holds.map_or_else(|| "metadata".to_owned(), role),
                yes_no(f.own).into(),
                yes_no(f.exists).into(),
                yes_no(f.cross_job).into(),
                f.referenced_by.to_string(),
                f.size.to_string(),
                f.referenced_by_snapshots.iter().map(|x| short(x, &report.roots)).collect::<Vec<_>>().join(", "),
            ]);
        }
        table.write(out, "  ")?;
    }
    if !report.external.is_empty() {
        writeln!(out)?;
        writeln!(out, "Referenced from outside ({} files of this directory, by {} snapshots)", t.externally_referenced_files, report.external.len())?;
        let mut table = Table::new(&["SNAPSHOT", "CHECKPOINT ID>", "JOB", "FILES>", "BYTES>"]);
        for e in &report.external {
            table.row(vec![short(&e.path, &report.roots), e.checkpoint_id.to_string(), short(&e.job, &report.roots), e.files.len().to_string(), e.bytes.to_string()]);
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
