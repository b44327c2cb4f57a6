//! What a human troubleshooting needs, as JSON: built live by the agent for
//! `/api/status`, or offline by `smollama status` when no agent answers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value as Json, json};

#[cfg(feature = "agent")]
use crate::agent::intake::Intake;
#[cfg(feature = "agent")]
use crate::agent::worker::LlmStats;
use crate::clock::{iso8601, now_us};
use crate::config::Settings;
use crate::config::duration::format_duration;
use crate::edges::gpio::GpioBackend;
use crate::edges::http::HttpStats;
#[cfg(feature = "mqtt")]
use crate::edges::mqtt::connection::MqttStats;
use crate::graph::Micros;
use crate::graph::reading::value_json;
use crate::graph::registry::Registry;
use crate::graph::runner::GraphStatus;
use crate::messages::EventHub;
use crate::process;
use crate::store::Store;
use crate::store::writer::WriterStats;

pub mod prometheus;

/// What status reads while the loop runs ([`live()`], [`line()`]): the whole picture, which
/// only app (which builds it) and status see. Edges get narrow views instead (HTTP's
/// `HttpView`, systemd's status-line closure).
pub struct StatusView {
    pub settings: Settings,
    pub started: Micros,
    pub registry: Arc<Registry>,
    pub store: Arc<Store>,
    pub writer: Arc<WriterStats>,
    pub gpio: Arc<dyn GpioBackend>,
    /// Buses, mock device models and attached devices.
    pub hardware: Arc<crate::edges::hw::Hardware>,
    pub graph: GraphStatus,
    /// The HTTP edge's counters (connections, timeouts, refusals), for `/api/status`.
    pub http: Arc<HttpStats>,
    /// The live events (`/api/events`); `None` when HTTP is off.
    pub events: Option<Arc<EventHub>>,
    /// The MQTT edge's numbers (`None` when no broker is configured).
    #[cfg(feature = "mqtt")]
    pub mqtt: Option<MqttView>,
    /// The agent's LLM edge (`None` when the agent is off).
    #[cfg(feature = "agent")]
    pub llm: Option<Arc<LlmStats>>,
    /// The agent's intake (its counters per way in); `None` when the agent is off.
    #[cfg(feature = "agent")]
    pub intake: Option<Arc<Intake>>,
    /// The OpenClaw gateway client (`None` when `[openclaw]` is off).
    #[cfg(feature = "openclaw")]
    pub openclaw: Option<Arc<crate::edges::openclaw::OpenclawStats>>,
    /// The other nodes this one knows (mDNS, MQTT); its bounds and counters.
    pub directory: Arc<crate::nodes::NodeDirectory>,
}

/// What status needs of the MQTT edge: where it connects, its counters.
#[cfg(feature = "mqtt")]
pub struct MqttView {
    pub broker: String,
    pub stats: Arc<MqttStats>,
}

