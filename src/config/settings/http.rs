//! `[http]`: the local HTTP API and the bounds on what its clients may send.

use std::net::SocketAddr;

use super::key::{Key, Section, duration, number, problem_hint, quoted, quoted_opt};
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::Micros;

#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    /// Default `127.0.0.1:8080` (the original bound 0.0.0.0; exposing it is a choice).
    pub bind: SocketAddr,
    /// Bearer token for endpoints that change the world (GPIO writes). Empty: they are off.
    pub token: Option<String>,
    /// Set false to run without HTTP.
    pub enabled: bool,
    /// Connections served at once; past it the longest-idle one is closed, or, when none
    /// is idle, the new one gets a 503. Default 64.
    pub max_connections: u32,
    /// A connection waiting for a request (new or kept alive) closes after this. Default 30 s.
    pub idle_timeout: Micros,
    /// A request's head and body must arrive within this of its first byte, and its
    /// response be taken within it (slow clients are closed). Default 10 s.
    pub request_timeout: Micros,
    /// Longest request line (method, path, query, version) in KiB; past it 414. Default 8.
    pub max_request_line_kb: u32,
    /// Largest header block in KiB; past it 431. Default 16.
    pub max_header_kb: u32,
    /// Most header fields in one request; past it 431. Default 64.
    pub max_headers: u32,
    /// Largest request body in KiB; past it 413. Default 64.
    pub max_body_kb: u32,
    /// Event streams (`/api/events`) open at once, beside `max_connections`; past it 503.
    /// Default 32.
    pub max_streams: u32,
    /// Live events kept for streams to catch up from (and resume with `Last-Event-ID`).
    /// Default 256.
    pub events_buffer: u32,
    /// ...and at most this many KiB of them. Default 128.
    pub events_buffer_kb: u32,
    /// A stream with nothing to send writes a keep-alive comment this often. Default 15 s.
    pub events_keepalive: Micros,
    /// Dashboard sessions (login cookies) held at once; a new login past it ends the
    /// oldest. Default 8.
    pub max_sessions: u32,
    /// A dashboard session ends this long after its login. Default 12 h.
    pub session_ttl: Micros,
}

/// The placeholder before the defaults are applied (`Settings::defaults`).
pub(crate) const UNSET_BIND: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

