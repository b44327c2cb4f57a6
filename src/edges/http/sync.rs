//! The replicated log over HTTP, the server side the original's client expects (it never
//! had one): `POST /api/sync/push` `{node_id, entries}` → `{accepted_ids}`, and
//! `GET /api/sync/pull?since=&limit=` → `{entries}` (Lamport time above `since`,
//! ascending). Both need the bearer token. Only with the agent feature and `[sync]
//! enabled`.

use serde_json::{Value as Json, json};

use super::HttpView;
use super::auth::require_token;
use super::request::Call;
use super::response::{Reply, err, ok};
use crate::store::sync_log::Entry;
use crate::sync::apply;
use crate::sync::stats::{STATS, SyncStats};

/// The pull route's query parameters.
pub(crate) const PULL_QUERY: &[&str] = &["since", "limit"];

fn enabled(view: &HttpView, call: &Call) -> Result<(), Reply> {
    require_token(view, call)?;
    if !view.settings.sync.enabled {
        return Err(err(404, "sync is off: set [sync] enabled = true"));
    }
    Ok(())
}

/// `POST /api/sync/push`: merge the entries; every well-formed one is accepted (a
/// known id too: merging is idempotent), malformed ones are left out of `accepted_ids`.
pub(crate) fn push(view: &HttpView, call: &Call) -> Reply {
    if let Err(r) = enabled(view, call) {
        return r;
    }
    let max = view.settings.sync.max_push_kb * 1024;
    if call.body.len() as u64 > max {
        SyncStats::add(&STATS.push_refused, 1);
        return err(
            413,
            format!(
                "push body of {} bytes is over [sync] max_push_kb ({} KiB); send fewer entries per push",
                call.body.len(),
                view.settings.sync.max_push_kb
            ),
        );
    }
    let Ok(body) = serde_json::from_slice::<Json>(&call.body) else {
        return err(
            400,
            "body must be JSON: {\"node_id\": ..., \"entries\": [...]}",
        );
    };
    let entries = apply::entries_of(body.get("entries"));
    if let Some(from) = body.get("node_id").and_then(Json::as_str)
        && from == view.settings.node.name
    {
        return err(400, "these entries come from this node's own id");
    }
    if let Some(from) = body.get("node_id").and_then(Json::as_str) {
        view.nodes
            .heard(from, crate::nodes::Via::Sync, crate::clock::now_us());
    }
    match apply::merge(&view.store, &entries, view.settings.sync.max_remote_items) {
        Ok(m) => {
            SyncStats::add(&STATS.push_accepted, entries.len() as u64);
            let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
            ok(json!({ "accepted_ids": ids, "new": m.new, "duplicates": m.duplicates }))
        }
        Err(e) => err(503, e.to_string()),
    }
}

/// `GET /api/sync/pull?since=&limit=`: entries of every node above `since`, ascending.
pub(crate) fn pull(view: &HttpView, call: &Call) -> Reply {
    if let Err(r) = enabled(view, call) {
        return r;
    }
    let since = match call.query.int("since", 0, 0, i64::MAX) {
        Ok(v) => v as u64,
        Err(r) => return r,
    };
    let limit = match call.query.int("limit", 100, 1, 1000) {
        Ok(v) => v as usize,
        Err(r) => return r,
    };
    match view.store.sync_since(since, limit, None) {
        Ok(entries) => {
            SyncStats::add(&STATS.pulls_served, 1);
            let list: Vec<Json> = entries.iter().map(Entry::to_json).collect();
            let clock = view.store.sync_counts().map(|c| c.2).unwrap_or(0);
            ok(json!({
                "node_id": view.settings.node.name,
                "lamport_clock": clock,
                "entries": list,
            }))
        }
        Err(e) => err(503, e.to_string()),
    }
}
