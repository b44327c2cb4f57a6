//! Re-stamping what a boot with an unset clock stored, once NTP sets it.
//!
//! A Pi without a real-time clock may start in 1970; readings taken until NTP answers
//! carry 1970 stamps. When the clock goes from unset to set, the monotonic clock did not
//! jump, so the step (`clock::stepped_us`) is how far every earlier stamp of this boot is
//! off: each such reading's true time is its stamp plus the step. The `restamp` thread
//! (started only on a boot with the clock unset) waits for that moment, then moves this
//! boot's pre-step raw readings of this node's own sources to their true times and
//! rebuilds their rollups there.
//!
//! - Each transaction moves at most [`CHUNK`] readings of one source (delete and insert
//!   in the same transaction, so every reading is in exactly one place in every committed
//!   state: a kill loses or duplicates nothing; the store writer waits one short
//!   transaction at most).
//! - "This boot's" rows: stamped before `clock::SET_AFTER` and after both the agent's
//!   start and the newest pre-2025 stamp the source already had when it started. Rows of
//!   an earlier boot that never saw NTP stay in 1970 (their step is unknown), and so do
//!   this boot's rows in the rare span that overlaps them.
//! - Rollups: the 1970 buckets of this boot's span are deleted and rebuilt from the moved
//!   readings at their new times (a shifted bucket would straddle two aligned ones), one
//!   transaction per source and level. The live retention stage flushes its open 1970
//!   buckets at its next tick after the step, so passes repeat until one finds nothing.
//! - Own sources only (`Registry::is_local`): readings from other nodes and bare MQTT
//!   topics may carry their sender's stamps, which this node's step says nothing about.
//! - Left as stamped: queued outbox messages (already formatted for subscribers) and
//!   observations and memories (replicated through the sync log with their state; a
//!   rewrite would be a new version on every peer). See docs/reliability.md.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::codec::{self, READING_VALUE_MAX};
use super::{Store, StoreError};
use crate::clock::SET_AFTER;
use crate::graph::registry::Registry;
use crate::graph::{Micros, Reading, Rollup, SourceId};

/// Readings one transaction moves at most.
pub const CHUNK: usize = 1000;

/// What re-stamping did, for status (`clock.restamped`). Global like the clock it follows.
#[derive(Debug, Default)]
pub struct RestampStats {
    /// Readings moved to their true times.
    pub readings: AtomicU64,
    /// Rollup buckets rebuilt at their true times.
    pub rollups: AtomicU64,
    /// The step applied, in µs (0 until the clock was set).
    pub shift_us: AtomicU64,
}

pub static STATS: RestampStats = RestampStats {
    readings: AtomicU64::new(0),
    rollups: AtomicU64::new(0),
    shift_us: AtomicU64::new(0),
};

impl Store {
    /// Move at most `max` raw readings of `source` stamped `from <= ts < to` by `shift`, in
    /// one write transaction; the moved readings (at their new times) are left in `moved`.
    /// Fewer than `max`: nothing more in the range.
    pub(crate) fn restamp_readings(
        &self,
        source: SourceId,
        (from, to): (Micros, Micros),
        shift: Micros,
        max: usize,
        moved: &mut Vec<Reading>,
    ) -> Result<usize, StoreError> {
        moved.clear();
        let mut wtxn = self.env.write_txn()?;
        // The layout's one place here: where a source's rows of a time span are (folded
        // rows in `readings`, the rest in the head).
        let lo = codec::reading_key(source, from);
        let hi = codec::reading_key(source, to);
        let span = (lo.as_slice(), hi.as_slice());
        take(
            &self.readings,
            &mut wtxn,
            span,
            |_| true,
            codec::decode_reading,
            max,
            moved,
        )?;
        // Rows not folded yet are in the head, keyed time ++ source.
        let (hlo, hhi) = (
            codec::head_key(from, SourceId(0)),
            codec::head_key(to, SourceId(0)),
        );
        let me = source.0.to_be_bytes();
        take(
            &self.head,
            &mut wtxn,
            (hlo.as_slice(), hhi.as_slice()),
            |k| k.get(8..) == Some(me.as_slice()),
            codec::decode_head_reading,
            max,
            moved,
        )?;
        let mut vbuf = [0u8; READING_VALUE_MAX];
        for r in moved.iter_mut() {
            r.ts = r.ts.saturating_add(shift);
            self.put_head(&mut wtxn, r, &mut vbuf)?;
        }
        wtxn.commit()?;
        Ok(moved.len())
    }

