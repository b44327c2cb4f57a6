//! Sources: where readings come from. Each kind is one file with its `KIND` (see
//! `plugins`); each runs as one task on the event loop and sends into its node's
//! [`Output`](crate::graph::edge::Output).

#[cfg(feature = "test-kinds")]
pub mod counter;
pub mod exec;
pub mod file;
pub mod gpio;
// Always built: its parameters are validated in every build (it is unavailable without
// the mqtt feature).
pub mod mqtt;
pub mod system;

use std::sync::Arc;

use crate::graph::edge::Output;
use crate::graph::registry::Registry;
use crate::graph::runner::Task;
use crate::shutdown::Shutdown;

/// What every source task gets.
pub struct SourceCtx {
    pub out: Output,
    pub registry: Arc<Registry>,
    pub shutdown: Shutdown,
    /// Report a degradation here (shown in status); the runner keeps the rest.
    pub health: Arc<crate::plugins::Health>,
}

/// A source that has been set up. `start` turns it into its task, which returns when
/// `ctx.shutdown` fires; returning drops `ctx.out`, which closes the inboxes downstream.
pub trait Source {
    fn start(self: Box<Self>, ctx: SourceCtx) -> Task;

    /// Counters shown in status, for sources that count what they refuse (the exec
    /// source's malformed lines); most have none.
    fn counters(&self) -> Option<Arc<crate::graph::counters::Counters>> {
        None
    }
}
