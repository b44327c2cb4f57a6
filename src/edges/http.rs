//! HTTP on its own named thread (tiny_http): health, status, readings, GPIO.
//!
//! Handlers read shared state (atomics, the registry) and the store through LMDB read
//! transactions; none of them waits on the event loop except `/api/health`, whose whole
//! point is to prove the loop is turning.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as Json, json};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::app::Shared;
use crate::clock::{iso8601, now_us};
use crate::config::duration::format_duration;
use crate::edges::gpio::GpioError;
use crate::graph::reading::flags;
use crate::graph::{Reading, Value};
use crate::status;

pub struct HttpHandle {
    pub addr: SocketAddr,
    server: Arc<Server>,
    thread: std::thread::JoinHandle<()>,
}

impl HttpHandle {
    pub fn stop(self) {
        self.server.unblock();
        let _ = self.thread.join();
    }
}

pub fn start(shared: Arc<Shared>) -> Result<HttpHandle, String> {
    let bind = shared.settings.http.bind;
    let server = Arc::new(Server::http(bind).map_err(|e| format!("cannot listen on {bind}: {e}"))?);
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| "not an IP listener".to_string())?;
    let srv = server.clone();
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            while let Ok(req) = srv.recv() {
                handle(&shared, req);
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(HttpHandle {
        addr,
        server,
        thread,
    })
}

/// An answer: status code and JSON body.
pub struct Reply {
    pub code: u16,
    pub body: Json,
}

fn ok(body: Json) -> Reply {
    Reply { code: 200, body }
}

fn err(code: u16, msg: impl Into<String>) -> Reply {
    Reply {
        code,
        body: json!({ "error": msg.into() }),
    }
}

fn handle(shared: &Shared, mut req: Request) {
    let method = req.method().clone();
    let url = req.url().to_string();
    let mut body = String::new();
    if matches!(method, Method::Put | Method::Post) {
        // Bodies here are tiny JSON objects; refuse anything large.
        let mut limited = req.as_reader().take(64 * 1024);
        if limited.read_to_string(&mut body).is_err() {
            respond(req, err(400, "request body is not UTF-8 text"));
            return;
        }
    }
    let auth = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_string());
    let reply = route(shared, &method, &url, &body, auth.as_deref());
    log::debug!("http {} {} -> {}", method, url, reply.code);
    respond(req, reply);
}

fn respond(req: Request, reply: Reply) {
    let body = reply.body.to_string();
    let resp = Response::from_string(body)
        .with_status_code(reply.code)
        .with_header(
            Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
                .expect("static header"),
        );
    let _ = req.respond(resp);
}

/// Route one request. Public so tests can exercise routing without a socket.
pub fn route(shared: &Shared, method: &Method, url: &str, body: &str, auth: Option<&str>) -> Reply {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let get = *method == Method::Get;
    match segs.as_slice() {
        ["api", "health"] if get => health(shared),
        ["api", "status"] if get => ok(status::live(shared)),
        ["api", "readings"] if get => readings(shared),
        ["api", "readings", id] if get => reading(shared, id),
        ["api", "readings", id, "history"] if get => history(shared, id, query),
        ["api", "gpio"] if get => ok(status::gpio(shared)),
        #[cfg(feature = "agent")]
        ["api", "observations"] if get => observations(shared, query),
        #[cfg(feature = "agent")]
        ["api", "memories"] if get => memories(shared, query),
        #[cfg(feature = "agent")]
        ["api", "memory", "recall"] if *method == Method::Post => memory_recall(shared, body),
        #[cfg(feature = "agent")]
        ["api", "stats"] if get => stats(shared),
        // Observations and memories are the agent's: a lean build says why they are absent.
        #[cfg(not(feature = "agent"))]
        ["api", "observations" | "memories" | "stats"] if get => no_agent(path),
        #[cfg(not(feature = "agent"))]
        ["api", "memory", "recall"] if *method == Method::Post => no_agent(path),
        ["api", "gpio", pin] if matches!(method, Method::Put | Method::Post) => {
            gpio_write(shared, pin, body, auth)
        }
        ["api", "health"]
        | ["api", "status"]
        | ["api", "readings", ..]
        | ["api", "gpio"]
        | ["api", "gpio", _]
        | ["api", "observations"]
        | ["api", "memories"]
        | ["api", "memory", "recall"]
        | ["api", "stats"] => err(405, format!("method {method} not allowed on {path}")),
        _ => err(404, format!("no such endpoint: {path}")),
    }
}

#[cfg(not(feature = "agent"))]
fn no_agent(path: &str) -> Reply {
    err(
        404,
        crate::features::missing("agent", &format!("{path} (the agent's memory)")),
    )
}

fn health(shared: &Shared) -> Reply {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let alive = shared.ping.try_send(tx).is_ok() && rx.recv_timeout(Duration::from_secs(2)).is_ok();
    let body = json!({
        "status": if alive { "ok" } else { "stalled" },
        "node": shared.settings.node.name,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": ((now_us() - shared.started) as f64 / 1e6).round(),
        "timestamp": iso8601(now_us()),
    });
    Reply {
        code: if alive { 200 } else { 503 },
        body,
    }
}

