//! Keyed state of key-grouped handles (types 3, 12, 7): the canonical full-snapshot stream of
//! savepoints (and of RocksDB full checkpoints up to 1.15) and the heap backend's checkpoint
//! format. Specs: `formats/canonical-stream.md`, `formats/heap-checkpoint.md`.
//!
//! Structure:
//! - [`KeyGroupsReader`] (here): one handle — its serialization proxy, where each key group
//!   starts, which of the two formats the stream holds;
//! - `stream`: one key group, stored entry by stored entry through a window of its bytes
//!   ([`KeyGroupEntries`]), and how each format frames stored entries in a key group;
//! - per-format decoders of one stored entry: `kv` (the RocksDB key/value layout, shared with the
//!   RocksDB reader through [`KeyedDecoder::decode_kv`]) and `heap` (the heap checkpoint's
//!   triples), over the per-state decoders of `decoder`.
//!
//! Reading is per key group and, inside a key group, one stored entry at a time: memory holds
//! the window ([`WINDOW`], or one stored entry when larger) and the entries of one stored entry
//! (one key's map in the heap format), never a whole key group, whatever the state size or the
//! max parallelism.

mod decoder;
mod heap;
mod heap_resync;
mod kv;
mod stream;

use std::sync::Arc;

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, Error, Frame, Result};
use crate::metadata::handles::{KeyGroupsStateHandle, StreamStateHandle};
use crate::model::{Entry, OperatorId, Origin};
use crate::readers::meta::{read_keyed_backend_meta, KeyedBackendMeta};
use crate::readers::source::{KeyGroupReader, OpenContext};
use crate::readers::stream::StreamSource;
use crate::readers::undecodable::Undecodable;

pub use decoder::KeyedDecoder;
pub use stream::{KeyGroupEntries, WINDOW};
use stream::{Input, Progress, RangeRead};

/// How a key-grouped stream lays out its key groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedStreamFormat {
    /// FLIP-41 unified format: RocksDB-layout key/value pairs.
    Canonical,
    /// The heap backend's checkpoint format: per state, (namespace, key, value) triples.
    HeapCheckpoint,
}

/// Reads the keyed state of one key-groups handle.
#[derive(Debug)]
pub struct KeyGroupsReader {
    source: StreamSource,
    handle: KeyGroupsStateHandle,
    meta: KeyedBackendMeta,
    /// `None` until the first key group decided it (checkpoint handles before metadata V4).
    format: Option<KeyedStreamFormat>,
    decoder: Arc<KeyedDecoder>,
    /// (key group, start, end) of each key group with data, in key-group order (stream offsets).
    spans: Vec<(u32, u64, u64)>,
    /// Subtask and stream of every entry.
    origin: Origin,
    /// The key group being read ([`KeyGroupReader`]).
    current: Option<KeyGroupEntries>,
}

impl KeyGroupsReader {
    /// Opens the handle's stream and reads its serialization proxy (nothing more).
    pub(crate) fn open(cx: &OpenContext<'_>, handle: &KeyGroupsStateHandle) -> Result<Self> {
        let source = StreamSource::open(cx.snapshot, &handle.delegate)?;
        let origin = Origin { subtask: Some(cx.subtask), stream: cx.stream_index(&handle.delegate), position: None };
        let mut reader = KeyGroupsReader::from_source(source, handle, cx.operator_id, cx.max_parallelism, origin)?;
        reader.keep_raw(cx.raw);
        reader.keep_values(cx.values);
        Ok(reader)
    }

    /// Keeps only the stored bytes `raw` asks for in the entries read (all by default). Call it
    /// before reading.
    pub fn keep_raw(&mut self, raw: crate::model::RawParts) {
        Arc::make_mut(&mut self.decoder).keep_raw(raw);
    }

    /// Builds only the decoded parts `values` asks for in the entries read (all by default).
    /// Call it before reading.
    pub fn keep_values(&mut self, values: crate::model::ValueParts) {
        Arc::make_mut(&mut self.decoder).keep_values(values);
    }

