//! `[openclaw]`: this node as a node of an OpenClaw gateway (docs/openclaw.md).

use std::path::PathBuf;

use super::key::{Key, Section, duration, number, path, problem_hint, quoted};
use super::mqtt::Secret;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::Micros;

/// The gateway client's settings: off unless `enabled`; the url and shared token of the
/// gateway; the reconnect backoff and the bounds on what the gateway may send.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenclawSettings {
    /// Connect to the gateway (a thread `openclaw`); off: no thread, nothing opened.
    pub enabled: bool,
    /// `ws://host:port` (or `wss://` with the `openclaw-tls` feature); empty: the
    /// gateway found by its mDNS beacon.
    pub url: String,
    /// The gateway's shared token (`gateway.auth.token`); never logged.
    pub token: Option<Secret>,
    /// A file holding the token instead (its first line), read at each connect.
    pub token_file: Option<PathBuf>,
    /// Reconnect backoff: the first delay, doubling up to `reconnect_max`.
    pub reconnect_min: Micros,
    pub reconnect_max: Micros,
    /// A request to the gateway with no response within this fails (and the connection
    /// is dropped when it was the handshake).
    pub request_timeout: Micros,
    /// Frames from the gateway larger than this many KiB are refused (the connection is
    /// closed and counted); the gateway's own `policy.maxPayload` bounds what we send.
    pub max_frame_kb: u32,
    /// Commands waiting for the command thread (one runs at a time); past this an
    /// invoke is refused with UNAVAILABLE (counted).
    pub max_queued_commands: u32,
    /// `notify_human` alerts kept while the gateway has not acknowledged them; past
    /// either bound the oldest are dropped (counted).
    pub alert_queue_max: u32,
    pub alert_queue_kb: u32,
    /// Readings, changes and observations waiting to go to the gateway as node events
    /// (in memory: they are not alerts); past this the oldest are dropped (counted).
    pub event_queue_max: u32,
    /// Send the agent's observations to the gateway as they are stored.
    pub send_observations: bool,
    /// How long `ask_gateway` waits for the gateway's agent to answer.
    pub ask_timeout: Micros,
    /// Where the gateway delivers an alert when the tool names no channel (empty: the
    /// node session's own route), and to whom (a phone number, chat id, address).
    pub notify_channel: String,
    pub notify_to: String,
}