    /// Delete the rollups of `source` at `level` with `from <= bucket_start < to` and merge
    /// `with` in their place, in one write transaction. Returns how many were deleted.
    pub(crate) fn replace_rollups(
        &self,
        source: SourceId,
        level: u8,
        (from, to): (Micros, Micros),
        with: &[Rollup],
    ) -> Result<u64, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let lo = codec::rollup_key(level, source, from);
        let hi = codec::rollup_key(level, source, to);
        let range = (
            Bound::Included(lo.as_slice()),
            Bound::Excluded(hi.as_slice()),
        );
        let mut deleted = 0;
        {
            let mut it = self.rollups.range_mut(&mut wtxn, &range)?;
            while let Some(kv) = it.next() {
                kv?;
                // SAFETY: no key or value borrowed from the iterator is alive here.
                unsafe { it.del_current()? };
                deleted += 1;
            }
        }
        for r in with {
            self.merge_rollup(&mut wtxn, r)?;
        }
        wtxn.commit()?;
        Ok(deleted)
    }
}

/// Delete the rows of `db` with keys in `lo..hi` that `keep` accepts, decoded into `out`,
/// until it holds `max`.
fn take(
    db: &super::Db,
    wtxn: &mut heed::RwTxn,
    (lo, hi): (&[u8], &[u8]),
    keep: impl Fn(&[u8]) -> bool,
    decode: fn(&[u8], &[u8]) -> Result<Reading, codec::Corrupt>,
    max: usize,
    out: &mut Vec<Reading>,
) -> Result<(), StoreError> {
    let range = (Bound::Included(lo), Bound::Excluded(hi));
    let mut it = db.range_mut(wtxn, &range)?;
    while out.len() < max {
        match it.next() {
            Some(Ok((k, v))) => {
                if !keep(k) {
                    continue;
                }
                let r = decode(k, v)?;
                // SAFETY: `r` is a copy; nothing borrowed from the iterator lives.
                unsafe { it.del_current()? };
                out.push(r);
            }
            Some(Err(e)) => return Err(e.into()),
            None => break,
        }
    }
    Ok(())
}

/// What a boot with the clock unset needs to re-stamp later: where each own source's rows
/// of this boot begin. Made before the graph runs ([`Restamp::prepare`]).
pub struct Restamp {
    store: Arc<Store>,
    registry: Arc<Registry>,
    /// The agent's start (wall clock, unset).
    start: Micros,
    /// Sources that had pre-2025 rows at the start: their newest such stamp + 1.
    floors: HashMap<SourceId, Micros>,
    /// Bucket widths of the rollup levels, finest first.
    levels: Vec<Micros>,
}

impl Restamp {
    /// `None` when the clock was set at the start (nothing to do).
    pub fn prepare(
        store: &Arc<Store>,
        registry: &Arc<Registry>,
        start: Micros,
        levels: Vec<Micros>,
    ) -> Option<Restamp> {
        if crate::clock::is_set(start) {
            return None;
        }
        let mut floors = HashMap::new();
        for s in registry.all() {
            if !registry.is_local(&s.name) {
                continue;
            }
            match store.history(s.id, Micros::MIN, SET_AFTER, 1) {
                Ok(v) => {
                    if let Some(r) = v.first() {
                        floors.insert(s.id, r.ts.saturating_add(1));
                    }
                }
                Err(e) => log::warn!("restamp: reading {}'s newest stamp failed: {e}", s.name),
            }
        }
        if !floors.is_empty() {
            log::info!(
                "restamp: {} source(s) hold 1970 readings from an earlier boot; those stay as stamped",
                floors.len()
            );
        }
        Some(Restamp {
            store: store.clone(),
            registry: registry.clone(),
            start,
            floors,
            levels,
        })
    }

