//! The replicated log's counters, shown in `/api/status` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts since start, one process-wide set (the HTTP handlers, the MQTT worker and the
/// `sync` thread all add to it). Monotonic; relaxed atomics.
#[derive(Default)]
pub struct SyncStats {
    /// Remote entries stored (new ids).
    pub merged: AtomicU64,
    /// Remote entries skipped because their id was in the log already.
    pub duplicates: AtomicU64,
    /// Merged entries that changed local observations or memories.
    pub applied: AtomicU64,
    /// Merged entries kept but not applied: older than the state here, of a deleted item,
    /// or of an event type this node does not apply (the original's `reading`).
    pub not_applied: AtomicU64,
    /// Entries refused as malformed (no id, no object payload, ...).
    pub malformed: AtomicU64,
    /// New items from other nodes not applied: `[sync] max_remote_items` reached.
    pub refused_items: AtomicU64,
    /// Own entries handed to the outbox on `<prefix>/sync`.
    pub published: AtomicU64,
    /// Catch-up requests sent, and answered for others.
    pub catchup_sent: AtomicU64,
    pub catchup_answered: AtomicU64,
    /// `POST /api/sync/push`: entries accepted; bodies refused past `max_push_kb`.
    pub push_accepted: AtomicU64,
    pub push_refused: AtomicU64,
    /// `GET /api/sync/pull` requests answered.
    pub pulls_served: AtomicU64,
    /// HTTP client rounds with peers: succeeded, failed (after the retries).
    pub peer_ok: AtomicU64,
    pub peer_failed: AtomicU64,
    /// Entries deleted by retention: aged out (every peer had them), or for size.
    pub trimmed_age: AtomicU64,
    pub trimmed_size: AtomicU64,
}

impl SyncStats {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The one set of counters.
pub static STATS: SyncStats = SyncStats {
    merged: AtomicU64::new(0),
    duplicates: AtomicU64::new(0),
    applied: AtomicU64::new(0),
    not_applied: AtomicU64::new(0),
    malformed: AtomicU64::new(0),
    refused_items: AtomicU64::new(0),
    published: AtomicU64::new(0),
    catchup_sent: AtomicU64::new(0),
    catchup_answered: AtomicU64::new(0),
    push_accepted: AtomicU64::new(0),
    push_refused: AtomicU64::new(0),
    pulls_served: AtomicU64::new(0),
    peer_ok: AtomicU64::new(0),
    peer_failed: AtomicU64::new(0),
    trimmed_age: AtomicU64::new(0),
    trimmed_size: AtomicU64::new(0),
};

/// The `sync` object of `/api/status`: the log's size and clock, per-node cursors, and
/// every counter.
pub fn status_json(
    store: &crate::store::Store,
    settings: &crate::config::settings::Settings,
) -> serde_json::Value {
    let (entries, bytes, lamport) = store.sync_counts().unwrap_or_default();
    let cursors = |p: &str| -> serde_json::Map<String, serde_json::Value> {
        store
            .sync_cursors(p)
            .unwrap_or_default()
            .into_iter()
            .take(256)
            .map(|(k, v)| (k, serde_json::json!(v)))
            .collect()
    };
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let s = &STATS;
    serde_json::json!({
        "enabled": settings.sync.enabled,
        "node_id": settings.node.name,
        "lamport_clock": lamport,
        "log_entries": entries,
        "log_bytes": bytes,
        "max_log_bytes": settings.sync.max_log_mb << 20,
        "seen": cursors("seen:"),
        "acked": cursors("acked:"),
        "http_peers": settings.sync.peers,
        "merged": c(&s.merged),
        "duplicates": c(&s.duplicates),
        "applied": c(&s.applied),
        "not_applied": c(&s.not_applied),
        "malformed": c(&s.malformed),
        "refused_items": c(&s.refused_items),
        "remote_items": store.sync_cursor("remote_items").unwrap_or(0),
        "max_remote_items": settings.sync.max_remote_items,
        "published": c(&s.published),
        "catchup_sent": c(&s.catchup_sent),
        "catchup_answered": c(&s.catchup_answered),
        "push_accepted": c(&s.push_accepted),
        "push_refused": c(&s.push_refused),
        "pulls_served": c(&s.pulls_served),
        "peer_ok": c(&s.peer_ok),
        "peer_failed": c(&s.peer_failed),
        "trimmed_age": c(&s.trimmed_age),
        "trimmed_size": c(&s.trimmed_size),
    })
}