pub fn live(shared: &StatusView) -> Json {
    let now = now_us();
    // By the monotonic clock, so a stepped wall clock does not skew it or the rates.
    let uptime_s = match crate::clock::since_start() {
        d if d.is_zero() => (now - shared.started) as f64 / 1e6,
        d => d.as_secs_f64(),
    };
    let p = process::read();
    let mut sources: Vec<Json> = shared
        .registry
        .all()
        .iter()
        // Remote sources (thousands, perhaps) are summed up per node under connections.mqtt.
        .filter(|i| shared.registry.is_local(&i.name))
        .filter(|i| i.live.count.load(Ordering::Relaxed) > 0 || i.live.interval() > 0 || i.live.available.load(Ordering::Relaxed))
        .map(|i| {
            let count = i.live.count.load(Ordering::Relaxed);
            let last = i.live.last();
            let interval = i.live.interval();
            json!({
                "id": i.name,
                "unit": i.unit,
                "kind": i.kind.as_str(),
                "available": i.live.available.load(Ordering::Relaxed),
                "last_value": last.map(|(_, v)| value_json(&v)),
                "last_time": last.map(|(t, _)| iso8601(t)),
                "readings": count,
                "per_minute": if uptime_s > 0.0 { ((count as f64 / uptime_s * 60.0) * 100.0).round() / 100.0 } else { 0.0 },
                "drops": i.live.drops.load(Ordering::Relaxed),
                "interval": if interval > 0 { Json::from(format_duration(interval)) } else { Json::from("events") },
                "interval_s": if interval > 0 { Json::from(interval as f64 / 1e6) } else { Json::Null },
            })
        })
        .collect();
    sources.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let nodes: Vec<Json> = shared
        .graph
        .nodes
        .iter()
        .map(|n| {
            let counters: serde_json::Map<String, Json> = n
                .counters
                .iter()
                .flat_map(|c| c.iter())
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            json!({
                "name": n.name,
                "role": n.role,
                "kind": n.kind,
                "version": n.version,
                "state": n.state(),
                "reason": n.reason(),
                "counters": counters,
                "queue": n.inbox.as_ref().map(|rx| json!({
                    "depth": rx.len(),
                    "capacity": n.inbox_capacity,
                    "policy": if n.inbox_lossy { "drop-oldest" } else { "backpressure" },
                })),
            })
        })
        .collect();
    let edges: Vec<Json> = shared
        .graph
        .edges
        .iter()
        .map(|e| {
            json!({
                "from": e.from,
                "to": e.to,
                "lossy": e.lossy,
                "drops": e.drops.load(Ordering::Relaxed),
                "depth": e.depth(),
            })
        })
        .collect();
    let w = &shared.writer;
    let mut store = json!({
        "path": shared.store.path().display().to_string(),
        "commits": w.commits.load(Ordering::Relaxed),
        "readings_written": w.readings.load(Ordering::Relaxed),
        "rollups_written": w.rollups.load(Ordering::Relaxed),
        "pruned": w.pruned.load(Ordering::Relaxed),
        "failures": w.failures.load(Ordering::Relaxed),
        "evicted_oldest": w.evicted.load(Ordering::Relaxed),
        "folds": w.folds.load(Ordering::Relaxed),
        "folded": w.folded.load(Ordering::Relaxed),
        "last_fold_us": w.last_fold_us.load(Ordering::Relaxed),
        "last_commit_us": w.last_commit_us.load(Ordering::Relaxed),
        "state": if w.degraded.load(Ordering::Relaxed) { "degraded" } else { "ok" },
        "last_error": w.last_error.lock().ok().and_then(|e| e.clone()),
    });
    match shared.store.counts() {
        Ok(c) => {
            store["readings"] = json!(c.readings);
            store["head_readings"] = json!(c.head);
            store["rollups"] = json!(c.rollups);
            store["sources"] = json!(c.sources);
            store["file_bytes"] = json!(c.file_bytes);
            store["used_bytes"] = json!(c.used_bytes);
            store["map_bytes"] = json!(c.map_bytes);
        }
        Err(e) => store["count_error"] = json!(e.to_string()),
    }
    json!({
        "node": shared.settings.node.name,
        "version": env!("CARGO_PKG_VERSION"),
        "features": crate::features::COMPILED,
        "running": true,
        "timestamp": iso8601(now),
        "uptime_s": uptime_s.round(),
        // Whether the wall clock can be right (not still in 1970 for want of NTP), and
        // how far it was stepped while running: readings carry its time.
        "clock": {
            "set": crate::clock::is_set(now),
            "stepped_s": crate::clock::stepped_us() / 1_000_000,
            // Readings and rollup buckets of a boot in 1970 moved to their true times
            // once the clock was set (store/restamp.rs).
            "restamped": crate::store::restamp::STATS.readings.load(std::sync::atomic::Ordering::Relaxed),
            "restamped_rollups": crate::store::restamp::STATS.rollups.load(std::sync::atomic::Ordering::Relaxed),
        },
        "config_file": shared.settings.file.as_ref().map(|f| f.display().to_string()),
        "process": {
            "pid": std::process::id(),
            "rss_kb": p.rss_kb,
            "hwm_kb": p.hwm_kb,
            "threads": p.threads,
            "cpu_user_s": p.cpu_user_s,
            "cpu_system_s": p.cpu_system_s,
        },
        "sources": sources,
        "nodes": nodes,
        "edges": edges,
        "store": store,
        "gpio": gpio(shared),
        "hardware": hardware(shared),
        "sync": sync(shared),
        "node_directory": shared.directory.status_json(),
        "connections": {
            "http": http(shared),
            "mqtt": mqtt(shared),
            "ollama": llm(shared),
            "openclaw": openclaw(shared),
        },
    })
}

