//! `flinksnap gc`: remove what no snapshot references.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use flinksnap::{gc_with, GcOptions, GcPlan};

use crate::cli::output::{human_bytes, write_json, Format};
use crate::cli::Outcome;

/// Remove the files in a job's checkpoint directory that no complete snapshot references:
/// shared SSTs of deleted checkpoints, abandoned chk-N directories, leftovers. A dry run unless
/// --delete is given.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap gc /checkpoints/7f3c...                      # what would go (dry run)
  flinksnap gc /checkpoints/7f3c... --delete
  flinksnap gc /checkpoints --delete --older-than 1d     # every job directory at once
  flinksnap gc /savepoints --also /checkpoints --delete  # jobs restored from savepoints

WHAT COUNTS AS REFERENCED:
  every complete snapshot of the scanned roots, not only DIR's: references cross job
  directories (a job restored in CLAIM or LEGACY mode gets a new job directory whose
  checkpoints reference the old job's shared/ files; one restored from a native savepoint in
  CLAIM mode names the savepoint's files). The roots: for a job directory, the checkpoint
  directory around it (all its sibling jobs); for a savepoint or other snapshot, the directory
  holding it; otherwise DIR itself; plus every --also and --keep directory. A snapshot outside
  them cannot be seen: gc prints the roots it scanned.

NEVER REMOVED:
  a file any complete snapshot of the roots references, as recorded or re-based, or by its
  (UUID) name; a file younger than --older-than (default 1h: a checkpoint in flight writes
  shared files nothing references yet); a chk-N without _metadata whose newest file is younger
  than --older-than; any _metadata; files outside Flink's layout (shared/, taskowned/, chk-N/,
  savepoint-*/); anything in a snapshot whose _metadata does not parse; anything under --keep.
  If a _metadata anywhere in the roots does not parse, gc refuses to delete (exit 2) unless
  --allow-unreadable. A snapshot that completes while gc runs keeps what it references.

EXIT STATUS:
  0  done (or dry run)
  2  refused, or a removal failed")]
pub struct Args {
    /// A job directory (chk-N/, shared/, taskowned/ below) or a savepoint directory.
    pub dir: String,
    /// Only say what would be removed (the default).
    #[arg(long, conflicts_with = "delete")]
    pub dry_run: bool,
    /// Remove the files.
    #[arg(long)]
    pub delete: bool,
    /// Keep files younger than this: `0s`, `90m`, `1h`, `2d`, `1h30m`.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub older_than: Duration,
    /// A snapshot or directory of snapshots whose references are kept too (e.g. a job restored
    /// from DIR), or a path under DIR never to remove (repeatable).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub keep: Vec<String>,
    /// Another directory whose snapshots' references are kept too: a savepoint directory, another
    /// checkpoint directory (repeatable).
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub also: Vec<String>,
    /// Collect even when a `_metadata` in DIR does not parse (its directory is still kept).
    #[arg(long)]
    pub allow_unreadable: bool,
    /// Collect even when DIR holds no complete snapshot (everything unreferenced goes).
    #[arg(long)]
    pub allow_no_snapshots: bool,
    /// Also list the unreferenced files that are kept, and why.
    #[arg(long, short)]
    pub verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `1h30m` -> 5400 s. A bare number is seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(format!("bad duration {s:?}: use s, m, h, d or w, e.g. 90m or 1h30m")),
        };
        let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}: a number must come before {ch:?}"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!("bad duration {s:?}: the last number has no unit"));
    }
    Ok(Duration::from_secs(total))
}

fn word(v: impl serde::Serialize) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default()
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let opts = GcOptions {
        older_than: args.older_than,
        keep: args.keep.clone(),
        also: args.also.clone(),
        allow_unreadable: args.allow_unreadable,
        allow_no_snapshots: args.allow_no_snapshots,
        now: SystemTime::now(),
    };
    let p = gc_with(&crate::cli::storages(), &args.dir, &opts, args.delete)?;
    if let Some(r) = &p.refused {
        if args.format == Format::Json {
            write_json(out, "gc", &p)?;
        }
        bail!("{}: nothing removed: {r}", p.root);
    }
    match args.format {
        Format::Json => write_json(out, "gc", &p)?,
        Format::Table => write_text(&p, args.verbose, out)?,
    }
    if !p.failures.is_empty() {
        for f in &p.failures {
            eprintln!("flinksnap: could not remove {}: {}", f.path, f.error);
        }
        bail!("{}: {} removals failed", p.root, p.failures.len());
    }
    Ok(Outcome::Ok)
}

fn write_text(p: &GcPlan, verbose: bool, out: &mut dyn Write) -> std::io::Result<()> {
    crate::cli::cmd::delete::write_roots(&p.roots, out)?;
    let verb = if p.deleted { "removed" } else { "would remove" };
    for r in &p.remove {
        writeln!(out, "{verb} {} ({}, {})", r.path, human_bytes(r.size), word(r.reason))?;
    }
    for d in &p.remove_dirs {
        writeln!(out, "{verb} directory {d}/")?;
    }
    if verbose {
        for k in &p.kept {
            writeln!(out, "keep {} ({}, {})", k.path, human_bytes(k.size), word(k.reason))?;
        }
        for r in &p.referenced_from_outside {
            writeln!(out, "keep {} ({}, referenced by {})", r.path, human_bytes(r.size), r.by.join(", "))?;
        }
    }
    let t = &p.totals;
    if t.referenced_from_outside_files > 0 {
        let mut by: Vec<&str> = p.referenced_from_outside.iter().flat_map(|r| r.by.iter().map(String::as_str)).collect();
        by.sort_unstable();
        by.dedup();
        writeln!(
            out,
            "{} files ({}) are referenced by {} snapshots outside {}: kept ({})",
            t.referenced_from_outside_files,
            human_bytes(t.referenced_from_outside_bytes),
            by.len(),
            p.root,
            by.join(", ")
        )?;
    }
    writeln!(
        out,
        "{}: {verb} {} files ({}, {} bytes) and {} directories; {} complete snapshots referenced ({} in this directory); {} unreferenced files kept ({}){}",
        p.root,
        t.remove_files,
        human_bytes(t.remove_bytes),
        t.remove_bytes,
        t.remove_dirs,
        t.snapshots,
        t.own_snapshots,
        t.kept_files,
        human_bytes(t.kept_bytes),
        if p.deleted { "" } else { "; dry run, pass --delete to remove" }
    )
}
