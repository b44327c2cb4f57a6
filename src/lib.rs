//! smollama: a small always-on edge agent. See ARCHITECTURE.md for the map.

// The LLM agent and its memory: only with the `agent` feature (see `features`).
#[cfg(feature = "agent")]
pub mod agent;
pub mod app;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod edges;
pub mod features;
pub(crate) mod footprint;
// The parsers of outside input for the fuzz targets (fuzz/); not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod graph;
pub mod logging;
#[cfg(feature = "agent")]
pub mod memory;
pub mod messages;
pub mod nodes;
pub mod plugins;
pub mod process;
pub mod running;
pub mod shutdown;
pub mod sinks;
pub mod sources;
pub mod stages;
pub mod status;
pub mod store;
#[cfg(feature = "agent")]
pub mod sync;
