//! Errors.
//!
//! Two layers, as gimli does it: [`DecodeError`] is what a byte reader knows (what was expected,
//! at which [`Position`], inside which logical structure); [`Error`] adds the file it came from.
//! Every decode error a user sees therefore names file, offset and what was expected — and what
//! the offset counts: a byte of the file, a byte of a decompressed block, or a byte inside one
//! stored key or value whose place in a file is not known (RocksDB tables).
//!
//! [`Error::Unsupported`] is distinct from corruption: what flinksnap cannot read (in this build,
//! or yet) is never reported as a broken snapshot.

use std::fmt;

use serde::Serialize;

/// Where in the bytes something is. An offset means nothing without saying what it counts; the
/// variant says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// A byte offset in the file (for state inline in `_metadata`: in `_metadata`; for a segment
    /// of a file-merging checkpoint: in the segment's file).
    FileOffset {
        /// The offset.
        offset: u64,
    },
    /// An offset in the bytes decompressed from a compressed block: one Snappy stream (Flink
    /// compresses each key group, each run of operator-state elements and each state-change
    /// file as a stream of its own).
    DecompressedOffset {
        /// Byte offset in the file where the compressed block starts.
        block: u64,
        /// Offset in the block's decompressed bytes.
        offset: u64,
    },
    /// An offset inside one stored item whose place in a file is not known: a key or a value
    /// read from RocksDB tables, a state change held inline in `_metadata`.
    WithinValue {
        /// Which item.
        part: ValuePart,
        /// Offset from its first byte.
        offset: u64,
    },
}

/// The stored item a [`Position::WithinValue`] counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValuePart {
    /// A RocksDB key (key-group prefix, key, namespace, user key).
    Key,
    /// A RocksDB value.
    Value,
    /// One logged state change (changelog backend).
    Change,
}

impl Position {
    /// A byte offset in the file.
    pub fn file(offset: u64) -> Position {
        Position::FileOffset { offset }
    }

    /// The offset, whatever it counts.
    pub fn offset(&self) -> u64 {
        match *self {
            Position::FileOffset { offset } | Position::DecompressedOffset { offset, .. } | Position::WithinValue { offset, .. } => offset,
        }
    }

    /// The nearest byte offset in the file: exact for a file offset, the start of the
    /// compressed block for a decompressed offset, unknown inside a stored value.
    pub fn file_offset(&self) -> Option<u64> {
        match *self {
            Position::FileOffset { offset } => Some(offset),
            Position::DecompressedOffset { block, .. } => Some(block),
            Position::WithinValue { .. } => None,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Position::FileOffset { offset } => write!(f, "byte offset {offset} (0x{offset:x})"),
            Position::DecompressedOffset { block, offset } => {
                write!(f, "offset {offset} of the bytes decompressed from the Snappy stream at byte offset {block}")
            }
            Position::WithinValue { part, offset } => {
                let what = match part {
                    ValuePart::Key => "the stored key",
                    ValuePart::Value => "the stored value",
                    ValuePart::Change => "the state change",
                };
                write!(f, "offset {offset} of {what}")
            }
        }
    }
}

/// What the offsets of a byte reader count ([`crate::bytes::Cursor`]): the frame turns a raw
/// offset into a [`Position`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Frame {
    /// Nothing: the error is about what the bytes mean as a whole (e.g. a state registered
    /// without a value serializer), not about one place in them.
    #[default]
    Unplaced,
    /// Bytes of the file.
    File,
    /// Bytes decompressed from the compressed block at this file offset.
    Decompressed {
        /// Where the compressed block starts in the file.
        block: u64,
    },
    /// Bytes of one stored item.
    Within(ValuePart),
}

impl Frame {
    /// The position of raw offset `offset` in this frame.
    pub fn position(self, offset: u64) -> Option<Position> {
        match self {
            Frame::Unplaced => None,
            Frame::File => Some(Position::FileOffset { offset }),
            Frame::Decompressed { block } => Some(Position::DecompressedOffset { block, offset }),
            Frame::Within(part) => Some(Position::WithinValue { part, offset }),
        }
    }
}

/// A serializer snapshot flinksnap cannot interpret ([`DecodeErrorKind::UnknownSerializer`]),
/// boxed: it is rare and keeps every `Result` small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSerializer {
    /// What, and why it cannot be skipped here.
    pub what: String,
    /// The snapshot class.
    pub class: String,
    /// Where its payload starts (same frame as the error's offset).
    pub payload: u64,
}