pub fn value_json(v: &Value) -> Json {
    match *v {
        Value::Number(x) => json!(x),
        Value::Bool(b) => json!(b),
        Value::Text(t) => json!(t.as_str()),
    }
}

fn reading_json(shared: &Shared, r: &Reading) -> Json {
    let info = shared.registry.get(r.source);
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

fn readings(shared: &Shared) -> Reply {
    match shared.store.latest_all() {
        Ok(rs) => ok(json!({
            "node": shared.settings.node.name,
            "timestamp": iso8601(now_us()),
            "readings": rs.iter().map(|r| reading_json(shared, r)).collect::<Vec<_>>(),
        })),
        Err(e) => err(503, e.to_string()),
    }
}

fn unknown_source(shared: &Shared, id: &str) -> Reply {
    let mut known: Vec<String> = shared
        .registry
        .all()
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    known.sort();
    Reply {
        code: 404,
        body: json!({ "error": format!("unknown source '{id}'"), "available": known }),
    }
}

fn reading(shared: &Shared, id: &str) -> Reply {
    let Some(info) = shared.registry.lookup(id) else {
        return unknown_source(shared, id);
    };
    match shared.store.latest(info.id) {
        Ok(Some(r)) => ok(reading_json(shared, &r)),
        Ok(None) => err(404, format!("source '{id}' has no stored readings yet")),
        Err(e) => err(503, e.to_string()),
    }
}

/// Query parameter `name` as an integer in `[min, max]`, or `default` when absent.
fn int_param(query: &str, name: &str, default: i64, min: i64, max: i64) -> Result<i64, Reply> {
    let Some(raw) = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
    else {
        return Ok(default);
    };
    match raw.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(err(
            400,
            format!("{name} must be an integer from {min} to {max}, got '{raw}'"),
        )),
    }
}

