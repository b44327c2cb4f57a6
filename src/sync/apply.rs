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

/// Items other nodes' entries created here (`[sync] max_remote_items` bounds them).
const REMOTE_ITEMS: &str = "remote_items";

/// Merge `entries` in one transaction (idempotent: a known id changes nothing but the
/// clock). New items past `max_items` created by other nodes are not applied (the entry
/// stays in the log; counted in `refused_items`).
pub fn merge(store: &Store, entries: &[Entry], max_items: u64) -> Result<Merged, MemoryError> {
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
        if apply(store, &mut wtxn, e, max_items)? {
            m.applied += 1;
        }
    }
    store.commit(wtxn)?;
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
fn apply(
    store: &Store,
    wtxn: &mut heed::RwTxn,
    e: &Entry,
    max_items: u64,
) -> Result<bool, MemoryError> {
    let ms = store.memory();
    let Some(r) = replica::payload_ref(&e.payload) else {
        return Ok(false);
    };
    if store.sync_ref(wtxn, r)?.is_none() {
        if store.sync_cursor_in(wtxn, REMOTE_ITEMS)? >= max_items {
            SyncStats::add(&STATS.refused_items, 1);
            return Ok(false);
        }
        store.sync_count(wtxn, REMOTE_ITEMS, 1)?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::ObservationType;
    use crate::store::StoreOptions;
    use crate::store::tests::TempDir;

    fn node(dir: &TempDir, name: &str) -> Store {
        let s = Store::open(&dir.0.join(name), &StoreOptions { map_size: 16 << 20 }).unwrap();
        s.set_sync_node(name);
        s
    }

    fn mem(fact: &str, node: &str) -> Memory {
        Memory {
            id: 0,
            fact: fact.into(),
            confidence: 0.5,
            times_confirmed: 1,
            active: true,
            first_seen: 100,
            last_seen: 200,
            node: node.into(),
        }
    }

    fn all(s: &Store) -> Vec<Entry> {
        s.sync_since(0, 1000, None).unwrap()
    }

    fn memories(s: &Store) -> Vec<(String, u32, bool, String)> {
        let mut v: Vec<_> = s
            .memory()
            .memories(false, 100)
            .unwrap()
            .into_iter()
            .map(|m| (m.fact, m.times_confirmed, m.active, m.node))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn lamport_rules_are_the_originals() {
        let dir = TempDir::new("sync-lamport");
        let a = node(&dir, "a");
        a.memory().add_memory(&mem("x", "a"), None).unwrap();
        assert_eq!(all(&a)[0].lamport_ts, 1, "a local append stamps clock + 1");
        let mut remote = all(&a)[0].clone();
        remote.id = "remote-1".into();
        remote.node_id = "b".into();
        remote.lamport_ts = 10;
        remote.payload["ref"] = "remote-ref".into();
        let m = merge(&a, std::slice::from_ref(&remote), u64::MAX).unwrap();
        assert_eq!((m.new, m.duplicates, m.applied), (1, 0, 1));
        assert_eq!(a.sync_counts().unwrap().2, 11, "max(clock, remote) + 1");
        let m = merge(&a, std::slice::from_ref(&remote), u64::MAX).unwrap();
        assert_eq!((m.new, m.duplicates), (0, 1), "an id seen twice is skipped");
        assert_eq!(
            a.sync_counts().unwrap().2,
            12,
            "duplicates move the clock too"
        );
        assert_eq!(memories(&a).len(), 2, "the duplicate added nothing");
        a.memory().add_memory(&mem("y", "a"), None).unwrap();
        assert_eq!(all(&a).last().unwrap().lamport_ts, 13);
    }

    #[test]
    fn concurrent_changes_end_the_same_in_every_order() {
        let dir = TempDir::new("sync-lww");
        let (a, b) = (node(&dir, "a"), node(&dir, "b"));
        let id = a
            .memory()
            .add_memory(&mem("fan on pin 22", "a"), None)
            .unwrap();
        merge(&b, &all(&a), u64::MAX).unwrap();
        let first = all(&a);
        let bid = b.memory().memories(false, 10).unwrap()[0].id;
        // At once: a reinforces, b deactivates (neither has seen the other's change).
        a.memory().reinforce_memory(id, 0.1).unwrap();
        b.memory().deactivate_memory(bid).unwrap();
        let ea = all(&a).pop().unwrap();
        let eb = all(&b).pop().unwrap();
        let mut ends = Vec::new();
        for (n, order) in [vec![&ea, &eb], vec![&eb, &ea]].into_iter().enumerate() {
            let c = node(&dir, &format!("c{n}"));
            merge(&c, &first, u64::MAX).unwrap();
            for e in order {
                merge(&c, std::slice::from_ref(e), u64::MAX).unwrap();
            }
            ends.push(memories(&c));
        }
        merge(&a, std::slice::from_ref(&eb), u64::MAX).unwrap();
        merge(&b, std::slice::from_ref(&ea), u64::MAX).unwrap();
        ends.push(memories(&a));
        ends.push(memories(&b));
        assert!(ends.iter().all(|e| *e == ends[0]), "{ends:?}");
        // The higher (lamport_ts, node_id) wins: b's clock moved past a's when it
        // merged a's memory, so b's deactivation.
        assert!((eb.lamport_ts, "b") > (ea.lamport_ts, "a"));
        assert!(!ends[0][0].2, "b's deactivation won: {ends:?}");
    }

    #[test]
    fn a_memory_keeps_one_entry_in_the_log_however_often_it_is_reinforced() {
        let dir = TempDir::new("sync-supersede");
        let (a, b, c) = (node(&dir, "a"), node(&dir, "b"), node(&dir, "c"));
        let id = a
            .memory()
            .add_memory(&mem("door opens at 7", "a"), None)
            .unwrap();
        a.memory()
            .add_memory(&mem("fan on pin 22", "a"), None)
            .unwrap();
        // b pulls the first version, then a reinforces ten times.
        merge(&b, &all(&a), u64::MAX).unwrap();
        let stale = all(&a)[0].clone();
        let bytes_before = a.sync_counts().unwrap().1;
        for _ in 0..10 {
            a.memory().reinforce_memory(id, 0.01).unwrap();
        }
        let log = all(&a);
        assert_eq!(log.len(), 2, "one entry per memory: {log:?}");
        assert_eq!(log[1].event_type, replica::MEMORY_REINFORCED);
        assert!(
            a.sync_counts().unwrap().1 < bytes_before + 256,
            "the log's byte count follows what it holds: {} after, {bytes_before} before",
            a.sync_counts().unwrap().1
        );
        // A peer that had the old version and one that starts now end the same as a.
        merge(&b, &all(&a), u64::MAX).unwrap();
        merge(&c, &all(&a), u64::MAX).unwrap();
        let on_a: Vec<_> = memories(&a).into_iter().map(|m| m.1).collect();
        assert_eq!(on_a, [11, 1], "door opens at 7: 1 + 10, fan on pin 22: 1");
        assert_eq!(memories(&b), memories(&a));
        assert_eq!(memories(&c), memories(&a));
        // The dropped entry sent back by a peer changes nothing: its version is older.
        let before = memories(&a);
        let m = merge(&a, &[stale], u64::MAX).unwrap();
        assert_eq!(m.applied, 0);
        assert_eq!(memories(&a), before);
        // Neither the log nor its byte count keeps what was superseded: ten changes
        // cost what one does.
        let (entries, bytes, _) = a.sync_counts().unwrap();
        assert_eq!(
            entries, 3,
            "the two items' entries and the stale one sent back"
        );
        let one = (bytes_before as f64 / 2.0) * 3.5;
        assert!((bytes as f64) < one, "{bytes} bytes for {entries} entries");
    }

    #[test]
    fn a_repeated_observation_keeps_one_entry_and_peers_end_the_same() {
        let dir = TempDir::new("sync-supersede-obs");
        let (a, b) = (node(&dir, "a"), node(&dir, "b"));
        let o = Observation {
            id: 0,
            ts: 1_000,
            text: "the fan runs at night".into(),
            kind: ObservationType::Pattern,
            confidence: 0.5,
            related_sources: vec!["gpio:22".into()],
            node: "a".into(),
        };
        let id = a.memory().add_observation(&o, None).unwrap();
        merge(&b, &all(&a), u64::MAX).unwrap();
        for (n, src) in ["gpio:22", "system:uptime", "gpio:23"].iter().enumerate() {
            let ts = 2_000 + n as i64;
            a.memory()
                .merge_observation(id, ts, 0.6 + n as f32 / 10.0, &[src.to_string()])
                .unwrap();
        }
        assert_eq!(all(&a).len(), 1, "the repeats replaced their own entries");
        merge(&b, &all(&a), u64::MAX).unwrap();
        let c = node(&dir, "c");
        merge(&c, &all(&a), u64::MAX).unwrap();
        let seen = |s: &Store| {
            let o = &s.memory().observations(0, None, 10).unwrap()[0];
            let mut src = o.related_sources.clone();
            src.sort();
            (o.ts, (o.confidence * 10.0).round() as i32, src)
        };
        let want = (
            2_002,
            8,
            vec!["gpio:22".into(), "gpio:23".into(), "system:uptime".into()],
        );
        assert_eq!(seen(&a), want);
        assert_eq!(seen(&b), want, "a peer that had the first version");
        assert_eq!(seen(&c), want, "a peer that starts now");
    }

    #[test]
    fn a_summary_removes_what_it_replaces_for_good() {
        let dir = TempDir::new("sync-summary");
        let (a, b) = (node(&dir, "a"), node(&dir, "b"));
        let obs = Observation {
            id: 0,
            ts: 1,
            text: "warm".into(),
            kind: ObservationType::Status,
            confidence: 0.5,
            related_sources: vec![],
            node: "a".into(),
        };
        let id = a.memory().add_observation(&obs, None).unwrap();
        let summary = Observation {
            text: "it was warm".into(),
            kind: ObservationType::Summary,
            ..obs.clone()
        };
        a.memory()
            .replace_with_summary(&[id], &summary, None)
            .unwrap();
        let log = all(&a);
        // The summary first, the original after: the original stays gone.
        merge(&b, &log[1..], u64::MAX).unwrap();
        merge(&b, &log[..1], u64::MAX).unwrap();
        let texts: Vec<String> = b
            .memory()
            .observations(i64::MIN, None, 10)
            .unwrap()
            .into_iter()
            .map(|o| o.text)
            .collect();
        assert_eq!(texts, ["it was warm"]);
    }

    #[test]
    fn retention_keeps_what_a_peer_lacks_and_the_size_bound_wins() {
        let dir = TempDir::new("sync-trim");
        let a = node(&dir, "a");
        for f in ["one", "two", "three"] {
            a.memory().add_memory(&mem(f, "a"), None).unwrap();
        }
        let later = crate::clock::now_us() + 1;
        // A peer has everything up to lamport 2: only entry 3 must stay.
        let kept = |n: &str, l: u64| n == "a" && l > 2;
        assert_eq!(a.sync_trim(later, u64::MAX, &kept, 100).unwrap(), (2, 0));
        assert_eq!(all(&a).len(), 1);
        // Not old enough: nothing goes, whoever has it.
        assert_eq!(
            a.sync_trim(0, u64::MAX, &|_, _| false, 100).unwrap(),
            (0, 0)
        );
        // Over the byte bound: the oldest goes whatever the peers.
        assert_eq!(a.sync_trim(0, 0, &kept, 100).unwrap(), (0, 1));
        assert_eq!(a.sync_counts().unwrap(), (0, 0, 3));
    }

    #[test]
    fn items_stored_before_sync_was_on_are_logged_once() {
        let dir = TempDir::new("sync-backfill");
        let a = Store::open(&dir.0.join("a"), &StoreOptions { map_size: 16 << 20 }).unwrap();
        a.memory().add_memory(&mem("old fact", "a"), None).unwrap();
        assert!(all(&a).is_empty(), "sync off: nothing logged");
        a.set_sync_node("a");
        assert_eq!(a.memory().log_unlogged(1).unwrap(), 1);
        assert_eq!(a.memory().log_unlogged(1).unwrap(), 0, "logged once");
        let b = node(&dir, "b");
        merge(&b, &all(&a), u64::MAX).unwrap();
        assert_eq!(memories(&b), memories(&a));
    }

    #[test]
    fn items_from_other_nodes_are_bounded() {
        let dir = TempDir::new("sync-bound");
        let (a, b) = (node(&dir, "a"), node(&dir, "b"));
        for f in ["one", "two", "three"] {
            a.memory().add_memory(&mem(f, "a"), None).unwrap();
        }
        let m = merge(&b, &all(&a), 2).unwrap();
        assert_eq!(
            (m.new, m.applied),
            (3, 2),
            "the third new item is past the bound"
        );
        assert_eq!(memories(&b).len(), 2);
        assert_eq!(all(&b).len(), 3, "its entry stays in the log");
        // Changes to items already here still apply.
        let id = a.memory().memories(false, 10).unwrap()[2].id;
        a.memory().deactivate_memory(id).unwrap();
        let last = all(&a).pop().unwrap();
        assert_eq!(merge(&b, &[last], 2).unwrap().applied, 1);
    }
}
