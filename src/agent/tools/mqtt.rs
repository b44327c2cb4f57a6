//! MQTT tools: `publish` and `get_recent_messages`.

use serde_json::{Value as Json, json};

use super::schema::{args_obj, int_arg, str_arg};
use super::{Tool, ToolContext};
use crate::edges::mqtt::topic::{MAX_TOPIC_LEN, validate_topic};
use crate::graph::MICROS_PER_SEC;
use crate::messages::Publish;

/// The original's failure message when the message cannot be handed to MQTT.
const FAILED: &str = "Failed to publish message";

pub const DEFAULT_COUNT: i64 = 10;
pub const MAX_COUNT: i64 = 1000;

/// Topic expansion as the original: `smollama/...` is absolute, anything else goes under
/// this node's prefix.
pub fn expand_topic(prefix: &str, topic: &str) -> String {
    if topic.starts_with("smollama/") {
        topic.to_string()
    } else {
        format!("{prefix}/{topic}")
    }
}

pub struct PublishTool;

impl Tool for PublishTool {
    fn name(&self) -> &'static str {
        "publish"
    }

    fn description(&self) -> &'static str {
        "Publish a message over MQTT; a topic not starting with 'smollama/' is placed under \
         this node's prefix (e.g. 'alerts' becomes 'smollama/<node>/alerts')."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "topic": {
                    "type": "string",
                    "description": "Topic, relative to this node's prefix unless it starts with 'smollama/'; no wildcards",
                },
                "message": {
                    "type": "string",
                    "description": "The message text to send",
                },
            },
            "required": ["topic", "message"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let topic = str_arg(&args, "topic").unwrap_or("");
        let message = str_arg(&args, "message").unwrap_or("");
        let fail = |error: String| json!({"success": false, "error": error});
        let Some(mqtt) = &ctx.mqtt else {
            log::info!("agent: publish to '{topic}' refused: MQTT is not configured");
            return Ok(fail(FAILED.into()));
        };
        let full = expand_topic(&mqtt.prefix, topic);
        if let Err(e) = validate_topic(&full, MAX_TOPIC_LEN) {
            return Ok(fail(e));
        }
        let msg = Publish {
            topic: full.clone(),
            payload: message.as_bytes().to_vec(),
            qos: 1,
            retain: false,
        };
        match mqtt.publish.try_send(msg) {
            Ok(()) => {
                log::info!("agent: publish {full} ({} bytes)", message.len());
                Ok(json!({"success": true, "topic": topic, "message": message}))
            }
            Err(e) => {
                let why = if e.is_full() {
                    "queue full"
                } else {
                    "MQTT stopped"
                };
                log::warn!("agent: publish {full} failed: {why}");
                Ok(fail(FAILED.into()))
            }
        }
    }
}

pub struct GetRecentMessages;

impl Tool for GetRecentMessages {
    fn name(&self) -> &'static str {
        "get_recent_messages"
    }

    fn description(&self) -> &'static str {
        "Get the most recent MQTT messages this node received, newest first, optionally only \
         those of one exact topic."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "topic": {
                    "type": "string",
                    "description": "Only messages on this exact topic (no wildcards)",
                },
                "count": {
                    "type": "integer",
                    "description": "At most this many messages (default 10)",
                },
            },
            "required": [],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let topic = str_arg(&args, "topic")
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let count = int_arg(&args, "count")
            .unwrap_or(DEFAULT_COUNT)
            .clamp(1, MAX_COUNT) as usize;
        let Some(mqtt) = &ctx.mqtt else {
            return Ok(json!({"count": 0, "messages": []}));
        };
        // (ts, topic, index within the topic's queue, payload)
        let mut all: Vec<(i64, String, usize, String)> = Vec::new();
        {
            let recent = match mqtt.recent.lock() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            for (t, q) in recent.by_topic.iter() {
                if topic.is_some_and(|want| want != t) {
                    continue;
                }
                for (i, (ts, payload)) in q.iter().enumerate() {
                    all.push((*ts, t.clone(), i, payload.clone()));
                }
            }
        }
        // Newest first; ties: later in its queue first, then by topic for stability.
        all.sort_by(|a, b| b.0.cmp(&a.0).then(b.2.cmp(&a.2)).then(a.1.cmp(&b.1)));
        all.truncate(count);
        let messages: Vec<Json> = all
            .into_iter()
            .map(|(ts, topic, _, payload)| {
                json!({
                    "topic": topic,
                    "payload": payload,
                    "timestamp": ts as f64 / MICROS_PER_SEC as f64,
                })
            })
            .collect();
        Ok(json!({"count": messages.len(), "messages": messages}))
    }
}

pub const PUBLISH: crate::plugins::Kind =
    crate::plugins::tool("publish", "publish a message to the MQTT broker", || {
        Box::new(PublishTool)
    });
pub const GET_RECENT_MESSAGES: crate::plugins::Kind = crate::plugins::tool(
    "get_recent_messages",
    "messages recently received over MQTT",
    || Box::new(GetRecentMessages),
);

#[cfg(test)]
mod tests {
    use super::super::registry::ToolRegistry;
    use super::super::testutil::Fixture;
    use super::*;

