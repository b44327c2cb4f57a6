//! The HTTP plumbing both backends share (ureq): one agent with explicit timeouts
//! (ureq has none by default), retries with capped exponential backoff inside a total
//! budget, and ureq's errors mapped to [`LlmError`]s.
//!
//! `connect_timeout` bounds connecting, `read_timeout` the response head and each read
//! of the body (so a stream may run long as long as it keeps coming), `total_timeout` a
//! whole call including its retries. Failed calls that may succeed later (unreachable
//! server, timeouts, 429, 5xx) are retried; the others come back at once.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::LlmError;
use super::message::ChatReply;

/// The largest reply body read (embeddings of a big batch can be several MB).
pub const MAX_BODY: u64 = 64 * 1024 * 1024;

/// How patient a client is.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Longest wait for the response head, and for each read of the body.
    pub read: Duration,
    /// Longest time for one call, retries and backoff included.
    pub total: Duration,
    /// Extra attempts after the first, for retryable errors.
    pub retries: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// One server's connection pool and its timeouts; `label` names it in retry log lines.
pub struct Transport {
    pub base: String,
    pub t: Timeouts,
    label: &'static str,
    agent: ureq::Agent,
    /// `Authorization` header value; never logged (not in `Debug`, not in errors).
    auth: Option<String>,
}

/// A streamed chat answer read line by line (Ollama's NDJSON, OpenAI's SSE): each
/// backend's wire codec, driven by [`Transport::chat_stream`].
pub trait StreamLines: Default {
    /// Feeds one line; returns the new text (possibly empty) for the caller to show.
    fn feed(&mut self, line: &str) -> Result<String, LlmError>;
    /// Whether the answer's last line has been seen (the server may keep the socket open).
    fn is_done(&self) -> bool;
    /// The whole reply; an error if the stream ended before its last line.
    fn finish(self) -> Result<ChatReply, LlmError>;
}

