//! Sources learned from other nodes' messages: how many there may be, per sending node
//! and in total, which names and timestamps are accepted, and what was refused.
//!
//! Every remote name costs memory for the life of the process (the registry entry, a slot
//! in each stage's per-source vector) and a row in the store's `sources` table, and ids
//! are dense and persisted: stored readings are keyed by id, so an id cannot be handed to
//! another name without rewriting its history and every stage's state. So the bound is an
//! admission check: a name already known always passes; a new name passes while its node
//! and the total are under their limits, and is refused (counted) otherwise. A flood of
//! new names cannot push out the sources a node already had.

use std::collections::HashMap;
use std::sync::Arc;

use super::payload::Inbound;
use crate::graph::Micros;
use crate::graph::registry::{self, Registry, SourceInfo};

/// Longest remote source name (`<node>:<source>`, `mqtt:<topic>`), bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Longest unit, bytes.
pub const MAX_UNIT_LEN: usize = 32;
/// Longest sending node name (the topic level a batch came from), bytes; the same limit
/// as `[node] name`.
pub const MAX_NODE_LEN: usize = 64;
/// Nodes listed by name in status (those with the most sources); the rest are summed.
pub const STATUS_NODES: usize = 50;

/// The limits, from `[mqtt] max_remote_sources` and `max_sources_per_node`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub total: u32,
    pub per_node: u32,
}

/// One sending node's numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeTally {
    pub sources: u32,
    /// Readings refused because a limit was reached (their names were new).
    pub refused: u64,
}

/// Why a reading's name was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Name, unit or node name over its length limit.
    TooLong,
    /// The name belongs to a local source type (`system:`, `gpio:`).
    Local,
    NodeLimit,
    TotalLimit,
}

/// The accounting, shared with status behind a mutex: the worker takes it for each remote
/// reading (uncontended), status reads it.
///
/// Bounded: `by_node` holds only nodes with at least one admitted source, so it has at
/// most `max_remote_sources` entries (plus what the store held from earlier runs).
#[derive(Debug, Default)]
pub struct RemoteTally {
    pub by_node: HashMap<Box<str>, NodeTally>,
    pub sources: u32,
    pub refused_node_limit: u64,
    pub refused_total_limit: u64,
    /// Refused for their length or for naming a local source.
    pub names_refused: u64,
    /// Refusals from nodes without an admitted source (not listed by name).
    pub refused_other_nodes: u64,
}

impl RemoteTally {
    /// Count the remote sources the registry already holds (loaded from the store).
    pub fn seed(registry: &Registry) -> RemoteTally {
        let mut t = RemoteTally::default();
        for info in registry.all() {
            if registry.is_local(&info.name) {
                continue;
            }
            let node = registry::source_type(&info.name);
            t.by_node.entry(node.into()).or_default().sources += 1;
            t.sources += 1;
        }
        t
    }

    /// The registry entry for an inbound reading, interning its name if it is new and the
    /// limits allow.
    pub fn admit(
        &mut self,
        registry: &Registry,
        r: &Inbound,
        unit: &str,
        limits: Limits,
    ) -> Result<Arc<SourceInfo>, Refusal> {
        let node = registry::source_type(&r.name);
        let refusal = if r.name.len() > MAX_NAME_LEN
            || unit.len() > MAX_UNIT_LEN
            || node.len() > MAX_NODE_LEN
        {
            Some(Refusal::TooLong)
        } else if registry.is_local(&r.name) {
            Some(Refusal::Local)
        } else {
            None
        };
        if let Some(why) = refusal {
            self.names_refused += 1;
            return Err(why);
        }
        let kind = r.value.kind();
        if let Some(info) = registry.lookup(&r.name) {
            if &*info.unit == unit && info.kind == kind {
                return Ok(info);
            }
            return Ok(registry.intern(&r.name, unit, kind));
        }
        let node_sources = self.by_node.get(node).map_or(0, |n| n.sources);
        let refusal = if self.sources >= limits.total {
            Some(Refusal::TotalLimit)
        } else if node_sources >= limits.per_node {
            Some(Refusal::NodeLimit)
        } else {
            None
        };
        if let Some(why) = refusal {
            match why {
                Refusal::TotalLimit => self.refused_total_limit += 1,
                _ => self.refused_node_limit += 1,
            }
            match self.by_node.get_mut(node) {
                Some(n) => n.refused += 1,
                None => self.refused_other_nodes += 1,
            }
            return Err(why);
        }
        self.sources += 1;
        self.by_node.entry(node.into()).or_default().sources += 1;
        Ok(registry.intern(&r.name, unit, kind))
    }

    /// The nodes with the most sources (ties by name), at most `n`, and how many more.
    pub fn top_nodes(&self, n: usize) -> (Vec<(&str, NodeTally)>, usize) {
        let mut v: Vec<(&str, NodeTally)> = self.by_node.iter().map(|(k, t)| (&**k, *t)).collect();
        v.sort_by(|a, b| b.1.sources.cmp(&a.1.sources).then(a.0.cmp(b.0)));
        let more = v.len().saturating_sub(n);
        v.truncate(n);
        (v, more)
    }
}

