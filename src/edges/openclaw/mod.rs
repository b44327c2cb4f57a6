//! This node as a node of an OpenClaw gateway (docs/openclaw.md): a WebSocket client on
//! its own thread `openclaw` that speaks the gateway's protocol v3–v4 as a headless
//! Linux node (`node-host`), signs the challenge with its Ed25519 device identity, keeps
//! the device token, and answers `node.invoke.request`s with the commands app hands in
//! ([`NodeCommands`], over the agent's tools and intake: the edge never imports them).
//!
//! - `frame.rs`: the JSON frames and the size bound on what we send
//! - `identity.rs`: the key, the device id, the 0600 file with the device token
//! - `handshake.rs`: the challenge, the signed connect, hello-ok
//! - `client.rs`: the thread: connect, serve, reconnect
//! - `backoff.rs`, `watchdog.rs`, `requests.rs`: reconnect delays, tick liveness,
//!   requests with ids and timeouts
//! - `discover.rs`: the gateway found by its mDNS beacon when no url is set
//! - `commands.rs`: the command names and the door to run them
//! - `alerts.rs`: queued `notify_human` alerts sent as `agent.request`, in order
//! - `worker.rs`: the thread `openclaw-cmd` that runs the commands off the socket
//! - `events.rs`: readings, changes and observations sent as `notifications.changed`
//! - `stats.rs`: what status shows

mod alerts;
mod backoff;
mod client;
pub mod commands;
mod discover;
pub(crate) mod events;
// Visible to `crate::fuzzing` only in fuzzing builds.
#[cfg(feature = "fuzzing")]
pub(crate) mod frame;
#[cfg(not(feature = "fuzzing"))]
mod frame;
#[cfg(feature = "fuzzing")]
pub(crate) mod handshake;
#[cfg(not(feature = "fuzzing"))]
mod handshake;
mod identity;
mod requests;
pub mod stats;
mod watchdog;
mod worker;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;

pub use commands::{InvokeError, Invoked, NodeCommands};
pub use stats::OpenclawStats;

use crate::config::settings::OpenclawSettings;

/// What the client needs from app.
pub struct Parts {
    pub settings: OpenclawSettings,
    /// Shown to the operator as the node's display name.
    pub node_name: String,
    /// Where the device identity file lives (the store's directory).
    pub store_dir: PathBuf,
    pub commands: Arc<dyn NodeCommands>,
    /// Where `notify_human` queues alerts (`store::alerts`).
    pub store: Arc<crate::store::Store>,
    /// Readings (openclaw sinks), changes and observations to send as node events.
    pub events: Arc<crate::messages::NodeEvents>,
}

/// The running client: its status and how to stop it.
pub struct Handle {
    pub stats: Arc<OpenclawStats>,
    stop: UnixStream,
    thread: std::thread::JoinHandle<()>,
}

impl Handle {
    /// Close the connection and end the thread.
    pub fn stop(self) {
        let _ = (&self.stop).write_all(&[1]);
        if self.thread.join().is_err() {
            log::error!("openclaw thread panicked");
        }
    }
}

/// Start the `openclaw` thread (the identity file is read or made first, so a store
/// directory we cannot write is an error here, not a retry loop).
pub fn start(parts: Parts) -> Result<Handle, String> {
    let device = identity::DeviceFile::open(&parts.store_dir)?;
    let stats = Arc::new(OpenclawStats {
        url: std::sync::Mutex::new(parts.settings.url.clone()),
        store: Some(parts.store.clone()),
        events: Some(parts.events.clone()),
        ..Default::default()
    });
    *stats.device_id.lock().unwrap_or_else(|p| p.into_inner()) = device.identity.device_id.clone();
    let (stop, stop_rx) = UnixStream::pair().map_err(|e| format!("openclaw: {e}"))?;
    // The alert queue's doorbell: a byte per queued alert (a full pipe rings already).
    let (bell, bell_rx) = UnixStream::pair().map_err(|e| format!("openclaw: {e}"))?;
    bell.set_nonblocking(true)
        .and_then(|()| bell_rx.set_nonblocking(true))
        .map_err(|e| format!("openclaw: {e}"))?;
    let event_bell = bell.try_clone().map_err(|e| format!("openclaw: {e}"))?;
    parts
        .store
        .set_alerts_wake(Box::new(move || drop((&bell).write(&[1]))));
    let worker = worker::Worker::start(
        parts.commands.clone(),
        parts.settings.max_queued_commands.max(1) as usize,
    )?;
    // Events ring the same bell: the thread looks at both queues when it wakes.
    parts
        .events
        .set_wake(Box::new(move || drop((&event_bell).write(&[1]))));
    let client = client::Client {
        worker,
        session: 0,
        url: parts.settings.url.clone(),
        parts,
        stats: stats.clone(),
        device,
        stop: stop_rx,
        bell: bell_rx,
        started: std::time::Instant::now(),
        recent: Default::default(),
    };
    let thread = std::thread::Builder::new()
        .name("openclaw".into())
        .spawn(move || client.run())
        .map_err(|e| format!("cannot start the openclaw thread: {e}"))?;
    Ok(Handle {
        stats,
        stop,
        thread,
    })
}
