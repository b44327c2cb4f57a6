//! A chat as every backend sees it: messages, the tool calls a model makes, its reply.
//! Each backend's `wire.rs` turns these into its own JSON.

use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A tool the model asked to call; `arguments` is a JSON object (an OpenAI server's
/// JSON-string arguments are decoded before they get here).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolCall {
    pub name: String,
    pub arguments: Value,
}

/// One chat message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// Only on assistant messages.
    pub tool_calls: Vec<ToolCall>,
    /// Only on tool messages: the tool whose result `content` is. Tool results follow
    /// the assistant message that called them, in the order of its calls (the OpenAI
    /// codec pairs them with their `tool_call_id` by that order).
    pub tool_name: Option<String>,
}

impl Message {
    fn new(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_name: None,
        }
    }
    pub fn system(content: impl Into<String>) -> Message {
        Message::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Message {
        Message::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Message {
        Message {
            tool_calls,
            ..Message::new(Role::Assistant, content)
        }
    }
    pub fn tool(name: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            tool_name: Some(name.into()),
            ..Message::new(Role::Tool, content)
        }
    }
}

/// The assistant's answer: text and/or tool calls.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatReply {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub total_duration_ns: Option<u64>,
}
