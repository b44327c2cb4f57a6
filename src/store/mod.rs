//! The LMDB store (through heed): one environment, a few named databases.
//!
//! - `readings`: key = source id (u32 BE) ++ timestamp (i64 µs, BE with the sign bit
//!   flipped so negative times sort first); value = compact binary (see `codec`).
//! - `rollups`: key = level (u8) ++ source id ++ bucket start; value = count/min/max/sum.
//! - `sources`: source id -> name, unit, kind (the registry's persistent half).
//! - `meta`: schema version and small state.
//!
//! One writer thread (`writer`) batches many items per write transaction; readers (HTTP,
//! CLI, later agent tools) use read transactions and never block it.

pub mod codec;
pub mod query;
pub mod writer;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, MdbError, PutFlags, RwTxn, WithoutTls};

use crate::graph::registry::SourceInfo;
use crate::graph::{Item, Micros, Prune, PruneTarget, Reading, Rollup, SourceId, ValueKind};

use codec::{Corrupt, READING_VALUE_MAX};

/// The schema this build writes. A store with another version is refused at open with
/// a message that says what to do.
pub const SCHEMA_VERSION: u32 = 1;

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
    Open { path: PathBuf, reason: String },
    /// The store was written by a different schema version.
    Schema { path: PathBuf, found: u32, expected: u32 },
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
    pub readings: u64,
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
    rollups: Db,
    sources: Db,
    meta: Db,
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
        let map_size = opts.map_size.max(1 << 20).next_multiple_of(1 << 16);
        // SAFETY: the map is only modified through LMDB; heed refuses to open the same
        // environment twice in this process (`EnvAlreadyOpened`), reported as an open error.
        let env = unsafe {
            EnvOpenOptions::new()
                .read_txn_without_tls()
                .map_size(map_size)
                .max_dbs(8)
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
                let rollups = dbo.create_database::<Bytes, Bytes>(wtxn, Some("rollups"))?;
                let sources = dbo.create_database::<Bytes, Bytes>(wtxn, Some("sources"))?;
                let meta = dbo.create_database::<Bytes, Bytes>(wtxn, Some("meta"))?;
                match meta.get(wtxn, META_SCHEMA_VERSION)? {
                    Some(v) => {
                        let found = u32::from_be_bytes(
                            v.try_into()
                                .map_err(|_| Corrupt("schema version length"))?,
                        );
                        if found != SCHEMA_VERSION {
                            return Ok(CommitOrAbort::Abort(found));
                        }
                    }
                    None => {
                        let fresh = readings.is_empty(wtxn)?
                            && rollups.is_empty(wtxn)?
                            && sources.is_empty(wtxn)?;
                        if !fresh {
                            // Data without a version: not written by any smollama schema.
                            return Ok(CommitOrAbort::Abort(0));
                        }
                        meta.put(wtxn, META_SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())?;
                    }
                }
                Ok::<_, StoreError>(CommitOrAbort::Commit((readings, rollups, sources, meta)))
            })
            .map_err(|e| match e {
                StoreError::Lmdb(reason) => open_err(reason),
                e => e,
            })?;
        let (readings, rollups, sources, meta) = match opened {
            CommitOrAbort::Commit(dbs) => dbs,
            CommitOrAbort::Abort(found) => {
                return Err(StoreError::Schema {
                    path: dir.to_path_buf(),
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
        };
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
            rollups,
            sources,
            meta,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The LMDB map size in bytes (the requested size rounded up to 64 KiB).
    pub fn map_size(&self) -> usize {
        self.env.info().map_size
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

    /// Write one batch in one transaction: new sources, readings, rollups (merged with an
    /// existing bucket of the same key), prunes. All or nothing.
    ///
    /// A reading whose source and timestamp are already taken is stored 1 µs later (as
    /// often as needed): two readings are never merged and nothing is overwritten.
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
                    if self.put_reading(&mut wtxn, r, &mut vbuf)? {
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

    /// Put one reading, moving it later by 1 µs while its key is taken. False if no free
    /// timestamp is left (only at the very end of time).
    fn put_reading(
        &self,
        wtxn: &mut RwTxn,
        r: &Reading,
        vbuf: &mut [u8; READING_VALUE_MAX],
    ) -> Result<bool, StoreError> {
        let n = codec::encode_reading_value(r.flags, &r.value, vbuf);
        let mut ts = r.ts;
        loop {
            let key = codec::reading_key(r.source, ts);
            match self
                .readings
                .put_with_flags(wtxn, PutFlags::NO_OVERWRITE, &key, &vbuf[..n])
            {
                Ok(()) => return Ok(true),
                Err(heed::Error::Mdb(MdbError::KeyExist)) => match ts.checked_add(1) {
                    Some(t) => ts = t,
                    None => {
                        log::warn!(
                            "store: no free timestamp for a reading of source {}, dropped",
                            r.source.0
                        );
                        return Ok(false);
                    }
                },
                Err(e) => return Err(e.into()),
            }
        }
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
        match p.target {
            PruneTarget::Raw => prune_skip_scan(
                &self.readings,
                wtxn,
                &[],
                |s, ts| codec::reading_key(SourceId(s), ts),
                p.older_than,
                p.max,
            ),
            PruneTarget::Rollup(level) => prune_skip_scan(
                &self.rollups,
                wtxn,
                &[level],
                |s, ts| codec::rollup_key(level, SourceId(s), ts),
                p.older_than,
                p.max,
            ),
        }
    }

    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        let rtxn = self.env.read_txn()?;
        let main = self.env.unnamed_database_stat();
        let page = main.page_size as u64;
        // Two meta pages plus every page of the catalogue and the named databases.
        let mut pages = 2 + (main.branch_pages + main.leaf_pages + main.overflow_pages) as u64;
        let mut entries = [0u64; 3];
        for (i, db) in [&self.readings, &self.rollups, &self.sources, &self.meta]
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
            readings: entries[0],
            rollups: entries[1],
            sources: entries[2],
            file_bytes,
            used_bytes: pages * page,
            map_bytes: self.env.info().map_size as u64,
        })
    }

    /// Force the data to disk (only useful with relaxed durability; commits already sync).
    pub fn sync(&self) -> Result<(), StoreError> {
        Ok(self.env.force_sync()?)
    }
}

/// Skip-scan prune over keys `prefix ++ source u32 BE ++ sortable ts`: for each source
/// present (found by one seek), delete its rows with `ts < older_than`, until `max`.
fn prune_skip_scan<K: AsRef<[u8]>>(
    db: &Db,
    wtxn: &mut RwTxn,
    prefix: &[u8],
    key: impl Fn(u32, Micros) -> K,
    older_than: Micros,
    max: u32,
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
        let lo = key(source, Micros::MIN);
        let hi = key(source, older_than);
        let range = (Bound::Included(lo.as_ref()), Bound::Excluded(hi.as_ref()));
        let mut it = db.range_mut(wtxn, &range)?;
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
        next = source.checked_add(1);
    }
    Ok(deleted)
}

// The store is shared as `Arc<Store>` between the writer thread and HTTP readers.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
};

