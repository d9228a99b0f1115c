//! RocksDB's log format (`db/log_format.h`, `db/log_reader.cc`), which the MANIFEST is written
//! in: 32 KiB blocks of physical records, each `u32 masked CRC-32C, u16 length, u8 type`
//! (recyclable types add a `u32` log number) then the payload; a logical record is one FULL
//! record or FIRST, MIDDLE…, LAST fragments. The CRC covers the type byte, the log number (if
//! any) and the payload. Fewer than a header's bytes left in a block are zero padding.

use super::checksum::mask_crc;
use super::error::{corrupt, FormatError, Position, Problem, Result};

const BLOCK: usize = 32 * 1024;
const HEADER: usize = 7;
const RECYCLABLE_HEADER: usize = 11;

/// A logical record and where its first fragment starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// File offset of the first fragment's header.
    pub offset: u64,
    /// The reassembled payload.
    pub payload: Vec<u8>,
}

/// Splits a whole log file into its logical records, checking every CRC. A record cut off by
/// the end of the file is an error (a MANIFEST Flink uploads is complete).
pub fn records(file: &str, data: &[u8]) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut pending: Option<Record> = None;
    let mut at = 0usize;
    while at < data.len() {
        let in_block = at % BLOCK;
        let left_in_block = BLOCK - in_block;
        if left_in_block < HEADER {
            // Trailer padding.
            at += left_in_block;
            continue;
        }
        if data.len() - at < HEADER {
            if data[at..].iter().all(|&b| b == 0) {
                break;
            }
            return Err(corrupt(file, Position::File(at as u64), format!("a record header cut off by the end of the file ({} of 7 bytes)", data.len() - at)));
        }
        let h = &data[at..at + HEADER];
        let stored = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let len = usize::from(u16::from_le_bytes([h[4], h[5]]));
        let kind = h[6];
        if kind == 0 && stored == 0 && len == 0 {
            // Zero type: preallocated space; the rest of the block is unused.
            at += left_in_block;
            continue;
        }
        let header = match kind {
            1..=4 | 9 | 10 => HEADER,
            5..=8 | 11 => RECYCLABLE_HEADER,
            _ => return Err(corrupt(file, Position::File(at as u64 + 6), format!("unknown log record type {kind}"))),
        };
        let end = at + header + len;
        if end > at - in_block + BLOCK {
            return Err(corrupt(file, Position::File(at as u64 + 4), format!("a record of {len} bytes runs past its 32 KiB block")));
        }
        if end > data.len() {
            return Err(corrupt(file, Position::File(at as u64), format!("a record of {len} bytes cut off by the end of the file (truncated?)")));
        }
        let covered = &data[at + 6..end];
        let computed = mask_crc(crc32c::crc32c(covered));
        if computed != stored {
            return Err(FormatError {
                file: file.to_owned(),
                position: Position::File(at as u64),
                problem: Problem::Checksum { kind: "CRC32c", stored, computed },
            }
            .into());
        }
        let payload = &data[at + header..end];
        match kind {
            // FULL
            1 | 5 => {
                if pending.is_some() {
                    return Err(corrupt(file, Position::File(at as u64), "a whole record inside a fragmented one"));
                }
                out.push(Record { offset: at as u64, payload: payload.to_vec() });
            }
            // FIRST
            2 | 6 => {
                if pending.is_some() {
                    return Err(corrupt(file, Position::File(at as u64), "a record's first fragment inside another record"));
                }
                pending = Some(Record { offset: at as u64, payload: payload.to_vec() });
            }
            // MIDDLE, LAST
            3 | 7 | 4 | 8 => {
                let Some(p) = pending.as_mut() else {
                    return Err(corrupt(file, Position::File(at as u64), "a record fragment without its first fragment"));
                };
                p.payload.extend_from_slice(payload);
                if kind == 4 || kind == 8 {
                    out.extend(pending.take());
                }
            }
            // WAL-only metadata records (compression type, timestamp sizes): not in a MANIFEST.
            _ => {}
        }
        at = end;
    }
    if let Some(p) = pending {
        return Err(corrupt(file, Position::File(p.offset), "the last record's fragments end with the file (truncated?)"));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes records as `log::Writer` does (no recycling).
    pub(crate) fn write(records: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            let mut left: &[u8] = r;
            let mut begin = true;
            loop {
                let room = BLOCK - out.len() % BLOCK;
                if room < HEADER {
                    out.resize(out.len() + room, 0);
                    continue;
                }
                let avail = room - HEADER;
                let n = left.len().min(avail);
                let end = n == left.len();
                let kind: u8 = match (begin, end) {
                    (true, true) => 1,
                    (true, false) => 2,
                    (false, true) => 4,
                    (false, false) => 3,
                };
                let mut covered = vec![kind];
                covered.extend_from_slice(&left[..n]);
                out.extend(mask_crc(crc32c::crc32c(&covered)).to_le_bytes());
                out.extend((n as u16).to_le_bytes());
                out.extend(&covered);
                left = &left[n..];
                begin = false;
                if end {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn fragments_across_blocks_reassemble() {
        let big = vec![7u8; 70_000];
        let log = write(&[b"one", &big, b"", b"three"]);
        let r = records("m", &log).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[1].payload, big);
        assert_eq!(r[2].payload, b"");
        assert_eq!(r[3].payload, b"three");
        for cut in [5, log.len() / 2, log.len() - 1] {
            assert!(records("m", &log[..cut]).is_err(), "cut {cut}");
        }
        let mut d = log.clone();
        d[9] ^= 1;
        let e = records("m", &d).unwrap_err();
        assert!(matches!(e.format().unwrap().problem, Problem::Checksum { .. }), "{e}");
    }
}
