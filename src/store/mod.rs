//! The LMDB store (through heed): one environment, a few named databases.
//!
//! - `readings`: key = source id (u32 BE) ++ timestamp (i64 µs, BE with the sign bit
//!   flipped so negative times sort first); value = compact binary (see `codec`).
//! - `head`: the newest readings, key = timestamp ++ source id, folded into `readings`
//!   by the writer (see `head`); readers see both as one.
//! - `rollups`: key = level (u8) ++ source id ++ bucket start; value = count/min/max/sum.
//! - `sources`: source id -> name, unit, kind (the registry's persistent half).
//! - `meta`: schema version and small state.
//!
//! One writer thread (`writer`) batches many items per write transaction; readers (HTTP,
//! CLI, later agent tools) use read transactions and never block it.

pub mod alerts;
pub mod codec;
pub mod head;
pub mod outbox;
pub mod query;
pub mod restamp;
#[cfg(feature = "agent")]
pub mod sync_by_node;
#[cfg(feature = "agent")]
pub mod sync_log;
pub mod writer;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls};

use crate::graph::registry::SourceInfo;
use crate::graph::{Item, Micros, Prune, PruneTarget, Rollup, SourceId, ValueKind};

use codec::{Corrupt, READING_VALUE_MAX};
pub use head::FoldPolicy;

/// The schema this build writes. A store with another version is refused at open with
/// a message that says what to do, except the one before, which is upgraded in place.
/// 2: the `head` table (a version 1 store gains it, empty; nothing else changes).
pub const SCHEMA_VERSION: u32 = 2;
/// The version a store is upgraded from at open.
const SCHEMA_UPGRADES_FROM: u32 = 1;

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// LMDB map size: the most the store can grow to (virtual address space, not RAM).
    pub map_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            map_size: 256 << 20,
        }
    }
}

