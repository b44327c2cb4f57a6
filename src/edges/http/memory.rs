//! The agent's memory endpoints: observations, memories, recall, counts. Only in builds
//! with the `agent` feature (routes.rs answers 404 with the reason otherwise).

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::HttpView;
use super::readings::round2;
use super::request::Call;
use super::request::short;
use super::response::{Reply, err, ok};
use crate::clock::{iso8601, now_us};

pub(super) fn observation_json(o: &crate::memory::Observation, similarity: Option<f32>) -> Json {
    json!({
        "id": o.id,
        "timestamp": iso8601(o.ts),
        "text": o.text,
        "confidence": round2(f64::from(o.confidence)),
        "type": o.kind.as_str(),
        "node": o.node,
        "related_sources": if o.related_sources.is_empty() { Json::Null } else { json!(o.related_sources) },
        "similarity": similarity.map(|s| round2(f64::from(s))),
    })
}

fn memory_json(m: &crate::memory::Memory, similarity: Option<f32>) -> Json {
    json!({
        "id": m.id,
        "text": m.fact,
        "confidence": round2(f64::from(m.confidence)),
        "times_confirmed": m.times_confirmed,
        "active": m.active,
        "node": m.node,
        "created_at": iso8601(m.first_seen),
        "updated_at": iso8601(m.last_seen),
        "similarity": similarity.map(|s| round2(f64::from(s))),
    })
}

/// What both observation listings (`/api/observations`, `/api/cluster/observations`)
/// read of the query, checked.
pub(super) struct ObservationQuery {
    pub kind: Option<crate::memory::ObservationType>,
    /// As asked (0 = all time), echoed in the answer.
    pub hours: i64,
    /// The earliest time `hours` allows.
    pub from: i64,
    pub limit: usize,
}

pub(super) fn observation_query(
    call: &Call,
    default_limit: i64,
) -> Result<ObservationQuery, Reply> {
    let kind = match call.query.text("type").as_str() {
        "" => None,
        t => match crate::memory::ObservationType::ALL
            .iter()
            .find(|k| k.as_str() == t)
        {
            Some(k) => Some(*k),
            None => {
                return Err(err(
                    400,
                    format!(
                        "type must be one of pattern, anomaly, status, summary, general, got '{}'",
                        short(t)
                    ),
                ));
            }
        },
    };
    let hours = call.query.int("hours", 0, 0, 24 * 366 * 10)?;
    let limit = call.query.int("limit", default_limit, 1, 1000)? as usize;
    let from = if hours > 0 {
        now_us() - hours * 3_600_000_000
    } else {
        i64::MIN
    };
    Ok(ObservationQuery {
        kind,
        hours,
        from,
        limit,
    })
}

/// `GET /api/observations?query=&type=&hours=&limit=`: newest first, or ranked by words
/// when a query is given (this endpoint never waits on the LLM server).
pub(crate) fn observations(view: &HttpView, call: &Call) -> Reply {
    let q = call.query.text("query");
    let ObservationQuery {
        kind,
        hours,
        from,
        limit,
    } = match observation_query(call, 20) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let list: Vec<Json> = if q.trim().is_empty() {
        match view.store.memory().observations(from, kind, limit) {
            Ok(v) => v.iter().map(|o| observation_json(o, None)).collect(),
            Err(e) => return err(503, e.to_string()),
        }
    } else {
        match crate::memory::recall::recall(&view.store, None, &q, 1000) {
            Ok(found) => found
                .observations
                .iter()
                .filter(|(o, _)| o.ts >= from && kind.is_none_or(|k| o.kind == k))
                .take(limit)
                .map(|(o, r)| observation_json(o, Some(*r)))
                .collect(),
            Err(e) => return err(503, e.to_string()),
        }
    };
    ok(json!({ "query": q, "hours": hours, "count": list.len(), "observations": list }))
}

