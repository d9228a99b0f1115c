//! `flinksnap delete`: FLIP-47's DELETE of one retained checkpoint or savepoint.

use std::io::Write;
use std::time::SystemTime;

use anyhow::{bail, Result};
use flinksnap::{delete_with, DeleteFile, DeleteOptions, DeletePlan, ScopeRoot};

use crate::cli::output::{human_bytes, write_json, Format};
use crate::cli::Outcome;

/// Delete a retained checkpoint or a savepoint: its _metadata first (so it stops being a
/// snapshot at once), then its own files, then the shared files it references that no other
/// complete snapshot references. Prints what it removed and what it kept, and why.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap delete /checkpoints/7f3c.../chk-41 --dry-run     # what would go, and what stays
  flinksnap delete /checkpoints/7f3c.../chk-41
  flinksnap delete /savepoints/savepoint-7f3c1a-0123456789ab --also /checkpoints
  flinksnap delete /checkpoints/7f3c.../chk-42 --force --format json

WHAT STAYS:
  any file another complete snapshot of the scanned roots references (as recorded, re-based,
  or by its UUID name): a later checkpoint of the same job, or of a job restored from this one
  in CLAIM or LEGACY mode (whose job directory lies beside this one). The roots: for a
  checkpoint, the checkpoint directory around its job directory (every sibling job); for a
  savepoint, the directory holding it; plus every --also directory. A file outside all roots
  is never removed; a snapshot outside them cannot be seen, so name with --also where jobs
  restored from a savepoint keep their checkpoints.

REFUSED (exit 2, nothing removed):
  a _metadata in the roots that does not parse (--allow-unreadable overrides); and unless
  --force: the snapshot is the only restorable one of its job (no other complete snapshot of
  the job passes shallow verification), or its job directory has a chk-N without _metadata
  written to within the last hour (the job runs: its next checkpoint reuses this one's files).

EXIT STATUS:
  0  deleted (or dry run)
  1  deleted, but files it referenced were missing already (listed)
  2  refused, unreadable snapshot, or a removal failed")]
pub struct Args {
    /// A snapshot directory (chk-N/, savepoint-*/) or its _metadata.
    pub snapshot: String,
    /// Another directory whose snapshots' references are kept: a savepoint directory, another
    /// checkpoint directory (repeatable).
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub also: Vec<String>,
    /// Only say what would be removed and what would stay.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete even the only restorable snapshot of its job, or a checkpoint of a running job.
    #[arg(long)]
    pub force: bool,
    /// Delete even when a _metadata in the scanned roots does not parse.
    #[arg(long)]
    pub allow_unreadable: bool,
    /// List every file kept, not only how many and why.
    #[arg(long, short)]
    pub verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let opts = DeleteOptions { also: args.also.clone(), force: args.force, allow_unreadable: args.allow_unreadable, now: SystemTime::now() };
    let p = delete_with(&crate::cli::storages(), &args.snapshot, &opts, !args.dry_run)?;
    if let Some(r) = &p.refused {
        if args.format == Format::Json {
            write_json(out, "delete", &p)?;
        } else {
            write_text(&p, args.verbose, out)?;
        }
        bail!("{}: nothing removed: {r}", p.snapshot);
    }
    match args.format {
        Format::Json => write_json(out, "delete", &p)?,
        Format::Table => write_text(&p, args.verbose, out)?,
    }
    if !p.failures.is_empty() {
        for f in &p.failures {
            eprintln!("flinksnap: could not remove {}: {}", f.path, f.error);
        }
        bail!("{}: {} removals failed{}", p.snapshot, p.failures.len(), if p.deleted { "" } else { "; its _metadata is still there, nothing else was removed" });
    }
    Ok(if p.missing.is_empty() { Outcome::Ok } else { Outcome::Problems })
}

/// The roots line `gc` and `delete` print: which directories' snapshots were read.
pub fn write_roots(roots: &[ScopeRoot], out: &mut dyn Write) -> std::io::Result<()> {
    let parts: Vec<String> = roots
        .iter()
        .map(|r| {
            let why = serde_json::to_value(r.reason).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default();
            let unreadable = if r.unreadable > 0 { format!(", {} unreadable", r.unreadable) } else { String::new() };
            format!("{} ({why}: {} snapshots{unreadable})", r.path, r.snapshots)
        })
        .collect();
    writeln!(out, "scanned {}", parts.join(", "))
}

fn word(v: impl serde::Serialize) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default()
}

fn write_text(p: &DeletePlan, verbose: bool, out: &mut dyn Write) -> std::io::Result<()> {
    write_roots(&p.roots, out)?;
    let verb = if p.deleted { "removed" } else { "would remove" };
    for f in &p.remove {
        writeln!(out, "{verb} {} ({}, {})", f.path, human_bytes(f.size), f.reason.map(word).unwrap_or_default())?;
    }
    for d in &p.remove_dirs {
        writeln!(out, "{verb} directory {d}/")?;
    }
    let why = |f: &DeleteFile| match (f.kept.map(word), f.referenced_by.is_empty()) {
        (Some(w), false) => format!("{w}: {}", f.referenced_by.join(", ")),
        (Some(w), true) => w,
        (None, _) => String::new(),
    };
    if verbose {
        for f in &p.kept {
            writeln!(out, "keep {} ({}, {})", f.path, human_bytes(f.size), why(f))?;
        }
    } else {
        // One line per reason and set of referencing snapshots: a checkpoint shares thousands
        // of SSTs.
        let mut groups: std::collections::BTreeMap<String, (usize, u64)> = std::collections::BTreeMap::new();
        for f in &p.kept {
            let g = groups.entry(why(f)).or_default();
            g.0 += 1;
            g.1 += f.size;
        }
        for (w, (n, bytes)) in groups {
            writeln!(out, "keep {n} files ({}): {w}", human_bytes(bytes))?;
        }
    }
    for m in &p.missing {
        writeln!(out, "missing {m} (referenced, not found)")?;
    }
    for f in &p.forced {
        writeln!(out, "forced: {f}")?;
    }
    if let Some(a) = p.alternatives.first() {
        writeln!(out, "restorable snapshot of the same job left: {a}")?;
    }
    let t = &p.totals;
    writeln!(
        out,
        "{}: {verb} {} files ({}, {} bytes) and {} directories; {} files kept ({}) because other snapshots reference them or they lie outside the scanned roots; {} snapshots scanned{}",
        p.snapshot,
        t.remove_files,
        human_bytes(t.remove_bytes),
        t.remove_bytes,
        t.remove_dirs,
        t.kept_files,
        human_bytes(t.kept_bytes),
        t.scanned_snapshots,
        match (&p.refused, p.deleted) {
            (Some(_), _) => "; refused",
            (None, false) => "; dry run",
            (None, true) => "",
        }
    )
}
