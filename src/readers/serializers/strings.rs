//! Flink's own string encodings (`org.apache.flink.types.StringValue`): the `fstr` of
//! `StringSerializer` (`StringValue.writeString`, length + 1, 0 = null) and the plain
//! `StringValue.write` form (length without the +1, no null). Both write each UTF-16 code unit as
//! a little-endian base-128 varint.

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};

type R<T> = Result<T, DecodeError>;

/// Reads an unsigned LEB128 varint of at most `max_bytes` bytes that must fit in `u32`.
fn varint(c: &mut Cursor<'_>, what: &'static str, max_bytes: u32) -> R<u32> {
    let at = c.position();
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let b = c.u8(what)?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(value)
                .map_err(|_| c.error_at(DecodeErrorKind::InvalidValue { what, value: value as i64 }, at));
        }
    }
    Err(c.error_at(DecodeErrorKind::Invalid(format!("{what}: varint longer than {max_bytes} bytes")), at))
}

/// Reads `n` UTF-16 code units, each a varint of at most 3 bytes.
fn units(c: &mut Cursor<'_>, n: usize, what: &'static str) -> R<String> {
    let at = c.position();
    // Every unit takes at least one byte.
    c.check_fits(what, n, 1, at)?;
    // ASCII (most keys and names): every unit is one byte, the character itself.
    if let Some(ascii) = c.peek(n).filter(|b| b.is_ascii()) {
        if let Ok(s) = std::str::from_utf8(ascii) {
            c.skip(n, what)?;
            return Ok(s.to_owned());
        }
    }
    if let Some((s, len)) = units_direct(c.peek(c.remaining()).unwrap_or_default(), n) {
        c.skip(len, what)?;
        return Ok(s);
    }
    // Cut short or malformed: unit by unit, for the error at its offset.
    let mut buf = Vec::with_capacity(n);
    for _ in 0..n {
        let u = varint(c, what, 3)?;
        // Java casts to char: the low 16 bits.
        buf.push(u as u16);
    }
    Ok(String::from_utf16_lossy(&buf))
}

/// Decodes `n` varint units from the start of `data` straight into a string (the same string
/// as `String::from_utf16_lossy` of the units: unpaired surrogates become U+FFFD), with the
/// bytes they took; `None` when `data` ends first or a varint is longer than 3 bytes. A
/// quarter of the instructions of collecting the units first.
fn units_direct(data: &[u8], n: usize) -> Option<(String, usize)> {
    const REPLACEMENT: char = char::REPLACEMENT_CHARACTER;
    let mut out = String::with_capacity(n + n / 2);
    let mut pos = 0;
    // A high surrogate waiting for its low half.
    let mut high: Option<u32> = None;
    for _ in 0..n {
        let b0 = *data.get(pos)?;
        let u = if b0 < 0x80 {
            pos += 1;
            u32::from(b0)
        } else {
            let b1 = *data.get(pos + 1)?;
            if b1 < 0x80 {
                pos += 2;
                u32::from(b0 & 0x7f) | u32::from(b1) << 7
            } else {
                let b2 = *data.get(pos + 2)?;
                if b2 >= 0x80 {
                    return None;
                }
                pos += 3;
                u32::from(b0 & 0x7f) | u32::from(b1 & 0x7f) << 7 | u32::from(b2) << 14
            }
        };
        // Java casts to char: the low 16 bits.
        let u = u & 0xffff;
        match (high.take(), u) {
            (Some(h), 0xDC00..=0xDFFF) => out.push(char::from_u32(0x10000 + ((h - 0xD800) << 10) + (u - 0xDC00)).unwrap_or(REPLACEMENT)),
            (h, _) => {
                if h.is_some() {
                    out.push(REPLACEMENT);
                }
                match u {
                    0xD800..=0xDBFF => high = Some(u),
                    // Not a surrogate: always a char.
                    _ => out.push(char::from_u32(u).unwrap_or(REPLACEMENT)),
                }
            }
        }
    }
    if high.is_some() {
        out.push(REPLACEMENT);
    }
    Some((out, pos))
}

/// Reads a `StringSerializer` string (`StringValue.readString`): `None` for Java `null`.
pub fn read_fstr(c: &mut Cursor<'_>, what: &'static str) -> R<Option<String>> {
    let len = varint(c, what, 5)?;
    if len == 0 {
        return Ok(None);
    }
    units(c, (len - 1) as usize, what).map(Some)
}

/// Reads a `StringValue` as `StringValue.read` does (plain length, no null).
pub(crate) fn read_string_value(c: &mut Cursor<'_>, what: &'static str) -> R<String> {
    let len = varint(c, what, 5)?;
    units(c, len as usize, what)
}

/// Whether `n` units follow (each a varint of at most 3 bytes), as [`units`] reads them; skips
/// them. Builds no string: the checking walk (`check.rs`).
fn skip_units(c: &mut Cursor<'_>, n: usize) -> Option<()> {
    let data = c.peek(c.remaining())?;
    if n > data.len() {
        return None;
    }
    let len = if data[..n].is_ascii() {
        n
    } else {
        let mut pos = 0;
        for _ in 0..n {
            if *data.get(pos)? < 0x80 {
                pos += 1;
            } else if *data.get(pos + 1)? < 0x80 {
                pos += 2;
            } else if *data.get(pos + 2)? < 0x80 {
                pos += 3;
            } else {
                return None;
            }
        }
        pos
    };
    c.skip(len, "").ok()
}

/// Whether a `StringSerializer` string follows ([`read_fstr`] reads it); skips it.
pub(crate) fn check_fstr(c: &mut Cursor<'_>) -> Option<()> {
    let len = varint(c, "string", 5).ok()?;
    if len == 0 {
        return Some(());
    }
    skip_units(c, (len - 1) as usize)
}

