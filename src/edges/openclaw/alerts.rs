//! Delivering queued `notify_human` alerts (`store::alerts`) as the gateway's
//! `node.event` `agent.request`, oldest first, one request in flight at a time; an alert
//! leaves the queue only when the gateway acknowledged it. Alerts that piled up (an
//! outage) go together in one request, numbered in order: the gateway starts its agent
//! runs asynchronously, so two requests moments apart may be answered in either order,
//! and one message per outage is also what a person wants to read. A refusal
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

/// After a refusal or a lost response, the next try waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// At most this many alerts in one request, and this many characters of text (the
/// gateway drops an `agent.request` over 20 000).
const BATCH: usize = 20;
const MAX_TEXT: usize = 16_000;

/// One connection's sending state: the alerts in flight (their seqs and the request
/// id) and when to look at the queue next.
pub(crate) struct Outgoing {
    in_flight: Option<(Vec<u64>, String)>,
    next_look: Instant,
    /// The queue was found empty and nothing rang since: no need to look.
    idle: bool,
}

impl Outgoing {
    pub(crate) fn new(now: Instant) -> Outgoing {
        Outgoing {
            in_flight: None,
            next_look: now,
            idle: false,
        }
    }

    /// An alert was queued: look again (after a refusal's wait, if one is running).
    pub(crate) fn rang(&mut self) {
        self.idle = false;
    }