pub(crate) const SECTION: Section = Section {
    name: "openclaw",
    doc: "This node as a node of an OpenClaw gateway (docs/openclaw.md): the gateway invokes its commands (readings, history, recall, GPIO, questions) once an operator approved it.",
    keys: &[
        Key::new(
            Spec {
                default: "false",
                doc: "Connect to the OpenClaw gateway at url as a node (a thread `openclaw`). Off: no thread is started.",
                ..Spec::new("enabled", Want::Bool)
            },
            |s, v, _| {
                s.openclaw.enabled = v.bool()?;
                Ok(())
            },
            |s| Some(s.openclaw.enabled.to_string()),
        ),
        Key {
            example: "\"ws://gateway.local:18789\"",
            ..Key::new(
                Spec {
                    doc: "The gateway's WebSocket address (its default port is 18789). wss:// needs a build with the openclaw-tls feature. Unset: the first gateway found on the LAN by its mDNS beacon _openclaw-gw._tcp (the gateway's bonjour plugin).",
                    hint: "an address such as \"ws://gateway.local:18789\"",
                    ..Spec::new("url", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    if !(v.is_empty() || v.starts_with("ws://") || v.starts_with("wss://")) {
                        return Err(problem_hint(
                            "openclaw url must start with ws:// or wss://",
                            "write the gateway's address such as \"ws://gateway.local:18789\", or leave it out to find the gateway on the LAN",
                        ));
                    }
                    s.openclaw.url = v;
                    Ok(())
                },
                |s| quoted(&s.openclaw.url).filter(|_| !s.openclaw.url.is_empty()),
            )
        },
        Key {
            example: "\"...\"",
            secret: true,
            ..Key::new(
                Spec {
                    doc: "The gateway's shared token (gateway.auth.token) for the first connect; afterwards the device token the gateway issued is used. Never logged.",
                    ..Spec::new("token", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    s.openclaw.token = (!v.trim().is_empty()).then(|| Secret(v.trim().to_string()));
                    Ok(())
                },
                |s| s.openclaw.token.as_ref().and_then(|t| quoted(&t.0)),
            )
        },
        Key {
            example: "\"/etc/smollama/openclaw-token\"",
            ..Key::new(
                Spec {
                    doc: "A file whose first line is the gateway's shared token, read at each connect (instead of token, which wins when both are set).",
                    ..Spec::new("token_file", Want::Text)
                },
                |s, v, place| {
                    let v = v.text()?;
                    s.openclaw.token_file = (!v.trim().is_empty()).then(|| place.resolve(v));
                    Ok(())
                },
                |s| s.openclaw.token_file.as_deref().and_then(path),
            )
        },
        Key::new(
            Spec {
                range: Some((0.1, 3600.0)),
                default: "\"1s\"",
                doc: "Reconnect backoff: the first delay after a failed or lost connection, doubling per failure (the gateway's reference client: 1 s).",
                ..Spec::new("reconnect_min", Want::Duration)
            },
            |s, v, _| {
                s.openclaw.reconnect_min = v.dur()?;
                Ok(())
            },
            |s| duration(s.openclaw.reconnect_min),
        ),
        Key::new(
            Spec {
                range: Some((0.1, 3600.0)),
                default: "\"30s\"",
                doc: "Reconnect backoff: the longest delay (the reference client: 30 s).",
                ..Spec::new("reconnect_max", Want::Duration)
            },
            |s, v, _| {
                s.openclaw.reconnect_max = v.dur()?;
                Ok(())
            },
            |s| duration(s.openclaw.reconnect_max),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 600.0)),
                default: "\"30s\"",
                doc: "A request to the gateway (the handshake, an invoke's result) without a response within this has failed (the reference client: 30 s).",
                ..Spec::new("request_timeout", Want::Duration)
            },
            |s, v, _| {
                s.openclaw.request_timeout = v.dur()?;
                Ok(())
            },
            |s| duration(s.openclaw.request_timeout),
        ),
        Key::new(
            Spec {
                // hello-ok alone is tens of KiB (the gateway's method list and snapshot).
                range: Some((256.0, 65536.0)),
                default: "1024",
                doc: "Frames from the gateway over this many KiB are refused: the connection is closed and reconnected (counted in /api/status, openclaw.frames_refused). What this node sends stays within the gateway's policy.maxPayload.",
                ..Spec::new("max_frame_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.openclaw.max_frame_kb = v.int()? as u32;
                Ok(())
            },
            |s| number(s.openclaw.max_frame_kb),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 1000.0)),
                default: "16",
                doc: "Invoked commands waiting for the command thread (openclaw-cmd runs one at a time, off the socket); past this an invoke is answered UNAVAILABLE (counted in /api/status, openclaw.commands_refused).",
                ..Spec::new("max_queued_commands", Want::WholeNumber)
            },
            |s, v, _| {
                s.openclaw.max_queued_commands = v.int()? as u32;
                Ok(())
            },
            |s| number(s.openclaw.max_queued_commands),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 100000.0)),
                default: "100",
                doc: "notify_human alerts kept (in the store, across restarts) until the gateway acknowledged them; past this the oldest are dropped (counted in /api/status, openclaw.alerts_dropped).",
                ..Spec::new("alert_queue_max", Want::WholeNumber)
            },
            |s, v, _| {
                s.openclaw.alert_queue_max = v.int()? as u32;
                Ok(())
            },
            |s| number(s.openclaw.alert_queue_max),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 65536.0)),
                default: "256",
                doc: "The alert queue's bound in KiB (the alerts' JSON); past this the oldest are dropped (counted).",
                ..Spec::new("alert_queue_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.openclaw.alert_queue_kb = v.int()? as u32;
                Ok(())
            },
            |s| number(s.openclaw.alert_queue_kb),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 10000.0)),
                default: "64",
                doc: "Readings (from an openclaw sink), volatile/calm changes and observations waiting to go to the gateway as node events. In memory only (they are not alerts: a restart loses them); while the gateway is away the newest this many wait, the oldest are dropped (counted in /api/status, openclaw.events_dropped).",
                ..Spec::new("event_queue_max", Want::WholeNumber)
            },
            |s, v, _| {
                s.openclaw.event_queue_max = v.int()? as u32;
                Ok(())
            },
            |s| number(s.openclaw.event_queue_max),
        ),
        Key::new(
            Spec {
                default: "true",
                doc: "Send each observation the agent stores to the gateway as a node event (the gateway's agent sees it in its main session; docs/openclaw.md).",
                ..Spec::new("send_observations", Want::Bool)
            },
            |s, v, _| {
                s.openclaw.send_observations = v.bool()?;
                Ok(())
            },
            |s| Some(s.openclaw.send_observations.to_string()),
        ),
        Key::new(
            Spec {
                range: Some((5.0, 3600.0)),
                default: "\"120s\"",
                doc: "How long the ask_gateway tool waits for the gateway's agent to answer (a model run on the gateway) before it gives up.",
                ..Spec::new("ask_timeout", Want::Duration)
            },
            |s, v, _| {
                s.openclaw.ask_timeout = v.dur()?;
                Ok(())
            },
            |s| duration(s.openclaw.ask_timeout),
        ),
        Key {
            example: "\"telegram\"",
            ..Key::new(
                Spec {
                    doc: "The gateway channel (whatsapp, telegram, ...) an alert is delivered to when notify_human names none. Empty: the route of the node's session on the gateway, if it has one.",
                    ..Spec::new("notify_channel", Want::Text)
                },
                |s, v, _| {
                    s.openclaw.notify_channel = v.text()?.trim().to_string();
                    Ok(())
                },
                |s| {
                    quoted(&s.openclaw.notify_channel)
                        .filter(|_| !s.openclaw.notify_channel.is_empty())
                },
            )
        },
        Key {
            example: "\"+15555550123\"",
            ..Key::new(
                Spec {
                    doc: "Who receives alerts on that channel (a phone number, chat id, address, as the gateway's channel names them). Empty: the session's route.",
                    ..Spec::new("notify_to", Want::Text)
                },
                |s, v, _| {
                    s.openclaw.notify_to = v.text()?.trim().to_string();
                    Ok(())
                },
                |s| quoted(&s.openclaw.notify_to).filter(|_| !s.openclaw.notify_to.is_empty()),
            )
        },
    ],
};
