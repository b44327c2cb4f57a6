//! Many nodes as one (issue 15, items 1 and 2): the replicated log's merge and apply
//! (`apply.rs`), its counters (`stats.rs`), the MQTT transport behind
//! `messages::SyncPeer` (`mqtt.rs`), the HTTP client for peers that share no broker
//! (`client.rs`), and the `sync` thread that publishes, catches up and trims
//! (`worker.rs`). The log's table, entries and Lamport clock are in
//! `store/sync_log.rs` (below memory, which logs its changes in the same transaction).

pub mod apply;
pub mod client;
pub mod mqtt;
pub mod stats;
pub mod worker;
