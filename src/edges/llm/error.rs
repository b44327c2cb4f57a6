//! What can go wrong talking to a model server, whichever backend: the agent decides
//! from the variant whether to queue a question (retryable) or answer with the error.

use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum LlmError {
    /// Nothing answered: connection refused, unknown host, connect timeout, connection
    /// dropped.
    Unreachable(String),
    /// Connected, but the answer did not come in time.
    Timeout(String),
    /// An Ollama server answered 404 for the model.
    ModelNotFound { model: String, server: String },
    /// An OpenAI-compatible server does not serve the model (404 `model_not_found`).
    ModelNotServed { model: String, server: String },
    /// Any other error status, with the server's error message.
    Http { status: u16, message: String },
    /// An error inside a stream, or a stream cut short.
    Stream(String),
    /// Not what the API says the server sends.
    BadResponse(String),
}

impl LlmError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Unreachable(_) | LlmError::Timeout(_) => true,
            LlmError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            LlmError::ModelNotFound { .. }
            | LlmError::ModelNotServed { .. }
            | LlmError::Stream(_)
            | LlmError::BadResponse(_) => false,
        }
    }

    /// The configured model is not on the server (either backend).
    pub fn is_model_missing(&self) -> bool {
        matches!(
            self,
            LlmError::ModelNotFound { .. } | LlmError::ModelNotServed { .. }
        )
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LlmError::Unreachable(m) => write!(f, "model server unreachable: {m}"),
            LlmError::Timeout(m) => write!(f, "model server timed out: {m}"),
            LlmError::ModelNotFound { model, server } => write!(
                f,
                "model '{model}' is not on the Ollama server at {server}; run `ollama pull {model}` there"
            ),
            LlmError::ModelNotServed { model, server } => write!(
                f,
                "model '{model}' is not served at {server}; load it there or set [llm] model to one that GET {server}/models lists"
            ),
            LlmError::Http { status, message } => {
                write!(f, "model server answered HTTP {status}: {message}")
            }
            LlmError::Stream(m) => write!(f, "model server failed mid-answer: {m}"),
            LlmError::BadResponse(m) => write!(f, "unexpected reply from the model server: {m}"),
        }
    }
}

impl std::error::Error for LlmError {}
