//! The `observer` sink: hands the adaptive stage's volatile/calm events to the
//! observation loop, so the LLM looks sooner when the world is changing. It never waits
//! on the loop: a missed change only delays a look (counted: `changes` vs `forwarded`).

use std::sync::Arc;

use async_channel::{Receiver, Sender};

use crate::config::SinkSpec;
use crate::graph::counters::Counters;
use crate::graph::{Change, Item};
use crate::plugins::{Kind, Make, Role, Unavailable, no_params};
use crate::plugins::{Setup, Task};

pub const KIND: Kind = Kind {
    role: Role::Sink,
    name: "observer",
    version: env!("CARGO_PKG_VERSION"),
    doc: "the adaptive stage's volatile/calm events to the observation loop (the agent looks sooner)",
    params: &[],
    make: Make::Sink {
        parse: no_params,
        lossless: false,
        setup,
    },
};

const CHANGES: usize = 0;
const FORWARDED: usize = 1;

pub struct ObserverSink {
    to: Option<Sender<Change>>,
    counters: Arc<Counters>,
}

/// Without an observation loop (the agent off) it still counts what it would forward.
fn setup(_: &SinkSpec, s: &mut Setup) -> Result<Box<dyn crate::plugins::Sink>, Unavailable> {
    Ok(Box::new(ObserverSink {
        to: s.parts.observer.cloned(),
        counters: Arc::new(Counters::new(&["changes", "forwarded"])),
    }))
}

impl crate::plugins::Sink for ObserverSink {
    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn start(self: Box<Self>, rx: Receiver<Item>) -> Task {
        Box::pin(async move {
            while let Ok(item) = rx.recv().await {
                if let Item::Change(ch) = item {
                    self.counters.inc(CHANGES);
                    if self.to.as_ref().is_some_and(|t| t.try_send(ch).is_ok()) {
                        self.counters.inc(FORWARDED);
                    }
                }
            }
        })
    }
}
