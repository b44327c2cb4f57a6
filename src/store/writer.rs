//! The store's writer thread: takes batches of items from the event loop and commits each
//! batch in one write transaction. Empty batch vectors go back to the loop for reuse, so
//! steady-state ingest allocates nothing.
//!
//! A failed commit (disk full, map full, I/O error) keeps its batch and retries the same
//! batch with capped exponential backoff; meanwhile the store is marked degraded and the
//! loop's bounded channel fills up, which is what applies back-pressure (lossy edges
//! upstream drop the oldest readings). The error is logged once per state change, not
//! per retry. After the batch sender is dropped the thread commits what is queued and
//! exits; at that point a batch that still fails is given up after a few tries.
//!
//! After a commit, when the head passes the store's `FoldPolicy`, the writer folds it into
//! `readings` (`head`) before taking the next batch. A fold that fails is logged and tried
//! again after the next commit. After a fold, and at most once a second otherwise, it
//! gives the map's resident pages back (`Store::release_map_pages`): what a commit,
//! a fold or an age-off run faulted in (a page of every source for the latter two) would
//! otherwise count in RSS until the kernel needed the memory.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Store;
use crate::graph::Item;
use crate::graph::registry::Registry;

/// First retry delay after a failed commit.
pub const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(10);
/// Tries per batch once the sender is gone (shutdown), before its items are given up.
pub const SHUTDOWN_TRIES: u32 = 3;

/// The writer's live state, for status.
#[derive(Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub readings: AtomicU64,
    pub rollups: AtomicU64,
    pub pruned: AtomicU64,
    pub failures: AtomicU64,
    /// Duration of the last commit in microseconds.
    pub last_commit_us: AtomicU64,
    /// True while the last commit failed (disk full, map full); cleared by a success.
    pub degraded: AtomicBool,
    pub last_error: Mutex<Option<String>>,
    /// Items given up at shutdown because their batch kept failing.
    pub lost: AtomicU64,
    /// Oldest raw readings deleted to make room when the store was full.
    pub evicted: AtomicU64,
    /// Folds of the head into `readings` finished, and readings they moved.
    pub folds: AtomicU64,
    pub folded: AtomicU64,
    /// Duration of the last fold in microseconds (all its transactions).
    pub last_fold_us: AtomicU64,
    /// Set when the agent is told to stop: a batch that keeps failing is then given up
    /// after [`SHUTDOWN_TRIES`], and later ones after one try, so a stop does not wait
    /// for a disk that takes no writes (read-only, full) while the graph drains into it.
    pub stopping: AtomicBool,
}

impl WriterStats {
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

/// The loop's handle: send full batches, get empty ones back.
pub struct WriterHandle {
    pub batches: async_channel::Sender<Vec<Item>>,
    pub recycled: async_channel::Receiver<Vec<Item>>,
    pub stats: Arc<WriterStats>,
    pub thread: std::thread::JoinHandle<()>,
}

/// Start the writer thread ("store"). It exits after the batch sender is dropped and the
/// last batch is committed.
pub fn spawn(store: Arc<Store>, registry: Arc<Registry>, queue: usize) -> WriterHandle {
    let (tx, rx) = async_channel::bounded::<Vec<Item>>(queue.max(1));
    let (rtx, rrx) = async_channel::bounded::<Vec<Item>>(queue.max(1) + 1);
    let stats = Arc::new(WriterStats::default());
    let st = stats.clone();
    let thread = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || {
            let mut w = Writer {
                store,
                registry,
                stats: st,
                failing_since: None,
                gave_up: false,
                last_fold: Instant::now(),
                fold_buf: Vec::new(),
                last_release: Instant::now(),
            };
            while let Ok(mut batch) = rx.recv_blocking() {
                w.commit(&batch, &rx);
                batch.clear();
                let _ = rtx.try_send(batch);
            }
            let lost = w.stats.lost.load(Ordering::Relaxed);
            if lost > 0 {
                log::error!(
                    "store: writer stopped; {lost} item(s) could not be committed and were lost"
                );
            }
        })
        .expect("spawn store thread");
    WriterHandle {
        batches: tx,
        recycled: rrx,
        stats,
        thread,
    }
}

