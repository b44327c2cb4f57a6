//! The agent's intake: where a message that may be a question becomes one, whichever
//! edge it came from (MQTT today, HTTP's `POST /api/ask`; the OpenClaw gateway later).
//! Edges call it through [`QuestionIntake`] and never see the agent.
//!
//! It guarantees that questions never loop: answers, status, readings and state topics
//! never start the agent, nor do this node's own messages (the MQTT edge says which those
//! are); and each ask topic (HTTP counts as one) takes at most `[agent] rate_per_minute`
//! questions a minute. A payload is plain text, or JSON with `question` (or `text`,
//! `message`, `query`) and optional `id` and `reply_to` (MQTT only; a topic with
//! wildcards is ignored and the answer goes to the answer topic).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value as Json;

use crate::clock::now_us;
use crate::edges::mqtt::topic;
use crate::graph::Micros;
use crate::messages::{Arrival, MAX_TRACKED_TOPICS, Offered, Origin, Question, QuestionIntake};

/// The rate limit's window.
const MINUTE: Micros = 60_000_000;

/// What the intake did, for one way in (relaxed atomics: independent counts).
#[derive(Debug, Default)]
pub struct Counts {
    /// Handed to the agent.
    pub questions: AtomicU64,
    /// Loop-guarded topic, this node's own message, or no question text.
    pub ignored: AtomicU64,
    /// Over the rate limit, or the agent had too many waiting.
    pub refused: AtomicU64,
}

/// The intake's counters per way in, for status (`connections.mqtt.questions*`,
/// `connections.http.ask`).
#[derive(Debug, Default)]
pub struct IntakeStats {
    pub mqtt: Counts,
    pub http: Counts,
}

/// A question payload taken apart.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    text: String,
    id: Option<String>,
    reply_to: Option<String>,
}

/// Plain text, or JSON with `question` (or `text`, `message`, `query`), `id`, `reply_to`.
pub(crate) fn parse(payload: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(payload).trim().to_string();
    let json: Option<Json> = serde_json::from_str(&text).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let question = ["question", "text", "message", "query"]
        .iter()
        .find_map(|k| field(k));
    Parsed {
        id: field("id"),
        reply_to: field("reply_to"),
        text: question.unwrap_or(text),
    }
}

/// Topics that never start the agent, whoever publishes them: answers, status, readings
/// and states (a question about a reading is not a reading).
fn loop_guarded(topic: &str) -> bool {
    topic.ends_with("/answers")
        || topic.ends_with("/status")
        || topic.ends_with("/readings")
        || topic.contains("/state/")
}

/// Questions per topic in the current minute, and the sequence for made-up ids.
#[derive(Default)]
struct Rate {
    by_key: HashMap<String, (Micros, u32)>,
    seq: u64,
}

/// The agent's [`QuestionIntake`]: hands accepted questions to the `llm` thread's queue.
pub struct Intake {
    node: String,
    rate_per_minute: u32,
    questions: async_channel::Sender<Question>,
    /// Bytes of question text in the channel (the `llm` thread subtracts what it takes).
    arriving: std::sync::Arc<crate::agent::worker::LlmStats>,
    /// `[agent] queue_kb` in bytes.
    max_bytes: u64,
    rate: Mutex<Rate>,
    pub stats: IntakeStats,
}

impl Intake {
    /// `node` names made-up ids; `rate_per_minute` is `[agent] rate_per_minute`;
    /// `max_bytes` (`[agent] queue_kb`) bounds the question text waiting in the channel,
    /// counted in `stats.arriving_bytes`.
    pub fn new(
        node: &str,
        rate_per_minute: u32,
        questions: async_channel::Sender<Question>,
        stats: std::sync::Arc<crate::agent::worker::LlmStats>,
        max_bytes: u64,
    ) -> Intake {
        Intake {
            node: node.to_string(),
            rate_per_minute,
            questions,
            arriving: stats,
            max_bytes,
            rate: Mutex::new(Rate::default()),
            stats: IntakeStats::default(),
        }
    }