/// Whether a `StringValue` follows ([`read_string_value`] reads it); skips it.
pub(crate) fn check_string_value(c: &mut Cursor<'_>) -> Option<()> {
    let len = varint(c, "string value", 5).ok()?;
    skip_units(c, len as usize)
}

fn write_varint(mut v: u32, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a string as `StringSerializer` writes it (`StringValue.writeString`); `None` is Java
/// `null`. Characters outside the BMP become surrogate pairs, as in Java.
pub fn write_fstr(s: Option<&str>, out: &mut Vec<u8>) {
    match s {
        None => out.push(0),
        Some(s) => {
            let units: Vec<u16> = s.encode_utf16().collect();
            write_varint(units.len() as u32 + 1, out);
            for u in units {
                write_varint(u32::from(u), out);
            }
        }
    }
}

/// Appends a string as `StringValue.write` writes it (plain length, no null).
pub(crate) fn write_string_value(s: &str, out: &mut Vec<u8>) {
    let units: Vec<u16> = s.encode_utf16().collect();
    write_varint(units.len() as u32, out);
    for u in units {
        write_varint(u32::from(u), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any units, surrogates paired or not, 1- to 3-byte varints, above 16 bits: the same
    /// string as Java's char cast and `from_utf16_lossy`.
    #[test]
    fn units_decode_like_utf16_lossy() {
        let cases: &[&[u32]] = &[
            &[0x68, 0xe9, 0x4000, 0x7f, 0x80, 0x3fff],
            &[0xD83D, 0xDE00, 0x20],
            &[0xD83D],
            &[0xDE00, 0x41],
            &[0xD83D, 0xD83D, 0xDE00],
            &[0xD83D, 0x41, 0xDC00],
            &[0x1_0041, 0xffff, 0x1f_ffff],
        ];
        for units in cases {
            let mut buf = Vec::new();
            write_varint(units.len() as u32 + 1, &mut buf);
            for &u in *units {
                write_varint(u, &mut buf);
            }
            buf.push(0xaa);
            let want = String::from_utf16_lossy(&units.iter().map(|&u| u as u16).collect::<Vec<_>>());
            let mut c = Cursor::new(&buf);
            assert_eq!(read_fstr(&mut c, "s").unwrap().as_deref(), Some(want.as_str()), "{units:x?}");
            assert_eq!(c.remaining(), 1, "{units:x?}");
            // Cut anywhere: an error, not a shorter string.
            for end in 1..buf.len() - 1 {
                assert!(read_fstr(&mut Cursor::new(&buf[..end]), "s").is_err(), "{units:x?} cut at {end}");
            }
        }
        // A varint of 4 bytes is an error.
        assert!(read_fstr(&mut Cursor::new(&[0x02, 0x80, 0x80, 0x80, 0x01]), "s").is_err());
    }

    #[test]
    fn fstr_round_trips() {
        for s in ["", "k", "héllo", "\u{4000}\u{7f}\u{80}\u{3fff}", "😀 and \u{0}"] {
            let mut buf = Vec::new();
            write_fstr(Some(s), &mut buf);
            let mut c = Cursor::new(&buf);
            assert_eq!(read_fstr(&mut c, "s").unwrap().as_deref(), Some(s));
            assert!(c.is_empty());
        }
        let mut buf = Vec::new();
        write_fstr(Some("k"), &mut buf);
        assert_eq!(buf, [0x02, 0x6b]);
        let mut buf = Vec::new();
        write_fstr(None, &mut buf);
        assert_eq!(buf, [0]);
        assert_eq!(read_fstr(&mut Cursor::new(&buf), "s").unwrap(), None);
        // An ASCII string takes exactly its units, not the bytes after it.
        let mut buf = Vec::new();
        write_fstr(Some("ab"), &mut buf);
        buf.extend_from_slice(b"cd");
        let mut c = Cursor::new(&buf);
        assert_eq!(read_fstr(&mut c, "s").unwrap().as_deref(), Some("ab"));
        assert_eq!(c.remaining(), 2);
        // A unit past the end is still an error, ASCII or not.
        assert!(read_fstr(&mut Cursor::new(&[0x04, b'a', b'b']), "s").is_err());
        // U+4000 takes 3 bytes, U+3FFF two.
        let mut buf = Vec::new();
        write_fstr(Some("\u{4000}\u{3fff}"), &mut buf);
        assert_eq!(buf, [0x03, 0x80, 0x80, 0x01, 0xff, 0x7f]);
    }

    #[test]
    fn long_strings_have_multi_byte_lengths() {
        let s = "x".repeat(200);
        let mut buf = Vec::new();
        write_fstr(Some(&s), &mut buf);
        assert_eq!(&buf[..2], &[0xc9, 0x01]);
        assert_eq!(read_fstr(&mut Cursor::new(&buf), "s").unwrap().unwrap(), s);
        let mut buf = Vec::new();
        write_string_value(&s, &mut buf);
        assert_eq!(&buf[..2], &[0xc8, 0x01]);
        assert_eq!(read_string_value(&mut Cursor::new(&buf), "s").unwrap(), s);
    }

    #[test]
    fn corrupt_lengths_error_without_allocating() {
        let e = read_fstr(&mut Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x41]), "s").unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::LengthTooLarge { .. }), "{e}");
        assert!(read_fstr(&mut Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), "s").is_err());
        assert!(read_fstr(&mut Cursor::new(&[0x02, 0x80, 0x80, 0x80, 0x01]), "s").is_err());
        let e = read_fstr(&mut Cursor::with_base(&[0x03, 0x41], 10), "s").unwrap_err();
        assert_eq!(e.offset, 11);
    }
}
