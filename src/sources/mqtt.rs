//! The `mqtt` source: readings other nodes and devices publish, parsed by the MQTT
//! worker thread (see `edges::mqtt::connection`) and handed over one batch per message
//! from a fixed pool of buffers (`messages::Subscription`). On the event loop this is only
//! a forwarder. It asks for backpressure (`Source::lossless`): what the broker holds can
//! wait, so the runner makes its path to a durable sink lossless.
//!
//! The kind (parameters, validation) is in every build; without the mqtt feature, or
//! without a broker, a node of it is unavailable and the rest runs.

use std::sync::Arc;

use toml::Value;

use crate::config::SourceSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::plugins::Setup;
use crate::plugins::params::{Reader, describe};
use crate::plugins::{Flow, Kind, Make, Param, ParamsBox, Produced, Unavailable};

/// What an mqtt source subscribes to.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttSourceParams {
    /// Subscription filters.
    pub topics: Vec<String>,
    /// JSON pointer to the value in JSON object payloads (e.g. `/temperature`).
    pub pointer: Option<String>,
    /// Unit for readings whose payload carries none.
    pub unit: Option<String>,
}

pub const KIND: Kind = Kind {
    role: crate::plugins::Role::Source,
    name: "mqtt",
    version: env!("CARGO_PKG_VERSION"),
    doc: "readings other nodes and devices publish over MQTT (event-driven; needs [mqtt] broker)",
    params: &[
        Param::new(Spec {
            doc: "subscription filters, e.g. [\"smollama/+/readings\", \"sensors/#\"] (required)",
            ..Spec::new("topics", Want::TextList)
        }),
        Param::new(Spec {
            doc: "JSON pointer to the value in JSON object payloads, e.g. \"/temperature\"",
            ..Spec::new("pointer", Want::Text)
        }),
        Param::new(Spec {
            doc: "unit for readings whose payload carries none",
            ..Spec::new("unit", Want::Text)
        }),
    ],
    make: Make::Source {
        ids: "",
        parse,
        produces,
        setup,
    },
};

fn parse(r: &mut Reader) -> ParamsBox {
    let mut out = MqttSourceParams {
        topics: Vec::new(),
        pointer: None,
        unit: None,
    };
    for p in r.params() {
        match (p.key.as_str(), &p.value) {
            ("topics", Value::Array(a)) if !a.is_empty() => {
                for v in a {
                    match v {
                        Value::String(f) => match crate::edges::mqtt::topic::validate_filter(f) {
                            Ok(()) => out.topics.push(f.clone()),
                            Err(e) => r.bad(
                                p,
                                (
                                    format!("'{f}': {e}"),
                                    Some("filters use + for one level and # for the rest, e.g. \"smollama/+/readings\"".into()),
                                ),
                            ),
                        },
                        other => r.bad(
                            p,
                            (format!("expected a topic filter in quotes, found {}", describe(other)), None),
                        ),
                    }
                }
            }
            ("topics", other) => r.bad(
                p,
                (
                    format!("expected a non-empty list of topic filters, found {}", describe(other)),
                    Some("write e.g. topics = [\"smollama/+/readings\", \"sensors/#\"]".into()),
                ),
            ),
            ("pointer", Value::String(s)) if s.starts_with('/') => out.pointer = Some(s.clone()),
            ("pointer", other) => r.bad(
                p,
                (
                    format!("expected a JSON pointer in quotes starting with /, found {}", describe(other)),
                    Some("e.g. pointer = \"/temperature\" picks the temperature field of a JSON object".into()),
                ),
            ),
            ("unit", v) => match crate::plugins::params::as_text(v) {
                Ok(s) => out.unit = Some(s.to_string()),
                Err(e) => r.bad(p, e),
            },
            _ => {}
        }
    }
    if out.topics.is_empty() && r.clean() {
        let msg = format!("mqtt source '{}' has no topics", r.name);
        r.bad_at(
            r.line,
            msg,
            Some(
                "add topics = [\"smollama/+/readings\"] (or the topics your devices publish)"
                    .into(),
            ),
        );
    }
    Arc::new(out)
}

/// Known only at run time: whatever other nodes publish.
fn produces(_: &SourceSpec, _: &crate::config::Settings) -> Produced {
    Produced {
        ids: Vec::new(),
        open: Some(Flow::Any),
    }
}

#[cfg(not(feature = "mqtt"))]
fn setup(_: &SourceSpec, _: &mut Setup) -> Result<Box<dyn crate::plugins::Source>, Unavailable> {
    Err(Unavailable::Off("this build has no mqtt feature".into()))
}

/// Registers the subscription with the MQTT worker (which feeds the channel).
#[cfg(feature = "mqtt")]
fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn crate::plugins::Source>, Unavailable> {
    if s.parts.mqtt.is_none() {
        return Err(Unavailable::Off("no [mqtt] broker configured".into()));
    }
    let p = crate::plugins::params_of::<MqttSourceParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    // Both channels hold the whole pool, so neither side ever finds one full.
    let (tx, rx) = async_channel::bounded(running::BATCHES);
    let (back, spare) = async_channel::bounded(running::BATCHES);
    for _ in 0..running::BATCHES {
        let _ = back.try_send(Vec::new());
    }
    s.subscriptions.push(crate::messages::Subscription {
        source: spec.name.clone(),
        filters: p.topics.clone(),
        pointer: p.pointer.clone(),
        unit: p.unit.clone(),
        tx,
        spare,
    });
    Ok(Box::new(MqttSource::new(rx, back)))
}

#[cfg(feature = "mqtt")]
pub use running::MqttSource;

#[cfg(feature = "mqtt")]
mod running {
    use async_channel::{Receiver, Sender};

    use crate::graph::Item;
    use crate::plugins::SourceCtx;
    use crate::plugins::Task;

    /// Forwards each batch the MQTT worker hands over and sends the emptied buffer back:
    /// at most `BATCHES` messages' readings wait between the worker and the graph.
    pub struct MqttSource {
        rx: Receiver<Vec<Item>>,
        back: Sender<Vec<Item>>,
    }

    /// Buffers in the pool between the worker and this source: a few, so the worker parses
    /// the next message while the graph takes the last.
    pub const BATCHES: usize = 4;
    /// A buffer returned with room for more readings than this is shrunk: one huge batch
    /// does not keep its memory for good (a batch this size or smaller costs nothing).
    pub const KEEP_CAPACITY: usize = 1024;

    impl MqttSource {
        pub fn new(rx: Receiver<Vec<Item>>, back: Sender<Vec<Item>>) -> MqttSource {
            MqttSource { rx, back }
        }

        pub async fn run(self, ctx: SourceCtx) {
            loop {
                let next = smol::future::or(async { self.rx.recv().await.ok() }, async {
                    ctx.shutdown.wait().await;
                    None
                })
                .await;
                let Some(mut batch) = next else { return };
                for item in batch.drain(..) {
                    ctx.out.send(item).await;
                }
                if batch.capacity() > KEEP_CAPACITY {
                    batch.shrink_to(KEEP_CAPACITY);
                }
                // The worker is gone only when the edge is stopping.
                let _ = self.back.try_send(batch);
            }
        }
    }

    impl crate::plugins::Source for MqttSource {
        fn start(self: Box<Self>, ctx: SourceCtx) -> Task {
            Box::pin((*self).run(ctx))
        }

        fn lossless(&self) -> bool {
            true
        }
    }
}
