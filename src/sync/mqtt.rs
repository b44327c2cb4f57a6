//! The replicated log over MQTT (see `docs/mqtt.md`, "Sync"): own entries broadcast on
//! `<state prefix>/sync` (by `worker.rs`), everyone's consumed from `<root>/+/sync`, and a
//! request/response pair for catching up, `<root>/<node>/sync/request` and
//! `<root>/<node>/sync/response`, so nothing depends on the broker keeping messages. The
//! root is the state prefix without its last level: `smollama` by default, so the
//! topics are `smollama/<node>/sync` and `smollama/+/sync`; with `state_prefix =
//! "nodes/greenhouse"` (a Python master on the broker) they move under `nodes/` with the
//! rest, off the master's `smollama/#`.
//!
//! Per node we keep `seen:<node>`, the highest Lamport time of its own entries received
//! without a gap: a broadcast carries `prev` (the sender's last own entry published
//! before it), an answer carries `since`; when either is above `seen`, something was
//! missed and we ask for entries since `seen`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::apply;
use super::stats::{STATS, SyncStats};
use crate::messages::{Publish, SyncPeer};
use crate::store::Store;
use crate::store::sync_log::Entry;

/// `messages::SyncPeer` for this node.
pub struct MqttSync {
    pub store: Arc<Store>,
    pub node: String,
    pub batch: usize,
    /// Payload bytes per message, at most (`[mqtt] max_payload_kb`, with room to spare).
    pub max_bytes: usize,
    /// `[sync] max_remote_items`.
    pub max_items: u64,
    /// Where this node broadcasts: `<[mqtt] state_prefix>/sync`.
    pub topic: String,
    /// The level above every node's state prefix (`smollama` by default).
    pub root: String,
    /// Requests sent and not answered yet, per peer, with when: at most one at a time
    /// per peer (a node far behind would otherwise ask again for every batch it sees).
    pub pending: Mutex<HashMap<String, Instant>>,
}

/// A request unanswered this long is given up (lost with a connection), and may go again.
const PENDING_FOR: Duration = Duration::from_secs(10);

/// The entries' wire forms, as many from the start as fit in `max_bytes` (at least one:
/// a single entry is far below any sane payload bound).
pub fn fitting(entries: &[Entry], max_bytes: usize) -> Vec<Json> {
    let mut out = Vec::with_capacity(entries.len());
    let mut used = 0;
    for e in entries {
        let j = e.to_json();
        used += j.to_string().len() + 1;
        if used > max_bytes && !out.is_empty() {
            break;
        }
        out.push(j);
    }
    out
}

/// QoS 1 (through the outbox) for entries; QoS 0 for hellos and requests, which mean
/// something only on this connection (a lost request is asked again).
fn publish(topic: String, body: Json, qos: u8) -> Publish {
    Publish {
        topic,
        payload: body.to_string().into_bytes(),
        qos,
        retain: false,
    }
}

/// The root of a state prefix: everything before its last level.
pub fn root_of(state_prefix: &str) -> String {
    state_prefix
        .rsplit_once('/')
        .map_or(String::new(), |(r, _)| r.to_string())
}

impl MqttSync {
    /// A catch-up request to `peer` for its entries after what we have.
    pub fn request(&self, peer: &str) -> Option<Publish> {
        if let Ok(mut p) = self.pending.lock() {
            if p.get(peer).is_some_and(|t| t.elapsed() < PENDING_FOR) {
                return None;
            }
            if p.len() < 1024 || p.contains_key(peer) {
                p.insert(peer.to_string(), Instant::now());
            }
        }
        let since = self.store.sync_cursor(&format!("seen:{peer}")).unwrap_or(0);
        SyncStats::add(&STATS.catchup_sent, 1);
        Some(publish(
            self.at(peer, "sync/request"),
            json!({ "node_id": self.node, "since": since, "limit": self.batch }),
            0,
        ))
    }

    /// `<root>/<node>/<rest>`.
    fn at(&self, node: &str, rest: &str) -> String {
        if self.root.is_empty() {
            format!("{node}/{rest}")
        } else {
            format!("{}/{node}/{rest}", self.root)
        }
    }

    /// An empty broadcast: "I am here, my last own entry is `prev`". Sent on connect and
    /// to a node heard from for the first time, so two nodes that never wrote while the
    /// other listened still find each other and catch up.
    pub fn hello(&self) -> Publish {
        let prev = self.store.sync_cursor("published").unwrap_or(0);
        publish(
            self.topic.clone(),
            json!({ "node_id": self.node, "prev": prev, "entries": [] }),
            0,
        )
    }

