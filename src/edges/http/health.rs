//! How the node is: `/api/health` (answered on the `http` thread: it only awaits the
//! event loop's ping, with a timeout) and `/api/status` (built on a worker).

use std::cell::RefCell;
use std::time::Duration;

use serde_json::json;

use super::HttpView;
use super::request::Call;
use super::response::{Reply, ok, text};
use crate::clock::{iso8601, now_us};

/// How long health waits for the event loop before calling it stalled.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Pings the event loop for `/api/health`. Health checks that arrive while a ping is
/// out share it (the loop's ping queue is small, and one answer proves the loop turns
/// for all of them); the next check after an answer sends a fresh one. Lives on the
/// `http` thread.
#[derive(Default)]
pub(crate) struct Pinger {
    /// The reply channel of the ping out now; closed once the loop has answered.
    in_flight: RefCell<Option<async_channel::Receiver<()>>>,
}

impl Pinger {
    /// Whether the event loop answers within `PING_TIMEOUT`. Awaits without blocking
    /// the `http` thread.
    async fn loop_alive(&self, view: &HttpView) -> bool {
        let reply = {
            let mut in_flight = self.in_flight.borrow_mut();
            match &*in_flight {
                Some(rx) if !rx.is_closed() => rx.clone(),
                _ => {
                    let (tx, rx) = async_channel::bounded(1);
                    if view.ping.try_send(tx).is_err() {
                        return false;
                    }
                    *in_flight = Some(rx.clone());
                    rx
                }
            }
        };
        // The loop answers by sending and dropping its end: one waiter gets the message,
        // the others see the channel closed. Either way it answered.
        smol::future::or(
            async {
                let _ = reply.recv().await;
                true
            },
            async {
                smol::Timer::after(PING_TIMEOUT).await;
                false
            },
        )
        .await
    }
}

/// `GET /api/health`: 200 while the event loop answers a ping, 503 when it does not
/// within `PING_TIMEOUT`.
pub(crate) async fn health(view: &HttpView, pinger: &Pinger) -> Reply {
    let alive = pinger.loop_alive(view).await;
    let body = json!({
        "status": if alive { "ok" } else { "stalled" },
        "node": view.settings.node.name,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": ((now_us() - view.started) as f64 / 1e6).round(),
        "timestamp": iso8601(now_us()),
    });
    Reply {
        code: if alive { 200 } else { 503 },
        body,
        allow: None,
        raw: None,
        set_cookie: None,
    }
}

/// `GET /api/status`.
pub(crate) fn status(view: &HttpView, _: &Call) -> Reply {
    ok((view.status)())
}

/// `GET /metrics`: the Prometheus text exposition format, version 0.0.4.
pub(crate) fn metrics(view: &HttpView, _: &Call) -> Reply {
    text("text/plain; version=0.0.4; charset=utf-8", (view.metrics)())
}
