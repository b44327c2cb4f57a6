//! The head: readings not yet folded into `readings`, keyed time ++ source.
//!
//! `readings` is keyed source ++ time, so a commit of one reading per source for 1,000
//! sources touches ~1,000 leaf pages (each copied, written and faulted in). New readings
//! go to the head instead, whose time-first keys make each commit append to a few of its
//! rightmost pages. The writer folds the head into `readings` when it passes
//! `[store] head_rows` or `fold_every_s` after the last fold: each source's leaf page is
//! then touched once per fold instead of once per commit.
//!
//! A fold is a series of transactions, each of which moves the head's rows of a window of
//! source ids ([`FOLD_SOURCES`], or a [`FOLD_WINDOWS`]th of the sources when there are
//! more; at most [`FOLD_ROWS`] rows) into `readings` and deletes
//! them from the head. Every row is in exactly one of the two tables in every committed
//! state, so a kill at any moment loses nothing committed and duplicates nothing; the
//! next fold simply moves what is left. Small transactions also bound what LMDB keeps:
//! it holds the dirty pages of its largest write transaction on its own free list for
//! good, so one fold of 1,000 sources in one transaction would keep ~5 MB.
//!
//! Readers see head and `readings` as one (`query.rs`, `prune`, `evict_oldest`, counts).

use std::ops::Bound;
use std::time::Duration;

use heed::{MdbError, PutFlags, RoTxn, RwTxn};

use super::{Db, Store, StoreError, codec};
use crate::graph::{Micros, Reading, SourceId};
use codec::{Corrupt, READING_KEY_LEN, READING_VALUE_MAX};

/// When the writer folds the head into `readings`: once it holds `head_rows` readings, or
/// `every` after the last fold if it holds any. Both from `[store]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldPolicy {
    pub head_rows: u64,
    pub every: Duration,
}

impl Default for FoldPolicy {
    fn default() -> Self {
        FoldPolicy {
            head_rows: 32_768,
            every: Duration::from_secs(300),
        }
    }
}

/// Source ids whose rows one fold transaction moves, at least: more when the store knows
/// more than `FOLD_SOURCES × FOLD_WINDOWS` sources, since every window scans the head.
pub(crate) const FOLD_SOURCES: u32 = 64;
/// Windows per fold, at most (with more sources than `FOLD_SOURCES` each).
pub(crate) const FOLD_WINDOWS: u64 = 16;
/// Rows one fold transaction moves at most (the rest of the window goes in the next).
pub(crate) const FOLD_ROWS: usize = 2048;

/// What one fold transaction did: rows moved, and the first source id of the next
/// window (`None`: the head is folded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FoldStep {
    pub moved: u64,
    pub next: Option<u32>,
}

/// Put `value` under `key(ts)`, moving it 1 µs later while that key is taken. Returns the
/// timestamp used, or `None` when no later one is free (only at the very end of time).
pub(super) fn put_unique(
    db: &Db,
    wtxn: &mut RwTxn,
    key: impl Fn(Micros) -> [u8; READING_KEY_LEN],
    mut ts: Micros,
    value: &[u8],
) -> Result<Option<Micros>, StoreError> {
    loop {
        match db.put_with_flags(wtxn, PutFlags::NO_OVERWRITE, &key(ts), value) {
            Ok(()) => return Ok(Some(ts)),
            Err(heed::Error::Mdb(MdbError::KeyExist)) => match ts.checked_add(1) {
                Some(t) => ts = t,
                None => return Ok(None),
            },
            Err(e) => return Err(e.into()),
        }
    }
}

impl Store {
    /// The fold policy the writer follows (`set_fold_policy`, else the defaults).
    pub fn fold_policy(&self) -> FoldPolicy {
        self.fold.get().copied().unwrap_or_default()
    }

    /// Set the fold policy (from `[store]`). Set once, before the writer starts.
    pub fn set_fold_policy(&self, p: FoldPolicy) {
        let _ = self.fold.set(p);
    }

