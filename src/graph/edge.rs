//! Edges: bounded channels between nodes, with the drop policy made explicit.
//!
//! A lossy edge keeps the newest readings: when full it drops the oldest queued item and
//! counts it (per edge and against the reading's source), and says so at warn at most once
//! a minute per edge with the count. A lossless edge (into a durable sink, or on a
//! held-back source's way to one) applies backpressure instead and never drops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_channel::{Receiver, Sender};

use super::every_minute::EveryMinute;
use super::reading::Item;
use super::registry::Registry;

/// Shared numbers of one edge, read by status.
pub struct EdgeStats {
    pub from: String,
    pub to: String,
    pub lossy: bool,
    pub capacity: usize,
    pub drops: AtomicU64,
    /// Drops not yet in a log line (one a minute at most).
    warned: EveryMinute,
    /// A receiver clone, kept only to read the queue depth.
    depth_probe: Receiver<Item>,
}

impl EdgeStats {
    pub fn depth(&self) -> usize {
        self.depth_probe.len()
    }
}

#[derive(Clone)]
pub struct EdgeTx {
    tx: Sender<Item>,
    stats: Arc<EdgeStats>,
    registry: Arc<Registry>,
}

impl EdgeTx {
    pub async fn send(&self, item: Item) {
        if self.stats.lossy {
            match self.tx.force_send(item) {
                Ok(None) => {}
                Ok(Some(dropped)) => self.count_drop(&dropped),
                Err(_) => {} // receiver gone: shutting down
            }
        } else {
            let _ = self.tx.send(item).await;
        }
    }

    fn count_drop(&self, dropped: &Item) {
        self.stats.drops.fetch_add(1, Ordering::Relaxed);
        if let Item::Reading(r) = dropped {
            self.registry.count_drop(r.source);
        }
        log::trace!(
            "edge {} -> {} full: dropped oldest {:?}",
            self.stats.from,
            self.stats.to,
            dropped
        );
        if let Some(n) = self.stats.warned.note(crate::clock::now_us()) {
            log::warn!(
                "edge {} -> {} full, dropping the oldest queued items: {n} since the last such line, {} in all (inbox of {}; this line comes at most once a minute)",
                self.stats.from,
                self.stats.to,
                self.stats.drops.load(Ordering::Relaxed),
                self.stats.capacity
            );
        }
    }

    pub fn stats(&self) -> &Arc<EdgeStats> {
        &self.stats
    }
}

/// The channel into one node: every upstream edge sends into the same bounded queue, so
/// a node with several inputs sees them in arrival order. The queue's drop policy is the
/// receiving node's (lossless for durable sinks).
pub struct Inbox {
    pub rx: Receiver<Item>,
    tx: Sender<Item>,
    lossy: bool,
    capacity: usize,
    to: String,
}

impl Inbox {
    pub fn new(to: &str, capacity: usize, lossy: bool) -> Inbox {
        let (tx, rx) = async_channel::bounded(capacity);
        Inbox {
            rx,
            tx,
            lossy,
            capacity,
            to: to.to_string(),
        }
    }

    /// A sender for the edge `from -> self`.
    pub fn sender(&self, from: &str, registry: &Arc<Registry>) -> EdgeTx {
        EdgeTx {
            tx: self.tx.clone(),
            stats: Arc::new(EdgeStats {
                from: from.to_string(),
                to: self.to.clone(),
                lossy: self.lossy,
                capacity: self.capacity,
                drops: AtomicU64::new(0),
                warned: EveryMinute::default(),
                depth_probe: self.rx.clone(),
            }),
            registry: registry.clone(),
        }
    }

    /// Give up the inbox's own sender so the channel closes when the last upstream stops.
    pub fn into_receiver(self) -> Receiver<Item> {
        self.rx
    }
}

/// A node's fan-out: every emitted item goes to each downstream edge.
#[derive(Clone, Default)]
pub struct Output {
    edges: Vec<EdgeTx>,
}

impl Output {
    pub fn new(edges: Vec<EdgeTx>) -> Output {
        Output { edges }
    }

    pub async fn send(&self, item: Item) {
        for e in &self.edges {
            e.send(item).await;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    pub fn edges(&self) -> &[EdgeTx] {
        &self.edges
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::reading::{Reading, SourceId, Value, ValueKind};

    fn reading(ts: i64) -> Item {
        Item::Reading(Reading::new(SourceId(0), ts, Value::Number(ts as f64)))
    }

    #[test]
    fn lossy_edge_drops_oldest_and_counts() {
        let reg = Arc::new(Registry::new());
        let src = reg.intern("system:x", "", ValueKind::Number);
        let inbox = Inbox::new("filter", 2, true);
        let tx = inbox.sender("system", &reg);
        smol::block_on(async {
            for ts in 0..5 {
                tx.send(reading(ts)).await;
            }
        });
        assert_eq!(tx.stats().drops.load(Ordering::Relaxed), 3);
        assert_eq!(src.live.drops.load(Ordering::Relaxed), 3);
        let rx = inbox.into_receiver();
        // The two newest survive, in order.
        assert_eq!(rx.try_recv().unwrap(), reading(3));
        assert_eq!(rx.try_recv().unwrap(), reading(4));
    }

    #[test]
    fn lossless_edge_waits_instead_of_dropping() {
        let reg = Arc::new(Registry::new());
        let inbox = Inbox::new("store", 1, false);
        let tx = inbox.sender("keep", &reg);
        let rx = inbox.into_receiver();
        let ex = smol::LocalExecutor::new();
        let got = smol::block_on(ex.run(async {
            let producer = ex.spawn(async move {
                for ts in 0..10 {
                    tx.send(reading(ts)).await;
                }
            });
            let mut got = Vec::new();
            while let Ok(item) = rx.recv().await {
                got.push(item);
            }
            producer.await;
            got
        }));
        assert_eq!(got.len(), 10);
    }
}
