//! Managing snapshot directories: checking snapshots, finding the newest one, which files each
//! references, removing the files nothing references, and looking at what state holds.
//!
//! - [`layout`]: a directory of checkpoints or savepoints scanned, every file given a
//!   [`FileRole`](layout::FileRole) (the classifier `refs`, `gc` and `latest` build on);
//! - [`verify`]: a snapshot's invariants checked (files exist with their recorded sizes; at the
//!   full level also every handle, key group and entry decodes and key groups are covered once);
//! - [`latest`]: the newest complete, shallowly sound snapshot under a directory;
//! - [`refs`]: which files each retained snapshot references, and which files nothing does;
//! - [`scope`]: the roots whose snapshots `refs`, `gc` and `delete` respect (references cross
//!   job directories);
//! - [`gc`]: removing what nothing references, conservatively;
//! - [`delete`]: FLIP-47's DELETE of one snapshot: its `_metadata` first, then the files no other
//!   snapshot references;
//! - [`stats`]: bytes and entries per operator, state and key group, skew, heaviest keys;
//! - [`diff`]: entries added, removed and changed between two snapshots;
//! - [`compat`]: will a snapshot restore into a new job version (or a newer Flink)? Flink's
//!   restore rules without a JVM.
//!
//! Spec of the JSON each command prints: `formats/cli-json.md`.

pub mod delete;
pub mod diff;
pub mod gc;
pub mod latest;
pub mod compat;
pub mod layout;
pub mod refs;
pub mod scope;
pub mod stats;
pub mod verify;

use crate::model::OperatorId;
use crate::snapshot::Snapshot;

/// How to name an operator in messages: its uid where known (from the metadata, 2.x, or given
/// by the user), with the id, else the id.
pub fn operator_label(snapshot: &Snapshot, id: &OperatorId, uids: &[String]) -> String {
    match operator_uid(snapshot, id, uids) {
        Some(uid) => format!("{uid} ({id})"),
        None => id.to_string(),
    }
}

/// The uid of an operator: recorded in the metadata (2.x) or one of `uids` whose derived id
/// matches.
pub fn operator_uid(snapshot: &Snapshot, id: &OperatorId, uids: &[String]) -> Option<String> {
    snapshot
        .operator(id)
        .and_then(|o| o.uid.clone())
        .or_else(|| uids.iter().find(|u| OperatorId::from_uid(u) == *id).cloned())
}
