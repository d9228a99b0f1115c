//! `flinksnap convert`: any readable snapshot into a canonical savepoint directory.

use std::io::Write;

use anyhow::Result;
use flinksnap::consts::UPPER_BOUND_MAX_PARALLELISM;
use flinksnap::{convert_with, Compression, ConvertOptions, DEFAULT_INLINE_THRESHOLD, DEFAULT_MEMORY_BUDGET, MAX_INLINE_THRESHOLD};

use crate::cli::output::{human_bytes, write_json, Format};
use crate::cli::Outcome;

/// Compression of the written savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    /// Uncompressed (Flink's default).
    None,
    /// Snappy, as Flink's `execution.checkpointing.snapshot-compression` writes it.
    Snappy,
}

/// Write a checkpoint or savepoint as a canonical savepoint that Flink restores into any state
/// backend (HashMap or RocksDB), optionally with another max parallelism.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap convert /checkpoints/7f3c.../chk-42 /savepoints/from-chk-42
  flinksnap convert savepoint-1a2b3c-4d5e6f7a8b9c sp-rescaled --max-parallelism 1024
  flinksnap convert chk-42 sp --compression snappy --force
  flinksnap convert chk-42 sp --threads 1   # one core; the same savepoint as any --threads

Then: flink run -s /savepoints/from-chk-42 ... (with any state backend).

The source is only read. DST is written under a temporary sibling name and renamed at the
end; an existing DST is refused unless --force. The savepoint holds relative paths only and
can be moved. Keyed state changes key groups with --max-parallelism (Flink itself cannot
change an operator's max parallelism); keys whose Java hashCode() flinksnap cannot compute
(POJOs, enums, Kryo types) are refused.")]
pub struct Args {
    /// The snapshot to convert: a checkpoint or savepoint directory, or its `_metadata` file.
    pub src: String,
    /// The savepoint directory to write: a local path or a URL (s3://, gs://, abfss://, ...).
    pub dst: String,
    #[command(flatten)]
    pub write: WriteArgs,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How a savepoint is written: the options `convert`, `edit` and `import` share.
#[derive(Debug, clap::Args)]
pub struct WriteArgs {
    /// Write every operator with this max parallelism (number of key groups, 1..=32768),
    /// moving every key to its key group.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=UPPER_BOUND_MAX_PARALLELISM as i64))]
    pub max_parallelism: Option<u32>,
    /// Compression of the written state.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// Replace DST if it exists.
    #[arg(long)]
    pub force: bool,
    /// State streams up to this many bytes are stored inside `_metadata`, as Flink does
    /// (`state.storage.fs.memory-threshold`, default 20 KiB, at most 1 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_INLINE_THRESHOLD, value_parser = clap::value_parser!(u64).range(0..=MAX_INLINE_THRESHOLD))]
    pub inline_threshold: u64,
    /// Memory for sorting keyed entries (regrouping, imports) before sorted runs spill to disk
    /// (next to DST), e.g. `512MiB`, `4GiB`. A sixteenth of it (at most 4 MiB) is what a reading
    /// thread holds of one key group before streaming it in parts (RocksDB) or gathering it
    /// state by state, spilled next to DST (other snapshots).
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub memory: usize,
    /// Threads reading and encoding keyed state (default: one per CPU). Subtasks and key-group
    /// ranges of each keyed-state handle are read in parallel; the savepoint written is the
    /// same, byte for byte, for any N.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl WriteArgs {
    /// The writer's options.
    pub fn options(&self) -> ConvertOptions {
        ConvertOptions {
            max_parallelism: self.max_parallelism,
            compression: match self.compression {
                CompressionArg::None => Compression::None,
                CompressionArg::Snappy => Compression::Snappy,
            },
            inline_threshold: self.inline_threshold,
            memory_budget: if self.memory == 0 { DEFAULT_MEMORY_BUDGET } else { self.memory },
            force: self.force,
            threads: self.threads.unwrap_or_else(flinksnap::readers::parallel::default_threads).max(1),
        }
    }
}

pub(crate) fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("unknown size unit {u:?} in {s:?} (use B, KiB, MiB or GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size too large: {s:?}"))
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let opts = args.write.options();
    let r = convert_with(crate::cli::storage(), &args.src, &args.dst, &opts)?;
    for n in &r.notes {
        eprintln!("flinksnap: note: {n}");
    }
    match args.format {
        Format::Json => write_json(out, "convert", &r)?,
        Format::Table => {
            writeln!(out, "Wrote canonical savepoint {}", r.target)?;
            writeln!(out, "  from            {}", r.source)?;
            writeln!(out, "  checkpoint id   {}", r.checkpoint_id)?;
            writeln!(
                out,
                "  operators       {} ({} keyed{})",
                r.operators,
                r.keyed_operators,
                if r.regrouped_operators > 0 { format!(", {} moved to new key groups", r.regrouped_operators) } else { String::new() }
            )?;
            writeln!(out, "  entries         {} keyed, {} operator/broadcast", r.keyed_entries, r.operator_entries)?;
            writeln!(
                out,
                "  state           {} in {} files and {} inline streams; _metadata {}",
                human_bytes(r.state_bytes),
                r.files,
                r.inline_streams,
                human_bytes(r.metadata_bytes)
            )?;
            if r.spilled_runs > 0 {
                writeln!(out, "  regrouping      {} sorted runs spilled to disk", r.spilled_runs)?;
            }
            if r.streamed_key_groups > 0 {
                writeln!(out, "  key groups      {} too large to hold whole, streamed in parts or gathered by state", r.streamed_key_groups)?;
            }
        }
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("x").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