    /// Opens a key-groups handle whose stream is `source` (for an operator of `max_parallelism`
    /// key groups), reading its serialization proxy; entries carry `origin`.
    pub fn from_source(source: StreamSource, handle: &KeyGroupsStateHandle, operator_id: OperatorId, max_parallelism: u32, origin: Origin) -> Result<Self> {
        let size = source.size();
        let at = |o: u64| source.file_offset(o);
        let first = handle.offsets.iter().copied().filter(|&o| o > 0).min().map_or(size, |o| o as u64);
        if first > size {
            return Err(Error::decode(
                source.name(),
                DecodeError::new(DecodeErrorKind::Invalid(format!("key-group offset {first} lies past the end of the stream ({size} bytes)")), at(size)),
            ));
        }
        let head = source.read_range(0..first)?;
        let meta = read_keyed_backend_meta(&mut Cursor::with_base(&head, at(0)))
            .map_err(|e| Error::decode(source.name(), e.context("keyed backend meta data")))?;
        let decoder = Arc::new(KeyedDecoder::new(operator_id, max_parallelism, &meta).map_err(|e| Error::decode(source.name(), e))?);

        // Key groups with data, ordered by offset; each runs to the next offset or the file end.
        let mut by_offset: Vec<(u32, u64)> = handle
            .offsets
            .iter()
            .enumerate()
            .filter(|(_, &o)| o > 0)
            .map(|(i, &o)| (handle.key_group_range.start.saturating_add(i as u32), o as u64))
            .collect();
        by_offset.sort_by_key(|&(kg, o)| (o, kg));
        let mut spans = Vec::with_capacity(by_offset.len());
        for (i, &(kg, start)) in by_offset.iter().enumerate() {
            let end = by_offset.get(i + 1).map_or(size, |&(_, o)| o);
            if start > size || end < start {
                return Err(Error::decode(
                    source.name(),
                    DecodeError::new(DecodeErrorKind::Invalid(format!("offset {start} of key group {kg} is outside the stream ({size} bytes)")), at(start.min(size))),
                ));
            }
            spans.push((kg, start, end));
        }
        spans.sort_by_key(|&(kg, _, _)| kg);
        let format = handle.is_savepoint().then_some(KeyedStreamFormat::Canonical);
        Ok(KeyGroupsReader { source, handle: handle.clone(), meta, format, decoder, spans, origin, current: None })
    }

    /// The serialization proxy: states and serializers.
    pub fn meta(&self) -> &KeyedBackendMeta {
        &self.meta
    }

    /// The stream format (deciding it from the first key group if the handle does not say).
    pub fn format(&mut self) -> Result<KeyedStreamFormat> {
        if let Some(f) = self.format {
            return Ok(f);
        }
        // Before metadata V4 a key-groups *checkpoint* handle holds either the heap checkpoint
        // format or (RocksDB full checkpoints up to 1.15) the canonical stream, and nothing in
        // the metadata says which: the first key group is parsed both ways (entry by entry, so
        // the probe holds no more than reading does).
        // A parse that leaves parts undecodable (values of an unknown serializer) is taken only
        // when the other format does not read the key group completely.
        let mut format = KeyedStreamFormat::HeapCheckpoint;
        if let Some(kg) = self.key_groups_with_data().next() {
            match self.check_key_group(kg, KeyedStreamFormat::HeapCheckpoint) {
                Ok(true) => {}
                Ok(false) => {
                    if matches!(self.check_key_group(kg, KeyedStreamFormat::Canonical), Ok(true)) {
                        format = KeyedStreamFormat::Canonical;
                    }
                }
                Err(heap_err) => match self.check_key_group(kg, KeyedStreamFormat::Canonical) {
                    Ok(_) => format = KeyedStreamFormat::Canonical,
                    Err(_) => return Err(heap_err),
                },
            }
        }
        self.format = Some(format);
        Ok(format)
    }

    /// The handle being read.
    pub fn handle(&self) -> &KeyGroupsStateHandle {
        &self.handle
    }

