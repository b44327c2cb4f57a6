//! Edges: the blocking outside world, each on its own named thread and bridged to the
//! event loop by channels.
//!
//! - `http`: our own small server (smol + httparse): health, status, readings, GPIO, memory.
//! - `gpio`: pin backends (rppal on a Pi, a mock elsewhere).
//! - `llm`: the model server, whichever backend: `ollama` or `openai` (any OpenAI-compatible server).

pub mod gpio;
pub mod http;
pub mod hw;
#[cfg(feature = "agent")]
pub mod llm;
#[cfg(feature = "mdns")]
pub mod mdns;
pub mod mqtt;
#[cfg(feature = "agent")]
pub mod ollama;
#[cfg(feature = "agent")]
pub mod openai;
#[cfg(feature = "openclaw")]
pub mod openclaw;
pub mod systemd;
