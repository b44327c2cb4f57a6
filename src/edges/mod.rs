//! Edges: the blocking outside world, each on its own named thread and bridged to the
//! event loop by channels.
//!
//! - `http`: tiny_http serving health, status and readings.
//! - `gpio`: pin backends (rppal on a Pi, a mock elsewhere).

pub mod gpio;
pub mod http;
pub mod mqtt;
#[cfg(feature = "agent")]
pub mod ollama;
pub mod systemd;
