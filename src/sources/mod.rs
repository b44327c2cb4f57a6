//! Sources: where readings come from. Each kind is one file with its `KIND` (see
//! `plugins`); each runs as one task on the event loop and sends into its node's
//! [`Output`](crate::graph::edge::Output).

pub mod bme280;
pub mod contract_file;
#[cfg(feature = "test-kinds")]
pub mod counter;
pub mod dht;
pub mod ds18b20;
pub mod exec;
pub mod file;
pub mod gpio;
pub mod hcsr04;
pub mod http;
pub mod iio;
// Always built: its parameters are validated in every build (it is unavailable without
// the mqtt feature).
pub mod mqtt;
mod sysfs;
pub mod system;
