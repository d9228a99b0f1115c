//! A reading thread's side of `convert` when its records come in key-group order: the records
//! of each key group gathered and encoded as the canonical stream holds them, so the writer only
//! appends bytes. A large key group is not held whole: encoded in parts as it is read when its
//! records come in the written proxy's state order, else gathered state by state in bounded
//! memory (`formats/canonical-savepoint-writer.md` § Order and memory).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::OperatorId;

use super::canonical::{encode_key_group, EncodedPart, KeyGroupEncoder, Record};
use super::state_runs::StateRuns;

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
/// order). A key group whose records pass a threshold is not held whole: if its records still
/// come in state order and the source promises that order, it is encoded from there on record by
/// record ([`KeyGroupEncoder`]), in parts handed on as they grow; else each state's entries are
/// gathered encoded, spilled past a budget, and assembled at the key group's end
/// ([`StateRuns`]).
pub struct KeyGroupBatcher {
    operator: OperatorId,
    max_parallelism: u32,
    compressed: bool,
    /// Bytes of records ([`Record::weight`]) after which a key group is not held whole.
    stream_above: usize,
    /// Whether the source gives each key group's states in the written proxy's order.
    in_proxy_order: bool,
    /// Encoded output is handed on once it holds this many bytes.
    hand_on_bytes: usize,
    /// Where [`StateRuns`] spill.
    spill_dir: PathBuf,
    /// The open key group's records (when it is held whole), their weight and whether they
    /// came in state order.
    batch: Vec<Record>,
    batch_bytes: usize,
    in_order: bool,
    /// The open key group, when it is not held whole.
    open: Open,
    /// The key group before the open one.
    last: Option<u32>,
    /// A buffer for [`encode_key_group`].
    key: Vec<u8>,
    out: EncodedKeyGroups,
}

/// How the open key group is held, once it is not held whole.
enum Open {
    Batch,
    Encoder(KeyGroupEncoder),
    Runs(StateRuns),
}

/// Where a batcher's output goes: called whenever it should be handed on.
pub type HandOn<'a> = dyn FnMut(EncodedKeyGroups) -> Result<()> + 'a;

impl KeyGroupBatcher {
    /// A batcher for an operator of `max_parallelism` key groups writing Snappy-framed key
    /// groups when `compressed`. `stream_above` and `in_proxy_order` as [`KeyGroupBatcher`]
    /// says; `hand_on_bytes` the size at which output is handed on; `spill_dir` where large key
    /// groups out of state order spill.
    pub fn new(operator: OperatorId, max_parallelism: u32, compressed: bool, stream_above: usize, in_proxy_order: bool, hand_on_bytes: usize, spill_dir: &Path) -> KeyGroupBatcher {
        KeyGroupBatcher {
            operator,
            max_parallelism,
            compressed,
            stream_above: stream_above.max(1),
            in_proxy_order,
            hand_on_bytes,
            spill_dir: spill_dir.to_path_buf(),
            batch: Vec::new(),
            batch_bytes: 0,
            in_order: true,
            open: Open::Batch,
            last: None,
            key: Vec::new(),
            out: EncodedKeyGroups::default(),
        }
    }

