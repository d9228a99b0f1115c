//! Java numbers as text: `java.math.BigInteger` and `BigDecimal` text, from the two's-complement big-endian bytes that
//! `BigInteger.toByteArray()` gives (`BigIntSerializer`, `BigDecSerializer`).

/// Magnitudes longer than this many bytes are printed in hex (`0x…`, with a leading `-` when
/// negative) instead of decimal, which would take quadratic time.
pub const MAX_DECIMAL_BYTES: usize = 8192;

/// The decimal text of a two's-complement big-endian integer (`BigInteger.toString()`).
pub fn big_integer_text(bytes: &[u8]) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut mag: Vec<u8> = bytes.to_vec();
    if negative {
        // Two's complement negation: invert, add one.
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    let start = mag.iter().position(|&b| b != 0).unwrap_or(mag.len());
    let mag = &mag[start..];
    let sign = if negative { "-" } else { "" };
    if mag.is_empty() {
        // All-zero magnitude; a negative input here was -2^(8n), whose magnitude overflowed.
        return if negative { format!("-{}", pow2_text(bytes.len() * 8)) } else { "0".into() };
    }
    if mag.len() > MAX_DECIMAL_BYTES {
        return format!("{sign}0x{}", crate::model::value::hex(mag));
    }
    format!("{sign}{}", magnitude_text(mag))
}

/// 2^bits in decimal (only reached for `-2^(8n)`, whose magnitude is `1` followed by zero bytes).
fn pow2_text(bits: usize) -> String {
    let mut mag = vec![0u8; bits / 8 + 1];
    mag[0] = 1 << (bits % 8);
    if mag.len() > MAX_DECIMAL_BYTES {
        return format!("0x{}", crate::model::value::hex(&mag));
    }
    magnitude_text(&mag)
}

/// Decimal digits of an unsigned big-endian magnitude (no leading zero bytes, not empty).
fn magnitude_text(mag: &[u8]) -> String {
    // Base 2^32 limbs, most significant first.
    let mut limbs: Vec<u32> = Vec::with_capacity(mag.len() / 4 + 1);
    let head = mag.len() % 4;
    if head > 0 {
        limbs.push(mag[..head].iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)));
    }
    for chunk in mag[head..].chunks(4) {
        limbs.push(chunk.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)));
    }
    // Repeated division by 10^9.
    let mut groups: Vec<u32> = Vec::new();
    let mut start = 0;
    while start < limbs.len() {
        let mut rem: u64 = 0;
        for limb in limbs[start..].iter_mut() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        groups.push(rem as u32);
        while start < limbs.len() && limbs[start] == 0 {
            start += 1;
        }
    }
    let mut out = String::new();
    for (i, g) in groups.iter().rev().enumerate() {
        if i == 0 {
            out.push_str(&g.to_string());
        } else {
            out.push_str(&format!("{g:09}"));
        }
    }
    out
}

/// `BigDecimal.toString()` of `unscaled × 10^-scale`, given the unscaled value's text.
pub fn big_decimal_text(unscaled: &str, scale: i32) -> String {
    if unscaled.contains('x') {
        // Hex fallback of a huge unscaled value: keep it explicit.
        return format!("{unscaled}E{}", -i64::from(scale));
    }
    let (sign, coeff) = match unscaled.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", unscaled),
    };
    let len = coeff.len() as i64;
    let adjusted = -i64::from(scale) + (len - 1);
    if scale == 0 {
        return format!("{sign}{coeff}");
    }
    if scale > 0 && adjusted >= -6 {
        let scale = i64::from(scale);
        let pad = scale - len;
        if pad >= 0 {
            return format!("{sign}0.{}{coeff}", "0".repeat(pad as usize));
        }
        let point = (len - scale) as usize;
        return format!("{sign}{}.{}", &coeff[..point], &coeff[point..]);
    }
    let mut out = format!("{sign}{}", &coeff[..1]);
    if coeff.len() > 1 {
        out.push('.');
        out.push_str(&coeff[1..]);
    }
    if adjusted != 0 {
        out.push('E');
        if adjusted > 0 {
            out.push('+');
        }
        out.push_str(&adjusted.to_string());
    }
    out
}

/// A `float` as the `f64` of its shortest decimal form (`0.1f` → `0.1`).
pub fn widen(f: f32) -> f64 {
    if !f.is_finite() {
        return f64::from(f);
    }
    f.to_string().parse::<f64>().unwrap_or(f64::from(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_integers() {
        assert_eq!(big_integer_text(&[0x00]), "0");
        assert_eq!(big_integer_text(&[0x7f]), "127");
        assert_eq!(big_integer_text(&[0x80]), "-128");
        assert_eq!(big_integer_text(&[0xff]), "-1");
        assert_eq!(big_integer_text(&[0x00, 0xff]), "255");
        // 2^64 = 18446744073709551616
        assert_eq!(big_integer_text(&[1, 0, 0, 0, 0, 0, 0, 0, 0]), "18446744073709551616");
        // -(2^64)
        assert_eq!(big_integer_text(&[0xff, 0, 0, 0, 0, 0, 0, 0, 0]), "-18446744073709551616");
        assert_eq!(big_integer_text(&[0x3b, 0x9a, 0xca, 0x00]), "1000000000");
        assert_eq!(big_integer_text(&[]), "0");
    }

    #[test]
    fn big_decimals_match_java_to_string() {
        assert_eq!(big_decimal_text("12345", 2), "123.45");
        assert_eq!(big_decimal_text("-12345", 2), "-123.45");
        assert_eq!(big_decimal_text("5", 3), "0.005");
        assert_eq!(big_decimal_text("5", 0), "5");
        assert_eq!(big_decimal_text("5", 7), "5E-7");
        assert_eq!(big_decimal_text("123", -2), "1.23E+4");
        assert_eq!(big_decimal_text("1", -1), "1E+1");
        assert_eq!(big_decimal_text("0", 2), "0.00");
        assert_eq!(big_decimal_text("1", i32::MIN), "1E+2147483648");
        assert_eq!(big_decimal_text("12", i32::MAX), "1.2E-2147483646");
    }
}