/// What was wrong with the bytes, without saying where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The data ended before a field was complete.
    #[error("unexpected end of data reading {what}: needed {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes that were left.
        available: u64,
    },
    /// A magic number did not match.
    #[error("bad magic number 0x{found:08x} for {what}, expected 0x{expected:08x}")]
    BadMagic {
        /// The structure the magic opens.
        what: &'static str,
        /// The magic Flink writes.
        expected: u32,
        /// What the file holds.
        found: u32,
    },
    /// A `_metadata` version this reader does not know.
    #[error("unsupported metadata version {0} (flinksnap reads versions 2 to 7)")]
    UnsupportedMetadataVersion(i32),
    /// A state-handle type byte outside Flink's table, or not allowed at this place.
    #[error("unexpected {what} type byte {found}")]
    BadHandleType {
        /// Which kind of handle was expected.
        what: &'static str,
        /// The byte found.
        found: u8,
    },
    /// A field holds a value Flink never writes there.
    #[error("invalid {what}: {value}")]
    InvalidValue {
        /// The field.
        what: &'static str,
        /// Its value.
        value: i64,
    },
    /// A count or length larger than the bytes that remain could hold.
    #[error("{what} of {count} cannot fit in the {available} bytes left")]
    LengthTooLarge {
        /// The count or length field.
        what: &'static str,
        /// Its value.
        count: u64,
        /// Bytes that were left.
        available: u64,
    },
    /// A Java modified UTF-8 string that does not decode.
    #[error("invalid modified UTF-8 in {what}")]
    InvalidUtf {
        /// The field.
        what: &'static str,
    },
    /// Something flinksnap cannot interpret (yet, or in this build), not corruption: an unknown
    /// serializer, a change that needs the job's code to replay. [`Error::decode`] turns it into
    /// [`Error::Unsupported`].
    #[error("{what}")]
    Unsupported {
        /// What cannot be read, and why.
        what: String,
        /// The Flink class concerned, when there is one.
        class: Option<String>,
    },
    /// A serializer snapshot flinksnap cannot interpret (an unknown class, or an unknown version of
    /// a known one), whose payload carries no length. The error's offset is where the snapshot
    /// starts (its class name); `payload` is where its class-specific payload starts: the place
    /// a reader re-synchronising after it (`readers::serializers::resync`) needs. Not corruption:
    /// [`Error::decode`] turns it into [`Error::Unsupported`].
    #[error("{}", .0.what)]
    UnknownSerializer(Box<UnknownSerializer>),
    /// Bytes left over where a structure must end exactly.
    #[error("{count} unexpected trailing bytes after {what}")]
    TrailingBytes {
        /// The structure.
        what: &'static str,
        /// How many bytes were left.
        count: u64,
    },
    /// Anything else, with a message.
    #[error("{0}")]
    Invalid(String),
}

/// A decode failure at an absolute byte offset, with the logical path of structures it was in
/// (outermost first), e.g. `operator 8409…/subtask 0/managed keyed state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong.
    pub kind: DecodeErrorKind,
    /// Offset where the failing field starts, counted as `frame` says.
    pub offset: u64,
    /// What `offset` counts.
    pub frame: Frame,
    /// Logical path, outermost first.
    pub context: Vec<String>,
}

impl DecodeError {
    /// A new error at byte offset `offset` of the file.
    pub fn new(kind: DecodeErrorKind, offset: u64) -> Self {
        DecodeError { kind, offset, frame: Frame::File, context: Vec::new() }
    }

    /// A new error at `offset` counted in `frame`.
    pub fn in_frame(kind: DecodeErrorKind, frame: Frame, offset: u64) -> Self {
        DecodeError { kind, offset, frame, context: Vec::new() }
    }

    /// A new error at `position`.
    pub fn at(kind: DecodeErrorKind, position: Position) -> Self {
        let frame = match position {
            Position::FileOffset { .. } => Frame::File,
            Position::DecompressedOffset { block, .. } => Frame::Decompressed { block },
            Position::WithinValue { part, .. } => Frame::Within(part),
        };
        DecodeError { kind, offset: position.offset(), frame, context: Vec::new() }
    }

    /// A new error about the bytes as a whole, at no particular place.
    pub fn unplaced(kind: DecodeErrorKind) -> Self {
        DecodeError { kind, offset: 0, frame: Frame::Unplaced, context: Vec::new() }
    }

    /// Where the error is; `None` when it is about no particular place.
    pub fn position(&self) -> Option<Position> {
        self.frame.position(self.offset)
    }

