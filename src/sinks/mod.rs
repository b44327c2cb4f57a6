//! Sinks: where items leave the graph.
//!
//! - `store`: batches items for the store's writer thread (lossless inbound edge).
//! - `log`: one log line per item.

pub mod log;
#[cfg(feature = "mqtt")]
pub mod mqtt;
// Pipeline validation parses mqtt sinks in every build (they are skipped without `mqtt`).
pub mod mqtt_params;
pub mod store;
