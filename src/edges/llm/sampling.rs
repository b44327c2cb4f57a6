//! What is sent with every chat, to either backend: sampling settings and the tool
//! choice (`[llm]`).

use super::message::{Message, Role};

/// Which tool the model must call (`[llm] tool_choice`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// No tools offered.
    None,
    /// Some tool must be called.
    Required,
    /// This tool must be called.
    Function(String),
}

impl ToolChoice {
    /// `auto`, `none`, `required`, or a tool's name.
    pub fn parse(s: &str) -> ToolChoice {
        match s.trim() {
            "" | "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            name => ToolChoice::Function(name.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ToolChoice::Auto => "auto",
            ToolChoice::None => "none",
            ToolChoice::Required => "required",
            ToolChoice::Function(n) => n,
        }
    }
}

/// Sampling and tool settings sent with every chat, to either backend (unset ones are
/// not sent: the server's defaults apply).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub seed: Option<i64>,
    /// The context window (Ollama's `num_ctx`; an OpenAI server fixes it at start).
    pub num_ctx: Option<u32>,
    /// Most tokens per answer (OpenAI `max_tokens`, Ollama `num_predict`).
    pub max_tokens: Option<u32>,
    pub tool_choice: ToolChoice,
}

impl Sampling {
    /// The tool choice for the next call. A forced (`required`, a named tool) choice holds
    /// only until a tool has answered: once the last message is a tool result, the model
    /// picks (`auto`), so it can answer instead of calling the tool every round.
    pub fn choice_for(&self, messages: &[Message]) -> ToolChoice {
        let after_tool = messages.last().is_some_and(|m| m.role == Role::Tool);
        match &self.tool_choice {
            ToolChoice::Required | ToolChoice::Function(_) if after_tool => ToolChoice::Auto,
            c => c.clone(),
        }
    }

    /// From `[llm]`.
    pub fn from_settings(settings: &crate::config::Settings) -> Sampling {
        let l = &settings.llm;
        Sampling {
            temperature: l.temperature,
            seed: l.seed,
            num_ctx: l.num_ctx,
            max_tokens: l.max_tokens,
            tool_choice: ToolChoice::parse(&l.tool_choice),
        }
    }
}
