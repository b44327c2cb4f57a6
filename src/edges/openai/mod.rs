//! A client for any OpenAI-compatible server (`/v1/chat/completions` with tools and SSE
//! streaming, `/v1/embeddings`, `/v1/models`): llama.cpp's llama-server,
//! llama-cpp-python, LM Studio, LocalAI, vLLM. One of the two backends behind
//! [`crate::edges::llm::Llm`].
//!
//! Blocking, like every edge; timeouts and retries are the shared [`Transport`]'s. The
//! API key goes out as `Authorization: Bearer` and nowhere else: not in `Debug`, not in
//! errors, not in logs. The wire format is in [`wire`], as pure functions.

pub mod wire;

use std::time::Duration;

use serde_json::Value;

use crate::config::settings::Secret;
use crate::edges::llm::error::LlmError;
use crate::edges::llm::http::{Timeouts, Transport, excerpt};
use crate::edges::llm::message::{ChatReply, Message};
use crate::edges::llm::sampling::Sampling;
pub use wire::Structured;

/// Where and how to reach the server.
#[derive(Clone, Debug)]
pub struct OpenAiConfig {
    /// Up to and including the API version, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    pub model: String,
    /// Sent as a bearer token; `Secret` shows as `***` in debug output.
    pub api_key: Option<Secret>,
    pub structured: Structured,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub total_timeout: Duration,
    pub retries: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl OpenAiConfig {
    /// From `[llm]` (the key from `api_key`, `api_key_file` or the environment, as the
    /// settings resolved it).
    pub fn from_settings(settings: &crate::config::Settings) -> OpenAiConfig {
        let l = &settings.llm;
        let d = |us: i64| Duration::from_micros(us.max(0) as u64);
        OpenAiConfig {
            base_url: l.base_url.clone(),
            model: l.model.clone(),
            api_key: l.api_key(),
            structured: l.structured_output,
            connect_timeout: d(l.connect_timeout),
            read_timeout: d(l.read_timeout),
            total_timeout: d(l.total_timeout),
            retries: l.retries,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// The client: one connection pool, its config and sampling settings.
pub struct OpenAi {
    cfg: OpenAiConfig,
    sampling: Sampling,
    http: Transport,
}

impl OpenAi {
    pub fn new(cfg: OpenAiConfig) -> OpenAi {
        let t = Timeouts {
            connect: cfg.connect_timeout,
            read: cfg.read_timeout,
            total: cfg.total_timeout,
            retries: cfg.retries,
            backoff_min: cfg.backoff_min,
            backoff_max: cfg.backoff_max,
        };
        let auth = cfg.api_key.as_ref().map(|k| format!("Bearer {}", k.0));
        let http = Transport::new("openai", &cfg.base_url, t, auth);
        OpenAi {
            cfg,
            sampling: Sampling::default(),
            http,
        }
    }

    /// The same client sending `sampling` with each chat.
    pub fn with_sampling(mut self, sampling: Sampling) -> OpenAi {
        self.sampling = sampling;
        self
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.cfg
    }

    /// One whole answer; `format` is `"json"` or a JSON schema (sent as
    /// `[llm] structured_output` says).
    pub fn chat(
        &self,
        messages: &[Message],
        tools: &Value,
        format: Option<&Value>,
    ) -> Result<ChatReply, LlmError> {
        let body = wire::chat_body(
            &self.cfg.model,
            messages,
            tools,
            format,
            &self.sampling,
            self.cfg.structured,
            false,
        );
        self.http.with_retries(
            "chat",
            || true,
            |budget| wire::parse_chat_reply(&self.post("/chat/completions", &body, budget)?),
        )
    }

    /// A streamed answer (SSE): `on_text` gets each piece as it arrives. Retried only
    /// while nothing has been passed on. An error event is a [`LlmError::Stream`] (not
    /// retryable: the model failed); a stream cut short (the server went away) is
    /// [`LlmError::Unreachable`], so the agent keeps the question for later.
    pub fn chat_stream(
        &self,
        messages: &[Message],
        tools: &Value,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ChatReply, LlmError> {
        let body = wire::chat_body(
            &self.cfg.model,
            messages,
            tools,
            None,
            &self.sampling,
            self.cfg.structured,
            true,
        );
        self.http.chat_stream::<wire::StreamAssembler>(
            "/chat/completions",
            &body,
            |code, text| self.status_error(code, text),
            on_text,
        )
    }

    /// One vector per input, in order (one request for the whole batch).
    pub fn embed(&self, inputs: &[&str]) -> Result<Vec<Vec<f32>>, LlmError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let body = wire::embed_body(&self.cfg.model, inputs);
        self.http.with_retries(
            "embed",
            || true,
            |budget| {
                let text = self.post("/embeddings", &body, budget)?;
                wire::parse_embed_reply(&text, inputs.len())
            },
        )
    }

    /// The ids of the models the server offers (`GET /models`).
    pub fn models(&self) -> Result<Vec<String>, LlmError> {
        self.http.with_retries(
            "models",
            || true,
            |budget| {
                let (status, text) = self.http.request("/models", None, budget)?;
                if !(200..300).contains(&status) {
                    return Err(self.status_error(status, &text));
                }
                wire::parse_models(&text)
            },
        )
    }

    fn post(&self, path: &str, body: &Value, budget: Duration) -> Result<String, LlmError> {
        let (status, text) = self.http.request(path, Some(body), budget)?;
        if !(200..300).contains(&status) {
            return Err(self.status_error(status, &text));
        }
        Ok(text)
    }

    /// An error status: the model unknown (by the error's code, or a 404 with an error
    /// body), else the status with the server's message.
    fn status_error(&self, status: u16, text: &str) -> LlmError {
        let v = serde_json::from_str::<Value>(text).ok();
        if let Some(v) = &v
            && wire::is_model_not_found(status, v)
        {
            return LlmError::ModelNotServed {
                model: self.cfg.model.clone(),
                server: self.http.base.clone(),
            };
        }
        LlmError::Http {
            status,
            message: v
                .as_ref()
                .and_then(wire::error_message)
                .unwrap_or_else(|| excerpt(text)),
        }
    }
}
