//! The messages that cross subsystems, and nothing else: what the graph's sinks and the
//! agent hand to the MQTT edge ([`Publish`]), what the graph asks the MQTT edge to route
//! in ([`Subscription`]), what the MQTT edge keeps for the agent's tools ([`Recent`]),
//! a question's way into the agent and its answer's way back ([`QuestionIntake`],
//! [`Question`], [`Origin`], [`Answer`]), and the live events the dashboard follows
//! ([`EventHub`], in `messages/events.rs`), the queue that carries [`Publish`]es to
//! the MQTT worker, bounded in bytes ([`PublishTx`], in `messages/publish_queue.rs`),
//! and what the OpenClaw gateway is told as it happens ([`NodeEvents`], in
//! `messages/node_events.rs`).
//!
//! Edges and the agent both import this module and never each other: an edge offers a
//! question through [`QuestionIntake`] (the agent implements it, app hands it over), and
//! an answer goes back to where its question came from ([`Answer::deliver`]). This module
//! imports only the graph's item types.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value as Json, json};

use crate::graph::{Item, Micros};

mod events;
pub use events::{ClientStats, EventHub, EventKind, EventStats, Got};
mod publish_queue;
pub use publish_queue::{Keep, PublishQueueStats, PublishRx, PublishTx, Queued, publish_queue};
mod node_events;
pub use node_events::{GatewayQuestion, NodeEvent, NodeEvents};

/// One message for the broker, from a sink, a tool or an answer. QoS 1 messages go
/// through the store's outbox (`store/outbox.rs`), which persists exactly these fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    /// 0, 1 or 2.
    pub qos: u8,
    pub retain: bool,
}

/// The replicated log's side of MQTT (`crate::sync::mqtt` implements it; app hands it
/// to the MQTT edge, which knows nothing else of sync): which topics it takes, what it
/// answers to a message on them, and what it sends on every (re)connect. What it returns
/// is published QoS 1 through the outbox.
pub trait SyncPeer: Send + Sync {
    /// Topic filters to subscribe to.
    fn filters(&self) -> Vec<String>;
    /// A message on one of them (merged into the log here, on the MQTT worker's
    /// thread: one LMDB write transaction); returns messages to publish.
    fn on_message(&self, topic: &str, payload: &[u8]) -> Vec<Publish>;
    /// Connected (again): catch-up requests to every known node.
    fn on_connect(&self) -> Vec<Publish>;
}

/// An mqtt source's subscription, built by the graph runner for the MQTT edge: messages
/// on `filters` are parsed (a JSON pointer for non-batch payloads, a default unit) and
/// their readings go to `tx`, the source's channel, one batch per message.
///
/// The batches are a fixed pool of buffers: the source sends each one back on `spare`
/// once it has forwarded its readings, and the MQTT worker fills only a buffer it holds.
/// So the hand-off can never be full when the worker sends (nothing is dropped there),
/// and a graph slower than the network holds the worker back instead: it waits for a
/// buffer before it takes the next message, and the socket and the broker hold the rest.
pub struct Subscription {
    pub source: String,
    pub filters: Vec<String>,
    pub pointer: Option<String>,
    pub unit: Option<String>,
    pub tx: async_channel::Sender<Vec<Item>>,
    pub spare: async_channel::Receiver<Vec<Item>>,
}

/// Topics tracked per topic (recent messages, malformed counts, question rate limits) at
/// most, so memory and status stay small whatever the topics.
pub(crate) const MAX_TRACKED_TOPICS: usize = 256;
/// Topics longer than this are tracked under their first `MAX_TOPIC_KEY` bytes.
pub(crate) const MAX_TOPIC_KEY: usize = 200;
/// Recent messages are kept for the agent cut to this many bytes each (and in all to
/// `[mqtt] recent_max_kb`, the oldest going first).
const RECENT_MAX_PAYLOAD: usize = 2048;

/// `topic` cut to `MAX_TOPIC_KEY` bytes (at a character boundary), for map keys.
pub(crate) fn topic_key(topic: &str) -> &str {
    let mut end = topic.len().min(MAX_TOPIC_KEY);
    while !topic.is_char_boundary(end) {
        end -= 1;
    }
    &topic[..end]
}

