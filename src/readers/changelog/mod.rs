//! Keyed state of the changelog state backend (FLIP-158): a `ChangelogStateBackendHandle` is the
//! *materialized* state (ordinary keyed handles of the delegate backend, opened through the one
//! handle-kind dispatch, [`crate::readers::source`]) plus the *non-materialized* state changes
//! logged since (the DSTL), replayed on top in log order. Spec: `formats/changelog.md`.
//!
//! Structure, one job per file:
//! - `dstl`: the DSTL's storage format (in-memory handles, files with a compression flag, change
//!   sets by key group);
//! - `changes`: one change decoded (METADATA registrations, timer changes, data changes indexed
//!   by key group);
//! - `replay`: a key group's changes applied to its materialized entries;
//! - `java`: the Java-serialized `StateTtlConfig` a METADATA change holds, skipped;
//! - this module: `ChangelogReader`, the keyed-source reader of a changelog handle.
//!
//! Memory: the changes are read once and indexed by key group (they are bounded by design: only
//! what happened since the last materialization). A key group is then streamed from the
//! materialized handles: entries no change touches pass straight through, the few that are
//! touched are held, the key group's changes applied to them, and the results emitted.

mod changes;
mod dstl;
mod java;
mod replay;

use std::collections::{BTreeMap, VecDeque};

use crate::error::{Error, Result};
use crate::metadata::handles::ChangelogStateBackendHandle;
use crate::model::{Entry, OperatorId, Origin, RawParts};
use crate::readers::meta::{KeyedBackendMeta, VALUE_SERIALIZER};
use crate::readers::source::{open_reader, KeyGroupReader, OpenContext};

use changes::{Change, Log};
use replay::{Context, Materialized, Replay};

/// The keyed-source reader of one `ChangelogStateBackendHandle`.
#[derive(Debug)]
pub(crate) struct ChangelogReader<'a> {
    operator_id: OperatorId,
    materialized: Vec<Materialized<'a>>,
    /// The materialized proxy plus the states registered since.
    meta: KeyedBackendMeta,
    log: Log,
    /// Timers set by the changes, by key group.
    timers_by_kg: BTreeMap<u32, Vec<(usize, Vec<u8>)>>,
    /// The subtask, for the origin of entries the log made.
    origin: Origin,
    /// The key group being replayed.
    current: Option<Replay>,
}

impl<'a> ChangelogReader<'a> {
    /// Opens the materialized handles (their proxies only) and reads (and indexes) every state
    /// change.
    pub(crate) fn open(cx: &OpenContext<'a>, handle: &'a ChangelogStateBackendHandle) -> Result<Self> {
        // The replay merges materialized entries with logged changes by their stored bytes:
        // it reads them whole, whatever the caller keeps. Their decoded parts it does not read
        // (a timer's timestamp aside, which every mode keeps): they are built as the caller asks.
        let whole = OpenContext { states: cx.states.clone(), raw: RawParts::All, ..*cx };
        let mut materialized = Vec::new();
        for h in &handle.materialized {
            materialized.push((h.key_group_range(), open_reader(&whole, h, true)?));
        }
        let mut log = Log::default();
        for (_, r) in &materialized {
            for m in &r.meta().states {
                if !log.by_name.contains_key(&m.name) {
                    log.register(m.clone());
                }
            }
        }
        log.read(cx, handle)?;
        let meta = match materialized.first() {
            Some((_, r)) => {
                let mut meta = r.meta().clone();
                for s in log.states.iter().skip(meta.states.len()) {
                    meta.states.push(s.meta.clone());
                }
                meta
            }
            // Before the first materialization only a timer queue's serializer names the key
            // serializer; keyed state alone records none.
            None => {
                let key_serializer = log
                    .states
                    .iter()
                    .find_map(|s| s.meta.serializer(VALUE_SERIALIZER).and_then(|v| v.timer_key_namespace()).map(|(k, _)| k.clone()))
                    .ok_or_else(|| {
                        Error::unsupported(
                            format!(
                                "{}: changelog state without a materialized part: its key serializer is not recorded",
                                cx.what()
                            ),
                            Some("ChangelogStateBackendHandle"),
                        )
                    })?;
                KeyedBackendMeta {
                    version: 6,
                    compressed: false,
                    key_serializer,
                    states: log.states.iter().map(|s| s.meta.clone()).collect(),
                    // Not recorded: a writer that needs the exact bytes must refuse.
                    key_serializer_raw: Vec::new(),
                    raw: Vec::new(),
                    unreadable: None,
                }
            }
        };
        let mut timers_by_kg: BTreeMap<u32, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
        for ((state, element), fate) in &log.timers {
            if let Some(kg) = fate {
                timers_by_kg.entry(*kg).or_default().push((*state, element.clone()));
            }
        }
        Ok(ChangelogReader {
            operator_id: cx.operator_id,
            materialized,
            meta,
            log,
            timers_by_kg,
            origin: Origin { subtask: Some(cx.subtask), stream: None, position: None },
            current: None,
        })
    }
}

