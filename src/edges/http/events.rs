//! `GET /api/events`: the live events of `messages::EventHub` as Server-Sent Events.
//! Each stream holds a cursor into the shared ring (the last id it sent) and nothing
//! else of the events; it resumes after `Last-Event-ID` (or `?last_event_id=`, for
//! EventSource polyfills that cannot set the header), sends `: keep-alive` when idle for
//! `[http] events_keepalive`, and says `: lost N events` when it fell behind the ring.
//! Its first event is `hello` (no id: `{newest_id, keepalive_ms}`), so a page can tell
//! a stream that works from one a buffering proxy holds back.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::HttpView;
use super::request::Call;
use super::response::{Reply, err};
use super::stream::StreamBody;
use crate::clock::now_us;
use crate::messages::{ClientStats, EventHub};

pub(crate) const QUERY: &[&str] = &["last_event_id"];

/// Bytes of events written to a client at a time: a client far behind catches up in
/// steps of this, and this is all a stream buffers.
const BATCH: usize = 16 * 1024;
/// How long a browser waits before reconnecting (`retry:`), in milliseconds.
const RETRY_MS: u32 = 2000;

/// One client's stream: a cursor and its counters. Leaves the hub's client list when
/// dropped (the connection closed).
struct Sse {
    hub: Arc<EventHub>,
    client: Arc<ClientStats>,
    cursor: u64,
    keepalive: Duration,
    started: bool,
}

/// Open a stream for the request (the route's handler).
pub(crate) fn open(view: &HttpView, call: &Call) -> Result<Box<dyn StreamBody>, Reply> {
    let raw = call
        .conditions
        .last_event_id
        .as_deref()
        .or(call.query.get("last_event_id"));
    let last = match raw.map(str::trim) {
        None | Some("") => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            err(
                400,
                format!(
                    "Last-Event-ID must be an event id (a whole number), got '{}'",
                    super::request::short(v)
                ),
            )
        })?),
    };
    let hub = view.events.clone();
    let cursor = hub.start_cursor(last);
    let client = hub.join(now_us());
    Ok(Box::new(Sse {
        hub,
        client,
        cursor,
        keepalive: Duration::from_micros(view.settings.http.events_keepalive.max(1) as u64),
        started: false,
    }))
}

impl Drop for Sse {
    fn drop(&mut self) {
        self.hub.leave(&self.client);
    }
}

impl StreamBody for Sse {
    fn content_type(&self) -> &'static str {
        "text/event-stream; charset=utf-8"
    }

    fn next<'a>(&'a mut self, out: &'a mut Vec<u8>) -> Pin<Box<dyn Future<Output = bool> + 'a>> {
        Box::pin(async move {
            if !self.started {
                // The reconnect delay, and a first event (without an id, so it does not
                // move the browser's Last-Event-ID): a page that does not see it soon
                // is behind a proxy that buffers, and polls instead.
                self.started = true;
                let _ = write!(
                    out,
                    "retry: {RETRY_MS}\nevent: hello\ndata: {{\"newest_id\":{},\"keepalive_ms\":{}}}\n\n",
                    self.hub.newest(),
                    self.keepalive.as_millis()
                );
                return true;
            }
            loop {
                // Listen before looking, so an event in between still wakes us.
                let listener = self.hub.listen();
                let got = self.hub.read_after(self.cursor, out, BATCH);
                if got.events > 0 || got.lost > 0 {
                    if got.lost > 0 {
                        let note = format!(": lost {} events (fell behind)\n\n", got.lost);
                        out.splice(0..0, note.into_bytes());
                    }
                    self.hub.count(&self.client, got.events, got.lost);
                    self.cursor = got.cursor;
                    return true;
                }
                let woken = smol::future::or(
                    async {
                        listener.await;
                        true
                    },
                    async {
                        smol::Timer::after(self.keepalive).await;
                        false
                    },
                )
                .await;
                if !woken {
                    out.extend_from_slice(b": keep-alive\n\n");
                    return true;
                }
            }
        })
    }
}
