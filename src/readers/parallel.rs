//! Reading a snapshot on several threads, in bounded memory, in snapshot order: the one
//! mechanism behind `--threads` of `dump`, `export` and `verify --level full`.
//!
//! The work is cut into many small [`Piece`]s ([`pieces`]): per subtask holding selected
//! state, its operator state, and its keyed state in key-group ranges of a few MiB each (a
//! snapshot of one subtask still keeps every thread busy). Reading every piece in order gives
//! exactly the entries of one [`SnapshotEntries`] read, in its order.
//!
//! [`ordered`] runs a `produce` function per piece on worker threads and a `consume` function
//! on the calling thread that takes the pieces' results in piece order: the output is the same
//! whatever the number of threads. A worker ahead of the consumer buffers its piece's results
//! (so it does not wait for the consumer) within a byte budget of the caller's choosing and a
//! window of pieces ahead of the one being consumed. An error ends the run at its piece: what
//! came before it is consumed, nothing after.

use std::panic::AssertUnwindSafe;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::metadata::handles::KeyedStateHandle;
use crate::model::{KeyGroupRange, SubtaskRef};
use crate::readers::entries::{Selection, SnapshotEntries};
use crate::snapshot::Snapshot;

/// Pieces cut from one keyed-state handle per thread at least: more than one, so threads that
/// finish early find work.
const PIECES_PER_THREAD: usize = 4;
/// Stored bytes of a piece of a large handle: small enough that a worker ahead of the consumer
/// buffers a whole piece's results in little memory and the threads stay evenly busy, large
/// enough that opening the handle once per piece costs little.
const PIECE_BYTES: u64 = 4 * 1024 * 1024;

/// The threads to use by default: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One independent piece of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// The subtask.
    pub subtask: SubtaskRef,
    /// Which of its state.
    pub part: PiecePart,
    /// Stored bytes the piece reads, estimated from the handles (for progress).
    pub bytes: u64,
    /// The last piece of its subtask.
    pub ends_subtask: bool,
}

/// Which part of a subtask's selected state a [`Piece`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiecePart {
    /// All of it: operator state, then keyed state.
    Subtask,
    /// Its operator state only.
    OperatorState,
    /// Its keyed state in these key groups only.
    KeyGroups(KeyGroupRange),
}

impl Piece {
    /// The piece's entries, streamed, in snapshot order.
    pub fn entries<'a>(&self, snapshot: &'a Snapshot, selection: &Selection) -> SnapshotEntries<'a> {
        let mut selection = selection.clone();
        if let PiecePart::KeyGroups(r) = self.part {
            selection.key_groups = Some(selection.key_groups.map_or(r, |s| intersect(s, r)));
        }
        let entries = SnapshotEntries::for_subtask(snapshot, selection, self.subtask);
        match self.part {
            PiecePart::Subtask => entries,
            PiecePart::OperatorState => entries.keyed_only(false),
            PiecePart::KeyGroups(_) => entries.keyed_only(true),
        }
    }
}