    /// Put one reading into the head. False if no free timestamp is left.
    pub(super) fn put_head(
        &self,
        wtxn: &mut RwTxn,
        r: &Reading,
        vbuf: &mut [u8; READING_VALUE_MAX],
    ) -> Result<bool, StoreError> {
        let n = codec::encode_reading_value(r.flags, &r.value, vbuf);
        let key = |ts| codec::head_key(ts, r.source);
        match put_unique(&self.head, wtxn, key, r.ts, &vbuf[..n])? {
            Some(_) => Ok(true),
            None => {
                log::warn!(
                    "store: no free timestamp for a reading of source {}, dropped",
                    r.source.0
                );
                Ok(false)
            }
        }
    }

    /// Readings in the head, not yet folded.
    pub fn head_len(&self) -> Result<u64, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.head.len(&rtxn)?)
    }

    /// One fold transaction: move the head's rows of sources `from_source ..
    /// from_source + window` (at most `FOLD_ROWS`) into `readings`. `buf` is reused
    /// between calls. A row whose source and time are taken in `readings` (a late
    /// duplicate) moves 1 µs later, as at ingest: two readings are never merged.
    pub(crate) fn fold_step(
        &self,
        from_source: u32,
        window: u32,
        buf: &mut Vec<u8>,
    ) -> Result<FoldStep, StoreError> {
        let lo = u64::from(from_source);
        let hi = lo + u64::from(window.max(1));
        let mut wtxn = self.env.write_txn()?;
        buf.clear();
        let mut rows = 0usize;
        let mut full = false;
        let mut beyond: Option<u32> = None;
        for kv in self.head.iter(&wtxn)? {
            let (k, v) = kv?;
            let (source, _) = codec::decode_head_key(k)?;
            let s = u64::from(source.0);
            if s >= hi {
                beyond = Some(beyond.map_or(source.0, |b| b.min(source.0)));
            } else if s >= lo {
                if rows == FOLD_ROWS {
                    full = true;
                    break;
                }
                let len = u8::try_from(v.len()).map_err(|_| Corrupt("head value length"))?;
                buf.extend_from_slice(k);
                buf.push(len);
                buf.extend_from_slice(v);
                rows += 1;
            }
        }
        let mut at = 0;
        while at < buf.len() {
            let k = buf.get(at..at + READING_KEY_LEN).ok_or(Corrupt("fold"))?;
            let len = *buf.get(at + READING_KEY_LEN).ok_or(Corrupt("fold"))? as usize;
            let v_at = at + READING_KEY_LEN + 1;
            let v = buf.get(v_at..v_at + len).ok_or(Corrupt("fold"))?;
            let (source, ts) = codec::decode_head_key(k)?;
            let key = |ts| codec::reading_key(source, ts);
            if put_unique(&self.readings, &mut wtxn, key, ts, v)?.is_none() {
                log::warn!(
                    "store: no free timestamp for a reading of source {} while folding, dropped",
                    source.0
                );
            }
            self.head.delete(&mut wtxn, k)?;
            at = v_at + len;
        }
        wtxn.commit()?;
        Ok(FoldStep {
            moved: rows as u64,
            next: if full { Some(from_source) } else { beyond },
        })
    }

    /// Fold the whole head into `readings`, one source window per transaction (see the
    /// module doc); returns the readings moved. `buf` is reused between transactions. On
    /// an error what was moved stays moved; the rest waits in the head.
    pub fn fold(&self, buf: &mut Vec<u8>) -> Result<u64, StoreError> {
        let sources = {
            let rtxn = self.env.read_txn()?;
            self.sources.len(&rtxn)?
        };
        let window = sources
            .div_ceil(FOLD_WINDOWS)
            .clamp(u64::from(FOLD_SOURCES), u64::from(u32::MAX)) as u32;
        let mut next = Some(0u32);
        let mut moved = 0u64;
        while let Some(from) = next {
            let step = self.fold_step(from, window, buf)?;
            moved += step.moved;
            next = step.next;
        }
        Ok(moved)
    }

    /// Head rows of `source` with `from <= ts < to`, newest first, at most `limit`.
    /// Scans the head's rows in that time range (bounded by `head_rows`).
    pub(super) fn head_history(
        &self,
        rtxn: &RoTxn,
        source: SourceId,
        from: Micros,
        to: Micros,
        limit: usize,
    ) -> Result<Vec<Reading>, StoreError> {
        let lo = codec::head_key(from, SourceId(0));
        let hi = codec::head_key(to, SourceId(0));
        let range = (
            Bound::Included(lo.as_slice()),
            Bound::Excluded(hi.as_slice()),
        );
        let mut out = Vec::new();
        for kv in self.head.rev_range(rtxn, &range)? {
            if out.len() == limit {
                break;
            }
            let (k, v) = kv?;
            if k.get(8..) == Some(source.0.to_be_bytes().as_slice()) {
                out.push(codec::decode_head_reading(k, v)?);
            }
        }
        Ok(out)
    }

    /// Merge the head's newest reading of each source into `latest` (sorted by source,
    /// one reading each), keeping it sorted.
    pub(super) fn head_latest_all(
        &self,
        rtxn: &RoTxn,
        latest: &mut Vec<Reading>,
    ) -> Result<(), StoreError> {
        for kv in self.head.iter(rtxn)? {
            let (k, v) = kv?;
            let r = codec::decode_head_reading(k, v)?;
            match latest.binary_search_by_key(&r.source, |l| l.source) {
                Ok(i) if latest[i].ts <= r.ts => latest[i] = r,
                Ok(_) => {}
                Err(i) => latest.insert(i, r),
            }
        }
        Ok(())
    }

    /// Delete head rows with `from <= ts < older_than`, at most `max` (retention).
    pub(super) fn prune_head(
        &self,
        wtxn: &mut RwTxn,
        from: Micros,
        older_than: Micros,
        max: u64,
    ) -> Result<u64, StoreError> {
        if from >= older_than || max == 0 {
            return Ok(0);
        }
        let lo = codec::head_key(from, SourceId(0));
        let hi = codec::head_key(older_than, SourceId(0));
        let range = (
            Bound::Included(lo.as_slice()),
            Bound::Excluded(hi.as_slice()),
        );
        let mut it = self.head.range_mut(wtxn, &range)?;
        let mut deleted = 0;
        while deleted < max {
            match it.next() {
                Some(Ok(_)) => {
                    // SAFETY: no key or value borrowed from the iterator is alive here.
                    unsafe { it.del_current()? };
                    deleted += 1;
                }
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
        Ok(deleted)
    }

    /// Give the map's resident pages back (the writer does after a fold, which faults in
    /// a page of every source, and once a second). The map is a read-only shared file mapping (the store never opens with
    /// `WRITE_MAP`): dropping its pages only makes the next access fault them in again
    /// from the page cache, and pointers readers hold into it stay valid.
    pub(crate) fn release_map_pages(&self) {
        let Some((addr, len)) = self.map_range else {
            return;
        };
        // SAFETY: `addr .. addr + len` is LMDB's mapping of the data file (found at open
        // in /proc/self/maps), alive as long as the environment, which `self` owns, and
        // never moved (the map size is set once, at open); MADV_DONTNEED on a read-only
        // MAP_SHARED file mapping discards no data (see above).
        let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if rc != 0 {
            log::debug!(
                "store: madvise(DONTNEED) failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Where the data file is mapped in this process: LMDB does not say (its `map_addr` is
/// only set with a fixed map), so look it up in /proc/self/maps by the file's path.
/// `None` where that is not readable (then the pages are simply not given back).
pub(super) fn find_map(data_file: &std::path::Path) -> Option<(usize, usize)> {
    let path = std::fs::canonicalize(data_file).ok()?;
    let path = path.to_str()?;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let range = f.next()?;
        // perms, offset, device, inode, then the path (which may hold spaces).
        let rest = f.nth(4)?;
        let at = line.find(rest)?;
        if &line[at..] != path {
            return None;
        }
        let (a, b) = range.split_once('-')?;
        let a = usize::from_str_radix(a, 16).ok()?;
        let b = usize::from_str_radix(b, 16).ok()?;
        Some((a, b.checked_sub(a)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Item, Prune, PruneTarget, Value};
    use crate::store::StoreOptions;
    use crate::store::tests::TempDir;

    fn opts() -> StoreOptions {
        StoreOptions { map_size: 64 << 20 }
    }

    fn num(s: u32, ts: Micros, x: f64) -> Item {
        Item::Reading(Reading::new(SourceId(s), ts, Value::Number(x)))
    }

    /// Fold the whole head, checking after every transaction (a state a kill could
    /// leave) that readers see exactly `want`.
    fn fold_all(store: &Store, want: &View) -> u32 {
        let mut buf = Vec::new();
        let mut next = Some(0);
        let mut steps = 0;
        while let Some(from) = next {
            let step = store.fold_step(from, FOLD_SOURCES, &mut buf).unwrap();
            next = step.next;
            steps += 1;
            assert_eq!(&view(store), want, "after fold step {steps}");
        }
        assert_eq!(store.head_len().unwrap(), 0);
        steps
    }

    /// Everything a reader can see of the raw readings.
    #[derive(Debug, PartialEq)]
    struct View {
        history: Vec<Vec<Reading>>,
        latest: Vec<Option<Reading>>,
        latest_all: Vec<Reading>,
        count: u64,
    }

    fn view(store: &Store) -> View {
        let n = store.sources_seen();
        View {
            history: (0..n)
                .map(|s| {
                    store
                        .history(SourceId(s), Micros::MIN, Micros::MAX, usize::MAX)
                        .unwrap()
                })
                .collect(),
            latest: (0..n).map(|s| store.latest(SourceId(s)).unwrap()).collect(),
            latest_all: store.latest_all().unwrap(),
            count: store.counts().unwrap().readings,
        }
    }

    impl Store {
        /// One past the highest source id with a reading (tests only).
        fn sources_seen(&self) -> u32 {
            self.latest_all()
                .unwrap()
                .last()
                .map_or(0, |r| r.source.0 + 1)
        }
    }

    #[test]
    fn a_fold_moves_every_reading_once_and_readers_see_no_difference() {
        let dir = TempDir::new("fold");
        let store = Store::open(&dir.0, &opts()).unwrap();
        // 300 sources (three windows) for 20 seconds, one batch a second; source 7 also
        // has 5,000 readings of its own (more than one transaction moves).
        for sec in 0..20i64 {
            let batch: Vec<Item> = (0..300)
                .map(|s| num(s, sec * 1_000_000, (s as i64 * 100 + sec) as f64))
                .collect();
            store.write_batch(&[], &batch).unwrap();
        }
        let many: Vec<Item> = (0..5000)
            .map(|i| num(7, 30_000_000 + i, i as f64))
            .collect();
        store.write_batch(&[], &many).unwrap();
        assert_eq!(store.head_len().unwrap(), 300 * 20 + 5000);
        let before = view(&store);
        assert_eq!(before.count, 11_000);
        assert_eq!(before.history[7].len(), 5020);
        assert_eq!(before.history[7][0].ts, 30_000_000 + 4999);
        assert_eq!(before.latest[299].unwrap().ts, 19_000_000);
        let steps = fold_all(&store, &before);
        assert!(
            steps >= 4,
            "{steps}: three windows, one of them in two transactions"
        );
        // Later readings go to the head again, and the two are read as one.
        store.write_batch(&[], &[num(7, 40_000_000, 1.0)]).unwrap();
        assert_eq!(store.latest(SourceId(7)).unwrap().unwrap().ts, 40_000_000);
        let h = store
            .history(SourceId(7), 29_999_999, 40_000_001, 3)
            .unwrap();
        let ts: Vec<Micros> = h.iter().map(|r| r.ts).collect();
        assert_eq!(ts, vec![40_000_000, 30_004_999, 30_004_998]);
        assert_eq!(store.counts().unwrap().readings, 11_001);
        assert_eq!(store.counts().unwrap().head, 1);
    }

    #[test]
    fn history_merges_head_and_folded_newest_first_with_limits() {
        let dir = TempDir::new("merge");
        let store = Store::open(&dir.0, &opts()).unwrap();
        // Even timestamps folded, odd ones (and one late, older one) in the head.
        let even: Vec<Item> = (0..50).map(|i| num(1, i * 2, i as f64)).collect();
        store.write_batch(&[], &even).unwrap();
        let v = view(&store);
        fold_all(&store, &v);
        let odd: Vec<Item> = (0..50).map(|i| num(1, i * 2 + 1, i as f64)).collect();
        store.write_batch(&[], &odd).unwrap();
        store.write_batch(&[], &[num(2, 5, 0.0)]).unwrap();
        let all = store
            .history(SourceId(1), Micros::MIN, Micros::MAX, 1000)
            .unwrap();
        let ts: Vec<Micros> = all.iter().map(|r| r.ts).collect();
        assert_eq!(ts, (0..100).rev().collect::<Vec<_>>());
        let some = store.history(SourceId(1), 10, 20, 4).unwrap();
        let ts: Vec<Micros> = some.iter().map(|r| r.ts).collect();
        assert_eq!(ts, vec![19, 18, 17, 16]);
        assert_eq!(store.history(SourceId(2), 0, 5, 10).unwrap(), vec![]);
        assert_eq!(store.history(SourceId(2), 5, 6, 10).unwrap().len(), 1);
        // The newest of a source may be folded while the head holds others' readings.
        store.write_batch(&[], &[num(3, 1, 0.0)]).unwrap();
        let v = view(&store);
        fold_all(&store, &v);
        store.write_batch(&[], &[num(4, 500, 0.0)]).unwrap();
        assert_eq!(store.latest(SourceId(3)).unwrap().unwrap().ts, 1);
        assert_eq!(store.latest(SourceId(4)).unwrap().unwrap().ts, 500);
        let sources: Vec<u32> = store
            .latest_all()
            .unwrap()
            .iter()
            .map(|r| r.source.0)
            .collect();
        assert_eq!(sources, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_late_duplicate_of_a_folded_reading_is_kept_beside_it() {
        let dir = TempDir::new("dup");
        let store = Store::open(&dir.0, &opts()).unwrap();
        store.write_batch(&[], &[num(0, 100, 1.0)]).unwrap();
        let v = view(&store);
        fold_all(&store, &v);
        // Same source and time again: both are shown, and after the fold both are kept,
        // the second 1 µs later (as two readings of one batch would be).
        store.write_batch(&[], &[num(0, 100, 2.0)]).unwrap();
        assert_eq!(view(&store).count, 2);
        let mut buf = Vec::new();
        assert_eq!(store.fold_step(0, FOLD_SOURCES, &mut buf).unwrap().moved, 1);
        let h = store.history(SourceId(0), 0, 1000, 10).unwrap();
        let got: Vec<(Micros, Value)> = h.iter().map(|r| (r.ts, r.value)).collect();
        assert_eq!(
            got,
            vec![(101, Value::Number(2.0)), (100, Value::Number(1.0))]
        );
    }

    #[test]
    fn prune_and_eviction_reach_the_head() {
        let dir = TempDir::new("prune-head");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let set = crate::clock::SET_AFTER;
        let old: Vec<Item> = (0..10).map(|i| num(i % 2, set + i as i64, 0.0)).collect();
        store.write_batch(&[], &old).unwrap();
        let v = view(&store);
        fold_all(&store, &v);
        let new: Vec<Item> = (10..20).map(|i| num(i % 2, set + i as i64, 0.0)).collect();
        store.write_batch(&[], &new).unwrap();
        // Older than set + 15: ten folded and five in the head; at most 12 at a time.
        let prune = |max| {
            Item::Prune(Prune {
                target: PruneTarget::Raw,
                older_than: set + 15,
                max,
            })
        };
        assert_eq!(store.write_batch(&[], &[prune(12)]).unwrap().pruned, 12);
        assert_eq!(store.write_batch(&[], &[prune(100)]).unwrap().pruned, 3);
        let left: Vec<Micros> = (0..2)
            .flat_map(|s| {
                store
                    .history(SourceId(s), Micros::MIN, Micros::MAX, 100)
                    .unwrap()
            })
            .map(|r| r.ts - set)
            .collect();
        assert_eq!(left, vec![18, 16, 19, 17, 15]);
        // Nothing folded: eviction takes the head's oldest.
        assert_eq!(store.evict_oldest(2).unwrap(), 2);
        assert_eq!(store.counts().unwrap().readings, 3);
        assert_eq!(store.latest(SourceId(1)).unwrap().unwrap().ts, set + 19);
    }

    #[test]
    fn a_version_1_store_is_upgraded_in_place() {
        use heed::types::Bytes;
        let dir = TempDir::new("upgrade");
        // What the version 1 code wrote: readings keyed source ++ time, no head table.
        {
            let env = unsafe {
                heed::EnvOpenOptions::new()
                    .read_txn_without_tls()
                    .map_size(16 << 20)
                    .max_dbs(16)
                    .open(&dir.0)
            }
            .unwrap();
            let wtxn = env.write_txn().unwrap();
            env.create_databases_and_commit(wtxn, |dbo, wtxn| {
                let readings = dbo.create_database::<Bytes, Bytes>(wtxn, Some("readings"))?;
                let meta = dbo.create_database::<Bytes, Bytes>(wtxn, Some("meta"))?;
                meta.put(wtxn, b"schema_version", &1u32.to_be_bytes())?;
                let mut vbuf = [0u8; READING_VALUE_MAX];
                for ts in 0..100 {
                    let n = codec::encode_reading_value(0, &Value::Number(ts as f64), &mut vbuf);
                    readings.put(wtxn, &codec::reading_key(SourceId(3), ts), &vbuf[..n])?;
                }
                Ok::<_, heed::Error>(heed::CommitOrAbort::<(), ()>::Commit(()))
            })
            .unwrap();
            env.prepare_for_closing().wait();
        }
        let store = Store::open(&dir.0, &opts()).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            Some(crate::store::SCHEMA_VERSION)
        );
        assert_eq!(store.counts().unwrap().readings, 100);
        assert_eq!(store.latest(SourceId(3)).unwrap().unwrap().ts, 99);
        store.write_batch(&[], &[num(3, 100, 0.0)]).unwrap();
        let v = view(&store);
        assert_eq!(v.history[3].len(), 101);
        fold_all(&store, &v);
        drop(store);
        // And it opens again as version 2.
        let store = Store::open(&dir.0, &opts()).unwrap();
        assert_eq!(store.counts().unwrap().readings, 101);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_map_is_found_and_its_pages_given_back_without_losing_data() {
        let dir = TempDir::new("map");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let (_, len) = store.map_range.expect("the data file's mapping");
        assert_eq!(len, 64 << 20);
        let items: Vec<Item> = (0..5_000).map(|i| num(i % 100, i as i64, 1.0)).collect();
        store.write_batch(&[], &items).unwrap();
        let v = view(&store);
        fold_all(&store, &v);
        let resident = || {
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            let (addr, _) = store.map_range.unwrap();
            let head = format!("{addr:x}-");
            let at = smaps.find(&head).unwrap();
            let rss = smaps[at..].lines().find(|l| l.starts_with("Rss:")).unwrap();
            rss.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert!(resident() > 16, "{} kB resident after reading", resident());
        store.release_map_pages();
        assert_eq!(resident(), 0);
        assert_eq!(view(&store), v);
    }

    #[test]
    fn the_writer_folds_once_the_head_passes_its_bound() {
        use std::sync::Arc;
        use std::sync::atomic::Ordering;
        let dir = TempDir::new("writer-fold");
        let store = Arc::new(Store::open(&dir.0, &opts()).unwrap());
        store.set_fold_policy(FoldPolicy {
            head_rows: 1000,
            every: Duration::from_secs(3600),
        });
        let reg = Arc::new(crate::graph::registry::Registry::new());
        let h = crate::store::writer::spawn(store.clone(), reg, 2);
        for b in 0..25i64 {
            let batch: Vec<Item> = (0..100).map(|s| num(s, b * 1000, 0.0)).collect();
            h.batches.send_blocking(batch).unwrap();
        }
        let stats = h.stats.clone();
        drop(h.batches);
        h.thread.join().unwrap();
        // Folded after the 10th and 20th batches; the last five wait in the head.
        assert_eq!(stats.folds.load(Ordering::Relaxed), 2);
        assert_eq!(stats.folded.load(Ordering::Relaxed), 2000);
        let c = store.counts().unwrap();
        assert_eq!((c.readings, c.head), (2500, 500));
        assert_eq!(
            store
                .history(SourceId(42), 0, Micros::MAX, 100)
                .unwrap()
                .len(),
            25
        );
    }
}
