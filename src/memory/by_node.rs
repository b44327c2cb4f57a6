//! The merged store seen node by node (the cluster view, `GET /api/cluster/*`, and the
//! agent's `cross_node_recall`): one node's observations, and how many observations and
//! memories each node contributed. Read-only, one short read transaction each.

use std::collections::BTreeMap;

use super::Observation;
use super::ObservationType;
use super::store::{MemoryError, MemoryStore, decode_observation_ref, id_of, memory_is_active};
use crate::graph::Micros;
use crate::store::codec::Corrupt;

/// How many items one node contributed to this store (its own and those merged from it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeItems {
    pub observations: u64,
    /// Active memories.
    pub memories: u64,
    /// Newest observation time, or 0.
    pub newest_observation: Micros,
    /// Newest `last_seen` of its active memories, or 0.
    pub newest_memory: Micros,
}

/// The node field of a stored memory (version 1: after 26 bytes of fixed fields), borrowed.
fn memory_node(v: &[u8]) -> Result<&str, Corrupt> {
    let len = v.get(26..28).ok_or(Corrupt("short memory value"))?;
    let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let bytes = v.get(28..28 + n).ok_or(Corrupt("short memory value"))?;
    std::str::from_utf8(bytes).map_err(|_| Corrupt("memory node is not UTF-8"))
}

/// `last_seen` of a stored memory (bytes 18..26).
fn memory_last_seen(v: &[u8]) -> Result<Micros, Corrupt> {
    let b = v.get(18..26).ok_or(Corrupt("short memory value"))?;
    Ok(i64::from_be_bytes(b.try_into().expect("8 bytes")))
}

impl MemoryStore<'_> {
    /// Observations of `node` (every node's when `None`) at or after `from_ts`, of `kind`
    /// if given, newest first, at most `limit`. Walks ids from the newest, decoding only
    /// the fixed fields of the rows it skips.
    pub fn observations_of(
        &self,
        node: Option<&str>,
        from_ts: Micros,
        kind: Option<ObservationType>,
        limit: usize,
    ) -> Result<Vec<Observation>, MemoryError> {
        let rtxn = self.read_txn()?;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for kv in self.observations_db().rev_iter(&rtxn)? {
            let (k, v) = kv?;
            let r = decode_observation_ref(v)?;
            if r.ts >= from_ts
                && kind.is_none_or(|t| t == r.kind)
                && node.is_none_or(|n| n == r.node)
            {
                out.push(r.to_owned(id_of(k)?)?);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out.sort_by(|a, b| b.ts.cmp(&a.ts).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// Observations and active memories per node, by node name. One scan of each table.
    pub fn items_by_node(&self) -> Result<BTreeMap<String, NodeItems>, MemoryError> {
        let rtxn = self.read_txn()?;
        let mut out: BTreeMap<String, NodeItems> = BTreeMap::new();
        for kv in self.observations_db().iter(&rtxn)? {
            let (_, v) = kv?;
            let r = decode_observation_ref(v)?;
            let n = of_node(&mut out, r.node);
            n.observations += 1;
            n.newest_observation = n.newest_observation.max(r.ts);
        }
        for kv in self.memories_db().iter(&rtxn)? {
            let (_, v) = kv?;
            if !memory_is_active(v)? {
                continue;
            }
            let n = of_node(&mut out, memory_node(v)?);
            n.memories += 1;
            n.newest_memory = n.newest_memory.max(memory_last_seen(v)?);
        }
        Ok(out)
    }
}

/// A node's tally, created on first sight (the name is copied once per node, not per row).
fn of_node<'m>(out: &'m mut BTreeMap<String, NodeItems>, node: &str) -> &'m mut NodeItems {
    if !out.contains_key(node) {
        out.insert(node.to_string(), NodeItems::default());
    }
    out.get_mut(node).expect("inserted above")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Memory;
    use crate::store::tests::TempDir;
    use crate::store::{Store, StoreOptions};

    fn obs(ts: Micros, node: &str, text: &str) -> Observation {
        Observation {
            id: 0,
            ts,
            text: text.into(),
            kind: ObservationType::Pattern,
            confidence: 0.75,
            related_sources: vec![],
            node: node.into(),
        }
    }

    fn mem(fact: &str, node: &str) -> Memory {
        Memory {
            id: 0,
            fact: fact.into(),
            confidence: 0.5,
            times_confirmed: 1,
            active: true,
            first_seen: 100,
            last_seen: 5_000,
            node: node.into(),
        }
    }

    #[test]
    fn observations_of_one_node_and_counts_per_node() {
        let dir = TempDir::new("by-node");
        let store = Store::open(&dir.0, &StoreOptions { map_size: 16 << 20 }).unwrap();
        let ms = store.memory();
        for (i, node) in ["kitchen", "garage", "kitchen"].iter().enumerate() {
            let o = obs(1_000 + i as i64, node, &format!("seen {i}"));
            ms.add_observation(&o, None).unwrap();
        }
        ms.add_memory(&mem("the fan is on pin 22", "garage"), None)
            .unwrap();
        let gone = mem("an old fact", "garage");
        let id = ms.add_memory(&gone, None).unwrap();
        ms.deactivate_memory(id).unwrap();

        let k = ms
            .observations_of(Some("kitchen"), i64::MIN, None, 10)
            .unwrap();
        let texts: Vec<&str> = k.iter().map(|o| o.text.as_str()).collect();
        assert_eq!(texts, ["seen 2", "seen 0"], "newest first, kitchen's only");
        assert_eq!(
            ms.observations_of(None, i64::MIN, None, 10).unwrap().len(),
            3
        );
        assert_eq!(
            ms.observations_of(Some("kitchen"), i64::MIN, None, 1)
                .unwrap()
                .len(),
            1
        );
        assert!(
            ms.observations_of(Some("attic"), i64::MIN, None, 10)
                .unwrap()
                .is_empty()
        );

        let by = ms.items_by_node().unwrap();
        assert_eq!(
            by["kitchen"],
            NodeItems {
                observations: 2,
                memories: 0,
                newest_observation: 1_002,
                newest_memory: 0
            }
        );
        assert_eq!(
            by["garage"],
            NodeItems {
                observations: 1,
                memories: 1,
                newest_observation: 1_001,
                newest_memory: 5_000
            },
            "the inactive memory is not counted"
        );
    }
}
