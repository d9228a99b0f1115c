//! The durable short-term log (DSTL) as the changelog backend stores it: in-memory handles of
//! changes inline in `_metadata`, or change sets in files (`FsStateChangelogWriter`,
//! `StateChangeFormat`): a file is one compression flag byte, then the logical stream (Snappy
//! framed when flagged); each handle names the offset of its change set in that stream; a change
//! set is `i32` key groups, each `i32` changes, `i32` key group, then length-prefixed changes.
//! Spec: `formats/changelog.md`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, Error, Frame, Result, ValuePart};
use crate::metadata::handles::{ChangelogStateBackendHandle, KeyedStateHandle};
use crate::model::KeyGroupRange;
use crate::readers::source::OpenContext;
use crate::readers::stream::{snappy_decompress, StreamSource};

use super::changes::{ChangeSource, Log};

type R<T> = std::result::Result<T, DecodeError>;

/// The DSTL file's first byte when the change sets are Snappy-framed.
const COMPRESSED: u8 = 1;

/// A DSTL file's logical stream, read (and decompressed) once: its bytes, and what their
/// offsets count.
#[derive(Debug, Clone)]
struct LogicalStream {
    data: Arc<Vec<u8>>,
    frame: Frame,
    /// Offset (in `frame`) of `data[0]`.
    base: u64,
}

impl Log {
    /// Reads every non-materialized handle of `h`, in order.
    pub(super) fn read(&mut self, cx: &OpenContext<'_>, h: &ChangelogStateBackendHandle) -> Result<()> {
        // A DSTL file holds the change sets of many operators: read (and decompress) it once.
        let mut files: HashMap<String, LogicalStream> = HashMap::new();
        for (n, handle) in h.non_materialized.iter().enumerate() {
            match handle {
                KeyedStateHandle::InMemoryChangelog(m) => {
                    let source = self.sources.len();
                    self.sources.push(ChangeSource {
                        name: format!("{} (in-memory state changes, non-materialized handle [{n}])", cx.snapshot.metadata_location),
                        stream: None,
                        frame: Frame::Within(ValuePart::Change),
                    });
                    for (i, (kg, bytes)) in m.changes.iter().enumerate() {
                        self.record(*kg, &mut Cursor::within(bytes, ValuePart::Change), source, h.key_group_range)
                            .map_err(|e| Error::decode(&self.sources[source].name, e.context(format!("change [{i}]"))))?;
                    }
                }
                KeyedStateHandle::ChangelogStream(s) => {
                    for (offset, stream) in &s.handles {
                        let src = StreamSource::open(cx.snapshot, stream)?;
                        let name = src.name();
                        let logical = match files.get(&name) {
                            Some(f) => f.clone(),
                            None => {
                                let f = logical_stream(&src)?;
                                files.insert(name.clone(), f.clone());
                                f
                            }
                        };
                        let source = self.sources.len();
                        self.sources.push(ChangeSource { name, stream: cx.stream_index(stream), frame: logical.frame });
                        self.change_set(&logical.data, *offset, logical.frame, logical.base, source, h.key_group_range)
                            .map_err(|e| Error::decode(&self.sources[source].name, e.context(format!("change set at offset {offset}"))))?;
                    }
                }
                other => {
                    return Err(Error::corrupt(
                        cx.snapshot.metadata_location.as_str(),
                        format!("operator {}: a {} among the state changes of a changelog handle", cx.operator_id, other.class_name()),
                    ))
                }
            }
        }
        Ok(())
    }

    /// One change set (`StateChangeFormat.writeChangeSet`) at `offset` of a DSTL file's logical
    /// stream `data`, whose first byte is at `base` in `frame`.
    pub(super) fn change_set(&mut self, data: &[u8], offset: u64, frame: Frame, base: u64, source: usize, range: KeyGroupRange) -> R<()> {
        let start = usize::try_from(offset).ok().filter(|&o| o <= data.len()).ok_or_else(|| {
            DecodeError::in_frame(
                DecodeErrorKind::Invalid(format!("change set offset {offset} lies past the end of the {}-byte stream", data.len())),
                frame,
                base,
            )
        })?;
        let mut c = Cursor::in_frame(&data[start..], frame, base + offset);
        // A group is at least its count and key group.
        let groups = c.count("number of key groups", 8)?;
        for _ in 0..groups {
            let n = c.count("number of changes", 4)?;
            let kg = c.i32("key group")?;
            for _ in 0..n {
                let len_at = c.position();
                let n = c.count("state change", 1)?;
                let mut change = c.sub(n, "state change")?;
                debug_assert_eq!(change.position(), len_at + 4);
                self.record(kg, &mut change, source, range)?;
            }
        }
        Ok(())
    }
}

/// A DSTL file: the flag byte, then the logical stream, decompressed when flagged. Uncompressed,
/// offsets are file offsets (the stream starts after the flag byte); compressed, they count the
/// bytes decompressed from the Snappy stream that starts after the flag.
fn logical_stream(src: &StreamSource) -> Result<LogicalStream> {
    let name = src.name();
    let raw = src.read_range(0..src.size())?;
    let flag = *raw.first().ok_or_else(|| {
        Error::decode(&name, DecodeError::new(DecodeErrorKind::Truncated { what: "compression flag", needed: 1, available: 0 }, src.file_offset(0)))
    })?;
    let after_flag = src.file_offset(1);
    Ok(if flag == COMPRESSED {
        let out = snappy_decompress(&raw[1..])
            .map_err(|e| Error::decode(&name, DecodeError::new(DecodeErrorKind::Invalid(format!("bad snappy stream: {e}")), after_flag)))?;
        LogicalStream { data: Arc::new(out), frame: Frame::Decompressed { block: after_flag }, base: 0 }
    } else {
        LogicalStream { data: Arc::new(raw[1..].to_vec()), frame: Frame::File, base: after_flag }
    })
}
