//! The replicated log (issue 15): what nodes learn, as entries every node merges.
//!
//! | db          | key                    | value                                   |
//! |-------------|------------------------|-----------------------------------------|
//! | `sync_log`  | lamport u64 BE ++ id   | received_at i64 BE ++ the entry's JSON  |
//! | `sync_ids`  | id                     | lamport u64 BE (duplicates are skipped) |
//! | `sync_refs` | `r` ++ ref             | kind u8 ++ local id u64 BE ++ version lamport u64 BE ++ version node |
//! | `sync_refs` | `l` ++ kind u8 ++ local id u64 BE | ref                          |
//! | `meta`      | `sync_lamport`         | u64 BE: the Lamport clock               |
//! | `meta`      | `sync_bytes`           | u64 BE: bytes of the two log tables     |
//! | `meta`      | `sync_u64:<name>`      | u64 BE: cursors (per peer: seen, acked, pushed, pulled) |
//!
//! Lamport rules (the original's): a local append stamps `clock + 1`; a merged entry
//! moves the clock to `max(clock, its lamport) + 1`, duplicates included. An entry's JSON
//! is its wire form (`{id, lamport_ts, node_id, event_type, payload, created_at}`), so the
//! log serves pulls and catch-ups without re-encoding. A ref names one observation or
//! memory on every node: the id of the entry that first carried it.

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};
use serde_json::{Value as Json, json};

use super::codec::Corrupt;
use super::{Store, StoreError};
use crate::graph::Micros;

pub(crate) type Db = Database<'static, Bytes, Bytes>;

const META_LAMPORT: &[u8] = b"sync_lamport";
const META_BYTES: &[u8] = b"sync_bytes";
/// Longest entry id accepted (a UUID is 36 bytes).
pub const MAX_ID: usize = 128;
/// Longest node id accepted.
pub const MAX_NODE: usize = 128;

/// One log entry. Its identity is `id`; its order is `(lamport_ts, node_id)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub id: String,
    pub lamport_ts: u64,
    pub node_id: String,
    pub event_type: String,
    /// A JSON object (see `docs/mqtt.md` for each event type's fields).
    pub payload: Json,
    /// ISO 8601, as the original writes it.
    pub created_at: String,
}

impl Entry {
    /// The wire form (the original's, with `synced_at` null: it is per node).
    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "lamport_ts": self.lamport_ts,
            "node_id": self.node_id,
            "event_type": self.event_type,
            "payload": self.payload,
            "created_at": self.created_at,
            "synced_at": Json::Null,
        })
    }

    /// An entry from its wire form; the reason when it is not one.
    pub fn from_json(j: &Json) -> Result<Entry, &'static str> {
        let s = |k: &str| j.get(k).and_then(Json::as_str);
        let id = s("id").ok_or("entry without a string id")?;
        let node_id = s("node_id").ok_or("entry without a string node_id")?;
        if id.is_empty() || id.len() > MAX_ID {
            return Err("entry id empty or too long");
        }
        if node_id.is_empty() || node_id.len() > MAX_NODE {
            return Err("entry node_id empty or too long");
        }
        let lamport_ts = j
            .get("lamport_ts")
            .and_then(Json::as_u64)
            .ok_or("entry without a whole lamport_ts")?;
        let payload = match j.get("payload") {
            Some(p @ Json::Object(_)) => p.clone(),
            // The original's SQLite rows carry the payload as JSON text.
            Some(Json::String(t)) => match serde_json::from_str::<Json>(t) {
                Ok(p @ Json::Object(_)) => p,
                _ => return Err("entry payload is not a JSON object"),
            },
            _ => return Err("entry payload is not a JSON object"),
        };
        Ok(Entry {
            id: id.to_string(),
            lamport_ts,
            node_id: node_id.to_string(),
            event_type: s("event_type").unwrap_or("").to_string(),
            payload,
            created_at: s("created_at").unwrap_or("").to_string(),
        })
    }
}

/// Where a ref lives here, and the version `(lamport, node)` of its last applied state.
#[derive(Clone, Debug, PartialEq)]
pub struct RefState {
    /// 0 = observation, 1 = memory (as the vector kinds), 255 = deleted (a tombstone).
    pub kind: u8,
    pub local_id: u64,
    pub lamport: u64,
    pub node: String,
}

/// Kind byte of a ref whose item was replaced (compaction): never brought back.
pub const TOMBSTONE: u8 = 255;

fn u64_at(v: &[u8]) -> Result<u64, Corrupt> {
    Ok(u64::from_be_bytes(
        v.get(..8)
            .ok_or(Corrupt("short sync value"))?
            .try_into()
            .expect("8 bytes"),
    ))
}

