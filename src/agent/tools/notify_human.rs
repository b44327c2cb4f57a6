//! `notify_human`: a message for a person, through the OpenClaw gateway
//! (docs/openclaw.md). The tool only queues the alert in the store (`store::alerts`,
//! bounded, persisted); the `openclaw` thread delivers queued alerts in order as the
//! gateway's `agent.request` once connected and approved, and removes each only when the
//! gateway acknowledged it. Offered to the model only when `[openclaw] enabled`.

use serde_json::{Value as Json, json};

use super::schema::{args_obj, str_arg};
use super::{Tool, ToolContext};
use crate::store::alerts::AlertLimits;

/// What `device()` names: the registry offers the tool only while `[openclaw]` is on.
pub const DEVICE: &str = "openclaw";

/// Longer messages are refused (the gateway drops an `agent.request` over 20 000).
pub const MAX_MESSAGE: usize = 4000;

/// Queues an alert for the gateway; guarantees that an accepted alert is in the store
/// before the model is told so.
pub struct NotifyHuman;

impl Tool for NotifyHuman {
    fn name(&self) -> &'static str {
        "notify_human"
    }

    fn description(&self) -> &'static str {
        "Send a message to a person (WhatsApp, Telegram, email, ... through the OpenClaw \
         gateway). Use it for what a person must know or act on; it is delivered even if the \
         gateway is down now, once it is back."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "message": {"type": "string", "description": "What the person should read"},
                "urgency": {
                    "type": "string",
                    "enum": ["low", "normal", "high", "critical"],
                    "description": "How urgent it is (default normal)",
                },
                "channel": {
                    "type": "string",
                    "description": "The gateway channel to use (whatsapp, telegram, ...); default: the node's configured one",
                },
            },
            "required": ["message"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let message = str_arg(&args, "message").unwrap_or("").trim();
        if message.is_empty() {
            return Err("message is empty".into());
        }
        if message.chars().count() > MAX_MESSAGE {
            return Err(format!("message is longer than {MAX_MESSAGE} characters"));
        }
        let urgency = str_arg(&args, "urgency").unwrap_or("normal");
        let channel = str_arg(&args, "channel").unwrap_or("").trim();
        let alert = json!({
            "message": message,
            "urgency": urgency,
            "channel": channel,
            "ts": crate::clock::now_us(),
        });
        let o = &ctx.settings.openclaw;
        let limits = AlertLimits {
            max_alerts: u64::from(o.alert_queue_max),
            max_bytes: u64::from(o.alert_queue_kb) * 1024,
        };
        let (seq, dropped) = ctx
            .store
            .alerts_push(alert.to_string().as_bytes(), &limits)
            .map_err(|e| format!("cannot queue the alert: {e}"))?;
        if dropped > 0 {
            log::warn!(
                "notify_human: {dropped} alert(s) dropped to stay within [openclaw] alert_queue_max/alert_queue_kb"
            );
        }
        log::info!("notify_human: alert {seq} queued ({urgency})");
        Ok(json!({"queued": true, "id": seq, "urgency": urgency}))
    }

    fn writes(&self) -> bool {
        true
    }

    fn device(&self) -> Option<&'static str> {
        Some(DEVICE)
    }
}

pub const NOTIFY_HUMAN: crate::plugins::Kind = crate::plugins::tool(
    "notify_human",
    "a message to a person through the OpenClaw gateway",
    || Box::new(NotifyHuman),
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tools::testutil::Fixture;

    #[test]
    fn alerts_are_queued_in_order_and_bounded() {
        let f = Fixture::new("notify-human");
        let mut ctx = f.ctx.clone();
        ctx.settings.openclaw.alert_queue_max = 2;
        ctx.settings.openclaw.alert_queue_kb = 64;
        for m in ["one", "two", "three"] {
            let r = NotifyHuman
                .call(&json!({"message": m, "urgency": "high"}), &ctx)
                .unwrap();
            assert_eq!(r["queued"], true);
        }
        let (_, first) = ctx.store.alerts_read(1).unwrap().remove(0);
        let first: Json = serde_json::from_slice(&first).unwrap();
        assert_eq!(first["message"], "two", "the oldest was dropped");
        assert_eq!(first["urgency"], "high");
        let st = ctx.store.alerts_stats().unwrap();
        assert_eq!((st.queued, st.dropped), (2, 1));
        assert!(NotifyHuman.call(&json!({"message": "  "}), &ctx).is_err());
        assert!(NotifyHuman.writes(), "it needs a trusted asker");
    }

    #[test]
    fn offered_only_with_the_gateway_client_on() {
        let f = Fixture::new("notify-human-offered");
        let mut settings = f.ctx.settings.clone();
        let devices = &f.ctx.hardware.devices;
        let offered = |s: &crate::config::Settings| {
            crate::agent::tools::ToolRegistry::with_plugins(s, devices)
                .names()
                .contains(&"notify_human")
        };
        assert!(!offered(&settings), "[openclaw] is off by default");
        settings.openclaw.enabled = true;
        assert_eq!(offered(&settings), cfg!(feature = "openclaw"));
    }
}