/// The last messages the MQTT edge saw per topic, for the agent's `get_recent_messages`
/// tool: at most `MAX_TRACKED_TOPICS` topics, each payload cut to `RECENT_MAX_PAYLOAD`
/// bytes, the payloads `max_bytes` in all (`[mqtt] recent_max_kb`).
#[derive(Default)]
pub struct Recent {
    pub by_topic: HashMap<String, VecDeque<(Micros, String)>>,
    /// Payload bytes held in `by_topic`.
    bytes: usize,
}

impl Recent {
    /// Payload bytes held now (for status).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keep `payload` as the newest message of `topic`, at most `keep` per topic and
    /// `max_bytes` of payloads in all.
    pub fn push(&mut self, topic: &str, ts: Micros, payload: &[u8], keep: usize, max_bytes: usize) {
        if keep == 0 || max_bytes == 0 {
            return;
        }
        let topic = topic_key(topic);
        if self.by_topic.len() >= MAX_TRACKED_TOPICS && !self.by_topic.contains_key(topic) {
            return;
        }
        let text = if payload.len() > RECENT_MAX_PAYLOAD {
            let mut t = String::from_utf8_lossy(&payload[..RECENT_MAX_PAYLOAD]).into_owned();
            t.push_str(" [cut]");
            t
        } else {
            String::from_utf8_lossy(payload).into_owned()
        };
        self.bytes += text.len();
        let q = self.by_topic.entry(topic.to_string()).or_default();
        if q.len() >= keep
            && let Some((_, old)) = q.pop_front()
        {
            self.bytes -= old.len();
        }
        q.push_back((ts, text));
        // Over budget: drop the oldest messages, this topic's first (it is the busy one),
        // then any other's; a last message alone over the budget goes too.
        while self.bytes > max_bytes {
            let busy = self.by_topic.get(topic).is_some_and(|q| q.len() > 1);
            let q = if busy {
                self.by_topic.get_mut(topic)
            } else {
                self.by_topic.values_mut().find(|q| q.len() > 1)
            };
            let q = match q {
                Some(q) => q,
                None => match self.by_topic.values_mut().find(|q| !q.is_empty()) {
                    Some(q) => q,
                    None => break,
                },
            };
            if let Some((_, old)) = q.pop_front() {
                self.bytes -= old.len();
            }
        }
    }
}

/// Where a question came from, and so where its answer goes. New ways in (the OpenClaw
/// gateway) are new variants; [`Answer::deliver`] is the one place that routes them.
#[derive(Clone, Debug)]
pub enum Origin {
    /// An MQTT ask topic. The answer is published (QoS 1) on `reply_to`, the payload's
    /// valid `reply_to` topic, else on the node's answer topic.
    Mqtt {
        topic: String,
        reply_to: Option<String>,
    },
    /// An HTTP request (`POST /api/ask`) waiting for the answer body on `reply`. It
    /// cannot outlive the request, so it is never queued for later or persisted.
    Http { reply: async_channel::Sender<Json> },
    /// A `smollama.ask` invoke from an OpenClaw gateway, its answer awaited on `reply`
    /// by the `openclaw` thread, which returns it as the invoke's result. Like HTTP it
    /// cannot outlive the invoke, so it is never queued or persisted.
    OpenClaw { reply: async_channel::Sender<Json> },
}

impl Origin {
    /// Whether a question from here may wait (queued, persisted) while Ollama is away;
    /// an HTTP client waiting on its connection gets the error at once instead.
    pub fn can_wait(&self) -> bool {
        matches!(self, Origin::Mqtt { .. })
    }

    /// Whether a question from here may run write tools: an HTTP question carried the
    /// bearer token (`POST /api/ask` needs it), so it is; one over MQTT came from anyone
    /// who can publish on the broker, so only when `trust_mqtt` says so; one from the
    /// OpenClaw gateway came through an operator-approved command surface, so it is.
    pub fn trusted(&self, trust_mqtt: bool) -> bool {
        match self {
            Origin::Mqtt { .. } => trust_mqtt,
            Origin::Http { .. } | Origin::OpenClaw { .. } => true,
        }
    }

    /// For log lines: the ask topic, `HTTP` or `OpenClaw`.
    pub fn describe(&self) -> &str {
        match self {
            Origin::Mqtt { topic, .. } => topic,
            Origin::Http { .. } => "HTTP",
            Origin::OpenClaw { .. } => "OpenClaw",
        }
    }
}

/// A question for the agent, as its intake accepted it.
#[derive(Clone, Debug)]
pub struct Question {
    /// The asker's `id`, else one made up by the intake (`<node>-<ms>-<n>`).
    pub id: String,
    pub text: String,
    pub origin: Origin,
    /// When the intake took it (the agent's overhead counts from here).
    pub received: Micros,
}

