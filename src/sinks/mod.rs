//! Sinks: where items leave the graph. Each kind is one file with its `KIND` (see
//! `plugins`).
//!
//! - `store`: batches items for the store's writer thread (lossless inbound edge).
//! - `log`: one log line per item.
//! - `mqtt` (`mqtt_params.rs` holds its kind, `mqtt.rs` the running part): batches or
//!   states to the broker.
//! - `lcd1602`: an HD44780 display on a PCF8574 backpack (template and tools).
//! - `observer`: the adaptive stage's volatile/calm events to the observation loop.
//! - `events`: readings to the live event stream (`/api/events`).
//! - `openclaw`: readings (rate-limited per source) and changes to the OpenClaw gateway.

pub mod events;
pub mod lcd1602;
pub mod led;
pub mod log;
#[cfg(feature = "mqtt")]
pub mod mqtt;
// The mqtt sink's kind: validated in every build (unavailable without `mqtt`).
pub mod mqtt_params;
pub mod observer;
pub mod openclaw;
pub mod seven_segment;
pub mod store;
pub mod template;
