//! The directory: a bounded map from node name to what is known of it, shared behind a
//! mutex by the edges that learn nodes (the MQTT worker, the mDNS task) and the readers
//! (HTTP, status). Every call holds the lock for a map lookup and a few stores.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value as Json, json};

use super::entry::{Announcement, MAX_ADDRESSES, NodeEntry, Status, Via, bounded};
use super::health::Health;
use super::topics::{Heard, NodeTopics};
use crate::clock::iso8601;
use crate::graph::Micros;

/// Longest node name taken from a topic or an announcement, bytes (`[node] name`'s limit).
pub const MAX_NAME: usize = 64;

/// When a node counts as stale or offline, and how long an mDNS entry lives unconfirmed
/// (`[discovery] stale_after`, `offline_after`, `cache_ttl`).
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub stale_after: Micros,
    pub offline_after: Micros,
    pub cache_ttl: Micros,
}

/// The directory's counters, for `/api/status` (`nodes`).
#[derive(Debug, Default)]
pub struct DirectoryStats {
    /// New nodes refused because `max_nodes` were known.
    pub refused: AtomicU64,
    /// Names refused for their length or characters.
    pub names_refused: AtomicU64,
    /// mDNS entries dropped because the node stopped answering (a verification query
    /// unanswered, or `cache_ttl` without confirmation).
    pub expired: AtomicU64,
    /// mDNS goodbyes (a peer's clean stop), each dropping its entry at once.
    pub goodbyes: AtomicU64,
}