/// Whether a sender's timestamp is plausible: not older than `max_age`, not more than
/// `max_ahead` ahead of this node's clock. Others are replaced by the arrival time.
pub fn plausible_ts(ts: Micros, now: Micros, max_age: Micros, max_ahead: Micros) -> bool {
    ts >= now.saturating_sub(max_age) && ts <= now.saturating_add(max_ahead)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Value, ValueKind};

    fn reading(name: &str) -> Inbound {
        Inbound {
            name: name.into(),
            unit: String::new(),
            value: Value::Number(1.0),
            ts: None,
        }
    }

    const LIMITS: Limits = Limits {
        total: 3,
        per_node: 2,
    };

    #[test]
    fn new_names_are_admitted_up_to_the_limits_and_known_ones_always() {
        let reg = Registry::with_local_types(vec!["system", "gpio"]);
        reg.intern("system:cpu_temp", "celsius", ValueKind::Number);
        let mut t = RemoteTally::seed(&reg);
        assert_eq!(t.sources, 0, "local sources do not count");
        let a1 = t.admit(&reg, &reading("a:x"), "", LIMITS).unwrap();
        t.admit(&reg, &reading("a:y"), "", LIMITS).unwrap();
        assert_eq!(
            t.admit(&reg, &reading("a:z"), "", LIMITS).err(),
            Some(Refusal::NodeLimit)
        );
        t.admit(&reg, &reading("b:x"), "", LIMITS).unwrap();
        assert_eq!(
            t.admit(&reg, &reading("c:x"), "", LIMITS).err(),
            Some(Refusal::TotalLimit)
        );
        // Known names keep working at the limit, with their ids.
        assert_eq!(
            t.admit(&reg, &reading("a:x"), "", LIMITS).unwrap().id,
            a1.id
        );
        assert_eq!(t.sources, 3);
        assert_eq!(t.refused_node_limit, 1);
        assert_eq!(t.refused_total_limit, 1);
        assert_eq!(
            t.by_node["a"],
            NodeTally {
                sources: 2,
                refused: 1
            }
        );
        assert_eq!(t.refused_other_nodes, 1, "c has no admitted source");
        assert!(reg.lookup("a:z").is_none() && reg.lookup("c:x").is_none());
        // A restart counts what the store brought back.
        let again = RemoteTally::seed(&reg);
        assert_eq!(again.sources, 3);
        assert_eq!(again.by_node["a"].sources, 2);
    }

    #[test]
    fn long_names_and_local_names_are_refused() {
        let reg = Registry::with_local_types(vec!["system", "gpio"]);
        let mut t = RemoteTally::default();
        let big = Limits {
            total: 100,
            per_node: 100,
        };
        let long = format!("n:{}", "x".repeat(MAX_NAME_LEN));
        assert_eq!(
            t.admit(&reg, &reading(&long), "", big).err(),
            Some(Refusal::TooLong)
        );
        let unit = "u".repeat(MAX_UNIT_LEN + 1);
        assert_eq!(
            t.admit(&reg, &reading("n:a"), &unit, big).err(),
            Some(Refusal::TooLong)
        );
        let node = "n".repeat(MAX_NODE_LEN + 1);
        let name = format!("{node}:a");
        assert_eq!(
            t.admit(&reg, &reading(&name), "", big).err(),
            Some(Refusal::TooLong)
        );
        // A node called "system" cannot feed this node's own system:* sources.
        assert_eq!(
            t.admit(&reg, &reading("system:cpu_temp"), "", big).err(),
            Some(Refusal::Local)
        );
        assert_eq!(t.names_refused, 4);
        assert_eq!(t.sources, 0);
        assert!(reg.is_empty());
    }

    #[test]
    fn status_lists_the_biggest_nodes() {
        let mut t = RemoteTally::default();
        for (n, s) in [("b", 5), ("a", 5), ("c", 9), ("d", 1)] {
            t.by_node.insert(
                n.into(),
                NodeTally {
                    sources: s,
                    refused: 0,
                },
            );
        }
        let (top, more) = t.top_nodes(3);
        let names: Vec<&str> = top.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["c", "a", "b"]);
        assert_eq!(more, 1);
    }

    #[test]
    fn timestamps_far_off_are_implausible() {
        let now = 1_795_771_723_000_000;
        let (age, ahead) = (30 * 86_400_000_000, 300_000_000);
        assert!(plausible_ts(now, now, age, ahead));
        assert!(plausible_ts(now - age, now, age, ahead));
        assert!(plausible_ts(now + ahead, now, age, ahead));
        assert!(!plausible_ts(now - age - 1, now, age, ahead));
        assert!(!plausible_ts(now + ahead + 1, now, age, ahead));
        assert!(!plausible_ts(1_000_000_000_000_000_000, now, age, ahead));
        assert!(!plausible_ts(i64::MIN, now, age, ahead));
    }
}
