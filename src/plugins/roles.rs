//! The interface a kind implements, by role: what a source, a sink (and, in
//! `graph::stage`, a stage) is, what its task is, and what its setup gets. It sits below
//! the kinds and the runner: both import it, it imports neither, so adding a kind never
//! makes the engine depend on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_channel::Receiver;

use crate::clock::now_us;
use crate::config::settings::Settings;
use crate::edges::gpio::GpioBackend;
use crate::graph::counters::Counters;
use crate::graph::edge::Output;
use crate::graph::registry::Registry;
use crate::graph::{Change, Item, Micros};
use crate::messages::PublishTx;
#[cfg(feature = "mqtt")]
use crate::messages::Subscription;
use crate::shutdown::Shutdown;
use crate::store::writer::WriterHandle;

/// One node's work on the event loop.
pub type Task = Pin<Box<dyn Future<Output = ()>>>;

/// Everything the graph's nodes need from outside.
pub struct Parts<'a> {
    pub settings: &'a Settings,
    pub registry: &'a Arc<Registry>,
    pub gpio: &'a Arc<dyn GpioBackend>,
    /// I2C/SPI buses, the `hw` thread and the attached output devices.
    pub hardware: &'a Arc<crate::edges::hw::Hardware>,
    /// The store writer; `None` when the pipeline has no store sink (then a store sink
    /// is unavailable).
    pub writer: Option<&'a WriterHandle>,
    /// Where mqtt sinks send messages; `None` when no broker is configured (then mqtt
    /// sinks and sources are unavailable, with one log line each).
    /// Always `None` in a build without the mqtt feature.
    pub mqtt: Option<&'a PublishTx>,
    /// Where observer sinks send change events (the agent's observation loop).
    pub observer: Option<&'a async_channel::Sender<Change>>,
    /// The live events (`/api/events`) the events sink feeds; `None` when HTTP is off.
    pub events: Option<&'a Arc<crate::messages::EventHub>>,
    /// What openclaw sinks hand the gateway client; `None` when `[openclaw]` is off.
    pub node_events: Option<&'a Arc<crate::messages::NodeEvents>>,
    pub shutdown: &'a Shutdown,
}

/// What a kind's setup gets: the parts, and where it registers what edges need of it.
pub struct Setup<'a> {
    pub parts: &'a Parts<'a>,
    /// What each mqtt source wants from the broker, for the MQTT worker.
    #[cfg(feature = "mqtt")]
    pub subscriptions: Vec<Subscription>,
}

/// What every source task gets.
pub struct SourceCtx {
    pub out: Output,
    pub registry: Arc<Registry>,
    pub shutdown: Shutdown,
    /// Report a degradation here (shown in status); the runner keeps the rest.
    pub health: Arc<crate::plugins::Health>,
}

/// Why a source's [`SourceCtx::wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woke {
    /// The time it waited for came.
    Due,
    /// The adaptive stage set a new interval: recompute the next due time.
    Interval,
    /// The node is stopping: return from the task.
    Shutdown,
}

impl SourceCtx {
    /// Wait until `due` (µs since the epoch; `None`: no deadline), a new interval from the
    /// adaptive stage (a message on `wake`, the channel whose sender the source gave the
    /// registry), or shutdown, whichever comes first. Shutdown wins a tie.
    pub async fn wait(&self, due: Option<Micros>, wake: &Receiver<()>) -> Woke {
        let timer = async {
            match due {
                Some(due) => {
                    let wait = (due - now_us()).max(0) as u64;
                    smol::Timer::after(Duration::from_micros(wait)).await;
                }
                None => std::future::pending::<()>().await,
            }
            Woke::Due
        };
        let woken = async {
            let _ = wake.recv().await;
            Woke::Interval
        };
        let shutdown = async {
            self.shutdown.wait().await;
            Woke::Shutdown
        };
        smol::future::or(shutdown, smol::future::or(woken, timer)).await
    }
    /// Wait until `due` whatever the adaptive stage says meanwhile (a new interval takes
    /// effect at the next sample); false when the node is stopping.
    pub async fn sleep_until(&self, due: Micros, wake: &Receiver<()>) -> bool {
        loop {
            match self.wait(Some(due), wake).await {
                Woke::Interval => continue,
                Woke::Due => return true,
                Woke::Shutdown => return false,
            }
        }
    }
}

/// A source that has been set up. `start` turns it into its task, which returns when
/// `ctx.shutdown` fires; returning drops `ctx.out`, which closes the inboxes downstream.
pub trait Source {
    fn start(self: Box<Self>, ctx: SourceCtx) -> Task;

    /// Counters shown in status, for sources that count what they refuse or fail at (the
    /// exec source's malformed lines, the http source's failed polls); most have none.
    fn counters(&self) -> Option<Arc<Counters>> {
        None
    }

    /// True for a source whose readings can wait upstream (the broker holds what the
    /// network brings): the runner makes its path to a durable sink lossless, so a slow
    /// graph holds it back instead of dropping what it sends. Local sources sample: for
    /// them the newest reading matters and an old one may go.
    fn lossless(&self) -> bool {
        false
    }
}

/// A sink that has been set up. `start` turns it into its task, which returns once its
/// inbox closes (everything upstream has stopped), after handing on what it holds.
pub trait Sink {
    /// Counters shown in status, by name.
    fn counters(&self) -> Arc<Counters>;
    fn start(self: Box<Self>, rx: Receiver<Item>) -> Task;
}
