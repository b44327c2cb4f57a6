//! The `store` sink: collect items into batches for the store's writer thread.
//!
//! Batching is adaptive: the sink takes everything already queued (up to `MAX_BATCH`)
//! and hands it over; while the writer is busy committing, items wait in the inbox and
//! the next batch is larger. An idle pipeline commits once per burst (one per sampling
//! round), a busy one commits thousands of readings per transaction.

use std::sync::Arc;

use async_channel::{Receiver, Sender};

use crate::graph::Item;
use crate::graph::counters::Counters;
use crate::store::writer::WriterHandle;

pub const MAX_BATCH: usize = 8192;

const ITEMS: usize = 0;
const BATCHES: usize = 1;

pub struct StoreSink {
    batches: Sender<Vec<Item>>,
    recycled: Receiver<Vec<Item>>,
    counters: Arc<Counters>,
}

impl StoreSink {
    pub fn new(writer: &WriterHandle) -> StoreSink {
        StoreSink {
            batches: writer.batches.clone(),
            recycled: writer.recycled.clone(),
            counters: Arc::new(Counters::new(&["items", "batches"])),
        }
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    pub async fn run(self, rx: Receiver<Item>) {
        let mut batch: Vec<Item> = Vec::with_capacity(256);
        while let Ok(item) = rx.recv().await {
            batch.push(item);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            self.counters.add(ITEMS, batch.len() as u64);
            self.counters.inc(BATCHES);
            let next = self
                .recycled
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(256));
            let full = std::mem::replace(&mut batch, next);
            if self.batches.send(full).await.is_err() {
                log::error!("store writer stopped; readings are no longer stored");
                return;
            }
        }
        // Inbox closed: everything upstream has stopped. Dropping `self.batches` lets the
        // writer commit what it holds and exit.
    }
}

// ---------------------------------------------------------------------------------------
// The kind.

use crate::config::SinkSpec;
use crate::plugins::{Kind, Make, Role, Unavailable, no_params};
use crate::plugins::{Setup, Task};

pub const KIND: Kind = Kind {
    role: Role::Sink,
    name: "store",
    version: env!("CARGO_PKG_VERSION"),
    doc: "the LMDB store (its inbox never drops: backpressure up to the nearest lossy inbox)",
    params: &[],
    make: Make::Sink {
        parse: no_params,
        lossless: true,
        setup,
    },
};

fn setup(_: &SinkSpec, s: &mut Setup) -> Result<Box<dyn crate::plugins::Sink>, Unavailable> {
    let writer = s
        .parts
        .writer
        .ok_or_else(|| Unavailable::Failed("the store is not open".into()))?;
    Ok(Box::new(StoreSink::new(writer)))
}

impl crate::plugins::Sink for StoreSink {
    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn start(self: Box<Self>, rx: Receiver<Item>) -> Task {
        Box::pin((*self).run(rx))
    }
}