    /// Requests to every node we have heard from.
    pub fn requests(&self) -> Vec<Publish> {
        let peers = self.store.sync_cursors("seen:").unwrap_or_default();
        peers
            .iter()
            .filter(|(p, _)| *p != self.node)
            .filter_map(|(p, _)| self.request(p))
            .collect()
    }

    /// Answer `from`'s request: our own entries after `since`.
    fn answer(&self, body: &Json) -> Vec<Publish> {
        let Some(from) = body.get("node_id").and_then(Json::as_str) else {
            return Vec::new();
        };
        if from == self.node || from.contains(['/', '+', '#']) || from.len() > 128 {
            return Vec::new();
        }
        let since = body.get("since").and_then(Json::as_u64).unwrap_or(0);
        let limit = body
            .get("limit")
            .and_then(Json::as_u64)
            .map_or(self.batch, |l| (l as usize).clamp(1, self.batch));
        // A request since N says it has everything of ours up to N: retention's ack.
        let _ = self
            .store
            .sync_raise_cursor(&format!("acked:{from}"), since);
        let entries = match self.store.sync_since(since, limit, Some(&self.node)) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("sync: cannot read the log to answer {from}: {e}");
                return Vec::new();
            }
        };
        SyncStats::add(&STATS.catchup_answered, 1);
        let list = fitting(&entries, self.max_bytes);
        let more = list.len() < entries.len() || entries.len() == limit;
        vec![publish(
            self.at(from, "sync/response"),
            json!({ "node_id": self.node, "since": since, "entries": list, "more": more }),
            1,
        )]
    }

    /// A broadcast (`base` = its `prev`) or an answer (`base` = its `since`).
    fn take(&self, body: &Json, base_key: &str, answer: bool) -> Vec<Publish> {
        let Some(sender) = body.get("node_id").and_then(Json::as_str) else {
            SyncStats::add(&STATS.malformed, 1);
            return Vec::new();
        };
        if sender == self.node || sender.contains(['/', '+', '#']) || sender.len() > 128 {
            return Vec::new();
        }
        if answer && let Ok(mut p) = self.pending.lock() {
            p.remove(sender);
        }
        let entries = apply::entries_of(body.get("entries"));
        if let Err(e) = apply::merge(&self.store, &entries, self.max_items) {
            log::warn!(
                "sync: cannot merge {} entries from {sender}: {e}",
                entries.len()
            );
            return Vec::new();
        }
        let key = format!("seen:{sender}");
        let seen = self.store.sync_cursor(&key).unwrap_or(0);
        let base = body.get(base_key).and_then(Json::as_u64).unwrap_or(0);
        let top = entries
            .iter()
            .filter(|e| e.node_id == sender)
            .map(|e| e.lamport_ts)
            .max()
            .unwrap_or(base);
        let first_contact = !answer
            && !self
                .store
                .sync_cursors(&key)
                .unwrap_or_default()
                .iter()
                .any(|(rest, _)| rest.is_empty());
        // Known from now on: asked on every connect.
        let _ = self.store.sync_put_known(&key);
        let mut out = Vec::new();
        if first_contact {
            out.push(self.hello());
        }
        if base <= seen {
            let _ = self.store.sync_raise_cursor(&key, top.max(seen));
            if answer && body.get("more").and_then(Json::as_bool) == Some(true) {
                out.extend(self.request(sender));
            }
        } else {
            // A gap: entries between `seen` and `base` never reached us.
            log::debug!("sync: missed entries of {sender} after {seen}; asking");
            out.extend(self.request(sender));
        }
        out
    }
}

impl SyncPeer for MqttSync {
    fn filters(&self) -> Vec<String> {
        vec![
            self.at("+", "sync"),
            self.at(&self.node, "sync/request"),
            self.at(&self.node, "sync/response"),
        ]
    }

    fn on_message(&self, topic: &str, payload: &[u8]) -> Vec<Publish> {
        let Ok(body) = serde_json::from_slice::<Json>(payload) else {
            SyncStats::add(&STATS.malformed, 1);
            return Vec::new();
        };
        if topic.ends_with("/sync/request") {
            self.answer(&body)
        } else if topic.ends_with("/sync/response") {
            self.take(&body, "since", true)
        } else {
            self.take(&body, "prev", false)
        }
    }

    fn on_connect(&self) -> Vec<Publish> {
        // What was asked on the old connection may never be answered.
        if let Ok(mut p) = self.pending.lock() {
            p.clear();
        }
        let mut out = self.requests();
        out.push(self.hello());
        out
    }
}
