//! The OpenClaw gateway's commands over the agent's tools and intake: app's side of
//! `edges::openclaw::NodeCommands`, so the edge never imports the agent. Each command
//! runs its tool with the invoke's params checked against the tool's own schema; a
//! question goes to the agent's intake and its answer back as the invoke's result.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value as Json, json};

use crate::agent::tools::ToolContext;
use crate::agent::tools::registry::ToolRegistry;
use crate::agent::tools::schema;
use crate::edges::openclaw::commands;
use crate::edges::openclaw::{InvokeError, Invoked, NodeCommands};
use crate::messages::{Arrival, Offered, QuestionIntake};

/// The commands, runnable once `ready` (the graph is running).
pub(super) struct Bridge {
    pub tools: ToolRegistry,
    /// `trusted`: the gateway forwards an invoke only for a command surface its
    /// operator approved, so the write command (GPIO outputs) may run.
    pub ctx: ToolContext,
    pub intake: Option<Arc<dyn QuestionIntake>>,
    pub ready: Arc<AtomicBool>,
}

impl NodeCommands for Bridge {
    fn invoke(&self, command: &str, params: &Json) -> Invoked {
        match self.run(command, params) {
            Ok(Some(answer)) => Invoked::Later(answer),
            Ok(None) => {
                let tool = commands::find(command).and_then(|c| c.tool).unwrap_or("");
                Invoked::Done(self.tool(tool, params))
            }
            Err(e) => Invoked::Done(Err(e)),
        }
    }
}

impl Bridge {
    /// A question (`Ok(Some)`: its answer comes later), or `Ok(None)` for a tool command.
    fn run(
        &self,
        command: &str,
        params: &Json,
    ) -> Result<Option<async_channel::Receiver<Json>>, InvokeError> {
        if !self.ready.load(Ordering::Acquire) {
            return Err(InvokeError::new(
                InvokeError::NOT_READY,
                "the node is starting: its graph is not running yet",
            ));
        }
        let Some(cmd) = commands::find(command) else {
            let names: Vec<&str> = commands::COMMANDS.iter().map(|c| c.name).collect();
            return Err(InvokeError::new(
                InvokeError::UNKNOWN_COMMAND,
                format!(
                    "unknown command {command:?}; this node has {}",
                    names.join(", ")
                ),
            ));
        };
        if cmd.tool.is_some() {
            return Ok(None);
        }
        let question = params["question"].as_str().unwrap_or("").trim();
        if question.is_empty() {
            return Err(InvokeError::new(
                InvokeError::INVALID_PARAMS,
                "smollama.ask needs {\"question\": \"...\"}",
            ));
        }
        let intake = self.intake.as_ref().ok_or_else(|| {
            InvokeError::new(
                InvokeError::UNAVAILABLE,
                "the agent is off ([agent] enabled)",
            )
        })?;
        let (reply, answer) = async_channel::bounded(1);
        let payload = json!({ "question": question }).to_string();
        match intake.offer(Arrival::OpenClaw { reply }, payload.as_bytes()) {
            Offered::Accepted(_) => Ok(Some(answer)),
            Offered::RateLimited => Err(InvokeError::new(
                InvokeError::UNAVAILABLE,
                "over [agent] rate_per_minute questions from OpenClaw",
            )),
            Offered::Busy => Err(InvokeError::new(
                InvokeError::UNAVAILABLE,
                "the agent is busy",
            )),
            Offered::Ignored => Err(InvokeError::new(InvokeError::INVALID_PARAMS, "no question")),
        }
    }

    fn tool(&self, tool: &str, params: &Json) -> Result<Json, InvokeError> {
        let t = self.tools.get(tool).ok_or_else(|| {
            InvokeError::new(
                InvokeError::UNAVAILABLE,
                format!("this build has no {tool} tool"),
            )
        })?;
        let params = if params.is_null() {
            json!({})
        } else {
            params.clone()
        };
        let args = schema::validate(&t.parameters(), &params)
            .map_err(|e| InvokeError::new(InvokeError::INVALID_PARAMS, e))?;
        match t.call(&Json::Object(args), &self.ctx) {
            // Tools answer some failures in their result, as the model expects.
            Ok(v) => match v.get("error").and_then(Json::as_str) {
                Some(e) => Err(InvokeError::new(InvokeError::FAILED, e)),
                None => Ok(v),
            },
            Err(e) => Err(InvokeError::new(InvokeError::FAILED, e)),
        }
    }
}

