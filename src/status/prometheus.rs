//! `GET /metrics`: the Prometheus text exposition format (0.0.4), rendered from the same
//! snapshot `/api/status` returns (`status::live`), so the two never disagree: one
//! registry, two views. Names follow Prometheus's conventions: the `smollama_` prefix,
//! base units (seconds, bytes), `_total` on counters, and labels only from bounded sets
//! (this node's own sources, pipeline nodes and edges, fixed reason names).
//!
//! Hand-written rather than a client crate: the format is a few lines per family, and
//! `prometheus-client` would bring its own registry beside ours (which is exactly the
//! disagreement this avoids) and about 60 KB; `promtool check metrics` checks the output
//! in the tests.

use std::fmt::Write as _;

use serde_json::Value as Json;

/// One family being written: its samples follow its `# HELP` and `# TYPE` lines.
struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample; `labels` as (name, value) pairs, values escaped.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.text.push_str("\\\\"),
                        '"' => self.text.push_str("\\\""),
                        '\n' => self.text.push_str("\\n"),
                        c => self.text.push(c),
                    }
                }
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        if value.is_nan() {
            self.text.push_str("NaN");
        } else if value.is_infinite() {
            self.text
                .push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(self.text, "{value}");
        }
        self.text.push('\n');
    }

    /// A family with one unlabelled sample, when the value is there.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: Option<f64>) {
        if let Some(v) = value {
            self.family(name, kind, help);
            self.sample(name, &[], v);
        }
    }

    /// A histogram from status's `{count, sum_s, buckets: [[le, cumulative]]}`.
    fn histogram(&mut self, name: &str, help: &str, h: &Json) {
        let Some(buckets) = h["buckets"].as_array() else {
            return;
        };
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for b in buckets {
            let le = match &b[0] {
                Json::String(s) => s.clone(),
                v => v.as_f64().map(|f| f.to_string()).unwrap_or_default(),
            };
            self.sample(&bucket, &[("le", &le)], num(&b[1]).unwrap_or(0.0));
        }
        self.sample(&format!("{name}_sum"), &[], num(&h["sum_s"]).unwrap_or(0.0));
        self.sample(
            &format!("{name}_count"),
            &[],
            num(&h["count"]).unwrap_or(0.0),
        );
    }
}