/// `GET /api/memories?query=&limit=`: active memories, newest first or ranked by words.
pub(crate) fn memories(view: &HttpView, call: &Call) -> Reply {
    let q = call.query.text("query");
    let limit = match call.query.int("limit", 20, 1, 1000) {
        Ok(v) => v as usize,
        Err(r) => return r,
    };
    let list: Vec<Json> = if q.trim().is_empty() {
        match view.store.memory().memories(true, limit) {
            Ok(v) => v.iter().map(|m| memory_json(m, None)).collect(),
            Err(e) => return err(503, e.to_string()),
        }
    } else {
        match crate::memory::recall::recall(&view.store, None, &q, limit) {
            Ok(found) => found
                .memories
                .iter()
                .map(|(m, r)| memory_json(m, Some(*r)))
                .collect(),
            Err(e) => return err(503, e.to_string()),
        }
    };
    ok(json!({ "query": q, "count": list.len(), "memories": list }))
}

/// `POST /api/memory/recall` `{query, limit}`: by meaning when the embedding model
/// answers (within a few seconds), else by words.
pub(crate) fn recall(view: &HttpView, call: &Call) -> Reply {
    let parsed: Json = match call
        .body_text()
        .ok()
        .and_then(|b| serde_json::from_str(b).ok())
    {
        Some(j) => j,
        None => {
            return err(
                400,
                "body must be JSON like {\"query\": \"...\", \"limit\": 5}",
            );
        }
    };
    let Some(q) = parsed["query"].as_str().filter(|q| !q.trim().is_empty()) else {
        return err(400, "query is missing or empty");
    };
    let limit = match &parsed["limit"] {
        Json::Null => 5,
        v => match v.as_u64() {
            Some(n @ 1..=100) => n as usize,
            _ => return err(400, "limit must be an integer from 1 to 100"),
        },
    };
    let model = &view.settings.memory.embedding_model;
    // Words while the stored vectors are another model's (re-embedding not done).
    let comparable = view.store.memory().vectors_match(model).unwrap_or(false);
    let vector = comparable
        .then(|| {
            crate::edges::llm::Llm::embedder(&view.settings, Some(Duration::from_secs(5)))
                .embed(&[q])
                .ok()
        })
        .flatten()
        .and_then(|mut v| (!v.is_empty()).then(|| v.swap_remove(0)));
    match crate::memory::recall::recall_with_mode(&view.store, vector.as_deref(), q, limit) {
        Ok((found, mode)) => ok(json!({
            "query": q,
            "mode": format!("{mode:?}").to_lowercase(),
            "observations": found.observations.iter().map(|(o, r)| observation_json(o, Some(*r))).collect::<Vec<_>>(),
            "memories": found.memories.iter().map(|(m, r)| memory_json(m, Some(*r))).collect::<Vec<_>>(),
            "total_results": found.observations.len() + found.memories.len(),
        })),
        Err(e) => err(503, e.to_string()),
    }
}

/// `GET /api/stats`: counts by kind and type, store size, vector dimension.
pub(crate) fn stats(view: &HttpView, _: &Call) -> Reply {
    let counts = match view.store.memory().memory_counts() {
        Ok(c) => c,
        Err(e) => return err(503, e.to_string()),
    };
    let store = view.store.counts().unwrap_or_default();
    let mut types: Vec<String> = view
        .registry
        .all()
        .iter()
        .filter_map(|i| i.name.split_once(':').map(|(t, _)| t.to_string()))
        .collect();
    types.sort();
    types.dedup();
    let by_type: serde_json::Map<String, Json> = crate::memory::ObservationType::ALL
        .iter()
        .zip(counts.observations_by_type)
        .map(|(k, n)| (k.as_str().to_string(), json!(n)))
        .collect();
    ok(json!({
        "node_name": view.settings.node.name,
        "timestamp": iso8601(now_us()),
        "readings_count": store.readings,
        "observations_count": counts.observations,
        "observations_by_type": by_type,
        "memories_count": counts.memories_active,
        "memories_inactive": counts.memories_inactive,
        "vectors": counts.vectors,
        "vector_dimension": counts.dimension,
        "vector_search_enabled": counts.dimension.is_some(),
        "db_size_mb": round2(store.file_bytes as f64 / 1_048_576.0),
        "source_count": view.registry.all().len(),
        "source_types": types,
    }))
}
