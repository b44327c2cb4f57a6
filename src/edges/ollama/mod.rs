//! The Ollama HTTP API client (ureq): chat with tools (whole or streamed), embeddings,
//! model list, version.
//!
//! Blocking, like every edge: callers run it on their own thread. One [`ureq::Agent`]
//! with explicit timeouts (ureq has none by default): `connect_timeout` to connect,
//! `read_timeout` for the response head and for each read of the body (so a stream may
//! run long as long as it keeps coming), `total_timeout` for a whole call including its
//! retries. Failed calls that may succeed later (unreachable server, timeouts, 429, 5xx)
//! are retried with capped exponential backoff; the others (400, 404, a bad reply, an
//! error inside a stream) are returned at once.
//!
//! The wire format (request bodies, reply parsing) is in [`wire`], as pure functions.

pub mod wire;

use std::fmt;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use serde_json::Value;

/// The largest reply body read (embeddings of a big batch can be several MB).
const MAX_BODY: u64 = 64 * 1024 * 1024;

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

/// A tool the model asked to call; `arguments` is a JSON object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolCall {
    pub name: String,
    pub arguments: Value,
}

/// One chat message. Serialised by [`wire::message_json`].
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// Only on assistant messages.
    pub tool_calls: Vec<ToolCall>,
    /// Only on tool messages: the tool whose result `content` is.
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

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wire::message_json(self).serialize(s)
    }
}

/// The assistant's answer: text and/or tool calls.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatReply {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub total_duration_ns: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OllamaError {
    /// Nothing answered: connection refused, unknown host, connect timeout, connection
    /// dropped.
    Unreachable(String),
    /// Connected, but the answer did not come in time.
    Timeout(String),
    /// The server answered 404 for the model.
    ModelNotFound { model: String, server: String },
    /// Any other error status, with the server's `error` message.
    Http { status: u16, message: String },
    /// An `{"error": ...}` line inside a stream (or a stream cut short).
    Stream(String),
    /// Not what the API says the server sends.
    BadResponse(String),
}

impl OllamaError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            OllamaError::Unreachable(_) | OllamaError::Timeout(_) => true,
            OllamaError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            OllamaError::ModelNotFound { .. }
            | OllamaError::Stream(_)
            | OllamaError::BadResponse(_) => false,
        }
    }
}

impl fmt::Display for OllamaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OllamaError::Unreachable(m) => write!(f, "Ollama unreachable: {m}"),
            OllamaError::Timeout(m) => write!(f, "Ollama timed out: {m}"),
            OllamaError::ModelNotFound { model, server } => write!(
                f,
                "model '{model}' is not on the Ollama server at {server}; run `ollama pull {model}` there"
            ),
            OllamaError::Http { status, message } => {
                write!(f, "Ollama answered HTTP {status}: {message}")
            }
            OllamaError::Stream(m) => write!(f, "Ollama failed mid-answer: {m}"),
            OllamaError::BadResponse(m) => write!(f, "unexpected reply from Ollama: {m}"),
        }
    }
}

impl std::error::Error for OllamaError {}

/// The Ollama client. Cheap to share by reference across calls; holds one agent (and so
/// one connection pool).
pub struct Ollama {
    cfg: OllamaConfig,
    base: String,
    agent: ureq::Agent,
}

impl Ollama {
    pub fn new(cfg: OllamaConfig) -> Ollama {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(cfg.connect_timeout))
            .timeout_resolve(Some(cfg.connect_timeout))
            .timeout_recv_response(Some(cfg.read_timeout))
            .timeout_per_read(Some(cfg.read_timeout))
            .timeout_global(Some(cfg.total_timeout))
            .user_agent(concat!("smollama/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let base = cfg.base_url.trim_end_matches('/').to_string();
        Ollama { cfg, base, agent }
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
            false,
        );
        self.with_retries(
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
            true,
        );
        let emitted = std::cell::Cell::new(false);
        self.with_retries(
            "chat stream",
            || !emitted.get(),
            |budget| {
                let resp = self.send("/api/chat", Some(&body), budget)?;
                let (parts, body) = resp.into_parts();
                if !parts.status.is_success() {
                    let text = body
                        .into_with_config()
                        .limit(MAX_BODY)
                        .lossy_utf8(true)
                        .read_to_string()
                        .map_err(|e| self.map_ureq(e))?;
                    return Err(self.status_error(parts.status.as_u16(), &text));
                }
                let reader = body.into_with_config().limit(MAX_BODY).reader();
                let mut lines = BufReader::new(reader);
                let mut asm = wire::StreamAssembler::default();
                let mut line = String::new();
                loop {
                    line.clear();
                    let n = lines.read_line(&mut line).map_err(|e| self.map_io(e))?;
                    if n == 0 {
                        break;
                    }
                    let piece = asm.feed(&line)?;
                    if !piece.is_empty() {
                        // Once text is shown a retry would repeat it: no more retries.
                        emitted.set(true);
                        on_text(&piece);
                    }
                    if asm.is_done() {
                        break;
                    }
                }
                asm.finish()
            },
        )
    }

    /// One vector per input, in order (one request for the whole batch).
    pub fn embed(&self, inputs: &[&str]) -> Result<Vec<Vec<f32>>, OllamaError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let body = wire::embed_body(&self.cfg.model, inputs, &self.cfg.keep_alive);
        self.with_retries(
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
        self.with_retries(
            "tags",
            || true,
            |budget| wire::parse_tags(&self.get("/api/tags", budget)?),
        )
    }