fn history(shared: &Shared, id: &str, query: &str) -> Reply {
    let Some(info) = shared.registry.lookup(id) else {
        return unknown_source(shared, id);
    };
    let minutes = match int_param(query, "minutes", 60, 1, 10 * 366 * 24 * 60) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let limit = match int_param(query, "limit", 100, 1, 10_000) {
        Ok(v) => v as usize,
        Err(r) => return r,
    };
    let now = now_us();
    let window = minutes * 60_000_000;
    let from = now - window;
    // Raw rows while the window fits the raw retention; beyond it, the finest rollup
    // level that still covers the window.
    let level = shared
        .graph
        .retention
        .as_ref()
        .and_then(|ret| ret.level_for(window));
    let mut body = json!({
        "source_id": info.name,
        "unit": info.unit,
        "period_minutes": minutes,
    });
    match level {
        None => match shared.store.history(info.id, from, now + 1, limit) {
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
        Some(lv) => match shared
            .store
            .rollups(info.id, lv as u8, from, now + 1, limit)
        {
            Ok(rows) => {
                let every = shared
                    .graph
                    .retention
                    .as_ref()
                    .map_or(0, |r| r.rollups[lv].every);
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

/// Query parameter `name` as text ("" when absent).
#[cfg(feature = "agent")]
fn str_param(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
        .unwrap_or_default()
}

#[cfg(feature = "agent")]
fn observation_json(o: &crate::memory::Observation, similarity: Option<f32>) -> Json {
    json!({
        "id": o.id,
        "timestamp": iso8601(o.ts),
        "text": o.text,
        "confidence": round2(f64::from(o.confidence)),
        "type": o.kind.as_str(),
        "related_sources": if o.related_sources.is_empty() { Json::Null } else { json!(o.related_sources) },
        "similarity": similarity.map(|s| round2(f64::from(s))),
    })
}

#[cfg(feature = "agent")]
fn memory_json(m: &crate::memory::Memory, similarity: Option<f32>) -> Json {
    json!({
        "id": m.id,
        "text": m.fact,
        "confidence": round2(f64::from(m.confidence)),
        "times_confirmed": m.times_confirmed,
        "active": m.active,
        "created_at": iso8601(m.first_seen),
        "updated_at": iso8601(m.last_seen),
        "similarity": similarity.map(|s| round2(f64::from(s))),
    })
}

/// `GET /api/observations?query=&type=&hours=&limit=`: newest first, or ranked by words
/// when a query is given (this endpoint never waits on the LLM server).
#[cfg(feature = "agent")]
fn observations(shared: &Shared, query: &str) -> Reply {
    let q = str_param(query, "query");
    let kind = match str_param(query, "type").as_str() {
        "" => None,
        t => match crate::memory::ObservationType::ALL
            .iter()
            .find(|k| k.as_str() == t)
        {
            Some(k) => Some(*k),
            None => {
                return err(
                    400,
                    format!(
                        "type must be one of pattern, anomaly, status, summary, general, got '{t}'"
                    ),
                );
            }
        },
    };
    let hours = match int_param(query, "hours", 0, 0, 24 * 366 * 10) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let limit = match int_param(query, "limit", 20, 1, 1000) {
        Ok(v) => v as usize,
        Err(r) => return r,
    };
    let from = if hours > 0 {
        now_us() - hours * 3_600_000_000
    } else {
        i64::MIN
    };
    let list: Vec<Json> = if q.trim().is_empty() {
        match shared.store.memory().observations(from, kind, limit) {
            Ok(v) => v.iter().map(|o| observation_json(o, None)).collect(),
            Err(e) => return err(503, e.to_string()),
        }
    } else {
        match crate::memory::recall::recall(&shared.store, None, &q, 1000) {
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
#[cfg(feature = "agent")]
fn memories(shared: &Shared, query: &str) -> Reply {
    let q = str_param(query, "query");
    let limit = match int_param(query, "limit", 20, 1, 1000) {
        Ok(v) => v as usize,
        Err(r) => return r,
    };
    let list: Vec<Json> = if q.trim().is_empty() {
        match shared.store.memory().memories(true, limit) {
            Ok(v) => v.iter().map(|m| memory_json(m, None)).collect(),
            Err(e) => return err(503, e.to_string()),
        }
    } else {
        match crate::memory::recall::recall(&shared.store, None, &q, limit) {
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
#[cfg(feature = "agent")]
fn memory_recall(shared: &Shared, body: &str) -> Reply {
    let parsed: Json = match serde_json::from_str(body) {
        Ok(j) => j,
        Err(_) => {
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
    let mut cfg = crate::app::ollama_config(&shared.settings);
    cfg.model = shared.settings.memory.embedding_model.clone();
    cfg.retries = 0;
    cfg.total_timeout = Duration::from_secs(5);
    // Words while the stored vectors are another model's (re-embedding not done).
    let comparable = shared
        .store
        .memory()
        .vectors_match(&cfg.model)
        .unwrap_or(false);
    let vector = comparable
        .then(|| crate::edges::ollama::Ollama::new(cfg).embed(&[q]).ok())
        .flatten()
        .and_then(|mut v| (!v.is_empty()).then(|| v.swap_remove(0)));
    match crate::memory::recall::recall_with_mode(&shared.store, vector.as_deref(), q, limit) {
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
#[cfg(feature = "agent")]
fn stats(shared: &Shared) -> Reply {
    let counts = match shared.store.memory().memory_counts() {
        Ok(c) => c,
        Err(e) => return err(503, e.to_string()),
    };
    let store = shared.store.counts().unwrap_or_default();
    let mut types: Vec<String> = shared
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
        "node_name": shared.settings.node.name,
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
        "source_count": shared.registry.all().len(),
        "source_types": types,
    }))
}

fn round2(x: f64) -> f64 {
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

fn gpio_write(shared: &Shared, pin: &str, body: &str, auth: Option<&str>) -> Reply {
    let Some(token) = shared.settings.http.token.as_deref() else {
        return err(
            403,
            "write endpoints are disabled: set [http] token (or SMOLLAMA_HTTP_TOKEN) to enable them",
        );
    };
    let presented = auth.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return err(
            401,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        );
    }
    let Ok(pin_no) = pin.parse::<u8>() else {
        return err(400, format!("'{pin}' is not a pin number"));
    };
    let Some(cfg) = shared.settings.gpio.pins.iter().find(|p| p.pin == pin_no) else {
        return err(404, format!("pin {pin_no} is not configured in [gpio]"));
    };
    let parsed: Result<Json, _> = serde_json::from_str(body);
    let level = match parsed.as_ref().ok().and_then(|j| j.get("value")) {
        Some(Json::Bool(b)) => *b,
        Some(Json::Number(n)) if n.as_u64() == Some(0) => false,
        Some(Json::Number(n)) if n.as_u64() == Some(1) => true,
        _ => {
            return err(
                400,
                "body must be a JSON object like {\"value\": true} (true/false or 1/0)",
            );
        }
    };
    let result = match cfg.mode {
        crate::config::settings::PinMode::Output => shared.gpio.write(pin_no, level),
        crate::config::settings::PinMode::Input => shared.gpio.set_input(pin_no, level),
    };
    match result {
        Ok(()) => {
            log::info!(
                "http: gpio pin {pin_no} ({}) set {}",
                cfg.name,
                if level { "high" } else { "low" }
            );
            ok(json!({ "pin": pin_no, "name": cfg.name, "value": level }))
        }
        Err(
            e @ (GpioError::NotSimulated | GpioError::NotAnOutput(_) | GpioError::NotAnInput(_)),
        ) => err(409, e.to_string()),
        Err(e @ GpioError::UnknownPin(_)) => err(404, e.to_string()),
        Err(e) => err(500, e.to_string()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decode `%XX` escapes (and `+` as space in queries); invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("system%3Acpu_temp"), "system:cpu_temp");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