    /// Adds an enclosing structure to the logical path (called on the way out).
    pub fn context(mut self, what: impl Into<String>) -> Self {
        self.context.insert(0, what.into());
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(p) = self.position() {
            write!(f, " at {p}")?;
        }
        if !self.context.is_empty() {
            write!(f, " in {}", self.context.join(" / "))?;
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}

/// Adds context to a `Result<_, DecodeError>` on the way out.
pub trait ResultExt<T> {
    /// Adds `what` as the enclosing structure of any error.
    fn context_with(self, what: impl FnOnce() -> String) -> Result<T, DecodeError>;
}

impl<T> ResultExt<T> for Result<T, DecodeError> {
    #[inline]
    fn context_with(self, what: impl FnOnce() -> String) -> Result<T, DecodeError> {
        self.map_err(|e| e.context(what()))
    }
}

/// flinksnap's error: every variant names the file (or snapshot) it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file's bytes are not what Flink writes.
    #[error("{file}: {error}")]
    Decode {
        /// The file.
        file: String,
        /// What, where.
        #[source]
        error: DecodeError,
    },
    /// A file or directory does not exist.
    #[error("{file}: not found{}", referenced_by.as_ref().map(|r| format!(" (referenced by {r})")).unwrap_or_default())]
    NotFound {
        /// The missing file.
        file: String,
        /// Who needs it, e.g. the `_metadata` that references it.
        referenced_by: Option<String>,
    },
    /// An I/O error on a file.
    #[error("{file}: {error}")]
    Io {
        /// The file.
        file: String,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// A snapshot that contradicts itself, or state that is not what Flink writes, where no byte
    /// position says more: a handle of the wrong kind at its place, subtasks that disagree, a
    /// range read past a stream's end. Corruption, as [`Error::Decode`] is.
    #[error("{file}: {what}")]
    Corrupt {
        /// The file (or `_metadata`).
        file: String,
        /// What is wrong.
        what: String,
    },
    /// Writing an output file failed in a library that is not plain I/O (Parquet, CSV, JSON).
    #[error("{file}: {error}")]
    Write {
        /// The file being written.
        file: String,
        /// The library's error.
        #[source]
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// What flinksnap cannot read, in this build or yet (e.g. RocksDB native state without the
    /// `rocksdb` feature, an unknown serializer): not corruption, and never reported as such.
    #[error("{what}")]
    Unsupported {
        /// What cannot be read, and why; names the file or snapshot.
        what: String,
        /// The Flink class concerned (a state handle, a serializer snapshot), when there is one.
        class: Option<String>,
    },
    /// The input is not something flinksnap can work on (e.g. a directory without `_metadata`).
    #[error("{0}")]
    Invalid(String),
    /// A request to a remote store (S3, GCS, Azure, HDFS) failed for good: after retries, or
    /// with an answer that retrying cannot change (denied, bad credentials). Never holds a secret.
    #[error("{url}: {operation} failed{}: {message}", status.map(|s| format!(" with HTTP status {s}")).unwrap_or_default())]
    Storage {
        /// The object or directory URL.
        url: String,
        /// What was done: `GET`, `HEAD`, `PUT`, `LIST`, `DELETE`, `COPY`, ...
        operation: &'static str,
        /// The HTTP status of the last answer, when there was one.
        status: Option<u16>,
        /// What the store said (credentials and signatures removed).
        message: String,
    },
    /// A file that must not be overwritten already exists (a snapshot's `_metadata`).
    #[error("{file}: already exists")]
    AlreadyExists {
        /// The file.
        file: String,
    },
}

impl Error {
    /// An I/O error, mapping "not found" to [`Error::NotFound`].
    pub fn io(file: impl Into<String>, source: std::io::Error) -> Self {
        let file = file.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound { file, referenced_by: None }
        } else {
            Error::Io { file, error: source }
        }
    }

    /// A decode error in `file`; one of kind [`DecodeErrorKind::Unsupported`] becomes
    /// [`Error::Unsupported`] (naming the file and where).
    pub fn decode(file: impl Into<String>, source: DecodeError) -> Self {
        let file = file.into();
        match &source.kind {
            DecodeErrorKind::Unsupported { class, .. } => {
                let class = class.clone();
                return Error::Unsupported { what: format!("{file}: {source}"), class };
            }
            DecodeErrorKind::UnknownSerializer(u) => {
                let class = Some(u.class.clone());
                return Error::Unsupported { what: format!("{file}: {source}"), class };
            }
            _ => {}
        }
        Error::Decode { file, error: source }
    }

    /// State of `file` that is not what Flink writes, with no byte position.
    pub fn corrupt(file: impl Into<String>, what: impl Into<String>) -> Self {
        Error::Corrupt { file: file.into(), what: what.into() }
    }

    /// Writing `file` failed in `error`'s library.
    pub fn write(file: impl Into<String>, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Write { file: file.into(), error: Box::new(error) }
    }

    /// Something flinksnap cannot read (yet, or in this build).
    pub fn unsupported(what: impl Into<String>, class: Option<&str>) -> Self {
        Error::Unsupported { what: what.into(), class: class.map(str::to_owned) }
    }

    /// Whether this is [`Error::Unsupported`]: flinksnap's limit, not the snapshot's fault.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::Unsupported { .. })
    }

    /// Where a decode error is, when it is one.
    pub fn position(&self) -> Option<Position> {
        match self {
            Error::Decode { error, .. } => error.position(),
            _ => None,
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
