//! Reading a column family as RocksDB's `DBIter` does: the tables of level 0 (which overlap)
//! and of each deeper level (sorted, disjoint: one lazily opened file at a time) merged into
//! one stream in internal-key order (a k-way merge on a binary heap), then resolved per user
//! key: the newest version decides, deletes and range tombstones hide older versions, and merge
//! operands are combined with the version below them by the merge operator.

use std::sync::Arc;

use super::error::{corrupt, unsupported, Result};
use super::internal_key::{self, ValueType};
use super::manifest::FileMeta;
use super::range_del::Fragments;
use super::table::{Table, TableIter};

/// Opens the table of a live file (cached by the database).
pub trait TableOpener: Send + Sync + std::fmt::Debug {
    /// The table of `file`.
    fn open(&self, file: &FileMeta) -> Result<Arc<Table>>;
}

/// Combines merge operands (`MergeOperator::FullMergeV2`).
pub trait MergeOperator: Send + Sync + std::fmt::Debug {
    /// The value of `key` from the version below the operands (`None`: no value, or deleted)
    /// and the operands, oldest first.
    fn full_merge(&self, key: &[u8], existing: Option<&[u8]>, operands: &[&[u8]]) -> Vec<u8>;
}

/// FRocksDB's `StringAppendTESTOperator` with a one-byte delimiter (Flink's list state:
/// `,`): the existing value, then each operand, one delimiter between any two.
#[derive(Debug, Clone, Copy)]
pub struct StringAppend(pub u8);

impl MergeOperator for StringAppend {
    fn full_merge(&self, _key: &[u8], existing: Option<&[u8]>, operands: &[&[u8]]) -> Vec<u8> {
        let size = existing.map_or(0, |e| e.len() + 1) + operands.iter().map(|o| o.len() + 1).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        let mut delimit = false;
        for part in existing.into_iter().chain(operands.iter().copied()) {
            if delimit {
                out.push(self.0);
            }
            out.extend_from_slice(part);
            delimit = true;
        }
        out
    }
}

/// The files of one level ≥ 1, read as one sorted run.
#[derive(Debug)]
struct LevelIter {
    files: Vec<FileMeta>,
    at: usize,
    iter: Option<TableIter>,
    opener: Arc<dyn TableOpener>,
    upper: Option<Vec<u8>>,
}

impl LevelIter {
    /// Opens file `i` (when it may hold keys before the upper bound).
    fn open_file(&mut self, i: usize) -> Result<bool> {
        self.at = i;
        let Some(f) = self.files.get(i) else {
            self.iter = None;
            return Ok(false);
        };
        if self.upper.as_deref().is_some_and(|u| internal_key::user_key(&f.smallest) >= u) {
            self.iter = None;
            return Ok(false);
        }
        let mut it = TableIter::new(self.opener.open(f)?);
        it.set_upper_bound(self.upper.as_deref())?;
        self.iter = Some(it);
        Ok(true)
    }

    fn skip_exhausted(&mut self) -> Result<()> {
        while self.iter.as_ref().is_some_and(|i| !i.valid()) {
            if !self.open_file(self.at + 1)? {
                break;
            }
            if let Some(i) = &mut self.iter {
                i.seek_to_first()?;
            }
        }
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let i = self.files.partition_point(|f| internal_key::compare(&f.largest, target) == std::cmp::Ordering::Less);
        if self.open_file(i)? {
            if let Some(it) = &mut self.iter {
                it.seek(target)?;
            }
        }
        self.skip_exhausted()
    }

    fn next(&mut self) -> Result<()> {
        if let Some(i) = &mut self.iter {
            i.advance()?;
        }
        self.skip_exhausted()
    }

    fn valid(&self) -> bool {
        self.iter.as_ref().is_some_and(|i| i.valid())
    }
}

/// One input of the merge.
#[derive(Debug)]
enum Child {
    Table(TableIter),
    Level(LevelIter),
}