impl KeyGroupReader for ChangelogReader<'_> {
    fn meta(&self) -> &KeyedBackendMeta {
        &self.meta
    }

    fn key_groups(&mut self) -> Result<Vec<u32>> {
        let mut key_groups = Vec::new();
        for (_, r) in &mut self.materialized {
            key_groups.extend(r.key_groups()?);
        }
        key_groups.extend(self.log.changes.keys());
        key_groups.extend(self.timers_by_kg.keys());
        key_groups.sort_unstable();
        key_groups.dedup();
        Ok(key_groups)
    }

    /// Each key group is replayed once: its changes are handed over to the replay.
    fn start(&mut self, kg: u32) -> Result<()> {
        self.current = None;
        let mut started = VecDeque::new();
        for (i, (range, r)) in self.materialized.iter_mut().enumerate() {
            if range.contains(kg) {
                r.start(kg)?;
                started.push_back(i);
            }
        }
        let changes: Vec<Change> = self.log.changes.remove(&kg).unwrap_or_default();
        let new_timers = self.timers_by_kg.remove(&kg).unwrap_or_default();
        let cx = Context { operator_id: self.operator_id, key_serializer: &self.meta.key_serializer, log: &self.log, origin: self.origin };
        self.current = Some(Replay::new(&cx, kg, changes, new_timers, started)?);
        Ok(())
    }

    fn next_entry(&mut self) -> Option<Result<Entry>> {
        let cx = Context { operator_id: self.operator_id, key_serializer: &self.meta.key_serializer, log: &self.log, origin: self.origin };
        self.current.as_mut()?.next(&cx, &mut self.materialized)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::changes::{op, COMMON_KEY_GROUP};
    use super::*;
    use crate::error::{DecodeError, DecodeErrorKind, Frame};
    use crate::metadata::handles::KeyedStateHandle;
    use crate::model::{KeyGroupRange, SubtaskRef};
    use crate::readers::meta::{BackendStateType, StateMetaInfo};
    use crate::snapshot::Snapshot;

    type R<T> = std::result::Result<T, DecodeError>;

    /// A change set of one group: `(kg, [records])`.
    fn change_set(groups: &[(i32, Vec<Vec<u8>>)]) -> Vec<u8> {
        let mut out = (groups.len() as i32).to_be_bytes().to_vec();
        for (kg, records) in groups {
            out.extend((records.len() as i32).to_be_bytes());
            out.extend(kg.to_be_bytes());
            for r in records {
                out.extend((r.len() as i32).to_be_bytes());
                out.extend(r);
            }
        }
        out
    }

    /// Reads `data` as the logical stream of an uncompressed DSTL file (offsets count the flag
    /// byte before it).
    fn read(data: &[u8]) -> R<Log> {
        let mut log = Log::default();
        log.change_set(data, 0, Frame::File, 1, 0, KeyGroupRange::new(0, 128))?;
        Ok(log)
    }

    /// On the real changelog fixtures the log changes what the materialized part holds (so the
    /// dump tests, which match Flink's expected contents, exercise the replay): entries are
    /// removed, changed and added.
    #[test]
    fn replay_changes_the_materialized_state_of_real_fixtures() {
        use crate::storage::LocalStorage;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut checked = 0;
        // 2.3.0 (1.20.5 wrote the same handles and state-change bytes; testdata/README.md)
        let version = "2.3.0";
        for case in ["heap-changelog-checkpoint", "heap-changelog-memory-checkpoint", "rocksdb-changelog-checkpoint"] {
            let dir = root.join(format!("flink-{version}")).join(case);
            let job = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
            let chk = std::fs::read_dir(&job).unwrap().flatten().map(|e| e.path()).find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("chk-")).unwrap();
            let snapshot = Snapshot::open(Arc::new(LocalStorage), chk.to_str().unwrap()).unwrap();
            let (mut removed, mut added) = (0, 0);
            for (i, op) in snapshot.metadata.operators.iter().enumerate() {
                for (j, st) in op.subtasks.iter().enumerate() {
                    let Some(top @ KeyedStateHandle::Changelog(h)) = st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()) else { continue };
                    let cx = OpenContext {
                        snapshot: &snapshot,
                        operator_id: op.operator_id,
                        max_parallelism: op.max_parallelism,
                        subtask: SubtaskRef { operator: i, subtask: j },
                        top,
                        states: Vec::new(),
                        key_groups: None,
                        raw: RawParts::All,
                        values: crate::model::ValueParts::All,
                    };
                    let mut reader = ChangelogReader::open(&cx, h).unwrap();
                    let key = |e: &Entry| format!("{} {:?} {:?} {:?} {:?}", e.state, e.raw.key, e.raw.namespace, e.raw.user_key, e.raw.value);
                    let mut before: Vec<String> = Vec::new();
                    for (_, m) in &mut reader.materialized {
                        for kg in m.key_groups().unwrap() {
                            m.start(kg).unwrap();
                            while let Some(e) = m.next_entry() {
                                before.push(key(&e.unwrap()));
                            }
                        }
                    }
                    // The materialized readers were read: open them afresh.
                    let mut reader = ChangelogReader::open(&cx, h).unwrap();
                    let mut after: Vec<String> = Vec::new();
                    for kg in reader.key_groups().unwrap() {
                        reader.start(kg).unwrap();
                        while let Some(e) = reader.next_entry() {
                            let e = e.unwrap();
                            assert_eq!(e.origin.subtask, Some(SubtaskRef { operator: i, subtask: j }));
                            after.push(key(&e));
                        }
                    }
                    removed += before.iter().filter(|b| !after.contains(b)).count();
                    added += after.iter().filter(|a| !before.contains(a)).count();
                }
            }
            assert!(removed > 0 && added > 0, "{version} {case}: the log changed nothing ({removed} removed, {added} added)");
            checked += 1;
        }
        assert_eq!(checked, 3);
    }

    #[test]
    fn empty_change_set_reads() {
        let log = read(&change_set(&[])).unwrap();
        assert!(log.changes.is_empty());
    }

    #[test]
    fn truncated_change_set_names_the_offset() {
        let full = change_set(&[(5, vec![vec![op::CLEAR, 0, 1, 9, 9]])]);
        // cut inside the record: its length field (data byte 12, file offset 13: offsets count
        // the flag byte) promises more than is left
        let e = read(&full[..full.len() - 2]).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::LengthTooLarge { what: "state change", count: 5, available: 3 }), "{e}");
        assert_eq!(e.position(), Some(crate::error::Position::file(1 + 12)));
        // every cut fails, none panics
        for cut in 0..full.len() {
            assert!(read(&full[..cut]).is_err(), "cut {cut}");
        }
        // a count no file could hold is refused before allocating
        let mut huge = full.clone();
        huge[..4].copy_from_slice(&0x7fff_ffffi32.to_be_bytes());
        let e = read(&huge).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::LengthTooLarge { .. }), "{e}");
        assert_eq!(e.offset, 1);
        let mut neg = full.clone();
        neg[8..12].copy_from_slice(&(-7i32).to_be_bytes());
        assert!(read(&neg).is_err());
    }

    #[test]
    fn offsets_of_compressed_logs_count_decompressed_bytes() {
        let full = change_set(&[(3, vec![vec![42, 0, 1]])]);
        let mut log = Log::default();
        let e = log.change_set(&full, 0, Frame::Decompressed { block: 1 }, 0, 0, KeyGroupRange::new(0, 128)).unwrap_err();
        // i32 groups + i32 n + i32 kg + i32 len = 16 decompressed bytes in
        assert_eq!(e.position(), Some(crate::error::Position::DecompressedOffset { block: 1, offset: 16 }));
        assert!(e.to_string().contains("offset 16 of the bytes decompressed from the Snappy stream at byte offset 1"), "{e}");
    }

    #[test]
    fn unknown_operation_and_unregistered_state_are_errors_with_offsets() {
        let e = read(&change_set(&[(3, vec![vec![42, 0, 1]])])).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::InvalidValue { what: "state change operation", value: 42 }), "{e}");
        // flag byte + i32 groups + i32 n + i32 kg + i32 len = 17
        assert_eq!(e.offset, 17);
        let e = read(&change_set(&[(3, vec![vec![op::SET, 0, 7, 1, 2]])])).unwrap_err();
        assert!(e.to_string().contains("state id 7 was not registered"), "{e}");
        assert_eq!(e.offset, 18);
        // a data change must name a key group
        let mut log = Log::default();
        log.ids.insert(7, 0);
        log.register(StateMetaInfo {
            name: "s".into(),
            backend_type: BackendStateType::KeyValue,
            options: vec![("KEYED_STATE_TYPE".into(), "VALUE".into())],
            serializers: Vec::new(),
            raw: Vec::new(),
            position: None,
        });
        let e = log.change_set(&change_set(&[(-1, vec![vec![op::SET, 0, 7]])]), 0, Frame::File, 1, 0, KeyGroupRange::new(0, 128)).unwrap_err();
        assert!(e.to_string().contains("SET data change in the meta-data key group"), "{e}");
    }

    #[test]
    fn offsets_past_the_stream_and_truncated_metadata_are_errors() {
        let data = change_set(&[]);
        let mut log = Log::default();
        let e = log.change_set(&data, 99, Frame::File, 1, 0, KeyGroupRange::new(0, 1)).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        // METADATA with a version and nothing else
        let e = read(&change_set(&[(COMMON_KEY_GROUP, vec![vec![op::METADATA, 0, 0, 0, 7]])])).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::Truncated { .. }), "{e}");
        assert_eq!(e.offset, 22);
        let e = read(&change_set(&[(COMMON_KEY_GROUP, vec![vec![op::METADATA, 0, 0, 0, 2]])])).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::InvalidValue { what: "meta info version", value: 2 }), "{e}");
    }
}