pub(crate) const SECTION: Section = Section {
    name: "http",
    doc: "The local HTTP API. The max_* keys and timeouts bound what clients may send: each refusal is counted in /api/status (connections.http) and answered with a JSON reason naming the key to change.",
    keys: &[
        Key::new(
            Spec {
                default: "true",
                doc: "Serve the local HTTP API.",
                ..Spec::new("enabled", Want::Bool)
            },
            |s, v, _| {
                s.http.enabled = v.bool()?;
                Ok(())
            },
            |s| number(s.http.enabled),
        ),
        Key::new(
            Spec {
                default: "\"127.0.0.1:8080\"",
                doc: "Address and port to listen on. 127.0.0.1 keeps it on this machine; 0.0.0.0 exposes it on every interface.",
                ..Spec::new("bind", Want::Text)
            },
            |s, v, _| {
                let v = v.text()?;
                s.http.bind = v.parse().map_err(|_| {
                    problem_hint(
                        format!("bind = '{v}' is not an address and port"),
                        "write IP:PORT, e.g. \"127.0.0.1:8080\" (this machine only) or \"0.0.0.0:8080\" (every interface)",
                    )
                })?;
                Ok(())
            },
            |s| quoted(&s.http.bind.to_string()),
        ),
        Key {
            secret: true,
            ..Key::new(
                Spec {
                    default: "\"\"",
                    doc: "Bearer token for endpoints that change things (GPIO writes). Empty: those endpoints are off. At least 16 characters; generate one with `openssl rand -hex 16`.",
                    ..Spec::new("token", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    if v.is_empty() {
                        s.http.token = None;
                    } else if v.chars().count() < 16 || v.trim() != v {
                        return Err(problem_hint(
                            "http token is too short (at least 16 characters, no surrounding spaces)",
                            "generate one with `openssl rand -hex 16`, or leave token empty to turn off endpoints that change things",
                        ));
                    } else {
                        s.http.token = Some(v);
                    }
                    Ok(())
                },
                |s| quoted_opt(&s.http.token),
            )
        },
        Key::new(
            Spec {
                range: Some((1.0, 10_000.0)),
                default: "64",
                doc: "Connections served at once. At the cap the connection idle the longest (waiting for a request) is closed to make room; when every one is in the middle of a request, a new one gets 503 at once. Each costs a few KiB while it reads a request, and no thread.",
                hint: "connections served at once, e.g. 64 (each costs a few KiB while it reads a request)",
                ..Spec::new("max_connections", Want::WholeNumber)
            },
            |s, v, _| {
                s.http.max_connections = v.int()? as u32;
                Ok(())
            },
            |s| number(s.http.max_connections),
        ),
        Key::new(
            Spec {
                range: Some((0.1, 3600.0)),
                default: "\"30s\"",
                doc: "A connection waiting for a request (new, or kept alive after one) is closed after this.",
                ..Spec::new("idle_timeout", Want::Duration)
            },
            |s, v, _| {
                s.http.idle_timeout = v.dur()?;
                Ok(())
            },
            |s| duration(s.http.idle_timeout),
        ),
        Key::new(
            Spec {
                range: Some((0.1, 600.0)),
                default: "\"10s\"",
                doc: "A request's head and body must arrive within this of its first byte, else 408 and the connection closes (slow clients); a response not taken within it closes the connection too.",
                ..Spec::new("request_timeout", Want::Duration)
            },
            |s, v, _| {
                s.http.request_timeout = v.dur()?;
                Ok(())
            },
            |s| duration(s.http.request_timeout),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 1024.0)),
                default: "8",
                doc: "Longest request line (method, path with query, version), in KiB: past it 414.",
                hint: "KiB, e.g. 8",
                ..Spec::new("max_request_line_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.http.max_request_line_kb = v.int()? as u32;
                Ok(())
            },
            |s| number(s.http.max_request_line_kb),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 1024.0)),
                default: "16",
                doc: "Largest block of request headers, in KiB: past it 431.",
                hint: "KiB, e.g. 16",
                ..Spec::new("max_header_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.http.max_header_kb = v.int()? as u32;
                Ok(())
            },
            |s| number(s.http.max_header_kb),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 1000.0)),
                default: "64",
                doc: "Most request header fields: past it 431.",
                hint: "header fields, e.g. 64",
                ..Spec::new("max_headers", Want::WholeNumber)
            },
            |s, v, _| {
                s.http.max_headers = v.int()? as u32;
                Ok(())
            },
            |s| number(s.http.max_headers),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 16_384.0)),
                default: "64",
                doc: "Largest request body (Content-Length; chunked bodies are refused with 411), in KiB: past it 413, refused from the declared length before any of it is read.",
                hint: "KiB, e.g. 64",
                ..Spec::new("max_body_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.http.max_body_kb = v.int()? as u32;
                Ok(())
            },
            |s| number(s.http.max_body_kb),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 1024.0)),
                default: "32",
                doc: "Event streams (GET /api/events, Server-Sent Events) open at once. They are counted apart from max_connections, so open streams never take the room of ordinary requests; past it a new stream gets 503. Each costs its socket and a cursor into the shared event buffer, and no thread.",
                hint: "streams open at once, e.g. 32",
                ..Spec::new("max_streams", Want::WholeNumber)
            },
            |s, v, _| {
                s.http.max_streams = v.int()? as u32;
                Ok(())
            },
            |s| number(s.http.max_streams),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 65_536.0)),
                default: "256",
                doc: "Live events (readings, answers, observations, memories, edge changes) kept for event streams: a client that falls further behind, or reconnects after more, loses the oldest (counted in /api/status). Shared by all clients.",
                hint: "events, e.g. 256",
                ..Spec::new("events_buffer", Want::WholeNumber)
            },
            |s, v, _| {
                s.http.events_buffer = v.int()? as u32;
                Ok(())
            },
            |s| number(s.http.events_buffer),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 65_536.0)),
                default: "128",
                doc: "At most this many KiB of live events are kept (whichever of this and events_buffer is reached first); an event larger than the whole buffer is not sent (counted).",
                hint: "KiB, e.g. 128",
                ..Spec::new("events_buffer_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.http.events_buffer_kb = v.int()? as u32;
                Ok(())
            },
            |s| number(s.http.events_buffer_kb),
        ),
        Key::new(
            Spec {
                range: Some((0.1, 3600.0)),
                default: "\"15s\"",
                doc: "An event stream with nothing to send writes a keep-alive comment this often, so proxies and browsers keep it open (idle_timeout does not apply to streams).",
                ..Spec::new("events_keepalive", Want::Duration)
            },
            |s, v, _| {
                s.http.events_keepalive = v.dur()?;
                Ok(())
            },
            |s| duration(s.http.events_keepalive),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 1024.0)),
                default: "8",
                doc: "Dashboard sessions (a login with the token sets an HttpOnly cookie) held at once; a login past it ends the oldest session (counted in /api/status). Each costs about 100 bytes.",
                hint: "sessions, e.g. 8",
                ..Spec::new("max_sessions", Want::WholeNumber)
            },
            |s, v, _| {
                s.http.max_sessions = v.int()? as u32;
                Ok(())
            },
            |s| number(s.http.max_sessions),
        ),
        Key::new(
            Spec {
                range: Some((60.0, 2_592_000.0)),
                default: "\"12h\"",
                doc: "A dashboard session ends this long after its login (the browser is then read-only until the next login).",
                ..Spec::new("session_ttl", Want::Duration)
            },
            |s, v, _| {
                s.http.session_ttl = v.dur()?;
                Ok(())
            },
            |s| duration(s.http.session_ttl),
        ),
    ],
};