impl Transport {
    /// POSTs a streamed chat request to `path` and reads the answer with `A`: each piece
    /// of text goes to `on_text` as it arrives. Retried only while nothing has been passed
    /// on (a retry would repeat it); a non-2xx status becomes `status_error(code, body)`.
    pub fn chat_stream<A: StreamLines>(
        &self,
        path: &str,
        body: &Value,
        status_error: impl Fn(u16, &str) -> LlmError,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ChatReply, LlmError> {
        let emitted = std::cell::Cell::new(false);
        self.with_retries(
            "chat stream",
            || !emitted.get(),
            |budget| {
                let resp = self.send(path, Some(body), budget)?;
                let (parts, body) = resp.into_parts();
                if !parts.status.is_success() {
                    let text = self.error_body(body)?;
                    return Err(status_error(parts.status.as_u16(), &text));
                }
                let reader = body.into_with_config().limit(MAX_BODY).reader();
                let mut lines = BufReader::new(reader);
                let mut asm = A::default();
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).map_err(|e| self.map_io(e))? == 0 {
                        break;
                    }
                    let piece = asm.feed(&line)?;
                    if !piece.is_empty() {
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

    pub fn new(label: &'static str, base_url: &str, t: Timeouts, auth: Option<String>) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(t.connect))
            .timeout_resolve(Some(t.connect))
            .timeout_recv_response(Some(t.read))
            .timeout_per_read(Some(t.read))
            .timeout_global(Some(t.total))
            .user_agent(concat!("smollama/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            super::resolve::LiteralFirst::default(),
        );
        Transport {
            base: base_url.trim_end_matches('/').to_string(),
            t,
            label,
            agent,
            auth,
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, the retries run out,
    /// `may_retry` says no, or the next backoff would overrun the total budget.
    /// `attempt` gets the time left.
    pub fn with_retries<T>(
        &self,
        what: &str,
        may_retry: impl Fn() -> bool,
        mut attempt: impl FnMut(Duration) -> Result<T, LlmError>,
    ) -> Result<T, LlmError> {
        let start = Instant::now();
        let mut i = 0;
        loop {
            let left = self.t.total.saturating_sub(start.elapsed());
            let err = match attempt(left) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retryable() || i >= self.t.retries || !may_retry() {
                return Err(err);
            }
            let pause = backoff(i, self.t.backoff_min, self.t.backoff_max);
            if start.elapsed() + pause >= self.t.total {
                return Err(err);
            }
            i += 1;
            log::warn!(
                "{} {what}: {err}; retry {i}/{} in {pause:?}",
                self.label,
                self.t.retries
            );
            std::thread::sleep(pause);
        }
    }

    /// Sends a request (POST with a JSON body, else GET) within `budget`.
    pub fn send(
        &self,
        path: &str,
        body: Option<&Value>,
        budget: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, LlmError> {
        let url = format!("{}{path}", self.base);
        let budget = Some(budget.max(Duration::from_millis(1)));
        let res = match body {
            Some(b) => {
                let mut req = self.agent.post(&url);
                if let Some(a) = &self.auth {
                    req = req.header("Authorization", a);
                }
                // Compact: ureq's `send_json` pretty-prints, which with the tools' schemas
                // in every chat request was most of the instructions a round spends here.
                let json = serde_json::to_vec(b)
                    .map_err(|e| LlmError::BadResponse(format!("request body: {e}")))?;
                req.content_type("application/json; charset=utf-8")
                    .config()
                    .timeout_global(budget)
                    .build()
                    .send(json)
            }
            None => {
                let mut req = self.agent.get(&url);
                if let Some(a) = &self.auth {
                    req = req.header("Authorization", a);
                }
                req.config().timeout_global(budget).build().call()
            }
        };
        res.map_err(|e| self.map_ureq(e))
    }

    /// A request whose reply is read whole: `(status, body)`.
    pub fn request(
        &self,
        path: &str,
        body: Option<&Value>,
        budget: Duration,
    ) -> Result<(u16, String), LlmError> {
        let mut resp = self.send(path, body, budget)?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| self.map_ureq(e))?;
        Ok((status, text))
    }

    /// The rest of an error response's body, for its message.
    pub fn error_body(&self, body: ureq::Body) -> Result<String, LlmError> {
        body.into_with_config()
            .limit(MAX_BODY)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| self.map_ureq(e))
    }

    pub fn map_ureq(&self, e: ureq::Error) -> LlmError {
        use ureq::Timeout as T;
        let at = &self.base;
        match e {
            ureq::Error::Timeout(T::Connect | T::Resolve) => {
                LlmError::Unreachable(format!("{at}: no connection within {:?}", self.t.connect))
            }
            ureq::Error::Timeout(T::Global) => LlmError::Timeout(format!(
                "{at}: no complete answer within {:?}",
                self.t.total
            )),
            ureq::Error::Timeout(t) => {
                LlmError::Timeout(format!("{at}: no answer within {:?} ({t})", self.t.read))
            }
            ureq::Error::HostNotFound => LlmError::Unreachable(format!("{at}: host not found")),
            ureq::Error::ConnectionFailed => {
                LlmError::Unreachable(format!("{at}: connection failed"))
            }
            ureq::Error::Io(io) => self.map_io(io),
            ureq::Error::BadUri(m) => LlmError::BadResponse(format!("bad URL {at}: {m}")),
            other => LlmError::BadResponse(format!("{at}: {other}")),
        }
    }

    pub fn map_io(&self, e: std::io::Error) -> LlmError {
        use std::io::ErrorKind as K;
        if e.get_ref().is_some_and(|i| i.is::<ureq::Error>()) {
            let inner = e.into_inner().expect("checked above");
            if let Ok(u) = inner.downcast::<ureq::Error>() {
                return self.map_ureq(*u);
            }
            return LlmError::BadResponse(format!("{}: I/O error", self.base));
        }
        let at = &self.base;
        match e.kind() {
            K::TimedOut | K::WouldBlock => LlmError::Timeout(format!("{at}: {e}")),
            K::InvalidData => LlmError::BadResponse(format!("{at}: {e}")),
            _ => LlmError::Unreachable(format!("{at}: {e}")),
        }
    }
}

/// At most 200 characters of a body, for error messages.
pub fn excerpt(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

/// `min * 2^attempt`, capped at `max`.
pub fn backoff(attempt: u32, min: Duration, max: Duration) -> Duration {
    min.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn retryable_errors() {
        let http = |status| LlmError::Http {
            status,
            message: String::new(),
        };
        assert!(LlmError::Unreachable(String::new()).is_retryable());
        assert!(LlmError::Timeout(String::new()).is_retryable());
        for s in [429, 500, 502, 503] {
            assert!(http(s).is_retryable(), "{s}");
        }
        for s in [400, 404, 401] {
            assert!(!http(s).is_retryable(), "{s}");
        }
        assert!(!LlmError::BadResponse(String::new()).is_retryable());
        assert!(!LlmError::Stream(String::new()).is_retryable());
        let served = LlmError::ModelNotServed {
            model: "m".into(),
            server: "http://h/v1".into(),
        };
        assert!(!served.is_retryable() && served.is_model_missing());
    }
}
