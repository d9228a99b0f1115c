//! A snapshot opened from storage: its parsed `_metadata`, every file it references resolved to
//! where it is now, and what kind of snapshot it is.
//!
//! Path rules (spec: `formats/layout.md`):
//! 1. A relative handle resolves against the directory that holds `_metadata`.
//! 2. An absolute path that exists is used as it is (that is what Flink would do).
//! 3. An absolute path that no longer exists was recorded where the checkpoint lived before it was
//!    copied or moved: it is re-based onto the job directory the snapshot is in now, keeping the
//!    part from the last `shared`, `taskowned`, `dstl`, `chk-N` or `savepoint-*` component on.
//!    Failing that, the directory tree around the snapshot moved with it: a file of a sibling job
//!    directory (a job restored in CLAIM or LEGACY mode references the old job's `shared/`) or of
//!    a savepoint beside the checkpoint directory is looked for under the ancestor of the
//!    snapshot that has the name the recorded path has there (`Snapshot::rebase_candidates`).
//! 4. A referenced file that cannot be found either way is an error naming the recorded path,
//!    the re-based candidate and the `_metadata` that references it.

mod kind;
mod summary;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use kind::{Flip47Properties, SnapshotFormat, SnapshotType};
pub use summary::{ExternalReferences, FileTotals, HandleSummary, OperatorSummary, Summary};

use crate::error::{Error, Result};
use crate::metadata::handles::{StreamRole, StreamStateHandle};
use crate::metadata::CheckpointMetadata;
use crate::model::OperatorId;
use crate::storage::{Location, Storage};

/// Name of the metadata file in a snapshot directory.
pub const METADATA_FILE: &str = "_metadata";

/// How many levels above a snapshot's job directory (the parent of its directory) re-basing looks
/// for the directory tree that moved with it (`Snapshot::rebase_candidates`): the checkpoint
/// directory holding sibling job directories, and two more (a savepoint directory beside it, in a
/// common parent).
pub const MOVED_TREE_LEVELS: usize = 3;

/// A stream handle somewhere in the metadata, with who owns it.
#[derive(Debug, Clone, Copy)]
pub struct StreamRef<'a> {
    /// Index of the operator in [`CheckpointMetadata::operators`] (`None` for master states).
    pub operator: Option<usize>,
    /// Subtask index, for subtask state.
    pub subtask: Option<u32>,
    /// What the stream holds.
    pub role: StreamRole,
    /// The handle.
    pub handle: &'a StreamStateHandle,
    /// RocksDB's local file name, for files of a native RocksDB snapshot.
    pub local_name: Option<&'a str>,
}

/// A referenced file, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedFile {
    /// The path as `_metadata` records it.
    pub recorded: String,
    /// Where the file is now.
    pub location: Location,
    /// Whether the path was recorded relative to the snapshot directory.
    pub relative: bool,
    /// Whether an absolute path was re-based because the snapshot moved.
    pub rebased: bool,
    /// Whether the file lies inside the snapshot directory (its own, exclusive files).
    pub own: bool,
}

/// A checkpoint or savepoint.
#[derive(Debug, Clone)]
pub struct Snapshot {
    storage: Arc<dyn Storage>,
    /// The directory that holds `_metadata`.
    pub dir: Location,
    /// The `_metadata` file.
    pub metadata_location: Location,
    /// Size of `_metadata` in bytes.
    pub metadata_size: u64,
    /// The parsed metadata.
    pub metadata: CheckpointMetadata,
    /// SQL column names a job's plan fixes for RowData keys and values
    /// (built from a compiled plan by `plan::columns`); applied to every keyed state read.
    pub column_names: Option<Arc<crate::model::columns::ColumnNames>>,
}

impl Snapshot {
    /// Opens a snapshot from a snapshot directory or a `_metadata` file.
    pub fn open(storage: Arc<dyn Storage>, path: &str) -> Result<Snapshot> {
        let loc = Location::new(path);
        let head = storage.head(&loc)?;
        let metadata_location = if head.is_dir { loc.join(METADATA_FILE) } else { loc.clone() };
        if head.is_dir && !storage.exists(&metadata_location)? {
            return Err(Error::Invalid(format!(
                "{loc}: no {METADATA_FILE} file: not a snapshot directory (or an incomplete checkpoint)"
            )));
        }
        let data = storage.read(&metadata_location)?;
        let metadata = CheckpointMetadata::parse(&data).map_err(|e| Error::decode(metadata_location.as_str(), e))?;
        let dir = metadata_location.parent().unwrap_or_else(|| Location::new("."));
        Ok(Snapshot { storage, dir, metadata_size: data.len() as u64, metadata_location, metadata, column_names: None })
    }

