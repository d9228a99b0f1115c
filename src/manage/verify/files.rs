//! Invariant 2 of `verify`: every file a handle references exists (resolved as
//! [`Snapshot::resolve`] does) and has the size `_metadata` records for it.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Error;
use crate::metadata::handles::{StreamRole, StreamStateHandle};
use crate::snapshot::{Snapshot, StreamRef};
use crate::storage::Location;

use super::{describe, display_path, FindingKind, Severity, Verifier};

impl Verifier<'_> {
    /// Invariant 2, once per referenced file; returns the recorded paths of files that failed.
    pub(super) fn files(&mut self, s: &Snapshot) -> BTreeSet<String> {
        // Group the streams by the file they name, in file order.
        let mut order: Vec<&str> = Vec::new();
        let mut by_file: BTreeMap<&str, Vec<StreamRef<'_>>> = BTreeMap::new();
        let streams = s.streams();
        for r in &streams {
            let Some((recorded, _)) = Snapshot::recorded_path(r.handle) else { continue };
            let e = by_file.entry(recorded).or_default();
            if e.is_empty() {
                order.push(recorded);
            }
            e.push(*r);
        }
        let mut failed = BTreeSet::new();
        for recorded in order {
            let refs = &by_file[recorded];
            let first = refs[0];
            let op = first.operator.map(|i| &s.metadata.operators[i]);
            let mut who = match op {
                Some(o) => format!("operator {}", crate::manage::operator_label(s, &o.operator_id, self.uids)),
                None => "the snapshot".to_owned(),
            };
            if let Some(st) = first.subtask {
                who.push_str(&format!(" subtask {st}"));
            }
            who.push_str(&format!(" ({}", role_name(first.role)));
            if let Some(l) = first.local_name {
                who.push_str(&format!(" {l}"));
            }
            who.push(')');
            if refs.len() > 1 {
                who.push_str(&format!(" and {} more", refs.len() - 1));
            }
            // What the file must hold: its recorded size, or the end of its furthest segment.
            // A state-change log (DSTL) file starts with a compression flag byte that its recorded
            // size leaves out (seen in real Flink 1.20 and 2.3 changelog checkpoints).
            let dstl_flag = u64::from(refs.iter().all(|r| r.role == StreamRole::Changelog));
            let expected = refs.iter().map(|r| expected_len(r.handle)).max().unwrap_or(0) + dstl_flag;
            let exact = !refs.iter().any(|r| matches!(r.handle, StreamStateHandle::SegmentFile { .. }));
            let mut f = self.finding(s, op, first.subtask, Severity::Error, FindingKind::MissingFile);
            let (name, finding) = match s.resolve(first.handle) {
                Ok(Some(rf)) => {
                    let name = display_path(s, &rf.location);
                    f.file = Some(rf.location.to_string());
                    match s.storage().head(&rf.location) {
                        Ok(meta) => {
                            self.totals.files += 1;
                            self.totals.file_bytes += meta.size;
                            if (exact && meta.size != expected) || meta.size < expected {
                                f.kind = FindingKind::SizeMismatch;
                                f.set_position(Some(crate::error::Position::file(meta.size.min(expected))));
                                f.message = if meta.size < expected {
                                    format!("{}: truncated: {} bytes, _metadata records {expected} (referenced by {who})", rf.location, meta.size)
                                } else {
                                    format!("{}: {} bytes, _metadata records {expected} (referenced by {who})", rf.location, meta.size)
                                };
                                (name, Some(f))
                            } else {
                                (name, None)
                            }
                        }
                        Err(e) => {
                            f.kind = FindingKind::UnreadableFile;
                            f.message = format!("{e} (referenced by {who})");
                            (name, Some(f))
                        }
                    }
                }
                Ok(None) => continue,
                Err(e) if e.is_unsupported() => {
                    f.severity = Severity::Info;
                    f.kind = FindingKind::Unsupported;
                    f.file = Some(recorded.to_owned());
                    f.message = format!("not checked (unsupported): {e}");
                    (recorded.to_owned(), Some(f))
                }
                Err(e) => {
                    let (file, _, message) = describe(&e);
                    if !matches!(e, Error::NotFound { .. }) {
                        f.kind = FindingKind::UnreadableFile;
                    }
                    // Name the file where it should be now: beside `_metadata`, or where the
                    // recorded absolute path re-bases to.
                    let (name, expected_at) = match Snapshot::recorded_path(first.handle) {
                        Some((p, true)) => (p.to_owned(), Some(s.dir.join(p))),
                        _ => match s.rebase(&Location::new(recorded)) {
                            Some(l) => (display_path(s, &l), Some(l)),
                            None => (recorded.to_owned(), None),
                        },
                    };
                    let found = matches!(e, Error::NotFound { .. });
                    f.file = Some(match (found, expected_at) {
                        (true, Some(l)) => l.to_string(),
                        _ => file.unwrap_or_else(|| recorded.to_owned()),
                    });
                    f.message = format!("{message}; needed by {who}");
                    (name, Some(f))
                }
            };
            if finding.as_ref().is_some_and(|f| f.severity == Severity::Error) {
                failed.insert(recorded.to_owned());
            }
            self.check("files", &name, finding.into_iter().collect());
        }
        failed
    }
}

fn expected_len(h: &StreamStateHandle) -> u64 {
    match h {
        StreamStateHandle::SegmentFile { start, size, .. } => start + size,
        StreamStateHandle::KeyGroups(k) => expected_len(&k.delegate),
        other => other.size(),
    }
}

fn role_name(r: crate::metadata::handles::StreamRole) -> &'static str {
    use crate::metadata::handles::StreamRole as R;
    match r {
        R::KeyedData => "keyed state",
        R::KeyedMeta => "RocksDB meta data",
        R::Shared => "shared SST",
        R::Private => "private RocksDB file",
        R::Changelog => "state changelog",
        R::OperatorData => "operator state",
        R::ChannelData => "channel state",
        R::Coordinator => "coordinator state",
        R::Master => "master state",
    }
}