/// Every other node this one knows, at most `max_nodes` (a new one past it is refused and
/// counted; known ones keep being updated), plus this node's own row for the listings.
/// A node leaves when the last way it was known is gone (an mDNS goodbye or expiry for an
/// mDNS-only node); nodes heard over MQTT stay, shown offline once their status or
/// silence says so.
pub struct NodeDirectory {
    me: Box<str>,
    own: Announcement,
    started: Micros,
    max_nodes: usize,
    pub thresholds: Thresholds,
    topics: NodeTopics,
    nodes: Mutex<HashMap<Box<str>, NodeEntry>>,
    pub stats: DirectoryStats,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl NodeDirectory {
    pub fn new(
        me: &str,
        own: Announcement,
        started: Micros,
        max_nodes: u32,
        thresholds: Thresholds,
        topics: NodeTopics,
    ) -> NodeDirectory {
        NodeDirectory {
            me: me.into(),
            own,
            started,
            max_nodes: max_nodes as usize,
            thresholds,
            topics,
            nodes: Mutex::new(HashMap::new()),
            stats: DirectoryStats::default(),
        }
    }

    /// This node's own name and what it announces.
    pub fn me(&self) -> (&str, &Announcement) {
        (&self.me, &self.own)
    }

    /// The MQTT topic filters for every node's status.
    pub fn mqtt_filters(&self) -> Vec<String> {
        self.topics.filters()
    }

    /// Update (or, within the bound, create) the entry of `name`; `false` when refused.
    fn with(&self, name: &str, now: Micros, f: impl FnOnce(&mut NodeEntry)) -> bool {
        if *name == *self.me {
            return false;
        }
        if !valid_name(name) {
            self.stats.names_refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let Ok(mut nodes) = self.nodes.lock() else {
            return false;
        };
        if let Some(e) = nodes.get_mut(name) {
            f(e);
            return true;
        }
        if nodes.len() >= self.max_nodes {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let mut e = NodeEntry::new(name, now);
        f(&mut e);
        nodes.insert(name.into(), e);
        true
    }

    /// A message on one of the MQTT topics that name a node (`topics.rs`); others are
    /// ignored. Called by the MQTT worker for every message: no allocation unless the
    /// node is new.
    pub fn on_mqtt(&self, topic: &str, payload: &[u8], now: Micros) {
        let Some(heard) = self.topics.classify(topic, payload) else {
            return;
        };
        let (name, via, status) = match heard {
            Heard::Status(n, online) => (
                n,
                Via::Mqtt,
                Some(if online {
                    Status::Online
                } else {
                    Status::Offline
                }),
            ),
            Heard::Traffic(n) => (n, Via::Mqtt, None),
            Heard::Sync(n) => (n, Via::Sync, None),
        };
        self.with(name, now, |e| {
            e.via |= via as u8;
            e.messages += 1;
            e.last_seen = e.last_seen.max(now);
            match status {
                Some(s) => e.status = Some(s),
                // Traffic after an offline word: it is back (its `online` may follow).
                None if e.status == Some(Status::Offline) => e.status = None,
                None => {}
            }
        });
    }

    /// A node spoke to us some other way (an HTTP sync push names its `node_id`).
    pub fn heard(&self, name: &str, via: Via, now: Micros) {
        self.with(name, now, |e| {
            e.via |= via as u8;
            e.messages += 1;
            e.last_seen = e.last_seen.max(now);
        });
    }

    /// An mDNS announcement resolved; `true` when the node is new to mDNS or announced
    /// something else than before.
    pub fn announced(&self, name: &str, mut a: Announcement, now: Micros) -> bool {
        a.addresses.truncate(MAX_ADDRESSES);
        a.node_type = bounded(&a.node_type);
        a.version = bounded(&a.version);
        let mut news = false;
        self.with(name, now, |e| {
            news = !e.has(Via::Mdns) || e.announced.as_ref() != Some(&a);
            e.via |= Via::Mdns as u8;
            e.announced = Some(a);
            e.mdns_seen = now;
            e.last_seen = e.last_seen.max(now);
        });
        news
    }

    /// mDNS confirmed the node is still there (it answered a query).
    pub fn confirmed(&self, name: &str, now: Micros) {
        if let Ok(mut nodes) = self.nodes.lock()
            && let Some(e) = nodes.get_mut(name)
            && e.has(Via::Mdns)
        {
            e.mdns_seen = now;
            e.last_seen = e.last_seen.max(now);
        }
    }

    /// The node's mDNS records are gone: a goodbye (`goodbye`) or no answer. It leaves
    /// the directory unless it is known some other way.
    pub fn mdns_gone(&self, name: &str, goodbye: bool) {
        let Ok(mut nodes) = self.nodes.lock() else {
            return;
        };
        let Some(e) = nodes.get_mut(name) else {
            return;
        };
        if !e.has(Via::Mdns) {
            return;
        }
        let counter = if goodbye {
            &self.stats.goodbyes
        } else {
            &self.stats.expired
        };
        counter.fetch_add(1, Ordering::Relaxed);
        e.via &= !(Via::Mdns as u8);
        if e.via == 0 {
            nodes.remove(name);
        }
    }

    /// Drop the mDNS side of entries unconfirmed for `cache_ttl`; returns their names.
    pub fn expire(&self, now: Micros) -> Vec<String> {
        let ttl = self.thresholds.cache_ttl;
        let Ok(mut nodes) = self.nodes.lock() else {
            return Vec::new();
        };
        let mut gone = Vec::new();
        nodes.retain(|name, e| {
            if !e.has(Via::Mdns) || now.saturating_sub(e.mdns_seen) < ttl {
                return true;
            }
            gone.push(name.to_string());
            e.via &= !(Via::Mdns as u8);
            e.via != 0
        });
        self.stats
            .expired
            .fetch_add(gone.len() as u64, Ordering::Relaxed);
        gone
    }

    /// Names of the nodes known over mDNS (to ask them to confirm).
    pub fn mdns_names(&self) -> Vec<String> {
        self.nodes.lock().map_or_else(
            |_| Vec::new(),
            |n| {
                n.values()
                    .filter(|e| e.has(Via::Mdns))
                    .map(|e| e.name.to_string())
                    .collect()
            },
        )
    }

    /// Copies of the entries, sorted by name.
    pub fn entries(&self) -> Vec<NodeEntry> {
        let mut v: Vec<NodeEntry> = self
            .nodes
            .lock()
            .map(|n| n.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// `GET /api/nodes`: this node first, then every other, sorted by name.
    pub fn to_json(&self, now: Micros) -> Json {
        let t = &self.thresholds;
        let mut nodes = vec![row(
            &self.me,
            Some(&self.own),
            None,
            &["self"],
            (self.started, now),
            Health::Active,
            0,
            true,
            now,
        )];
        let mut counts = [0u64; 3];
        for e in self.entries() {
            let h = Health::of(&e, now, t);
            counts[h as usize] += 1;
            nodes.push(row(
                &e.name,
                e.announced.as_ref(),
                e.status,
                &e.via_names(),
                (e.first_seen, e.last_seen),
                h,
                e.messages,
                false,
                now,
            ));
        }
        json!({
            "node": &*self.me,
            "nodes": nodes,
            "counts": {
                "known": counts.iter().sum::<u64>(),
                "active": counts[Health::Active as usize],
                "stale": counts[Health::Stale as usize],
                "offline": counts[Health::Offline as usize],
            },
            "max_nodes": self.max_nodes,
            "thresholds_s": {
                "stale_after": t.stale_after / 1_000_000,
                "offline_after": t.offline_after / 1_000_000,
                "cache_ttl": t.cache_ttl / 1_000_000,
            },
        })
    }

    /// The `nodes` object of `/api/status`.
    pub fn status_json(&self) -> Json {
        let known = self.nodes.lock().map_or(0, |n| n.len());
        let s = &self.stats;
        json!({
            "known": known,
            "max_nodes": self.max_nodes,
            "refused": s.refused.load(Ordering::Relaxed),
            "names_refused": s.names_refused.load(Ordering::Relaxed),
            "mdns_expired": s.expired.load(Ordering::Relaxed),
            "mdns_goodbyes": s.goodbyes.load(Ordering::Relaxed),
        })
    }
}

/// One node's JSON row.
#[allow(clippy::too_many_arguments)]
fn row(
    name: &str,
    a: Option<&Announcement>,
    status: Option<Status>,
    via: &[&str],
    (first, last): (Micros, Micros),
    health: Health,
    messages: u64,
    me: bool,
    now: Micros,
) -> Json {
    let addresses: Vec<String> = a
        .map(|a| a.addresses.iter().map(|ip| ip.to_string()).collect())
        .unwrap_or_default();
    let url = a.and_then(|a| {
        a.addresses.first().map(|ip| match ip {
            std::net::IpAddr::V4(v4) => format!("http://{v4}:{}", a.port),
            std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{}", a.port),
        })
    });
    json!({
        "name": name,
        "self": me,
        "node_type": a.map(|a| a.node_type.as_str()).filter(|t| !t.is_empty()),
        "version": a.map(|a| a.version.as_str()).filter(|t| !t.is_empty()),
        "capabilities": a.map(|a| json!({
            "sources": a.capabilities.sources,
            "tools": a.capabilities.tools,
            "llm": a.capabilities.llm,
        })),
        "addresses": addresses,
        "port": a.map(|a| a.port),
        "url": url,
        "via": via,
        "status": status.map(|s| match s {
            Status::Online => "online",
            Status::Offline => "offline",
        }),
        "health": health.name(),
        "first_seen": iso8601(first),
        "last_seen": iso8601(last),
        "seen_s_ago": now.saturating_sub(last) / 1_000_000,
        "messages": messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn dir(max: u32) -> NodeDirectory {
        NodeDirectory::new(
            "me",
            Announcement::default(),
            0,
            max,
            Thresholds {
                stale_after: 60 * S,
                offline_after: 600 * S,
                cache_ttl: 30 * S,
            },
            NodeTopics::new(&["smollama/me"]),
        )
    }

    #[test]
    fn mqtt_topics_create_and_update_nodes_within_the_bound() {
        let d = dir(2);
        d.on_mqtt("smollama/a/status", b"online", S);
        d.on_mqtt("smollama/a/readings", b"{}", 2 * S);
        d.on_mqtt("smollama/b/sync", b"{}", S);
        d.on_mqtt("smollama/c/status", b"online", S); // a third: refused
        d.on_mqtt("smollama/me/status", b"online", S); // ourselves: not listed
        let e = d.entries();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (&*e[0].name, e[0].messages, e[0].last_seen),
            ("a", 2, 2 * S)
        );
        assert_eq!(e[0].status, Some(Status::Online));
        assert_eq!(e[1].via_names(), ["sync"]);
        assert_eq!(d.stats.refused.load(Ordering::Relaxed), 1);
        d.on_mqtt("smollama/a/status", b"offline", 3 * S);
        assert_eq!(
            Health::of(&d.entries()[0], 3 * S, &d.thresholds),
            Health::Offline
        );
    }

    #[test]
    fn an_mdns_node_leaves_on_goodbye_or_after_the_ttl_unless_known_otherwise() {
        let d = dir(10);
        d.announced("x", Announcement::default(), S);
        d.announced("y", Announcement::default(), S);
        d.announced("z", Announcement::default(), S);
        d.on_mqtt("smollama/z/status", b"online", S);
        d.mdns_gone("x", true);
        assert_eq!(d.mdns_names().len(), 2);
        d.confirmed("y", 20 * S);
        // z's mDNS side expires at 31 s, but MQTT still knows it.
        assert_eq!(d.expire(31 * S), ["z"]);
        let names: Vec<_> = d.entries().iter().map(|e| e.name.to_string()).collect();
        assert_eq!(names, ["y", "z"]);
        assert_eq!(d.expire(51 * S), ["y"]);
        assert_eq!(d.entries().len(), 1);
        assert_eq!(d.stats.goodbyes.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_listing_puts_this_node_first() {
        let d = dir(10);
        d.on_mqtt("smollama/b/status", b"online", S);
        let j = d.to_json(2 * S);
        assert_eq!(j["nodes"][0]["name"], "me");
        assert_eq!(j["nodes"][0]["self"], true);
        assert_eq!(j["nodes"][1]["health"], "active");
        assert_eq!(j["counts"]["known"], 1);
    }
}
