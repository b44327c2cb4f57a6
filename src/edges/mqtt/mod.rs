//! The MQTT edge: one connection (rumqttc) on its own threads, bridged to the event loop
//! by bounded channels.
//!
//! - `topic`: topic and filter validation, matching, templates.
//! - `payload`: inbound payload parsing and outbound payload encoding (the contract in
//!   `docs/mqtt.md`).
//! - `discovery`: Home Assistant MQTT discovery payloads.
//! - `remote`: limits on the sources learned from other nodes, and plausible timestamps.
//! - `give_back`: memory taken for a burst of big messages returned once it is over.
//! - `waiting`: messages waiting in the worker's memory, bounded in count and bytes.
//! - `latest`: retained states on their way out, the newest per topic, in memory.

#[cfg(feature = "mqtt")]
pub mod connection;
#[cfg(feature = "mqtt")]
pub mod discovery;
#[cfg(feature = "mqtt")]
mod give_back;
#[cfg(feature = "mqtt")]
mod latest;
#[cfg(feature = "mqtt")]
pub mod payload;
#[cfg(feature = "mqtt")]
pub mod remote;
#[cfg(feature = "mqtt")]
mod waiting;
// Config validation checks topics in every build, with or without the mqtt feature.
pub mod topic;
