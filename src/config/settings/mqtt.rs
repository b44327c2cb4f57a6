//! `[mqtt]`: the broker, topics, the QoS 1 outbox and the bounds on what other nodes send.

use std::path::PathBuf;

use super::key::{Key, Section, duration, number, path, problem_hint, quoted, quoted_opt};
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::Micros;

/// A secret (password, token) that never shows up in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MqttSettings {
    /// Broker host name or address. Empty: MQTT is off (mqtt sinks and sources are skipped
    /// with one log line).
    pub broker: Option<String>,
    pub port: u16,
    /// Default `smollama-<node name>`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub keepalive: Micros,
    /// Start a clean session on every connect (default). False asks the broker to keep
    /// subscriptions and QoS 1 messages for us while we are away.
    pub clean_session: bool,
    /// Topic prefix for everything this node publishes. Default `smollama/<node name>`.
    pub topic_prefix: Option<String>,
    /// Prefix for everything but the batches (status, state, answers, observations, GPIO
    /// commands), e.g. to keep them off a Python master's `smollama/#`. Default: the
    /// topic prefix.
    pub state_prefix: Option<String>,
    /// Reconnect backoff: first delay, doubling (with jitter) up to the maximum.
    pub reconnect_min: Micros,
    pub reconnect_max: Micros,
    /// Bounds of the QoS 1 outbox in the store; beyond them the oldest message is dropped
    /// (and counted).
    pub outbox_max_messages: u64,
    pub outbox_max_mb: u64,
    /// Largest MQTT payload accepted or sent, KiB. The node declares a maximum packet size
    /// above it (see `edges::mqtt::connection::max_packet_size`).
    pub max_payload_kb: u64,
    /// Sources learned from other nodes' messages, at most, in total and per sending node
    /// (bare topics count as one node, `mqtt`). New names past either are refused, counted.
    pub max_remote_sources: u32,
    pub max_sources_per_node: u32,
    /// A remote reading's `ts` older than this, or more than `max_clock_ahead` ahead of
    /// this node's clock, is replaced by the arrival time (counted).
    pub max_reading_age: Micros,
    pub max_clock_ahead: Micros,
    /// QoS 1 messages handed to the client before their acknowledgements come back.
    pub inflight: u16,
    /// Messages kept per topic for the agent's `get_recent_messages` tool.
    pub recent_per_topic: usize,
    /// Bytes of payloads those recent messages may hold in all, KiB.
    pub recent_max_kb: usize,
    /// KiB of messages that may wait between the sinks, tools and sync and the MQTT
    /// worker (`messages::PublishTx`).
    pub publish_queue_kb: u64,
    /// KiB of messages handed to the MQTT client and not yet written (QoS 0) or
    /// acknowledged (QoS 1).
    pub client_queue_kb: u64,
    /// Home Assistant MQTT discovery (on by default when a broker is configured).
    pub discovery: bool,
    pub discovery_prefix: String,
    /// CA certificate for TLS (needs the `mqtt-tls` build feature).
    pub ca_file: Option<PathBuf>,
}

fn non_empty(v: String) -> Option<String> {
    if v.is_empty() { None } else { Some(v) }
}

