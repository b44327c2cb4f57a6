//! HTTP: health, status, readings, GPIO and the agent's memory, served by a small
//! server of our own on the `http` thread (one smol executor, httparse for request
//! heads) with blocking handlers on two worker threads.
//!
//! - `server.rs`: accepting, connection limits and timeouts, dispatch;
//! - `request.rs`: bounded head reading, the head itself, queries (no I/O);
//! - `response.rs`: replies and their bytes on the wire;
//! - `routes.rs`: the one table of method + path → handler, with each route's query
//!   parameters and where it runs;
//! - `workers.rs`: the `http-work` and `http-slow` threads and their bounded queues;
//! - handlers by topic: `health.rs` (health, status), `readings.rs`, `gpio.rs`,
//!   `memory.rs`; counters in `stats.rs`.
//!
//! Every bound on what a client sends is a `[http]` setting and a counter in
//! `/api/status` (`connections.http`).

mod gpio;
mod health;
#[cfg(feature = "agent")]
mod memory;
mod readings;
mod request;
mod response;
mod routes;
mod server;
mod stats;
mod workers;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

pub use readings::value_json;
pub use stats::HttpStats;

use crate::app::Shared;

/// Connections the kernel may hold for `accept` (see `start`).
const BACKLOG: i32 = 512;

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
pub fn start(shared: Arc<Shared>) -> Result<HttpHandle, String> {
    let bind = shared.settings.http.bind;
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
        workers::start(&shared).map_err(|e| format!("cannot start HTTP workers: {e}"))?;
    let (stop, stopped) = async_channel::bounded(1);
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || server::run(listener, shared, lanes, stopped))
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
