//! How the node is: `/api/health` (answered on the `http` thread: it only awaits the
//! event loop's ping, with a timeout) and `/api/status` (built on a worker).

use std::time::Duration;

use serde_json::json;

use super::response::{Reply, ok};
use super::routes::Call;
use crate::app::Shared;
use crate::clock::{iso8601, now_us};

/// How long health waits for the event loop before calling it stalled.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /api/health`: 200 while the event loop answers a ping, 503 when it does not
/// within `PING_TIMEOUT`. Awaits without blocking the `http` thread, so other
/// connections are served meanwhile.
pub(crate) async fn health(shared: &Shared) -> Reply {
    let (tx, rx) = async_channel::bounded(1);
    let alive = shared.ping.try_send(tx).is_ok()
        && smol::future::or(async { rx.recv().await.is_ok() }, async {
            smol::Timer::after(PING_TIMEOUT).await;
            false
        })
        .await;
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
        allow: None,
    }
}

/// `GET /api/status`.
pub(crate) fn status(shared: &Shared, _: &Call) -> Reply {
    ok(crate::status::live(shared))
}
