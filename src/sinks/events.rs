//! The `events` sink: readings to the live event stream (`GET /api/events`, the
//! dashboard), through `messages::EventHub`. Lossy like the log sink: its inbox drops
//! the oldest when full, and it never waits for a client (the hub's ring drops the
//! oldest for a client that falls behind), so the graph never slows for a browser.
//!
//! Each reading is serialised once, into a buffer the sink reuses, and copied into the
//! ring's reused slot: no allocation per reading once the buffers have grown.

use std::io::Write;
use std::sync::Arc;

use async_channel::Receiver;

use crate::clock::Iso8601;
use crate::config::SinkSpec;
use crate::graph::counters::Counters;
use crate::graph::reading::flags;
use crate::graph::registry::Registry;
use crate::graph::{Item, Reading, Value};
use crate::messages::{EventHub, EventKind};
use crate::plugins::{Kind, Make, Role, Unavailable, no_params};
use crate::plugins::{Setup, Task};

pub const KIND: Kind = Kind {
    role: Role::Sink,
    name: "events",
    version: env!("CARGO_PKG_VERSION"),
    doc: "readings to the live event stream (GET /api/events, the dashboard); never slows the graph",
    params: &[],
    make: Make::Sink {
        parse: no_params,
        lossless: false,
        setup,
    },
};

const READINGS: usize = 0;
const OVERSIZED: usize = 1;

/// Publishes each reading it gets as a `reading` event. Guarantees: one JSON object per
/// reading, `{"source", "value", "unit", "timestamp", "ts"}` (plus `heartbeat` or
/// `out_of_range` when flagged), as `/api/readings` shows it; other items are ignored.
pub struct EventsSink {
    hub: Arc<EventHub>,
    registry: Arc<Registry>,
    counters: Arc<Counters>,
}

/// Unavailable without HTTP (`[http] enabled = false`): nothing could stream them.
fn setup(_: &SinkSpec, s: &mut Setup) -> Result<Box<dyn crate::plugins::Sink>, Unavailable> {
    let Some(hub) = s.parts.events else {
        return Err(Unavailable::Off(
            "HTTP is off ([http] enabled = false), so nothing streams events".into(),
        ));
    };
    Ok(Box::new(EventsSink {
        hub: hub.clone(),
        registry: s.parts.registry.clone(),
        counters: Arc::new(Counters::new(&["readings", "oversized"])),
    }))
}

/// `r` as the event's JSON, into `out` (cleared first). Public for
/// `tests/events_alloc.rs`, which checks that this and the hub allocate nothing per
/// reading.
pub fn write_reading(out: &mut Vec<u8>, registry: &Registry, r: &Reading) {
    out.clear();
    let info = registry.get(r.source);
    let (name, unit) = info.as_ref().map_or(("?", ""), |i| (&*i.name, &*i.unit));
    out.extend_from_slice(b"{\"source\":");
    let _ = serde_json::to_writer(&mut *out, name);
    out.extend_from_slice(b",\"value\":");
    let _ = match r.value {
        Value::Number(x) => serde_json::to_writer(&mut *out, &x),
        Value::Bool(b) => serde_json::to_writer(&mut *out, &b),
        Value::Text(t) => serde_json::to_writer(&mut *out, t.as_str()),
    };
    out.extend_from_slice(b",\"unit\":");
    let _ = serde_json::to_writer(&mut *out, unit);
    let _ = write!(out, ",\"timestamp\":\"{}\",\"ts\":{}", Iso8601(r.ts), r.ts);
    if r.flags & flags::HEARTBEAT != 0 {
        out.extend_from_slice(b",\"heartbeat\":true");
    }
    if r.flags & flags::OUT_OF_RANGE != 0 {
        out.extend_from_slice(b",\"out_of_range\":true");
    }
    out.push(b'}');
}

impl crate::plugins::Sink for EventsSink {
    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn start(self: Box<Self>, rx: Receiver<Item>) -> Task {
        Box::pin(async move {
            let mut buf = Vec::with_capacity(256);
            while let Ok(item) = rx.recv().await {
                if let Item::Reading(r) = item {
                    self.counters.inc(READINGS);
                    write_reading(&mut buf, &self.registry, &r);
                    if self.hub.publish(EventKind::Reading, &buf).is_none() {
                        self.counters.inc(OVERSIZED);
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::ValueKind;

    #[test]
    fn a_reading_is_one_json_object_as_the_api_shows_it() {
        let registry = Registry::new();
        let info = registry.intern("system:cpu_temp", "°C", ValueKind::Number);
        let mut out = Vec::new();
        let r = Reading {
            flags: flags::HEARTBEAT,
            ..Reading::new(info.id, 1_764_000_000_123_000, Value::Number(42.5))
        };
        write_reading(&mut out, &registry, &r);
        let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(j["source"], "system:cpu_temp");
        assert_eq!(j["value"], 42.5);
        assert_eq!(j["unit"], "°C");
        assert_eq!(j["timestamp"], crate::clock::iso8601(1_764_000_000_123_000));
        assert_eq!(j["ts"], 1_764_000_000_123_000i64);
        assert_eq!(j["heartbeat"], true);
        assert!(!out.contains(&b'\n'));
        // The buffer is reused: the next reading replaces the last.
        let cap = out.capacity();
        write_reading(
            &mut out,
            &registry,
            &Reading::new(info.id, 0, Value::Bool(true)),
        );
        let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(j["value"], true);
        assert_eq!(out.capacity(), cap);
    }
}