    /// A snapshot of `metadata` that exists only in memory (no files: every handle must be
    /// inline), named `name` in messages.
    pub fn in_memory(metadata: CheckpointMetadata, name: &str) -> Snapshot {
        let metadata_location = Location::new(name);
        let dir = metadata_location.parent().unwrap_or_else(|| Location::new("."));
        Snapshot { storage: Arc::new(crate::storage::NoFiles), dir, metadata_size: 0, metadata_location, metadata, column_names: None }
    }

    /// The stream an entry was read from, when its origin names one: the subtask's keyed-state
    /// handle's stream (keyed state) or its operator-state handle's (operator state).
    pub fn entry_stream(&self, e: &crate::model::Entry) -> Option<&StreamStateHandle> {
        let sub = e.origin.subtask?;
        let i = usize::from(e.origin.stream?);
        let state = self.metadata.operators.get(sub.operator)?.subtasks.get(sub.subtask)?.state.as_ref()?;
        if e.kind.is_keyed() {
            state.managed_keyed_state.as_ref()?.streams().get(i).map(|(_, s)| *s)
        } else {
            (i == 0).then_some(&state.managed_operator_state.as_ref()?.delegate)
        }
    }

    /// Where an entry was read, as messages name files: the resolved file, `_metadata` for inline
    /// state; `None` when its origin names no stream.
    pub fn entry_file(&self, e: &crate::model::Entry) -> Option<String> {
        let h = self.entry_stream(e)?;
        match self.resolve(h) {
            Ok(Some(r)) => Some(r.location.to_string()),
            Ok(None) => Some(self.metadata_location.to_string()),
            Err(_) => Self::recorded_path(h).map(|(p, _)| p.to_owned()),
        }
    }

    /// The storage the snapshot is read from.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The operator with this id.
    pub fn operator(&self, id: &OperatorId) -> Option<&crate::metadata::OperatorState> {
        self.metadata.operators.iter().find(|o| &o.operator_id == id)
    }

