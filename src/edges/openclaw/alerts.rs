//! Delivering queued `notify_human` alerts (`store::alerts`) as the gateway's
//! `node.event` `agent.request`: one at a time and oldest first, so they arrive in
//! order; an alert leaves the queue only when the gateway acknowledged it. A refusal
//! (`PAIRING_CHANGED` before an operator approved the node) or a lost response keeps it
//! queued for the next try. Delivery is at least once: the gateway has no idempotency
//! key for node events, so an alert whose acknowledgement was lost is sent again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::stats::{OpenclawStats, hit};
use crate::config::settings::OpenclawSettings;
use crate::store::Store;

/// How often the queue is looked at while connected (the tool only writes the store).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// After a refusal or a lost response, the next try waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// One connection's sending state: the alert in flight (its seq and request id) and
/// when to look at the queue next.
pub(crate) struct Outgoing {
    in_flight: Option<(u64, String)>,
    next_look: Instant,
}

impl Outgoing {
    pub(crate) fn new(now: Instant) -> Outgoing {
        Outgoing {
            in_flight: None,
            next_look: now,
        }
    }

    /// When the loop must wake for us (`None` while an alert awaits its response).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.in_flight.is_none().then_some(self.next_look)
    }

    /// The oldest queued alert as `node.event` params, if it is time and none is in
    /// flight; `start` gives the request id the frame goes out under.
    pub(crate) fn next(
        &mut self,
        store: &Store,
        settings: &OpenclawSettings,
        node_name: &str,
        now: Instant,
        start: impl FnOnce() -> String,
    ) -> Option<(String, Json)> {
        if self.in_flight.is_some() || now < self.next_look {
            return None;
        }
        self.next_look = now + LOOK_EVERY;
        let (seq, bytes) = match store.alerts_first() {
            Ok(Some(a)) => a,
            Ok(None) => return None,
            Err(e) => {
                log::warn!("openclaw: cannot read the alert queue: {e}");
                return None;
            }
        };
        let alert: Json = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({}));
        let params = json!({
            "event": "agent.request",
            "payloadJSON": agent_request(&alert, settings, node_name).to_string(),
        });
        let id = start();
        self.in_flight = Some((seq, id.clone()));
        Some((id, params))
    }

    /// The response to request `id`: true when it was our alert's. Acknowledged: the
    /// alert leaves the queue and the next goes at once; refused: it stays for later.
    pub(crate) fn response(
        &mut self,
        id: &str,
        result: Result<&Json, String>,
        store: &Store,
        stats: &Arc<OpenclawStats>,
        now: Instant,
    ) -> bool {
        let Some((seq, _)) = self.in_flight.as_ref().filter(|(_, r)| r == id) else {
            return false;
        };
        let seq = *seq;
        self.in_flight = None;
        // The gateway answers `handled: false` for what it drops (pairing_changed, ...).
        match result {
            Ok(p) if p.get("handled") != Some(&Json::Bool(false)) => {
                if let Err(e) = store.alerts_remove(seq) {
                    log::warn!("openclaw: cannot remove a delivered alert: {e}");
                }
                hit(&stats.alerts_sent);
                // Only an approved node's agent.request is taken.
                stats.approved.store(true, Ordering::Relaxed);
                self.next_look = now;
            }
            Ok(p) => self.refused(stats, &format!("{}", p["reason"]), now),
            Err(e) => self.refused(stats, &e, now),
        }
        true
    }

    fn refused(&mut self, stats: &OpenclawStats, why: &str, now: Instant) {
        hit(&stats.alerts_refused);
        log::info!(
            "openclaw: the gateway did not take an alert ({why}); kept, retried in {} s",
            RETRY_AFTER.as_secs()
        );
        self.next_look = now + RETRY_AFTER;
    }

    /// Request `id` timed out or the connection is going: the alert stays queued.
    pub(crate) fn lost(&mut self, still_open: impl Fn(&str) -> bool, now: Instant) {
        if self.in_flight.as_ref().is_some_and(|(_, r)| !still_open(r)) {
            self.in_flight = None;
            self.next_look = now + RETRY_AFTER;
        }
    }
}

/// `agent.request`'s payload: the gateway's agent gets `message` in the node's session
/// and delivers its reply on `channel` to `to` (or the session's own route).
fn agent_request(alert: &Json, s: &OpenclawSettings, node_name: &str) -> Json {
    let urgency = alert["urgency"].as_str().unwrap_or("normal");
    let text = alert["message"].as_str().unwrap_or("");
    let channel = alert["channel"]
        .as_str()
        .filter(|c| !c.is_empty())
        .unwrap_or(&s.notify_channel);
    let mut p = json!({
        "message": format!("[smollama node {node_name}, urgency {urgency}] {text}"),
        "deliver": true,
    });
    if !channel.is_empty() {
        p["channel"] = json!(channel);
    }
    if !s.notify_to.is_empty() {
        p["to"] = json!(s.notify_to);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;
    use crate::store::alerts::AlertLimits;
    use crate::store::tests::TempDir;

    #[test]
    fn alerts_go_one_at_a_time_and_leave_only_when_acknowledged() {
        let dir = TempDir::new("openclaw-alerts");
        let store = Store::open(&dir.0, &StoreOptions { map_size: 16 << 20 }).unwrap();
        let limits = AlertLimits {
            max_alerts: 10,
            max_bytes: 4096,
        };
        for m in ["first", "second"] {
            let a = json!({"message": m, "urgency": "high", "channel": ""});
            store.alerts_push(a.to_string().as_bytes(), &limits).unwrap();
        }
        let mut s = crate::config::Settings::defaults().openclaw;
        s.notify_channel = "telegram".into();
        s.notify_to = "12345".into();
        let stats = Arc::new(OpenclawStats::default());
        let t0 = Instant::now();
        let mut out = Outgoing::new(t0);
        let (id, params) = out.next(&store, &s, "pi", t0, || "n1".into()).unwrap();
        assert_eq!(params["event"], "agent.request");
        let p: Json = serde_json::from_str(params["payloadJSON"].as_str().unwrap()).unwrap();
        assert_eq!(p["message"], "[smollama node pi, urgency high] first");
        assert_eq!((&p["channel"], &p["to"]), (&json!("telegram"), &json!("12345")));
        assert!(out.next(&store, &s, "pi", t0, || "n2".into()).is_none(), "one in flight");
        // Refused before approval: kept, and not tried again at once.
        let refused = json!({"ok": true, "handled": false, "reason": "pairing_changed"});
        assert!(out.response(&id, Ok(&refused), &store, &stats, t0));
        assert_eq!(store.alerts_stats().unwrap().queued, 2);
        assert!(out.next(&store, &s, "pi", t0, || "n2".into()).is_none());
        let t1 = t0 + RETRY_AFTER;
        let (id, _) = out.next(&store, &s, "pi", t1, || "n2".into()).unwrap();
        assert!(!out.response("other", Ok(&json!({"ok": true})), &store, &stats, t1));
        assert!(out.response(&id, Ok(&json!({"ok": true})), &store, &stats, t1));
        assert_eq!(store.alerts_stats().unwrap().queued, 1);
        assert_eq!(stats.alerts_sent.load(Ordering::Relaxed), 1);
        // The next goes at once; a lost response keeps it.
        let (id, params) = out.next(&store, &s, "pi", t1, || "n3".into()).unwrap();
        assert!(params["payloadJSON"].as_str().unwrap().contains("second"));
        out.lost(|r| r != id, t1);
        assert_eq!(out.deadline(), Some(t1 + RETRY_AFTER));
        assert_eq!(store.alerts_stats().unwrap().queued, 1);
    }
}
