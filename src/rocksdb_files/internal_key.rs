//! Internal keys (`db/dbformat.h`): the user key followed by 8 bytes, little-endian
//! `sequence << 8 | type`. They sort by user key ascending (bytewise: Flink uses RocksDB's
//! default comparator), then by that packed number descending, so the newest version of a key
//! comes first.

use std::cmp::Ordering;

/// `ValueType`: what an entry does to its user key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// 0x0 `kTypeDeletion`
    Deletion,
    /// 0x1 `kTypeValue`
    Value,
    /// 0x2 `kTypeMerge`: an operand for the merge operator (Flink's list state `add`).
    Merge,
    /// 0x7 `kTypeSingleDeletion`
    SingleDeletion,
    /// 0xF `kTypeRangeDeletion` (in the range-deletion block only)
    RangeDeletion,
    /// 0x14 `kTypeDeletionWithTimestamp`
    DeletionWithTimestamp,
    /// Anything else a table may hold (blob indexes, wide columns, preferred-seqno values):
    /// not written by Flink's RocksDB, refused when met.
    Other(u8),
}

impl ValueType {
    /// The type of byte `b`.
    pub fn from_byte(b: u8) -> ValueType {
        match b {
            0x0 => ValueType::Deletion,
            0x1 => ValueType::Value,
            0x2 => ValueType::Merge,
            0x7 => ValueType::SingleDeletion,
            0xF => ValueType::RangeDeletion,
            0x14 => ValueType::DeletionWithTimestamp,
            other => ValueType::Other(other),
        }
    }

    /// The byte.
    pub fn byte(self) -> u8 {
        match self {
            ValueType::Deletion => 0x0,
            ValueType::Value => 0x1,
            ValueType::Merge => 0x2,
            ValueType::SingleDeletion => 0x7,
            ValueType::RangeDeletion => 0xF,
            ValueType::DeletionWithTimestamp => 0x14,
            ValueType::Other(b) => b,
        }
    }
}

/// The largest sequence number (56 bits).
pub const MAX_SEQUENCE: u64 = (1 << 56) - 1;

/// An internal key split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The user key.
    pub user_key: &'a [u8],
    /// The sequence number.
    pub sequence: u64,
    /// What the entry does.
    pub kind: ValueType,
}

/// Splits an internal key; `None` when it is shorter than its 8-byte trailer.
pub fn parse(key: &[u8]) -> Option<ParsedKey<'_>> {
    let n = key.len().checked_sub(8)?;
    let packed = u64::from_le_bytes(key[n..].try_into().ok()?);
    Some(ParsedKey { user_key: &key[..n], sequence: packed >> 8, kind: ValueType::from_byte(packed as u8) })
}

/// The user key of an internal key (the whole key when it is too short to be one).
pub fn user_key(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(8)]
}

/// The packed sequence and type of an internal key (0 when too short).
fn packed(key: &[u8]) -> u64 {
    key.len().checked_sub(8).and_then(|n| key[n..].try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// RocksDB's internal key order with the bytewise comparator.
pub fn compare(a: &[u8], b: &[u8]) -> Ordering {
    user_key(a).cmp(user_key(b)).then_with(|| packed(b).cmp(&packed(a)))
}

/// An internal key for `user_key` that sorts before every version of it (the seek target of a
/// user key).
pub fn seek_key(user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + 8);
    k.extend_from_slice(user_key);
    k.extend_from_slice(&((MAX_SEQUENCE << 8) | 0xff).to_le_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ik(user: &[u8], seq: u64, t: u8) -> Vec<u8> {
        let mut k = user.to_vec();
        k.extend_from_slice(&((seq << 8) | u64::from(t)).to_le_bytes());
        k
    }

    #[test]
    fn newest_first_within_a_user_key() {
        assert_eq!(compare(&ik(b"a", 5, 1), &ik(b"a", 3, 1)), Ordering::Less);
        assert_eq!(compare(&ik(b"a", 3, 1), &ik(b"b", 9, 1)), Ordering::Less);
        assert_eq!(compare(&ik(b"ab", 3, 1), &ik(b"a", 9, 1)), Ordering::Greater);
        assert_eq!(compare(&seek_key(b"a"), &ik(b"a", MAX_SEQUENCE, 0x14)), Ordering::Less);
        let k = ik(b"xy", 77, 2);
        let p = parse(&k).unwrap();
        assert_eq!((p.user_key, p.sequence, p.kind), (&b"xy"[..], 77, ValueType::Merge));
        assert!(parse(b"short").is_none());
    }
}