    /// Every stream handle in the metadata, in file order.
    pub fn streams(&self) -> Vec<StreamRef<'_>> {
        let mut out = Vec::new();
        for (i, op) in self.metadata.operators.iter().enumerate() {
            if let Some(h) = &op.coordinator_state {
                out.push(StreamRef { operator: Some(i), subtask: None, role: StreamRole::Coordinator, handle: h, local_name: None });
            }
            for st in &op.subtasks {
                let Some(s) = &st.state else { continue };
                let mut push = |role, handle, local_name| {
                    out.push(StreamRef { operator: Some(i), subtask: Some(st.index), role, handle, local_name })
                };
                for o in [&s.managed_operator_state, &s.raw_operator_state].into_iter().flatten() {
                    push(StreamRole::OperatorData, &o.delegate, None);
                }
                for k in [&s.managed_keyed_state, &s.raw_keyed_state].into_iter().flatten() {
                    for (role, handle, local_name) in keyed_streams(k) {
                        push(role, handle, local_name);
                    }
                }
                for c in s.input_channel_state.iter().chain(&s.result_subpartition_state) {
                    if let Some(d) = &c.delegate {
                        push(StreamRole::ChannelData, d, None);
                    }
                }
            }
        }
        out
    }

    /// The recorded path of a file handle, and whether it is relative; `None` for inline bytes.
    pub fn recorded_path(handle: &StreamStateHandle) -> Option<(&str, bool)> {
        match handle {
            StreamStateHandle::File { path, .. } | StreamStateHandle::SegmentFile { path, .. } => Some((path, false)),
            StreamStateHandle::RelativeFile { relative_path, .. } => Some((relative_path, true)),
            StreamStateHandle::KeyGroups(h) => Self::recorded_path(&h.delegate),
            StreamStateHandle::ByteStream { .. } | StreamStateHandle::EmptySegmentFile => None,
        }
    }

    /// Resolves a file handle to where the file is now (rules in the module doc); `Ok(None)` for
    /// inline handles.
    pub fn resolve(&self, handle: &StreamStateHandle) -> Result<Option<ResolvedFile>> {
        let Some((recorded, relative)) = Self::recorded_path(handle) else { return Ok(None) };
        let mk = |location: Location, rebased: bool| {
            let own = location.strip_prefix(&self.dir).is_some();
            ResolvedFile { recorded: recorded.to_owned(), location, relative, rebased, own }
        };
        if relative {
            let loc = self.dir.join(recorded);
            if !self.storage.exists(&loc)? {
                return Err(self.missing(&loc, recorded));
            }
            return Ok(Some(mk(loc, false)));
        }
        let original = Location::new(recorded);
        if !same_store(&original, &self.dir) {
            let candidates = self.rebase_candidates(&original);
            // Recorded on another file system or cluster (a copy from HDFS to S3, a local copy
            // of an S3 checkpoint): the copy beside the snapshot first, so a store that cannot
            // be reached from here (or needs other credentials) is not asked when it need not be.
            // The snapshot's own store failing is an error, not a missing file.
            for c in &candidates {
                if self.storage.exists(c)? {
                    return Ok(Some(mk(c.clone(), true)));
                }
            }
            let candidate = candidates.first().cloned();
            return match self.storage.exists(&original) {
                Ok(true) => Ok(Some(mk(original, false))),
                Ok(false) => Err(match candidate {
                    Some(c) => Error::NotFound { file: format!("{recorded} (also looked for it at {c})"), referenced_by: Some(self.metadata_location.to_string()) },
                    None => self.missing(&original, recorded),
                }),
                Err(e) => Err(Error::NotFound {
                    file: format!("{recorded} ({}could not look there: {e})", candidate.map(|c| format!("not at {c}; ")).unwrap_or_default()),
                    referenced_by: Some(self.metadata_location.to_string()),
                }),
            };
        }
        if self.storage.exists(&original)? {
            return Ok(Some(mk(original, false)));
        }
        let candidates = self.rebase_candidates(&original);
        for candidate in &candidates {
            if self.storage.exists(candidate)? {
                return Ok(Some(mk(candidate.clone(), true)));
            }
        }
        match candidates.first() {
            Some(candidate) => Err(Error::NotFound {
                file: format!("{recorded} (also looked for it at {candidate})"),
                referenced_by: Some(self.metadata_location.to_string()),
            }),
            None => Err(self.missing(&original, recorded)),
        }
    }

    /// Where a referenced file most likely is, without asking the storage: what
    /// [`Snapshot::files`] looks up all at once on object stores before resolving one by one.
    fn likely_location(&self, handle: &StreamStateHandle) -> Option<Location> {
        let (recorded, relative) = Self::recorded_path(handle)?;
        if relative {
            return Some(self.dir.join(recorded));
        }
        let original = Location::new(recorded);
        if same_store(&original, &self.dir) {
            Some(original)
        } else {
            self.rebase(&original)
        }
    }

    fn missing(&self, loc: &Location, recorded: &str) -> Error {
        let file = if loc.as_str() == recorded { recorded.to_owned() } else { format!("{loc} (recorded as {recorded})") };
        Error::NotFound { file, referenced_by: Some(self.metadata_location.to_string()) }
    }

    /// Where an absolute path recorded before the snapshot moved would be now (rule 3 of the
    /// module doc), whether or not anything is there.
    pub fn rebase(&self, original: &Location) -> Option<Location> {
        let comps = original.components();
        let own_name = self.dir.file_name();
        let anchor = comps.iter().rposition(|c| {
            // `dstl`: the changelog backend's files when `dstl.dfs.base-path` is the checkpoint
            // directory (Flink writes `<base>/<job id>/dstl/<uuid>`, beside `shared/`)
            *c == "shared"
                || *c == "taskowned"
                || *c == "dstl"
                || *c == own_name
                || is_checkpoint_dir_name(c)
                || c.starts_with("savepoint-")
        })?;
        let rest = comps[anchor..].join("/");
        // The snapshot's own directory maps onto itself; everything else onto its parent (the job
        // directory that holds chk-N, shared/ and taskowned/).
        if comps[anchor] == own_name {
            return Some(self.dir.join(&comps[anchor + 1..].join("/")));
        }
        Some(self.dir.parent()?.join(&rest))
    }

    /// Every place an absolute path recorded before the snapshot moved could be now, most likely
    /// first, whether or not anything is there: [`Snapshot::rebase`], then, for each of the
    /// snapshot's ancestors up to [`MOVED_TREE_LEVELS`] levels above its job directory, the
    /// ancestor joined with what follows the last component of the recorded path that has the
    /// ancestor's name. The whole tree around the snapshot moved: `/old/ckpts/<job A>/shared/x`,
    /// referenced by `/new/ckpts/<job B>/chk-5`, is `/new/ckpts/<job A>/shared/x` (the ancestor
    /// `ckpts`), and `/old/sp/savepoint-1/x` is `/new/sp/savepoint-1/x` when `sp` lies beside `ckpts`.
    pub fn rebase_candidates(&self, original: &Location) -> Vec<Location> {
        let mut out: Vec<Location> = self.rebase(original).into_iter().collect();
        let comps = original.components();
        let mut ancestor = self.dir.parent();
        for _ in 0..=MOVED_TREE_LEVELS {
            let Some(a) = ancestor else { break };
            let name = a.file_name();
            // The last component with the ancestor's name, not the file name itself.
            if let Some(i) = comps[..comps.len().saturating_sub(1)].iter().rposition(|c| *c == name && !name.is_empty()) {
                let candidate = a.join(&comps[i + 1..].join("/"));
                if candidate != *original && !out.contains(&candidate) {
                    out.push(candidate);
                }
            }
            ancestor = a.parent();
        }
        out
    }

    /// Every referenced file, resolved, with the operator and subtask that reference it, in file
    /// order. Fails on the first file that cannot be found.
    pub fn files(&self) -> Result<Vec<(StreamRef<'_>, ResolvedFile)>> {
        let mut cache: BTreeMap<String, ResolvedFile> = BTreeMap::new();
        let mut out = Vec::new();
        let streams = self.streams();
        if self.storage.is_object_store(&self.dir) {
            // One request per file, many in flight: the store remembers the answers.
            let mut likely: Vec<Location> = streams.iter().filter_map(|s| self.likely_location(s.handle)).collect();
            likely.sort();
            likely.dedup();
            let _ = self.storage.head_many(&likely);
        }
        for s in streams {
            let Some((recorded, _)) = Self::recorded_path(s.handle) else { continue };
            let resolved = match cache.get(recorded) {
                Some(r) => r.clone(),
                None => {
                    let Some(r) = self.resolve(s.handle)? else { continue };
                    cache.insert(recorded.to_owned(), r.clone());
                    r
                }
            };
            out.push((s, resolved));
        }
        Ok(out)
    }
}

