//! A zero-copy big-endian reader over a byte slice that always knows its absolute file offset.

use crate::error::{DecodeError, DecodeErrorKind, Frame, ValuePart};

/// Reads Java `DataInput` encodings from a slice. Every error carries the absolute offset of the
/// field that failed, typed by what the offsets count (the cursor's [`Frame`]: file bytes,
/// decompressed bytes, or the bytes of one stored item), and every length is checked against what
/// remains before anything is allocated.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    /// Absolute offset of `data[0]` (in the frame).
    base: u64,
    /// What the offsets count.
    frame: Frame,
}

type R<T> = Result<T, DecodeError>;

impl<'a> Cursor<'a> {
    /// A cursor over a whole file.
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0, base: 0, frame: Frame::File }
    }

    /// A cursor over a part of a file that starts at absolute offset `base`.
    pub fn with_base(data: &'a [u8], base: u64) -> Self {
        Cursor { data, pos: 0, base, frame: Frame::File }
    }

    /// A cursor over bytes decompressed from the compressed block at file offset `block`;
    /// `data[0]` is decompressed byte `base`.
    pub fn decompressed(data: &'a [u8], block: u64, base: u64) -> Self {
        Cursor { data, pos: 0, base, frame: Frame::Decompressed { block } }
    }

    /// A cursor over one stored item (a RocksDB key or value, an inline state change) whose place
    /// in a file is not known: offsets count from its first byte.
    pub fn within(data: &'a [u8], part: ValuePart) -> Self {
        Cursor { data, pos: 0, base: 0, frame: Frame::Within(part) }
    }

    /// A cursor over `data` counted in `frame`, `data[0]` at `base`.
    pub fn in_frame(data: &'a [u8], frame: Frame, base: u64) -> Self {
        Cursor { data, pos: 0, base, frame }
    }

    /// What the offsets count.
    pub fn frame(&self) -> Frame {
        self.frame
    }

    /// Absolute offset of the next byte.
    pub fn position(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// An error of `kind` at the current position.
    pub fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::in_frame(kind, self.frame, self.position())
    }

    /// An error of `kind` at absolute offset `offset` (of this cursor's frame).
    pub fn error_at(&self, kind: DecodeErrorKind, offset: u64) -> DecodeError {
        DecodeError::in_frame(kind, self.frame, offset)
    }

    /// The next `n` bytes, borrowed.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> R<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(DecodeErrorKind::Truncated {
                what,
                needed: n as u64,
                available: self.remaining() as u64,
            }));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> R<[u8; N]> {
        let b = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// The next `n` bytes without consuming them, if that many are left.
    pub fn peek(&self, n: usize) -> Option<&'a [u8]> {
        self.data.get(self.pos..self.pos.checked_add(n)?)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize, what: &'static str) -> R<()> {
        self.bytes(n, what).map(|_| ())
    }

    /// A cursor over the next `n` bytes, which this cursor skips.
    pub fn sub(&mut self, n: usize, what: &'static str) -> R<Cursor<'a>> {
        let base = self.position();
        let data = self.bytes(n, what)?;
        Ok(Cursor { data, pos: 0, base, frame: self.frame })
    }

    /// Everything that is left, borrowed.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.data[self.pos..];
        self.pos = self.data.len();
        out
    }

    /// One unsigned byte.
    pub fn u8(&mut self, what: &'static str) -> R<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A Java boolean: any non-zero byte is true (as `DataInputStream.readBoolean`).
    pub fn bool(&mut self, what: &'static str) -> R<bool> {
        Ok(self.u8(what)? != 0)
    }

    /// Big-endian `i16`.
    pub fn i16(&mut self, what: &'static str) -> R<i16> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    /// Big-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> R<u16> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// Big-endian `i32`.
    pub fn i32(&mut self, what: &'static str) -> R<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    /// Big-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> R<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Big-endian `i64`.
    pub fn i64(&mut self, what: &'static str) -> R<i64> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// Big-endian IEEE-754 `f32`.
    pub fn f32(&mut self, what: &'static str) -> R<f32> {
        Ok(f32::from_be_bytes(self.array(what)?))
    }

    /// Big-endian IEEE-754 `f64`.
    pub fn f64(&mut self, what: &'static str) -> R<f64> {
        Ok(f64::from_be_bytes(self.array(what)?))
    }

    /// An `i32` that must be `>= 0`.
    pub fn non_negative_i32(&mut self, what: &'static str) -> R<u32> {
        let at = self.position();
        let v = self.i32(what)?;
        u32::try_from(v)
            .map_err(|_| self.error_at(DecodeErrorKind::InvalidValue { what, value: v.into() }, at))
    }

    /// An `i64` that must be `>= 0`.
    pub fn non_negative_i64(&mut self, what: &'static str) -> R<u64> {
        let at = self.position();
        let v = self.i64(what)?;
        u64::try_from(v).map_err(|_| self.error_at(DecodeErrorKind::InvalidValue { what, value: v }, at))
    }

    /// An `i32` element count, checked against what remains assuming each element takes at least
    /// `min_element_size` bytes, so a corrupt count can never make the caller allocate much.
    pub fn count(&mut self, what: &'static str, min_element_size: usize) -> R<usize> {
        let at = self.position();
        let n = self.non_negative_i32(what)? as usize;
        self.check_fits(what, n, min_element_size, at)?;
        Ok(n)
    }

    /// Checks that `n` elements of at least `min_element_size` bytes can still follow.
    pub fn check_fits(&self, what: &'static str, n: usize, min_element_size: usize, at: u64) -> R<()> {
        let needed = (n as u64).saturating_mul(min_element_size as u64);
        if needed > self.remaining() as u64 {
            return Err(self.error_at(
                DecodeErrorKind::LengthTooLarge { what, count: n as u64, available: self.remaining() as u64 },
                at,
            ));
        }
        Ok(())
    }

    /// An `i32`-length-prefixed byte array.
    pub fn len_prefixed(&mut self, what: &'static str) -> R<&'a [u8]> {
        let n = self.count(what, 1)?;
        self.bytes(n, what)
    }

    /// A Java `writeUTF` string: `u16` byte length, then modified UTF-8.
    pub fn utf(&mut self, what: &'static str) -> R<String> {
        let at = self.position();
        let len = self.u16(what)? as usize;
        let raw = self.bytes(len, what)?;
        decode_modified_utf8(raw).ok_or_else(|| self.error_at(DecodeErrorKind::InvalidUtf { what }, at))
    }

    /// The bytes consumed since absolute offset `from` (clamped to this cursor's data).
    pub fn consumed_since(&self, from: u64) -> &'a [u8] {
        let start = (from.saturating_sub(self.base) as usize).min(self.pos);
        &self.data[start..self.pos]
    }

    /// Fails unless every byte was consumed.
    pub fn expect_end(&self, what: &'static str) -> R<()> {
        if self.remaining() > 0 {
            return Err(self.error(DecodeErrorKind::TrailingBytes { what, count: self.remaining() as u64 }));
        }
        Ok(())
    }
}

/// Decodes Java's modified UTF-8 (CESU-8 with `C0 80` for NUL). A raw `00` byte is refused:
/// `writeUTF` never writes one (readers that re-synchronise after an unknown serializer rely on
/// strings being exactly what Java writes).
pub fn decode_modified_utf8(raw: &[u8]) -> Option<String> {
    if raw.contains(&0) {
        return None;
    }
    // Plain ASCII (the usual case for names and paths) needs no conversion.
    if raw.iter().all(|&b| b != 0 && b < 0x80) {
        return std::str::from_utf8(raw).ok().map(str::to_owned);
    }
    cesu8::from_java_cesu8(raw).ok().map(|s| s.into_owned())
}

/// Encodes a string as Java's modified UTF-8.
pub fn encode_modified_utf8(s: &str) -> Vec<u8> {
    cesu8::to_java_cesu8(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_tracks_offsets() {
        let data = [0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe];
        let mut c = Cursor::with_base(&data, 100);
        assert_eq!(c.i32("a").unwrap(), 7);
        assert_eq!(c.position(), 104);
        assert_eq!(c.i64("b").unwrap(), -2);
        let e = c.u8("c").unwrap_err();
        assert_eq!(e.offset, 112);
        assert!(matches!(e.kind, DecodeErrorKind::Truncated { needed: 1, available: 0, .. }));
    }

    #[test]
    fn count_is_checked_before_allocation() {
        let data = [0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
        let e = Cursor::new(&data).count("n", 8).unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(matches!(e.kind, DecodeErrorKind::LengthTooLarge { count: 0x7fff_ffff, available: 3, .. }));
        let neg = [0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(
            Cursor::new(&neg).count("n", 1).unwrap_err().kind,
            DecodeErrorKind::InvalidValue { value: -2, .. }
        ));
    }

    #[test]
    fn modified_utf8_round_trips_nul_and_supplementary() {
        let s = "a\u{0}é😀";
        let enc = encode_modified_utf8(s);
        // NUL is C0 80 and the emoji is a surrogate pair of two 3-byte sequences.
        assert_eq!(&enc[1..3], &[0xc0, 0x80]);
        assert_eq!(enc.len(), 1 + 2 + 2 + 6);
        let mut buf = (enc.len() as u16).to_be_bytes().to_vec();
        buf.extend_from_slice(&enc);
        assert_eq!(Cursor::new(&buf).utf("s").unwrap(), s);
    }
}
