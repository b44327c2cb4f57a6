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
use std::time::Instant;

use serde_json::{Value as Json, json};

use super::stats::{OpenclawStats, hit};
use crate::messages::NodeEvents;

/// Events sent and not yet answered, at most.
const IN_FLIGHT: usize = 8;

/// One connection's events in flight (their request ids), and the question to the
/// gateway's agent being answered (`ask_gateway`), if any.
#[derive(Default)]
pub(crate) struct Sending {
    in_flight: Vec<String>,
    asking: Option<Asking>,
    /// `chat.subscribe` of the question session was sent on this connection.
    subscribed: bool,
}

/// A question sent as `agent.request`: where its answer goes, by when, and the request
/// id (a refusal of it fails the question).
struct Asking {
    reply: std::sync::mpsc::SyncSender<Result<String, String>>,
    deadline: Instant,
    request: String,
}

/// The session this node's questions run in: `node-<deviceId>-ask` (the gateway
/// prefixes its agent: `agent:main:node-...-ask`).
pub(crate) fn ask_session(device_id: &str) -> String {
    format!("node-{device_id}-ask")
}

/// The text of a `chat` event's message (a string, or parts with `text`).
fn message_text(m: &Json) -> String {
    match &m["content"] {
        Json::String(s) => s.clone(),
        Json::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
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

    /// The waiting question's frames, when none is being answered: `chat.subscribe` of
    /// its session (once per connection), then `agent.request` into it.
    pub(crate) fn question(
        &mut self,
        queue: &NodeEvents,
        session: &str,
        deadline: Instant,
        mut start: impl FnMut() -> String,
        frame: impl Fn(&str, &Json) -> Option<String>,
    ) -> Vec<String> {
        if self.asking.is_some() {
            return Vec::new();
        }
        let Some(q) = queue.take_question() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if !self.subscribed {
            let p = json!({"event": "chat.subscribe", "payloadJSON": json!({"sessionKey": session}).to_string()});
            if let Some(f) = frame(&start(), &p) {
                out.push(f);
                self.subscribed = true;
            }
        }
        let link = json!({"message": q.question, "sessionKey": session, "deliver": false});
        let id = start();
        let p = json!({"event": "agent.request", "payloadJSON": link.to_string()});
        match frame(&id, &p) {
            Some(f) => {
                out.push(f);
                self.asking = Some(Asking {
                    reply: q.reply,
                    deadline,
                    request: id,
                });
            }
            None => drop(
                q.reply
                    .send(Err("the question is over the gateway's maxPayload".into())),
            ),
        }
        out
    }

    /// A `chat` event: the answer, when it ends a run in the question session.
    pub(crate) fn chat(&mut self, payload: &Json, session: &str) {
        let key = payload["sessionKey"].as_str().unwrap_or("");
        if key != session && !key.ends_with(&format!(":{session}")) {
            return;
        }
        let answer = match payload["state"].as_str() {
            Some("final") => Ok(message_text(&payload["message"])),
            Some("error") => Err(format!(
                "the gateway's agent failed: {}",
                payload["errorMessage"]
                    .as_str()
                    .unwrap_or("no reason given")
            )),
            Some("aborted") => Err("the gateway's agent run was aborted".into()),
            _ => return,
        };
        if let Some(a) = self.asking.take() {
            let _ = a.reply.send(answer);
        }
    }

    /// Fail a question past its deadline.
    pub(crate) fn expire(&mut self, now: Instant) {
        if self.asking.as_ref().is_some_and(|a| now > a.deadline)
            && let Some(a) = self.asking.take()
        {
            let _ = a.reply.send(Err(
                "no answer from the gateway's agent within [openclaw] ask_timeout".into(),
            ));
        }
    }

    /// When the loop must wake to expire the question.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.asking.as_ref().map(|a| a.deadline)
    }

    /// The response to request `id`: true when it was one of our events (counted sent
    /// or refused; the gateway answers `handled: false` with a reason for what it drops)
    /// or our question, which a refusal fails.
    pub(crate) fn response(
        &mut self,
        id: &str,
        result: Result<&Json, String>,
        stats: &OpenclawStats,
    ) -> bool {
        if self.asking.as_ref().is_some_and(|a| a.request == id) {
            let refused = match &result {
                Ok(p) if p.get("handled") == Some(&Json::Bool(false)) => Some(format!(
                    "the gateway did not take the question ({})",
                    p["reason"]
                )),
                Ok(_) => None,
                Err(e) => Some(format!("the gateway refused the question: {e}")),
            };
            if let Some(e) = refused
                && let Some(a) = self.asking.take()
            {
                let _ = a.reply.send(Err(e));
            }
            return true;
        }
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
    use crate::messages::{GatewayQuestion, NodeEvent};
    use std::time::Duration;

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
    fn a_question_waits_for_its_sessions_final_reply_and_fails_on_refusal_or_time() {
        let stats = OpenclawStats::default();
        let q = NodeEvents::new(4);
        let session = ask_session("abc");
        let t0 = Instant::now();
        let mut n = 0;
        let mut id = || {
            n += 1;
            format!("n{n}")
        };
        let frame = |id: &str, p: &Json| Some(json!({"id": id, "params": p}).to_string());
        let mut s = Sending::default();
        let ask = |text: &str| {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            q.ask(GatewayQuestion {
                question: text.into(),
                reply: tx,
            })
            .unwrap();
            rx
        };
        let answer = ask("Will it rain?");
        let frames = s.question(&q, &session, t0 + Duration::from_secs(60), &mut id, frame);
        assert_eq!(frames.len(), 2, "subscribe, then the question");
        assert!(frames[0].contains("chat.subscribe") && frames[0].contains("node-abc-ask"));
        assert!(frames[1].contains("agent.request") && frames[1].contains("Will it rain?"));
        // The gateway's ack keeps it waiting; another session's reply and a delta do not
        // answer it; the final reply of its session does.
        assert!(s.response("n2", Ok(&json!({"ok": true})), &stats));
        s.chat(
            &json!({"sessionKey": "agent:main:node-abc", "state": "final"}),
            &session,
        );
        s.chat(
            &json!({"sessionKey": "agent:main:node-abc-ask", "state": "delta"}),
            &session,
        );
        assert!(answer.try_recv().is_err());
        let fin = json!({"sessionKey": "agent:main:node-abc-ask", "state": "final",
                         "message": {"content": [{"type": "text", "text": "Yes, at 4pm."}]}});
        s.chat(&fin, &session);
        assert_eq!(answer.try_recv().unwrap(), Ok("Yes, at 4pm.".to_string()));

        // Subscribed once per connection; a refusal fails the question.
        let answer = ask("Again?");
        let frames = s.question(&q, &session, t0 + Duration::from_secs(60), &mut id, frame);
        assert_eq!(frames.len(), 1);
        assert!(s.response("n3", Err("PAIRING_CHANGED".into()), &stats));
        assert!(
            answer
                .try_recv()
                .unwrap()
                .unwrap_err()
                .contains("PAIRING_CHANGED")
        );

        // No reply in time: it fails at its deadline.
        let answer = ask("Still there?");
        s.question(&q, &session, t0 + Duration::from_secs(1), &mut id, frame);
        assert_eq!(s.deadline(), Some(t0 + Duration::from_secs(1)));
        s.expire(t0 + Duration::from_secs(2));
        assert!(
            answer
                .try_recv()
                .unwrap()
                .unwrap_err()
                .contains("ask_timeout")
        );
        assert_eq!(s.deadline(), None);
        assert_eq!(
            stats.events_refused.load(Ordering::Relaxed),
            0,
            "questions are not events"
        );
    }

    #[test]
    fn long_texts_are_cut_as_the_gateway_would_at_a_character() {
        let long = "é".repeat(300);
        assert_eq!(cut(&long).chars().count(), MAX_CHARS);
        assert_eq!(cut("short"), "short");
    }
}
