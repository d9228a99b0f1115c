//! `flinksnap offsets`: where each source of a snapshot stands (topic, partition, offset; file
//! and position).

use std::io::Write;

use anyhow::Result;
use flinksnap::{kafka_offset_marker as offset_marker, EnumeratorState, Snapshot, Split};

use crate::cli::output::{write_json, Format, Table};
use crate::cli::Outcome;

/// Print the position of every source in a snapshot: the Kafka partitions and offsets, file
/// splits and positions each FLIP-27 source reader held, its enumerator's state, and the
/// offsets of the legacy FlinkKafkaConsumer.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap offsets savepoint-1a2b3c-4d5e6f7a8b9c
  flinksnap offsets /checkpoints/7f3c.../chk-42 --format json | jq '.data[].splits[]'

TABLE COLUMNS:
  OPERATOR   the operator uid (Flink 2.0+) or id
  SUBTASK    the reader subtask holding the split (\"-\" for the enumerator)
  SOURCE     kafka, file, kafka-legacy (FlinkKafkaConsumer), or unknown
  WHAT       kafka: topic/partition; file: the path
  OFFSET     kafka: the next offset to read (or earliest/latest/committed before the first
             read); legacy: the last offset read; file: the reader's offset+records to
             skip after it (\"N records\" for formats without offsets)
  STOP       kafka: the stopping offset of a bounded split; file: the split's end
Partitions the Kafka enumerator knows but has not assigned are listed with SUBTASK \"-\".
Splits are recognised by their serializer's version and format (nothing in a snapshot names
their class); unknown ones are listed with their bytes in JSON. See formats/connector-state.md.

EXIT STATUS:
  0  printed (also when the snapshot has no source state)
  1  some source state could not be read (said on stderr; the rest is printed)
  2  the snapshot is unreadable")]
pub struct Args {
    /// A snapshot directory (holding `_metadata`) or a `_metadata` file.
    pub path: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let positions = Snapshot::open_with(crate::cli::storage(), &args.path)?.source_positions()?;
    let problems: Vec<String> = positions.iter().flat_map(|p| p.problems.iter().map(move |e| format!("operator {}: {e}", p.operator_id))).collect();
    match args.format {
        Format::Json => write_json(out, "offsets", &positions)?,
        Format::Table => {
            let mut t = Table::new(&["OPERATOR", "SUBTASK>", "SOURCE", "WHAT", "OFFSET>", "STOP>"]);
            for p in &positions {
                let op = p.operator_uid.clone().unwrap_or_else(|| p.operator_id.clone());
                for s in &p.splits {
                    t.row(split_row(&op, &s.subtask.to_string(), &s.split));
                }
                for l in &p.legacy_kafka_offsets {
                    let o = &l.offset;
                    t.row(vec![op.clone(), l.subtask.to_string(), "kafka-legacy".into(), format!("{}/{}", o.topic, o.partition), o.offset.to_string(), String::new()]);
                }
                match &p.enumerator {
                    Some(EnumeratorState::Kafka(k)) => {
                        for part in k.partitions.iter().filter(|part| part.status != "assigned") {
                            t.row(vec![op.clone(), "-".into(), "kafka".into(), format!("{}/{}", part.topic, part.partition), part.status.clone(), String::new()]);
                        }
                    }
                    Some(EnumeratorState::File(f)) => {
                        for s in &f.splits {
                            t.row(split_row(&op, "-", &Split::File(s.clone())));
                        }
                    }
                    _ => {}
                }
            }
            if positions.is_empty() {
                writeln!(out, "no source state in {}", args.path)?;
            } else {
                t.write(out, "")?;
            }
        }
    }
    for p in &problems {
        eprintln!("flinksnap: {p}");
    }
    Ok(if problems.is_empty() { Outcome::Ok } else { Outcome::Problems })
}

fn split_row(op: &str, subtask: &str, split: &Split) -> Vec<String> {
    match split {
        Split::Kafka(k) => vec![
            op.to_owned(),
            subtask.to_owned(),
            "kafka".into(),
            format!("{}/{}", k.topic, k.partition),
            offset_marker(k.starting_offset).map_or_else(|| k.starting_offset.to_string(), str::to_owned),
            k.stopping_offset.map_or_else(String::new, |s| offset_marker(s).map_or_else(|| s.to_string(), str::to_owned)),
        ],
        Split::File(f) => vec![
            op.to_owned(),
            subtask.to_owned(),
            "file".into(),
            f.path.clone().unwrap_or_default(),
            match f.reader_position {
                None => f.offset.to_string(),
                // CheckpointedPosition.NO_OFFSET: formats without offsets count records
                Some((-1, r)) => format!("{r} records"),
                Some((o, r)) => format!("{o}+{r}"),
            },
            (f.offset + f.length).to_string(),
        ],
        Split::Unknown { version, hex } => {
            vec![op.to_owned(), subtask.to_owned(), "unknown".into(), format!("serializer v{version}, {} bytes", hex.len() / 2), String::new(), String::new()]
        }
    }
}