    /// Key groups that hold data, ascending.
    pub fn key_groups_with_data(&self) -> impl Iterator<Item = u32> + '_ {
        self.spans.iter().map(|&(kg, _, _)| kg)
    }

    /// Every entry of key group `kg` (empty when it holds none), collected: holds all of the key
    /// group's decoded entries at once; [`KeyGroupsReader::key_group_entries`] streams them.
    pub fn read_key_group(&mut self, kg: u32) -> Result<Vec<Entry>> {
        self.key_group_entries(kg)?.collect()
    }

    /// Decodes key group `kg` to its end in `format`, keeping nothing: whether it read every
    /// entry (no part left undecodable).
    fn check_key_group(&self, kg: u32, format: KeyedStreamFormat) -> Result<bool> {
        let mut it = self.entries_in(kg, format)?;
        it.by_ref().try_for_each(|e| e.map(drop))?;
        Ok(it.notes.is_empty())
    }

    /// The entries of key group `kg`, decoded one stored entry at a time while its bytes are
    /// read (and decompressed) in windows of [`WINDOW`] bytes. Empty when the key group holds
    /// none.
    pub fn key_group_entries(&mut self, kg: u32) -> Result<KeyGroupEntries> {
        let format = self.format()?;
        self.entries_in(kg, format)
    }

    fn entries_in(&self, kg: u32, format: KeyedStreamFormat) -> Result<KeyGroupEntries> {
        let file = self.source.name();
        let mut entries = KeyGroupEntries {
            decoder: self.decoder.clone(),
            kg,
            window: WINDOW,
            input: None,
            eof: true,
            data: Vec::new(),
            base: 0,
            frame: Frame::File,
            pos: 0,
            progress: Progress::Done,
            file,
            origin: self.origin,
            pending: std::collections::VecDeque::new(),
            notes: Vec::new(),
        };
        let Some(&(_, start, end)) = self.spans.iter().find(|&&(k, _, _)| k == kg) else { return Ok(entries) };
        // The heap checkpoint format repeats the key group before its (possibly compressed) data.
        let skip = match format {
            KeyedStreamFormat::Canonical => {
                entries.progress = Progress::CanonicalStart;
                0
            }
            KeyedStreamFormat::HeapCheckpoint => {
                let head = self.source.read_range(start..(start + 4).min(end))?;
                let mut c = Cursor::with_base(&head, self.source.file_offset(start));
                let stored = c.i32("key group").map_err(|e| Error::decode(&entries.file, e.context(format!("key group {kg}"))))?;
                if stored as i64 != kg as i64 {
                    return Err(Error::decode(
                        &entries.file,
                        DecodeError::new(DecodeErrorKind::Invalid(format!("key group {stored} stored where {kg} was expected")), self.source.file_offset(start)),
                    ));
                }
                entries.progress = Progress::Heap { states_left: self.decoder.states() };
                4
            }
        };
        let data_at = self.source.file_offset(start + skip);
        let raw = RangeRead { source: self.source.clone(), pos: start + skip, end };
        if self.meta.compressed {
            // Offsets count decompressed bytes of the key group's Snappy stream. The decoder
            // reads chunk headers and bodies one by one: buffer them.
            entries.input = Some(Input::Decompressed(Box::new(snap::read::FrameDecoder::new(std::io::BufReader::with_capacity(64 * 1024, raw)))));
            entries.frame = Frame::Decompressed { block: data_at };
        } else {
            entries.input = Some(Input::Stored(raw));
            entries.base = data_at;
        }
        entries.eof = false;
        Ok(entries)
    }
}

impl KeyGroupReader for KeyGroupsReader {
    fn meta(&self) -> &KeyedBackendMeta {
        &self.meta
    }

    fn key_groups(&mut self) -> Result<Vec<u32>> {
        Ok(self.key_groups_with_data().collect())
    }

    fn start(&mut self, kg: u32) -> Result<()> {
        self.current = None;
        self.current = Some(self.key_group_entries(kg)?);
        Ok(())
    }

    fn next_entry(&mut self) -> Option<Result<Entry>> {
        self.current.as_mut()?.next()
    }

    fn stored_bytes(&self) -> Option<Vec<(u32, u64)>> {
        Some(self.spans.iter().map(|&(kg, start, end)| (kg, end - start)).collect())
    }

    fn take_undecodable(&mut self) -> Vec<Undecodable> {
        let Some(current) = self.current.as_mut() else { return Vec::new() };
        let mut out = Vec::new();
        for mut u in current.notes.drain(..) {
            u.key_groups = 1;
            u.file.get_or_insert_with(|| self.source.name());
            Undecodable::merge_into(&mut out, u);
        }
        out
    }
}