/// The pieces of a read of `selection` on `threads` threads, in snapshot order. One thread: one
/// piece per subtask. More: each keyed-state handle is cut into key-group ranges of about equal
/// stored bytes, at least `threads` × 4 of them and of at most 4 MiB where key groups allow (by
/// the key-group offsets where the format records them, else equal ranges) — except changelog
/// handles, whose change log each piece would read again.
pub fn pieces(snapshot: &Snapshot, selection: &Selection, threads: usize) -> Vec<Piece> {
    let per_handle = if threads > 1 { threads * PIECES_PER_THREAD } else { 1 };
    let mut out = Vec::new();
    for sub in SnapshotEntries::subtasks(snapshot, selection) {
        let Some(state) = snapshot.metadata.operators[sub.operator].subtasks[sub.subtask].state.as_ref() else { continue };
        let operator_bytes = state.managed_operator_state.as_ref().filter(|_| selection.key_groups.is_none()).map(|o| o.delegate.size());
        let keyed = state.managed_keyed_state.as_ref();
        let keyed_bytes: u64 = keyed.map_or(0, |h| h.streams().iter().map(|(_, s)| s.size()).sum());
        let whole = Piece { subtask: sub, part: PiecePart::Subtask, bytes: operator_bytes.unwrap_or(0) + keyed_bytes, ends_subtask: true };
        let Some(h) = keyed.filter(|h| per_handle > 1 && !matches!(h, KeyedStateHandle::Changelog(_))) else {
            out.push(whole);
            continue;
        };
        let range = selection.key_groups.map_or(h.key_group_range(), |s| intersect(h.key_group_range(), s));
        let total = keyed_bytes.max(1);
        let ranges = if range.len == 0 {
            Vec::new()
        } else {
            key_group_splits(h, range, total.div_ceil(per_handle as u64).clamp(1, PIECE_BYTES), true)
        };
        if ranges.len() <= 1 {
            out.push(whole);
            continue;
        }
        if let Some(b) = operator_bytes {
            out.push(Piece { subtask: sub, part: PiecePart::OperatorState, bytes: b, ends_subtask: false });
        }
        let last = ranges.len() - 1;
        out.extend(ranges.into_iter().enumerate().map(|(i, (r, b))| Piece { subtask: sub, part: PiecePart::KeyGroups(r), bytes: b, ends_subtask: i == last }));
    }
    out
}

/// Cuts a sorted list of key groups of a handle of `bytes` stored bytes into runs of about equal
/// length: as many as the handle has pieces of 4 MiB, at least `threads` × 4 (one run for one
/// thread), for readers that list a handle's key groups first (`verify`).
pub fn split_key_groups(key_groups: &[u32], bytes: u64, threads: usize) -> Vec<&[u32]> {
    let n = if threads > 1 { (threads * PIECES_PER_THREAD).max(bytes.div_ceil(PIECE_BYTES) as usize) } else { 1 };
    let size = key_groups.len().div_ceil(n).max(1);
    key_groups.chunks(size).collect()
}

/// The overlap of two key-group ranges (empty when none).
pub(crate) fn intersect(a: KeyGroupRange, b: KeyGroupRange) -> KeyGroupRange {
    let start = a.start.max(b.start);
    let end = (u64::from(a.start) + u64::from(a.len)).min(u64::from(b.start) + u64::from(b.len));
    KeyGroupRange::new(start, end.saturating_sub(u64::from(start)) as u32)
}

/// Key-group ranges of `range` (within handle `h`) of about `max` stored bytes each, with their
/// bytes: by the key-group offsets of key-grouped streams; for other handles equal ranges by
/// their total size when `split_unindexed`, else one range.
pub(crate) fn key_group_splits(h: &KeyedStateHandle, range: KeyGroupRange, max: u64, split_unindexed: bool) -> Vec<(KeyGroupRange, u64)> {
    let max = max.max(1);
    let total: u64 = h.streams().iter().map(|(_, s)| s.size()).sum();
    match h {
        KeyedStateHandle::KeyGroups(kg) => {
            // Each key group's bytes: from its offset to the next larger one (the stream's end
            // for the last). Empty key groups of full snapshots record offset 0.
            let n = kg.offsets.len();
            let mut sizes = vec![0u64; n];
            let mut next = kg.delegate.size();
            for i in (0..n).rev() {
                let o = kg.offsets[i];
                if o > 0 && (o as u64) < next {
                    sizes[i] = next - o as u64;
                    next = o as u64;
                }
            }
            let base = kg.key_group_range.start;
            let mut out = Vec::new();
            let (mut start, mut acc) = (None::<u32>, 0u64);
            for kgi in range.start..range.start + range.len {
                let size = kgi.checked_sub(base).and_then(|i| sizes.get(i as usize)).copied().unwrap_or(0);
                if start.is_some() && acc > 0 && acc + size > max {
                    let s = start.unwrap_or(kgi);
                    out.push((KeyGroupRange::new(s, kgi - s), acc));
                    start = None;
                    acc = 0;
                }
                start.get_or_insert(kgi);
                acc += size;
            }
            if let Some(s) = start {
                out.push((KeyGroupRange::new(s, range.start + range.len - s), acc));
            }
            out
        }
        _ if split_unindexed && total > max => {
            let parts = total.div_ceil(max).min(u64::from(range.len)).max(1) as u32;
            (0..parts)
                .map(|i| {
                    let s = range.start + (u64::from(range.len) * u64::from(i) / u64::from(parts)) as u32;
                    let e = range.start + (u64::from(range.len) * u64::from(i + 1) / u64::from(parts)) as u32;
                    (KeyGroupRange::new(s, e - s), total / u64::from(parts))
                })
                .collect()
        }
        _ => vec![(range, total)],
    }
}

