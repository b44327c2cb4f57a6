//! Merging remote entries: each new id is stored in the log and applied to the local
//! observations and memories in the same transaction, so a crash leaves both or neither.
//! Applying is state-based (`memory::replica`): observations join, memories keep the
//! state with the highest `(lamport_ts, node_id)`, so every order of delivery ends in
//! the same state on every node.

use serde_json::Value as Json;

use super::stats::{STATS, SyncStats};
use crate::memory::replica;
use crate::memory::store::{MemoryError, Remote, decode_memory, decode_observation};
use crate::memory::{Memory, Observation};
use crate::store::Store;
use crate::store::sync_log::{Entry, RefState, TOMBSTONE};

/// What a merge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    pub new: u64,
    pub duplicates: u64,
    pub applied: u64,
}

/// Entries from their wire forms; malformed ones are counted and left out.
pub fn entries_of(list: Option<&Json>) -> Vec<Entry> {
    let Some(Json::Array(a)) = list else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(a.len());
    for j in a {
        match Entry::from_json(j) {
            Ok(e) => out.push(e),
            Err(why) => {
                SyncStats::add(&STATS.malformed, 1);
                log::debug!("sync: skipped an entry: {why}");
            }
        }
    }
    out
}

/// Merge `entries` in one transaction (idempotent: a known id changes nothing but the
/// clock).
pub fn merge(store: &Store, entries: &[Entry]) -> Result<Merged, MemoryError> {
    let mut m = Merged::default();
    if entries.is_empty() {
        return Ok(m);
    }
    let mut wtxn = store.env().write_txn()?;
    for e in entries {
        if !store.sync_merge(&mut wtxn, e)? {
            m.duplicates += 1;
            continue;
        }
        m.new += 1;
        if apply(store, &mut wtxn, e)? {
            m.applied += 1;
        }
    }
    wtxn.commit()?;
    SyncStats::add(&STATS.merged, m.new);
    SyncStats::add(&STATS.duplicates, m.duplicates);
    SyncStats::add(&STATS.applied, m.applied);
    SyncStats::add(&STATS.not_applied, m.new - m.applied);
    Ok(m)
}

fn newer(e: &Entry, s: &RefState) -> bool {
    (e.lamport_ts, e.node_id.as_str()) > (s.lamport, s.node.as_str())
}

/// Apply one new entry; false when it changed nothing here.
fn apply(store: &Store, wtxn: &mut heed::RwTxn, e: &Entry) -> Result<bool, MemoryError> {
    let ms = store.memory();
    let Some(r) = replica::payload_ref(&e.payload) else {
        return Ok(false);
    };
    match e.event_type.as_str() {
        replica::OBSERVATION | replica::OBSERVATION_SUMMARY => {
            let Some(o) = replica::observation_of(&e.payload, &e.node_id) else {
                return Ok(false);
            };
            for old in replica::replaced(&e.payload) {
                if let Some(s) = store.sync_ref(wtxn, &old)?
                    && s.kind == 0
                {
                    ms.delete_remote(wtxn, s.local_id)?;
                }
                ms.tombstone(wtxn, &old)?;
            }
            apply_observation(store, wtxn, e, r, &o)
        }
        replica::MEMORY | replica::MEMORY_REINFORCED | replica::MEMORY_DEACTIVATED => {
            let Some(m) = replica::memory_of(&e.payload, &e.node_id) else {
                return Ok(false);
            };
            apply_memory(store, wtxn, e, r, &m)
        }
        _ => Ok(false),
    }
}

fn apply_observation(
    store: &Store,
    wtxn: &mut heed::RwTxn,
    e: &Entry,
    r: &str,
    o: &Observation,
) -> Result<bool, MemoryError> {
    let ms = store.memory();
    match store.sync_ref(wtxn, r)? {
        None => {
            let id = ms.insert_remote(wtxn, Remote::Observation(o))?;
            let s = RefState {
                kind: 0,
                local_id: id,
                lamport: e.lamport_ts,
                node: e.node_id.clone(),
            };
            store.sync_put_ref(wtxn, r, &s)?;
            Ok(true)
        }
        Some(s) if s.kind == 0 => {
            let Some(v) = ms.observations_db().get(wtxn, &s.local_id.to_be_bytes())? else {
                return Ok(false); // aged off here
            };
            let mut cur = decode_observation(s.local_id, v)?;
            let before = cur.clone();
            replica::join_observation(&mut cur, o);
            if cur == before {
                return Ok(false);
            }
            ms.replace_remote(wtxn, s.local_id, Remote::Observation(&cur))
        }
        Some(_) => Ok(false),
    }
}

fn apply_memory(
    store: &Store,
    wtxn: &mut heed::RwTxn,
    e: &Entry,
    r: &str,
    m: &Memory,
) -> Result<bool, MemoryError> {
    let ms = store.memory();
    let version = |local_id| RefState {
        kind: 1,
        local_id,
        lamport: e.lamport_ts,
        node: e.node_id.clone(),
    };
    match store.sync_ref(wtxn, r)? {
        None => {
            let id = ms.insert_remote(wtxn, Remote::Memory(m))?;
            store.sync_put_ref(wtxn, r, &version(id))?;
            Ok(true)
        }
        Some(s) if s.kind == 1 && newer(e, &s) => {
            let Some(v) = ms.memories_db().get(wtxn, &s.local_id.to_be_bytes())? else {
                return Ok(false);
            };
            let cur = decode_memory(s.local_id, v)?;
            store.sync_put_ref(wtxn, r, &version(s.local_id))?;
            let next = Memory {
                id: cur.id,
                ..m.clone()
            };
            if next == cur {
                return Ok(false);
            }
            ms.replace_remote(wtxn, s.local_id, Remote::Memory(&next))
        }
        Some(s) if s.kind == TOMBSTONE => Ok(false),
        Some(_) => Ok(false),
    }
}