    #[test]
    fn schemas() {
        let p = PublishTool.parameters();
        assert_eq!(PublishTool.name(), "publish");
        assert_eq!(p["required"], json!(["topic", "message"]));
        assert_eq!(p["properties"]["topic"]["type"], "string");
        assert_eq!(p["properties"]["message"]["type"], "string");
        let p = GetRecentMessages.parameters();
        assert_eq!(GetRecentMessages.name(), "get_recent_messages");
        assert_eq!(p["required"], json!([]));
        assert_eq!(p["properties"]["topic"]["type"], "string");
        assert_eq!(p["properties"]["count"]["type"], "integer");
    }

    #[test]
    fn expansion() {
        assert_eq!(expand_topic("smollama/n1", "alerts"), "smollama/n1/alerts");
        assert_eq!(
            expand_topic("smollama/n1", "smollama/n2/cmd"),
            "smollama/n2/cmd"
        );
    }

    #[test]
    fn publish_puts_the_message_on_the_queue() {
        let mut fx = Fixture::new("publish");
        let (rx, _) = fx.with_mqtt(1);
        let r = ToolRegistry::with_core_tools();
        let out = r.execute(
            "publish",
            &json!({"topic": "alerts", "message": "hot"}),
            &fx.ctx,
        );
        assert_eq!(
            out,
            json!({"success": true, "topic": "alerts", "message": "hot"})
        );
        let m = rx.try_recv().unwrap().publish;
        assert_eq!(m.topic, "smollama/test-node/alerts");
        assert_eq!(m.payload, b"hot");
        assert_eq!((m.qos, m.retain), (1, false));

        let out = r.execute(
            "publish",
            &json!({"topic": "smollama/other/cmd", "message": "go"}),
            &fx.ctx,
        );
        assert_eq!(out["success"], true);
        assert_eq!(rx.try_recv().unwrap().publish.topic, "smollama/other/cmd");

        // Queue full.
        r.execute("publish", &json!({"topic": "a", "message": "1"}), &fx.ctx);
        let out = r.execute("publish", &json!({"topic": "a", "message": "2"}), &fx.ctx);
        assert_eq!(
            out,
            json!({"success": false, "error": "Failed to publish message"})
        );
        assert_eq!(rx.try_recv().unwrap().publish.payload, b"1");
        // Closed.
        drop(rx);
        let out = r.execute("publish", &json!({"topic": "a", "message": "3"}), &fx.ctx);
        assert_eq!(out["success"], false);
    }

    #[test]
    fn publish_refuses_wildcards_and_reports_no_mqtt() {
        let mut fx = Fixture::new("publish-refuse");
        let r = ToolRegistry::with_core_tools();
        let out = r.execute(
            "publish",
            &json!({"topic": "alerts", "message": "x"}),
            &fx.ctx,
        );
        assert_eq!(
            out,
            json!({"success": false, "error": "Failed to publish message"})
        );

        let (rx, _) = fx.with_mqtt(8);
        for t in ["alerts/#", "+/x", "smollama/+/cmd"] {
            let out = r.execute("publish", &json!({"topic": t, "message": "x"}), &fx.ctx);
            assert_eq!(out["success"], false, "{t}");
            assert!(out["error"].as_str().unwrap().contains("wildcard"), "{out}");
        }
        assert!(rx.try_recv().is_err());
        let out = r.execute("publish", &json!({"topic": "alerts"}), &fx.ctx);
        assert_eq!(out["error"], "argument 'message': required but missing");
    }

    #[test]
    fn recent_messages_newest_first() {
        let mut fx = Fixture::new("recent");
        let r = ToolRegistry::with_core_tools();
        assert_eq!(
            r.execute("get_recent_messages", &json!({}), &fx.ctx),
            json!({"count": 0, "messages": []})
        );
        let (_rx, recent) = fx.with_mqtt(8);
        {
            let mut rec = recent.lock().unwrap();
            rec.by_topic.insert(
                "home/kitchen".into(),
                [(1_000_000, "a".to_string()), (3_500_000, "c".to_string())].into(),
            );
            rec.by_topic
                .insert("home/door".into(), [(2_000_000, "b".to_string())].into());
        }
        let out = r.execute("get_recent_messages", &json!({}), &fx.ctx);
        assert_eq!(out["count"], 3);
        let payloads: Vec<&str> = out["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["payload"].as_str().unwrap())
            .collect();
        assert_eq!(payloads, ["c", "b", "a"]);
        assert_eq!(
            out["messages"][0],
            json!({"topic": "home/kitchen", "payload": "c", "timestamp": 3.5})
        );

        let out = r.execute("get_recent_messages", &json!({"count": "2"}), &fx.ctx);
        assert_eq!(out["count"], 2);
        assert_eq!(out["messages"][1]["payload"], "b");

        let out = r.execute(
            "get_recent_messages",
            &json!({"topic": "home/kitchen", "count": 1}),
            &fx.ctx,
        );
        assert_eq!(out["count"], 1);
        assert_eq!(out["messages"][0]["payload"], "c");

        let out = r.execute("get_recent_messages", &json!({"topic": "home/#"}), &fx.ctx);
        assert_eq!(out["count"], 0, "exact match only");
        let out = r.execute("get_recent_messages", &json!({"count": -3}), &fx.ctx);
        assert_eq!(out["count"], 1, "count is clamped to at least one");
    }
}
