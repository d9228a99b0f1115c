//! Range tombstones of a column family, applied as RocksDB's read path does: a version of a
//! user key is deleted when a tombstone covering the key has a higher sequence number.
//!
//! Each tombstone is first clipped to the key range of the file holding it (RocksDB's
//! `TruncatedRangeDelIterator`: after compactions split a tombstone over files, each part
//! covers only its file's range, and a part must not delete keys outside it), then all are cut
//! into disjoint fragments that carry the highest sequence number covering them.

use super::internal_key::{self, ValueType};
use super::manifest::FileMeta;
use super::table::RangeTombstone;

/// Disjoint fragments `[bounds[i], bounds[i+1])` with the highest tombstone sequence number
/// covering each (0: none).
#[derive(Debug, Clone, Default)]
pub struct Fragments {
    bounds: Vec<Vec<u8>>,
    sequence: Vec<u64>,
}

/// A tombstone clipped to the range of `file`: its end is exclusive unless the file's largest
/// key is a real key (then keys up to and including it are covered).
pub fn clip(t: &RangeTombstone, file: &FileMeta) -> Option<RangeTombstone> {
    let smallest = internal_key::user_key(&file.smallest);
    let start = if t.start.as_slice() < smallest { smallest.to_vec() } else { t.start.clone() };
    let end = match internal_key::parse(&file.largest) {
        // The file ends with a tombstone's end sentinel: an exclusive bound.
        Some(p) if p.kind == ValueType::RangeDeletion && p.sequence == internal_key::MAX_SEQUENCE => {
            if p.user_key < t.end.as_slice() {
                p.user_key.to_vec()
            } else {
                t.end.clone()
            }
        }
        Some(p) => {
            // Up to and including the largest user key: the first key after it is key ++ 0.
            let mut after = p.user_key.to_vec();
            after.push(0);
            if after < t.end {
                after
            } else {
                t.end.clone()
            }
        }
        None => t.end.clone(),
    };
    (start < end).then_some(RangeTombstone { start, end, sequence: t.sequence })
}

impl Fragments {
    /// Fragments of `tombstones` (already clipped).
    pub fn new(tombstones: &[RangeTombstone]) -> Fragments {
        let mut bounds: Vec<Vec<u8>> = tombstones.iter().flat_map(|t| [t.start.clone(), t.end.clone()]).collect();
        bounds.sort();
        bounds.dedup();
        let mut sequence = vec![0u64; bounds.len()];
        for t in tombstones {
            let from = bounds.partition_point(|b| b < &t.start);
            let to = bounds.partition_point(|b| b < &t.end);
            for s in &mut sequence[from..to] {
                *s = (*s).max(t.sequence);
            }
        }
        Fragments { bounds, sequence }
    }

    /// Whether there is no tombstone.
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// The highest sequence number of a tombstone covering `user_key` (0 when none).
    pub fn covering(&self, user_key: &[u8]) -> u64 {
        // The fragment whose start is the last bound at or before the key.
        let i = self.bounds.partition_point(|b| b.as_slice() <= user_key);
        if i == 0 {
            0
        } else {
            self.sequence[i - 1]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(a: &str, b: &str, s: u64) -> RangeTombstone {
        RangeTombstone { start: a.into(), end: b.into(), sequence: s }
    }

    #[test]
    fn overlapping_tombstones_keep_the_highest_sequence() {
        let f = Fragments::new(&[t("b", "f", 5), t("d", "h", 9), t("x", "y", 1)]);
        assert_eq!(f.covering(b"a"), 0);
        assert_eq!(f.covering(b"b"), 5);
        assert_eq!(f.covering(b"c"), 5);
        assert_eq!(f.covering(b"d"), 9);
        assert_eq!(f.covering(b"g"), 9);
        assert_eq!(f.covering(b"h"), 0);
        assert_eq!(f.covering(b"x"), 1);
        assert_eq!(f.covering(b"y"), 0);
        assert!(Fragments::new(&[]).is_empty());
    }

    #[test]
    fn clipped_to_the_file() {
        let key = |u: &str, seq: u64, ty: u8| {
            let mut k = u.as_bytes().to_vec();
            k.extend(((seq << 8) | u64::from(ty)).to_le_bytes());
            k
        };
        let file = FileMeta { number: 1, size: 1, smallest: key("c", 3, 1), largest: key("e", 3, 1), smallest_sequence: 0, largest_sequence: 9 };
        assert_eq!(clip(&t("a", "z", 4), &file), Some(t("c", "e\0", 4)));
        let sentinel = FileMeta { largest: key("d", internal_key::MAX_SEQUENCE, 0xF), ..file.clone() };
        assert_eq!(clip(&t("a", "z", 4), &sentinel), Some(t("c", "d", 4)));
        assert_eq!(clip(&t("a", "b", 4), &file), None);
    }
}
