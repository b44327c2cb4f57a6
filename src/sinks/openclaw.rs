//! The `openclaw` sink: readings that passed the graph, and the adaptive stage's
//! volatile/calm changes, to the OpenClaw gateway as node events (docs/openclaw.md,
//! "Readings, changes and observations"), through `messages::NodeEvents` and the
//! `openclaw` thread. At most one reading per source per `min_interval` goes (the first
//! at once); the rest are counted as `limited`. It never slows the graph: its inbox is
//! lossy and the queue behind it drops its oldest when full (counted in the client's
//! status). A reading the rate limit holds back costs no allocation; one that goes is
//! formatted into the event's text.

use std::sync::Arc;

use async_channel::Receiver;
use toml::Value;

use crate::clock::Iso8601;
use crate::config::SinkSpec;
use crate::config::expect::{Want, mismatch};
use crate::config::spec::Spec;
use crate::graph::counters::Counters;
use crate::graph::reading::flags;
use crate::graph::registry::Registry;
use crate::graph::shown::WithUnit;
use crate::graph::{Change, Item, Micros, Reading};
use crate::messages::{NodeEvent, NodeEvents};
use crate::plugins::params::{Reader, describe, positive_dur};
use crate::plugins::{Kind, Make, Param, ParamsBox, Role, Setup, Task, Unavailable};

/// The sink's parameters: the per-source rate limit, and whether changes go too.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenclawSinkParams {
    pub min_interval: Micros,
    pub changes: bool,
}

const DEFAULTS: OpenclawSinkParams = OpenclawSinkParams {
    min_interval: 300_000_000,
    changes: true,
};

pub const KIND: Kind = Kind {
    role: Role::Sink,
    name: "openclaw",
    version: env!("CARGO_PKG_VERSION"),
    doc: "readings and volatile/calm changes to the OpenClaw gateway as node events (its main session's system events), rate-limited per source; unavailable with [openclaw] off",
    params: &[
        Param::new(Spec {
            default: "\"5m\"",
            doc: "at most one reading per source this often (the first at once); each accepted event may wake the gateway's agent",
            ..Spec::new("min_interval", Want::Duration)
        }),
        Param::new(Spec {
            default: "true",
            doc: "send the adaptive stage's volatile/calm changes too",
            ..Spec::new("changes", Want::Bool)
        }),
    ],
    make: Make::Sink {
        parse,
        lossless: false,
        setup,
    },
};

fn parse(r: &mut Reader) -> ParamsBox {
    let mut out = DEFAULTS;
    for p in r.params() {
        match (p.key.as_str(), &p.value) {
            ("min_interval", v) => match positive_dur(v) {
                Ok(d) => out.min_interval = d,
                Err(e) => r.bad(p, e),
            },
            ("changes", Value::Boolean(b)) => out.changes = *b,
            ("changes", v) => r.bad(p, mismatch(Want::Bool, v)),
            (_, v) => r.bad(
                p,
                (
                    format!("unexpected {}", describe(v)),
                    Some("the openclaw sink takes min_interval and changes".into()),
                ),
            ),
        }
    }
    Arc::new(out)
}

const READINGS: usize = 0;
const LIMITED: usize = 1;
const CHANGES: usize = 2;
const QUEUED: usize = 3;

/// Hands readings (at most one per source per `min_interval`, by the readings' own
/// timestamps) and changes to the gateway client's queue; ignores rollups and prunes.
pub struct OpenclawSink {
    params: OpenclawSinkParams,
    node: String,
    queue: Arc<NodeEvents>,
    registry: Arc<Registry>,
    counters: Arc<Counters>,
}

fn setup(spec: &SinkSpec, s: &mut Setup) -> Result<Box<dyn crate::plugins::Sink>, Unavailable> {
    let Some(queue) = s.parts.node_events else {
        return Err(Unavailable::Off(
            "the OpenClaw gateway client is off ([openclaw] enabled = false, or a build without the openclaw feature)".into(),
        ));
    };
    let params = crate::plugins::params_of::<OpenclawSinkParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    Ok(Box::new(OpenclawSink {
        params: params.clone(),
        node: s.parts.settings.node.name.clone(),
        queue: queue.clone(),
        registry: s.parts.registry.clone(),
        counters: Arc::new(Counters::new(&["readings", "limited", "changes", "queued"])),
    }))
}

/// When each source last sent (by the reading's timestamp), indexed by source id.
#[derive(Default)]
struct Limiter {
    last: Vec<Option<Micros>>,
}

