//! The `mqtt` sink's kind: its parameters, their validation and setup. In every build,
//! so pipelines validate alike; the running part is `sinks::mqtt` (the mqtt feature).
//! Without the feature or a broker, an mqtt sink is unavailable and the rest runs.

use std::sync::Arc;

use toml::Value;

use crate::config::SinkSpec;
use crate::config::expect::{Want, mismatch};
use crate::config::spec::Spec;
use crate::graph::Micros;
use crate::plugins::Setup;
use crate::plugins::params::{Reader, describe, positive_dur};
use crate::plugins::{Kind, Make, Param, ParamsBox, Role, Unavailable};

/// What the sink publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MqttFormat {
    /// The original's edge batch: one message per batch on `{prefix}/readings`,
    /// `{node, timestamp, readings:[{source, value, unit, ts}]}`.
    Batch,
    /// One message per reading on a per-source topic, `{value, unit, time}`.
    State,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MqttSinkParams {
    pub format: MqttFormat,
    /// Topic template: `{prefix}` (the node's topic prefix), `{node}`, and for the state
    /// format `{type}` and `{id}` (`system` and `cpu_temp` of `system:cpu_temp`).
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    /// Batch format: publish at least this often while readings arrive...
    pub batch_every: Micros,
    /// ...or as soon as this many readings are waiting.
    pub batch_max: usize,
}

impl MqttSinkParams {
    pub fn defaults(format: MqttFormat) -> MqttSinkParams {
        match format {
            MqttFormat::Batch => MqttSinkParams {
                format,
                topic: "{prefix}/readings".into(),
                qos: 1,
                retain: false,
                batch_every: 30_000_000,
                batch_max: 100,
            },
            MqttFormat::State => MqttSinkParams {
                format,
                topic: "{prefix}/state/{type}/{id}".into(),
                qos: 1,
                retain: true,
                batch_every: 0,
                batch_max: 1,
            },
        }
    }
}