    /// Start the `restamp` thread: it waits (checking once a second) for the clock to be
    /// set or `stop`, re-stamps, and ends.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
        std::thread::Builder::new()
            .name("restamp".into())
            .spawn(move || self.run(&stop))
            .expect("spawn restamp thread")
    }

    fn run(self, stop: &AtomicBool) {
        let tick = Duration::from_secs(1);
        while !crate::clock::is_set(crate::clock::now_us()) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(tick);
        }
        let shift = crate::clock::stepped_us();
        STATS.shift_us.store(shift.max(0) as u64, Ordering::Relaxed);
        log::info!(
            "restamp: the clock was set ({} s forward); moving this boot's 1970 readings to their true times",
            shift / 1_000_000
        );
        // Readings and rollups stamped before the step may still be on their way to the
        // store (batches, the retention stage's open buckets, flushed at its next tick):
        // pass again until a pass finds nothing, and at least 10 s after the step.
        let since = std::time::Instant::now();
        loop {
            std::thread::sleep(2 * tick);
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match self.pass(shift) {
                Ok(0) if since.elapsed() >= 10 * tick => break,
                Ok(_) => {}
                Err(e) => {
                    log::warn!("restamp: {e}; what is left stays stamped in 1970");
                    break;
                }
            }
        }
        log::info!(
            "restamp: {} reading(s) and {} rollup bucket(s) now at their true times",
            STATS.readings.load(Ordering::Relaxed),
            STATS.rollups.load(Ordering::Relaxed)
        );
    }

    /// One pass over every own source; returns readings moved plus rollups deleted.
    fn pass(&self, shift: Micros) -> Result<u64, StoreError> {
        let mut done = 0;
        let mut moved = Vec::with_capacity(CHUNK);
        for s in self.registry.all() {
            if !self.registry.is_local(&s.name) {
                continue;
            }
            let floor = self
                .floors
                .get(&s.id)
                .map_or(self.start, |f| (*f).max(self.start));
            // Rollup buckets of this boot's span, per level; a bucket that also holds an
            // earlier boot's rows (before `floor`) is kept as it is.
            let spans: Vec<(Micros, Micros)> = self
                .levels
                .iter()
                .map(|&w| {
                    if w <= 0 {
                        return (0, 0);
                    }
                    let first = floor - floor.rem_euclid(w);
                    let from = if self.floors.contains_key(&s.id) && first < floor {
                        first + w
                    } else {
                        first
                    };
                    (from, SET_AFTER)
                })
                .collect();
            let mut rebuilt: Vec<HashMap<Micros, Rollup>> = vec![HashMap::new(); spans.len()];
            loop {
                let n = self.store.restamp_readings(
                    s.id,
                    (floor, SET_AFTER),
                    shift,
                    CHUNK,
                    &mut moved,
                )?;
                STATS.readings.fetch_add(n as u64, Ordering::Relaxed);
                done += n as u64;
                for r in &moved {
                    add_to_rollups(r, shift, &self.levels, &spans, &mut rebuilt);
                }
                if n < CHUNK {
                    break;
                }
            }
            for (level, (span, buckets)) in spans.iter().zip(rebuilt).enumerate() {
                let with: Vec<Rollup> = buckets.into_values().collect();
                let deleted = self
                    .store
                    .replace_rollups(s.id, level as u8, *span, &with)?;
                STATS
                    .rollups
                    .fetch_add(with.len() as u64, Ordering::Relaxed);
                done += deleted;
            }
        }
        Ok(done)
    }
}

