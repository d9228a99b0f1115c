//! A reading thread's side of `convert` when its records come in key-group order: the records
//! of each key group gathered and encoded as the canonical stream holds them, so the writer only
//! appends bytes. A large key group whose records come in the written proxy's state order is
//! encoded in parts as it is read instead of held whole (`formats/canonical-savepoint-writer.md`
//! § Order and memory).

use crate::error::{Error, Result};
use crate::model::OperatorId;

use super::canonical::{encode_key_group, EncodedPart, KeyGroupEncoder, Record};

/// Encoded key groups, or parts of them, one after the other, ready for
/// [`super::canonical::KeyGroupStreamWriter::push_encoded_part`].
#[derive(Debug, Default)]
pub struct EncodedKeyGroups {
    /// The encoded bytes ...
    pub bytes: Vec<u8>,
    /// ... each: key group, end in `bytes`, entries, and which part of its key group it is.
    pub groups: Vec<(u32, usize, u64, EncodedPart)>,
    /// Key groups whose encoding in parts started here.
    pub streamed: u64,
}

impl EncodedKeyGroups {
    /// Each part: key group, bytes, entries, which part.
    pub fn parts(&self) -> impl Iterator<Item = (u32, &[u8], u64, EncodedPart)> {
        let starts = std::iter::once(0).chain(self.groups.iter().map(|g| g.1));
        self.groups.iter().zip(starts).map(|(&(kg, end, n, part), start)| (kg, &self.bytes[start..end], n, part))
    }

    /// Rough bytes held.
    pub fn weight(&self) -> usize {
        self.bytes.capacity() + std::mem::size_of::<(u32, usize, u64, EncodedPart)>() * self.groups.capacity()
    }
}

/// Gathers records key group by key group (they must come in key-group order) and encodes each
/// key group once it ends, its records sorted by state (stable: one state's entries keep their
/// order). With a streaming threshold, a key group whose records pass it while still in state
/// order is encoded from there on record by record ([`KeyGroupEncoder`]), in parts handed on
/// as they grow.
pub struct KeyGroupBatcher {
    operator: OperatorId,
    max_parallelism: u32,
    compressed: bool,
    /// Bytes of records ([`Record::weight`]) after which a key group is encoded in parts;
    /// `None`: every key group is held whole (its records may come in any state order).
    stream_above: Option<usize>,
    /// Encoded output is handed on once it holds this many bytes.
    hand_on_bytes: usize,
    /// The open key group's records (when it is not encoded in parts), their weight and
    /// whether they came in state order.
    batch: Vec<Record>,
    batch_bytes: usize,
    in_order: bool,
    /// The open key group, when it is encoded in parts.
    parts: Option<KeyGroupEncoder>,
    /// The key group before the open one.
    last: Option<u32>,
    /// A buffer for [`encode_key_group`].
    key: Vec<u8>,
    out: EncodedKeyGroups,
}

impl KeyGroupBatcher {
    /// A batcher for an operator of `max_parallelism` key groups writing Snappy-framed key
    /// groups when `compressed`; `stream_above` as [`KeyGroupBatcher`] says, `hand_on_bytes` the
    /// size at which [`KeyGroupBatcher::push`] asks to take the output.
    pub fn new(operator: OperatorId, max_parallelism: u32, compressed: bool, stream_above: Option<usize>, hand_on_bytes: usize) -> KeyGroupBatcher {
        KeyGroupBatcher {
            operator,
            max_parallelism,
            compressed,
            stream_above,
            hand_on_bytes,
            batch: Vec::new(),
            batch_bytes: 0,
            in_order: true,
            parts: None,
            last: None,
            key: Vec::new(),
            out: EncodedKeyGroups::default(),
        }
    }

    /// Adds a record. `Ok(true)`: take the output now ([`KeyGroupBatcher::take`]) — it has
    /// grown past the hand-on size, or holds a part of a key group that the writer must get
    /// before the key group's next part is cut. An error when the record's key group comes
    /// after a later one.
    pub fn push(&mut self, r: Record) -> Result<bool> {
        let open = self.parts.as_ref().map(KeyGroupEncoder::key_group).or_else(|| self.batch.first().map(|f| f.key_group));
        let mut hand_on = false;
        if open.is_some_and(|kg| kg != r.key_group) {
            self.end_key_group()?;
            hand_on = self.out.bytes.len() >= self.hand_on_bytes;
        }
        if let Some(enc) = self.parts.as_mut() {
            enc.push(r)?;
            if enc.pending_bytes() >= self.hand_on_bytes {
                // A middle part: the writer appends it to the key group's start.
                let (bytes, n) = enc.take_part();
                self.out.bytes.extend_from_slice(&bytes);
                self.out.groups.push((enc.key_group(), self.out.bytes.len(), n, EncodedPart::Middle));
                hand_on = true;
            }
            return Ok(hand_on);
        }
        if self.batch.is_empty() {
            let kg = r.key_group;
            if let Some(l) = self.last.filter(|&l| kg <= l) {
                return Err(Error::Invalid(format!("operator {}: entries of key group {kg} arrived after key group {l}", self.operator)));
            }
            self.last = Some(kg);
        }
        self.batch_bytes += r.weight();
        self.in_order &= self.batch.last().is_none_or(|l| l.state <= r.state);
        self.batch.push(r);
        // A large key group whose records came in state order so far: encoded in parts from
        // here on, instead of held whole.
        if self.in_order && self.stream_above.is_some_and(|above| self.batch_bytes >= above) {
            let mut records = self.batch.drain(..);
            let first = records.next().ok_or_else(|| Error::Invalid("empty key group".into()))?;
            let mut enc = KeyGroupEncoder::new(first, self.max_parallelism, self.compressed)?;
            for r in records {
                enc.push(r)?;
            }
            let (bytes, n) = enc.take_part();
            self.out.bytes.extend_from_slice(&bytes);
            self.out.groups.push((enc.key_group(), self.out.bytes.len(), n, EncodedPart::First));
            self.parts = Some(enc);
            self.batch_bytes = 0;
            self.out.streamed += 1;
            hand_on = true;
        }
        Ok(hand_on)
    }