impl Question {
    /// Its persisted form (the agent's queue in the store), for origins that can wait;
    /// `None` for those that cannot.
    pub fn to_json(&self) -> Option<Json> {
        match &self.origin {
            Origin::Mqtt { topic, reply_to } => Some(
                json!({"id": self.id, "text": self.text, "topic": topic, "reply_to": reply_to, "received": self.received}),
            ),
            Origin::Http { .. } | Origin::OpenClaw { .. } => None,
        }
    }

    /// Back from [`Question::to_json`]'s form (`None` when a field is missing).
    pub fn from_json(v: &Json) -> Option<Question> {
        Some(Question {
            id: v["id"].as_str()?.to_string(),
            text: v["text"].as_str()?.to_string(),
            origin: Origin::Mqtt {
                topic: v["topic"].as_str().unwrap_or("").to_string(),
                reply_to: v["reply_to"].as_str().map(str::to_string),
            },
            received: v["received"].as_i64().unwrap_or(0),
        })
    }
}

/// An answer on its way back: the body (`docs/mqtt.md`'s answer payload: `id`,
/// `answer` or `error`, ...) and the origin of its question.
pub struct Answer {
    pub origin: Origin,
    pub body: Json,
}

/// Why an answer did not reach its asker.
#[derive(Debug, PartialEq, Eq)]
pub enum Undelivered {
    /// MQTT is off, so an MQTT origin's answer has nowhere to go.
    NoMqtt,
    /// The MQTT edge's queue is full.
    QueueFull,
    /// The HTTP request gave up (timed out or closed) before the answer came.
    AskerGone,
}

impl Answer {
    /// Send it where its question came from: an MQTT origin's as a QoS 1 publish on its
    /// reply topic (else `answer_topic`) through `publish`; an HTTP origin's to its
    /// waiting request. Never blocks.
    pub fn deliver(
        self,
        publish: Option<&PublishTx>,
        answer_topic: &str,
    ) -> Result<(), Undelivered> {
        match self.origin {
            Origin::Mqtt { reply_to, .. } => {
                let publish = publish.ok_or(Undelivered::NoMqtt)?;
                let msg = Publish {
                    topic: reply_to.unwrap_or_else(|| answer_topic.to_string()),
                    payload: self.body.to_string().into_bytes(),
                    qos: 1,
                    retain: false,
                };
                publish.try_send(msg).map_err(|_| Undelivered::QueueFull)
            }
            Origin::Http { reply } | Origin::OpenClaw { reply } => reply
                .try_send(self.body)
                .map_err(|_| Undelivered::AskerGone),
        }
    }
}

/// How a message that may be a question arrived, as the edge that received it knows it.
pub enum Arrival<'a> {
    /// On an MQTT ask topic. `own`: the MQTT edge published this very message itself
    /// lately (it remembers hashes of what it sent), so it must not start the agent.
    Mqtt { topic: &'a str, own: bool },
    /// `POST /api/ask`; the answer body goes to `reply`.
    Http { reply: async_channel::Sender<Json> },
    /// A `smollama.ask` invoke from the OpenClaw gateway; the answer body goes to `reply`.
    OpenClaw { reply: async_channel::Sender<Json> },
}

/// What the intake did with an offered message.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    /// Handed to the agent under this id.
    Accepted(String),
    /// Not a question: a loop-guarded topic, this node's own message, or no text.
    Ignored,
    /// Over `[agent] rate_per_minute` for its topic (or origin).
    RateLimited,
    /// The agent has too many questions waiting.
    Busy,
}

/// The agent's door for questions, as an edge sees it. The agent implements it
/// (`agent/intake.rs`: payload parsing, the loop guard, rate limits) and app hands it to
/// the edges, so an edge never knows who answers. Called from edge threads.
pub trait QuestionIntake: Send + Sync {
    /// Offer `payload` (plain text, or JSON with `question` and optional `id` and
    /// `reply_to`) that arrived as `from`.
    fn offer(&self, from: Arrival<'_>, payload: &[u8]) -> Offered;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_questions_are_trusted_and_mqtt_ones_only_when_configured() {
        let (reply, _rx) = async_channel::bounded(1);
        assert!(Origin::Http { reply }.trusted(false));
        let mqtt = Origin::Mqtt {
            topic: "n/ask".into(),
            reply_to: None,
        };
        assert!(!mqtt.trusted(false));
        assert!(mqtt.trusted(true));
    }

