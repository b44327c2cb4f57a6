//! The `log` sink: one info line per item, for trying a pipeline out.

use std::sync::Arc;

use async_channel::Receiver;

use crate::clock::iso8601;
use crate::graph::Item;
use crate::graph::counters::Counters;
use crate::graph::registry::Registry;

pub struct LogSink {
    name: String,
    registry: Arc<Registry>,
    counters: Arc<Counters>,
}

impl LogSink {
    pub fn new(name: &str, registry: Arc<Registry>) -> LogSink {
        LogSink {
            name: name.to_string(),
            registry,
            counters: Arc::new(Counters::new(&["items"])),
        }
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    pub async fn run(self, rx: Receiver<Item>) {
        while let Ok(item) = rx.recv().await {
            self.counters.inc(0);
            let name = |id| {
                self.registry
                    .get(id)
                    .map_or_else(|| "?".to_string(), |i| i.name.to_string())
            };
            match item {
                Item::Reading(r) => {
                    let unit = self
                        .registry
                        .get(r.source)
                        .map_or_else(String::new, |i| i.unit.to_string());
                    log::info!(
                        "{}: {} {} {} at {}",
                        self.name,
                        name(r.source),
                        r.value,
                        unit,
                        iso8601(r.ts)
                    )
                }
                Item::Rollup(r) => log::info!(
                    "{}: rollup {} level {} from {}: n={} min={} max={} mean={:.3}",
                    self.name,
                    name(r.source),
                    r.level,
                    iso8601(r.bucket_start),
                    r.count,
                    r.min,
                    r.max,
                    r.mean()
                ),
                Item::Prune(p) => log::info!("{}: prune {:?}", self.name, p),
                Item::Change(c) => log::info!(
                    "{}: {} turned {} (cv {:.3})",
                    self.name,
                    name(c.source),
                    if c.volatile { "volatile" } else { "calm" },
                    c.score
                ),
            }
        }
    }
}