impl Child {
    fn valid(&self) -> bool {
        match self {
            Child::Table(t) => t.valid(),
            Child::Level(l) => l.valid(),
        }
    }
    fn table(&self) -> Option<&TableIter> {
        match self {
            Child::Table(t) => Some(t),
            Child::Level(l) => l.iter.as_ref(),
        }
    }
    fn key(&self) -> &[u8] {
        self.table().map_or(&[], |t| t.key())
    }
    fn value(&self) -> &[u8] {
        self.table().map_or(&[], |t| t.value())
    }
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        match self {
            Child::Table(t) => t.seek(target),
            Child::Level(l) => l.seek(target),
        }
    }
    fn next(&mut self) -> Result<()> {
        match self {
            Child::Table(t) => t.advance(),
            Child::Level(l) => l.next(),
        }
    }
}

/// The k-way merge of the children in internal-key order: a binary min-heap of child indexes.
#[derive(Debug)]
struct MergingIter {
    children: Vec<Child>,
    heap: Vec<usize>,
}

impl MergingIter {
    fn less(&self, a: usize, b: usize) -> bool {
        match internal_key::compare(self.children[a].key(), self.children[b].key()) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            // Equal internal keys: the earlier (newer) input first.
            std::cmp::Ordering::Equal => a < b,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < n && self.less(self.heap[l], self.heap[m]) {
                m = l;
            }
            if r < n && self.less(self.heap[r], self.heap[m]) {
                m = r;
            }
            if m == i {
                return;
            }
            self.heap.swap(i, m);
            i = m;
        }
    }

    fn rebuild(&mut self) {
        self.heap = (0..self.children.len()).filter(|&i| self.children[i].valid()).collect();
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        for c in &mut self.children {
            c.seek(target)?;
        }
        self.rebuild();
        Ok(())
    }

    fn valid(&self) -> bool {
        !self.heap.is_empty()
    }

    fn current(&self) -> &Child {
        &self.children[self.heap[0]]
    }

    fn next(&mut self) -> Result<()> {
        let Some(&top) = self.heap.first() else { return Ok(()) };
        self.children[top].next()?;
        if !self.children[top].valid() {
            let last = self.heap.len() - 1;
            self.heap.swap(0, last);
            self.heap.pop();
        }
        // One input (a single table or level, the usual case) has nothing to reorder.
        if self.heap.len() > 1 {
            self.sift_down(0);
        }
        Ok(())
    }
}

/// The entries of one column family within a user-key range, resolved: one (key, value) per
/// live user key, in key order.
#[derive(Debug)]
pub struct CfCursor {
    merged: MergingIter,
    tombstones: Fragments,
    upper: Option<Vec<u8>>,
    merge: Arc<dyn MergeOperator>,
    key: Vec<u8>,
    value: Vec<u8>,
    valid: bool,
    operands: Vec<Vec<u8>>,
}

impl CfCursor {
    /// A cursor over `levels` (level 0 newest first, then each deeper level's sorted files)
    /// with the given clipped tombstones, ending before user key `upper`.
    pub fn new(
        levels: &[Vec<FileMeta>],
        opener: Arc<dyn TableOpener>,
        tombstones: Fragments,
        upper: Option<Vec<u8>>,
        merge: Arc<dyn MergeOperator>,
    ) -> Result<CfCursor> {
        // Sized up front: a table iterator is large, and a cursor is opened per key group and state.
        let mut children = Vec::with_capacity(levels.first().map_or(0, Vec::len) + levels.len());
        for (level, files) in levels.iter().enumerate() {
            if level == 0 {
                for f in files {
                    if upper.as_deref().is_some_and(|u| internal_key::user_key(&f.smallest) >= u) {
                        continue;
                    }
                    let mut it = TableIter::new(opener.open(f)?);
                    it.set_upper_bound(upper.as_deref())?;
                    children.push(Child::Table(it));
                }
            } else if !files.is_empty() {
                children.push(Child::Level(LevelIter { files: files.clone(), at: 0, iter: None, opener: opener.clone(), upper: upper.clone() }));
            }
        }
        Ok(CfCursor {
            merged: MergingIter { children, heap: Vec::new() },
            tombstones,
            upper,
            merge,
            key: Vec::new(),
            value: Vec::new(),
            valid: false,
            operands: Vec::new(),
        })
    }