/// The OpenClaw gateway connection (`edges/openclaw/stats.rs`); null when it is off.
fn openclaw(shared: &StatusView) -> Json {
    #[cfg(feature = "openclaw")]
    return shared.openclaw.as_ref().map_or(Json::Null, |s| s.to_json());
    #[cfg(not(feature = "openclaw"))]
    {
        let _ = shared;
        Json::Null
    }
}

/// The replicated log (`crate::sync`); null in a build without the agent.
fn sync(shared: &StatusView) -> Json {
    #[cfg(feature = "agent")]
    return crate::sync::stats::status_json(&shared.store, &shared.settings);
    #[cfg(not(feature = "agent"))]
    {
        let _ = shared;
        Json::Null
    }
}

/// Buses in use (mocks with their models' state), the mock GPIO's device models, and the
/// attached output devices with what they show.
fn hardware(shared: &StatusView) -> Json {
    let mut j = shared.hardware.json();
    let pin_models = shared
        .gpio
        .mock()
        .map(|m| m.models_json())
        .unwrap_or_default();
    j["pin_models"] = Json::from(pin_models);
    j
}

/// The HTTP edge: its connections and every bound that refused a client.
fn http(shared: &StatusView) -> Json {
    let h = &shared.settings.http;
    if !h.enabled {
        return json!({ "state": "off ([http] enabled = false)" });
    }
    let st = &shared.http;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    // `POST /api/ask`: what the agent's intake did with questions over HTTP.
    #[cfg(feature = "agent")]
    let (questions, ignored, refused) = asked(shared.intake.as_ref().map(|i| &i.stats.http));
    #[cfg(not(feature = "agent"))]
    let (questions, ignored, refused) = (0, 0, 0);
    json!({
        "state": "listening",
        "bind": h.bind.to_string(),
        "open": n(&st.open),
        "max_connections": h.max_connections,
        "accepted": n(&st.accepted),
        "requests": n(&st.requests),
        "refused_at_cap": n(&st.refused_at_cap),
        "evicted_idle": n(&st.evicted_idle),
        "timed_out": {
            "idle": n(&st.idle_timeouts),
            "request": n(&st.request_timeouts),
            "write": n(&st.write_timeouts),
        },
        "refused": {
            "request_line_too_long": n(&st.request_line_too_long),
            "headers_too_large": n(&st.headers_too_large),
            "too_many_headers": n(&st.too_many_headers),
            "body_too_large": n(&st.body_too_large),
            "chunked_body": n(&st.chunked_body),
            "malformed": n(&st.malformed),
            "busy": n(&st.busy),
        },
        "ask": { "questions": questions, "ignored": ignored, "refused": refused },
        "streams": {
            "open": n(&st.streams_open),
            "max_streams": h.max_streams,
            "opened": n(&st.streams_opened),
            "refused_at_cap": n(&st.streams_refused_at_cap),
            "write_timeouts": n(&st.stream_write_timeouts),
        },
        "sessions": {
            "open": n(&st.sessions_open),
            "max_sessions": h.max_sessions,
            "logins": n(&st.logins),
            "logins_refused": n(&st.logins_refused),
            "evicted": n(&st.sessions_evicted),
        },
        "events": shared.events.as_deref().map(events),
    })
}

/// The live events' ring and its streams: what is held against its bounds, what
/// was evicted, and per client what it was sent and lost by falling behind.
fn events(hub: &EventHub) -> Json {
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (held, bytes) = hub.held();
    let clients: Vec<Json> = hub
        .clients()
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "since": iso8601(c.since),
                "sent": n(&c.sent),
                "lost": n(&c.lost),
            })
        })
        .collect();
    json!({
        "newest_id": hub.newest(),
        "buffered": held,
        "buffered_bytes": bytes,
        "max_events": hub.max_events(),
        "max_bytes": hub.max_bytes(),
        "published": n(&hub.stats.published),
        "evicted": n(&hub.stats.evicted),
        "oversized": n(&hub.stats.oversized),
        "sent": n(&hub.stats.sent),
        "lost": n(&hub.stats.lost),
        "clients": clients,
    })
}

