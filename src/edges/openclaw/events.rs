//! Sending readings, changes and observations (`messages::NodeEvents`) to the gateway
//! as the node event it makes visible for them: `node.event` `notifications.changed`
//! `{change: "posted", key, title, text, packageName: "smollama"}`. The gateway
//! (`server-node-events`, `handleNodeEvent`) turns one into a *system event* of its main
//! session, `Notification posted (node=<id> key=<key> package=smollama): <title> -
//! <text>` (title and text cut to 120 characters each; its queue keeps the newest 20 per
//! session), which an operator reads in `status` (`queuedSystemEvents`) and the
//! gateway's agent gets at the head of its next turn; it also wakes the agent's
//! heartbeat when one is configured. Every other event name a node might invent is
//! answered `handled: false, reason: "unsupported_event"` and dropped.
//!
//! Unlike alerts, an event is sent once: a refusal (before approval the gateway answers
//! `PAIRING_CHANGED`) or a lost response counts it and moves on. At most `IN_FLIGHT`
//! events await their response, so a backlog after a reconnect goes in steps.

use std::sync::atomic::Ordering;

use serde_json::{Value as Json, json};

use super::stats::{OpenclawStats, hit};
use crate::messages::NodeEvents;

/// Events sent and not yet answered, at most.
const IN_FLIGHT: usize = 8;

/// One connection's events in flight (their request ids).
#[derive(Default)]
pub(crate) struct Sending {
    in_flight: Vec<String>,
}

/// The gateway keeps this many characters of a notification's title and of its text.
const MAX_CHARS: usize = 120;

/// `s` cut to `MAX_CHARS` characters (so no frame of ours nears maxPayload).
fn cut(s: &str) -> &str {
    s.char_indices().nth(MAX_CHARS).map_or(s, |(i, _)| &s[..i])
}

/// `node.event` params for one queued event.
fn params(e: &crate::messages::NodeEvent) -> Json {
    let payload = json!({
        "change": "posted",
        "key": cut(&e.key),
        "title": cut(&e.title),
        "text": cut(&e.text),
        "packageName": "smollama",
    });
    json!({"event": "notifications.changed", "payloadJSON": payload.to_string()})
}

impl Sending {
    /// The next queued event's frame, while fewer than `IN_FLIGHT` are unanswered;
    /// `start` gives its request id, `frame` the text within the gateway's maxPayload
    /// (`None`: over it, dropped and counted as refused).
    pub(crate) fn next(
        &mut self,
        queue: &NodeEvents,
        stats: &OpenclawStats,
        start: impl FnOnce() -> String,
        frame: impl Fn(&str, &Json) -> Option<String>,
    ) -> Option<String> {
        if self.in_flight.len() >= IN_FLIGHT {
            return None;
        }
        let e = queue.pop()?;
        let id = start();
        let Some(text) = frame(&id, &params(&e)) else {
            hit(&stats.events_refused);
            return None;
        };
        self.in_flight.push(id);
        Some(text)
    }

    /// The response to request `id`: true when it was one of our events (counted sent
    /// or refused; the gateway answers `handled: false` with a reason for what it drops).
    pub(crate) fn response(
        &mut self,
        id: &str,
        result: Result<&Json, String>,
        stats: &OpenclawStats,
    ) -> bool {
        let Some(i) = self.in_flight.iter().position(|r| r == id) else {
            return false;
        };
        self.in_flight.swap_remove(i);
        match result {
            Ok(p) if p.get("handled") != Some(&Json::Bool(false)) => hit(&stats.events_sent),
            Ok(p) => {
                hit(&stats.events_refused);
                log::debug!("openclaw: the gateway dropped an event: {}", p["reason"]);
            }
            Err(e) => {
                hit(&stats.events_refused);
                log::debug!("openclaw: the gateway refused an event: {e}");
            }
        }
        true
    }

    /// Forget events whose request timed out (`is_open` false): already counted as
    /// `requests_timed_out`.
    pub(crate) fn lost(&mut self, is_open: impl Fn(&str) -> bool) {
        self.in_flight.retain(|id| is_open(id));
    }
}

/// What status shows of the queue.
pub(crate) fn counts(queue: &NodeEvents) -> (usize, u64) {
    (queue.len(), queue.dropped.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::NodeEvent;

    #[test]
    fn events_go_as_notifications_in_steps_and_every_answer_is_counted() {
        let q = NodeEvents::new(100);
        for i in 0..10 {
            q.push(NodeEvent {
                key: format!("smollama.reading.s{i}"),
                title: "smollama n: s".into(),
                text: "1 at t".into(),
            });
        }
        let stats = OpenclawStats::default();
        let mut s = Sending::default();
        let mut n = 0;
        let mut frames = Vec::new();
        while let Some(f) = s.next(
            &q,
            &stats,
            || {
                n += 1;
                format!("n{n}")
            },
            |id, p| Some(json!({"id": id, "params": p}).to_string()),
        ) {
            frames.push(f);
        }
        assert_eq!(frames.len(), IN_FLIGHT, "at most IN_FLIGHT unanswered");
        let first: Json = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(first["params"]["event"], "notifications.changed");
        let payload: Json =
            serde_json::from_str(first["params"]["payloadJSON"].as_str().unwrap()).unwrap();
        assert_eq!(payload["change"], "posted");
        assert_eq!(payload["key"], "smollama.reading.s0");
        assert!(s.response("n1", Ok(&json!({"ok": true})), &stats));
        let dropped = json!({"ok": true, "handled": false, "reason": "unsupported_event"});
        assert!(s.response("n2", Ok(&dropped), &stats));
        assert!(s.response("n3", Err("PAIRING_CHANGED".into()), &stats));
        assert!(!s.response("other", Ok(&json!({})), &stats), "not ours");
        assert_eq!(stats.events_sent.load(Ordering::Relaxed), 1);
        assert_eq!(stats.events_refused.load(Ordering::Relaxed), 2);
        s.lost(|id| id != "n4");
        assert_eq!(s.in_flight.len(), IN_FLIGHT - 4);
        assert_eq!(counts(&q), (2, 0));
    }

    #[test]
    fn long_texts_are_cut_as_the_gateway_would_at_a_character() {
        let long = "é".repeat(300);
        assert_eq!(cut(&long).chars().count(), MAX_CHARS);
        assert_eq!(cut("short"), "short");
    }
}