    /// Moves to the first live user key at or after `user_key`.
    pub fn seek(&mut self, user_key: &[u8]) -> Result<()> {
        self.merged.seek(&internal_key::seek_key(user_key))?;
        self.resolve()
    }

    /// Moves to the next live user key.
    pub fn advance(&mut self) -> Result<()> {
        self.resolve()
    }

    /// Whether the cursor is at a key.
    pub fn valid(&self) -> bool {
        self.valid
    }

    /// The current user key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The current value.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Reads the versions of the next user key(s) until one is live. Leaves the merge at the
    /// first version of the user key after it. Each entry's key is parsed and compared once: the
    /// newest version starts a user key, the versions after it are compared with it.
    fn resolve(&mut self) -> Result<()> {
        self.valid = false;
        while self.merged.valid() {
            let c = self.merged.current();
            let Some(mut p) = internal_key::parse(c.key()) else { return Err(self.bad_key()) };
            if self.upper.as_deref().is_some_and(|u| p.user_key >= u) {
                return Ok(());
            }
            self.key.clear();
            self.key.extend_from_slice(p.user_key);
            let deleted_below = if self.tombstones.is_empty() { 0 } else { self.tombstones.covering(&self.key) };
            self.operands.clear();
            // Undecided, a value (in `self.value`), or deleted.
            let mut decided: Option<bool> = None;
            loop {
                if decided.is_none() {
                    let c = self.merged.current();
                    let kind = if p.sequence < deleted_below { ValueType::Deletion } else { p.kind };
                    match kind {
                        ValueType::Value => {
                            if self.operands.is_empty() {
                                self.value.clear();
                                self.value.extend_from_slice(c.value());
                            } else {
                                self.value = self.merged_value(Some(c.value()));
                            }
                            decided = Some(true);
                        }
                        ValueType::Merge => self.operands.push(c.value().to_vec()),
                        ValueType::Deletion | ValueType::SingleDeletion | ValueType::DeletionWithTimestamp => {
                            if self.operands.is_empty() {
                                decided = Some(false);
                            } else {
                                self.value = self.merged_value(None);
                                decided = Some(true);
                            }
                        }
                        ValueType::RangeDeletion | ValueType::Other(_) => {
                            let (name, pos) = c.table().map_or((String::new(), super::error::Position::File(0)), |t| (t.table().name().to_owned(), t.position()));
                            return Err(unsupported(&name, pos, format!("an entry of value type 0x{:02x} (blob index, wide columns or a newer type)", kind.byte())));
                        }
                    }
                }
                self.merged.next()?;
                if !self.merged.valid() {
                    break;
                }
                match internal_key::parse(self.merged.current().key()) {
                    Some(next) if next.user_key == self.key.as_slice() => p = next,
                    Some(_) => break,
                    None => return Err(self.bad_key()),
                }
            }
            if decided.is_none() && !self.operands.is_empty() {
                self.value = self.merged_value(None);
                decided = Some(true);
            }
            if decided == Some(true) {
                self.valid = true;
                return Ok(());
            }
        }
        Ok(())
    }

    /// The error for a key too short to be an internal key, at the current entry.
    fn bad_key(&self) -> super::error::Error {
        let c = self.merged.current();
        match c.table() {
            Some(t) => corrupt(t.table().name(), t.position(), format!("key of {} bytes, shorter than an internal key", c.key().len())),
            None => super::error::Error::Storage(crate::Error::Invalid("merge input without a table".into())),
        }
    }

    fn merged_value(&self, existing: Option<&[u8]>) -> Vec<u8> {
        let ops: Vec<&[u8]> = self.operands.iter().rev().map(|o| o.as_slice()).collect();
        self.merge.full_merge(&self.key, existing, &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_append_is_frocksdbs() {
        let m = StringAppend(b',');
        assert_eq!(m.full_merge(b"k", Some(b"1"), &[b"2", b"3"]), b"1,2,3");
        assert_eq!(m.full_merge(b"k", None, &[b"x", b"y"]), b"x,y");
        assert_eq!(m.full_merge(b"k", Some(b""), &[b"z"]), b",z");
        assert_eq!(m.full_merge(b"k", None, &[b"z"]), b"z");
    }
}
