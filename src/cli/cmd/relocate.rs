//! `flinksnap relocate`: a snapshot and every file it references into one self-contained,
//! relocatable directory.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use flinksnap::{RelocateOptions, RelocateReport, Relocation};

use crate::cli::output::{human_bytes, write_json, Format};
use crate::cli::Outcome;

/// Copy a checkpoint (or savepoint) together with every file it references — shared files of
/// earlier checkpoints, file-merging segments, changelog files — into one directory, with
/// `_metadata` rewritten to relative paths, so the copy restores from wherever it is moved.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap relocate /checkpoints/7f3c.../chk-42 /backup/job-a/chk-42
  flinksnap relocate /checkpoints/7f3c.../chk-42 /backup/job-a/chk-42 --dry-run -v
  flinksnap relocate mirror/chk-42 /mnt/new-cluster/chk-42 --force --format json

Then: flink run -s /backup/job-a/chk-42 ... (with the state backend the checkpoint was taken
with; `flinksnap convert` makes a savepoint for any backend).

Files inside the snapshot directory keep their names; files from the job directory keep their
path below it (shared/..., taskowned/...); file-merging segments are cut out into
segments/<id>; anything else goes to external/. The metadata version, operator ids, names and
uids, key-group offsets and checkpoint properties are kept. The source is only read. DST is
written under a temporary sibling name, read back, and renamed at the end; an existing DST is
refused unless --force.")]
pub struct Args {
    /// The snapshot to relocate: a checkpoint or savepoint directory, or its `_metadata` file.
    pub src: String,
    /// The directory to write.
    pub dst: String,
    /// Replace DST if it exists.
    #[arg(long)]
    pub force: bool,
    /// List every copied file.
    #[arg(short, long)]
    pub verbose: bool,
    /// Only say what would be copied (files, bytes, handles rewritten); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let plan = Relocation::plan(crate::cli::storage(), &args.src, &args.dst, &RelocateOptions { force: args.force })?;
    if args.dry_run {
        let r = plan.planned().clone();
        drop(plan);
        return summary(args, &r, false, out);
    }
    // A bar only where someone watches, and only when there is enough to copy to wait for.
    let r = if std::io::stderr().is_terminal() && plan.total_bytes() >= 64 << 20 {
        let style = indicatif::ProgressStyle::with_template("{spinner} copying [{bar:30}] {bytes}/{total_bytes} ({elapsed}, {eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = indicatif::ProgressBar::new(plan.total_bytes()).with_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        let r = plan.execute(&|done| bar.set_position(done));
        bar.finish_and_clear();
        r?
    } else {
        plan.execute(&|_| {})?
    };
    summary(args, &r, true, out)
}

fn summary(args: &Args, r: &RelocateReport, done: bool, out: &mut dyn Write) -> Result<Outcome> {
    match args.format {
        Format::Json => write_json(out, "relocate", r)?,
        Format::Table => {
            let outside = r.files.iter().filter(|f| f.outside).count();
            if done {
                writeln!(out, "Relocated snapshot to {}", r.target)?;
            } else {
                writeln!(out, "Would relocate the snapshot to {} (dry run: nothing written)", r.target)?;
            }
            writeln!(out, "  from            {}", r.source)?;
            writeln!(out, "  checkpoint id   {}", r.checkpoint_id)?;
            let version = if r.metadata_version == r.source_metadata_version {
                format!("V{} (as the source)", r.metadata_version)
            } else {
                format!("V{} (the source had V{})", r.metadata_version, r.source_metadata_version)
            };
            if done {
                writeln!(out, "  _metadata       {version}, {}", human_bytes(r.metadata_bytes))?;
            } else {
                writeln!(out, "  _metadata       {version}")?;
            }
            writeln!(
                out,
                "  files           {} {}, {} ({} from outside the snapshot directory)",
                r.files.len(),
                if done { "copied" } else { "to copy" },
                human_bytes(r.bytes),
                outside
            )?;
            writeln!(
                out,
                "  handles         {} file handles, all relative now ({} were absolute); {} inline streams kept",
                r.file_handles, r.made_relative, r.inline_streams
            )?;
            if r.segments_extracted + r.file_merging_handles_converted + r.empty_placeholders_dropped > 0 {
                writeln!(
                    out,
                    "  file merging    {} segments cut out into files of their own; {} operator-state handles made plain; {} empty placeholders dropped",
                    r.segments_extracted, r.file_merging_handles_converted, r.empty_placeholders_dropped
                )?;
            }
            if args.verbose {
                for f in &r.files {
                    let from = match f.segment {
                        Some((start, len)) => format!("{} (bytes {start}..{})", f.source, start + len),
                        None => f.source.clone(),
                    };
                    writeln!(out, "    {:<60} <- {from}", f.target)?;
                }
            }
            if done {
                writeln!(out, "The directory is self-contained: move it anywhere and restore with `flink run -s <dir>`.")?;
            }
        }
    }
    Ok(Outcome::Ok)
}