pub const KIND: Kind = Kind {
    role: Role::Sink,
    name: "mqtt",
    version: env!("CARGO_PKG_VERSION"),
    doc: "publish to the MQTT broker: batches in the original's format, or one retained state per reading",
    params: &[
        Param::new(Spec {
            default: "\"batch\"",
            doc: "\"batch\" ({node, timestamp, readings} on {prefix}/readings) or \"state\" (one message per reading)",
            ..Spec::new("format", Want::Text)
        }),
        Param::new(Spec {
            default: "\"{prefix}/readings\"",
            doc: "topic template: {prefix}, {node}; for state also {type}, {id}",
            ..Spec::new("topic", Want::Text)
        }),
        Param::new(Spec {
            range: Some((0.0, 1.0)),
            default: "1",
            doc: "0 or 1; QoS 1 messages wait in the store's outbox until the broker has them",
            ..Spec::new("qos", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "false",
            doc: "retain messages (state format: true by default)",
            ..Spec::new("retain", Want::Bool)
        }),
        Param::new(Spec {
            default: "\"30s\"",
            doc: "batch format: publish at least this often while readings arrive",
            ..Spec::new("batch_every", Want::Duration)
        }),
        Param::new(Spec {
            range: Some((1.0, 10_000.0)),
            default: "100",
            doc: "batch format: or as soon as this many readings wait",
            ..Spec::new("batch_max", Want::WholeNumber)
        }),
    ],
    make: Make::Sink {
        parse,
        lossless: false,
        setup,
    },
};

fn parse(r: &mut Reader) -> ParamsBox {
    let name = r.name;
    let format = match r.get("format").map(|p| &p.value) {
        None => MqttFormat::Batch,
        Some(Value::String(f)) if f == "batch" => MqttFormat::Batch,
        Some(Value::String(f)) if f == "state" => MqttFormat::State,
        Some(other) => {
            let line = r.get("format").map_or(r.line, |p| p.line);
            let msg = format!(
                "format of sink '{name}': expected \"batch\" or \"state\", found {}",
                describe(other)
            );
            r.bad_at(
                line,
                msg,
                Some("batch: the original's {node, timestamp, readings} message on {prefix}/readings; state: one message per reading on a per-source topic".into()),
            );
            return Arc::new(MqttSinkParams::defaults(MqttFormat::Batch));
        }
    };
    let mut out = MqttSinkParams::defaults(format);
    for p in r.params() {
        match (p.key.as_str(), &p.value) {
            ("format", _) => {}
            ("topic", Value::String(t)) => {
                let mut vars = vec![("prefix", "smollama/node"), ("node", "node")];
                if format == MqttFormat::State {
                    vars.push(("type", "system"));
                    vars.push(("id", "cpu_temp"));
                }
                match crate::edges::mqtt::topic::expand(t, &vars)
                    .and_then(|x| crate::edges::mqtt::topic::validate_topic(&x, 65_535))
                {
                    Ok(()) => out.topic = t.clone(),
                    Err(e) => r.bad(
                        p,
                        (
                            e,
                            Some(if format == MqttFormat::State {
                                "placeholders: {prefix}, {node}, {type}, {id}; no + or #".into()
                            } else {
                                "placeholders: {prefix}, {node}; no + or #".into()
                            }),
                        ),
                    ),
                }
            }
            ("qos", Value::Integer(q)) if *q == 0 || *q == 1 => out.qos = *q as u8,
            ("qos", v) => r.bad(
                p,
                (
                    format!("expected 0 or 1, found {}", describe(v)),
                    Some(
                        "QoS 1 messages wait in the store's outbox until the broker has them"
                            .into(),
                    ),
                ),
            ),
            ("retain", Value::Boolean(b)) => out.retain = *b,
            ("batch_every", v) if format == MqttFormat::Batch => match positive_dur(v) {
                Ok(d) => out.batch_every = d,
                Err(e) => r.bad(p, e),
            },
            ("batch_max", Value::Integer(m))
                if format == MqttFormat::Batch && (1..=10_000).contains(m) =>
            {
                out.batch_max = *m as usize
            }
            ("batch_every" | "batch_max", _) if format == MqttFormat::State => r.bad(
                p,
                (
                    "only applies to format = \"batch\"".into(),
                    Some("a state sink publishes each reading as it comes".into()),
                ),
            ),
            ("batch_max", v) => r.bad(
                p,
                (
                    format!(
                        "expected a whole number from 1 to 10000, found {}",
                        describe(v)
                    ),
                    None,
                ),
            ),
            ("topic", v) => r.bad(p, mismatch(Want::Text, v)),
            ("retain", v) => r.bad(p, mismatch(Want::Bool, v)),
            (_, v) => r.bad(
                p,
                (
                    format!("unexpected {}", describe(v)),
                    Some("see docs/mqtt.md for the sink's parameters".into()),
                ),
            ),
        }
    }
    Arc::new(out)
}

#[cfg(not(feature = "mqtt"))]
fn setup(_: &SinkSpec, _: &mut Setup) -> Result<Box<dyn crate::plugins::Sink>, Unavailable> {
    Err(Unavailable::Off("this build has no mqtt feature".into()))
}

#[cfg(feature = "mqtt")]
fn setup(spec: &SinkSpec, s: &mut Setup) -> Result<Box<dyn crate::plugins::Sink>, Unavailable> {
    use super::mqtt::MqttSink;
    let Some(publish) = s.parts.mqtt else {
        return Err(Unavailable::Off("no [mqtt] broker configured".into()));
    };
    let p = crate::plugins::params_of::<MqttSinkParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    let settings = s.parts.settings;
    Ok(Box::new(MqttSink::new(
        &spec.name,
        p.clone(),
        &settings.node.name,
        &MqttSink::prefix(settings, p.format),
        s.parts.registry.clone(),
        publish.clone(),
    )))
}
