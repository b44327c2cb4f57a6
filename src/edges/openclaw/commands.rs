//! The commands this node offers the gateway (`node.invoke`), as the edge sees them:
//! their names, the tool each runs, and the door app hands in ([`NodeCommands`]) so the
//! edge never knows the agent. Names need the operator's allowlist entry
//! (`gateway.nodes.commands.allow`, docs/openclaw.md): the Linux default drops them.

use serde_json::Value as Json;

/// One command: its gateway name and the agent tool (or agent question) behind it.
pub struct Command {
    pub name: &'static str,
    /// The `agent::tools` tool it runs; `None` for `smollama.ask` (the agent itself).
    pub tool: Option<&'static str>,
}

/// Every command, in the order they are declared in `connect`.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "smollama.sources.list",
        tool: Some("list_sources"),
    },
    Command {
        name: "smollama.source.read",
        tool: Some("read_source"),
    },
    Command {
        name: "smollama.history",
        tool: Some("get_reading_history"),
    },
    Command {
        name: "smollama.recall",
        tool: Some("recall"),
    },
    Command {
        name: "smollama.gpio.list",
        tool: Some("list_gpio"),
    },
    Command {
        name: "smollama.gpio.write",
        tool: Some("write_gpio"),
    },
    Command {
        name: "smollama.ask",
        tool: None,
    },
];

/// Capability categories declared beside the commands.
pub const CAPS: &[&str] = &["sensors", "memory", "gpio", "agent"];

pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// A failed invoke as the gateway gets it: `error: {code, message}`.
#[derive(Clone, Debug, PartialEq)]
pub struct InvokeError {
    pub code: &'static str,
    pub message: String,
}

impl InvokeError {
    /// The graph is not running yet (start-up) or any more: the gateway retries.
    pub const NOT_READY: &'static str = "NODE_NOT_READY";
    pub const UNKNOWN_COMMAND: &'static str = "UNKNOWN_COMMAND";
    pub const INVALID_PARAMS: &'static str = "INVALID_PARAMS";
    pub const FAILED: &'static str = "COMMAND_FAILED";
    pub const UNAVAILABLE: &'static str = "UNAVAILABLE";
    pub const TOO_LARGE: &'static str = "PAYLOAD_TOO_LARGE";

    pub fn new(code: &'static str, message: impl Into<String>) -> InvokeError {
        InvokeError {
            code,
            message: message.into(),
        }
    }
}

/// What an invoke gives: a result now, or one later (a question for the agent).
pub enum Invoked {
    Done(Result<Json, InvokeError>),
    Later(async_channel::Receiver<Json>),
}

/// Runs the commands (app implements it over the agent's tools and intake). Called on
/// the `openclaw` thread.
pub trait NodeCommands: Send + Sync {
    fn invoke(&self, command: &str, params: &Json) -> Invoked;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_are_unique_and_namespaced() {
        for c in COMMANDS {
            assert!(c.name.starts_with("smollama."), "{}", c.name);
            assert_eq!(COMMANDS.iter().filter(|d| d.name == c.name).count(), 1);
        }
        assert!(find("smollama.ask").unwrap().tool.is_none());
        assert!(find("system.run").is_none());
    }
}