#[derive(Debug)]
pub enum StoreError {
    /// The directory or environment could not be opened.
    Open {
        path: PathBuf,
        reason: String,
    },
    /// The store was written by a different schema version.
    Schema {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// The map is full: raise `store.map_size_mb` or shorten retention.
    MapFull,
    Lmdb(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Open { path, reason } => {
                write!(f, "cannot open store at {}: {reason}", path.display())
            }
            StoreError::Schema {
                path,
                found,
                expected,
            } => write!(
                f,
                "store at {} has schema version {found}, this smollama expects {expected}; \
                 move the directory aside (or point store at a new data_dir) to start fresh",
                path.display()
            ),
            StoreError::MapFull => write!(
                f,
                "store is full (LMDB map size reached): raise [store] map_size_mb or shorten retention"
            ),
            StoreError::Lmdb(e) => write!(f, "store error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<heed::Error> for StoreError {
    fn from(e: heed::Error) -> Self {
        match e {
            heed::Error::Mdb(MdbError::MapFull) => StoreError::MapFull,
            e => StoreError::Lmdb(e.to_string()),
        }
    }
}

impl From<Corrupt> for StoreError {
    fn from(e: Corrupt) -> Self {
        StoreError::Lmdb(e.to_string())
    }
}

/// Counts and sizes for status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreCounts {
    /// Raw readings, folded or not.
    pub readings: u64,
    /// Of those, readings in the head, not yet folded.
    pub head: u64,
    pub rollups: u64,
    pub sources: u64,
    /// Bytes of the data file on disk.
    pub file_bytes: u64,
    /// Bytes in use inside the map (pages in use × page size).
    pub used_bytes: u64,
    pub map_bytes: u64,
}

/// What one write transaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub readings: u64,
    pub rollups: u64,
    pub pruned: u64,
    pub sources: u64,
}

type Db = Database<'static, Bytes, Bytes>;

/// Key of the schema version in `meta`.
const META_SCHEMA_VERSION: &[u8] = b"schema_version";

pub struct Store {
    path: PathBuf,
    env: Env<WithoutTls>,
    readings: Db,
    /// Readings not yet folded into `readings` (see `head`): ts ++ source -> value.
    head: Db,
    /// When the writer folds the head (`set_fold_policy`).
    fold: std::sync::OnceLock<FoldPolicy>,
    /// The data file's mapping (address, length), to give its pages back (`head`).
    map_range: Option<(usize, usize)>,
    rollups: Db,
    sources: Db,
    meta: Db,
    /// MQTT outbox (see `outbox`): seq u64 BE -> message.
    outbox: Db,
    /// Alerts for a person (see `alerts`): seq u64 BE -> alert.
    alerts: Db,
    /// Called after an alert is committed (the `openclaw` thread's doorbell).
    alerts_wake: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Memory (see `crate::memory::store`): observation id u64 BE -> observation.
    pub(crate) observations: Db,
    /// Memory: memory id u64 BE -> memory (fact).
    pub(crate) memories: Db,
    /// Memory: kind u8 ++ id u64 BE -> quantised embedding.
    pub(crate) vectors: Db,
    /// The replicated log (see `sync_log`): entries, their ids, refs.
    #[cfg(feature = "agent")]
    pub(crate) sync: sync_log::SyncDbs,
    /// This node's id in the replicated log, once sync is on (`set_sync_node`): until
    /// then memory changes are not logged.
    #[cfg(feature = "agent")]
    sync_node: std::sync::OnceLock<String>,
    /// Set by `sync_append`, taken by `sync_committed`: the write transaction now open
    /// appended to the log (LMDB runs one write transaction at a time, so the flag
    /// belongs to it; one that aborted only makes the next wake-up spurious).
    #[cfg(feature = "agent")]
    pub(crate) sync_appended: std::sync::atomic::AtomicBool,
    /// Wakes the sync thread once an append is committed, so it sleeps while nothing is
    /// new instead of looking every second.
    #[cfg(feature = "agent")]
    sync_wake: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Store {
    /// Open (creating if needed) the store in directory `dir`.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: dir.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        // LMDB wants a multiple of the OS page size; 64 KiB covers 4/16/64 KiB pages.
        let map_size = opts
            .map_size
            .max(1 << 20)
            .checked_next_multiple_of(1 << 16)
            .ok_or_else(|| open_err(format!("map size {} is too large", opts.map_size)))?;
        // SAFETY: the map is only modified through LMDB; heed refuses to open the same
        // environment twice in this process (`EnvAlreadyOpened`), reported as an open error.
        let env = unsafe {
            EnvOpenOptions::new()
                .read_txn_without_tls()
                .map_size(map_size)
                .max_dbs(16)
                .open(dir)
        }
        .map_err(|e| match e {
            heed::Error::EnvAlreadyOpened => open_err("already open in this process".into()),
            e => open_err(e.to_string()),
        })?;

        let wtxn = env.write_txn().map_err(|e| open_err(e.to_string()))?;
        let opened = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| {
                let readings = dbo.create_database::<Bytes, Bytes>(wtxn, Some("readings"))?;
                let head = dbo.create_database::<Bytes, Bytes>(wtxn, Some("head"))?;
                let rollups = dbo.create_database::<Bytes, Bytes>(wtxn, Some("rollups"))?;
                let sources = dbo.create_database::<Bytes, Bytes>(wtxn, Some("sources"))?;
                let meta = dbo.create_database::<Bytes, Bytes>(wtxn, Some("meta"))?;
                let outbox = dbo.create_database::<Bytes, Bytes>(wtxn, Some("outbox"))?;
                let alerts = dbo.create_database::<Bytes, Bytes>(wtxn, Some("alerts"))?;
                let observations =
                    dbo.create_database::<Bytes, Bytes>(wtxn, Some("observations"))?;
                let memories = dbo.create_database::<Bytes, Bytes>(wtxn, Some("memories"))?;
                let vectors = dbo.create_database::<Bytes, Bytes>(wtxn, Some("vectors"))?;
                // The replicated log's tables; a store of the previous version simply
                // gains them (empty), nothing else changes.
                let sync_dbs = [
                    dbo.create_database::<Bytes, Bytes>(wtxn, Some("sync_log"))?,
                    dbo.create_database::<Bytes, Bytes>(wtxn, Some("sync_ids"))?,
                    dbo.create_database::<Bytes, Bytes>(wtxn, Some("sync_refs"))?,
                ];
                match meta.get(wtxn, META_SCHEMA_VERSION)? {
                    Some(v) => {
                        let found = u32::from_be_bytes(
                            v.try_into().map_err(|_| Corrupt("schema version length"))?,
                        );
                        if found == SCHEMA_UPGRADES_FROM {
                            // The head table was just created; that is the whole upgrade.
                            meta.put(wtxn, META_SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())?;
                            log::info!(
                                "store: upgraded the schema from version {found} to {SCHEMA_VERSION}"
                            );
                        } else if found != SCHEMA_VERSION {
                            return Ok(CommitOrAbort::Abort(found));
                        }
                    }
                    None => {
                        let fresh = readings.is_empty(wtxn)?
                            && head.is_empty(wtxn)?
                            && rollups.is_empty(wtxn)?
                            && sources.is_empty(wtxn)?;
                        if !fresh {
                            // Data without a version: not written by any smollama schema.
                            return Ok(CommitOrAbort::Abort(0));
                        }
                        meta.put(wtxn, META_SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())?;
                    }
                }
                Ok::<_, StoreError>(CommitOrAbort::Commit((
                    (readings, head),
                    rollups,
                    sources,
                    meta,
                    (outbox, alerts),
                    observations,
                    memories,
                    vectors,
                    sync_dbs,
                )))
            })
            .map_err(|e| match e {
                StoreError::Lmdb(reason) => open_err(reason),
                e => e,
            })?;
        let (
            (readings, head),
            rollups,
            sources,
            meta,
            (outbox, alerts),
            observations,
            memories,
            vectors,
            sync_dbs,
        ) = match opened {
            CommitOrAbort::Commit(dbs) => dbs,
            CommitOrAbort::Abort(found) => {
                return Err(StoreError::Schema {
                    path: dir.to_path_buf(),
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
        };
        #[cfg(not(feature = "agent"))]
        let _ = sync_dbs;
        // Reader slots of a crashed process would otherwise pin old pages forever.
        match env.clear_stale_readers() {
            Ok(0) => {}
            Ok(n) => log::info!("store: cleared {n} stale reader slot(s)"),
            Err(e) => log::warn!("store: clearing stale readers failed: {e}"),
        }
        Ok(Store {
            path: dir.to_path_buf(),
            env,
            readings,
            head,
            fold: std::sync::OnceLock::new(),
            map_range: head::find_map(&dir.join("data.mdb")),
            rollups,
            sources,
            meta,
            outbox,
            alerts,
            alerts_wake: std::sync::OnceLock::new(),
            observations,
            memories,
            vectors,
            #[cfg(feature = "agent")]
            sync: {
                let [log, ids, refs] = sync_dbs;
                sync_log::SyncDbs { log, ids, refs }
            },
            #[cfg(feature = "agent")]
            sync_node: std::sync::OnceLock::new(),
            #[cfg(feature = "agent")]
            sync_appended: std::sync::atomic::AtomicBool::new(false),
            #[cfg(feature = "agent")]
            sync_wake: std::sync::OnceLock::new(),
        })
    }

    /// Call `wake` whenever a transaction that appended to the log has committed (the
    /// sync thread's doorbell). Set once.
    #[cfg(feature = "agent")]
    pub fn set_sync_wake(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.sync_wake.set(wake);
    }

    /// Commit a write transaction of the memory or sync tables, then ring the sync
    /// thread's doorbell if it appended to the log: every such commit goes through here,
    /// so none can forget the ring.
    #[cfg(feature = "agent")]
    pub fn commit(&self, wtxn: RwTxn) -> Result<(), heed::Error> {
        wtxn.commit()?;
        self.sync_committed();
        Ok(())
    }

    /// After a commit: ring the doorbell if the transaction appended to the log.
    #[cfg(feature = "agent")]
    fn sync_committed(&self) {
        if self
            .sync_appended
            .swap(false, std::sync::atomic::Ordering::AcqRel)
            && let Some(wake) = self.sync_wake.get()
        {
            wake();
        }
    }

    /// Log every later observation, memory and memory change as entries of node `node`
    /// (sync on). Set once; a second call is ignored.
    #[cfg(feature = "agent")]
    pub fn set_sync_node(&self, node: &str) {
        let _ = self.sync_node.set(node.to_string());
    }

    /// This node's id in the log, when sync is on.
    #[cfg(feature = "agent")]
    pub fn sync_node(&self) -> Option<&str> {
        self.sync_node.get().map(String::as_str)
    }

    /// The environment, for the memory tables (`crate::memory::store`).
    #[cfg(feature = "agent")]
    pub(crate) fn env(&self) -> &Env<WithoutTls> {
        &self.env
    }

    /// The `meta` database, for the memory tables' counters.
    #[cfg(feature = "agent")]
    pub(crate) fn meta_db(&self) -> &Db {
        &self.meta
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The LMDB map size in bytes (the requested size rounded up to 64 KiB).
    pub fn map_size(&self) -> usize {
        self.env.info().map_size
    }

    /// A counter or sequence number in `meta` (a big-endian u64); `None` when never written.
    pub(super) fn meta_u64(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<u64>, StoreError> {
        match self.meta.get(txn, key)? {
            Some(v) => Ok(Some(u64::from_be_bytes(
                v.try_into().map_err(|_| Corrupt("meta counter length"))?,
            ))),
            None => Ok(None),
        }
    }

    /// `meta_u64`, 0 when never written.
    pub(super) fn meta_count(&self, txn: &RoTxn, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self.meta_u64(txn, key)?.unwrap_or(0))
    }

    pub(super) fn put_meta_u64(
        &self,
        wtxn: &mut RwTxn,
        key: &[u8],
        v: u64,
    ) -> Result<(), StoreError> {
        Ok(self.meta.put(wtxn, key, &v.to_be_bytes())?)
    }

    /// The schema version stored in `meta`.
    pub fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        let rtxn = self.env.read_txn()?;
        match self.meta.get(&rtxn, META_SCHEMA_VERSION)? {
            Some(v) => Ok(Some(u32::from_be_bytes(
                v.try_into().map_err(|_| Corrupt("schema version length"))?,
            ))),
            None => Ok(None),
        }
    }

    /// A small piece of state other parts keep across restarts (e.g. which Home Assistant
    /// entities were announced), under a key of their own in `meta`.
    pub fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let k = format!("state:{key}");
        Ok(self.meta.get(&rtxn, k.as_bytes())?.map(|v| v.to_vec()))
    }

    pub fn state_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let k = format!("state:{key}");
        self.meta.put(&mut wtxn, k.as_bytes(), value)?;
        wtxn.commit()?;
        Ok(())
    }

