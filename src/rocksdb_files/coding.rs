//! RocksDB's primitive encodings (`util/coding.h`): little-endian fixed-width integers, LEB128
//! varints (at most 5 bytes for 32 bits, 10 for 64), zigzag signed varints and length-prefixed
//! slices, read from a slice that knows its offset.

/// Why a field did not decode, and where (offset in the slice being read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bad {
    /// Offset of the failing field in the slice.
    pub at: usize,
    /// What was being read and what went wrong.
    pub what: &'static str,
}

/// A reader over a slice; every failure reports the offset of the field that failed.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Reads `data` from offset `pos`.
    pub fn at(data: &'a [u8], pos: usize) -> Self {
        Reader { data, pos: pos.min(data.len()) }
    }

    /// Offset of the next byte.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn bad(&self, what: &'static str) -> Bad {
        Bad { at: self.pos, what }
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Bad> {
        if n > self.remaining() {
            return Err(self.bad(what));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, Bad> {
        Ok(self.bytes(1, what)?[0])
    }

    /// A little-endian `u32`.
    pub fn fixed32(&mut self, what: &'static str) -> Result<u32, Bad> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A little-endian `u64`.
    pub fn fixed64(&mut self, what: &'static str) -> Result<u64, Bad> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A varint of at most 32 bits.
    pub fn varint32(&mut self, what: &'static str) -> Result<u32, Bad> {
        let start = self.pos;
        let v = self.varint64(what)?;
        u32::try_from(v).map_err(|_| Bad { at: start, what })
    }

    /// A varint of at most 64 bits.
    pub fn varint64(&mut self, what: &'static str) -> Result<u64, Bad> {
        let start = self.pos;
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.data.get(self.pos) else {
                self.pos = start;
                return Err(Bad { at: start, what });
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                self.pos = start;
                return Err(Bad { at: start, what });
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                self.pos = start;
                return Err(Bad { at: start, what });
            }
        }
    }

    /// A zigzag-encoded signed varint (`PutVarsignedint64`).
    pub fn varsigned64(&mut self, what: &'static str) -> Result<i64, Bad> {
        let u = self.varint64(what)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A varint32 length, then that many bytes.
    pub fn length_prefixed(&mut self, what: &'static str) -> Result<&'a [u8], Bad> {
        let start = self.pos;
        let n = self.varint32(what)? as usize;
        self.bytes(n, what).map_err(|_| Bad { at: start, what })
    }
}

/// A block's 32-bit little-endian value at `at` (restart offsets, block footers).
pub fn fixed32_at(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
pub(crate) fn put_varint64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_bad_ones_are_refused() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint64(&mut b, v);
            let mut r = Reader::new(&b);
            assert_eq!(r.varint64("v").unwrap(), v);
            assert!(r.is_empty());
        }
        assert!(Reader::new(&[0x80, 0x80]).varint64("v").is_err());
        assert!(Reader::new(&[0xff; 11]).varint64("v").is_err());
        let mut b = Vec::new();
        put_varint64(&mut b, 1 << 40);
        assert_eq!(Reader::new(&b).varint32("v").unwrap_err().at, 0);
        // zigzag: 0 → 0, -1 → 1, 1 → 2
        assert_eq!(Reader::new(&[1]).varsigned64("d").unwrap(), -1);
        assert_eq!(Reader::new(&[2]).varsigned64("d").unwrap(), 1);
        assert_eq!(Reader::new(&[3, b'a']).length_prefixed("s").unwrap_err().at, 0);
    }
}
