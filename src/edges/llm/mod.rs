//! The model server the agent asks, whichever backend answers: [`Llm`] is what the tool
//! loop, the observation loop, memory and status hold. `[llm] backend` picks Ollama
//! (`edges/ollama`, its `/api/*` protocol) or any OpenAI-compatible server
//! (`edges/openai`: llama.cpp's llama-server, llama-cpp-python, LM Studio, vLLM, ...).
//!
//! Both speak the same [`Message`]s and return the same [`ChatReply`] and [`LlmError`],
//! and both send the same [`Sampling`] settings, so nothing above this knows which
//! server it talks to.

pub mod error;
pub mod http;
pub mod message;
mod resolve;
pub mod sampling;

use serde_json::Value;

pub use error::LlmError;
pub use message::{ChatReply, Message, Role, ToolCall};
pub use sampling::{Sampling, ToolChoice};

use crate::edges::ollama::{Ollama, OllamaConfig};
use crate::edges::openai::{OpenAi, OpenAiConfig};

pub use crate::config::settings::Backend;

/// The model server: one of the two clients. Blocking; callers run it on their thread.
pub enum Llm {
    Ollama(Ollama),
    OpenAi(OpenAi),
}

impl Llm {
    /// The chat client `[llm] backend` names, with its sampling settings.
    pub fn from_settings(settings: &crate::config::Settings) -> Llm {
        let sampling = Sampling::from_settings(settings);
        match settings.llm.backend {
            Backend::Ollama => Llm::Ollama(
                Ollama::new(OllamaConfig::from_settings(settings)).with_sampling(sampling),
            ),
            Backend::OpenAi => Llm::OpenAi(
                OpenAi::new(OpenAiConfig::from_settings(settings)).with_sampling(sampling),
            ),
        }
    }

    /// The embedding client: the same server with `[memory] embedding_model`, no retries
    /// (a failed embedding falls back to words at once); `total` shortens the budget of a
    /// call (an HTTP request waiting on it).
    pub fn embedder(settings: &crate::config::Settings, total: Option<std::time::Duration>) -> Llm {
        let model = settings.memory.embedding_model.clone();
        match settings.llm.backend {
            Backend::Ollama => {
                let mut c = OllamaConfig::from_settings(settings);
                c.model = model;
                c.retries = 0;
                c.total_timeout = total.unwrap_or(c.total_timeout);
                Llm::Ollama(Ollama::new(c))
            }
            Backend::OpenAi => {
                let mut c = OpenAiConfig::from_settings(settings);
                c.model = model;
                c.retries = 0;
                c.total_timeout = total.unwrap_or(c.total_timeout);
                Llm::OpenAi(OpenAi::new(c))
            }
        }
    }

    /// For `smollama status` and probes: short timeouts, no retries.
    pub fn probe_from_settings(settings: &crate::config::Settings) -> Llm {
        let short = |c: &mut std::time::Duration, s: u64| {
            *c = std::time::Duration::from_secs(s);
        };
        match settings.llm.backend {
            Backend::Ollama => {
                let mut c = OllamaConfig::from_settings(settings);
                short(&mut c.connect_timeout, 2);
                short(&mut c.read_timeout, 3);
                short(&mut c.total_timeout, 5);
                c.retries = 0;
                Llm::Ollama(Ollama::new(c))
            }
            Backend::OpenAi => {
                let mut c = OpenAiConfig::from_settings(settings);
                short(&mut c.connect_timeout, 2);
                short(&mut c.read_timeout, 3);
                short(&mut c.total_timeout, 5);
                c.retries = 0;
                Llm::OpenAi(OpenAi::new(c))
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Llm::Ollama(_) => Backend::Ollama,
            Llm::OpenAi(_) => Backend::OpenAi,
        }
    }

    /// The model asked.
    pub fn model(&self) -> &str {
        match self {
            Llm::Ollama(o) => &o.config().model,
            Llm::OpenAi(o) => &o.config().model,
        }
    }

    /// The server's URL as configured (never with a key).
    pub fn server(&self) -> &str {
        match self {
            Llm::Ollama(o) => &o.config().base_url,
            Llm::OpenAi(o) => &o.config().base_url,
        }
    }

    /// One whole answer. `tools` is a JSON array of `{type:"function", function:{name,
    /// description, parameters}}` (may be empty); `format` is `"json"` or a JSON schema
    /// for a structured answer.
    pub fn chat(
        &self,
        messages: &[Message],
        tools: &Value,
        format: Option<&Value>,
    ) -> Result<ChatReply, LlmError> {
        match self {
            Llm::Ollama(o) => o.chat(messages, tools, format),
            Llm::OpenAi(o) => o.chat(messages, tools, format),
        }
    }

    /// A streamed answer: `on_text` gets each piece of text as it arrives; the reply is
    /// the whole. Retried only while nothing has been passed to `on_text` yet.
    pub fn chat_stream(
        &self,
        messages: &[Message],
        tools: &Value,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ChatReply, LlmError> {
        match self {
            Llm::Ollama(o) => o.chat_stream(messages, tools, on_text),
            Llm::OpenAi(o) => o.chat_stream(messages, tools, on_text),
        }
    }

    /// One vector per input, in order (one request for the whole batch).
    pub fn embed(&self, inputs: &[&str]) -> Result<Vec<Vec<f32>>, LlmError> {
        match self {
            Llm::Ollama(o) => o.embed(inputs),
            Llm::OpenAi(o) => o.embed(inputs),
        }
    }

    /// The names of the models the server offers.
    pub fn models(&self) -> Result<Vec<String>, LlmError> {
        match self {
            Llm::Ollama(o) => o.tags(),
            Llm::OpenAi(o) => o.models(),
        }
    }

    /// Whether the server answers: its version (Ollama), or the first model it lists
    /// (an OpenAI server has no version endpoint; `GET /models` is its health check).
    pub fn version(&self) -> Result<String, LlmError> {
        match self {
            Llm::Ollama(o) => o.version(),
            Llm::OpenAi(o) => o
                .models()
                .map(|m| format!("OpenAI-compatible, {} model(s)", m.len())),
        }
    }

    /// Whether `model` is among `names` as this backend matches names (Ollama: name and
    /// tag, `:latest` implied; OpenAI: the exact id).
    pub fn has_model(&self, names: &[String], model: &str) -> bool {
        match self {
            Llm::Ollama(_) => Ollama::has_model(names, model),
            Llm::OpenAi(_) => names.iter().any(|n| n == model),
        }
    }

    /// What to do when the model is missing, in a status report.
    pub fn missing_model_hint(&self) -> String {
        match self {
            Llm::Ollama(o) => format!("ollama pull {}", o.config().model),
            Llm::OpenAi(o) => format!(
                "load {} in the server, or set [llm] model to one of the models it lists",
                o.config().model
            ),
        }
    }
}
