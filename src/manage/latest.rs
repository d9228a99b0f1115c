//! `latest`: the newest complete, sound snapshot under a directory, the one to restore from.
//!
//! "Newest" (documented in `formats/cli-json.md` and `flinksnap latest --help`):
//! 1. Within one job directory, checkpoints are ordered by checkpoint id (`chk-<N>`): Flink
//!    numbers a job's checkpoints in order, and ids survive copies that reset file times.
//! 2. Across job directories and savepoints (whose ids restart or are not in their names), the
//!    modification time of `_metadata` decides, which Flink writes last; ties go to the higher
//!    checkpoint id, then the path.
//!
//! Skipped on the way: incomplete snapshots (no `_metadata`: in flight or abandoned) and those
//! that fail shallow verification (`_metadata` does not parse, a file is missing or has the wrong
//! size).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::layout::{DirScan, SnapshotDir, SnapshotDirKind};
use super::verify::{verify, Level};
use crate::error::Result;
use crate::storage::{Location, Storage};

/// A snapshot passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The snapshot directory.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What `latest` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatestReport {
    /// The newest complete, sound snapshot directory; `None` when there is none.
    pub path: Option<String>,
    /// Its checkpoint id (from `_metadata`).
    pub checkpoint_id: Option<u64>,
    /// What its directory name says it is.
    pub kind: Option<SnapshotDirKind>,
    /// Modification time of its `_metadata`, in milliseconds since the epoch.
    pub metadata_modified_ms: Option<u64>,
    /// Snapshot directories found.
    pub candidates: usize,
    /// Newer snapshots passed over, and why.
    pub skipped: Vec<Skipped>,
}

fn millis(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64)
}

/// Finds the newest complete snapshot under `dir` (a checkpoint directory with job directories,
/// a job directory, a savepoint directory, or a snapshot directory itself) that passes shallow
/// verification.
pub fn latest(storage: Arc<dyn Storage>, dir: &str) -> Result<LatestReport> {
    let root = Location::new(dir);
    let scan = DirScan::snapshots(storage.as_ref(), &root)?;
    // Checkpoints group by their job directory; every other snapshot stands alone.
    let mut groups: BTreeMap<String, Vec<&SnapshotDir>> = BTreeMap::new();
    for s in &scan.snapshots {
        let key = match s.kind {
            SnapshotDirKind::Checkpoint { .. } => s.dir.parent().map_or_else(String::new, |p| p.to_string()),
            _ => s.dir.to_string(),
        };
        groups.entry(key).or_default().push(s);
    }
    let mut skipped = Vec::new();
    let mut winners: Vec<(Option<SystemTime>, u64, &SnapshotDir)> = Vec::new();
    for (_, mut group) in groups {
        group.sort_by_key(|s| std::cmp::Reverse(match s.kind {
            SnapshotDirKind::Checkpoint { id } => id,
            _ => 0,
        }));
        for s in group {
            let Some(meta) = &s.metadata else {
                skipped.push(Skipped { path: s.dir.to_string(), reason: "incomplete: no _metadata (in flight or abandoned)".into() });
                continue;
            };
            match verify(storage.clone(), s.dir.as_str(), Level::Shallow, &[]) {
                Ok(r) if r.sound => {
                    winners.push((meta.modified, r.checkpoint_id.unwrap_or(0), s));
                    break;
                }
                Ok(r) => {
                    let first = r.problems().next().map_or_else(|| "not sound".to_owned(), |f| f.message.clone());
                    let n = r.problems().count();
                    let more = if n > 1 { format!(" (and {} more problems)", n - 1) } else { String::new() };
                    skipped.push(Skipped { path: s.dir.to_string(), reason: format!("fails shallow verification: {first}{more}") });
                }
                Err(e) => skipped.push(Skipped { path: s.dir.to_string(), reason: format!("cannot be verified: {e}") }),
            }
        }
    }
    winners.sort_by(|a, b| (a.0, a.1, &a.2.rel).cmp(&(b.0, b.1, &b.2.rel)));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let best = winners.last();
    Ok(LatestReport {
        path: best.map(|w| w.2.dir.to_string()),
        checkpoint_id: best.map(|w| w.1),
        kind: best.map(|w| w.2.kind),
        metadata_modified_ms: best.and_then(|w| millis(w.0)),
        candidates: scan.snapshots.len(),
        skipped,
    })
}