    /// Ends the open key group: its last part, or the whole key group encoded.
    pub fn finish(&mut self) -> Result<()> {
        self.end_key_group()
    }

    /// The output so far (whole key groups and parts), leaving the batcher empty of it.
    pub fn take(&mut self) -> EncodedKeyGroups {
        std::mem::take(&mut self.out)
    }

    fn end_key_group(&mut self) -> Result<()> {
        (self.batch_bytes, self.in_order) = (0, true);
        if let Some(enc) = self.parts.take() {
            let kg = enc.key_group();
            let (bytes, n) = enc.finish()?;
            self.out.bytes.extend_from_slice(&bytes);
            self.out.groups.push((kg, self.out.bytes.len(), n, EncodedPart::Last));
            return Ok(());
        }
        if self.batch.is_empty() {
            return Ok(());
        }
        // Stable: the entries of one state keep their order.
        self.batch.sort_by_key(|r| r.state);
        let kg = self.batch[0].key_group;
        encode_key_group(&self.batch, self.max_parallelism, self.compressed, &mut self.out.bytes, &mut self.key)?;
        self.out.groups.push((kg, self.out.bytes.len(), self.batch.len() as u64, EncodedPart::Whole));
        self.batch.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key_group: u32, state: u16, i: usize) -> Record {
        Record { key_group, state, key: format!("key {i}").into_bytes(), value: vec![i as u8; 40] }
    }

    /// Runs `records` through a batcher, taking the output whenever it asks, and gives each
    /// key group's bytes joined from its parts, its entries, and which parts it came in.
    fn batched(records: &[Record], stream_above: Option<usize>, hand_on: usize, compressed: bool) -> Vec<(u32, Vec<u8>, u64, Vec<EncodedPart>)> {
        let mut b = KeyGroupBatcher::new(OperatorId([0; 16]), 256, compressed, stream_above, hand_on);
        let mut outs = Vec::new();
        for r in records {
            if b.push(r.clone()).unwrap() {
                outs.push(b.take());
            }
        }
        b.finish().unwrap();
        outs.push(b.take());
        let mut groups: Vec<(u32, Vec<u8>, u64, Vec<EncodedPart>)> = Vec::new();
        for out in &outs {
            for (kg, bytes, n, part) in out.parts() {
                match groups.last_mut() {
                    Some(g) if g.0 == kg && part != EncodedPart::Whole && part != EncodedPart::First => {
                        g.1.extend_from_slice(bytes);
                        g.2 += n;
                        g.3.push(part);
                    }
                    _ => groups.push((kg, bytes.to_vec(), n, vec![part])),
                }
            }
        }
        groups
    }

    /// Key groups 3 (large, in state order), 5 (large, states out of order from its second
    /// record) and 9 (small). A record weighs about 100 bytes.
    fn records() -> Vec<Record> {
        let mut rs: Vec<Record> = (0..300).map(|i| record(3, (i / 100) as u16, i)).collect();
        rs.extend((0..300).map(|i| record(5, 2 - (i % 3) as u16, i)));
        rs.extend((0..3).map(|i| record(9, 0, i)));
        rs
    }

    #[test]
    fn key_groups_in_parts_are_the_bytes_of_whole_key_groups() {
        for compressed in [false, true] {
            let whole = batched(&records(), None, 1024, compressed);
            assert_eq!(whole.iter().map(|g| (g.0, g.2, g.3.clone())).collect::<Vec<_>>(), [3, 5, 9].map(|kg| (kg, if kg == 9 { 3 } else { 300 }, vec![EncodedPart::Whole])));
            for (stream_above, hand_on) in [(150, 1), (2000, 1024), (2000, 1 << 20)] {
                let parts = batched(&records(), Some(stream_above), hand_on, compressed);
                assert_eq!(parts.len(), 3);
                for (w, p) in whole.iter().zip(&parts) {
                    assert_eq!((w.0, &w.1, w.2), (p.0, &p.1, p.2), "key group {} compressed {compressed} above {stream_above}", w.0);
                }
                // Key group 3 came in state order: streamed, ending in its last part. Key group
                // 5's states came out of order before the threshold (sorted whole), key group 9
                // (about 300 bytes) is streamed only past the lower threshold.
                assert_eq!(parts[0].3.first(), Some(&EncodedPart::First));
                assert_eq!(parts[0].3.last(), Some(&EncodedPart::Last));
                assert_eq!(parts[1].3, [EncodedPart::Whole]);
                assert_eq!(parts[2].3.first(), Some(if stream_above < 300 { &EncodedPart::First } else { &EncodedPart::Whole }));
                // (Snappy frames hold back up to 64 KiB: parts of compressed key groups this small
                // have nothing in the middle.)
                if hand_on == 1 && !compressed {
                    assert!(parts[0].3.contains(&EncodedPart::Middle), "{:?}", parts[0].3);
                }
            }
        }
    }

    #[test]
    fn a_key_group_after_a_later_one_is_refused() {
        let mut b = KeyGroupBatcher::new(OperatorId([0; 16]), 256, false, None, 1024);
        b.push(record(7, 0, 0)).unwrap();
        b.push(record(8, 0, 1)).unwrap();
        let e = b.push(record(7, 0, 2)).unwrap_err();
        assert!(e.to_string().contains("entries of key group 7 arrived after key group 8"), "{e}");
    }
}
