//! Strongly typed identifiers, so an operator id, a key group and a byte offset cannot be swapped.

use std::fmt;
use std::str::FromStr;

/// Flink's `OperatorID`: 16 bytes, printed as 32 lowercase hex digits in natural byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(pub [u8; 16]);

impl OperatorId {
    /// The id Flink derives from an operator uid: Guava `murmur3_128(seed 0)` over the uid's
    /// UTF-8 bytes, in `HashCode.asBytes()` order (both 64-bit halves little-endian).
    /// (`StreamGraphHasherV2.generateUserSpecifiedHash`.)
    pub fn from_uid(uid: &str) -> OperatorId {
        let mut reader = uid.as_bytes();
        // Reading from a byte slice cannot fail.
        let h = murmur3::murmur3_x64_128(&mut reader, 0).unwrap_or_default();
        let h1 = h as u64;
        let h2 = (h >> 64) as u64;
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&h1.to_le_bytes());
        out[8..].copy_from_slice(&h2.to_le_bytes());
        OperatorId(out)
    }

    /// From the two longs of the metadata (`lowerPart`, `upperPart`), each big-endian.
    pub fn from_parts(lower: i64, upper: i64) -> OperatorId {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&lower.to_be_bytes());
        out[8..].copy_from_slice(&upper.to_be_bytes());
        OperatorId(out)
    }

    /// The 32-digit hex form Flink prints.
    pub fn to_hex(&self) -> String {
        // one allocation, not one per byte: `dump` prints this for every entry
        super::value::hex(&self.0)
    }
}

impl fmt::Display for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OperatorId({})", self.to_hex())
    }
}

impl FromStr for OperatorId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("not a 32-digit hex operator id: {s:?}"));
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(OperatorId(out))
    }
}

impl serde::Serialize for OperatorId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// An inclusive range of key groups, as Flink's `KeyGroupRange` (empty when `len == 0`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize)]
pub struct KeyGroupRange {
    /// First key group.
    pub start: u32,
    /// Number of key groups.
    pub len: u32,
}

impl KeyGroupRange {
    /// The range `start ..= start + len - 1`.
    pub fn new(start: u32, len: u32) -> Self {
        KeyGroupRange { start, len }
    }

    /// Last key group (inclusive), `None` when empty.
    pub fn end_inclusive(&self) -> Option<u32> {
        (self.len > 0).then(|| self.start + self.len - 1)
    }

    /// Whether `kg` lies in the range.
    pub fn contains(&self, kg: u32) -> bool {
        kg >= self.start && (kg - self.start) < self.len
    }

    /// The range Flink assigns to `subtask` of `parallelism` for `max_parallelism`
    /// (`KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex`).
    pub fn for_subtask(max_parallelism: u32, parallelism: u32, subtask: u32) -> Self {
        let (m, p, i) = (max_parallelism as u64, parallelism as u64, subtask as u64);
        let start = (i * m).div_ceil(p);
        let end = ((i + 1) * m - 1) / p;
        KeyGroupRange::new(start as u32, (end + 1 - start) as u32)
    }
}

impl fmt::Display for KeyGroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end_inclusive() {
            Some(end) => write!(f, "{}..={}", self.start, end),
            None => f.write_str("empty"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_id_from_uid_matches_flink() {
        // Release-verified value from the formats reference (§2.4).
        assert_eq!(OperatorId::from_uid("my-uid").to_hex(), "8409efe6adc6d20787611f16017c808f");
    }

    #[test]
    fn operator_id_parses_its_hex() {
        let id = OperatorId::from_uid("x");
        assert_eq!(id.to_hex().parse::<OperatorId>().unwrap(), id);
        assert!("xyz".parse::<OperatorId>().is_err());
    }

    #[test]
    fn subtask_ranges_partition_max_parallelism() {
        let r: Vec<_> = (0..3).map(|i| KeyGroupRange::for_subtask(128, 3, i)).collect();
        assert_eq!(r, [KeyGroupRange::new(0, 43), KeyGroupRange::new(43, 43), KeyGroupRange::new(86, 42)]);
    }
}
