//! HTTP: health, status, readings, GPIO, the agent's memory and questions for it, the
//! live event stream and the dashboard's files, served by a small server of our own on
//! the `http` thread (one smol executor, httparse for request heads) with blocking
//! handlers on two worker threads.
//!
//! - `server.rs`: accepting, connection limits and timeouts, dispatch;
//! - `request.rs`: bounded head reading, the head itself, queries, and what a handler
//!   gets of a request (`Call`) (no I/O);
//! - `response.rs`: replies and their bytes on the wire;
//! - `routes.rs`: the one table of method + path → handler, with each route's query
//!   parameters and where it runs;
//! - `workers.rs`: the `http-work` and `http-slow` threads and their bounded queues;
//! - `stream.rs`: long-lived responses (a `Handler::Stream` route), written by the
//!   connection's task on the `http` thread; `events.rs`: `/api/events` (SSE);
//! - `assets.rs`: the dashboard's files, compiled in and compressed by `build.rs`;
//! - handlers by topic: `health.rs` (health, status), `readings.rs`, `gpio.rs`,
//!   `memory.rs`, `ask.rs` (questions for the agent); `auth.rs` (who may write: the
//!   bearer token, or a dashboard session with its CSRF token, `session.rs`);
//!   counters in `stats.rs`.
//!
//! Every bound on what a client sends is a `[http]` setting and a counter in
//! `/api/status` (`connections.http`).

#[cfg(feature = "agent")]
mod ask;
mod assets;
mod auth;
mod cluster;
mod events;
mod gpio;
mod health;
#[cfg(feature = "agent")]
mod memory;
mod nodes;
mod readings;
mod request;
mod response;
mod routes;
mod server;
mod session;
mod stats;
mod stream;
#[cfg(feature = "agent")]
mod sync;
mod workers;

// What `crate::fuzzing` feeds outside bytes to (the `fuzzing` feature only).
#[cfg(feature = "fuzzing")]
pub(crate) use {
    request::{HeadScan, Limits, parse_head},
    routes::resolve,
};

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

pub use stats::HttpStats;

use serde_json::Value as Json;

use crate::config::Settings;
use crate::edges::gpio::GpioBackend;
use crate::graph::Micros;
use crate::graph::registry::Registry;
use crate::messages::{EventHub, QuestionIntake};
use crate::stages::retention_policy::RetentionParams;
use crate::store::Store;

/// What the HTTP handlers read, and nothing more, handed over by app when it starts the
/// edge. The edge imports neither app nor status: `/api/status` is whatever `status`
/// renders, and questions go to whatever `ask` is.
pub struct HttpView {
    pub settings: Settings,
    /// When the agent started (health's uptime).
    pub started: Micros,
    pub registry: Arc<Registry>,
    pub store: Arc<Store>,
    pub gpio: Arc<dyn GpioBackend>,
    /// The pipeline's retention windows (raw readings vs rollups for history).
    pub retention: Option<RetentionParams>,
    /// Health check: send a reply channel; the event loop answers it if it is alive.
    pub ping: async_channel::Sender<async_channel::Sender<()>>,
    /// This edge's counters; status reads them too.
    pub stats: Arc<HttpStats>,
    /// Renders `/api/status` (app passes the status module's live report). Runs on
    /// `http-work`.
    pub status: Box<dyn Fn() -> Json + Send + Sync>,
    /// Renders `/metrics` (Prometheus text, from the same snapshot as `status`). Runs on
    /// `http-work`.
    pub metrics: Box<dyn Fn() -> String + Send + Sync>,
    /// Where `POST /api/ask` offers questions; `None` when the agent is off.
    pub ask: Option<Arc<dyn QuestionIntake>>,
    /// The other nodes this one knows (`/api/nodes`).
    pub nodes: Arc<crate::nodes::NodeDirectory>,
    /// The live events `/api/events` streams.
    pub events: Arc<EventHub>,
    /// Dashboard logins (start empty: `Default::default()`).
    pub(crate) sessions: session::Sessions,
}

/// Connections the kernel may hold for `accept` (see `start`). A client on the LAN opens
/// connections far faster than any server accepts them; past the backlog the kernel drops
/// the SYN and the client (a health check too) waits a second for its retry. With 512,
/// 3,000 connections at once took 3 s to open and a health check now and then 1 s; with
/// 4096 (the kernel's default cap, `net.core.somaxconn`, since Linux 5.4) they are all
/// queued and drained in about 0.1 s (debug build), health's worst about 0.1 s. A queued
/// connection costs kernel memory only while it waits.
const BACKLOG: i32 = 4096;

/// The running HTTP edge; `stop` closes every connection and ends its threads.
pub struct HttpHandle {
    pub addr: SocketAddr,
    /// Dropping it ends the accept loop.
    stop: async_channel::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    workers: workers::Workers,
}

impl HttpHandle {
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
        self.workers.stop();
    }
}

/// Bind `[http] bind` (here, so a taken port fails start-up with a clear message) and
/// start the `http`, `http-work` and `http-slow` threads.
pub fn start(view: Arc<HttpView>) -> Result<HttpHandle, String> {
    let bind = view.settings.http.bind;
    let listener = TcpListener::bind(bind).map_err(|e| bind_error(bind, &e))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // std listens with a backlog of 128; a burst of connections past it waits a second
    // for a SYN retry. Listening again only sets the backlog (the kernel caps it at
    // net.core.somaxconn); the server drains it quickly, refusing past the cap.
    // SAFETY: `listen` on a socket we own; it touches no memory.
    unsafe {
        libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), BACKLOG);
    }
    let listener =
        smol::Async::new(listener).map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let (lanes, workers) =
        workers::start(&view).map_err(|e| format!("cannot start HTTP workers: {e}"))?;
    let (stop, stopped) = async_channel::bounded(1);
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || server::run(listener, view, lanes, stopped))
        .map_err(|e| e.to_string())?;
    Ok(HttpHandle {
        addr,
        stop,
        thread,
        workers,
    })
}

/// What to do when the address cannot be bound, naming the setting that chose it.
fn bind_error(bind: SocketAddr, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    const CHANGE: &str = "Set [http] bind (or SMOLLAMA_HTTP_BIND) to another address:port, or [http] enabled = false";
    match e.kind() {
        ErrorKind::AddrInUse => format!(
            "cannot listen on {bind}: address already in use; another smollama or program has it. {CHANGE}"
        ),
        ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {bind}: this machine has no such address. {CHANGE} (127.0.0.1 for this machine only, 0.0.0.0 for every interface)"
        ),
        ErrorKind::PermissionDenied => format!(
            "cannot listen on {bind}: permission denied (ports below 1024 need privileges). {CHANGE}"
        ),
        _ => format!("cannot listen on {bind}: {e}. {CHANGE}"),
    }
}
