//! The HTTP edge's counters: what happened to connections and requests, for
//! `/api/status` (`connections.http`). Every bound on what clients send is counted here
//! when it is hit.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the HTTP edge. Written by the `http` thread (and the busy count by it
/// too), read by status; relaxed atomics, as each is an independent count.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Connections open now (at most `[http] max_connections`).
    pub open: AtomicU64,
    /// Connections accepted from the listener (served or refused).
    pub accepted: AtomicU64,
    /// New connections answered 503 because `max_connections` were busy with requests.
    pub refused_at_cap: AtomicU64,
    /// Idle connections closed to make room for a new one at the cap.
    pub evicted_idle: AtomicU64,
    /// Requests whose head was read in full (whatever the answer).
    pub requests: AtomicU64,
    /// Connections closed after `idle_timeout` without a request.
    pub idle_timeouts: AtomicU64,
    /// Requests whose head and body did not arrive within `request_timeout` (408).
    pub request_timeouts: AtomicU64,
    /// Responses the client did not take within `request_timeout` (connection closed).
    pub write_timeouts: AtomicU64,
    /// 414: request line past `max_request_line_kb`.
    pub request_line_too_long: AtomicU64,
    /// 431: header block past `max_header_kb`.
    pub headers_too_large: AtomicU64,
    /// 431: more than `max_headers` header fields.
    pub too_many_headers: AtomicU64,
    /// 413: declared body past `max_body_kb`.
    pub body_too_large: AtomicU64,
    /// 411: a chunked (or otherwise transfer-coded) request body.
    pub chunked_body: AtomicU64,
    /// 400: a request head that is not HTTP/1.x.
    pub malformed: AtomicU64,
    /// 503: the worker queue for the request's handler was full.
    pub busy: AtomicU64,
    /// Event streams open now (at most `[http] max_streams`; not in `open`).
    pub streams_open: AtomicU64,
    /// Event streams opened since start.
    pub streams_opened: AtomicU64,
    /// 503: a stream asked for while `max_streams` were open.
    pub streams_refused_at_cap: AtomicU64,
    /// Streams closed because the client took none of a write within `request_timeout`.
    pub stream_write_timeouts: AtomicU64,
    /// Dashboard sessions held now (at most `[http] max_sessions`; as last counted).
    pub sessions_open: AtomicU64,
    /// Dashboard logins with the right token.
    pub logins: AtomicU64,
    /// Dashboard logins refused for a wrong token.
    pub logins_refused: AtomicU64,
    /// Sessions ended early because a login found `max_sessions` held.
    pub sessions_evicted: AtomicU64,
}

impl HttpStats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_open(&self, n: usize) {
        self.open.store(n as u64, Ordering::Relaxed);
    }
}
