//! Sources: where readings come from. Each kind is one file; each runs as one task on the
//! event loop and sends into its node's [`Output`](crate::graph::edge::Output).

pub mod gpio;
#[cfg(feature = "mqtt")]
pub mod mqtt;
pub mod system;

use std::sync::Arc;

use crate::graph::edge::Output;
use crate::graph::registry::Registry;
use crate::shutdown::Shutdown;

/// What every source task gets.
pub struct SourceCtx {
    pub out: Output,
    pub registry: Arc<Registry>,
    pub shutdown: Shutdown,
}