    /// [`QuestionIntake::offer`] at time `now` (tests pass their own clock).
    fn offer_at(&self, from: Arrival<'_>, payload: &[u8], now: Micros) -> Offered {
        let (counts, key) = match &from {
            Arrival::Mqtt { topic, .. } => (&self.stats.mqtt, *topic),
            Arrival::Http { .. } => (&self.stats.http, "HTTP"),
            // Counted with HTTP (both are a waiting request), rate-limited apart.
            Arrival::OpenClaw { .. } => (&self.stats.http, "OpenClaw"),
        };
        let bump = |a: &AtomicU64| a.fetch_add(1, Ordering::Relaxed);
        if let Arrival::Mqtt { topic, own } = &from
            && (*own || loop_guarded(topic))
        {
            bump(&counts.ignored);
            log::debug!("agent: ignored a message on {topic} (own message or loop-guarded topic)");
            return Offered::Ignored;
        }
        let Ok(mut rate) = self.rate.lock() else {
            return Offered::Busy;
        };
        let limit = self.rate_per_minute;
        let slot = rate.by_key.entry(key.to_string()).or_insert((now, 0));
        if now - slot.0 >= MINUTE {
            *slot = (now, 0);
        }
        if slot.1 >= limit {
            bump(&counts.refused);
            log::warn!("agent: more than {limit} questions a minute on {key}; ignoring this one");
            return Offered::RateLimited;
        }
        slot.1 += 1;
        if rate.by_key.len() > MAX_TRACKED_TOPICS {
            rate.by_key.retain(|_, (start, _)| now - *start < MINUTE);
        }
        let parsed = parse(payload);
        if parsed.text.is_empty() {
            bump(&counts.ignored);
            return Offered::Ignored;
        }
        rate.seq += 1;
        let id = parsed
            .id
            .unwrap_or_else(|| format!("{}-{}-{}", self.node, now / 1000, rate.seq));
        drop(rate);
        let origin = match from {
            Arrival::Mqtt { topic, .. } => Origin::Mqtt {
                topic: topic.to_string(),
                reply_to: parsed
                    .reply_to
                    .filter(|t| topic::validate_topic(t, topic::MAX_TOPIC_LEN).is_ok()),
            },
            Arrival::Http { reply } => Origin::Http { reply },
            Arrival::OpenClaw { reply } => Origin::OpenClaw { reply },
        };
        let q = Question {
            id: id.clone(),
            text: parsed.text,
            origin,
            received: now,
        };
        // One question larger than the bound may still wait alone.
        let len = q.text.len() as u64;
        let waiting = self.arriving.arriving_bytes.load(Ordering::Relaxed);
        if waiting > 0 && waiting + len > self.max_bytes {
            bump(&counts.refused);
            log::warn!(
                "agent: busy ({} KiB of questions waiting: [agent] queue_kb); ignored one on {key}",
                waiting >> 10
            );
            return Offered::Busy;
        }
        if self.questions.try_send(q).is_err() {
            bump(&counts.refused);
            log::warn!("agent: busy (64 questions waiting); ignored one on {key}");
            return Offered::Busy;
        }
        self.arriving
            .arriving_bytes
            .fetch_add(len, Ordering::Relaxed);
        bump(&counts.questions);
        Offered::Accepted(id)
    }
}

impl QuestionIntake for Intake {
    fn offer(&self, from: Arrival<'_>, payload: &[u8]) -> Offered {
        self.offer_at(from, payload, now_us())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intake(limit: u32) -> (Intake, async_channel::Receiver<Question>) {
        let (tx, rx) = async_channel::bounded(2);
        let stats = std::sync::Arc::new(crate::agent::worker::LlmStats::default());
        (Intake::new("n", limit, tx, stats, 1 << 20), rx)
    }

    fn mqtt(topic: &str) -> Arrival<'_> {
        Arrival::Mqtt { topic, own: false }
    }