/// Runs `produce` for every piece on up to `threads` threads and hands what it emits to
/// `consume` on this thread, piece after piece in the order of `pieces`, each piece's results
/// in the order emitted: the same calls to `consume` as one thread producing every piece in
/// turn.
///
/// A worker buffers a piece's results while the consumer is busy with earlier pieces, so both
/// keep going; memory is bounded by `budget` bytes, each result counting `weight(&result)`:
/// pieces ahead of the one being consumed hold at most `budget` between them, and the piece
/// being consumed at most `budget` of its own (or one result, however large, so a run never
/// stalls). Workers start a piece only within a window of `4 × threads` pieces ahead of the
/// consumer. The first error, of `produce` (in piece order) or of `consume`, ends the run and
/// is returned; pieces after it are not started, those under way stop at their next emit.
pub fn ordered<P, T, F, C, W>(pieces: &[P], threads: usize, budget: usize, weight: W, produce: F, mut consume: C) -> Result<()>
where
    P: Sync,
    T: Send,
    W: Fn(&T) -> usize + Sync,
    F: Fn(&P, &mut dyn FnMut(T) -> Result<()>) -> Result<()> + Sync,
    C: FnMut(T) -> Result<()>,
{
    if threads <= 1 || pieces.len() <= 1 {
        for p in pieces {
            produce(p, &mut consume)?;
        }
        return Ok(());
    }
    let window = WINDOW_PER_THREAD * threads;
    let shared = Shared {
        state: Mutex::new(State { queues: pieces.iter().map(|_| Queue::default()).collect(), buffered: 0, consumed: 0, stop: false }),
        ready: Condvar::new(),
        room: Condvar::new(),
    };
    let next = AtomicUsize::new(0);
    // The first piece that failed: no piece after it is started.
    let failed_at = AtomicUsize::new(usize::MAX);
    std::thread::scope(|s| {
        for _ in 0..threads.min(pieces.len()) {
            let (produce, weight, shared, next, failed_at) = (&produce, &weight, &shared, &next, &failed_at);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= pieces.len() || i > failed_at.load(Ordering::Relaxed) {
                    break;
                }
                // Wait until the piece is within the window ahead of the one consumed.
                {
                    let mut st = shared.lock();
                    while i >= st.consumed + window && !st.stop {
                        st = shared.room.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                    if st.stop {
                        break;
                    }
                }
                let mut emit = |t: T| -> Result<()> {
                    let w = weight(&t);
                    let mut st = shared.lock();
                    loop {
                        if st.stop {
                            return Err(stopped());
                        }
                        let own = st.queues[i].bytes;
                        let fits = if i == st.consumed { own == 0 || own.saturating_add(w) <= budget } else { st.buffered.saturating_add(w) <= budget };
                        if fits {
                            st.queues[i].items.push_back((t, w));
                            st.queues[i].bytes += w;
                            st.buffered += w;
                            if i == st.consumed {
                                shared.ready.notify_one();
                            }
                            return Ok(());
                        }
                        st = shared.room.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                };
                // A panic is an error of its piece: the consumer must not wait for the rest.
                let r = std::panic::catch_unwind(AssertUnwindSafe(|| produce(&pieces[i], &mut emit)))
                    .unwrap_or_else(|_| Err(Error::Invalid("a reading thread panicked".into())));
                if r.is_err() {
                    failed_at.fetch_min(i, Ordering::Relaxed);
                }
                let mut st = shared.lock();
                st.queues[i].end = Some(r);
                if i == st.consumed {
                    shared.ready.notify_one();
                }
            });
        }
        // However the consumer leaves (an error, a panic), the workers must stop waiting.
        let _stop = StopOnDrop(&shared);
        for i in 0..pieces.len() {
            {
                let mut st = shared.lock();
                st.consumed = i;
                shared.room.notify_all();
            }
            loop {
                let item = {
                    let mut st = shared.lock();
                    loop {
                        if let Some((t, w)) = st.queues[i].items.pop_front() {
                            st.queues[i].bytes -= w;
                            st.buffered -= w;
                            shared.room.notify_all();
                            break Ok(t);
                        }
                        if let Some(end) = st.queues[i].end.take() {
                            break Err(end);
                        }
                        st = shared.ready.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                };
                match item {
                    Ok(t) => consume(t)?,
                    Err(Ok(())) => break,
                    Err(Err(e)) => return Err(e),
                }
            }
        }
        Ok(())
    })
}

/// How many pieces per thread a worker may start ahead of the one being consumed.
const WINDOW_PER_THREAD: usize = 4;

/// What [`ordered`]'s threads share, under one lock.
struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when the piece being consumed has a result or ended.
    ready: Condvar,
    /// Signalled when the consumer moved on or took a result (the window or budget has room).
    room: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct State<T> {
    /// Per piece: its results not yet consumed.
    queues: Vec<Queue<T>>,
    /// The bytes all queues hold.
    buffered: usize,
    /// The piece being consumed.
    consumed: usize,
    /// The run ended: workers stop.
    stop: bool,
}

struct Queue<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    /// How the piece's production ended, once it did.
    end: Option<Result<()>>,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue { items: VecDeque::new(), bytes: 0, end: None }
    }
}

