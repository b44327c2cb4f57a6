//! `[sync]`: the replicated log of observations and memories, and its transports.

use super::key::{Key, Section, duration, list, number, quoted};
use super::mqtt::Secret;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::Micros;

/// The replicated log's settings: whether it runs, how long and how much it keeps, and
/// the HTTP peers for nodes that share no broker.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncSettings {
    /// Observations and memories (and their changes) become log entries shared with
    /// other nodes over MQTT (when a broker is set) and with `peers` over HTTP.
    pub enabled: bool,
    /// Entries are kept at least this long, and until every known peer has them.
    pub retention: Micros,
    /// The log's size bound: past it the oldest entries go (counted), whatever the peers.
    pub max_log_mb: u64,
    /// Observations and memories other nodes' entries may create here, at most; past it
    /// their new items are not applied (counted).
    pub max_remote_items: u64,
    /// Entries per MQTT message, catch-up answer or HTTP push/pull, at most.
    pub batch: u32,
    /// How often new local entries are published, and peers asked what we missed.
    pub publish_interval: Micros,
    pub catchup_interval: Micros,
    /// `POST /api/sync/push` bodies over this many KiB are refused (413, counted).
    pub max_push_kb: u64,
    /// HTTP peers (base URLs, e.g. `http://garage.local:8080`), synced by push then pull.
    pub peers: Vec<String>,
    /// The bearer token sent to `peers` (their `[http] token`).
    pub peer_token: Option<Secret>,
    /// Time between HTTP syncs; doubled per consecutive failure, up to an hour.
    pub interval: Micros,
    /// Attempts per HTTP request (5xx, connection errors and timeouts are retried after
    /// 1 s, 2 s, 4 s, ...).
    pub retry_max_attempts: u32,
}

pub(crate) const SECTION: Section = Section {
    name: "sync",
    doc: "",
    keys: &[
        Key::new(
            Spec {
                default: "true",
                doc: "Share observations and memories (and their changes) with other nodes: over MQTT when a broker is set, over HTTP with `peers`. Needs the agent feature.",
                ..Spec::new("enabled", Want::Bool)
            },
            |s, v, _| {
                s.sync.enabled = v.bool()?;
                Ok(())
            },
            |s| Some(s.sync.enabled.to_string()),
        ),
        Key::new(
            Spec {
                range: Some((60.0, 3650.0 * 86400.0)),
                default: "\"7d\"",
                doc: "Log entries are kept at least this long, and until every known peer has them (whichever is later; max_log_mb bounds both).",
                ..Spec::new("retention", Want::Duration)
            },
            |s, v, _| {
                s.sync.retention = v.dur()?;
                Ok(())
            },
            |s| duration(s.sync.retention),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 4096.0)),
                default: "16",
                doc: "The log's size bound in MiB: past it the oldest entries are deleted (counted in status) whether or not every peer has them.",
                ..Spec::new("max_log_mb", Want::WholeNumber)
            },
            |s, v, _| {
                s.sync.max_log_mb = v.int()? as u64;
                Ok(())
            },
            |s| number(s.sync.max_log_mb),
        ),
        Key::new(
            Spec {
                range: Some((0.0, 1e9)),
                default: "100000",
                doc: "Observations and memories other nodes' entries may create on this node, at most (outside input is bounded); past it their new items are kept in the log but not applied, counted in status (sync.refused_items).",
                ..Spec::new("max_remote_items", Want::WholeNumber)
            },
            |s, v, _| {
                s.sync.max_remote_items = v.int()? as u64;
                Ok(())
            },
            |s| number(s.sync.max_remote_items),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 1000.0)),
                default: "100",
                doc: "Entries per MQTT message, catch-up answer and HTTP push or pull, at most.",
                ..Spec::new("batch", Want::WholeNumber)
            },
            |s, v, _| {
                s.sync.batch = v.int()? as u32;
                Ok(())
            },
            |s| number(s.sync.batch),
        ),
        Key::new(
            Spec {
                range: Some((0.1, 3600.0)),
                default: "\"1s\"",
                doc: "New local entries are published on <[mqtt] topic_prefix>/sync as soon as their change commits (the store wakes sync; an idle node does not look); a backlog larger than one round of batches continues after this pause.",
                ..Spec::new("publish_interval", Want::Duration)
            },
            |s, v, _| {
                s.sync.publish_interval = v.dur()?;
                Ok(())
            },
            |s| duration(s.sync.publish_interval),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 86400.0)),
                default: "\"5m\"",
                doc: "How often every known node is asked (over MQTT) for its entries since the last one received from it; also on every connect. Nothing depends on the broker keeping messages.",
                ..Spec::new("catchup_interval", Want::Duration)
            },
            |s, v, _| {
                s.sync.catchup_interval = v.dur()?;
                Ok(())
            },
            |s| duration(s.sync.catchup_interval),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 65536.0)),
                default: "1024",
                doc: "POST /api/sync/push bodies over this many KiB are refused with 413 (counted). [http] max_body_kb bounds every body before this.",
                ..Spec::new("max_push_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.sync.max_push_kb = v.int()? as u64;
                Ok(())
            },
            |s| number(s.sync.max_push_kb),
        ),
        Key {
            example: "[\"http://garage.local:8080\"]",
            ..Key::new(
                Spec {
                    doc: "Nodes that share no broker with this one: base URLs synced over HTTP (push, then pull; the Python original's protocol). In the environment: comma-separated.",
                    ..Spec::new("peers", Want::TextList)
                },
                |s, v, _| {
                    s.sync.peers = v
                        .list()?
                        .into_iter()
                        .map(|p| p.trim().trim_end_matches('/').to_string())
                        .filter(|p| !p.is_empty())
                        .collect();
                    Ok(())
                },
                |s| list(&s.sync.peers),
            )
        },
        Key {
            example: "\"...\"",
            secret: true,
            ..Key::new(
                Spec {
                    doc: "The bearer token sent to peers (their [http] token); never logged.",
                    ..Spec::new("peer_token", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    s.sync.peer_token = (!v.is_empty()).then_some(Secret(v));
                    Ok(())
                },
                |s| s.sync.peer_token.as_ref().and_then(|p| quoted(&p.0)),
            )
        },
        Key::new(
            Spec {
                range: Some((1.0, 86400.0)),
                default: "\"5m\"",
                doc: "Time between HTTP syncs with peers; after consecutive failures it doubles per failure, up to an hour.",
                ..Spec::new("interval", Want::Duration)
            },
            |s, v, _| {
                s.sync.interval = v.dur()?;
                Ok(())
            },
            |s| duration(s.sync.interval),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 10.0)),
                default: "3",
                doc: "Attempts per HTTP sync request: server errors, connection errors and timeouts are retried after 1 s, 2 s, 4 s, ...; other errors are not.",
                ..Spec::new("retry_max_attempts", Want::WholeNumber)
            },
            |s, v, _| {
                s.sync.retry_max_attempts = v.int()? as u32;
                Ok(())
            },
            |s| number(s.sync.retry_max_attempts),
        ),
    ],
};
