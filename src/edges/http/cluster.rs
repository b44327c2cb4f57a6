//! The view of every node from this one (`GET /api/cluster/readings`, `observations`,
//! `stats`): built from what already arrives here over MQTT (other nodes' reading
//! batches, whose sources the registry holds as `<node>:<source>`, and the replicated
//! log merged into the store), so answering never asks another node anything.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value as Json, json};

use super::HttpView;
use super::request::Call;
use super::response::{Reply, err, ok};
use crate::clock::{iso8601, now_us};
use crate::graph::Micros;
use crate::graph::origin::origin;
use crate::graph::reading::{flags, value_json};
use crate::graph::registry::SourceInfo;

pub(crate) const READINGS_QUERY: &[&str] = &["node"];
#[cfg(feature = "agent")]
pub(crate) const OBSERVATIONS_QUERY: &[&str] = &["node", "type", "hours", "limit"];
#[cfg(feature = "agent")]
/// Log entries looked at for each node's last sync traffic (newest first): a bounded read.
const SYNC_SCAN: usize = 10_000;

/// `?node=`: `None` for every node.
fn node_filter(call: &Call) -> Option<String> {
    Some(call.query.text("node")).filter(|n| !n.trim().is_empty())
}

/// The latest value of a source: the live one (set as each reading arrives), else the
/// newest stored (what a restart brought back).
fn latest(
    info: &SourceInfo,
    stored: &HashMap<u32, crate::graph::Reading>,
) -> Option<(Micros, crate::graph::Value, u8)> {
    let live = info.live.last();
    let disk = stored.get(&info.id.0);
    match (live, disk) {
        (Some((t, _)), Some(r)) if r.ts > t => Some((r.ts, r.value, r.flags)),
        (Some((t, v)), _) => Some((t, v, 0)),
        (None, Some(r)) => Some((r.ts, r.value, r.flags)),
        (None, None) => None,
    }
}

/// `GET /api/cluster/readings?node=`: the latest reading of every source of every node
/// (this node's own, and every node whose batches this node receives), by node and
/// source.
pub(crate) fn readings(view: &HttpView, call: &Call) -> Reply {
    let this = view.settings.node.name.as_str();
    let filter = node_filter(call);
    let stored: HashMap<u32, crate::graph::Reading> = match view.store.latest_all() {
        Ok(rs) => rs.into_iter().map(|r| (r.source.0, r)).collect(),
        Err(e) => return err(503, e.to_string()),
    };
    let infos = view.registry.all();
    let mut nodes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rows: Vec<(&str, &str, Json)> = Vec::new();
    for info in &infos {
        let (node, source) = origin(&view.registry, &info.name, this);
        let Some((ts, value, fl)) = latest(info, &stored) else {
            continue;
        };
        *nodes.entry(node).or_default() += 1;
        if filter.as_deref().is_some_and(|f| f != node) {
            continue;
        }
        let mut r = json!({
            "node": node,
            "source_id": source,
            "full_id": &*info.name,
            "value": value_json(&value),
            "unit": &*info.unit,
            "timestamp": iso8601(ts),
        });
        if fl & flags::OUT_OF_RANGE != 0 {
            r["out_of_range"] = json!(true);
        }
        rows.push((node, source, r));
    }
    rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    ok(json!({
        "node": this,
        "timestamp": iso8601(now_us()),
        "filter": filter,
        "nodes": nodes.keys().collect::<Vec<_>>(),
        "count": rows.len(),
        "readings": rows.into_iter().map(|(_, _, r)| r).collect::<Vec<_>>(),
    }))
}

#[cfg(feature = "agent")]
/// `GET /api/cluster/observations?node=&type=&hours=&limit=`: the merged observations
/// (this node's and every node's that sync brought), newest first, each with its node.
pub(crate) fn observations(view: &HttpView, call: &Call) -> Reply {
    let filter = node_filter(call);
    let super::memory::ObservationQuery {
        kind,
        hours,
        from,
        limit,
    } = match super::memory::observation_query(call, 50) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match view
        .store
        .memory()
        .observations_of(filter.as_deref(), from, kind, limit)
    {
        Ok(list) => ok(json!({
            "node": view.settings.node.name,
            "filter": filter,
            "hours": hours,
            "count": list.len(),
            "observations": list.iter().map(|o| super::memory::observation_json(o, None)).collect::<Vec<_>>(),
        })),
        Err(e) => err(503, e.to_string()),
    }
}

#[cfg(feature = "agent")]
/// One node's numbers in `/api/cluster/stats`.
#[derive(Default)]
struct NodeStats {
    sources: u64,
    readings: u64,
    observations: u64,
    memories: u64,
    last_reading: Micros,
    last_sync: Micros,
    last_item: Micros,
}

#[cfg(feature = "agent")]
fn time_or_null(t: Micros) -> Json {
    if t > 0 { json!(iso8601(t)) } else { Json::Null }
}

#[cfg(feature = "agent")]
/// `GET /api/cluster/stats`: per node, its sources, the readings received from it since
/// this node started (for this node: produced), its observations and active memories in
/// the merged store, and when it was last heard of (newest reading, newest sync entry
/// arrival); and the totals.
pub(crate) fn stats(view: &HttpView, _: &Call) -> Reply {
    let this = view.settings.node.name.as_str();
    let mut by: BTreeMap<String, NodeStats> = BTreeMap::new();
    by.entry(this.to_string()).or_default();
    for info in view.registry.all() {
        let (node, _) = origin(&view.registry, &info.name, this);
        let n = by.entry(node.to_string()).or_default();
        n.sources += 1;
        n.readings += info.live.count.load(std::sync::atomic::Ordering::Relaxed);
        if let Some((t, _)) = info.live.last() {
            n.last_reading = n.last_reading.max(t);
        }
    }
    let items = match view.store.memory().items_by_node() {
        Ok(i) => i,
        Err(e) => return err(503, e.to_string()),
    };
    for (node, i) in items {
        let n = by.entry(node).or_default();
        n.observations = i.observations;
        n.memories = i.memories;
        n.last_item = i.newest_observation.max(i.newest_memory);
    }
    match view.store.sync_received_by_node(SYNC_SCAN) {
        Ok(m) => {
            for (node, t) in m {
                by.entry(node).or_default().last_sync = t;
            }
        }
        Err(e) => return err(503, e.to_string()),
    }
    let mut total = NodeStats::default();
    let nodes: Vec<Json> = by
        .iter()
        .map(|(name, n)| {
            total.sources += n.sources;
            total.readings += n.readings;
            total.observations += n.observations;
            total.memories += n.memories;
            json!({
                "node": name,
                "local": name == this,
                "source_count": n.sources,
                "readings_count": n.readings,
                "observations_count": n.observations,
                "memories_count": n.memories,
                "last_reading": time_or_null(n.last_reading),
                "last_sync": time_or_null(n.last_sync),
                "last_traffic": time_or_null(n.last_reading.max(n.last_sync)),
                "newest_item": time_or_null(n.last_item),
            })
        })
        .collect();
    ok(json!({
        "node": this,
        "timestamp": iso8601(now_us()),
        "node_count": nodes.len(),
        "totals": {
            "source_count": total.sources,
            "readings_count": total.readings,
            "observations_count": total.observations,
            "memories_count": total.memories,
        },
        "nodes": nodes,
    }))
}