    #[test]
    fn recent_messages_are_bounded_in_count_topics_and_bytes() {
        let mut r = Recent::default();
        for i in 0..5 {
            r.push("a", i, format!("{i}").as_bytes(), 3, 1 << 20);
        }
        let a: Vec<&str> = r.by_topic["a"].iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(a, ["2", "3", "4"], "the newest `keep` per topic");
        // A big payload is cut.
        r.push("big", 0, &[b'x'; 10_000], 3, 1 << 20);
        let big = &r.by_topic["big"][0].1;
        assert!(big.len() < RECENT_MAX_PAYLOAD + 16 && big.ends_with("[cut]"));
        // Topics beyond the limit are not tracked; long topics are tracked cut.
        for t in 0..MAX_TRACKED_TOPICS + 10 {
            r.push(&format!("t/{t}"), 0, b"1", 3, 1 << 20);
        }
        assert_eq!(r.by_topic.len(), MAX_TRACKED_TOPICS);
        let mut r = Recent::default();
        r.push(&"l".repeat(1000), 0, b"1", 3, 1 << 20);
        assert_eq!(r.by_topic.keys().next().unwrap().len(), MAX_TOPIC_KEY);
        // The byte budget holds with many big messages; the oldest go first.
        let mut r = Recent::default();
        for i in 0..2000u32 {
            r.push(
                &format!("t/{}", i % 8),
                i64::from(i),
                &[b'y'; 4096],
                1000,
                100_000,
            );
        }
        let held: usize = r.by_topic.values().flatten().map(|(_, p)| p.len()).sum();
        assert_eq!(held, r.bytes);
        assert!(r.bytes <= 100_000, "{}", r.bytes);
        let newest = r.by_topic["t/7"].back().unwrap().0;
        assert_eq!(newest, 1999);
    }

    #[test]
    fn answers_go_back_where_their_question_came_from() {
        let (tx, rx) = publish_queue(4, 1 << 20);
        let body = json!({"id": "q1", "answer": "42"});
        let mqtt = |reply_to: Option<&str>| Answer {
            origin: Origin::Mqtt {
                topic: "n/ask".into(),
                reply_to: reply_to.map(str::to_string),
            },
            body: body.clone(),
        };
        mqtt(Some("replies/me"))
            .deliver(Some(&tx), "n/answers")
            .unwrap();
        mqtt(None).deliver(Some(&tx), "n/answers").unwrap();
        let topics: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|q| q.publish)
            .map(|p| {
                assert_eq!((p.qos, p.retain), (1, false));
                assert_eq!(serde_json::from_slice::<Json>(&p.payload).unwrap(), body);
                p.topic
            })
            .collect();
        assert_eq!(topics, ["replies/me", "n/answers"]);
        assert_eq!(
            mqtt(None).deliver(None, "n/answers"),
            Err(Undelivered::NoMqtt)
        );
        let (reply, waiting) = async_channel::bounded(1);
        let http = Answer {
            origin: Origin::Http { reply },
            body: body.clone(),
        };
        http.deliver(None, "n/answers").unwrap();
        assert_eq!(waiting.try_recv().unwrap(), body);
        drop(waiting);
        let (reply, _) = async_channel::bounded::<Json>(1);
        let gone = Answer {
            origin: Origin::Http { reply },
            body,
        };
        assert_eq!(gone.deliver(None, "x"), Err(Undelivered::AskerGone));
    }

    #[test]
    fn only_questions_that_can_wait_are_persisted() {
        let q = Question {
            id: "q1".into(),
            text: "how warm?".into(),
            origin: Origin::Mqtt {
                topic: "n/ask".into(),
                reply_to: Some("r".into()),
            },
            received: 7,
        };
        let back = Question::from_json(&q.to_json().unwrap()).unwrap();
        assert_eq!(
            (back.id.as_str(), back.text.as_str(), back.received),
            ("q1", "how warm?", 7)
        );
        assert!(
            matches!(back.origin, Origin::Mqtt { topic, reply_to } if topic == "n/ask" && reply_to.as_deref() == Some("r"))
        );
        let (reply, _rx) = async_channel::bounded(1);
        let http = Question {
            origin: Origin::Http { reply },
            ..q
        };
        assert!(!http.origin.can_wait() && http.to_json().is_none());
    }
}