/// Start the gateway client when `[openclaw] enabled` (no thread otherwise); a failure
/// to start (the identity file cannot be written) is logged and the rest runs.
pub(super) fn start(
    settings: &crate::config::Settings,
    store_dir: &std::path::Path,
    mut ctx: ToolContext,
    intake: Option<Arc<dyn QuestionIntake>>,
    ready: &Arc<AtomicBool>,
    events: Option<Arc<crate::messages::NodeEvents>>,
) -> Option<crate::edges::openclaw::Handle> {
    if !settings.openclaw.enabled {
        return None;
    }
    ctx.trusted = true;
    let store = ctx.store.clone();
    let bridge = Bridge {
        tools: ToolRegistry::with_core_tools(),
        ctx,
        intake,
        ready: ready.clone(),
    };
    match crate::edges::openclaw::start(crate::edges::openclaw::Parts {
        settings: settings.openclaw.clone(),
        node_name: settings.node.name.clone(),
        store_dir: store_dir.to_path_buf(),
        commands: Arc::new(bridge),
        store: store.clone(),
        events: events.unwrap_or_else(|| {
            Arc::new(crate::messages::NodeEvents::new(
                settings.openclaw.event_queue_max as usize,
            ))
        }),
    }) {
        Ok(h) => Some(h),
        Err(e) => {
            log::error!("openclaw: {e}; running without the gateway");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tools::testutil::Fixture;

    fn bridge(f: &Fixture, ready: bool) -> Bridge {
        let mut ctx = f.ctx.clone();
        ctx.trusted = true;
        Bridge {
            tools: ToolRegistry::with_core_tools(),
            ctx,
            intake: None,
            ready: Arc::new(AtomicBool::new(ready)),
        }
    }

    fn done(i: Invoked) -> Result<Json, InvokeError> {
        match i {
            Invoked::Done(r) => r,
            Invoked::Later(_) => panic!("a tool command answers at once"),
        }
    }

    #[test]
    fn commands_run_their_tools_with_structured_errors() {
        let f = Fixture::new("openclaw-bridge");
        let starting = bridge(&f, false);
        let e = done(starting.invoke("smollama.gpio.list", &json!({}))).unwrap_err();
        assert_eq!(e.code, InvokeError::NOT_READY);
        let b = bridge(&f, true);
        let pins = done(b.invoke("smollama.gpio.list", &json!({}))).unwrap();
        assert!(pins.to_string().contains("fan"), "{pins}");
        let e = done(b.invoke("smollama.nope", &json!({}))).unwrap_err();
        assert_eq!(e.code, InvokeError::UNKNOWN_COMMAND);
        assert!(e.message.contains("smollama.gpio.write"), "{}", e.message);
        let e = done(b.invoke("smollama.source.read", &json!({"source": 1}))).unwrap_err();
        assert_eq!(e.code, InvokeError::INVALID_PARAMS, "{}", e.message);
        let on = done(b.invoke(
            "smollama.gpio.write",
            &json!({"pin": "led", "state": "HIGH"}),
        ))
        .unwrap();
        assert_eq!(on["state"], "HIGH");
        let e = done(b.invoke(
            "smollama.gpio.write",
            &json!({"pin": "door", "state": "HIGH"}),
        ))
        .unwrap_err();
        assert_eq!(e.code, InvokeError::FAILED);
        let e = done(b.invoke("smollama.ask", &json!({"question": "hi"}))).unwrap_err();
        assert_eq!(e.code, InvokeError::UNAVAILABLE, "no agent: {}", e.message);
        let e = done(b.invoke("smollama.ask", &json!({}))).unwrap_err();
        assert_eq!(e.code, InvokeError::INVALID_PARAMS);
    }
}
