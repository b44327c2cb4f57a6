//! The `log` sink: one info line per item, for trying a pipeline out.

use std::sync::Arc;

use async_channel::Receiver;

use crate::clock::iso8601;
use crate::graph::counters::Counters;
use crate::graph::registry::Registry;
use crate::graph::shown::WithUnit;
use crate::graph::{Item, Value};

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
                    let info = self.registry.get(r.source);
                    let unit = info.as_ref().map_or("", |i| &i.unit);
                    log::info!(
                        "{}: {} {} at {}",
                        self.name,
                        name(r.source),
                        WithUnit(r.value, unit),
                        iso8601(r.ts)
                    )
                }
                Item::Rollup(r) => {
                    let info = self.registry.get(r.source);
                    let unit = info.as_ref().map_or("", |i| &i.unit);
                    let shown = |x: f64| WithUnit(Value::Number(x), unit);
                    log::info!(
                        "{}: rollup {} level {} from {}: n={} min={} max={} mean={}",
                        self.name,
                        name(r.source),
                        r.level,
                        iso8601(r.bucket_start),
                        r.count,
                        shown(r.min),
                        shown(r.max),
                        shown(r.mean())
                    )
                }
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

// ---------------------------------------------------------------------------------------
// The kind.

use crate::config::SinkSpec;
use crate::plugins::{Kind, Make, Role, Unavailable, no_params};
use crate::plugins::{Setup, Task};

pub const KIND: Kind = Kind {
    role: Role::Sink,
    name: "log",
    version: env!("CARGO_PKG_VERSION"),
    doc: "every item as one info log line (for trying a pipeline out)",
    params: &[],
    make: Make::Sink {
        parse: no_params,
        lossless: false,
        setup,
    },
};

fn setup(spec: &SinkSpec, s: &mut Setup) -> Result<Box<dyn crate::plugins::Sink>, Unavailable> {
    Ok(Box::new(LogSink::new(&spec.name, s.parts.registry.clone())))
}

impl crate::plugins::Sink for LogSink {
    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn start(self: Box<Self>, rx: Receiver<Item>) -> Task {
        Box::pin((*self).run(rx))
    }
}
