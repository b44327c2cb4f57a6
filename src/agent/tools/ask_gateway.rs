//! `ask_gateway`: a question to the OpenClaw gateway's own agent, which answers with its
//! tools, memory and channels (docs/openclaw.md, "What a node may call"). A node may
//! call none of the gateway's methods (`tools.invoke`, `memory.search`, `agent` are for
//! operators), so this is the one way the protocol carries: the `openclaw` thread starts
//! a run in the session `node-<deviceId>-ask` (`node.event` `agent.request`), follows
//! that session (`chat.subscribe`) and hands back the run's final reply. Each question is
//! a model run on the gateway. Offered only with `[openclaw] enabled`; a write tool,
//! since the gateway's agent may act on what it is told.

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::schema::{args_obj, str_arg};
use super::{Tool, ToolContext};
use crate::messages::GatewayQuestion;

/// Longer questions are refused (the gateway drops an `agent.request` over 20 000).
const MAX_QUESTION: usize = 4000;

/// Waits for the gateway's agent; guarantees an answer or an error within
/// `[openclaw] ask_timeout` (and a few seconds).
pub struct AskGateway;

impl Tool for AskGateway {
    fn name(&self) -> &'static str {
        "ask_gateway"
    }

    fn description(&self) -> &'static str {
        "Ask the OpenClaw gateway's agent (which has its own tools, memory and the people it \
         talks to) and wait for its answer. Slow: each question is a model run there."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "What to ask the gateway's agent"},
            },
            "required": ["question"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let question = str_arg(&args, "question").unwrap_or("").trim();
        if question.is_empty() {
            return Err("question is empty".into());
        }
        if question.chars().count() > MAX_QUESTION {
            return Err(format!("question is longer than {MAX_QUESTION} characters"));
        }
        let gateway = ctx
            .node_events
            .as_ref()
            .ok_or("the OpenClaw gateway client is off ([openclaw] enabled)")?;
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        gateway.ask(GatewayQuestion {
            question: question.to_string(),
            reply,
        })?;
        // The client answers by ask_timeout; the margin covers a question still waiting
        // for the connection.
        let wait = Duration::from_micros(ctx.settings.openclaw.ask_timeout.max(0) as u64)
            + Duration::from_secs(5);
        match answer.recv_timeout(wait) {
            Ok(Ok(text)) => Ok(json!({"answer": text})),
            Ok(Err(e)) => Err(e),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Still queued (no connection): withdrawn, so it does not go later.
                drop(gateway.take_question());
                Err("no answer from the gateway's agent within [openclaw] ask_timeout".into())
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err("the gateway connection ended before its agent answered".into())
            }
        }
    }

    fn writes(&self) -> bool {
        true
    }

    fn device(&self) -> Option<&'static str> {
        Some(super::notify_human::DEVICE)
    }
}

pub const ASK_GATEWAY: crate::plugins::Kind = crate::plugins::tool(
    "ask_gateway",
    "a question to the OpenClaw gateway's agent, answered with its tools and memory",
    || Box::new(AskGateway),
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tools::testutil::Fixture;
    use std::sync::Arc;

    #[test]
    fn a_question_goes_to_the_gateway_client_and_its_answer_comes_back() {
        let f = Fixture::new("ask-gateway");
        let mut ctx = f.ctx.clone();
        assert!(
            AskGateway.call(&json!({"question": "hi"}), &ctx).is_err(),
            "client off"
        );
        let q = Arc::new(crate::messages::NodeEvents::new(4));
        ctx.node_events = Some(q.clone());
        let answering = std::thread::spawn(move || {
            loop {
                if let Some(g) = q.take_question() {
                    assert_eq!(g.question, "Will it rain?");
                    g.reply.send(Ok("Yes, at 4pm.".into())).unwrap();
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let r = AskGateway
            .call(&json!({"question": " Will it rain? "}), &ctx)
            .unwrap();
        assert_eq!(r["answer"], "Yes, at 4pm.");
        answering.join().unwrap();
        assert!(AskGateway.call(&json!({"question": ""}), &ctx).is_err());
    }
}