/// Whether two locations are on the same store: both local, or both in one bucket, container or
/// name node.
fn same_store(a: &Location, b: &Location) -> bool {
    match (a.is_local(), b.is_local()) {
        (true, true) => true,
        (false, false) => match (crate::storage::url::parse(a), crate::storage::url::parse(b)) {
            (Ok(x), Ok(y)) => x.identity == y.identity,
            _ => a.scheme() == b.scheme(),
        },
        _ => false,
    }
}

/// Where a snapshot directory or a referenced file belongs: the job directory of a checkpoint
/// (`<job>/chk-N`) or of a file under `<job>/chk-N/`, `shared/`, `taskowned/` or `dstl/`; the
/// savepoint directory (`savepoint-*`) of a savepoint or its files. `None` outside Flink's layout.
pub fn home_dir(loc: &Location) -> Option<Location> {
    let comps = loc.components();
    let i = comps.iter().rposition(|c| *c == "shared" || *c == "taskowned" || *c == "dstl" || is_checkpoint_dir_name(c) || c.starts_with("savepoint-"))?;
    let keep = if comps[i].starts_with("savepoint-") { i + 1 } else { i };
    // Walk up the string itself, so a scheme or a leading `/` stays as it was.
    let mut l = loc.clone();
    for _ in keep..comps.len() {
        l = l.parent()?;
    }
    Some(l)
}

/// `chk-<digits>`, Flink's exclusive checkpoint directory name.
pub fn is_checkpoint_dir_name(name: &str) -> bool {
    name.strip_prefix("chk-").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn keyed_streams(
    k: &crate::metadata::handles::KeyedStateHandle,
) -> Vec<(StreamRole, &StreamStateHandle, Option<&str>)> {
    use crate::metadata::handles::KeyedStateHandle as K;
    match k {
        K::IncrementalRemote(h) => {
            let mut v = Vec::new();
            if let Some(m) = &h.meta_state_handle {
                v.push((StreamRole::KeyedMeta, m, None));
            }
            for (role, list) in [(StreamRole::Shared, &h.shared_state), (StreamRole::Private, &h.private_state)] {
                v.extend(list.iter().filter_map(|f| f.handle.as_ref().map(|s| (role, s, Some(f.local_path.as_str())))));
            }
            v
        }
        // A changelog handle materialized on RocksDB: its files keep their local names too.
        K::Changelog(h) => h.materialized.iter().chain(&h.non_materialized).flat_map(keyed_streams).collect(),
        other => other.streams().into_iter().map(|(r, s)| (r, s, None)).collect(),
    }
}