impl Limiter {
    /// Whether a reading of source `i` at `ts` may go; if so it is remembered. A
    /// timestamp before the last one sent (a clock set back) goes and starts again.
    fn admit(&mut self, i: usize, ts: Micros, every: Micros) -> bool {
        if i >= self.last.len() {
            self.last.resize(i + 1, None);
        }
        let ok = match self.last[i] {
            Some(t) => ts < t || ts - t >= every,
            None => true,
        };
        if ok {
            self.last[i] = Some(ts);
        }
        ok
    }
}

impl OpenclawSink {
    fn name(&self, r: crate::graph::SourceId) -> (String, String) {
        self.registry.get(r).map_or_else(
            || ("?".to_string(), String::new()),
            |i| (i.name.to_string(), i.unit.to_string()),
        )
    }

    fn reading(&self, r: &Reading) -> NodeEvent {
        let (name, unit) = self.name(r.source);
        let mut text = format!("{} at {}", WithUnit(r.value, &unit), Iso8601(r.ts));
        if r.flags & flags::OUT_OF_RANGE != 0 {
            text.push_str(" (out of range)");
        }
        NodeEvent {
            key: format!("smollama.reading.{name}"),
            title: format!("smollama {}: {name}", self.node),
            text,
        }
    }

    fn change(&self, c: &Change) -> NodeEvent {
        let (name, _) = self.name(c.source);
        let turned = if c.volatile { "volatile" } else { "calm" };
        NodeEvent {
            key: format!("smollama.change.{name}"),
            title: format!("smollama {}: {name} turned {turned}", self.node),
            text: format!("variation {:.3} at {}", c.score, Iso8601(c.ts)),
        }
    }
}

impl crate::plugins::Sink for OpenclawSink {
    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn start(self: Box<Self>, rx: Receiver<Item>) -> Task {
        Box::pin(async move {
            let mut limit = Limiter::default();
            while let Ok(item) = rx.recv().await {
                let event = match item {
                    Item::Reading(r) => {
                        self.counters.inc(READINGS);
                        if !limit.admit(r.source.index(), r.ts, self.params.min_interval) {
                            self.counters.inc(LIMITED);
                            continue;
                        }
                        self.reading(&r)
                    }
                    Item::Change(c) if self.params.changes => {
                        self.counters.inc(CHANGES);
                        self.change(&c)
                    }
                    _ => continue,
                };
                self.queue.push(event);
                self.counters.inc(QUEUED);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Value, ValueKind};

    #[test]
    fn one_reading_per_source_per_interval_goes_and_a_clock_set_back_starts_again() {
        let mut l = Limiter::default();
        let every = 60_000_000;
        assert!(l.admit(3, 1_000_000_000, every));
        assert!(!l.admit(3, 1_030_000_000, every));
        assert!(l.admit(0, 1_030_000_000, every), "another source is apart");
        assert!(l.admit(3, 1_060_000_000, every));
        assert!(!l.admit(3, 1_119_999_999, every));
        assert!(l.admit(3, 500_000_000, every), "set back");
        assert!(!l.admit(3, 500_000_001, every));
    }

    #[test]
    fn readings_and_changes_say_what_where_and_when() {
        let registry = Arc::new(Registry::new());
        let info = registry.intern("system:cpu_temp", "°C", ValueKind::Number);
        let sink = OpenclawSink {
            params: DEFAULTS,
            node: "greenhouse".into(),
            queue: Arc::new(NodeEvents::new(4)),
            registry,
            counters: Arc::new(Counters::new(&["readings", "limited", "changes", "queued"])),
        };
        let r = Reading::new(info.id, 1_764_000_000_000_000, Value::Number(42.5));
        let e = sink.reading(&r);
        assert_eq!(e.key, "smollama.reading.system:cpu_temp");
        assert_eq!(e.title, "smollama greenhouse: system:cpu_temp");
        assert_eq!(
            e.text,
            format!(
                "42.5 °C at {}",
                crate::clock::iso8601(1_764_000_000_000_000)
            )
        );
        let c = sink.change(&Change {
            source: info.id,
            ts: 1_764_000_000_000_000,
            volatile: true,
            score: 0.25,
        });
        assert_eq!(c.key, "smollama.change.system:cpu_temp");
        assert!(
            c.title.ends_with("system:cpu_temp turned volatile"),
            "{}",
            c.title
        );
        assert!(c.text.starts_with("variation 0.250 at "), "{}", c.text);
    }
}
