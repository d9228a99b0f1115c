//! Byte-level encoding shared by every format: Flink writes big-endian Java `DataOutput` everywhere
//! (see `formats/README.md`), so there is one cursor type for reading and one output trait for
//! writing, not a generic endianness.

mod cursor;
mod output;

pub use cursor::{decode_modified_utf8, encode_modified_utf8};

pub use cursor::Cursor;
pub use output::DataOutput;
