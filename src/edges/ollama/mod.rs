//! The Ollama HTTP API client (ureq): chat with tools (whole or streamed), embeddings,
//! model list, version.
//!
//! Blocking, like every edge: callers run it on their own thread. The HTTP plumbing
//! (timeouts, retries with capped backoff) is the shared [`Transport`]; 400, 404, a bad
//! reply and an error inside a stream are returned at once. One of the two backends
//! behind [`crate::edges::llm::Llm`].
//!
//! The wire format (request bodies, reply parsing) is in [`wire`], as pure functions.

pub mod wire;

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::Value;

pub use crate::edges::llm::error::LlmError as OllamaError;
use crate::edges::llm::http::{Timeouts, Transport};
pub use crate::edges::llm::message::{ChatReply, Message, Role, ToolCall};
pub use crate::edges::llm::sampling::Sampling;

/// How long Ollama keeps the model loaded after a request: whole seconds (negative =
/// forever, 0 = unload at once), sent as a JSON number, or a duration string with a unit
/// (`5m`, `1h`), sent as a string. Ollama rejects a bare numeric *string* such as `"-1"`,
/// which is why seconds are kept apart.
#[derive(Clone, Debug, PartialEq)]
pub enum KeepAlive {
    Seconds(i64),
    Duration(String),
}

impl KeepAlive {
    /// `"-1"`, `"300"` -> seconds; `"5m"`, `"1h"`, `"30s"`, `"-1m"`, `"1h30m"`, `"1.5h"` ->
    /// a duration (units ns, us, µs, ms, s, m, h, as Go's `time.ParseDuration` that
    /// Ollama uses); anything else is an error with a hint.
    pub fn parse(s: &str) -> Result<KeepAlive, String> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i64>() {
            return Ok(KeepAlive::Seconds(n));
        }
        if is_go_duration(t) {
            return Ok(KeepAlive::Duration(t.to_string()));
        }
        Err(format!(
            "keep_alive {s:?} is neither whole seconds nor a duration: write e.g. -1 \
             (keep the model loaded), 0 (unload at once), 300, or 5m, 1h, 30s \
             (units: ns, us, ms, s, m, h)"
        ))
    }

    /// The JSON value sent: a number for seconds, a string for a duration.
    pub fn to_json(&self) -> Value {
        match self {
            KeepAlive::Seconds(n) => Value::from(*n),
            KeepAlive::Duration(s) => Value::String(s.clone()),
        }
    }
}

impl Serialize for KeepAlive {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            KeepAlive::Seconds(n) => s.serialize_i64(*n),
            KeepAlive::Duration(d) => s.serialize_str(d),
        }
    }
}

impl fmt::Display for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepAlive::Seconds(n) => write!(f, "{n}"),
            KeepAlive::Duration(d) => f.write_str(d),
        }
    }
}

/// Go duration syntax: optional sign, then one or more `<number><unit>` (number may have
/// a fraction). A lone `0` is numeric and never reaches here.
fn is_go_duration(s: &str) -> bool {
    let rest = s.strip_prefix(['-', '+']).unwrap_or(s);
    if rest.is_empty() {
        return false;
    }
    let mut r = rest;
    while !r.is_empty() {
        let num_len = r
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(r.len());
        let num = &r[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return false;
        }
        r = &r[num_len..];
        let unit_len = r
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(r.len());
        if !matches!(
            &r[..unit_len],
            "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h"
        ) {
            return false;
        }
        r = &r[unit_len..];
    }
    true
}

