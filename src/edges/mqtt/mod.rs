//! The MQTT edge: one connection (rumqttc) on its own threads, bridged to the event loop
//! by bounded channels.
//!
//! - `topic`: topic and filter validation, matching, templates.
//! - `payload`: inbound payload parsing and outbound payload encoding (the contract in
//!   `docs/mqtt.md`).
//! - `discovery`: Home Assistant MQTT discovery payloads.

pub mod connection;
pub mod discovery;
pub mod payload;
pub mod topic;
