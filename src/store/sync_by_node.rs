//! When each node's log entries last arrived here (the cluster view's "last traffic"):
//! a bounded walk back from the newest end of the replicated log, so the answer costs a
//! fixed read however long the log is.

use std::collections::BTreeMap;

use super::codec::Corrupt;
use super::{Store, StoreError};
use crate::graph::Micros;

/// The part of an entry's JSON this reads.
#[derive(serde::Deserialize)]
struct NodeOf<'a> {
    #[serde(borrow)]
    node_id: std::borrow::Cow<'a, str>,
}

impl Store {
    /// Per node, the newest arrival time (`received_at`) among the newest `scan` log
    /// entries. A node whose entries are all older than those is absent.
    pub fn sync_received_by_node(
        &self,
        scan: usize,
    ) -> Result<BTreeMap<String, Micros>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out: BTreeMap<String, Micros> = BTreeMap::new();
        for kv in self.sync.log.rev_iter(&rtxn)?.take(scan) {
            let (_, v) = kv?;
            let at = v.get(..8).ok_or(Corrupt("short sync value"))?;
            let at = i64::from_be_bytes(at.try_into().expect("8 bytes"));
            let e: NodeOf =
                serde_json::from_slice(&v[8..]).map_err(|_| Corrupt("sync entry is not JSON"))?;
            match out.get_mut(&*e.node_id) {
                Some(t) => *t = (*t).max(at),
                None => {
                    out.insert(e.node_id.into_owned(), at);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::sync_log::Entry;
    use super::super::tests::TempDir;
    use super::super::{Store, StoreOptions};

    fn entry(node: &str, lamport: u64) -> Entry {
        Entry {
            id: format!("{node}-{lamport}"),
            lamport_ts: lamport,
            node_id: node.into(),
            event_type: "observation".into(),
            payload: json!({}),
            created_at: String::new(),
        }
    }

    #[test]
    fn newest_arrival_per_node_within_the_scan() {
        let dir = TempDir::new("sync-by-node");
        let store = Store::open(&dir.0, &StoreOptions { map_size: 16 << 20 }).unwrap();
        let mut wtxn = store.env.write_txn().unwrap();
        for (node, l) in [("old", 1), ("kitchen", 2), ("gar\"age", 3), ("kitchen", 4)] {
            assert!(store.sync_merge(&mut wtxn, &entry(node, l)).unwrap());
        }
        store.commit(wtxn).unwrap();
        let all = store.sync_received_by_node(100).unwrap();
        assert_eq!(
            all.keys().map(String::as_str).collect::<Vec<_>>(),
            ["gar\"age", "kitchen", "old"],
            "an escaped name is read too"
        );
        assert!(all.values().all(|&t| t > 0));
        let newest = store.sync_received_by_node(2).unwrap();
        assert!(!newest.contains_key("old"), "outside the scan: {newest:?}");
        assert_eq!(newest.len(), 2);
    }
}