    /// When the loop must wake for us (`None` while an alert awaits its response).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        (self.in_flight.is_none() && !self.idle).then_some(self.next_look)
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
        if self.in_flight.is_some() || self.idle || now < self.next_look {
            return None;
        }
        let queued = match store.alerts_read(BATCH) {
            Ok(q) if !q.is_empty() => q,
            Ok(_) => {
                self.idle = true;
                return None;
            }
            Err(e) => {
                log::warn!("openclaw: cannot read the alert queue: {e}");
                self.next_look = now + RETRY_AFTER;
                return None;
            }
        };
        let alerts: Vec<(u64, Json)> = queued
            .into_iter()
            .map(|(seq, b)| {
                (
                    seq,
                    serde_json::from_slice(&b).unwrap_or_else(|_| json!({})),
                )
            })
            .collect();
        let (seqs, payload) = agent_request(&alerts, settings, node_name);
        let params = json!({"event": "agent.request", "payloadJSON": payload.to_string()});
        let id = start();
        self.in_flight = Some((seqs, id.clone()));
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
        if self.in_flight.as_ref().is_none_or(|(_, r)| r != id) {
            return false;
        }
        let Some((seqs, _)) = self.in_flight.take() else {
            return false;
        };
        // The gateway answers `handled: false` for what it drops (pairing_changed, ...).
        match result {
            Ok(p) if p.get("handled") != Some(&Json::Bool(false)) => {
                if let Err(e) = store.alerts_remove(&seqs) {
                    log::warn!("openclaw: cannot remove delivered alerts: {e}");
                }
                stats
                    .alerts_sent
                    .fetch_add(seqs.len() as u64, Ordering::Relaxed);
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

/// `agent.request`'s payload for the oldest alerts (those of the first one's channel,
/// within `MAX_TEXT`), and their seqs: the gateway's agent gets the text in the node's
/// session and delivers its reply on `channel` to `to` (or the session's own route).
fn agent_request(
    alerts: &[(u64, Json)],
    s: &OpenclawSettings,
    node_name: &str,
) -> (Vec<u64>, Json) {
    let channel_of = |a: &Json| {
        a["channel"]
            .as_str()
            .filter(|c| !c.is_empty())
            .unwrap_or(&s.notify_channel)
            .to_string()
    };
    let line = |a: &Json| {
        let urgency = a["urgency"].as_str().unwrap_or("normal");
        let text = a["message"].as_str().unwrap_or("");
        let at = a["ts"]
            .as_i64()
            .map(crate::clock::iso8601)
            .unwrap_or_default();
        format!("[urgency {urgency}, {at}] {text}")
    };
    let channel = channel_of(&alerts[0].1);
    let mut seqs = vec![alerts[0].0];
    let mut lines = vec![line(&alerts[0].1)];
    let mut len = lines[0].len();
    for (seq, a) in &alerts[1..] {
        let l = line(a);
        if channel_of(a) != channel || len + l.len() > MAX_TEXT {
            break;
        }
        len += l.len();
        seqs.push(*seq);
        lines.push(l);
    }
    let message = if lines.len() == 1 {
        format!("[smollama node {node_name}] {}", lines[0])
    } else {
        let mut m = format!(
            "[smollama node {node_name}] {} alerts, oldest first:",
            lines.len()
        );
        for (i, l) in lines.iter().enumerate() {
            m.push_str(&format!("\n{}. {l}", i + 1));
        }
        m
    };
    let mut p = json!({"message": message, "deliver": true});
    if !channel.is_empty() {
        p["channel"] = json!(channel);
    }
    if !s.notify_to.is_empty() {
        p["to"] = json!(s.notify_to);
    }
    (seqs, p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;
    use crate::store::alerts::AlertLimits;
    use crate::store::tests::TempDir;

    #[test]
    fn alerts_go_oldest_first_together_and_leave_only_when_acknowledged() {
        let dir = TempDir::new("openclaw-alerts");
        let store = Store::open(&dir.0, &StoreOptions { map_size: 16 << 20 }).unwrap();
        let limits = AlertLimits {
            max_alerts: 10,
            max_bytes: 4096,
        };
        let push = |m: &str, channel: &str| {
            let a = json!({"message": m, "urgency": "high", "channel": channel, "ts": 0});
            store
                .alerts_push(a.to_string().as_bytes(), &limits)
                .unwrap();
        };
        push("first", "");
        let mut s = crate::config::Settings::defaults().openclaw;
        s.notify_channel = "telegram".into();
        s.notify_to = "12345".into();
        let stats = Arc::new(OpenclawStats::default());
        let t0 = Instant::now();
        let mut out = Outgoing::new(t0);
        let payload = |params: &Json| -> Json {
            serde_json::from_str(params["payloadJSON"].as_str().unwrap()).unwrap()
        };
        let (id, params) = out.next(&store, &s, "pi", t0, || "n1".into()).unwrap();
        assert_eq!(params["event"], "agent.request");
        let p = payload(&params);
        assert_eq!(
            p["message"],
            "[smollama node pi] [urgency high, 1970-01-01T00:00:00.000Z] first"
        );
        assert_eq!(
            (&p["channel"], &p["to"]),
            (&json!("telegram"), &json!("12345"))
        );
        assert!(
            out.next(&store, &s, "pi", t0, || "n2".into()).is_none(),
            "one in flight"
        );
        // Refused before approval: kept, and not tried again at once.
        let refused = json!({"ok": true, "handled": false, "reason": "pairing_changed"});
        assert!(out.response(&id, Ok(&refused), &store, &stats, t0));
        assert_eq!(store.alerts_stats().unwrap().queued, 1);
        assert!(out.next(&store, &s, "pi", t0, || "n2".into()).is_none());
        // Meanwhile two more, one for another channel: the first two go together,
        // numbered oldest first; the other channel's waits for its own request.
        push("second", "telegram");
        push("third", "whatsapp");
        let t1 = t0 + RETRY_AFTER;
        let (id, params) = out.next(&store, &s, "pi", t1, || "n2".into()).unwrap();
        let m = payload(&params)["message"].as_str().unwrap().to_string();
        assert!(
            m.starts_with("[smollama node pi] 2 alerts, oldest first:\n1. "),
            "{m}"
        );
        assert!(m.find("first").unwrap() < m.find("2. ").unwrap(), "{m}");
        assert!(m.ends_with("second"), "{m}");
        assert!(!out.response("other", Ok(&json!({"ok": true})), &store, &stats, t1));
        assert!(out.response(&id, Ok(&json!({"ok": true})), &store, &stats, t1));
        assert_eq!(store.alerts_stats().unwrap().queued, 1);
        assert_eq!(stats.alerts_sent.load(Ordering::Relaxed), 2);
        // The next goes at once; a lost response keeps it.
        let (id, params) = out.next(&store, &s, "pi", t1, || "n3".into()).unwrap();
        assert_eq!(payload(&params)["channel"], "whatsapp");
        out.lost(|r| r != id, t1);
        assert_eq!(out.deadline(), Some(t1 + RETRY_AFTER));
        assert_eq!(store.alerts_stats().unwrap().queued, 1);
        // Once the queue is empty nothing wakes the thread until an alert rings.
        let t2 = t1 + RETRY_AFTER;
        let (id, _) = out.next(&store, &s, "pi", t2, || "n4".into()).unwrap();
        assert!(out.response(&id, Ok(&json!({"ok": true})), &store, &stats, t2));
        assert!(out.next(&store, &s, "pi", t2, || "n5".into()).is_none());
        assert_eq!(out.deadline(), None, "idle");
        push("fourth", "");
        out.rang();
        assert_eq!(out.deadline(), Some(t2));
        assert!(out.next(&store, &s, "pi", t2, || "n5".into()).is_some());
    }
}