    /// Adds a record, handing on output through `hand_on` when it has grown past the hand-on
    /// size or holds a part of a key group that the writer must get before the key group's next
    /// part. An error when the record's key group comes after a later one.
    pub fn push(&mut self, r: Record, hand_on: &mut HandOn<'_>) -> Result<()> {
        let open = match &self.open {
            Open::Batch => self.batch.first().map(|f| f.key_group),
            Open::Encoder(enc) => Some(enc.key_group()),
            Open::Runs(runs) => Some(runs.key_group()),
        };
        if open.is_some_and(|kg| kg != r.key_group) {
            self.end_key_group(hand_on)?;
            if self.out.bytes.len() >= self.hand_on_bytes {
                hand_on(self.take())?;
            }
        }
        match &mut self.open {
            Open::Encoder(enc) => {
                enc.push(r)?;
                if enc.pending_bytes() >= self.hand_on_bytes {
                    // A middle part: the writer appends it to the key group's start.
                    let (bytes, n) = enc.take_part();
                    self.out.bytes.extend_from_slice(&bytes);
                    self.out.groups.push((enc.key_group(), self.out.bytes.len(), n, EncodedPart::Middle));
                    hand_on(self.take())?;
                }
                return Ok(());
            }
            Open::Runs(runs) => return runs.push(r),
            Open::Batch => {}
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
        if self.batch_bytes < self.stream_above {
            return Ok(());
        }
        // A large key group: not held whole from here on.
        let mut records = std::mem::take(&mut self.batch).into_iter();
        self.batch_bytes = 0;
        self.out.streamed += 1;
        if self.in_order && self.in_proxy_order {
            // Its records came in state order, as its source promises: encoded as they come.
            let first = records.next().ok_or_else(|| Error::Invalid("empty key group".into()))?;
            let mut enc = KeyGroupEncoder::new(first, self.max_parallelism, self.compressed)?;
            for r in records {
                enc.push(r)?;
            }
            let (bytes, n) = enc.take_part();
            self.out.bytes.extend_from_slice(&bytes);
            self.out.groups.push((enc.key_group(), self.out.bytes.len(), n, EncodedPart::First));
            self.open = Open::Encoder(enc);
            hand_on(self.take())
        } else {
            // Gathered state by state, and assembled in state order at its end.
            let kg = self.last.unwrap_or_default();
            let mut runs = StateRuns::new(kg, self.max_parallelism, &self.spill_dir, self.stream_above);
            for r in records {
                runs.push(r)?;
            }
            self.open = Open::Runs(runs);
            Ok(())
        }
    }

    /// Ends the open key group (its last part, or the whole key group) and hands on
    /// everything.
    pub fn finish(&mut self, hand_on: &mut HandOn<'_>) -> Result<()> {
        self.end_key_group(hand_on)?;
        hand_on(self.take())
    }

    /// The output so far (whole key groups and parts), leaving the batcher empty of it: what
    /// a read that failed half-way still hands on.
    pub fn take(&mut self) -> EncodedKeyGroups {
        std::mem::take(&mut self.out)
    }

    fn end_key_group(&mut self, hand_on: &mut HandOn<'_>) -> Result<()> {
        (self.batch_bytes, self.in_order) = (0, true);
        match std::mem::replace(&mut self.open, Open::Batch) {
            Open::Encoder(enc) => {
                let kg = enc.key_group();
                let (bytes, n) = enc.finish()?;
                self.out.bytes.extend_from_slice(&bytes);
                self.out.groups.push((kg, self.out.bytes.len(), n, EncodedPart::Last));
                Ok(())
            }
            Open::Runs(runs) => {
                let kg = runs.key_group();
                let (out, hand_on_bytes) = (&mut self.out, self.hand_on_bytes);
                runs.finish(self.compressed, hand_on_bytes, &mut |bytes, n, part| {
                    out.bytes.extend_from_slice(&bytes);
                    out.groups.push((kg, out.bytes.len(), n, part));
                    if matches!(part, EncodedPart::First | EncodedPart::Middle) {
                        // The writer must have this part before the next.
                        hand_on(std::mem::take(out))?;
                    }
                    Ok(())
                })
            }
            Open::Batch if self.batch.is_empty() => Ok(()),
            Open::Batch => {
                // Stable: the entries of one state keep their order.
                self.batch.sort_by_key(|r| r.state);
                let kg = self.batch[0].key_group;
                encode_key_group(&self.batch, self.max_parallelism, self.compressed, &mut self.out.bytes, &mut self.key)?;
                self.out.groups.push((kg, self.out.bytes.len(), self.batch.len() as u64, EncodedPart::Whole));
                self.batch.clear();
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key_group: u32, state: u16, i: usize) -> Record {
        Record { key_group, state, key: format!("key {i}").into_bytes(), value: vec![i as u8; 40] }
    }

    /// Runs `records` through a batcher and gives each key group's bytes joined from its parts,
    /// its entries, and which parts it came in.
    fn batched(records: &[Record], stream_above: usize, in_proxy_order: bool, hand_on: usize, compressed: bool) -> Vec<(u32, Vec<u8>, u64, Vec<EncodedPart>)> {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = KeyGroupBatcher::new(OperatorId([0; 16]), 256, compressed, stream_above, in_proxy_order, hand_on, tmp.path());
        let mut outs = Vec::new();
        for r in records {
            b.push(r.clone(), &mut |out| {
                outs.push(out);
                Ok(())
            })
            .unwrap();
        }
        b.finish(&mut |out| {
            outs.push(out);
            Ok(())
        })
        .unwrap();
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
    fn key_groups_not_held_whole_are_the_bytes_of_whole_key_groups() {
        use EncodedPart::*;
        for compressed in [false, true] {
            let whole = batched(&records(), usize::MAX, true, 1024, compressed);
            assert_eq!(whole.iter().map(|g| (g.0, g.2, g.3.clone())).collect::<Vec<_>>(), [3, 5, 9].map(|kg| (kg, if kg == 9 { 3 } else { 300 }, vec![Whole])));
            for in_proxy_order in [true, false] {
                for (stream_above, hand_on) in [(150, 1), (2000, 1024), (2000, 1 << 20)] {
                    let parts = batched(&records(), stream_above, in_proxy_order, hand_on, compressed);
                    let what = format!("compressed {compressed}, in proxy order {in_proxy_order}, above {stream_above}, hand on {hand_on}");
                    assert_eq!(parts.len(), 3, "{what}");
                    for (w, p) in whole.iter().zip(&parts) {
                        assert_eq!((w.0, &w.1, w.2), (p.0, &p.1, p.2), "{what}: key group {}", w.0);
                    }
                    if compressed {
                        // (Snappy frames hold back up to 64 KiB of these small key groups: the
                        // parts are the same bytes, but cut elsewhere.)
                        continue;
                    }
                    // Key group 3 came in state order: streamed where the source promises that
                    // order, else gathered; key group 5's states came out of order (gathered),
                    // key group 9 (about 300 bytes) is held whole unless the threshold is lower.
                    // Gathered key groups come in one part when the hand-on size is large.
                    let one_part = hand_on == 1 << 20;
                    let gathered = if one_part { &[Whole][..] } else { &[First, Last][..] };
                    let ends = |p: &[EncodedPart]| [p[0], p[p.len() - 1]];
                    assert_eq!(ends(&parts[0].3), if in_proxy_order { [First, Last] } else { [gathered[0], gathered[gathered.len() - 1]] }, "{what}");
                    assert_eq!(ends(&parts[1].3), [gathered[0], gathered[gathered.len() - 1]], "{what}");
                    assert_eq!(parts[2].3[0], if stream_above < 300 { gathered[0] } else { Whole }, "{what}");
                    if hand_on == 1 {
                        assert!(parts[0].3.contains(&Middle) && parts[1].3.contains(&Middle), "{what}: {parts:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_key_group_after_a_later_one_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = KeyGroupBatcher::new(OperatorId([0; 16]), 256, false, usize::MAX, true, 1024, tmp.path());
        let mut ignore = |_| Ok(());
        b.push(record(7, 0, 0), &mut ignore).unwrap();
        b.push(record(8, 0, 1), &mut ignore).unwrap();
        let e = b.push(record(7, 0, 2), &mut ignore).unwrap_err();
        assert!(e.to_string().contains("entries of key group 7 arrived after key group 8"), "{e}");
    }
}