fn num(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn text(v: &Json) -> &str {
    v.as_str().unwrap_or("")
}

/// The exposition of `status` (what `status::live` returned).
pub fn render(status: &Json) -> String {
    let mut o = Out {
        text: String::with_capacity(16 * 1024),
    };
    o.family(
        "smollama_info",
        "gauge",
        "This node: its name and version (always 1).",
    );
    o.sample(
        "smollama_info",
        &[
            ("node", text(&status["node"])),
            ("version", text(&status["version"])),
        ],
        1.0,
    );
    o.single(
        "smollama_uptime_seconds",
        "gauge",
        "Seconds since the agent started.",
        num(&status["uptime_s"]),
    );
    o.single(
        "smollama_clock_set",
        "gauge",
        "1 when the wall clock can be right, 0 while it reads before 2025 (not set by NTP yet).",
        num(&status["clock"]["set"]),
    );
    o.single(
        "smollama_clock_restamped_readings_total",
        "counter",
        "Readings stamped before the clock was set (1970) moved to their true times once it was.",
        num(&status["clock"]["restamped"]),
    );
    process(&mut o, &status["process"]);
    sources(&mut o, status["sources"].as_array().map_or(&[], |v| v));
    nodes(&mut o, status["nodes"].as_array().map_or(&[], |v| v));
    edges(&mut o, status["edges"].as_array().map_or(&[], |v| v));
    store(&mut o, &status["store"]);
    http(&mut o, &status["connections"]["http"]);
    mqtt(&mut o, &status["connections"]["mqtt"]);
    llm(&mut o, &status["connections"]["ollama"]);
    sync(&mut o, &status["sync"]);
    openclaw(&mut o, &status["connections"]["openclaw"]);
    directory(&mut o, &status["node_directory"]);
    o.text
}

/// The OpenClaw gateway client (`edges/openclaw/stats.rs`); nothing when it is off.
fn openclaw(o: &mut Out, s: &Json) {
    if s.is_null() {
        return;
    }
    let flag = |k: &str| Some(if s[k] == true { 1.0 } else { 0.0 });
    o.single(
        "smollama_openclaw_connected",
        "gauge",
        "Whether the OpenClaw gateway connection is up (1) or not (0).",
        flag("connected"),
    );
    o.single(
        "smollama_openclaw_approved",
        "gauge",
        "Whether the gateway's operator approved this node's commands (an invoke arrived).",
        flag("approved"),
    );
    const COUNTERS: [(&str, &str, &str); 15] = [
        (
            "connect_attempts",
            "smollama_openclaw_connect_attempts_total",
            "Connections to the gateway attempted.",
        ),
        (
            "connects",
            "smollama_openclaw_connects_total",
            "Handshakes the gateway accepted.",
        ),
        (
            "invokes",
            "smollama_openclaw_invokes_total",
            "node.invoke requests received.",
        ),
        (
            "invoke_errors",
            "smollama_openclaw_invoke_errors_total",
            "Invokes answered with an error.",
        ),
        (
            "frames_refused",
            "smollama_openclaw_frames_refused_total",
            "Frames from the gateway over [openclaw] max_frame_kb.",
        ),
        (
            "results_too_large",
            "smollama_openclaw_results_too_large_total",
            "Results over the gateway's maxPayload, sent as errors.",
        ),
        (
            "watchdog_closes",
            "smollama_openclaw_watchdog_closes_total",
            "Connections closed after two tick intervals of silence.",
        ),
        (
            "requests_timed_out",
            "smollama_openclaw_requests_timed_out_total",
            "Requests to the gateway without a response in time.",
        ),
        (
            "commands_refused",
            "smollama_openclaw_commands_refused_total",
            "Invokes refused with [openclaw] max_queued_commands already waiting.",
        ),
        (
            "alerts_sent",
            "smollama_openclaw_alerts_sent_total",
            "notify_human alerts the gateway acknowledged.",
        ),
        (
            "alerts_refused",
            "smollama_openclaw_alerts_refused_total",
            "Alert deliveries the gateway did not take (kept queued).",
        ),
        (
            "alerts_dropped",
            "smollama_openclaw_alerts_dropped_total",
            "Alerts dropped to stay within [openclaw] alert_queue_max/alert_queue_kb.",
        ),
        (
            "events_sent",
            "smollama_openclaw_events_sent_total",
            "Readings, changes and observations the gateway took as node events.",
        ),
        (
            "events_refused",
            "smollama_openclaw_events_refused_total",
            "Node events the gateway refused or dropped (not sent again).",
        ),
        (
            "events_dropped",
            "smollama_openclaw_events_dropped_total",
            "Node events dropped to stay within [openclaw] event_queue_max.",
        ),
    ];
    o.single(
        "smollama_openclaw_alerts_queued",
        "gauge",
        "notify_human alerts waiting for the gateway.",
        num(&s["alerts_queued"]),
    );
    o.single(
        "smollama_openclaw_events_queued",
        "gauge",
        "Readings, changes and observations waiting for the gateway.",
        num(&s["events_queued"]),
    );
    for (key, name, help) in COUNTERS {
        o.single(name, "counter", help, num(&s[key]));
    }
}

fn process(o: &mut Out, p: &Json) {
    o.single(
        "smollama_process_resident_memory_bytes",
        "gauge",
        "Resident set size of the agent process.",
        num(&p["rss_kb"]).map(|k| k * 1024.0),
    );
    o.single(
        "smollama_process_resident_memory_max_bytes",
        "gauge",
        "Peak resident set size of the agent process.",
        num(&p["hwm_kb"]).map(|k| k * 1024.0),
    );
    if let (Some(u), Some(s)) = (num(&p["cpu_user_s"]), num(&p["cpu_system_s"])) {
        o.family(
            "smollama_process_cpu_seconds_total",
            "counter",
            "CPU time the agent used, by mode.",
        );
        o.sample("smollama_process_cpu_seconds_total", &[("mode", "user")], u);
        o.sample(
            "smollama_process_cpu_seconds_total",
            &[("mode", "system")],
            s,
        );
    }
    o.single(
        "smollama_process_threads",
        "gauge",
        "Threads of the agent process.",
        num(&p["threads"]),
    );
}

fn sources(o: &mut Out, list: &[Json]) {
    type Pick = fn(&Json) -> Option<f64>;
    let families: [(&str, &str, &str, Pick); 5] = [
        (
            "smollama_source_value",
            "gauge",
            "The last value of a numeric or boolean source (booleans as 0/1), in its unit.",
            |s| num(&s["last_value"]),
        ),
        (
            "smollama_source_readings_total",
            "counter",
            "Readings the source produced since start.",
            |s| num(&s["readings"]),
        ),
        (
            "smollama_source_drops_total",
            "counter",
            "Readings of the source dropped by a full inbox.",
            |s| num(&s["drops"]),
        ),
        (
            "smollama_source_interval_seconds",
            "gauge",
            "The source's current sampling interval (the adaptive stage moves it).",
            |s| num(&s["interval_s"]),
        ),
        (
            "smollama_source_available",
            "gauge",
            "Whether the source can be read here (1) or is unavailable (0).",
            |s| num(&s["available"]),
        ),
    ];
    for (name, kind, help, pick) in families {
        let mut first = true;
        for s in list {
            let Some(v) = pick(s) else { continue };
            if first {
                o.family(name, kind, help);
                first = false;
            }
            o.sample(
                name,
                &[("source", text(&s["id"])), ("unit", text(&s["unit"]))],
                v,
            );
        }
    }
}

fn nodes(o: &mut Out, list: &[Json]) {
    if list.is_empty() {
        return;
    }
    o.family(
        "smollama_node_up",
        "gauge",
        "Whether a pipeline node runs (1: running or degraded) or not (0: starting, stopped, unavailable).",
    );
    for n in list {
        let up = matches!(text(&n["state"]), "running" | "degraded");
        let labels = [
            ("node", text(&n["name"])),
            ("role", text(&n["role"])),
            ("kind", text(&n["kind"])),
        ];
        o.sample("smollama_node_up", &labels, if up { 1.0 } else { 0.0 });
    }
    o.family(
        "smollama_node_degraded",
        "gauge",
        "Whether a running node runs with less than it should (its reason is in /api/status).",
    );
    for n in list {
        let d = text(&n["state"]) == "degraded";
        o.sample(
            "smollama_node_degraded",
            &[("node", text(&n["name"]))],
            if d { 1.0 } else { 0.0 },
        );
    }
    o.family(
        "smollama_node_events_total",
        "counter",
        "A node's own counters (a filter's passed and dropped readings, a sink's writes), by name.",
    );
    for n in list {
        if let Some(c) = n["counters"].as_object() {
            for (k, v) in c {
                if let Some(v) = num(v) {
                    o.sample(
                        "smollama_node_events_total",
                        &[("node", text(&n["name"])), ("counter", k)],
                        v,
                    );
                }
            }
        }
    }
    let queued: Vec<&Json> = list.iter().filter(|n| n["queue"].is_object()).collect();
    if !queued.is_empty() {
        o.family(
            "smollama_node_queue_depth",
            "gauge",
            "Items waiting in a node's inbox.",
        );
        for n in &queued {
            o.sample(
                "smollama_node_queue_depth",
                &[("node", text(&n["name"]))],
                num(&n["queue"]["depth"]).unwrap_or(0.0),
            );
        }
        o.family(
            "smollama_node_queue_capacity",
            "gauge",
            "The size of a node's inbox.",
        );
        for n in &queued {
            o.sample(
                "smollama_node_queue_capacity",
                &[("node", text(&n["name"]))],
                num(&n["queue"]["capacity"]).unwrap_or(0.0),
            );
        }
    }
}

fn edges(o: &mut Out, list: &[Json]) {
    if list.is_empty() {
        return;
    }
    o.family(
        "smollama_edge_queue_depth",
        "gauge",
        "Items waiting on a graph edge.",
    );
    for e in list {
        o.sample(
            "smollama_edge_queue_depth",
            &[("from", text(&e["from"])), ("to", text(&e["to"]))],
            num(&e["depth"]).unwrap_or(0.0),
        );
    }
    o.family(
        "smollama_edge_drops_total",
        "counter",
        "Items a lossy edge dropped (its oldest) because its inbox was full.",
    );
    for e in list {
        o.sample(
            "smollama_edge_drops_total",
            &[("from", text(&e["from"])), ("to", text(&e["to"]))],
            num(&e["drops"]).unwrap_or(0.0),
        );
    }
}

fn store(o: &mut Out, s: &Json) {
    o.single(
        "smollama_store_ok",
        "gauge",
        "Whether the store accepts writes (1) or is failing (0).",
        s.get("state").map(|st| if st == "ok" { 1.0 } else { 0.0 }),
    );
    o.single(
        "smollama_store_file_bytes",
        "gauge",
        "Size of the LMDB file on disk.",
        num(&s["file_bytes"]),
    );
    o.single(
        "smollama_store_used_bytes",
        "gauge",
        "Bytes of the LMDB map in use.",
        num(&s["used_bytes"]),
    );
    o.single(
        "smollama_store_map_bytes",
        "gauge",
        "The LMDB map size (the most the store can hold).",
        num(&s["map_bytes"]),
    );
    o.single(
        "smollama_store_readings",
        "gauge",
        "Raw readings stored.",
        num(&s["readings"]),
    );
    o.single(
        "smollama_store_rollups",
        "gauge",
        "Rollups stored.",
        num(&s["rollups"]),
    );
    o.single(
        "smollama_store_sources",
        "gauge",
        "Sources known to the store.",
        num(&s["sources"]),
    );
    o.single(
        "smollama_store_commits_total",
        "counter",
        "Write transactions committed.",
        num(&s["commits"]),
    );
    o.single(
        "smollama_store_readings_written_total",
        "counter",
        "Readings written since start.",
        num(&s["readings_written"]),
    );
    o.single(
        "smollama_store_failures_total",
        "counter",
        "Write transactions that failed.",
        num(&s["failures"]),
    );
    o.single(
        "smollama_store_evicted_total",
        "counter",
        "Oldest readings evicted to stay within the map.",
        num(&s["evicted_oldest"]),
    );
    o.single(
        "smollama_store_last_commit_seconds",
        "gauge",
        "How long the last commit took.",
        num(&s["last_commit_us"]).map(|u| u / 1e6),
    );
    o.single(
        "smollama_store_head_readings",
        "gauge",
        "Readings in the head, not yet folded into the per-source table.",
        num(&s["head_readings"]),
    );
    o.single(
        "smollama_store_folds_total",
        "counter",
        "Folds of the head into the per-source table.",
        num(&s["folds"]),
    );
}

fn http(o: &mut Out, h: &Json) {
    let s = &h["sessions"];
    o.single(
        "smollama_http_sessions_open",
        "gauge",
        "Dashboard sessions held ([http] max_sessions at most).",
        num(&s["open"]),
    );
    o.single(
        "smollama_http_logins_total",
        "counter",
        "Dashboard logins with the right token.",
        num(&s["logins"]),
    );
    o.single(
        "smollama_http_logins_refused_total",
        "counter",
        "Dashboard logins refused for a wrong token.",
        num(&s["logins_refused"]),
    );
    o.single(
        "smollama_http_sessions_evicted_total",
        "counter",
        "Dashboard sessions ended early by a login past max_sessions.",
        num(&s["evicted"]),
    );
    o.single(
        "smollama_http_connections_open",
        "gauge",
        "HTTP connections open now.",
        num(&h["open"]),
    );
    o.single(
        "smollama_http_connections_max",
        "gauge",
        "The HTTP connection cap ([http] max_connections).",
        num(&h["max_connections"]),
    );
    o.single(
        "smollama_http_connections_accepted_total",
        "counter",
        "HTTP connections accepted.",
        num(&h["accepted"]),
    );
    o.single(
        "smollama_http_requests_total",
        "counter",
        "HTTP requests answered.",
        num(&h["requests"]),
    );
    o.single(
        "smollama_http_connections_evicted_total",
        "counter",
        "Idle connections closed to make room for a new one.",
        num(&h["evicted_idle"]),
    );
    if let Some(r) = h["refused"].as_object() {
        o.family(
            "smollama_http_refused_total",
            "counter",
            "HTTP requests refused by a bound, by reason.",
        );
        for (k, v) in r {
            o.sample(
                "smollama_http_refused_total",
                &[("reason", k)],
                num(v).unwrap_or(0.0),
            );
        }
    }
    if let Some(t) = h["timed_out"].as_object() {
        o.family(
            "smollama_http_timeouts_total",
            "counter",
            "HTTP connections closed by a timeout, by which.",
        );
        for (k, v) in t {
            o.sample(
                "smollama_http_timeouts_total",
                &[("timeout", k)],
                num(v).unwrap_or(0.0),
            );
        }
    }
}

fn mqtt(o: &mut Out, m: &Json) {
    let state = text(&m["state"]);
    o.single(
        "smollama_mqtt_connected",
        "gauge",
        "Whether the broker connection is up (1) or not (0, or no broker configured).",
        Some(if state == "connected" { 1.0 } else { 0.0 }),
    );
    type Counter = (&'static str, &'static str, &'static str);
    const COUNTERS: [Counter; 13] = [
        (
            "connects",
            "smollama_mqtt_connects_total",
            "Connections to the broker made.",
        ),
        (
            "reconnects",
            "smollama_mqtt_reconnects_total",
            "Reconnections after a lost connection.",
        ),
        (
            "messages_in",
            "smollama_mqtt_messages_received_total",
            "Messages received.",
        ),
        (
            "messages_out",
            "smollama_mqtt_messages_sent_total",
            "Messages sent.",
        ),
        ("acked", "smollama_mqtt_acks_total", "PUBACKs received."),
        (
            "republished",
            "smollama_mqtt_republished_total",
            "Outbox messages sent again after a reconnect.",
        ),
        (
            "dropped_qos0",
            "smollama_mqtt_dropped_qos0_total",
            "QoS 0 messages dropped while the broker was away.",
        ),
        (
            "readings_in",
            "smollama_mqtt_readings_received_total",
            "Readings received from other nodes.",
        ),
        (
            "held_back",
            "smollama_mqtt_held_back_total",
            "Times the MQTT worker waited for the graph before taking the next message (backpressure).",
        ),
        (
            "malformed",
            "smollama_mqtt_malformed_total",
            "Received messages refused as malformed or too large.",
        ),
        (
            "refused_out",
            "smollama_mqtt_refused_out_total",
            "Outgoing messages refused (too large, invalid topic).",
        ),
        (
            "refused_by_broker",
            "smollama_mqtt_refused_by_broker_total",
            "QoS 1 messages the broker acknowledged with an error.",
        ),
        (
            "ts_replaced",
            "smollama_mqtt_timestamps_replaced_total",
            "Remote readings whose implausible timestamp was replaced.",
        ),
    ];
    for (key, name, help) in COUNTERS {
        o.single(name, "counter", help, num(&m[key]));
    }
    o.single(
        "smollama_mqtt_outbox_messages",
        "gauge",
        "QoS 1 messages waiting in the outbox for the broker.",
        num(&m["outbox"]["messages"]),
    );
    o.single(
        "smollama_mqtt_outbox_bytes",
        "gauge",
        "Bytes waiting in the outbox.",
        num(&m["outbox"]["bytes"]),
    );
    o.single(
        "smollama_mqtt_outbox_dropped_total",
        "counter",
        "Oldest outbox messages dropped to stay within its bounds.",
        num(&m["outbox"]["dropped"]),
    );
    o.single(
        "smollama_mqtt_outbox_dropped_in_memory_total",
        "counter",
        "QoS 1 messages dropped from memory while the store refused outbox writes.",
        num(&m["outbox"]["dropped_in_memory"]),
    );
    o.single(
        "smollama_mqtt_states_waiting",
        "gauge",
        "Retained states held in memory for the broker (the newest per topic).",
        num(&m["states"]["waiting"]),
    );
    o.single(
        "smollama_mqtt_states_replaced_total",
        "counter",
        "Retained states replaced by a newer one before the broker had them.",
        num(&m["states"]["replaced"]),
    );
    o.single(
        "smollama_mqtt_states_refused_total",
        "counter",
        "Retained states for a new topic refused past the outbox's bounds.",
        num(&m["states"]["refused"]),
    );
    o.single(
        "smollama_mqtt_remote_sources",
        "gauge",
        "Sources admitted from other nodes.",
        num(&m["remote_sources"]["sources"]),
    );
    o.single(
        "smollama_mqtt_publish_queue_bytes",
        "gauge",
        "Bytes of messages waiting for the MQTT worker (from sinks, tools, sync).",
        num(&m["publish_queue"]["bytes"]),
    );
    o.single(
        "smollama_mqtt_publish_queue_refused_total",
        "counter",
        "Messages for the broker refused because the queue to the MQTT worker was full.",
        num(&m["publish_queue"]["refused"]),
    );
    o.single(
        "smollama_mqtt_publish_queue_waits_total",
        "counter",
        "Times a sink waited for room in the queue to the MQTT worker.",
        num(&m["publish_queue"]["waited"]),
    );
    o.single(
        "smollama_mqtt_client_queue_bytes",
        "gauge",
        "Bytes handed to the MQTT client, not yet written (QoS 0) or acknowledged (QoS 1).",
        num(&m["client_queue"]["bytes"]),
    );
    o.single(
        "smollama_mqtt_client_queue_full_total",
        "counter",
        "Times a message waited for room under client_queue_kb.",
        num(&m["client_queue"]["full"]),
    );
    o.single(
        "smollama_mqtt_recent_bytes",
        "gauge",
        "Payload bytes of the recent messages kept for the agent.",
        num(&m["recent_bytes"]),
    );
    if m["ack_seconds"].is_object() {
        o.histogram(
            "smollama_mqtt_ack_seconds",
            "Seconds from a QoS 1 message leaving to its PUBACK.",
            &m["ack_seconds"],
        );
    }
}

/// The replicated log: its size and clock, and its counters.
fn sync(o: &mut Out, s: &Json) {
    if s["log_entries"].is_null() {
        return;
    }
    let gauges = [
        (
            "smollama_sync_lamport_clock",
            "lamport_clock",
            "The node's Lamport clock.",
        ),
        (
            "smollama_sync_log_entries",
            "log_entries",
            "Entries in the replicated log.",
        ),
        (
            "smollama_sync_log_bytes",
            "log_bytes",
            "Bytes of the replicated log.",
        ),
    ];
    for (name, key, help) in gauges {
        o.single(name, "gauge", help, num(&s[key]));
    }
    let counters = [
        (
            "smollama_sync_merged_total",
            "merged",
            "Remote entries merged (new ids).",
        ),
        (
            "smollama_sync_duplicates_total",
            "duplicates",
            "Remote entries skipped: their id was known.",
        ),
        (
            "smollama_sync_applied_total",
            "applied",
            "Merged entries that changed local observations or memories.",
        ),
        (
            "smollama_sync_not_applied_total",
            "not_applied",
            "Merged entries kept without a local change (older state, deleted item, unknown type).",
        ),
        (
            "smollama_sync_malformed_total",
            "malformed",
            "Sync messages or entries refused as malformed.",
        ),
        (
            "smollama_sync_refused_items_total",
            "refused_items",
            "New items from other nodes not applied: [sync] max_remote_items reached.",
        ),
        (
            "smollama_sync_published_total",
            "published",
            "Own entries published on the sync topic.",
        ),
        (
            "smollama_sync_catchup_sent_total",
            "catchup_sent",
            "Catch-up requests sent.",
        ),
        (
            "smollama_sync_catchup_answered_total",
            "catchup_answered",
            "Catch-up requests answered.",
        ),
        (
            "smollama_sync_push_accepted_total",
            "push_accepted",
            "Entries accepted by POST /api/sync/push.",
        ),
        (
            "smollama_sync_push_refused_total",
            "push_refused",
            "Pushes refused past [sync] max_push_kb.",
        ),
        (
            "smollama_sync_pulls_served_total",
            "pulls_served",
            "GET /api/sync/pull requests answered.",
        ),
        (
            "smollama_sync_peer_ok_total",
            "peer_ok",
            "HTTP sync rounds with peers that succeeded.",
        ),
        (
            "smollama_sync_peer_failed_total",
            "peer_failed",
            "HTTP sync rounds with peers that failed after retries.",
        ),
        (
            "smollama_sync_trimmed_age_total",
            "trimmed_age",
            "Log entries deleted by retention (age, every peer had them).",
        ),
        (
            "smollama_sync_trimmed_size_total",
            "trimmed_size",
            "Log entries deleted for [sync] max_log_mb.",
        ),
    ];
    for (name, key, help) in counters {
        o.single(name, "counter", help, num(&s[key]));
    }
}

/// The node directory (`crate::nodes`): nodes known and what it refused or dropped.
fn directory(o: &mut Out, d: &Json) {
    let rows = [
        (
            "smollama_nodes_known",
            "gauge",
            "known",
            "Other nodes in the node directory.",
        ),
        (
            "smollama_nodes_refused_total",
            "counter",
            "refused",
            "New nodes refused: [discovery] max_nodes were known.",
        ),
        (
            "smollama_nodes_names_refused_total",
            "counter",
            "names_refused",
            "Node names refused for their length or characters.",
        ),
        (
            "smollama_nodes_mdns_expired_total",
            "counter",
            "mdns_expired",
            "mDNS-known nodes dropped because they stopped answering (within [discovery] cache_ttl).",
        ),
        (
            "smollama_nodes_mdns_goodbyes_total",
            "counter",
            "mdns_goodbyes",
            "mDNS goodbyes received (a peer's clean stop).",
        ),
    ];
    for (name, kind, key, help) in rows {
        o.single(name, kind, help, num(&d[key]));
    }
}

fn llm(o: &mut Out, l: &Json) {
    // The agent off (or not in this build): no LLM families at all.
    if l["questions"].is_null() {
        return;
    }
    let state = text(&l["state"]);
    o.single(
        "smollama_llm_reachable",
        "gauge",
        "Whether the model server answered the last call (1) or not (0).",
        Some(if state == "reachable" { 1.0 } else { 0.0 }),
    );
    o.single(
        "smollama_llm_questions_total",
        "counter",
        "Questions the agent took.",
        num(&l["questions"]),
    );
    o.single(
        "smollama_llm_answered_total",
        "counter",
        "Questions answered.",
        num(&l["answered"]),
    );
    o.single(
        "smollama_llm_failed_total",
        "counter",
        "Questions answered with an error.",
        num(&l["failed"]),
    );
    o.single(
        "smollama_llm_model_calls_total",
        "counter",
        "Calls to the model (tool rounds).",
        num(&l["model_calls"]),
    );
    o.single(
        "smollama_llm_queued",
        "gauge",
        "Questions waiting for the model server.",
        num(&l["queued"]),
    );
    o.single(
        "smollama_llm_queue_dropped_total",
        "counter",
        "Questions dropped because the queue was full.",
        num(&l["queue_dropped"]),
    );
    o.single(
        "smollama_llm_arriving_bytes",
        "gauge",
        "Bytes of question text arrived and not yet taken up by the agent ([agent] queue_kb).",
        num(&l["arriving_bytes"]),
    );
    if let Some(t) = l["tools"].as_object() {
        o.family("smollama_llm_tool_events_total", "counter", "Tool calls by outcome (exec tools run, failed, timed out, over the output cap; writes refused).");
        for (k, v) in t {
            o.sample(
                "smollama_llm_tool_events_total",
                &[("event", k)],
                num(v).unwrap_or(0.0),
            );
        }
    }
    if l["answer_seconds"].is_object() {
        o.histogram(
            "smollama_llm_answer_seconds",
            "Seconds from a question's start to its answer, tool rounds included.",
            &l["answer_seconds"],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn families_have_help_type_and_escaped_labels() {
        let status = json!({
            "node": "n\"1", "version": "0.1.0", "uptime_s": 12.0,
            "process": { "rss_kb": 4096, "hwm_kb": 5000, "cpu_user_s": 0.5, "cpu_system_s": 0.25, "threads": 7 },
            "sources": [
                { "id": "system:cpu_temp", "unit": "celsius", "last_value": 48.5, "readings": 3, "drops": 0, "interval_s": 10.0, "available": true },
                { "id": "gpio:17", "unit": "boolean", "last_value": true, "readings": 1, "drops": 0, "interval_s": null, "available": true },
            ],
            "nodes": [], "edges": [], "store": {}, "connections": { "http": {}, "mqtt": { "state": "not configured" }, "ollama": { "state": null } },
        });
        let t = render(&status);
        assert!(
            t.contains("smollama_info{node=\"n\\\"1\",version=\"0.1.0\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("smollama_process_resident_memory_bytes 4194304\n"));
        assert!(t.contains("smollama_source_value{source=\"gpio:17\",unit=\"boolean\"} 1\n"));
        assert!(t.contains(
            "smollama_source_interval_seconds{source=\"system:cpu_temp\",unit=\"celsius\"} 10\n"
        ));
        assert!(
            !t.contains("smollama_source_interval_seconds{source=\"gpio:17\""),
            "an event source has no interval"
        );
        // Every sample's family was announced first.
        let mut typed = std::collections::HashSet::new();
        for l in t.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                let family = name
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count");
                assert!(
                    typed.contains(name) || typed.contains(family),
                    "{l} before its TYPE"
                );
            }
        }
    }
}
