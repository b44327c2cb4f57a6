//! The readings endpoints: latest values and history, from LMDB read transactions.

use serde_json::{Value as Json, json};

use super::HttpView;
use super::request::Call;
use super::request::short;
use super::response::{Reply, err, ok};
use crate::clock::{iso8601, now_us};
use crate::config::duration::format_duration;
use crate::graph::Reading;
use crate::graph::reading::flags;
use crate::graph::reading::value_json;

fn reading_json(view: &HttpView, r: &Reading) -> Json {
    let info = view.registry.get(r.source);
    let mut obj = json!({
        "full_id": info.as_ref().map_or("?", |i| &i.name),
        "value": value_json(&r.value),
        "unit": info.as_ref().map_or("", |i| &i.unit),
        "timestamp": iso8601(r.ts),
    });
    if r.flags & flags::OUT_OF_RANGE != 0 {
        obj["out_of_range"] = json!(true);
    }
    if r.flags & flags::HEARTBEAT != 0 {
        obj["heartbeat"] = json!(true);
    }
    obj
}

/// `GET /api/readings`: the latest stored reading of every source.
pub(crate) fn all(view: &HttpView, _: &Call) -> Reply {
    match view.store.latest_all() {
        Ok(rs) => ok(json!({
            "node": view.settings.node.name,
            "timestamp": iso8601(now_us()),
            "readings": rs.iter().map(|r| reading_json(view, r)).collect::<Vec<_>>(),
        })),
        Err(e) => err(503, e.to_string()),
    }
}

fn unknown_source(view: &HttpView, id: &str) -> Reply {
    let mut known: Vec<String> = view
        .registry
        .all()
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    known.sort();
    Reply {
        code: 404,
        body: json!({ "error": format!("unknown source '{}'", short(id)), "available": known }),
        allow: None,
        raw: None,
        set_cookie: None,
    }
}

/// `GET /api/readings/{id}`.
pub(crate) fn one(view: &HttpView, call: &Call) -> Reply {
    let id = call.params[0].as_str();
    let Some(info) = view.registry.lookup(id) else {
        return unknown_source(view, id);
    };
    match view.store.latest(info.id) {
        Ok(Some(r)) => ok(reading_json(view, &r)),
        Ok(None) => err(
            404,
            format!("source '{}' has no stored readings yet", short(id)),
        ),
        Err(e) => err(503, e.to_string()),
    }
}

/// `GET /api/readings/{id}/history?minutes=&limit=`: raw readings while the window fits
/// the raw retention, rollups beyond it.
pub(crate) fn history(view: &HttpView, call: &Call) -> Reply {
    let id = call.params[0].as_str();
    let Some(info) = view.registry.lookup(id) else {
        return unknown_source(view, id);
    };
    let minutes = match call.query.int("minutes", 60, 1, 10 * 366 * 24 * 60) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let limit = match call.query.int("limit", 100, 1, 10_000) {
        Ok(v) => v as usize,
        Err(r) => return r,
    };
    let now = now_us();
    let window = minutes * 60_000_000;
    let from = now - window;
    // Raw rows while the window fits the raw retention; beyond it, the finest rollup
    // level that still covers the window.
    let level = view
        .retention
        .as_ref()
        .and_then(|ret| ret.level_for(window));
    let mut body = json!({
        "source_id": info.name,
        "unit": info.unit,
        "period_minutes": minutes,
    });
    match level {
        None => match view.store.history(info.id, from, now + 1, limit) {
            Ok(rows) => {
                let nums: Vec<f64> = rows.iter().filter_map(|r| r.value.as_f64()).collect();
                body["resolution"] = json!("raw");
                body["count"] = json!(rows.len());
                body["statistics"] = stats_json(&nums, nums.iter().sum(), nums.len() as u64);
                body["readings"] = rows
                    .iter()
                    .map(|r| {
                        let mut o =
                            json!({ "timestamp": iso8601(r.ts), "value": value_json(&r.value) });
                        if r.flags & flags::OUT_OF_RANGE != 0 {
                            o["out_of_range"] = json!(true);
                        }
                        o
                    })
                    .collect();
            }
            Err(e) => return err(503, e.to_string()),
        },
        Some(lv) => match view.store.rollups(info.id, lv as u8, from, now + 1, limit) {
            Ok(rows) => {
                let every = view.retention.as_ref().map_or(0, |r| r.rollups[lv].every);
                let mins: Vec<f64> = rows.iter().map(|r| r.min).collect();
                let maxs: Vec<f64> = rows.iter().map(|r| r.max).collect();
                let n: u64 = rows.iter().map(|r| r.count as u64).sum();
                let sum: f64 = rows.iter().map(|r| r.sum).sum();
                body["resolution"] = json!(format_duration(every));
                body["count"] = json!(rows.len());
                body["statistics"] = if rows.is_empty() {
                    json!({})
                } else {
                    json!({
                        "min": round2(mins.iter().cloned().fold(f64::INFINITY, f64::min)),
                        "max": round2(maxs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
                        "avg": round2(sum / n.max(1) as f64),
                        "readings": n,
                    })
                };
                body["rollups"] = rows
                    .iter()
                    .map(|r| {
                        json!({
                            "timestamp": iso8601(r.bucket_start),
                            "count": r.count,
                            "min": r.min,
                            "max": r.max,
                            "mean": r.mean(),
                        })
                    })
                    .collect();
            }
            Err(e) => return err(503, e.to_string()),
        },
    }
    ok(body)
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn stats_json(nums: &[f64], sum: f64, n: u64) -> Json {
    if nums.is_empty() {
        return json!({});
    }
    json!({
        "min": round2(nums.iter().cloned().fold(f64::INFINITY, f64::min)),
        "max": round2(nums.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
        "avg": round2(sum / n as f64),
    })
}
