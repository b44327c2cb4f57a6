//! What `/api/status` (and so `smollama status` and `/metrics`) shows of the gateway
//! connection: connected, paired, approved, what the operator must run while approval
//! is pending, the last error, and counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value as Json, json};

use crate::store::Store;

/// The connection's state and counters, written by the `openclaw` thread.
#[derive(Default)]
pub struct OpenclawStats {
    pub url: String,
    pub connected: AtomicBool,
    /// The gateway accepted this device (a `hello-ok`); cleared by `NOT_PAIRED`.
    pub paired: AtomicBool,
    /// An operator approved the command surface: an invoke arrived (the gateway
    /// forwards none before), remembered until the node's commands change.
    pub approved: AtomicBool,
    pub connect_attempts: AtomicU64,
    pub connects: AtomicU64,
    pub invokes: AtomicU64,
    pub invoke_errors: AtomicU64,
    /// Frames from the gateway over `[openclaw] max_frame_kb` (the connection closed).
    pub frames_refused: AtomicU64,
    /// Results that would exceed the gateway's `policy.maxPayload` (sent as an error).
    pub results_too_large: AtomicU64,
    /// Connections closed for 2× the tick interval of silence.
    pub watchdog_closes: AtomicU64,
    pub requests_timed_out: AtomicU64,
    /// `notify_human` alerts the gateway acknowledged (`agent.request`).
    pub alerts_sent: AtomicU64,
    /// Tries the gateway did not take (before approval: pairing_changed); kept queued.
    pub alerts_refused: AtomicU64,
    /// Readings, changes and observations the gateway took (`notifications.changed`).
    pub events_sent: AtomicU64,
    /// Events the gateway refused or dropped (before approval, a bad payload); not
    /// sent again.
    pub events_refused: AtomicU64,
    /// The alert queue, for its size and what it dropped.
    pub store: Option<Arc<Store>>,
    /// The event queue (`messages::NodeEvents`), for its size and what it dropped.
    pub events: Option<Arc<crate::messages::NodeEvents>>,
    pub device_id: Mutex<String>,
    pub auth_method: Mutex<String>,
    pub last_error: Mutex<Option<String>>,
}

pub(crate) fn hit(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl OpenclawStats {
    pub(crate) fn set_error(&self, e: &str) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }

    /// The `openclaw` object of `/api/status`.
    pub fn to_json(&self) -> Json {
        let r = Ordering::Relaxed;
        let lock = |m: &Mutex<String>| m.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let connected = self.connected.load(r);
        let approved = self.approved.load(r);
        let pending = connected && !approved;
        let alerts = self
            .store
            .as_ref()
            .and_then(|s| s.alerts_stats().ok())
            .unwrap_or_default();
        let (events_queued, events_dropped) =
            self.events.as_deref().map_or((0, 0), super::events::counts);
        let state = match (connected, approved) {
            (false, _) => "disconnected",
            (true, false) => "pending approval",
            (true, true) => "connected",
        };
        json!({
            "state": state,
            "url": self.url,
            "connected": connected,
            "paired": self.paired.load(r),
            "approved": approved,
            "pending_approval": pending,
            // The gateway tells a node nothing about its approval: the operator approves
            // the pending request node.list shows for this device id.
            "approve_with": pending.then_some("openclaw nodes pending; openclaw nodes approve <requestId>"),
            "device_id": lock(&self.device_id),
            "auth_method": lock(&self.auth_method),
            "last_error": self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            "connect_attempts": self.connect_attempts.load(r),
            "connects": self.connects.load(r),
            "invokes": self.invokes.load(r),
            "invoke_errors": self.invoke_errors.load(r),
            "frames_refused": self.frames_refused.load(r),
            "results_too_large": self.results_too_large.load(r),
            "watchdog_closes": self.watchdog_closes.load(r),
            "requests_timed_out": self.requests_timed_out.load(r),
            "alerts_queued": alerts.queued,
            "alerts_sent": self.alerts_sent.load(r),
            "alerts_refused": self.alerts_refused.load(r),
            "alerts_dropped": alerts.dropped,
            "events_queued": events_queued,
            "events_sent": self.events_sent.load(r),
            "events_refused": self.events_refused.load(r),
            "events_dropped": events_dropped,
        })
    }
}
