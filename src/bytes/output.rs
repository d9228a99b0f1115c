//! The writing mirror of [`Cursor`](super::Cursor): Java `DataOutput` encodings appended to a
//! `Vec<u8>` (big-endian, `writeUTF` modified UTF-8), as Flink's `DataOutputStream` writes them.

use super::encode_modified_utf8;

/// Java `DataOutput` encodings, appended to a byte vector.
pub trait DataOutput {
    /// One byte.
    fn put_u8(&mut self, v: u8);
    /// A Java boolean: `0x01` or `0x00`.
    fn put_bool(&mut self, v: bool);
    /// Big-endian `i16`.
    fn put_i16(&mut self, v: i16);
    /// Big-endian `i32`.
    fn put_i32(&mut self, v: i32);
    /// Big-endian `u32`.
    fn put_u32(&mut self, v: u32);
    /// Big-endian `i64`.
    fn put_i64(&mut self, v: i64);
    /// An `i32` length, then the bytes.
    fn put_len_prefixed(&mut self, bytes: &[u8]) -> Result<(), String>;
    /// Java `writeUTF`: `u16` byte length, then modified UTF-8. Fails (as Java's
    /// `UTFDataFormatException`) when the encoding exceeds 65535 bytes.
    fn put_utf(&mut self, s: &str) -> Result<(), String>;
}

impl DataOutput for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }

    fn put_bool(&mut self, v: bool) {
        self.push(u8::from(v));
    }

    fn put_i16(&mut self, v: i16) {
        self.extend_from_slice(&v.to_be_bytes());
    }

    fn put_i32(&mut self, v: i32) {
        self.extend_from_slice(&v.to_be_bytes());
    }

    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }

    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_be_bytes());
    }

    fn put_len_prefixed(&mut self, bytes: &[u8]) -> Result<(), String> {
        let n = i32::try_from(bytes.len()).map_err(|_| format!("{} bytes do not fit an i32 length", bytes.len()))?;
        self.put_i32(n);
        self.extend_from_slice(bytes);
        Ok(())
    }

    fn put_utf(&mut self, s: &str) -> Result<(), String> {
        let enc = encode_modified_utf8(s);
        let n = u16::try_from(enc.len())
            .map_err(|_| format!("string of {} bytes is too long for Java writeUTF (at most 65535): {:.40}…", enc.len(), s))?;
        self.extend_from_slice(&n.to_be_bytes());
        self.extend_from_slice(&enc);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Cursor;

    #[test]
    fn round_trips_through_the_cursor() {
        let mut b = Vec::new();
        b.put_u8(7);
        b.put_bool(true);
        b.put_i16(-2);
        b.put_i32(-3);
        b.put_i64(i64::MIN);
        b.put_utf("a\u{0}é😀").unwrap();
        b.put_len_prefixed(&[1, 2, 3]).unwrap();
        let mut c = Cursor::new(&b);
        assert_eq!(c.u8("a").unwrap(), 7);
        assert!(c.bool("b").unwrap());
        assert_eq!(c.i16("c").unwrap(), -2);
        assert_eq!(c.i32("d").unwrap(), -3);
        assert_eq!(c.i64("e").unwrap(), i64::MIN);
        assert_eq!(c.utf("f").unwrap(), "a\u{0}é😀");
        assert_eq!(c.len_prefixed("g").unwrap(), &[1, 2, 3]);
        assert!(c.is_empty());
    }

    #[test]
    fn overlong_utf_is_refused() {
        let mut b = Vec::new();
        assert!(b.put_utf(&"x".repeat(65536)).is_err());
        assert!(b.put_utf(&"x".repeat(65535)).is_ok());
    }
}
