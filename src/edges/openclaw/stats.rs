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
    /// The gateway's address: `[openclaw] url`, or the one its beacon gave (empty until
    /// one is found).
    pub url: Mutex<String>,
    /// No url is set and no gateway has been found yet (browsing mDNS).
    pub looking: AtomicBool,
    /// The found gateway's name (its beacon's `displayName`); empty with a set url.
    pub gateway: Mutex<String>,
    pub connected: AtomicBool,
    /// The gateway accepted this device (a `hello-ok`); cleared by `NOT_PAIRED`.
    pub paired: AtomicBool,
    /// The last connect was refused with `NOT_PAIRED`: the gateway's operator must
    /// approve this device first (a node on the LAN; loopback ones are paired silently).
    pub pairing_required: AtomicBool,
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
    /// Invokes refused because `[openclaw] max_queued_commands` were already waiting.
    pub commands_refused: AtomicU64,
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

/// The gateway's control UI, served over HTTP on the same port as its WebSocket
/// (openclaw `docs/web/control-ui.md`: `http://<host>:18789/`; a `gateway.controlUi.basePath`
/// is the gateway's own and not told to nodes). `None` without a url.
pub(crate) fn control_ui(url: &str) -> Option<String> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("ws://") {
        ("http", r)
    } else {
        ("https", url.strip_prefix("wss://")?)
    };
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .filter(|a| !a.is_empty())?;
    Some(format!("{scheme}://{authority}/"))
}

pub(crate) fn hit(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl OpenclawStats {
    pub(crate) fn set_url(&self, url: &str) {
        *self.url.lock().unwrap_or_else(|p| p.into_inner()) = url.to_string();
    }

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
        let looking = self.looking.load(r);
        let pairing = !connected && self.pairing_required.load(r);
        let (events_queued, events_dropped) =
            self.events.as_deref().map_or((0, 0), super::events::counts);
        let state = match (connected, approved) {
            (false, _) if looking => "looking for a gateway on the LAN",
            (false, _) if pairing => "pending device pairing",
            (false, _) => "disconnected",
            (true, false) => "pending approval",
            (true, true) => "connected",
        };
        let url = lock(&self.url);
        let device_id = lock(&self.device_id);
        json!({
            "state": state,
            "url": (!url.is_empty()).then_some(url.as_str()),
            // Set when the gateway was found by its beacon, not by `url`.
            "gateway": Some(lock(&self.gateway)).filter(|g| !g.is_empty()),
            "control_ui": control_ui(&url),
            "connected": connected,
            "paired": self.paired.load(r),
            "approved": approved,
            "pending_approval": pending,
            // The gateway tells a node nothing about its approval: the operator approves
            // the pending request node.list shows for this device id.
            // (a node may not list pairing requests: the operator finds the request
            // for this device id in `openclaw nodes pending`).
            "approve_with": if pairing {
                Some("openclaw devices list; openclaw devices approve <requestId>")
            } else {
                pending.then_some("openclaw nodes pending; openclaw nodes approve <requestId>")
            },
            "device_id": device_id,
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
            "commands_refused": self.commands_refused.load(r),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_ui_is_the_gateways_http_root_on_the_same_port() {
        assert_eq!(
            control_ui("ws://10.77.0.1:18789").as_deref(),
            Some("http://10.77.0.1:18789/")
        );
        assert_eq!(
            control_ui("wss://gw.example/ws?x=1").as_deref(),
            Some("https://gw.example/")
        );
        assert_eq!(
            control_ui("ws://[fd00::7]:9/").as_deref(),
            Some("http://[fd00::7]:9/")
        );
        assert_eq!(control_ui(""), None);
    }

    #[test]
    fn status_says_it_is_looking_until_a_gateway_is_found() {
        let s = OpenclawStats::default();
        s.looking.store(true, Ordering::Relaxed);
        let j = s.to_json();
        assert_eq!(j["state"], "looking for a gateway on the LAN");
        assert!(j["url"].is_null() && j["control_ui"].is_null(), "{j}");
        s.looking.store(false, Ordering::Relaxed);
        s.set_url("ws://10.77.0.1:18789");
        *s.gateway.lock().unwrap() = "vm".into();
        s.connected.store(true, Ordering::Relaxed);
        *s.device_id.lock().unwrap() = "abc".into();
        let j = s.to_json();
        assert_eq!(j["state"], "pending approval");
        assert_eq!(j["gateway"], "vm");
        assert_eq!(j["control_ui"], "http://10.77.0.1:18789/");
        assert_eq!(
            j["approve_with"],
            "openclaw nodes pending; openclaw nodes approve <requestId>"
        );
        s.connected.store(false, Ordering::Relaxed);
        s.pairing_required.store(true, Ordering::Relaxed);
        let j = s.to_json();
        assert_eq!(j["state"], "pending device pairing");
        assert_eq!(
            j["approve_with"],
            "openclaw devices list; openclaw devices approve <requestId>"
        );
    }
}
