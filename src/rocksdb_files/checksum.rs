//! Block checksums (`table/format.cc`, `ComputeBuiltinChecksum`, `VerifyBlockChecksum`).
//!
//! Every block is followed by a 5-byte trailer: its compression type and a `u32` checksum of the
//! block's bytes *and* that type byte. The footer names the checksum type (legacy tables:
//! always CRC32c). From `format_version` 6 the stored value also has a "context" added: a
//! modifier of the file's base context checksum and the block's offset, so that a block copied
//! to another place does not verify.

use super::coding::fixed32_at;

/// `ChecksumType` of `include/rocksdb/table.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    /// 0: not checked.
    None,
    /// 1: masked CRC-32C (the default up to RocksDB 7).
    Crc32c,
    /// 2: XXH32 with seed 0.
    XxHash,
    /// 3: lower 32 bits of XXH64 with seed 0.
    XxHash64,
    /// 4: XXH3 64-bit of all bytes but the last, lower 32 bits, combined with the last byte
    /// (the default from RocksDB 8).
    Xxh3,
}

impl ChecksumType {
    /// The type of footer byte `b`, if it is one.
    pub fn from_byte(b: u8) -> Option<ChecksumType> {
        Some(match b {
            0 => ChecksumType::None,
            1 => ChecksumType::Crc32c,
            2 => ChecksumType::XxHash,
            3 => ChecksumType::XxHash64,
            4 => ChecksumType::Xxh3,
            _ => return None,
        })
    }

    /// RocksDB's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumType::None => "no",
            ChecksumType::Crc32c => "CRC32c",
            ChecksumType::XxHash => "xxHash",
            ChecksumType::XxHash64 => "xxHash64",
            ChecksumType::Xxh3 => "XXH3",
        }
    }

    /// The checksum of `data` (for blocks: the block's bytes followed by the compression type
    /// byte).
    pub fn compute(self, data: &[u8]) -> u32 {
        match self {
            ChecksumType::None => 0,
            ChecksumType::Crc32c => mask_crc(crc32c::crc32c(data)),
            ChecksumType::XxHash => twox_hash::XxHash32::oneshot(0, data),
            ChecksumType::XxHash64 => twox_hash::XxHash64::oneshot(0, data) as u32,
            ChecksumType::Xxh3 => match data.split_last() {
                None => 0,
                Some((&last, rest)) => {
                    let v = twox_hash::XxHash3_64::oneshot(rest) as u32;
                    // `ModifyChecksumForLastByte`
                    v ^ u32::from(last).wrapping_mul(0x6b90_83d9)
                }
            },
        }
    }
}

/// `crc32c::Mask`: CRCs stored next to the data they cover are rotated and offset, since the
/// CRC of a string that contains embedded CRCs is weak.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// `ChecksumModifierForContext`: what `format_version` 6 adds to the checksum of the block at
/// `offset`; 0 when the file has no base context checksum (older versions).
pub fn context_modifier(base_context_checksum: u32, offset: u64) -> u32 {
    if base_context_checksum == 0 {
        return 0;
    }
    base_context_checksum ^ (offset as u32).wrapping_add((offset >> 32) as u32)
}

/// Checks the checksum of a block as stored: `raw` is the block's bytes followed by its 5-byte
/// trailer, `offset` where it starts in the file. `Err((stored, computed))` on a mismatch, with
/// the context removed from the stored value.
pub fn verify_block(kind: ChecksumType, base_context_checksum: u32, raw: &[u8], offset: u64) -> Result<(), (u32, u32)> {
    if kind == ChecksumType::None || raw.len() < 5 {
        return Ok(());
    }
    let covered = raw.len() - 4;
    let stored = fixed32_at(raw, covered).unwrap_or(0).wrapping_sub(context_modifier(base_context_checksum, offset));
    let computed = kind.compute(&raw[..covered]);
    if stored == computed {
        Ok(())
    } else {
        Err((stored, computed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // crc32c("123456789") = 0xe3069283 (RFC 3720); masked as RocksDB stores it.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(mask_crc(0xe306_9283), 0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8));
        // XXH64("") = 0xef46db3751d8e999; XXH32("") = 0x02cc5d05; XXH3_64("") = 0x2d06800538d394c2.
        assert_eq!(ChecksumType::XxHash64.compute(b""), 0x51d8_e999);
        assert_eq!(ChecksumType::XxHash.compute(b""), 0x02cc_5d05);
        assert_eq!(ChecksumType::Xxh3.compute(b"\x00"), 0x38d3_94c2);
        assert_eq!(ChecksumType::Xxh3.compute(b""), 0);
        assert_eq!(context_modifier(0, 1234), 0);
        assert_eq!(context_modifier(7, (1u64 << 32) + 5), 7 ^ 6);
    }

    #[test]
    fn a_flipped_bit_fails_every_type() {
        for kind in [ChecksumType::Crc32c, ChecksumType::XxHash, ChecksumType::XxHash64, ChecksumType::Xxh3] {
            let mut raw = b"some block bytes\x01".to_vec();
            let c = kind.compute(&raw).wrapping_add(context_modifier(99, 4096));
            raw.extend_from_slice(&c.to_le_bytes());
            assert_eq!(verify_block(kind, 99, &raw, 4096), Ok(()), "{kind:?}");
            assert!(verify_block(kind, 99, &raw, 8192).is_err(), "{kind:?}: another offset");
            raw[3] ^= 4;
            assert!(verify_block(kind, 99, &raw, 4096).is_err(), "{kind:?}");
        }
    }
}
