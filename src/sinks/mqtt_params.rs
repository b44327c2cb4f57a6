//! Parameters of the `mqtt` sink (parsed by `config::pipeline`).

use crate::graph::Micros;

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