/// Count moved reading `r` (at its true time) into the rebuilt bucket of each level whose
/// deleted span held it, as the retention stage does (finite numbers only).
fn add_to_rollups(
    r: &Reading,
    shift: Micros,
    levels: &[Micros],
    spans: &[(Micros, Micros)],
    rebuilt: &mut [HashMap<Micros, Rollup>],
) {
    let Some(x) = r.value.as_f64().filter(|x| x.is_finite()) else {
        return;
    };
    let was = r.ts - shift;
    for (i, (&w, &(from, _))) in levels.iter().zip(spans).enumerate() {
        if w <= 0 || was < from {
            continue;
        }
        let start = r.ts - r.ts.rem_euclid(w);
        let b = rebuilt[i].entry(start).or_insert(Rollup {
            source: r.source,
            level: i as u8,
            bucket_start: start,
            count: 0,
            min: x,
            max: x,
            sum: 0.0,
        });
        b.count += 1;
        b.min = b.min.min(x);
        b.max = b.max.max(x);
        b.sum += x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Item, Value};
    use crate::store::StoreOptions;
    use crate::store::tests::TempDir;

    const DAY: Micros = 86_400_000_000;

    fn num(s: u32, ts: Micros, x: f64) -> Item {
        Item::Reading(Reading::new(SourceId(s), ts, Value::Number(x)))
    }

    #[test]
    fn readings_move_by_the_step_in_chunks_none_lost_or_doubled() {
        let dir = TempDir::new("restamp-move");
        let store = Store::open(&dir.0, &StoreOptions::default()).unwrap();
        let items: Vec<Item> = (0..2500)
            .map(|i| num(1, 600_000_000 + i * 1000, i as f64))
            .collect();
        store.write_batch(&[], &items).unwrap();
        // A reading of another source in the same span stays.
        store.write_batch(&[], &[num(2, 600_000_000, 9.0)]).unwrap();
        let shift = SET_AFTER + 400 * DAY;
        let mut moved = Vec::new();
        let mut total = 0;
        loop {
            let n = store
                .restamp_readings(SourceId(1), (0, SET_AFTER), shift, CHUNK, &mut moved)
                .unwrap();
            total += n;
            if n < CHUNK {
                break;
            }
        }
        assert_eq!(total, 2500);
        assert!(
            store
                .history(SourceId(1), 0, SET_AFTER, 10)
                .unwrap()
                .is_empty()
        );
        let after = store
            .history(SourceId(1), SET_AFTER, Micros::MAX, 10_000)
            .unwrap();
        assert_eq!(after.len(), 2500);
        assert_eq!(after.last().unwrap().ts, 600_000_000 + shift);
        assert_eq!(after[0].ts, 600_000_000 + 2499 * 1000 + shift);
        assert_eq!(
            store.history(SourceId(2), 0, SET_AFTER, 10).unwrap().len(),
            1
        );
    }

    #[test]
    fn only_this_boots_rows_of_own_sources_move() {
        let dir = TempDir::new("restamp-boots");
        let store = Arc::new(Store::open(&dir.0, &StoreOptions::default()).unwrap());
        let registry = Arc::new(Registry::with_local_types(vec!["system"]));
        let own = registry.intern("system:x", "", crate::graph::ValueKind::Number);
        let remote = registry.intern("kitchen:system:x", "", crate::graph::ValueKind::Number);
        let s = 1_000_000;
        // An earlier boot that never saw NTP: 100 s to 200 s of 1970.
        let earlier: Vec<Item> = (100..200).map(|t| num(own.id.0, t * s, 1.0)).collect();
        store.write_batch(&[], &earlier).unwrap();
        // This boot starts at 50 s; its rows before the earlier boot's last one cannot be
        // told from that boot's and stay.
        let r = Restamp::prepare(&store, &registry, 50 * s, vec![60 * s]).unwrap();
        let this: Vec<Item> = (201..260)
            .flat_map(|t| [num(own.id.0, t * s, 2.0), num(remote.id.0, t * s, 3.0)])
            .collect();
        store.write_batch(&[], &this).unwrap();
        let shift = SET_AFTER;
        r.pass(shift).unwrap();
        let left = store.history(own.id, 0, SET_AFTER, 1000).unwrap();
        assert_eq!(left.len(), 100);
        assert!(left.iter().all(|r| r.value == Value::Number(1.0)));
        let moved = store.history(own.id, SET_AFTER, Micros::MAX, 1000).unwrap();
        assert_eq!(moved.len(), 59);
        assert_eq!(moved.last().unwrap().ts, 201 * s + shift);
        // Another node's readings carry its stamps, not this node's step.
        assert_eq!(
            store.history(remote.id, 0, SET_AFTER, 1000).unwrap().len(),
            59
        );
        // The rollup bucket the earlier boot shares (180 s to 240 s) is kept as it was.
        let rebuilt = store
            .rollups(own.id, 0, SET_AFTER, Micros::MAX, 10)
            .unwrap();
        let counted: u32 = rebuilt.iter().map(|r| r.count).sum();
        assert_eq!(counted, 20, "{rebuilt:?}");
    }

    #[test]
    fn rollups_are_rebuilt_aligned_at_the_true_times() {
        let dir = TempDir::new("restamp-rollups");
        let store = Store::open(&dir.0, &StoreOptions::default()).unwrap();
        let minute = 60_000_000;
        // A 1970 rollup bucket (what the live stage wrote) to be replaced.
        let old = Rollup {
            source: SourceId(1),
            level: 0,
            bucket_start: 0,
            count: 2,
            min: 1.0,
            max: 2.0,
            sum: 3.0,
        };
        store.write_batch(&[], &[Item::Rollup(old)]).unwrap();
        // Shift by 30 s past whole minutes: the two readings land in two buckets.
        let shift = SET_AFTER + 30_000_000;
        let moved = [
            Reading::new(SourceId(1), 10_000_000 + shift, Value::Number(1.0)),
            Reading::new(SourceId(1), 40_000_000 + shift, Value::Number(2.0)),
        ];
        let spans = [(0, SET_AFTER)];
        let mut rebuilt = vec![HashMap::new()];
        for r in &moved {
            add_to_rollups(r, shift, &[minute], &spans, &mut rebuilt);
        }
        let with: Vec<Rollup> = rebuilt.pop().unwrap().into_values().collect();
        let deleted = store
            .replace_rollups(SourceId(1), 0, spans[0], &with)
            .unwrap();
        assert_eq!(deleted, 1);
        assert!(
            store
                .rollups(SourceId(1), 0, 0, SET_AFTER, 10)
                .unwrap()
                .is_empty()
        );
        let mut got = store
            .rollups(SourceId(1), 0, SET_AFTER, Micros::MAX, 10)
            .unwrap();
        got.reverse();
        let starts: Vec<Micros> = got.iter().map(|r| r.bucket_start).collect();
        assert_eq!(starts, [SET_AFTER, SET_AFTER + minute]);
        assert!(got.iter().all(|r| r.count == 1));
    }
}