/// Where and how to reach Ollama.
#[derive(Clone, Debug)]
pub struct OllamaConfig {
    /// e.g. `http://localhost:11434` (a trailing `/` is ignored).
    pub base_url: String,
    pub model: String,
    pub keep_alive: KeepAlive,
    pub connect_timeout: Duration,
    /// Longest wait for the response head, and for each read of the body.
    pub read_timeout: Duration,
    /// Longest time for one call, retries and backoff included.
    pub total_timeout: Duration,
    /// Extra attempts after the first, for retryable errors.
    pub retries: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl OllamaConfig {
    /// The chat client's settings from `[ollama]`.
    pub fn from_settings(settings: &crate::config::Settings) -> OllamaConfig {
        let o = &settings.ollama;
        let d = |us: i64| Duration::from_micros(us.max(0) as u64);
        OllamaConfig {
            base_url: o.base_url(),
            model: o.model.clone(),
            keep_alive: KeepAlive::parse(&o.keep_alive).unwrap_or(KeepAlive::Seconds(-1)),
            connect_timeout: d(o.connect_timeout),
            read_timeout: d(o.read_timeout),
            total_timeout: d(o.total_timeout),
            retries: o.retries,
            ..OllamaConfig::default()
        }
    }
}

impl Default for OllamaConfig {
    fn default() -> Self {
        OllamaConfig {
            base_url: "http://localhost:11434".into(),
            model: "gemma4:e2b".into(),
            keep_alive: KeepAlive::Seconds(-1),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(120),
            total_timeout: Duration::from_secs(300),
            retries: 3,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wire::message_json(self).serialize(s)
    }
}

/// The Ollama client. Cheap to share by reference across calls; holds one agent (and so
/// one connection pool).
pub struct Ollama {
    cfg: OllamaConfig,
    sampling: Sampling,
    http: Transport,
}

impl Ollama {
    pub fn new(cfg: OllamaConfig) -> Ollama {
        let t = Timeouts {
            connect: cfg.connect_timeout,
            read: cfg.read_timeout,
            total: cfg.total_timeout,
            retries: cfg.retries,
            backoff_min: cfg.backoff_min,
            backoff_max: cfg.backoff_max,
        };
        let http = Transport::new("ollama", &cfg.base_url, t, None);
        Ollama {
            cfg,
            sampling: Sampling::default(),
            http,
        }
    }

    /// The same client sending `sampling` (`options`, tool choice) with each chat.
    pub fn with_sampling(mut self, sampling: Sampling) -> Ollama {
        self.sampling = sampling;
        self
    }

    pub fn config(&self) -> &OllamaConfig {
        &self.cfg
    }

    /// One whole answer (`stream: false`). `tools` is a JSON array of
    /// `{type:"function", function:{name, description, parameters}}` (may be empty);
    /// `format` is `"json"` or a JSON schema.
    pub fn chat(
        &self,
        messages: &[Message],
        tools: &Value,
        format: Option<&Value>,
    ) -> Result<ChatReply, OllamaError> {
        let body = wire::chat_body(
            &self.cfg.model,
            messages,
            tools,
            format,
            &self.cfg.keep_alive,
            &self.sampling,
            false,
        );
        self.http.with_retries(
            "chat",
            || true,
            |budget| {
                let text = self.post("/api/chat", &body, budget)?;
                wire::parse_chat_reply(&text)
            },
        )
    }

    /// A streamed answer: `on_text` gets each piece of text as it arrives; the reply is
    /// the whole. Retried only while nothing has been passed to `on_text` yet.
    pub fn chat_stream(
        &self,
        messages: &[Message],
        tools: &Value,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ChatReply, OllamaError> {
        let body = wire::chat_body(
            &self.cfg.model,
            messages,
            tools,
            None,
            &self.cfg.keep_alive,
            &self.sampling,
            true,
        );
        self.http.chat_stream::<wire::StreamAssembler>(
            "/api/chat",
            &body,
            |code, text| self.status_error(code, text),
            on_text,
        )
    }

    /// One vector per input, in order (one request for the whole batch).
    pub fn embed(&self, inputs: &[&str]) -> Result<Vec<Vec<f32>>, OllamaError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let body = wire::embed_body(&self.cfg.model, inputs, &self.cfg.keep_alive);
        self.http.with_retries(
            "embed",
            || true,
            |budget| {
                let text = self.post("/api/embed", &body, budget)?;
                wire::parse_embed_reply(&text, inputs.len())
            },
        )
    }

    /// The names of the models on the server.
    pub fn tags(&self) -> Result<Vec<String>, OllamaError> {
        self.http.with_retries(
            "tags",
            || true,
            |budget| wire::parse_tags(&self.get("/api/tags", budget)?),
        )
    }

    /// The server's version string.
    pub fn version(&self) -> Result<String, OllamaError> {
        self.http.with_retries(
            "version",
            || true,
            |budget| wire::parse_version(&self.get("/api/version", budget)?),
        )
    }