    /// The persisted source table, to seed the registry.
    pub fn sources(&self) -> Result<Vec<(SourceId, String, String, ValueKind)>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for kv in self.sources.iter(&rtxn)? {
            let (k, v) = kv?;
            out.push(codec::decode_source(k, v)?);
        }
        Ok(out)
    }

    /// Write one batch in one transaction: new sources, readings (into the head), rollups
    /// (merged with an existing bucket of the same key), prunes. All or nothing.
    ///
    /// A reading whose source and timestamp are already taken is stored 1 µs later (as
    /// often as needed): two readings are never merged and nothing is overwritten. (A
    /// reading whose key is taken in `readings`, not in the head, moves when folded.)
    pub fn write_batch(
        &self,
        new_sources: &[Arc<SourceInfo>],
        items: &[Item],
    ) -> Result<WriteStats, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let mut stats = WriteStats::default();
        let mut buf = Vec::new();
        for s in new_sources {
            codec::encode_source_value(&s.name, &s.unit, s.kind, &mut buf);
            self.sources
                .put(&mut wtxn, &codec::source_key(s.id), &buf)?;
            stats.sources += 1;
        }
        let mut vbuf = [0u8; READING_VALUE_MAX];
        for item in items {
            match item {
                Item::Reading(r) => {
                    if self.put_head(&mut wtxn, r, &mut vbuf)? {
                        stats.readings += 1;
                    }
                }
                Item::Rollup(r) => {
                    self.merge_rollup(&mut wtxn, r)?;
                    stats.rollups += 1;
                }
                Item::Prune(p) => stats.pruned += self.prune(&mut wtxn, p)?,
                Item::Change(_) => {}
            }
        }
        wtxn.commit()?;
        Ok(stats)
    }

    fn merge_rollup(&self, wtxn: &mut RwTxn, r: &Rollup) -> Result<(), StoreError> {
        let key = codec::rollup_key(r.level, r.source, r.bucket_start);
        let merged = match self.rollups.get(wtxn, &key)? {
            Some(old) => {
                let (count, min, max, sum) = codec::decode_rollup_value(old)?;
                let old = Rollup {
                    count,
                    min,
                    max,
                    sum,
                    ..*r
                };
                codec::merge_rollup(&old, r)
            }
            None => *r,
        };
        self.rollups
            .put(wtxn, &key, &codec::encode_rollup_value(&merged))?;
        Ok(())
    }

    /// Delete at most `p.max` rows older than `p.older_than`. Visits sources in id order
    /// with one seek per source present (a skip scan), never the whole table.
    fn prune(&self, wtxn: &mut RwTxn, p: &Prune) -> Result<u64, StoreError> {
        // Rows stamped while the clock was not set (1970, before NTP) are not aged off
        // by a set clock: how old they are is unknown, and they were recorded moments
        // before it was set. Only eviction on a full map removes them.
        let from = if p.older_than > crate::clock::SET_AFTER {
            crate::clock::SET_AFTER
        } else {
            Micros::MIN
        };
        match p.target {
            PruneTarget::Raw => {
                let folded = prune_skip_scan(
                    &self.readings,
                    wtxn,
                    &[],
                    |s, ts| codec::reading_key(SourceId(s), ts),
                    from,
                    p.older_than,
                    p.max,
                    u64::MAX,
                )?;
                let left = u64::from(p.max).saturating_sub(folded);
                Ok(folded + self.prune_head(wtxn, from, p.older_than, left)?)
            }
            PruneTarget::Rollup(level) => prune_skip_scan(
                &self.rollups,
                wtxn,
                &[level],
                |s, ts| codec::rollup_key(level, SourceId(s), ts),
                from,
                p.older_than,
                p.max,
                u64::MAX,
            ),
        }
    }

    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        let rtxn = self.env.read_txn()?;
        let main = self.env.unnamed_database_stat();
        let page = main.page_size as u64;
        // Two meta pages plus every page of the catalogue and the named databases.
        let mut pages = 2 + (main.branch_pages + main.leaf_pages + main.overflow_pages) as u64;
        let mut entries = [0u64; 4];
        for (i, db) in [
            &self.readings,
            &self.rollups,
            &self.sources,
            &self.head,
            &self.meta,
            &self.outbox,
            &self.observations,
            &self.memories,
            &self.vectors,
        ]
        .into_iter()
        .enumerate()
        {
            let st = db.stat(&rtxn)?;
            pages += (st.branch_pages + st.leaf_pages + st.overflow_pages) as u64;
            if let Some(e) = entries.get_mut(i) {
                *e = st.entries as u64;
            }
        }
        let file_bytes = std::fs::metadata(self.path.join("data.mdb"))
            .map(|m| m.len())
            .unwrap_or(0);
        Ok(StoreCounts {
            readings: entries[0] + entries[3],
            head: entries[3],
            rollups: entries[1],
            sources: entries[2],
            file_bytes,
            used_bytes: pages * page,
            map_bytes: self.env.info().map_size as u64,
        })
    }

    /// Make room in a full store: delete up to `per_source` of the oldest raw readings of
    /// every source (of the head's oldest, `per_source` per known source, when nothing
    /// is folded yet), then commit a second, tiny transaction so LMDB can reuse the freed
    /// pages (it reuses pages freed by transaction N only from N + 2 on). The writer calls
    /// this when a commit fails with `MapFull`; the alternative is a store that never
    /// accepts another reading. Returns how many readings were deleted.
    pub fn evict_oldest(&self, per_source: u64) -> Result<u64, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let deleted = prune_skip_scan(
            &self.readings,
            &mut wtxn,
            &[],
            |s, ts| codec::reading_key(SourceId(s), ts),
            Micros::MIN,
            Micros::MAX,
            u32::MAX,
            per_source,
        )?;
        let deleted = if deleted > 0 {
            deleted
        } else {
            let sources = self.sources.len(&wtxn)?.max(1);
            let n = per_source.saturating_mul(sources);
            self.prune_head(&mut wtxn, Micros::MIN, Micros::MAX, n)?
        };
        wtxn.commit()?;
        let mut wtxn = self.env.write_txn()?;
        let n = self
            .meta
            .get(&wtxn, b"evicted".as_slice())?
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes);
        self.meta.put(
            &mut wtxn,
            b"evicted".as_slice(),
            &(n + deleted).to_be_bytes(),
        )?;
        wtxn.commit()?;
        Ok(deleted)
    }

    /// Force the data to disk (only useful with relaxed durability; commits already sync).
    pub fn sync(&self) -> Result<(), StoreError> {
        Ok(self.env.force_sync()?)
    }
}

