//! Errors.
//!
//! Two layers, as gimli does it: [`DecodeError`] is what a byte reader knows (what was expected,
//! at which absolute byte offset, inside which logical structure); [`Error`] adds the file it came
//! from. Every decode error a user sees therefore names file, offset and what was expected.

use std::fmt;

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
    /// Absolute byte offset in the file where the failing field starts.
    pub offset: u64,
    /// Logical path, outermost first.
    pub context: Vec<String>,
}

impl DecodeError {
    /// A new error at `offset`.
    pub fn new(kind: DecodeErrorKind, offset: u64) -> Self {
        DecodeError { kind, offset, context: Vec::new() }
    }

    /// Adds an enclosing structure to the logical path (called on the way out).
    pub fn context(mut self, what: impl Into<String>) -> Self {
        self.context.insert(0, what.into());
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte offset {} (0x{:x})", self.kind, self.offset, self.offset)?;
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
        error: std::io::Error,
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

    /// A decode error in `file`.
    pub fn decode(file: impl Into<String>, source: DecodeError) -> Self {
        Error::Decode { file: file.into(), error: source }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