    /// Exact match on name and tag; a model given without a tag means ":latest".
    pub fn has_model(names: &[String], model: &str) -> bool {
        let want = wire::with_tag(model);
        names.iter().any(|n| wire::with_tag(n) == want)
    }

    // ---- plumbing ----

    /// A request whose reply is read whole; error statuses become errors.
    fn request(
        &self,
        path: &str,
        body: Option<&Value>,
        budget: Duration,
    ) -> Result<String, OllamaError> {
        let (status, text) = self.http.request(path, body, budget)?;
        if !(200..300).contains(&status) {
            return Err(self.status_error(status, &text));
        }
        Ok(text)
    }

    fn post(&self, path: &str, body: &Value, budget: Duration) -> Result<String, OllamaError> {
        self.request(path, Some(body), budget)
    }

    fn get(&self, path: &str, budget: Duration) -> Result<String, OllamaError> {
        self.request(path, None, budget)
    }

    /// An error status. 404 with Ollama's JSON error body is the model missing (the
    /// status decides, not the text); a 404 without one is some other server at the URL.
    fn status_error(&self, status: u16, text: &str) -> OllamaError {
        let json_msg = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| wire::error_message(&v));
        if status == 404 && json_msg.is_some() {
            return OllamaError::ModelNotFound {
                model: self.cfg.model.clone(),
                server: self.http.base.clone(),
            };
        }
        OllamaError::Http {
            status,
            message: json_msg.unwrap_or_else(|| wire::excerpt(text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_parses_seconds_and_durations() {
        assert_eq!(KeepAlive::parse("-1"), Ok(KeepAlive::Seconds(-1)));
        assert_eq!(KeepAlive::parse(" 300 "), Ok(KeepAlive::Seconds(300)));
        assert_eq!(KeepAlive::parse("0"), Ok(KeepAlive::Seconds(0)));
        for d in [
            "5m", "1h", "30s", "-1m", "1h30m", "1.5h", "250ms", "10us", "3µs", "7ns",
        ] {
            assert_eq!(
                KeepAlive::parse(d),
                Ok(KeepAlive::Duration(d.into())),
                "{d}"
            );
        }
        for bad in [
            "", "-", "m", "5 m", "5d", "five", "1.5", "1..5h", "5m3", "--1m",
        ] {
            let e = KeepAlive::parse(bad).unwrap_err();
            assert!(e.contains("5m") && e.contains("-1"), "{bad}: {e}");
        }
    }

    #[test]
    fn keep_alive_serialises_as_number_or_string() {
        assert_eq!(
            serde_json::to_string(&KeepAlive::Seconds(-1)).unwrap(),
            "-1"
        );
        assert_eq!(
            serde_json::to_string(&KeepAlive::Duration("5m".into())).unwrap(),
            "\"5m\""
        );
        assert_eq!(KeepAlive::Seconds(-1).to_json(), serde_json::json!(-1));
    }

    #[test]
    fn defaults() {
        let c = OllamaConfig::default();
        assert_eq!(c.base_url, "http://localhost:11434");
        assert_eq!(c.model, "gemma4:e2b");
        assert_eq!(c.keep_alive, KeepAlive::Seconds(-1));
        assert_eq!(c.retries, 3);
    }

    #[test]
    fn has_model_matches_name_and_tag_exactly() {
        let names = vec!["gemma4:e4b".to_string(), "llama3:latest".to_string()];
        assert!(!Ollama::has_model(&names, "gemma4:e2b"));
        assert!(Ollama::has_model(&names, "gemma4:e4b"));
        assert!(Ollama::has_model(&names, "llama3"));
        assert!(Ollama::has_model(&names, "llama3:latest"));
        assert!(!Ollama::has_model(&names, "llama3:8b"));
        assert!(!Ollama::has_model(&names, "gemma4"));
        assert!(Ollama::has_model(&["llama3".to_string()], "llama3:latest"));
    }

    #[test]
    fn message_serialize_impl_matches_wire() {
        let m = Message::tool("t", "c");
        assert_eq!(serde_json::to_value(&m).unwrap(), wire::message_json(&m));
    }
}
