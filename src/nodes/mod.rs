//! The node directory: every other smollama node this one knows, whichever way it was
//! learned (mDNS announcements, MQTT status topics, readings and sync traffic), with
//! what it said about itself and how healthy it looks. The edges feed it (the mDNS task,
//! the MQTT worker); HTTP, `smollama nodes` and the dashboard read it.
//!
//! - `entry.rs`: one node (`NodeEntry`), how it was learned (`Via`), what it announced;
//! - `health.rs`: active, stale or offline, from its status word and last traffic;
//! - `directory.rs`: the bounded map itself (`NodeDirectory`) and its counters;
//! - `topics.rs`: which MQTT topics name a node, and which to subscribe to;
//! - `table.rs`: `smollama nodes`' text table.
//!
//! Below the edges: it imports only the graph's time type and the clock, so the MQTT
//! and mDNS edges and HTTP can all hold it.

mod directory;
mod entry;
mod health;
mod table;
mod topics;

pub use directory::{DirectoryStats, NodeDirectory, Thresholds};
pub use entry::{Announcement, Capabilities, NodeEntry, Status, Via};
pub use health::Health;
pub use table::table;
pub use topics::NodeTopics;