    #[test]
    fn payloads_are_plain_text_or_json() {
        assert_eq!(
            parse(b"  how warm is it?\n"),
            Parsed {
                text: "how warm is it?".into(),
                id: None,
                reply_to: None
            }
        );
        let p = parse(br#"{"id": "q1", "question": "up?", "reply_to": "r/me"}"#);
        assert_eq!((p.text.as_str(), p.id.as_deref()), ("up?", Some("q1")));
        assert_eq!(p.reply_to.as_deref(), Some("r/me"));
        assert_eq!(parse(br#"{"query": "q"}"#).text, "q");
    }

    #[test]
    fn answers_status_readings_states_and_own_messages_never_start_the_agent() {
        let (i, rx) = intake(100);
        for t in ["n/answers", "n/status", "n/readings", "n/state/system:cpu"] {
            assert_eq!(i.offer_at(mqtt(t), b"hi", 0), Offered::Ignored, "{t}");
        }
        let own = Arrival::Mqtt {
            topic: "n/ask",
            own: true,
        };
        assert_eq!(i.offer_at(own, b"hi", 0), Offered::Ignored);
        assert_eq!(i.offer_at(mqtt("n/ask"), b"  ", 0), Offered::Ignored);
        assert!(rx.try_recv().is_err());
        assert_eq!(i.stats.mqtt.ignored.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn questions_waiting_are_bounded_in_bytes_as_well_as_in_number() {
        let (tx, rx) = async_channel::bounded(64);
        let stats = std::sync::Arc::new(crate::agent::worker::LlmStats::default());
        let i = Intake::new("n", 1000, tx, stats.clone(), 2048);
        let long = |n: usize| "x".repeat(n);
        assert!(matches!(
            i.offer_at(mqtt("a/ask"), long(1500).as_bytes(), 0),
            Offered::Accepted(_)
        ));
        // Past 2 KiB waiting: refused as busy and counted, though 63 slots are free.
        assert_eq!(
            i.offer_at(mqtt("b/ask"), long(1000).as_bytes(), 1),
            Offered::Busy
        );
        assert_eq!(i.stats.mqtt.refused.load(Ordering::Relaxed), 1);
        assert_eq!(stats.arriving_bytes.load(Ordering::Relaxed), 1500);
        // The `llm` thread takes the first up (and subtracts it): room again, and one
        // question larger than the whole bound may wait alone.
        let q = rx.try_recv().unwrap();
        stats
            .arriving_bytes
            .fetch_sub(q.text.len() as u64, Ordering::Relaxed);
        assert!(matches!(
            i.offer_at(mqtt("b/ask"), long(4000).as_bytes(), 2),
            Offered::Accepted(_)
        ));
    }

    #[test]
    fn each_topic_is_rate_limited_per_minute() {
        let (i, rx) = intake(1);
        assert!(matches!(
            i.offer_at(mqtt("a/ask"), b"1", 0),
            Offered::Accepted(_)
        ));
        assert_eq!(i.offer_at(mqtt("a/ask"), b"2", 1), Offered::RateLimited);
        // Another topic has its own budget; the next minute a fresh one.
        assert!(matches!(
            i.offer_at(mqtt("b/ask"), b"3", 2),
            Offered::Accepted(_)
        ));
        let _ = rx.try_recv();
        assert!(matches!(
            i.offer_at(mqtt("a/ask"), b"4", MINUTE),
            Offered::Accepted(_)
        ));
        assert_eq!(i.stats.mqtt.refused.load(Ordering::Relaxed), 1);
        // A full agent queue refuses rather than waits.
        let (i, _rx) = intake(100);
        for n in 0..2 {
            assert!(matches!(
                i.offer_at(mqtt("a/ask"), b"q", n),
                Offered::Accepted(_)
            ));
        }
        assert_eq!(i.offer_at(mqtt("a/ask"), b"q", 3), Offered::Busy);
    }

    #[test]
    fn questions_carry_their_origin_and_an_id() {
        let (i, rx) = intake(10);
        let r = i.offer_at(
            mqtt("n/ask"),
            br#"{"question": "up?", "reply_to": "bad/#"}"#,
            5_000,
        );
        assert_eq!(r, Offered::Accepted("n-5-1".into()));
        let q = rx.try_recv().unwrap();
        assert!(
            matches!(&q.origin, Origin::Mqtt { topic, reply_to: None } if topic == "n/ask"),
            "a wildcard reply_to is dropped: {:?}",
            q.origin
        );
        let (reply, _answers) = async_channel::bounded(1);
        let r = i.offer_at(
            Arrival::Http { reply },
            br#"{"id": "h1", "question": "x"}"#,
            6,
        );
        assert_eq!(r, Offered::Accepted("h1".into()));
        assert!(matches!(rx.try_recv().unwrap().origin, Origin::Http { .. }));
        assert_eq!(i.stats.http.questions.load(Ordering::Relaxed), 1);
    }
}
