//! Errors of the RocksDB file readers, with typed positions (as gimli does it): the file, and
//! where in it: a byte offset, a place inside a block (the block's offset in the file and the
//! offset inside its uncompressed contents), or a place inside a MANIFEST record.

use std::fmt;

/// What a block is for; named in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Key/value entries.
    Data,
    /// The (top-level) index.
    Index,
    /// A partition of a two-level index.
    IndexPartition,
    /// The metaindex (names of the meta blocks).
    Metaindex,
    /// The table properties.
    Properties,
    /// Range tombstones.
    RangeDeletion,
    /// A compression dictionary.
    CompressionDictionary,
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockKind::Data => "data block",
            BlockKind::Index => "index block",
            BlockKind::IndexPartition => "index partition",
            BlockKind::Metaindex => "metaindex block",
            BlockKind::Properties => "properties block",
            BlockKind::RangeDeletion => "range-deletion block",
            BlockKind::CompressionDictionary => "compression dictionary",
        })
    }
}

/// Where in a file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A byte offset in the file.
    File(u64),
    /// A block as stored: `block` is its offset in the file (its trailer follows its `size`
    /// bytes).
    Block {
        /// What the block is.
        kind: BlockKind,
        /// Offset of the block in the file.
        block: u64,
    },
    /// Inside the (uncompressed) contents of a block.
    InBlock {
        /// What the block is.
        kind: BlockKind,
        /// Offset of the block in the file.
        block: u64,
        /// Offset inside the block's uncompressed contents.
        at: u64,
    },
    /// Inside a MANIFEST record (a `VersionEdit`).
    Record {
        /// Offset in the file of the record's first fragment header.
        record: u64,
        /// Offset inside the record's (reassembled) payload.
        at: u64,
    },
}

impl Position {
    /// The file offset this position is at or inside.
    pub fn file_offset(&self) -> u64 {
        match *self {
            Position::File(o) => o,
            Position::Block { block, .. } | Position::InBlock { block, .. } => block,
            Position::Record { record, .. } => record,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Position::File(o) => write!(f, "byte offset {o}"),
            Position::Block { kind, block } => write!(f, "the {kind} at byte offset {block}"),
            Position::InBlock { kind, block, at } => write!(f, "offset {at} of the {kind} at byte offset {block}"),
            Position::Record { record, at } => write!(f, "offset {at} of the MANIFEST record at byte offset {record}"),
        }
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The bytes are not what RocksDB writes (the message says what was expected).
    Corrupt(String),
    /// A block's (or the footer's, or a record's) checksum does not match its bytes.
    Checksum {
        /// The checksum type (`CRC32c`, `xxHash64`, …).
        kind: &'static str,
        /// The stored value.
        stored: u32,
        /// The value of the bytes.
        computed: u32,
    },
    /// Well-formed, but a feature Flink's RocksDB never writes and flinksnap does not read.
    Unsupported(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Corrupt(m) => f.write_str(m),
            Problem::Checksum { kind, stored, computed } => {
                write!(f, "{kind} checksum mismatch (stored 0x{stored:08x}, computed 0x{computed:08x}): the bytes were damaged")
            }
            Problem::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

/// A problem in a RocksDB file, with the file and the typed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// The file, as messages name it (the snapshot file, with its RocksDB name).
    pub file: String,
    /// Where.
    pub position: Position,
    /// What.
    pub problem: Problem,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} at {}", self.file, self.problem, self.position)
    }
}

impl std::error::Error for FormatError {}

/// An error of the RocksDB file readers: the bytes ([`FormatError`]) or reading them (storage).
#[derive(Debug)]
pub enum Error {
    /// The bytes.
    Format(Box<FormatError>),
    /// Reading them (storage, I/O, missing file).
    Storage(crate::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Format(e) => e.fmt(f),
            Error::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Self {
        Error::Storage(e)
    }
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Format(Box::new(e))
    }
}

impl From<Error> for crate::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Storage(e) => e,
            Error::Format(f) => {
                let kind = crate::error::DecodeErrorKind::Invalid(f.problem.to_string());
                let mut d = crate::error::DecodeError::new(kind, f.position.file_offset());
                match f.position {
                    Position::File(_) => {}
                    Position::Block { kind, .. } => d.context.push(kind.to_string()),
                    Position::InBlock { kind, at, .. } => d.context.push(format!("{kind}, offset {at} of its contents")),
                    Position::Record { at, .. } => d.context.push(format!("MANIFEST record, offset {at} of its payload")),
                }
                crate::Error::Decode { file: f.file, error: d }
            }
        }
    }
}

impl Error {
    /// The format error, if this is one.
    pub fn format(&self) -> Option<&FormatError> {
        match self {
            Error::Format(f) => Some(f),
            Error::Storage(_) => None,
        }
    }
}

/// Result of the RocksDB file readers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A [`FormatError`] of kind [`Problem::Corrupt`].
pub fn corrupt(file: &str, position: Position, what: impl Into<String>) -> Error {
    Error::from(FormatError { file: file.to_owned(), position, problem: Problem::Corrupt(what.into()) })
}

/// A [`FormatError`] of kind [`Problem::Unsupported`].
pub fn unsupported(file: &str, position: Position, what: impl Into<String>) -> Error {
    Error::from(FormatError { file: file.to_owned(), position, problem: Problem::Unsupported(what.into()) })
}