/// The model server the configured backend asks.
#[cfg(feature = "agent")]
fn llm_server(settings: &crate::config::Settings) -> String {
    match settings.llm.backend {
        crate::config::settings::Backend::Ollama => settings.ollama.base_url(),
        crate::config::settings::Backend::OpenAi => settings.llm.base_url.clone(),
    }
}

/// The chat model the configured backend asks for.
#[cfg(feature = "agent")]
fn llm_model(settings: &crate::config::Settings) -> &str {
    match settings.llm.backend {
        crate::config::settings::Backend::Ollama => &settings.ollama.model,
        crate::config::settings::Backend::OpenAi => &settings.llm.model,
    }
}

#[cfg(feature = "agent")]
fn llm(shared: &StatusView) -> Json {
    use crate::agent::worker::llm_state_name;
    let Some(st) = &shared.llm else {
        return json!({ "state": "agent off ([agent] enabled = false)" });
    };
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let calls = n(&st.answered);
    json!({
        "state": llm_state_name(st.state.load(Ordering::Relaxed)),
        "backend": shared.settings.llm.backend.as_str(),
        "server": llm_server(&shared.settings),
        "model": llm_model(&shared.settings),
        "last_error": st.last_error(),
        "questions": n(&st.questions),
        "answered": n(&st.answered),
        "failed": n(&st.failed),
        "queued": n(&st.queued),
        "queue_dropped": n(&st.queue_dropped),
        "arriving_bytes": n(&st.arriving_bytes),
        "model_calls": n(&st.calls),
        "mean_answer_ms": if calls > 0 { (n(&st.call_us) as f64 / calls as f64 / 1000.0 * 10.0).round() / 10.0 } else { 0.0 },
        "answer_seconds": st.answer_latency.json(),
        "tools": {
            "exec_calls": n(&st.tools.exec_calls),
            "exec_failed": n(&st.tools.exec_failed),
            "exec_timed_out": n(&st.tools.exec_timed_out),
            "exec_over_cap": n(&st.tools.exec_over_cap),
            "writes_refused": n(&st.tools.writes_refused),
        },
    })
}

