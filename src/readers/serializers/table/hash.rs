//! `BinaryRowData.hashCode()`: the hash Flink takes the key group of every SQL key from
//! (`KeyGroupRangeAssignment.assignToKeyGroup(key, maxParallelism)` =
//! `murmurHash(key.hashCode()) % maxParallelism`). SQL keys are `BinaryRowData`s (the key
//! selectors project into one), whose `hashCode` is `BinarySegmentUtils.hashByWords` over the
//! row's bytes: `MurmurHashUtils.hashBytesByWords`, Murmur3 (32-bit) with seed 42 over the bytes
//! read as little-endian `int`s, finished with the byte length. The bytes are exactly what
//! `RowDataSerializer` writes after its length prefix.

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;
const SEED: u32 = 42;

/// The `hashCode()` of a `BinaryRowData` whose bytes are `row` (its `sizeInBytes`, a multiple
/// of 8 for every row Flink writes; a trailing part shorter than a word is not hashed, as
/// Flink's word-wise hash never reads it).
pub fn binary_row_hash_code(row: &[u8]) -> i32 {
    let mut h1 = SEED;
    for w in row.chunks_exact(4) {
        let mut k1 = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        k1 = k1.wrapping_mul(C1);
        k1 = k1.rotate_left(15);
        k1 = k1.wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1.rotate_left(13);
        h1 = h1.wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    h1 ^= row.len() as u32;
    h1 ^= h1 >> 16;
    h1 = h1.wrapping_mul(0x85eb_ca6b);
    h1 ^= h1 >> 13;
    h1 = h1.wrapping_mul(0xc2b2_ae35);
    h1 ^= h1 >> 16;
    h1 as i32
}
