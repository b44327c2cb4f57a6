//! Sinks: where items leave the graph.
//!
//! - `store`: batches items for the store's writer thread (lossless inbound edge).
//! - `log`: one log line per item.

pub mod log;
pub mod mqtt;
pub mod mqtt_params;
pub mod store;