fn log_key(lamport: u64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&lamport.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn cursor_key(name: &str) -> Vec<u8> {
    format!("sync_u64:{name}").into_bytes()
}

/// A 128-bit random id in UUID 4 form, from the standard library's randomly keyed hasher
/// (seeded from the OS) over the node, the clock and a counter.
pub fn new_id(node: &str, lamport: u64) -> String {
    use std::hash::{BuildHasher, Hasher};
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(node.as_bytes());
        h.write_u64(lamport);
        h.write_u64(n);
        h.write_u64(salt);
        h.write_i64(crate::clock::now_us());
        h.finish()
    };
    let (a, b) = (half(1), half(2));
    let a = (a & !0xf000) | 0x4000;
    let b = (b & !(0xc000 << 48)) | (0x8000 << 48);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

impl Store {
    fn add_bytes(&self, wtxn: &mut RwTxn, delta: i64) -> Result<(), StoreError> {
        let b = self.meta_count(wtxn, META_BYTES)?;
        let b = b.saturating_add_signed(delta);
        self.meta.put(wtxn, META_BYTES, &b.to_be_bytes())?;
        Ok(())
    }

    fn put_entry(&self, wtxn: &mut RwTxn, e: &Entry, now: Micros) -> Result<(), StoreError> {
        let key = log_key(e.lamport_ts, &e.id);
        let mut v = now.to_be_bytes().to_vec();
        serde_json::to_writer(&mut v, &e.to_json()).map_err(|e| StoreError::Lmdb(e.to_string()))?;
        self.sync.log.put(wtxn, &key, &v)?;
        self.sync
            .ids
            .put(wtxn, e.id.as_bytes(), &e.lamport_ts.to_be_bytes())?;
        self.add_bytes(wtxn, (key.len() + v.len() + e.id.len() + 8) as i64)
    }

    /// Append a local entry inside the caller's write transaction (the change it records
    /// commits with it or not at all): stamped `clock + 1`.
    pub fn sync_append(
        &self,
        wtxn: &mut RwTxn,
        node: &str,
        event_type: &str,
        payload: Json,
    ) -> Result<Entry, StoreError> {
        let lamport = self.meta_count(wtxn, META_LAMPORT)? + 1;
        self.meta.put(wtxn, META_LAMPORT, &lamport.to_be_bytes())?;
        self.sync_appended
            .store(true, std::sync::atomic::Ordering::Release);
        let now = crate::clock::now_us();
        let e = Entry {
            id: new_id(node, lamport),
            lamport_ts: lamport,
            node_id: node.to_string(),
            event_type: event_type.to_string(),
            payload,
            created_at: crate::clock::iso8601(now),
        };
        self.put_entry(wtxn, &e, now)?;
        Ok(e)
    }

    /// Merge a remote entry inside the caller's transaction: the clock moves to
    /// `max(clock, lamport) + 1` whatever happens; an id already present is skipped
    /// (false), else the entry is stored (true) and the caller applies it.
    pub fn sync_merge(&self, wtxn: &mut RwTxn, e: &Entry) -> Result<bool, StoreError> {
        let clock = self.meta_count(wtxn, META_LAMPORT)?;
        let clock = clock.max(e.lamport_ts).saturating_add(1);
        self.meta.put(wtxn, META_LAMPORT, &clock.to_be_bytes())?;
        if self.sync.ids.get(wtxn, e.id.as_bytes())?.is_some() {
            return Ok(false);
        }
        self.put_entry(wtxn, e, crate::clock::now_us())?;
        Ok(true)
    }

    /// Drop from the log the entry that carried version `prev` of ref `r`, once a newer
    /// whole state of the same item is about to be appended (a memory's entries are
    /// last-writer-wins, so the newest alone gives every peer the same result). Its id
    /// goes too: keeping every superseded id would grow `sync_ids` (and the log's byte
    /// count, so its trim) by ~44 bytes a change forever. A peer sending the old entry
    /// back gets it stored once more, and not applied: the item's version is newer.
    /// Only entries of `event_types` go. Returns whether one was removed.
    pub fn sync_supersede(
        &self,
        wtxn: &mut RwTxn,
        r: &str,
        prev: &RefState,
        event_types: &[&str],
    ) -> Result<bool, StoreError> {
        let prefix = prev.lamport.to_be_bytes();
        let mut doomed = None;
        for kv in self.sync.log.prefix_iter(wtxn, &prefix)? {
            let (k, v) = kv?;
            let j: Json = serde_json::from_slice(v.get(8..).unwrap_or_default())
                .map_err(|_| Corrupt("sync entry is not JSON"))?;
            let of_it = j.get("node_id").and_then(Json::as_str) == Some(prev.node.as_str())
                && j.pointer("/payload/ref").and_then(Json::as_str) == Some(r)
                && j.get("event_type")
                    .and_then(Json::as_str)
                    .is_some_and(|t| event_types.contains(&t));
            if of_it {
                doomed = Some((k.to_vec(), v.len()));
                break;
            }
        }
        let Some((k, v_len)) = doomed else {
            return Ok(false);
        };
        self.sync.log.delete(wtxn, &k)?;
        let id = &k[8..];
        self.sync.ids.delete(wtxn, id)?;
        self.add_bytes(wtxn, -((k.len() + v_len + id.len() + 8) as i64))?;
        Ok(true)
    }

    /// Whether an entry id is in the log.
    pub fn sync_has(&self, id: &str) -> Result<bool, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.sync.ids.get(&rtxn, id.as_bytes())?.is_some())
    }

    /// Entries with `lamport_ts > since`, ascending, at most `limit`; only `node`'s when
    /// given (at most `scan` entries looked at, so a request costs a bounded read).
    pub fn sync_since(
        &self,
        since: u64,
        limit: usize,
        node: Option<&str>,
    ) -> Result<Vec<Entry>, StoreError> {
        const SCAN: usize = 100_000;
        let rtxn = self.env.read_txn()?;
        let start = (since.saturating_add(1)).to_be_bytes();
        let mut out = Vec::new();
        let range = (
            std::ops::Bound::Included(&start[..]),
            std::ops::Bound::Unbounded,
        );
        for (n, kv) in self.sync.log.range(&rtxn, &range)?.enumerate() {
            if out.len() >= limit || n >= SCAN {
                break;
            }
            let (_, v) = kv?;
            let j: Json = serde_json::from_slice(v.get(8..).unwrap_or_default())
                .map_err(|_| Corrupt("sync entry is not JSON"))?;
            let e = Entry::from_json(&j).map_err(Corrupt)?;
            if node.is_none_or(|n| n == e.node_id) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// `(entries, bytes, lamport clock)` of the log.
    pub fn sync_counts(&self) -> Result<(u64, u64, u64), StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok((
            self.sync.log.len(&rtxn)?,
            self.meta_count(&rtxn, META_BYTES)?,
            self.meta_count(&rtxn, META_LAMPORT)?,
        ))
    }

    /// A named cursor (0 when unset).
    pub fn sync_cursor(&self, name: &str) -> Result<u64, StoreError> {
        let rtxn = self.env.read_txn()?;
        self.meta_count(&rtxn, &cursor_key(name))
    }

    /// A named cursor inside a transaction (0 when unset).
    pub fn sync_cursor_in(&self, txn: &RoTxn, name: &str) -> Result<u64, StoreError> {
        self.meta_count(txn, &cursor_key(name))
    }

    /// Raise a named cursor to `v` (never lowers it).
    pub fn sync_raise_cursor(&self, name: &str, v: u64) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let k = cursor_key(name);
        if self.meta_count(&wtxn, &k)? < v {
            self.meta.put(&mut wtxn, &k, &v.to_be_bytes())?;
            self.commit(wtxn)?;
        }
        Ok(())
    }

    /// Create cursor `name` at 0 unless it exists (a peer known from now on).
    pub fn sync_put_known(&self, name: &str) -> Result<(), StoreError> {
        let k = cursor_key(name);
        let rtxn = self.env.read_txn()?;
        if self.meta.get(&rtxn, &k)?.is_some() {
            return Ok(());
        }
        drop(rtxn);
        let mut wtxn = self.env.write_txn()?;
        if self.meta.get(&wtxn, &k)?.is_none() {
            self.meta.put(&mut wtxn, &k, &0u64.to_be_bytes())?;
            self.commit(wtxn)?;
        }
        Ok(())
    }

    /// Add `delta` to counter `name` inside the caller's transaction; the new value.
    pub fn sync_count(&self, wtxn: &mut RwTxn, name: &str, delta: u64) -> Result<u64, StoreError> {
        let k = cursor_key(name);
        let v = self.meta_count(wtxn, &k)?.saturating_add(delta);
        self.meta.put(wtxn, &k, &v.to_be_bytes())?;
        Ok(v)
    }

    /// Cursors whose name starts with `prefix`, as `(rest of the name, value)`.
    pub fn sync_cursors(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let p = cursor_key(prefix);
        let mut out = Vec::new();
        for kv in self.meta.prefix_iter(&rtxn, &p)? {
            let (k, v) = kv?;
            out.push((
                String::from_utf8_lossy(&k[p.len()..]).into_owned(),
                u64_at(v)?,
            ));
        }
        Ok(out)
    }

    pub fn sync_ref(&self, txn: &RoTxn, r: &str) -> Result<Option<RefState>, StoreError> {
        let mut k = b"r".to_vec();
        k.extend_from_slice(r.as_bytes());
        let Some(v) = self.sync.refs.get(txn, &k)? else {
            return Ok(None);
        };
        if v.len() < 17 {
            return Err(Corrupt("short sync ref").into());
        }
        Ok(Some(RefState {
            kind: v[0],
            local_id: u64_at(&v[1..])?,
            lamport: u64_at(&v[9..])?,
            node: String::from_utf8_lossy(&v[17..]).into_owned(),
        }))
    }

    /// Record where ref `r` lives and its state's version; both directions.
    pub fn sync_put_ref(&self, wtxn: &mut RwTxn, r: &str, s: &RefState) -> Result<(), StoreError> {
        let mut k = b"r".to_vec();
        k.extend_from_slice(r.as_bytes());
        let mut v = vec![s.kind];
        v.extend_from_slice(&s.local_id.to_be_bytes());
        v.extend_from_slice(&s.lamport.to_be_bytes());
        v.extend_from_slice(s.node.as_bytes());
        self.sync.refs.put(wtxn, &k, &v)?;
        if s.kind != TOMBSTONE {
            self.sync
                .refs
                .put(wtxn, &local_key(s.kind, s.local_id), r.as_bytes())?;
        }
        Ok(())
    }

    /// The ref of a local observation (kind 0) or memory (kind 1), if it has one.
    pub fn sync_local_ref(
        &self,
        txn: &RoTxn,
        kind: u8,
        id: u64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .sync
            .refs
            .get(txn, &local_key(kind, id))?
            .map(|v| String::from_utf8_lossy(v).into_owned()))
    }

    /// Retention: delete entries received before `older_than` that `kept(entry node,
    /// lamport)` no longer needs (every peer has them), and the oldest whatever they are
    /// while the log is over `max_bytes`. At most `max` entries looked at. Returns
    /// `(deleted for age, deleted for size)`.
    pub fn sync_trim(
        &self,
        older_than: Micros,
        max_bytes: u64,
        kept: &dyn Fn(&str, u64) -> bool,
        max: usize,
    ) -> Result<(u64, u64), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let mut bytes = self.meta_count(&wtxn, META_BYTES)?;
        let mut doomed: Vec<(Vec<u8>, String, bool)> = Vec::new();
        let mut freed = 0u64;
        for kv in self.sync.log.iter(&wtxn)?.take(max) {
            let (k, v) = kv?;
            let over = bytes.saturating_sub(freed) > max_bytes;
            let received = i64::from_be_bytes(
                v.get(..8)
                    .ok_or(Corrupt("short sync entry"))?
                    .try_into()
                    .expect("8 bytes"),
            );
            let id = String::from_utf8_lossy(&k[8..]).into_owned();
            let lamport = u64_at(k)?;
            let aged = received < older_than && {
                let j: Json = serde_json::from_slice(&v[8..]).unwrap_or(Json::Null);
                let node = j.get("node_id").and_then(Json::as_str).unwrap_or("");
                !kept(node, lamport)
            };
            if !over && !aged {
                if received >= older_than {
                    break;
                }
                continue;
            }
            freed += (k.len() + v.len() + id.len() + 8) as u64;
            doomed.push((k.to_vec(), id, !aged));
        }
        let (mut by_age, mut by_size) = (0, 0);
        for (k, id, for_size) in &doomed {
            self.sync.log.delete(&mut wtxn, k)?;
            self.sync.ids.delete(&mut wtxn, id.as_bytes())?;
            if *for_size {
                by_size += 1;
            } else {
                by_age += 1;
            }
        }
        if !doomed.is_empty() {
            bytes = bytes.saturating_sub(freed);
            self.meta.put(&mut wtxn, META_BYTES, &bytes.to_be_bytes())?;
            self.commit(wtxn)?;
        }
        Ok((by_age, by_size))
    }
}

fn local_key(kind: u8, id: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = b'l';
    k[1] = kind;
    k[2..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The log's three databases, opened with the store.
pub(crate) struct SyncDbs {
    pub log: Db,
    pub ids: Db,
    pub refs: Db,
}