/// Skip-scan prune over keys `prefix ++ source u32 BE ++ sortable ts`: for each source
/// present (found by one seek), delete its rows with `from <= ts < older_than`, at most
/// `per_source` of them, until `max` in all.
#[allow(clippy::too_many_arguments)]
fn prune_skip_scan<K: AsRef<[u8]>>(
    db: &Db,
    wtxn: &mut RwTxn,
    prefix: &[u8],
    key: impl Fn(u32, Micros) -> K,
    from: Micros,
    older_than: Micros,
    max: u32,
    per_source: u64,
) -> Result<u64, StoreError> {
    let max = u64::from(max);
    let mut deleted = 0u64;
    let mut next = Some(0u32);
    while let Some(from_source) = next
        && deleted < max
    {
        let start = key(from_source, Micros::MIN);
        let source = match db.get_greater_than_or_equal_to(wtxn, start.as_ref())? {
            Some((k, _)) if k.starts_with(prefix) => {
                let id = k
                    .get(prefix.len()..prefix.len() + 4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .ok_or(Corrupt("short key"))?;
                u32::from_be_bytes(id)
            }
            _ => break,
        };
        let lo = key(source, from);
        let hi = key(source, older_than);
        let range = (Bound::Included(lo.as_ref()), Bound::Excluded(hi.as_ref()));
        let mut it = db.range_mut(wtxn, &range)?;
        let mut this_source = 0u64;
        while deleted < max && this_source < per_source {
            match it.next() {
                Some(Ok(_)) => {
                    // SAFETY: no key or value borrowed from the iterator is alive here.
                    unsafe { it.del_current()? };
                    deleted += 1;
                    this_source += 1;
                }
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
        next = source.checked_add(1);
    }
    Ok(deleted)
}

// The store is shared as `Arc<Store>` between the writer thread and HTTP readers.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
};

#[cfg(test)]
pub(crate) mod tests {
    use super::writer;
    use super::*;
    use crate::graph::registry::Registry;
    use crate::graph::{Reading, ShortText, Value, reading::flags};
    use std::sync::atomic::Ordering;

    /// A directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let p = std::env::temp_dir().join(format!(
                "smollama-store-{tag}-{}-{n}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn opts() -> StoreOptions {
        StoreOptions { map_size: 16 << 20 }
    }

    fn num(s: u32, ts: Micros, x: f64) -> Item {
        Item::Reading(Reading::new(SourceId(s), ts, Value::Number(x)))
    }

    fn all(store: &Store, s: u32) -> Vec<Reading> {
        store
            .history(SourceId(s), Micros::MIN, Micros::MAX, usize::MAX)
            .unwrap()
    }

    fn rollup(
        s: u32,
        level: u8,
        bucket: Micros,
        count: u32,
        min: f64,
        max: f64,
        sum: f64,
    ) -> Rollup {
        Rollup {
            source: SourceId(s),
            level,
            bucket_start: bucket,
            count,
            min,
            max,
            sum,
        }
    }

    #[test]
    fn every_value_type_and_flags_round_trip() {
        let dir = TempDir::new("types");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let readings = [
            Reading {
                source: SourceId(0),
                ts: 10,
                value: Value::Number(-3.25),
                flags: flags::OUT_OF_RANGE,
            },
            Reading {
                source: SourceId(0),
                ts: 11,
                value: Value::Number(f64::MAX),
                flags: flags::HEARTBEAT | flags::OUT_OF_RANGE,
            },
            Reading {
                source: SourceId(1),
                ts: 10,
                value: Value::Bool(true),
                flags: 0,
            },
            Reading {
                source: SourceId(1),
                ts: 12,
                value: Value::Bool(false),
                flags: flags::HEARTBEAT,
            },
            Reading {
                source: SourceId(2),
                ts: 10,
                value: Value::Text(ShortText::new("charging ⚡")),
                flags: 0,
            },
            Reading {
                source: SourceId(2),
                ts: 13,
                value: Value::Text(ShortText::new("")),
                flags: 0,
            },
        ];
        let items: Vec<Item> = readings.iter().copied().map(Item::Reading).collect();
        let w = store.write_batch(&[], &items).unwrap();
        assert_eq!(w.readings, 6);
        for s in 0..3 {
            let mut got = all(&store, s);
            got.reverse();
            let want: Vec<Reading> = readings
                .iter()
                .filter(|r| r.source.0 == s)
                .copied()
                .collect();
            assert_eq!(got, want);
        }
        assert_eq!(store.latest(SourceId(2)).unwrap(), Some(readings[5]));
        assert_eq!(store.latest(SourceId(9)).unwrap(), None);
        let latest: Vec<Reading> = store.latest_all().unwrap();
        assert_eq!(latest, vec![readings[1], readings[3], readings[5]]);
    }

    #[test]
    fn same_timestamp_readings_are_all_kept() {
        let dir = TempDir::new("dup");
        let store = Store::open(&dir.0, &opts()).unwrap();
        store
            .write_batch(&[], &[num(0, 100, 1.0), num(0, 100, 2.0), num(0, 101, 3.0)])
            .unwrap();
        // A later batch at a taken time moves on past it as well.
        store.write_batch(&[], &[num(0, 100, 4.0)]).unwrap();
        let got: Vec<(Micros, Value)> = all(&store, 0).iter().map(|r| (r.ts, r.value)).collect();
        assert_eq!(
            got,
            vec![
                (103, Value::Number(4.0)),
                (102, Value::Number(3.0)),
                (101, Value::Number(2.0)),
                (100, Value::Number(1.0)),
            ]
        );
    }

    #[test]
    fn history_bounds_order_and_limit() {
        let dir = TempDir::new("history");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let items: Vec<Item> = (0..100)
            .flat_map(|i| [num(0, i * 10, i as f64), num(1, i * 10, -(i as f64))])
            .collect();
        store.write_batch(&[], &items).unwrap();
        // from inclusive, to exclusive, newest first.
        let h = store.history(SourceId(0), 200, 300, 100).unwrap();
        let ts: Vec<Micros> = h.iter().map(|r| r.ts).collect();
        assert_eq!(ts, (20..30).rev().map(|i| i * 10).collect::<Vec<_>>());
        assert!(h.iter().all(|r| r.source == SourceId(0)));
        // limit keeps the newest.
        let h = store.history(SourceId(0), 200, 300, 3).unwrap();
        assert_eq!(
            h.iter().map(|r| r.ts).collect::<Vec<_>>(),
            vec![290, 280, 270]
        );
        // Bounds between readings.
        let h = store.history(SourceId(0), 201, 211, 10).unwrap();
        assert_eq!(h.iter().map(|r| r.ts).collect::<Vec<_>>(), vec![210]);
        // Empty and inverted ranges.
        assert!(store.history(SourceId(0), 300, 300, 10).unwrap().is_empty());
        assert!(store.history(SourceId(0), 300, 200, 10).unwrap().is_empty());
        assert!(store.history(SourceId(0), 0, 1000, 0).unwrap().is_empty());
        assert!(store.history(SourceId(5), 0, 1000, 10).unwrap().is_empty());
        // The whole range of source 1 does not leak into source 0 or 2.
        assert_eq!(all(&store, 1).len(), 100);
    }

    #[test]
    fn negative_and_zero_timestamps_sort() {
        let dir = TempDir::new("neg");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let ts = [5, -1, 0, i64::MIN, -1_000_000_000, 1, i64::MAX - 1];
        let items: Vec<Item> = ts.iter().map(|&t| num(3, t, t as f64)).collect();
        store.write_batch(&[], &items).unwrap();
        let got: Vec<Micros> = all(&store, 3).iter().map(|r| r.ts).collect();
        let mut want = ts.to_vec();
        want.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(got, want);
        let h = store.history(SourceId(3), -1, 1, 10).unwrap();
        assert_eq!(h.iter().map(|r| r.ts).collect::<Vec<_>>(), vec![0, -1]);
        assert_eq!(
            store.latest(SourceId(3)).unwrap().map(|r| r.ts),
            Some(i64::MAX - 1)
        );
    }

    #[test]
    fn rollups_merge_and_query() {
        let dir = TempDir::new("rollup");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let items = [
            Item::Rollup(rollup(0, 0, 0, 2, 1.0, 3.0, 4.0)),
            Item::Rollup(rollup(0, 0, 60, 1, 5.0, 5.0, 5.0)),
            Item::Rollup(rollup(0, 1, 0, 10, 0.0, 9.0, 45.0)),
            Item::Rollup(rollup(1, 0, 0, 1, 7.0, 7.0, 7.0)),
        ];
        let w = store.write_batch(&[], &items).unwrap();
        assert_eq!(w.rollups, 4);
        // Merge into the existing bucket, in a later transaction and within one.
        store
            .write_batch(
                &[],
                &[
                    Item::Rollup(rollup(0, 0, 0, 3, -2.0, 2.0, 1.0)),
                    Item::Rollup(rollup(0, 0, 0, 1, 10.0, 10.0, 10.0)),
                ],
            )
            .unwrap();
        let r = store
            .rollups(SourceId(0), 0, Micros::MIN, Micros::MAX, 10)
            .unwrap();
        assert_eq!(
            r,
            vec![
                rollup(0, 0, 60, 1, 5.0, 5.0, 5.0),
                rollup(0, 0, 0, 6, -2.0, 10.0, 15.0)
            ]
        );
        assert_eq!(r[1].mean(), 2.5);
        // Levels and sources stay apart; bounds and limit as for history.
        assert_eq!(store.rollups(SourceId(0), 1, 0, 1, 10).unwrap().len(), 1);
        assert_eq!(store.rollups(SourceId(1), 0, 0, 61, 10).unwrap().len(), 1);
        assert_eq!(store.rollups(SourceId(0), 0, 0, 60, 10).unwrap().len(), 1);
        assert_eq!(
            store.rollups(SourceId(0), 0, 0, 61, 1).unwrap()[0].bucket_start,
            60
        );
        assert_eq!(store.counts().unwrap().rollups, 4);
    }

    #[test]
    fn prune_deletes_only_older_rows_and_at_most_max() {
        let dir = TempDir::new("prune");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let mut items = Vec::new();
        for s in 0..4 {
            for t in -5..10 {
                items.push(num(s, t * 100, t as f64));
            }
        }
        for l in 0..2 {
            for t in 0..10 {
                items.push(Item::Rollup(rollup(1, l, t * 100, 1, 0.0, 0.0, 0.0)));
            }
        }
        store.write_batch(&[], &items).unwrap();
        let prune = |target, older_than, max| {
            Item::Prune(Prune {
                target,
                older_than,
                max,
            })
        };

        // 4 sources × 5 negative rows + 4 × (0, 100) = 28 rows are older than 200.
        let w = store
            .write_batch(&[], &[prune(PruneTarget::Raw, 200, 10)])
            .unwrap();
        assert_eq!(w.pruned, 10);
        assert_eq!(store.counts().unwrap().readings, 60 - 10);
        let w = store
            .write_batch(&[], &[prune(PruneTarget::Raw, 200, 1000)])
            .unwrap();
        assert_eq!(w.pruned, 18);
        for s in 0..4 {
            let ts: Vec<Micros> = all(&store, s).iter().map(|r| r.ts).collect();
            assert_eq!(
                ts,
                (2..10).rev().map(|t| t * 100).collect::<Vec<_>>(),
                "source {s}"
            );
        }
        let w = store
            .write_batch(&[], &[prune(PruneTarget::Raw, 200, 1000)])
            .unwrap();
        assert_eq!(w.pruned, 0);

        // Rollup prunes touch only their level.
        let w = store
            .write_batch(&[], &[prune(PruneTarget::Rollup(0), 500, 3)])
            .unwrap();
        assert_eq!(w.pruned, 3);
        let w = store
            .write_batch(&[], &[prune(PruneTarget::Rollup(0), 500, 100)])
            .unwrap();
        assert_eq!(w.pruned, 2);
        let l0 = store
            .rollups(SourceId(1), 0, Micros::MIN, Micros::MAX, 100)
            .unwrap();
        assert_eq!(l0.last().map(|r| r.bucket_start), Some(500));
        assert_eq!(l0.len(), 5);
        let l1 = store
            .rollups(SourceId(1), 1, Micros::MIN, Micros::MAX, 100)
            .unwrap();
        assert_eq!(l1.len(), 10);
        // A prune of an empty level is a no-op.
        let w = store
            .write_batch(&[], &[prune(PruneTarget::Rollup(7), Micros::MAX, 100)])
            .unwrap();
        assert_eq!(w.pruned, 0);
    }

    #[test]
    fn a_set_clock_does_not_age_off_rows_stamped_before_it_was_set() {
        let dir = TempDir::new("prune-unset");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let set = crate::clock::SET_AFTER;
        // Ten minutes after boot in 1970, then the clock set by NTP.
        let items = [
            num(0, 600_000_000, 1.0),
            num(0, set + 1_000, 2.0),
            num(0, set + 9_000, 3.0),
        ];
        store.write_batch(&[], &items).unwrap();
        let prune = Item::Prune(Prune {
            target: PruneTarget::Raw,
            older_than: set + 5_000,
            max: 100,
        });
        assert_eq!(store.write_batch(&[], &[prune]).unwrap().pruned, 1);
        let ts: Vec<Micros> = all(&store, 0).iter().map(|r| r.ts).collect();
        assert_eq!(ts, vec![set + 9_000, 600_000_000]);
        // Eviction on a full map still takes them, oldest first.
        assert_eq!(store.evict_oldest(1).unwrap(), 1);
        assert_eq!(all(&store, 0).len(), 1);
    }

    #[test]
    fn sources_persist_and_reopen_keeps_data() {
        let dir = TempDir::new("reopen");
        let reg = Registry::new();
        let a = reg.intern("system:cpu_temp", "celsius", ValueKind::Number);
        let b = reg.intern("gpio:17", "boolean", ValueKind::Bool);
        let c = reg.intern("system:state", "", ValueKind::Text);
        {
            let store = Store::open(&dir.0, &opts()).unwrap();
            let w = store
                .write_batch(&reg.take_unsaved(), &[num(a.id.0, 5, 42.0)])
                .unwrap();
            assert_eq!(w.sources, 3);
            assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
        }
        let store = Store::open(&dir.0, &opts()).unwrap();
        assert_eq!(
            store.sources().unwrap(),
            vec![
                (
                    a.id,
                    "system:cpu_temp".into(),
                    "celsius".into(),
                    ValueKind::Number
                ),
                (b.id, "gpio:17".into(), "boolean".into(), ValueKind::Bool),
                (c.id, "system:state".into(), "".into(), ValueKind::Text),
            ]
        );
        assert_eq!(
            store.latest(a.id).unwrap(),
            Some(Reading::new(a.id, 5, Value::Number(42.0)))
        );
        // A registry seeded from the store keeps the ids.
        let reg2 = Registry::new();
        reg2.load(store.sources().unwrap());
        assert_eq!(reg2.lookup("gpio:17").map(|i| i.id), Some(b.id));
    }

    #[test]
    fn schema_mismatch_is_refused() {
        let dir = TempDir::new("schema");
        {
            let store = Store::open(&dir.0, &opts()).unwrap();
            let mut wtxn = store.env.write_txn().unwrap();
            store
                .meta
                .put(&mut wtxn, META_SCHEMA_VERSION, &99u32.to_be_bytes())
                .unwrap();
            wtxn.commit().unwrap();
        }
        let err = Store::open(&dir.0, &opts()).err().unwrap();
        assert!(
            matches!(
                err,
                StoreError::Schema {
                    found: 99,
                    expected: SCHEMA_VERSION,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("schema version 99"), "{msg}");
        assert!(msg.contains("move the directory aside"), "{msg}");
    }

    #[test]
    fn open_errors_name_the_path_and_reason() {
        let dir = TempDir::new("openerr");
        let file = dir.0.join("file");
        std::fs::write(&file, b"x").unwrap();
        let bad = file.join("store");
        let err = Store::open(&bad, &opts()).err().unwrap();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
        assert!(msg.contains(&bad.display().to_string()), "{msg}");
        assert!(msg.to_lowercase().contains("not a directory"), "{msg}");

        // The same environment twice in one process is refused, not UB.
        let ok = dir.0.join("ok");
        let _store = Store::open(&ok, &opts()).unwrap();
        let err = Store::open(&ok, &opts()).err().unwrap();
        assert!(err.to_string().contains("already open"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_unwritable_place_is_an_open_error_naming_it() {
        // Nobody, root included, can create a directory in /proc.
        let bad = Path::new("/proc/smollama-store-test");
        let err = Store::open(bad, &opts()).err().unwrap();
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/proc/smollama-store-test"),
            "{err}"
        );
    }

    #[test]
    fn counts_report_entries_and_sizes() {
        let dir = TempDir::new("counts");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let empty = store.counts().unwrap();
        assert_eq!((empty.readings, empty.rollups, empty.sources), (0, 0, 0));
        assert_eq!(empty.map_bytes, 16 << 20);
        let reg = Registry::new();
        reg.intern("a:x", "", ValueKind::Number);
        reg.intern("a:y", "", ValueKind::Number);
        let items: Vec<Item> = (0..5000).map(|i| num(i % 2, i as i64, 1.0)).collect();
        store.write_batch(&reg.take_unsaved(), &items).unwrap();
        store
            .write_batch(&[], &[Item::Rollup(rollup(0, 0, 0, 1, 1.0, 1.0, 1.0))])
            .unwrap();
        let c = store.counts().unwrap();
        assert_eq!((c.readings, c.rollups, c.sources), (5000, 1, 2));
        assert!(c.used_bytes > empty.used_bytes, "{c:?} vs {empty:?}");
        assert!(c.used_bytes >= 5000 * 22, "{c:?}");
        assert!(c.file_bytes >= c.used_bytes, "{c:?}");
        assert!(c.map_bytes >= c.file_bytes, "{c:?}");
    }

    #[test]
    fn writer_commits_and_exits_when_sender_dropped() {
        let dir = TempDir::new("writer");
        let store = Arc::new(Store::open(&dir.0, &opts()).unwrap());
        let reg = Arc::new(Registry::new());
        let src = reg.intern("system:x", "u", ValueKind::Number);
        let h = writer::spawn(store.clone(), reg.clone(), 4);
        for b in 0..10 {
            let mut batch = h.recycled.try_recv().unwrap_or_default();
            for i in 0..100 {
                batch.push(num(src.id.0, b * 100 + i, i as f64));
            }
            if b == 9 {
                batch.push(Item::Rollup(rollup(0, 0, 0, 1, 1.0, 1.0, 1.0)));
                batch.push(Item::Prune(Prune {
                    target: PruneTarget::Raw,
                    older_than: 10,
                    max: 5,
                }));
            }
            h.batches.send_blocking(batch).unwrap();
        }
        let stats = h.stats.clone();
        drop(h.batches);
        h.thread.join().unwrap();
        assert_eq!(stats.commits.load(Ordering::Relaxed), 10);
        assert_eq!(stats.readings.load(Ordering::Relaxed), 1000);
        assert_eq!(stats.rollups.load(Ordering::Relaxed), 1);
        assert_eq!(stats.pruned.load(Ordering::Relaxed), 5);
        assert_eq!(stats.failures.load(Ordering::Relaxed), 0);
        assert!(!stats.is_degraded());
        assert_eq!(store.counts().unwrap().readings, 995);
        assert_eq!(store.sources().unwrap().len(), 1);
        // Batches came back for reuse, emptied.
        let back = h.recycled.try_recv().unwrap();
        assert!(back.is_empty() && back.capacity() >= 100);
    }

    #[test]
    fn writer_marks_degraded_and_gives_up_at_shutdown() {
        let dir = TempDir::new("full");
        // The smallest map: a batch this large cannot fit.
        let store = Arc::new(Store::open(&dir.0, &StoreOptions { map_size: 1 << 20 }).unwrap());
        let reg = Arc::new(Registry::new());
        reg.intern("system:x", "u", ValueKind::Number);
        let h = writer::spawn(store.clone(), reg.clone(), 2);
        let batch: Vec<Item> = (0..100_000).map(|i| num(0, i, 1.0)).collect();
        h.batches.send_blocking(batch).unwrap();
        let stats = h.stats.clone();
        drop(h.batches);
        h.thread.join().unwrap();
        assert!(stats.is_degraded());
        assert!(stats.failures.load(Ordering::Relaxed) >= writer::SHUTDOWN_TRIES as u64);
        assert_eq!(stats.commits.load(Ordering::Relaxed), 0);
        assert_eq!(stats.lost.load(Ordering::Relaxed), 100_000);
        let err = stats.last_error().unwrap();
        assert!(err.contains("full"), "{err}");
        // The failed source write is queued again for the next transaction.
        assert_eq!(reg.take_unsaved().len(), 1);
        // Nothing half-written.
        assert_eq!(store.counts().unwrap().readings, 0);
        // A small batch still fits afterwards.
        store
            .write_batch(&reg.take_unsaved(), &[num(0, 1, 1.0)])
            .unwrap();
    }

    #[test]
    fn a_full_store_evicts_its_oldest_readings_and_keeps_accepting() {
        let dir = TempDir::new("evict");
        let store = Arc::new(Store::open(&dir.0, &StoreOptions { map_size: 1 << 20 }).unwrap());
        let reg = Arc::new(Registry::new());
        let h = writer::spawn(store.clone(), reg, 2);
        let stats = h.stats.clone();
        // Far more than 1 MiB of readings, in ordinary batches: the writer must make room
        // by itself, oldest first, and never stop accepting new readings.
        let total = 200_000i64;
        for chunk in 0..(total / 1000) {
            let batch: Vec<Item> = (chunk * 1000..(chunk + 1) * 1000)
                .map(|i| num((i % 4) as u32, i, i as f64))
                .collect();
            h.batches.send_blocking(batch).unwrap();
        }
        drop(h.batches);
        h.thread.join().unwrap();
        assert_eq!(stats.lost.load(Ordering::Relaxed), 0, "no batch given up");
        assert!(stats.evicted.load(Ordering::Relaxed) > 0, "room was made");
        assert!(!stats.is_degraded());
        // The newest readings are all there; what went were the oldest.
        let newest_first = all(&store, 3);
        assert_eq!(newest_first[0].ts, total - 1);
        let kept = store.counts().unwrap().readings;
        assert!(kept < total as u64);
        let oldest_kept = (0..4)
            .map(|s| all(&store, s).last().unwrap().ts)
            .min()
            .unwrap();
        assert!(
            oldest_kept >= total - kept as i64 - 4000,
            "oldest first: {oldest_kept}"
        );
    }
}
