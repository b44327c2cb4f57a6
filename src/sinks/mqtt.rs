//! The `mqtt` sink: turn readings into MQTT messages for the connection's worker.
//!
//! - `batch` format: readings collect for `batch_every` (or until `batch_max`), then go
//!   out as one message in the original's edge format. The timer is armed only while a
//!   batch is open, so an idle sink never wakes.
//! - `state` format: one message per reading on its own topic (`{prefix}/state/{type}/{id}`
//!   by default), retained, so a subscriber always sees the latest value.
//!
//! QoS 1 messages are made durable by the worker (LMDB outbox) before they are sent, but
//! retained states: only a topic's newest matters, so the worker keeps one per topic in
//! memory and sends it again on reconnect (`edges/mqtt/latest.rs`).

use std::sync::Arc;
use std::time::Duration;

use async_channel::Receiver;

use super::mqtt_params::{MqttFormat, MqttSinkParams};
use crate::clock::now_us;
use crate::config::Settings;
use crate::edges::mqtt::payload::{self, OutReading};
use crate::edges::mqtt::topic;
use crate::graph::counters::Counters;
use crate::graph::registry::Registry;
use crate::graph::{Item, Reading};
use crate::messages::{Publish, PublishTx};

const READINGS: usize = 0;
const MESSAGES: usize = 1;
const SKIPPED: usize = 2;

pub struct MqttSink {
    name: String,
    params: MqttSinkParams,
    node: String,
    prefix: String,
    registry: Arc<Registry>,
    publish: PublishTx,
    counters: Arc<Counters>,
    /// Expanded state topic per source id (built once per source).
    topics: Vec<Option<String>>,
}

impl MqttSink {
    pub fn new(
        name: &str,
        params: MqttSinkParams,
        node: &str,
        prefix: &str,
        registry: Arc<Registry>,
        publish: PublishTx,
    ) -> MqttSink {
        MqttSink {
            name: name.to_string(),
            params,
            node: node.to_string(),
            prefix: prefix.to_string(),
            registry,
            publish,
            counters: Arc::new(Counters::new(&["readings", "messages", "skipped"])),
            topics: Vec::new(),
        }
    }

    /// What `{prefix}` means in a sink's topic: batches go under `[mqtt] topic_prefix`,
    /// states under the state prefix (the same unless `[mqtt] state_prefix` is set).
    pub fn prefix(settings: &Settings, format: MqttFormat) -> String {
        match format {
            MqttFormat::Batch => settings.mqtt_prefix(),
            MqttFormat::State => settings.mqtt_state_prefix(),
        }
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// The topic of a source's state messages under `template`.
    pub fn state_topic(template: &str, prefix: &str, node: &str, full_id: &str) -> Option<String> {
        let (ty, id) = topic::split_source(full_id);
        let ty = topic::topic_segment(ty);
        let id = topic::topic_segment(id);
        topic::expand(
            template,
            &[
                ("prefix", prefix),
                ("node", node),
                ("type", &ty),
                ("id", &id),
            ],
        )
        .ok()
    }

    pub async fn run(mut self, rx: Receiver<Item>) {
        match self.params.format {
            MqttFormat::Batch => self.run_batch(rx).await,
            MqttFormat::State => self.run_state(rx).await,
        }
    }

    async fn run_state(&mut self, rx: Receiver<Item>) {
        while let Ok(item) = rx.recv().await {
            let Item::Reading(r) = item else { continue };
            self.counters.inc(READINGS);
            let Some(info) = self.registry.get(r.source) else {
                continue;
            };
            let idx = r.source.index();
            if self.topics.len() <= idx {
                self.topics.resize(idx + 1, None);
            }
            if self.topics[idx].is_none() {
                self.topics[idx] =
                    Self::state_topic(&self.params.topic, &self.prefix, &self.node, &info.name);
            }
            let Some(t) = self.topics[idx].clone() else {
                self.counters.inc(SKIPPED);
                continue;
            };
            let msg = Publish {
                topic: t,
                payload: payload::encode_state(r.value, &info.unit, r.ts),
                qos: self.params.qos,
                retain: self.params.retain,
            };
            self.counters.inc(MESSAGES);
            // A retained state is its topic's current value: a newer one makes it stale.
            let _ = if self.params.retain && self.params.qos > 0 {
                self.publish.send_newest(msg).await
            } else {
                self.publish.send(msg).await
            };
        }
    }

    async fn run_batch(&mut self, rx: Receiver<Item>) {
        let topic = match topic::expand(
            &self.params.topic,
            &[("prefix", &self.prefix), ("node", &self.node)],
        ) {
            Ok(t) => t,
            Err(e) => {
                log::error!("mqtt sink {}: bad topic: {e}", self.name);
                return;
            }
        };
        let mut batch: Vec<Reading> = Vec::with_capacity(self.params.batch_max);
        let mut timer = smol::Timer::never();
        loop {
            enum Wake {
                Item(Item),
                Closed,
                Due,
            }
            let wake = smol::future::or(
                async {
                    match rx.recv().await {
                        Ok(i) => Wake::Item(i),
                        Err(_) => Wake::Closed,
                    }
                },
                async {
                    (&mut timer).await;
                    Wake::Due
                },
            )
            .await;
            match wake {
                Wake::Item(Item::Reading(r)) => {
                    self.counters.inc(READINGS);
                    if batch.is_empty() {
                        timer.set_after(Duration::from_micros(self.params.batch_every as u64));
                    }
                    batch.push(r);
                    if batch.len() >= self.params.batch_max {
                        self.flush_batch(&topic, &mut batch).await;
                        timer = smol::Timer::never();
                    }
                }
                Wake::Item(_) => {}
                Wake::Due => {
                    self.flush_batch(&topic, &mut batch).await;
                    timer = smol::Timer::never();
                }
                Wake::Closed => {
                    self.flush_batch(&topic, &mut batch).await;
                    return;
                }
            }
        }
    }

    async fn flush_batch(&mut self, topic: &str, batch: &mut Vec<Reading>) {
        if batch.is_empty() {
            return;
        }
        let infos: Vec<_> = batch.iter().map(|r| self.registry.get(r.source)).collect();
        let readings: Vec<OutReading<'_>> = batch
            .iter()
            .zip(&infos)
            .filter_map(|(r, i)| {
                i.as_ref().map(|i| OutReading {
                    source: &i.name,
                    value: r.value,
                    unit: &i.unit,
                    ts: r.ts,
                })
            })
            .collect();
        let msg = Publish {
            topic: topic.to_string(),
            payload: payload::encode_batch(&self.node, now_us(), &readings),
            qos: self.params.qos,
            retain: self.params.retain,
        };
        drop(readings);
        batch.clear();
        self.send(msg).await;
    }

    async fn send(&self, msg: Publish) {
        self.counters.inc(MESSAGES);
        // Bounded: when the worker falls behind, the sink waits and its (lossy) inbox
        // absorbs the difference.
        let _ = self.publish.send(msg).await;
    }
}

impl crate::plugins::Sink for MqttSink {
    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn start(self: Box<Self>, rx: Receiver<Item>) -> crate::plugins::Task {
        Box::pin((*self).run(rx))
    }
}