pub(crate) const SECTION: Section = Section {
    name: "mqtt",
    doc: "",
    keys: &[
        Key::new(
            Spec {
                default: "\"\"",
                doc: "The broker's host name or address. Empty (the default): MQTT is off, and the pipeline's mqtt sinks and sources are skipped with one log line each.",
                ..Spec::new("broker", Want::Text)
            },
            |s, v, _| {
                let v = v.text()?;
                if v.contains("://") || v.contains('/') {
                    return Err(problem_hint(
                        format!("broker = '{v}' should be a host name or address only"),
                        "write e.g. broker = \"192.168.1.10\" and the port in port = 1883",
                    ));
                }
                s.mqtt.broker = non_empty(v.trim().to_string());
                Ok(())
            },
            |s| quoted(s.mqtt.broker.as_deref().unwrap_or("")),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 65535.0)),
                default: "1883",
                doc: "The broker's port.",
                hint: "the MQTT port, usually 1883 (8883 with TLS)",
                ..Spec::new("port", Want::WholeNumber)
            },
            |s, v, _| {
                s.mqtt.port = v.int()? as u16;
                Ok(())
            },
            |s| number(s.mqtt.port),
        ),
        Key {
            example: "\"smollama-greenhouse\"",
            ..Key::new(
                Spec {
                    doc: "The MQTT client id: up to 64 characters without + # /. Default: smollama-<node name>.",
                    ..Spec::new("client_id", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    if v.chars().count() > 64 || v.contains(['+', '#', '/']) {
                        return Err(problem_hint(
                            format!("client_id '{v}' is not valid"),
                            "use up to 64 characters without + # /, or leave it out for smollama-<node>",
                        ));
                    }
                    s.mqtt.client_id = non_empty(v);
                    Ok(())
                },
                |s| quoted(&s.mqtt_client_id()),
            )
        },
        Key {
            example: "\"smollama\"",
            ..Key::new(
                Spec {
                    doc: "User name for the broker; the credentials are used when both are set, and never logged.",
                    ..Spec::new("username", Want::Text)
                },
                |s, v, _| {
                    s.mqtt.username = non_empty(v.text()?);
                    Ok(())
                },
                |s| quoted_opt(&s.mqtt.username),
            )
        },
        Key {
            example: "\"...\"",
            secret: true,
            ..Key::new(
                Spec {
                    doc: "Password for the broker (never logged, shown as *** by `smollama config check`).",
                    ..Spec::new("password", Want::Text)
                },
                |s, v, _| {
                    s.mqtt.password = non_empty(v.text()?).map(Secret);
                    Ok(())
                },
                |s| s.mqtt.password.as_ref().and_then(|p| quoted(&p.0)),
            )
        },
        Key::new(
            Spec {
                range: Some((5.0, 3600.0)),
                default: "\"60s\"",
                doc: "Keepalive interval.",
                ..Spec::new("keepalive", Want::Duration)
            },
            |s, v, _| {
                s.mqtt.keepalive = v.dur()?;
                Ok(())
            },
            |s| duration(s.mqtt.keepalive),
        ),
        Key::new(
            Spec {
                default: "true",
                doc: "True: a fresh session on every connect. False: the broker keeps our subscriptions and queued QoS 1 messages while we are away (MQTT 5: a session that never expires).",
                ..Spec::new("clean_session", Want::Bool)
            },
            |s, v, _| {
                s.mqtt.clean_session = v.bool()?;
                Ok(())
            },
            |s| number(s.mqtt.clean_session),
        ),
        Key {
            example: "\"smollama/greenhouse\"",
            ..Key::new(
                Spec {
                    doc: "Prefix of every topic this node publishes (see docs/mqtt.md). Default: smollama/<node name>.",
                    ..Spec::new("topic_prefix", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?.trim_end_matches('/').to_string();
                    if v.is_empty() || v.contains(['+', '#']) || v.starts_with('/') {
                        return Err(problem_hint(
                            format!("topic_prefix '{v}' is not a valid topic prefix"),
                            "use levels without wildcards, e.g. \"smollama/greenhouse\" (the default is smollama/<node>)",
                        ));
                    }
                    s.mqtt.topic_prefix = Some(v);
                    Ok(())
                },
                |s| quoted(&s.mqtt_prefix()),
            )
        },
        Key {
            example: "\"nodes/greenhouse\"",
            ..Key::new(
                Spec {
                    doc: "Prefix of everything but the batches: status, state topics, answers, observations and GPIO command topics (Home Assistant discovery then points there). Set it outside smollama/ when a Python smollama master shares the broker: it runs its LLM for every message under smollama/ that is not a batch. Default: topic_prefix.",
                    ..Spec::new("state_prefix", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?.trim_end_matches('/').to_string();
                    if v.contains(['+', '#']) || v.starts_with('/') || v.starts_with('$') {
                        return Err(problem_hint(
                            format!("state_prefix '{v}' is not a valid topic prefix"),
                            "use levels without wildcards outside smollama/, e.g. \"nodes/greenhouse\"; leave it out to use topic_prefix",
                        ));
                    }
                    s.mqtt.state_prefix = non_empty(v);
                    Ok(())
                },
                |s| quoted(&s.mqtt_state_prefix()),
            )
        },
        Key::new(
            Spec {
                range: Some((0.1, 600.0)),
                default: "\"1s\"",
                doc: "Reconnect backoff: the first wait, doubling (with jitter) up to reconnect_max.",
                hint: "at most reconnect_max",
                ..Spec::new("reconnect_min", Want::Duration)
            },
            |s, v, _| {
                s.mqtt.reconnect_min = v.dur()?;
                Ok(())
            },
            |s| duration(s.mqtt.reconnect_min),
        ),
        Key::new(
            Spec {
                range: Some((0.1, 3600.0)),
                default: "\"60s\"",
                doc: "Reconnect backoff: the longest wait.",
                ..Spec::new("reconnect_max", Want::Duration)
            },
            |s, v, _| {
                s.mqtt.reconnect_max = v.dur()?;
                Ok(())
            },
            |s| duration(s.mqtt.reconnect_max),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 100_000_000.0)),
                default: "100000",
                doc: "QoS 1 messages wait in the store's outbox until the broker acknowledges them; beyond this many (or outbox_max_mb) the oldest are dropped (and counted in status). Retained states wait in memory instead, the newest per topic, for at most this many topics (and outbox_max_mb); a new topic past them is refused (counted as states.refused).",
                hint: "how many QoS 1 messages may wait for the broker",
                ..Spec::new("outbox_max_messages", Want::WholeNumber)
            },
            |s, v, _| {
                s.mqtt.outbox_max_messages = v.int()? as u64;
                Ok(())
            },
            |s| number(s.mqtt.outbox_max_messages),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 4096.0)),
                default: "16",
                doc: "MiB of QoS 1 messages that may wait in the outbox; beyond it the oldest are dropped (and counted). It bounds what waits in memory too: QoS 0 messages for room in the client (with at most 1,024 of them) and QoS 1 messages held while the store refuses writes (10,000).",
                hint: "MiB of QoS 1 messages that may wait for the broker; keep it well under [store] map_size_mb",
                ..Spec::new("outbox_max_mb", Want::WholeNumber)
            },
            |s, v, _| {
                s.mqtt.outbox_max_mb = v.int()? as u64;
                Ok(())
            },
            |s| number(s.mqtt.outbox_max_mb),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 262_144.0)),
                default: "256",
                doc: "Largest payload sent or accepted, in KiB; larger ones are refused and counted (`too_large`, per topic in `malformed_by_topic`), and the connection stays up. The node declares (MQTT 5) a maximum packet size of 4x this, at most 1 MiB more: the broker drops larger messages for this node without sending them, so those are not counted.",
                hint: "the largest payload in KiB, e.g. 256",
                ..Spec::new("max_payload_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.mqtt.max_payload_kb = v.int()? as u64;
                Ok(())
            },
            |s| number(s.mqtt.max_payload_kb),
        ),
        Key::new(
            Spec {
                range: Some((0.0, 1_000_000.0)),
                default: "5000",
                doc: "Sources learned from other nodes' messages, at most, in total. Each costs about 0.5 KiB of memory for as long as the process runs. New names past it (or past max_sources_per_node) are refused and counted (`remote_sources` in status); known ones keep updating.",
                hint: "sources learned from other nodes, in total, e.g. 5000 (each costs about 0.5 KiB)",
                ..Spec::new("max_remote_sources", Want::WholeNumber)
            },
            |s, v, _| {
                s.mqtt.max_remote_sources = v.int()? as u32;
                Ok(())
            },
            |s| number(s.mqtt.max_remote_sources),
        ),
        Key::new(
            Spec {
                range: Some((0.0, 1_000_000.0)),
                default: "1000",
                doc: "Sources learned from one sending node, at most (readings on bare topics, `mqtt:<topic>`, count as one node, \"mqtt\").",
                hint: "sources learned from one other node, e.g. 1000",
                ..Spec::new("max_sources_per_node", Want::WholeNumber)
            },
            |s, v, _| {
                s.mqtt.max_sources_per_node = v.int()? as u32;
                Ok(())
            },
            |s| number(s.mqtt.max_sources_per_node),
        ),
        Key::new(
            Spec {
                range: Some((60.0, 3650.0 * 86_400.0)),
                default: "\"30d\"",
                doc: "A remote reading's `ts` older than this is replaced by the arrival time (counted as `ts_replaced`).",
                ..Spec::new("max_reading_age", Want::Duration)
            },
            |s, v, _| {
                s.mqtt.max_reading_age = v.dur()?;
                Ok(())
            },
            |s| duration(s.mqtt.max_reading_age),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 86_400.0)),
                default: "\"5m\"",
                doc: "A remote reading's `ts` more than this ahead of this node's clock is replaced by the arrival time (counted as `ts_replaced`).",
                ..Spec::new("max_clock_ahead", Want::Duration)
            },
            |s, v, _| {
                s.mqtt.max_clock_ahead = v.dur()?;
                Ok(())
            },
            |s| duration(s.mqtt.max_clock_ahead),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 1000.0)),
                default: "64",
                doc: "QoS 1 messages handed to the client before their acknowledgements come back.",
                hint: "QoS 1 messages in flight, e.g. 64",
                ..Spec::new("inflight", Want::WholeNumber)
            },
            |s, v, _| {
                s.mqtt.inflight = v.int()? as u16;
                Ok(())
            },
            |s| number(s.mqtt.inflight),
        ),
        Key::new(
            Spec {
                range: Some((0.0, 10_000.0)),
                default: "100",
                doc: "Messages kept per topic in memory for the agent (256 topics at most, each message cut to 2 KiB, recent_max_kb in all).",
                hint: "messages kept per topic for the agent, e.g. 100",
                ..Spec::new("recent_per_topic", Want::WholeNumber)
            },
            |s, v, _| {
                s.mqtt.recent_per_topic = v.int()? as usize;
                Ok(())
            },
            |s| number(s.mqtt.recent_per_topic),
        ),
        Key::new(
            Spec {
                range: Some((0.0, 65_536.0)),
                default: "1024",
                doc: "KiB the recent messages kept for the agent may hold in all (their payloads; the oldest go first). 0 keeps none.",
                hint: "KiB of recent messages for the agent, e.g. 1024",
                ..Spec::new("recent_max_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.mqtt.recent_max_kb = v.int()? as usize;
                Ok(())
            },
            |s| number(s.mqtt.recent_max_kb),
        ),
        Key::new(
            Spec {
                range: Some((16.0, 1_048_576.0)),
                default: "1024",
                doc: "KiB of messages that may wait for the MQTT worker (from the mqtt sinks, the agent's publish tool and answers, sync), besides at most 1,024 of them. Past it a sink waits (its lossy inbox keeps the newest readings) and a tool, answer or sync message is refused (counted as `publish_queue.refused`, a warn line at most once a minute).",
                hint: "KiB of messages on their way to the MQTT worker, e.g. 1024",
                ..Spec::new("publish_queue_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.mqtt.publish_queue_kb = v.int()? as u64;
                Ok(())
            },
            |s| number(s.mqtt.publish_queue_kb),
        ),
        Key::new(
            Spec {
                range: Some((16.0, 1_048_576.0)),
                default: "1024",
                doc: "KiB of messages handed to the MQTT client and not yet written to the socket (QoS 0) or acknowledged by the broker (QoS 1), besides inflight's count. Past it QoS 1 messages wait in the outbox and QoS 0 messages in memory (bounded by outbox_max_mb, the oldest dropped and counted as `dropped_qos0`, a warn line at most once a minute): a stalled connection holds no more than this.",
                hint: "KiB of messages in the MQTT client, e.g. 1024",
                ..Spec::new("client_queue_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.mqtt.client_queue_kb = v.int()? as u64;
                Ok(())
            },
            |s| number(s.mqtt.client_queue_kb),
        ),
        Key::new(
            Spec {
                default: "true",
                doc: "Home Assistant MQTT discovery: a sensor per numeric source, a binary_sensor per boolean, a switch per GPIO output (needs an mqtt sink with format = \"state\").",
                ..Spec::new("discovery", Want::Bool)
            },
            |s, v, _| {
                s.mqtt.discovery = v.bool()?;
                Ok(())
            },
            |s| number(s.mqtt.discovery),
        ),
        Key::new(
            Spec {
                default: "\"homeassistant\"",
                doc: "Home Assistant's discovery topic prefix.",
                ..Spec::new("discovery_prefix", Want::Text)
            },
            |s, v, _| {
                let v = v.text()?;
                if v.is_empty() || v.contains(['+', '#']) {
                    return Err(problem_hint(
                        format!("discovery_prefix '{v}' is not valid"),
                        "Home Assistant's default is \"homeassistant\"",
                    ));
                }
                s.mqtt.discovery_prefix = v;
                Ok(())
            },
            |s| quoted(&s.mqtt.discovery_prefix),
        ),
        Key {
            example: "\"/etc/ssl/certs/my-broker-ca.pem\"",
            ..Key::new(
                Spec {
                    doc: "CA certificate for TLS to the broker (needs a build with --features mqtt-tls).",
                    ..Spec::new("ca_file", Want::Text)
                },
                |s, v, place| {
                    let v = v.text()?;
                    if !cfg!(feature = "mqtt-tls") && !v.is_empty() {
                        return Err(problem_hint(
                            "ca_file is set but this smollama was built without TLS",
                            "rebuild with `cargo build --release --features mqtt-tls`, or use a broker on the LAN without TLS",
                        ));
                    }
                    s.mqtt.ca_file = non_empty(v).map(|p| place.resolve(p));
                    Ok(())
                },
                |s| s.mqtt.ca_file.as_deref().and_then(path),
            )
        },
    ],
};