#[cfg(feature = "mqtt")]
fn mqtt(shared: &StatusView) -> Json {
    use crate::edges::mqtt::connection::state_name;
    let Some(m) = &shared.mqtt else {
        return json!({ "state": "not configured" });
    };
    let st = &m.stats;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    #[cfg(feature = "agent")]
    let (questions, ignored, rate_limited) = asked(shared.intake.as_ref().map(|i| &i.stats.mqtt));
    #[cfg(not(feature = "agent"))]
    let (questions, ignored, rate_limited) = (0, 0, 0);
    let outbox = match shared.store.outbox_stats() {
        // Acknowledged messages still stored (they leave with the next write) are sent.
        Ok(o) => json!({
            "messages": o.messages.saturating_sub(n(&st.outbox_acked)),
            "bytes": o.bytes,
            "dropped": o.dropped,
            "dropped_in_memory": n(&st.outbox_dropped_in_memory),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let malformed: serde_json::Map<String, Json> = st
        .malformed_by_topic
        .lock()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
        .unwrap_or_default();
    let remote = st.remote.lock().map(|t| {
        use crate::edges::mqtt::remote::STATUS_NODES;
        let (top, more) = t.top_nodes(STATUS_NODES);
        let nodes: Vec<Json> = top
            .iter()
            .map(|(node, n)| json!({ "node": node, "sources": n.sources, "refused": n.refused }))
            .collect();
        json!({
            "sources": t.sources,
            "max": shared.settings.mqtt.max_remote_sources,
            "max_per_node": shared.settings.mqtt.max_sources_per_node,
            "refused_node_limit": t.refused_node_limit,
            "refused_total_limit": t.refused_total_limit,
            "names_refused": t.names_refused,
            "refused_from_nodes_without_sources": t.refused_other_nodes,
            "nodes": nodes,
            "more_nodes": more,
        })
    });
    json!({
        "state": state_name(st.state.load(Ordering::Relaxed)),
        "broker": m.broker,
        "last_error": st.last_error(),
        "connects": n(&st.connects),
        "reconnects": n(&st.reconnects),
        "messages_in": n(&st.messages_in),
        "messages_out": n(&st.messages_out),
        "acked": n(&st.acked),
        "republished": n(&st.republished),
        "dropped_qos0": n(&st.dropped_qos0),
        "readings_in": n(&st.readings_in),
        "held_back": n(&st.held_back),
        "recent_bytes": n(&st.recent_bytes),
        // Messages on their way out, in memory: bounded in bytes as well as count.
        "publish_queue": {
            "bytes": n(&st.publish_queue.bytes),
            "max_bytes": n(&st.publish_queue.max_bytes),
            "refused": n(&st.publish_queue.refused),
            "waited": n(&st.publish_queue.waited),
        },
        "client_queue": {
            "bytes": n(&st.client_bytes),
            "max_bytes": n(&st.client_max_bytes),
            "full": n(&st.client_full),
        },
        "malformed": n(&st.malformed),
        "too_large": n(&st.too_large),
        "malformed_items": n(&st.malformed_items),
        "ts_replaced": n(&st.ts_replaced),
        "refused_out": n(&st.refused_out),
        "refused_by_broker": n(&st.refused_by_broker),
        "ack_seconds": st.ack_latency.json(),
        // The agent's intake counts what came over MQTT (0 with the agent off).
        "questions": questions,
        "questions_ignored": ignored,
        "questions_rate_limited": rate_limited,
        "malformed_by_topic": malformed,
        "remote_sources": remote.unwrap_or(Json::Null),
        "outbox": outbox,
        // Retained states, the newest per topic, held in memory instead of the outbox.
        "states": {
            "waiting": n(&st.states_waiting),
            "replaced": n(&st.states_replaced),
            "refused": n(&st.states_refused),
        },
    })
}

/// What the agent's intake did with questions from one way in: handed over, ignored
/// (loop guard, own message, no text), refused (rate limit, agent busy). Zeros when the
/// agent is off.
#[cfg(feature = "agent")]
fn asked(counts: Option<&crate::agent::intake::Counts>) -> (u64, u64, u64) {
    let Some(c) = counts else {
        return (0, 0, 0);
    };
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    (n(&c.questions), n(&c.ignored), n(&c.refused))
}

#[cfg(not(feature = "agent"))]
fn llm(_: &StatusView) -> Json {
    json!({ "state": "not in this build (no agent feature)" })
}

#[cfg(not(feature = "mqtt"))]
fn mqtt(_: &StatusView) -> Json {
    json!({ "state": "not in this build (no mqtt feature)" })
}

/// The configured pins and their levels.
pub fn gpio(shared: &StatusView) -> Json {
    crate::edges::gpio::pins_json(&shared.settings.gpio.pins, shared.gpio.as_ref())
}

/// The one line systemd shows in `systemctl status` (STATUS=): e.g. "12 sources, mqtt connected, ollama unreachable
/// (queueing 3), store ok".
pub fn line(shared: &StatusView) -> String {
    #[cfg(feature = "agent")]
    use crate::agent::worker::{LLM_MODEL_MISSING, LLM_REACHABLE, LLM_UNREACHABLE};
    #[cfg(feature = "mqtt")]
    use crate::edges::mqtt::connection::state_name;
    let sources = shared
        .registry
        .all()
        .iter()
        .filter(|i| i.live.count.load(Ordering::Relaxed) > 0)
        .count();
    #[cfg(not(feature = "mqtt"))]
    let mqtt = "mqtt not built in";
    #[cfg(feature = "mqtt")]
    let mqtt = match &shared.mqtt {
        Some(m) => format!("mqtt {}", state_name(m.stats.state.load(Ordering::Relaxed))),
        None => "mqtt off".into(),
    };
    #[cfg(not(feature = "agent"))]
    let llm = "agent not built in";
    #[cfg(feature = "agent")]
    let llm = match &shared.llm {
        Some(l) => {
            let queued = l.queued.load(Ordering::Relaxed);
            let who = match shared.settings.llm.backend {
                crate::config::settings::Backend::Ollama => "ollama",
                crate::config::settings::Backend::OpenAi => "llm",
            };
            match l.state.load(Ordering::Relaxed) {
                LLM_REACHABLE => format!("{who} reachable"),
                LLM_UNREACHABLE if queued > 0 => format!("{who} unreachable (queueing {queued})"),
                LLM_UNREACHABLE => format!("{who} unreachable"),
                LLM_MODEL_MISSING => {
                    format!("{who} model {} missing", llm_model(&shared.settings))
                }
                _ => format!("{who} not contacted yet"),
            }
        }
        None => "agent off".into(),
    };
    let store = if shared.writer.degraded.load(Ordering::Relaxed) {
        "store degraded"
    } else {
        "store ok"
    };
    format!("{sources} sources reporting, {mqtt}, {llm}, {store}")
}

/// `smollama status` with no agent answering: what can be checked from here. `running`
/// says whether an agent has this data directory's store open (found without HTTP, see
/// [`crate::running`]); `agent.pids` names it.
pub fn offline(settings: &Settings, agent_error: &str) -> Json {
    use crate::config::PipelineSpec;
    use crate::store::{Store, StoreOptions};

    // Before this process opens the store itself (it is left out anyway).
    let agents = crate::running::agents_using(&crate::data_dir::store_dir(settings));

    let pipeline = match PipelineSpec::load(settings) {
        Ok(spec) => json!({
            "valid": true,
            "sources": spec.sources.len(),
            "stages": spec.stages.len(),
            "sinks": spec.sinks.len(),
        }),
        Err(e) => json!({ "valid": false, "errors": e.to_string() }),
    };
    let store_dir = crate::data_dir::store_dir(settings);
    let store = if !store_dir.join("data.mdb").exists() {
        json!({ "path": store_dir.display().to_string(), "state": "not created yet" })
    } else {
        match Store::open(
            &store_dir,
            &StoreOptions {
                map_size: (settings.store.map_size_mb as usize) << 20,
            },
        )
        .and_then(|s| s.counts())
        {
            Ok(c) => json!({
                "path": store_dir.display().to_string(),
                "state": "readable",
                "readings": c.readings,
                "rollups": c.rollups,
                "sources": c.sources,
                "file_bytes": c.file_bytes,
            }),
            Err(e) => {
                json!({ "path": store_dir.display().to_string(), "state": "error", "error": e.to_string() })
            }
        }
    };
    let on_pi = std::fs::read_to_string("/proc/device-tree/model")
        .map(|m| m.contains("Raspberry Pi"))
        .unwrap_or(false);
    let backend = match settings.gpio.backend {
        crate::config::settings::GpioBackendChoice::Mock => "mock",
        crate::config::settings::GpioBackendChoice::Rppal => "rppal",
        crate::config::settings::GpioBackendChoice::Auto => {
            if on_pi {
                "rppal"
            } else {
                "mock (no Raspberry Pi found)"
            }
        }
    };
    let metrics: Vec<Json> = crate::sources::system::Metric::ALL
        .iter()
        .map(|m| {
            let v = crate::sources::system::probe(*m, &settings.node.data_dir);
            json!({
                "id": format!("system:{}", m.id()),
                "available": v.is_some(),
                "value": v.map(|v| value_json(&v)),
            })
        })
        .collect();
    json!({
        "node": settings.node.name,
        "version": env!("CARGO_PKG_VERSION"),
        "features": crate::features::COMPILED,
        "running": !agents.is_empty(),
        "agent": { "url": format!("http://{}/api/status", settings.http.bind), "error": agent_error, "pids": agents },
        "config_file": settings.file.as_ref().map(|f| f.display().to_string()),
        "config": { "valid": true },
        "pipeline": pipeline,
        "store": store,
        "gpio": { "backend": backend, "configured_pins": settings.gpio.pins.len() },
        "system_metrics": metrics,
    })
}

/// The one `ollama:` line: what this command found just now (`o`), and, from a live
/// report, what the agent last saw (`agent`, its `connections.ollama`), so the two never
/// appear as two lines that seem to contradict each other.
fn ollama_line(s: &mut String, o: &Json, agent: &Json) {
    use std::fmt::Write;
    if o.is_null() {
        return;
    }
    // "ollama:" as before; an OpenAI-compatible server says so.
    let label = match o["backend"].as_str() {
        Some("openai") => "llm (openai)",
        _ => "ollama",
    };
    if o["reachable"] == json!(true) {
        let hint = o["hint"].as_str().unwrap_or("");
        let _ = write!(
            s,
            "{label}: {} reachable (version {}), model {} {}",
            o["server"].as_str().unwrap_or(""),
            o["version"].as_str().unwrap_or("?"),
            o["model"].as_str().unwrap_or(""),
            match (o["model_present"] == json!(true), label) {
                (true, _) => "present".to_string(),
                (false, "ollama") => format!("MISSING: run `{hint}` on that server"),
                (false, _) => format!("MISSING: {hint}"),
            }
        );
        if let Some(models) = o["models"].as_array() {
            let names: Vec<&str> = models.iter().filter_map(Json::as_str).collect();
            let _ = write!(
                s,
                "; models: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            );
        }
    } else {
        let _ = write!(
            s,
            "{label}: {} unreachable ({})",
            o["server"].as_str().unwrap_or(""),
            o["error"].as_str().unwrap_or("")
        );
    }
    if let Some(state) = agent["state"].as_str() {
        let _ = write!(s, "; the agent: {state}");
        if let Some(n) = agent["answered"].as_u64() {
            let _ = write!(s, ", {n} answered");
        }
    }
    let _ = writeln!(s);
}

/// The report as text for a terminal.
pub fn human(r: &Json) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let str_of = |v: &Json| match v {
        Json::String(x) => x.clone(),
        Json::Null => "-".into(),
        other => other.to_string(),
    };
    let _ = writeln!(
        s,
        "smollama {} — node {}",
        str_of(&r["version"]),
        str_of(&r["node"])
    );
    if let Some(f) = r["features"].as_array() {
        let names: Vec<String> = f.iter().map(str_of).collect();
        let _ = writeln!(
            s,
            "features: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    }
    // A live report (from the agent) has its process; an offline one does not.
    if r["process"].is_object() {
        let p = &r["process"];
        let _ = writeln!(
            s,
            "agent: running for {}s (pid {}, RSS {} KiB, {} threads, CPU {:.2}s)",
            str_of(&r["uptime_s"]),
            str_of(&p["pid"]),
            str_of(&p["rss_kb"]),
            str_of(&p["threads"]),
            p["cpu_user_s"].as_f64().unwrap_or(0.0) + p["cpu_system_s"].as_f64().unwrap_or(0.0)
        );
        let st = &r["store"];
        let _ = writeln!(
            s,
            "store: {} ({}), {} readings, {} rollups, {} KiB on disk, {} commits",
            str_of(&st["path"]),
            str_of(&st["state"]),
            str_of(&st["readings"]),
            str_of(&st["rollups"]),
            st["file_bytes"].as_u64().unwrap_or(0) / 1024,
            str_of(&st["commits"])
        );
        if let Some(e) = st["last_error"].as_str() {
            let _ = writeln!(s, "  last error: {e}");
        }
        let _ = writeln!(s, "gpio: {} backend", str_of(&r["gpio"]["backend"]));
        ollama_line(&mut s, &r["ollama"], &r["connections"]["ollama"]);
        for (k, v) in r["connections"].as_object().into_iter().flatten() {
            if k == "ollama" && !r["ollama"].is_null() {
                continue; // on the ollama line above
            }
            let _ = write!(s, "{k}: {}", str_of(&v["state"]));
            if k == "http" && !v["bind"].is_null() {
                let refused: u64 = v["refused"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, n)| n.as_u64())
                    .sum();
                let timed_out: u64 = v["timed_out"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, n)| n.as_u64())
                    .sum();
                let _ = write!(
                    s,
                    " on {}, {} of {} connections open, {} requests, {} refused at the cap, {} timed out, {} refused by a limit",
                    str_of(&v["bind"]),
                    str_of(&v["open"]),
                    str_of(&v["max_connections"]),
                    str_of(&v["requests"]),
                    str_of(&v["refused_at_cap"]),
                    timed_out,
                    refused
                );
                if !v["streams"].is_null() {
                    let _ = write!(
                        s,
                        "; {} of {} event streams open, {} events lost by slow clients",
                        str_of(&v["streams"]["open"]),
                        str_of(&v["streams"]["max_streams"]),
                        str_of(&v["events"]["lost"])
                    );
                }
            }
            if k == "mqtt" && !v["broker"].is_null() {
                let _ = write!(
                    s,
                    " ({}), {} in, {} out, {} acked, outbox {} waiting / {} dropped, {} reconnects, {} malformed",
                    str_of(&v["broker"]),
                    str_of(&v["messages_in"]),
                    str_of(&v["messages_out"]),
                    str_of(&v["acked"]),
                    str_of(&v["outbox"]["messages"]),
                    str_of(&v["outbox"]["dropped"]),
                    str_of(&v["reconnects"]),
                    str_of(&v["malformed"])
                );
                let rs = &v["remote_sources"];
                if rs["sources"].as_u64().unwrap_or(0) > 0 {
                    let refused = ["refused_node_limit", "refused_total_limit", "names_refused"]
                        .iter()
                        .filter_map(|k| rs[*k].as_u64())
                        .sum::<u64>();
                    let _ = write!(
                        s,
                        ", {} remote sources ({refused} readings refused)",
                        str_of(&rs["sources"])
                    );
                }
                if let Some(e) = v["last_error"].as_str() {
                    let _ = write!(s, "; last error: {e}");
                }
            }
            if k == "openclaw" && !v["url"].is_null() {
                let _ = write!(
                    s,
                    " ({}, device {})",
                    str_of(&v["url"]),
                    str_of(&v["device_id"])
                );
                if let Some(a) = v["approve_with"].as_str() {
                    let _ = write!(s, "; approve on the gateway: {a}");
                }
                if let Some(e) = v["last_error"].as_str() {
                    let _ = write!(s, "; last error: {e}");
                }
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "sources:");
        for src in r["sources"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "  {:<24} {:>10} {:<8} every {:<6} {} readings, {} dropped{}",
                str_of(&src["id"]),
                str_of(&src["last_value"]),
                str_of(&src["unit"]),
                str_of(&src["interval"]),
                str_of(&src["readings"]),
                str_of(&src["drops"]),
                if src["available"] == json!(false) {
                    " (unavailable)"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(s, "graph:");
        for n in r["nodes"].as_array().into_iter().flatten() {
            let counters: Vec<String> = n["counters"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let q = &n["queue"];
            let queue = if q.is_null() {
                String::new()
            } else {
                format!(" queue {}/{}", str_of(&q["depth"]), str_of(&q["capacity"]))
            };
            let state = match (n["state"].as_str(), n["reason"].as_str()) {
                (Some("running"), _) => String::new(),
                (Some(state), Some(why)) => format!(" {state}: {why}"),
                (Some(state), None) => format!(" {state}"),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "  {:<8} {:<10} {:<10}{} {}{state}",
                str_of(&n["role"]),
                str_of(&n["name"]),
                str_of(&n["kind"]),
                queue,
                counters.join(" ")
            );
        }
    } else {
        let agent = &r["agent"];
        match agent["pids"].as_array().and_then(|p| p.first()) {
            Some(pid) => writeln!(
                s,
                "agent: running (pid {pid}); no live state ({})",
                str_of(&agent["error"])
            ),
            None => writeln!(s, "agent: not running ({})", str_of(&agent["error"])),
        }
        .ok();
        ollama_line(&mut s, &r["ollama"], &Json::Null);
        let _ = writeln!(
            s,
            "config: {} (valid)",
            r["config_file"].as_str().unwrap_or("built-in defaults")
        );
        let p = &r["pipeline"];
        if p["valid"] == json!(true) {
            let _ = writeln!(
                s,
                "pipeline: valid ({} sources, {} stages, {} sinks)",
                str_of(&p["sources"]),
                str_of(&p["stages"]),
                str_of(&p["sinks"])
            );
        } else {
            let _ = writeln!(s, "pipeline: INVALID\n{}", str_of(&p["errors"]));
        }
        let st = &r["store"];
        let _ = writeln!(
            s,
            "store: {} ({}{})",
            str_of(&st["path"]),
            str_of(&st["state"]),
            match st["readings"].as_u64() {
                Some(n) => format!(
                    ", {n} readings, {} KiB",
                    st["file_bytes"].as_u64().unwrap_or(0) / 1024
                ),
                None => String::new(),
            }
        );
        let _ = writeln!(
            s,
            "gpio: {} ({} pins configured)",
            str_of(&r["gpio"]["backend"]),
            str_of(&r["gpio"]["configured_pins"])
        );
        let _ = writeln!(s, "system metrics on this machine:");
        for m in r["system_metrics"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "  {:<26} {}",
                str_of(&m["id"]),
                if m["available"] == json!(true) {
                    str_of(&m["value"])
                } else {
                    "unavailable".into()
                }
            );
        }
    }
    s
}