    /// The server's version string.
    pub fn version(&self) -> Result<String, OllamaError> {
        self.with_retries(
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

    /// Runs `attempt` until it succeeds, fails for good, the retries run out,
    /// `may_retry` says no, or the next backoff would overrun `total_timeout`.
    /// `attempt` gets the time left.
    fn with_retries<T>(
        &self,
        what: &str,
        may_retry: impl Fn() -> bool,
        mut attempt: impl FnMut(Duration) -> Result<T, OllamaError>,
    ) -> Result<T, OllamaError> {
        let start = Instant::now();
        let mut i = 0;
        loop {
            let left = self.cfg.total_timeout.saturating_sub(start.elapsed());
            let err = match attempt(left) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retryable() || i >= self.cfg.retries || !may_retry() {
                return Err(err);
            }
            let pause = backoff(i, self.cfg.backoff_min, self.cfg.backoff_max);
            if start.elapsed() + pause >= self.cfg.total_timeout {
                return Err(err);
            }
            i += 1;
            log::warn!(
                "ollama {what}: {err}; retry {i}/{} in {pause:?}",
                self.cfg.retries
            );
            std::thread::sleep(pause);
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(
        &self,
        path: &str,
        body: Option<&Value>,
        budget: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, OllamaError> {
        let url = self.url(path);
        let budget = Some(budget.max(Duration::from_millis(1)));
        let res = match body {
            Some(b) => self
                .agent
                .post(&url)
                .config()
                .timeout_global(budget)
                .build()
                .send_json(b),
            None => self
                .agent
                .get(&url)
                .config()
                .timeout_global(budget)
                .build()
                .call(),
        };
        res.map_err(|e| self.map_ureq(e))
    }

    /// A request whose reply is read whole; error statuses become errors.
    fn request(
        &self,
        path: &str,
        body: Option<&Value>,
        budget: Duration,
    ) -> Result<String, OllamaError> {
        let mut resp = self.send(path, body, budget)?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| self.map_ureq(e))?;
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
                server: self.base.clone(),
            };
        }
        OllamaError::Http {
            status,
            message: json_msg.unwrap_or_else(|| wire::excerpt(text)),
        }
    }

    fn map_ureq(&self, e: ureq::Error) -> OllamaError {
        use ureq::Timeout as T;
        let at = &self.base;
        match e {
            ureq::Error::Timeout(T::Connect | T::Resolve) => OllamaError::Unreachable(format!(
                "{at}: no connection within {:?}",
                self.cfg.connect_timeout
            )),
            ureq::Error::Timeout(T::Global) => OllamaError::Timeout(format!(
                "{at}: no complete answer within {:?}",
                self.cfg.total_timeout
            )),
            ureq::Error::Timeout(t) => OllamaError::Timeout(format!(
                "{at}: no answer within {:?} ({t})",
                self.cfg.read_timeout
            )),
            ureq::Error::HostNotFound => OllamaError::Unreachable(format!("{at}: host not found")),
            ureq::Error::ConnectionFailed => {
                OllamaError::Unreachable(format!("{at}: connection failed"))
            }
            ureq::Error::Io(io) => self.map_io(io),
            ureq::Error::BadUri(m) => OllamaError::BadResponse(format!("bad URL {at}: {m}")),
            other => OllamaError::BadResponse(format!("{at}: {other}")),
        }
    }

    fn map_io(&self, e: std::io::Error) -> OllamaError {
        use std::io::ErrorKind as K;
        if e.get_ref().is_some_and(|i| i.is::<ureq::Error>()) {
            let inner = e.into_inner().expect("checked above");
            if let Ok(u) = inner.downcast::<ureq::Error>() {
                return self.map_ureq(*u);
            }
            return OllamaError::BadResponse(format!("{}: I/O error", self.base));
        }
        let at = &self.base;
        match e.kind() {
            K::TimedOut | K::WouldBlock => OllamaError::Timeout(format!("{at}: {e}")),
            K::InvalidData => OllamaError::BadResponse(format!("{at}: {e}")),
            _ => OllamaError::Unreachable(format!("{at}: {e}")),
        }
    }
}

/// `min * 2^attempt`, capped at `max`.
fn backoff(attempt: u32, min: Duration, max: Duration) -> Duration {
    min.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .min(max)
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
    fn retryable_errors() {
        let http = |status| OllamaError::Http {
            status,
            message: String::new(),
        };
        assert!(OllamaError::Unreachable(String::new()).is_retryable());
        assert!(OllamaError::Timeout(String::new()).is_retryable());
        for s in [429, 500, 502, 503] {
            assert!(http(s).is_retryable(), "{s}");
        }
        for s in [400, 404, 401] {
            assert!(!http(s).is_retryable(), "{s}");
        }
        assert!(!OllamaError::BadResponse(String::new()).is_retryable());
        assert!(!OllamaError::Stream(String::new()).is_retryable());
        let nf = OllamaError::ModelNotFound {
            model: "m:1".into(),
            server: "http://h:11434".into(),
        };
        assert!(!nf.is_retryable());
        assert_eq!(
            nf.to_string(),
            "model 'm:1' is not on the Ollama server at http://h:11434; run `ollama pull m:1` there"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_secs;
        assert_eq!(backoff(0, s(1), s(30)), s(1));
        assert_eq!(backoff(1, s(1), s(30)), s(2));
        assert_eq!(backoff(4, s(1), s(30)), s(16));
        assert_eq!(backoff(5, s(1), s(30)), s(30));
        assert_eq!(backoff(200, s(1), s(30)), s(30));
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
