//! The replicated log's payloads for observations and memories (issue 15): each carries
//! the item's whole state and its `ref` (the id of the entry that first carried it), so
//! an entry applies on its own, in any order: observations join (latest time, highest
//! confidence, union of sources), memories take the state of the highest
//! `(lamport_ts, node_id)`. Read by `crate::sync::apply`; written by `store.rs` inside
//! the transaction of the change.

use serde_json::{Value as Json, json};

use super::{Memory, Observation, ObservationType};

/// A new or merged observation.
pub const OBSERVATION: &str = "observation";
/// A summary replacing observations (compaction): `replaces` lists their refs.
pub const OBSERVATION_SUMMARY: &str = "observation_summary";
/// A new memory, and its changes.
pub const MEMORY: &str = "memory";
pub const MEMORY_REINFORCED: &str = "memory_reinforced";
pub const MEMORY_DEACTIVATED: &str = "memory_deactivated";
/// The event types that carry a memory's whole state (last writer wins).
pub const MEMORY_EVENTS: &[&str] = &[MEMORY, MEMORY_REINFORCED, MEMORY_DEACTIVATED];

pub fn observation_payload(r: &str, o: &Observation) -> Json {
    json!({
        "ref": r,
        "node": o.node,
        "text": o.text,
        "type": o.kind.as_str(),
        "confidence": o.confidence,
        "related_sources": o.related_sources,
        "ts_us": o.ts,
    })
}

pub fn memory_payload(r: &str, m: &Memory) -> Json {
    json!({
        "ref": r,
        "node": m.node,
        "fact": m.fact,
        "confidence": m.confidence,
        "times_confirmed": m.times_confirmed,
        "active": m.active,
        "first_seen_us": m.first_seen,
        "last_seen_us": m.last_seen,
    })
}

/// The ref of a payload.
pub fn payload_ref(p: &Json) -> Option<&str> {
    p.get("ref")
        .and_then(Json::as_str)
        .filter(|r| !r.is_empty() && r.len() <= 128)
}

fn text<'a>(p: &'a Json, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Json::as_str)
}

/// The observation a payload describes (id 0), or None when a field is missing.
pub fn observation_of(p: &Json, entry_node: &str) -> Option<Observation> {
    Some(Observation {
        id: 0,
        ts: p.get("ts_us")?.as_i64()?,
        text: text(p, "text")?.to_string(),
        kind: ObservationType::parse(text(p, "type").unwrap_or("general")),
        confidence: p.get("confidence")?.as_f64()? as f32,
        related_sources: p
            .get("related_sources")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        node: text(p, "node").unwrap_or(entry_node).to_string(),
    })
}

/// The memory a payload describes (id 0), or None when a field is missing.
pub fn memory_of(p: &Json, entry_node: &str) -> Option<Memory> {
    Some(Memory {
        id: 0,
        fact: text(p, "fact")?.to_string(),
        confidence: p.get("confidence")?.as_f64()? as f32,
        times_confirmed: u32::try_from(p.get("times_confirmed")?.as_u64()?).ok()?,
        active: p.get("active")?.as_bool()?,
        first_seen: p.get("first_seen_us")?.as_i64()?,
        last_seen: p.get("last_seen_us")?.as_i64()?,
        node: text(p, "node").unwrap_or(entry_node).to_string(),
    })
}

/// The refs a summary replaces.
pub fn replaced(p: &Json) -> Vec<String> {
    p.get("replaces")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `o` joined with `other` (the merge rule: commutative, so every order ends the same).
pub fn join_observation(o: &mut Observation, other: &Observation) {
    o.ts = o.ts.max(other.ts);
    o.confidence = o.confidence.max(other.confidence).clamp(0.0, 1.0);
    for r in &other.related_sources {
        if !o.related_sources.contains(r) {
            o.related_sources.push(r.clone());
        }
    }
    // One order on every node, whatever order the merges came in.
    o.related_sources.sort();
}
