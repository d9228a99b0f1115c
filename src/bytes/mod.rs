//! Byte-level decoding shared by every format: Flink writes big-endian Java `DataOutput` everywhere
//! (see `formats/README.md`), so there is one cursor type, not a generic endianness.

mod cursor;

pub use cursor::{decode_modified_utf8, encode_modified_utf8};

pub use cursor::Cursor;