/// Whether a stream handle is one this module reads.
pub fn is_key_groups(h: &StreamStateHandle) -> bool {
    !matches!(h, StreamStateHandle::EmptySegmentFile)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::metadata::handles::KeyedStateHandle;
    use crate::model::StateKind;
    use crate::snapshot::Snapshot;
    use crate::storage::LocalStorage;

    fn open(snapshot: &Snapshot, op: &crate::metadata::OperatorState, h: &KeyGroupsStateHandle) -> Result<KeyGroupsReader> {
        KeyGroupsReader::from_source(StreamSource::open(snapshot, &h.delegate)?, h, op.operator_id, op.max_parallelism, Origin::default())
    }

    fn metadata_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                metadata_files(&p, out);
            } else if p.file_name().is_some_and(|n| n == "_metadata") {
                out.push(p);
            }
        }
    }

    /// Every key group of every key-groups handle in `testdata/` decodes to the same entries
    /// whatever the window: with windows of a few bytes every stored entry (and the key group's
    /// end) straddles a refill, which must resume exactly where the step started.
    #[test]
    fn tiny_windows_decode_what_one_window_does() {
        let mut files = Vec::new();
        metadata_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata"), &mut files);
        files.sort();
        let (mut groups, mut entries) = (0, 0);
        for f in files {
            let snapshot = Snapshot::open(Arc::new(LocalStorage), f.to_str().unwrap()).unwrap();
            for op in &snapshot.metadata.operators {
                for st in &op.subtasks {
                    let Some(KeyedStateHandle::KeyGroups(h)) = st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()) else { continue };
                    let mut reader = open(&snapshot, op, h).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                    for kg in reader.key_groups_with_data().collect::<Vec<_>>() {
                        let want = reader.read_key_group(kg).unwrap();
                        for window in [1, 2, 3, 5, 8, 13, 100] {
                            let got: Vec<Entry> = reader
                                .key_group_entries(kg)
                                .unwrap()
                                .with_window(window)
                                .collect::<Result<_>>()
                                .unwrap_or_else(|e| panic!("{} key group {kg} window {window}: {e}", f.display()));
                            // compared as text: a NaN (SQL state holds some) is never == itself
                            assert!(format!("{got:?}") == format!("{want:?}"), "{} key group {kg}: window {window} decodes differently", f.display());
                        }
                        groups += 1;
                        entries += want.len();
                    }
                }
            }
        }
        assert!(groups > 100 && entries > 1000, "only {groups} key groups, {entries} entries found in testdata/");
    }

    /// A key group cut short fails the same way, with the same message, whatever the window.
    #[test]
    fn truncation_errors_do_not_depend_on_the_window() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/flink-2.3.0");
        let mut checked = 0;
        for case in ["heap-savepoint-canonical", "heap-checkpoint", "heap-checkpoint-compressed", "rocksdb-savepoint-canonical"] {
            let mut files = Vec::new();
            metadata_files(&root.join(case), &mut files);
            let src = files.first().unwrap_or_else(|| panic!("no {case} in testdata/flink-2.3.0")).parent().unwrap();
            let tmp = tempfile::tempdir().unwrap();
            for e in std::fs::read_dir(src).unwrap().flatten() {
                std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
            }
            let snapshot = Snapshot::open(Arc::new(LocalStorage), tmp.path().to_str().unwrap()).unwrap();
            for op in &snapshot.metadata.operators {
                let Some(KeyedStateHandle::KeyGroups(h)) = op.subtasks.first().and_then(|st| st.state.as_ref()).and_then(|s| s.managed_keyed_state.as_ref()) else { continue };
                let StreamStateHandle::RelativeFile { .. } = &h.delegate else { continue };
                let reader = open(&snapshot, op, h).unwrap();
                let (last, start, end) = *reader.spans.last().unwrap();
                // cut the file inside its last key group (which runs to the end of the file)
                let file = reader.source.name();
                let orig = std::fs::read(&file).unwrap();
                assert_eq!(end, orig.len() as u64);
                std::fs::write(&file, &orig[..(start + (end - start) / 2) as usize]).unwrap();
                let mut reader = open(&snapshot, op, h).unwrap();
                let one = reader.key_group_entries(last).unwrap().collect::<Result<Vec<_>>>().map(|v| v.len());
                let tiny = reader.key_group_entries(last).unwrap().with_window(3).collect::<Result<Vec<_>>>().map(|v| v.len());
                let (one, tiny) = (one.unwrap_err().to_string(), tiny.unwrap_err().to_string());
                assert_eq!(one, tiny, "{case}");
                assert!(one.contains("byte offset"), "{case}: {one}");
                std::fs::write(&file, &orig).unwrap();
                checked += 1;
            }
        }
        assert!(checked >= 8, "only {checked} handles cut");
    }

    /// Every entry of the uncompressed key-grouped fixtures names the file and the byte offset
    /// where its stored entry starts, read back from the file: the canonical stream's key
    /// (after its length, key-group prefix and possibly the run-end bit), the heap checkpoint's
    /// namespace and key (a map entry: its user key).
    #[test]
    fn origins_point_at_the_stored_entries() {
        use crate::error::Position;
        use crate::readers::entries::{Selection, SnapshotEntries};
        let mut files = Vec::new();
        metadata_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/flink-2.3.0"), &mut files);
        files.sort();
        let (mut canonical, mut heap, mut compressed) = (0, 0, 0);
        for f in files {
            let snapshot = Snapshot::open(Arc::new(LocalStorage), f.to_str().unwrap()).unwrap();
            let key_groups = snapshot.metadata.operators.iter().flat_map(|o| &o.subtasks).all(|st| {
                st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()).is_none_or(|h| matches!(h, KeyedStateHandle::KeyGroups(_)))
            });
            if !key_groups {
                continue;
            }
            let mut cache: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
            for e in SnapshotEntries::new(&snapshot, Selection::default()) {
                let e = e.unwrap();
                let sub = e.origin.subtask.unwrap_or_else(|| panic!("{}: no subtask in {:?}", f.display(), e.origin));
                let file = snapshot.entry_file(&e).unwrap_or_else(|| panic!("{}: no file for {e:?}", f.display()));
                let bytes = cache.entry(file.clone()).or_insert_with(|| std::fs::read(&file).unwrap());
                let Some(Position::FileOffset { offset }) = e.origin.position else {
                    assert!(matches!(e.origin.position, Some(Position::DecompressedOffset { .. })), "{}: {:?}", f.display(), e.origin);
                    compressed += 1;
                    continue;
                };
                let at = &bytes[offset as usize..];
                if !e.kind.is_keyed() {
                    continue;
                }
                let op = &snapshot.metadata.operators[sub.operator];
                let Some(KeyedStateHandle::KeyGroups(h)) = op.subtasks[sub.subtask].state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()) else { unreachable!() };
                let timestamp = match e.value {
                    crate::model::value::Value::Int(t) => (t ^ i64::MIN).to_be_bytes().to_vec(),
                    _ => Vec::new(),
                };
                // In 2.3.0 key-grouped checkpoints are heap checkpoints, savepoints canonical.
                if h.is_savepoint() {
                    // The canonical stream: i32 key length, key-group prefix, key, namespace, ...
                    let prefix = if op.max_parallelism > 128 { 2 } else { 1 };
                    let key = &at[4..];
                    let after_prefix = &key[prefix..];
                    let want = if e.kind == StateKind::Timer { &after_prefix[8..] } else { after_prefix };
                    assert!(want.starts_with(&e.raw.key), "{} {} {:?}: canonical key at {offset}", f.display(), e.state, e.key);
                    canonical += 1;
                } else {
                    let want: Vec<u8> = match (e.kind, &e.raw.user_key) {
                        (StateKind::Map, Some(uk)) => uk.clone(),
                        (StateKind::Timer, _) => [timestamp, e.raw.key.clone()].concat(),
                        _ => [e.raw.namespace.clone(), e.raw.key.clone()].concat(),
                    };
                    assert!(at.starts_with(&want), "{} {} {:?}: heap entry at {offset}", f.display(), e.state, e.key);
                    heap += 1;
                }
            }
        }
        assert!(canonical > 100 && heap > 100 && compressed > 100, "checked {canonical} canonical, {heap} heap, {compressed} compressed entries");
    }

}