/// Stops the run's workers when dropped.
struct StopOnDrop<'a, T>(&'a Shared<T>);

impl<T> Drop for StopOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.lock().stop = true;
        self.0.room.notify_all();
    }
}

fn stopped() -> Error {
    Error::Invalid("the read was stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of 0..n numbers; each piece emits its numbers one at a time.
    fn run(pieces: usize, per: usize, threads: usize, budget: usize, fail: Option<(usize, usize)>) -> (Vec<usize>, Result<()>) {
        let ps: Vec<usize> = (0..pieces).collect();
        let mut got = Vec::new();
        let r = ordered(
            &ps,
            threads,
            budget,
            |_| 1,
            |&p, emit| {
                for j in 0..per {
                    if fail == Some((p, j)) {
                        return Err(Error::Invalid(format!("piece {p} failed at {j}")));
                    }
                    // Later pieces are quicker: without the ordering they would come first.
                    if p % 3 == 0 {
                        std::thread::yield_now();
                    }
                    emit(p * per + j)?;
                }
                Ok(())
            },
            |t| {
                got.push(t);
                Ok(())
            },
        );
        (got, r)
    }

    fn open(case: &str) -> Snapshot {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/flink-2.3.0").join(case);
        let meta = walk(&dir).unwrap_or_else(|| panic!("no _metadata under {}", dir.display()));
        Snapshot::open(std::sync::Arc::new(crate::storage::LocalStorage), meta.to_str().unwrap()).unwrap()
    }

    fn walk(dir: &std::path::Path) -> Option<std::path::PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "_metadata") {
                return Some(p);
            }
            if p.is_dir() {
                if let Some(m) = walk(&p) {
                    return Some(m);
                }
            }
        }
        None
    }

    /// Every keyed handle but a changelog one is cut into key-group ranges on several threads
    /// (the tests comparing thread counts exercise them), one piece per subtask on one thread;
    /// the pieces' entries are those of the whole read, in its order.
    #[test]
    fn pieces_cut_keyed_handles_and_keep_the_order() {
        for (case, cut) in [
            ("heap-savepoint-canonical", true),
            ("rocksdb-savepoint-native", true),
            ("rocksdb-checkpoint-incremental", true),
            ("heap-changelog-checkpoint", false),
        ] {
            let s = open(case);
            let sel = Selection::default();
            let subtasks = SnapshotEntries::subtasks(&s, &sel);
            let one = pieces(&s, &sel, 1);
            assert_eq!(one.iter().map(|p| p.subtask).collect::<Vec<_>>(), subtasks, "{case}");
            assert!(one.iter().all(|p| p.part == PiecePart::Subtask && p.ends_subtask), "{case}");
            let four = pieces(&s, &sel, 4);
            let ranges = four.iter().filter(|p| matches!(p.part, PiecePart::KeyGroups(_))).count();
            assert_eq!(ranges > subtasks.len(), cut, "{case}: {four:?}");
            let all: Vec<String> = SnapshotEntries::new(&s, sel.clone()).map(|e| format!("{:?}", e.unwrap().raw)).collect();
            assert!(all.len() > 100, "{case}");
            let pieced: Vec<String> = four.iter().flat_map(|p| p.entries(&s, &sel)).map(|e| format!("{:?}", e.unwrap().raw)).collect();
            assert_eq!(pieced, all, "{case}");
        }
    }

    #[test]
    fn ordered_results_do_not_depend_on_threads() {
        let (one, r1) = run(37, 50, 1, 1, None);
        r1.unwrap();
        assert_eq!(one, (0..37 * 50).collect::<Vec<_>>());
        // A budget of none and of one result (each piece waits for the consumer), of less than a piece,
        // and of every piece.
        for budget in [0, 1, 30, 10_000] {
            for threads in [2, 3, 8] {
                let (many, r) = run(37, 50, threads, budget, None);
                r.unwrap();
                assert_eq!(many, one, "{threads} threads, budget {budget}");
            }
        }
    }

    #[test]
    fn an_error_in_one_piece_ends_the_run_after_what_came_before() {
        for threads in [1, 2, 4] {
            let (got, r) = run(20, 10, threads, 25, Some((7, 3)));
            let e = r.unwrap_err().to_string();
            assert!(e.contains("piece 7 failed at 3"), "{e}");
            assert_eq!(got, (0..7 * 10 + 3).collect::<Vec<_>>(), "{threads} threads");
        }
    }

    #[test]
    fn a_consumer_error_stops_the_workers() {
        let ps: Vec<usize> = (0..100).collect();
        let produced = AtomicUsize::new(0);
        let mut seen = 0;
        let r = ordered(
            &ps,
            4,
            100,
            |_| 1,
            |_, emit| {
                for j in 0..1000 {
                    produced.fetch_add(1, Ordering::Relaxed);
                    emit(j)?;
                }
                Ok(())
            },
            |_| {
                seen += 1;
                if seen == 1500 {
                    return Err(Error::Invalid("disk full".into()));
                }
                Ok(())
            },
        );
        assert!(r.unwrap_err().to_string().contains("disk full"));
        // The budget bounds how far the workers ran ahead: 100 results of the piece consumed,
        // 100 of those after it, one being emitted per worker.
        assert!(produced.load(Ordering::Relaxed) <= 1500 + 2 * 100 + 4, "{}", produced.load(Ordering::Relaxed));
    }

    #[test]
    fn a_panic_in_a_piece_is_an_error_not_a_hang() {
        let ps: Vec<usize> = (0..10).collect();
        let r = ordered(
            &ps,
            2,
            10,
            |_| 1,
            |&p, emit| {
                if p == 4 {
                    panic!("reader bug");
                }
                emit(p)
            },
            |_| Ok(()),
        );
        assert!(r.unwrap_err().to_string().contains("panicked"));
    }
}