struct Writer {
    store: Arc<Store>,
    registry: Arc<Registry>,
    stats: Arc<WriterStats>,
    /// Failed commits in a row and when the first of them happened.
    failing_since: Option<(u64, Instant)>,
    /// A batch was given up while stopping: the next failing ones get one try each.
    gave_up: bool,
    /// When the head was last folded (or the writer started).
    last_fold: Instant,
    /// Rows being moved by one fold transaction, reused.
    fold_buf: Vec<u8>,
    /// When the map's pages were last given back.
    last_release: Instant,
}

/// Below this many free bytes the filesystem counts as full when a commit fails.
const FULL_BELOW: u64 = 1 << 20;

/// A failed commit's message, saying so when the filesystem under the store is full: a
/// full tmpfs or card can fail LMDB's writes with EIO rather than ENOSPC, and the user
/// must learn that space is what is missing either way.
fn with_disk_state(msg: String, dir: &std::path::Path) -> String {
    match free_bytes(dir) {
        Some(free) if free < FULL_BELOW && !msg.contains("No space left") => format!(
            "{msg} (the filesystem holding {} is full: {} KiB free)",
            dir.display(),
            free / 1024
        ),
        _ => msg,
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a statvfs the call fills in;
    // it is read only after the call succeeded.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        Some(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

/// Give the map's resident pages back at most this often (and after every fold).
const RELEASE_EVERY: Duration = Duration::from_secs(1);

/// Share of the map in use at which the oldest readings start to be evicted.
const HIGH_WATER: f64 = 0.8;
/// Evict 1/`EVICT_SHARE` of the raw readings at a time.
const EVICT_SHARE: u64 = 20;

impl Writer {
    /// Keep headroom: once the store's pages fill `HIGH_WATER` of the map, delete the
    /// oldest raw readings (`EVICT_SHARE` of them) while deleting is still possible. LMDB
    /// deletions need free pages themselves (copy-on-write), so waiting for a full map
    /// can leave too little room even to delete. Checked after every commit (one read
    /// transaction: microseconds, next to a commit's fsync).
    fn keep_headroom(&self) {
        let Ok(c) = self.store.counts() else { return };
        if c.map_bytes == 0 || (c.used_bytes as f64) < HIGH_WATER * c.map_bytes as f64 {
            return;
        }
        let per_source = (c.readings / EVICT_SHARE)
            .div_ceil(c.sources.max(1))
            .max(16);
        self.evict(per_source, c.map_bytes);
    }

    /// Fold the head into `readings` when the policy says so: it holds `head_rows`, or
    /// `every` has passed since the last fold and it holds anything. Returns whether it
    /// folded.
    fn maybe_fold(&mut self) -> bool {
        let policy = self.store.fold_policy();
        let Ok(rows) = self.store.head_len() else {
            return false;
        };
        if rows == 0 || (rows < policy.head_rows && self.last_fold.elapsed() < policy.every) {
            return false;
        }
        let t0 = Instant::now();
        let folded = self.store.fold(&mut self.fold_buf);
        self.fold_buf = Vec::new();
        self.last_fold = Instant::now();
        let took = t0.elapsed();
        let s = &self.stats;
        s.last_fold_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
        match folded {
            Ok(moved) => {
                log::debug!(
                    "store: folded {moved} reading(s) of the head in {:.1} ms",
                    took.as_secs_f64() * 1e3
                );
                s.folds.fetch_add(1, Ordering::Relaxed);
                s.folded.fetch_add(moved, Ordering::Relaxed);
            }
            Err(e) => log::warn!("store: folding the head failed, trying again later: {e}"),
        }
        true
    }

    /// A commit failed with a full map: make room in small steps (a small deletion still
    /// fits when a large one would not), growing while they succeed.
    fn make_room(&self, batch_len: usize) -> bool {
        let map = self.store.map_size() as u64;
        let mut per_source = 16u64;
        let mut made = false;
        let mut freed = 0u64;
        while freed < 2 * batch_len as u64 {
            match self.evict(per_source, map) {
                0 => break,
                n => {
                    made = true;
                    freed += n;
                    per_source *= 2;
                }
            }
        }
        made
    }

    fn evict(&self, per_source: u64, map_bytes: u64) -> u64 {
        match self.store.evict_oldest(per_source) {
            Ok(0) => 0,
            Ok(n) => {
                self.stats.evicted.fetch_add(n, Ordering::Relaxed);
                log::warn!(
                    "store: nearly full ({} MiB map); deleted the {n} oldest raw readings to make room. \
                     Raise [store] map_size_mb or shorten raw_for in the retention stage",
                    map_bytes >> 20
                );
                n
            }
            Err(e) => {
                log::debug!("store: could not make room: {e}");
                0
            }
        }
    }

    /// Commit `batch`, retrying until it succeeds; once `rx` is closed or the agent is
    /// stopping, give up after [`SHUTDOWN_TRIES`] failed tries (one, after a first batch
    /// was given up). Returns whether the batch was committed.
    fn commit(&mut self, batch: &[Item], rx: &async_channel::Receiver<Vec<Item>>) -> bool {
        let mut backoff = RETRY_MIN;
        let mut shutdown_tries = 0;
        loop {
            let new_sources = self.registry.take_unsaved();
            let t0 = Instant::now();
            match self.store.write_batch(&new_sources, batch) {
                Ok(w) => {
                    let s = self.stats.clone();
                    let took = t0.elapsed();
                    // Debug, not info: one line per commit is the troubleshooting view.
                    log::debug!(
                        "store: committed {} reading(s), {} rollup(s), {} pruned{} in {:.1} ms",
                        w.readings,
                        w.rollups,
                        w.pruned,
                        if new_sources.is_empty() {
                            String::new()
                        } else {
                            format!(", {} new source(s)", new_sources.len())
                        },
                        took.as_secs_f64() * 1e3
                    );
                    s.last_commit_us
                        .store(took.as_micros() as u64, Ordering::Relaxed);
                    s.commits.fetch_add(1, Ordering::Relaxed);
                    s.readings.fetch_add(w.readings, Ordering::Relaxed);
                    s.rollups.fetch_add(w.rollups, Ordering::Relaxed);
                    s.pruned.fetch_add(w.pruned, Ordering::Relaxed);
                    self.keep_headroom();
                    if self.maybe_fold() || self.last_release.elapsed() >= RELEASE_EVERY {
                        self.store.release_map_pages();
                        self.last_release = Instant::now();
                    }
                    if let Some((failed, since)) = self.failing_since.take() {
                        s.degraded.store(false, Ordering::Relaxed);
                        log::info!(
                            "store: commits succeed again after {failed} failed attempt(s) over {:.1} s",
                            since.elapsed().as_secs_f64()
                        );
                    }
                    return true;
                }
                Err(e) => {
                    self.registry.mark_unsaved(new_sources.iter().map(|s| s.id));
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    let msg = with_disk_state(e.to_string(), self.store.path());
                    let changed = match self.failing_since.as_mut() {
                        Some((n, _)) => {
                            *n += 1;
                            self.stats.last_error().as_deref() != Some(msg.as_str())
                        }
                        None => {
                            self.failing_since = Some((1, Instant::now()));
                            true
                        }
                    };
                    if changed {
                        log::error!(
                            "store: commit of {} item(s) failed, retrying with backoff: {msg}",
                            batch.len()
                        );
                    }
                    self.stats.degraded.store(true, Ordering::Relaxed);
                    if let Ok(mut last) = self.stats.last_error.lock() {
                        *last = Some(msg);
                    }
                    if matches!(e, super::StoreError::MapFull) && self.make_room(batch.len()) {
                        continue; // retry at once: there is room now
                    }
                }
            }
            if rx.is_closed() || self.stats.stopping.load(Ordering::Relaxed) {
                shutdown_tries += 1;
                if shutdown_tries >= SHUTDOWN_TRIES || self.gave_up {
                    self.gave_up = true;
                    log::error!(
                        "store: shutting down; giving up on a batch of {} item(s) after {shutdown_tries} failed tries",
                        batch.len()
                    );
                    self.stats
                        .lost
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return false;
                }
                // Shutting down: do not make the caller wait long.
                backoff = backoff.min(Duration::from_secs(1));
            }
            sleep_unless_closed(backoff, rx);
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }
}

/// Sleep `d`, cut short (to the next 100 ms slice) when the channel gets closed so a
/// shutdown does not wait for a long backoff.
fn sleep_unless_closed(d: Duration, rx: &async_channel::Receiver<Vec<Item>>) {
    let end = Instant::now() + d;
    let was_closed = rx.is_closed();
    loop {
        let now = Instant::now();
        if now >= end || (!was_closed && rx.is_closed()) {
            return;
        }
        std::thread::sleep((end - now).min(RETRY_MIN));
    }
}
