//! Wires a validated pipeline into tasks on one `smol::LocalExecutor`.
//!
//! Every source, stage and sink becomes one task. Each non-source node owns one bounded
//! inbox that all its upstream edges send into. Inboxes are lossy (drop oldest, counted)
//! except in front of durable sinks, which apply backpressure instead; since a lossless
//! inbox always has a lossy one upstream, a slow disk makes the graph drop old readings
//! rather than stall a source or grow memory.
//!
//! Shutdown needs no extra protocol: sources return when the shutdown signal fires,
//! dropping their senders; each downstream task sees its inbox close once all upstream
//! senders are gone, flushes (`Stage::on_close`) and returns in turn. The store sink is
//! last: it hands its final batch to the writer thread and drops its sender, and the
//! writer commits and exits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_channel::Receiver;

use super::counters::Counters;
use super::edge::{EdgeStats, Inbox, Output};
use super::registry::Registry;
use super::stage::{Out, Stage};
use super::{Item, Micros};
use crate::clock::now_us;
use crate::config::settings::Settings;
use crate::config::{PipelineSpec, SinkKind, SourceKind, StageKind};
use crate::edges::gpio::GpioBackend;
use crate::messages::Publish;
#[cfg(feature = "mqtt")]
use crate::messages::Subscription;
use crate::shutdown::Shutdown;
use crate::sinks;
#[cfg(feature = "mqtt")]
use crate::sinks::mqtt::MqttSink;

use crate::sources::SourceCtx;
use crate::sources::gpio::GpioSource;
#[cfg(feature = "mqtt")]
use crate::sources::mqtt::MqttSource;
use crate::sources::system::SystemSource;
use crate::stages::adaptive::Adaptive;
use crate::stages::filter::Filter;
use crate::stages::retention::{Retention, RetentionParams};
use crate::store::writer::WriterHandle;

/// Queue length in front of a stage: enough to absorb a burst of every system metric
/// and a few pin edges, small enough to stay a few KiB.
pub const STAGE_QUEUE: usize = 256;
/// Queue length in front of a durable sink (lossless).
pub const SINK_QUEUE: usize = 1024;

pub type Task = Pin<Box<dyn Future<Output = ()>>>;

/// What status shows of one node.
pub struct NodeStatus {
    pub name: String,
    pub role: &'static str,
    pub kind: &'static str,
    pub counters: Option<Arc<Counters>>,
    /// The node's inbox (sources have none), to read its depth.
    pub inbox: Option<Receiver<Item>>,
    pub inbox_capacity: usize,
    pub inbox_lossy: bool,
}

/// The running graph as status sees it.
#[derive(Default)]
pub struct GraphStatus {
    pub nodes: Vec<NodeStatus>,
    pub edges: Vec<Arc<EdgeStats>>,
    /// Retention windows of the (first) retention stage, for history queries.
    pub retention: Option<RetentionParams>,
}

/// Everything the graph's nodes need from outside.
pub struct Parts<'a> {
    pub settings: &'a Settings,
    pub registry: &'a Arc<Registry>,
    pub gpio: &'a Arc<dyn GpioBackend>,
    /// The store writer; `None` when the pipeline has no store sink (then `build` fails
    /// if one is needed).
    pub writer: Option<&'a WriterHandle>,
    /// Where mqtt sinks send messages; `None` when no broker is configured (then mqtt
    /// sinks and sources are left out, with one log line each).
    /// Always `None` in a build without the mqtt feature.
    pub mqtt: Option<&'a async_channel::Sender<Publish>>,
    /// Where observer sinks send change events (the agent's observation loop).
    pub observer: Option<&'a async_channel::Sender<super::Change>>,
    pub shutdown: &'a Shutdown,
}

pub struct Built {
    pub tasks: Vec<Task>,
    pub status: GraphStatus,
    /// What each mqtt source wants from the broker, for the MQTT worker.
    #[cfg(feature = "mqtt")]
    pub subscriptions: Vec<Subscription>,
}

/// Leave out mqtt sources and sinks when MQTT is off, saying so once each.
fn without_mqtt(spec: &PipelineSpec) -> PipelineSpec {
    let why = if cfg!(feature = "mqtt") {
        "no [mqtt] broker configured"
    } else {
        "this build has no mqtt feature"
    };
    let mut spec = spec.clone();
    spec.sources.retain(|s| {
        let keep = !matches!(s.kind, SourceKind::Mqtt { .. });
        if !keep {
            log::info!("mqtt source '{}' skipped: {why}", s.name);
        }
        keep
    });
    spec.sinks.retain(|s| {
        let keep = !matches!(s.kind, SinkKind::Mqtt(_));
        if !keep {
            log::info!("mqtt sink '{}' skipped: {why}", s.name);
        }
        keep
    });
    let gone = |n: &String| {
        !spec.sources.iter().any(|s| &s.name == n) && !spec.stages.iter().any(|s| &s.name == n)
    };
    let dropped: Vec<String> = spec
        .stages
        .iter()
        .flat_map(|s| s.from.iter())
        .chain(spec.sinks.iter().flat_map(|s| s.from.iter()))
        .filter(|n| gone(n))
        .cloned()
        .collect();
    for st in &mut spec.stages {
        st.from.retain(|f| !dropped.contains(f));
    }
    for sk in &mut spec.sinks {
        sk.from.retain(|f| !dropped.contains(f));
    }
    spec
}

/// Wire `spec` (already validated) into tasks ready to spawn.
pub fn build(spec: &PipelineSpec, parts: Parts<'_>) -> Result<Built, String> {
    let trimmed;
    let spec = if parts.mqtt.is_none() || !cfg!(feature = "mqtt") {
        trimmed = without_mqtt(spec);
        &trimmed
    } else {
        spec
    };
    #[cfg(feature = "mqtt")]
    let mut subscriptions = Vec::new();
    let registry = parts.registry;
    let mut status = GraphStatus::default();
    let mut tasks: Vec<Task> = Vec::new();

    // One inbox per stage and sink, keyed by node name.
    let mut inboxes: Vec<(String, Inbox)> = Vec::new();
    for st in &spec.stages {
        inboxes.push((st.name.clone(), Inbox::new(&st.name, STAGE_QUEUE, true)));
    }
    for sk in &spec.sinks {
        let lossless = matches!(sk.kind, SinkKind::Store);
        let cap = if lossless { SINK_QUEUE } else { STAGE_QUEUE };
        inboxes.push((sk.name.clone(), Inbox::new(&sk.name, cap, !lossless)));
    }

    // The fan-out of a node: a sender into the inbox of every node that reads from it.
    let output_of = |name: &str, status: &mut GraphStatus| -> Output {
        let mut edges = Vec::new();
        for st in &spec.stages {
            if st.from.iter().any(|f| f == name) {
                edges.push(find(&inboxes, &st.name).sender(name, registry));
            }
        }
        for sk in &spec.sinks {
            if sk.from.iter().any(|f| f == name) {
                edges.push(find(&inboxes, &sk.name).sender(name, registry));
            }
        }
        status.edges.extend(edges.iter().map(|e| e.stats().clone()));
        Output::new(edges)
    };

    // Fan-outs first: every sender must exist before inboxes give up their own.
    let mut outputs: Vec<Output> = Vec::new();
    for name in spec
        .sources
        .iter()
        .map(|s| &s.name)
        .chain(spec.stages.iter().map(|s| &s.name))
    {
        outputs.push(output_of(name, &mut status));
    }
    let mut outputs = outputs.into_iter();

    for src in &spec.sources {
        let out = outputs.next().expect("one output per source");
        let ctx = SourceCtx {
            out,
            registry: registry.clone(),
            shutdown: parts.shutdown.clone(),
        };
        let kind = match &src.kind {
            SourceKind::System { metrics } => {
                let s = SystemSource::new(
                    metrics.as_slice(),
                    src.every,
                    parts.settings.node.data_dir.clone(),
                    registry,
                );
                tasks.push(Box::pin(s.run(ctx)));
                "system"
            }
            SourceKind::Gpio { pins } => {
                let chosen: Vec<_> = parts
                    .settings
                    .gpio
                    .pins
                    .iter()
                    .filter(|p| pins.is_empty() || pins.contains(&p.pin))
                    .cloned()
                    .collect();
                let s = GpioSource::new(parts.gpio.clone(), &chosen, src.every, registry);
                tasks.push(Box::pin(s.run(ctx)));
                "gpio"
            }
            #[cfg(feature = "mqtt")]
            SourceKind::Mqtt {
                topics,
                pointer,
                unit,
            } => {
                let (tx, rx) = async_channel::bounded(crate::sources::mqtt::QUEUE);
                subscriptions.push(Subscription {
                    source: src.name.clone(),
                    filters: topics.clone(),
                    pointer: pointer.clone(),
                    unit: unit.clone(),
                    tx,
                });
                tasks.push(Box::pin(MqttSource::new(rx).run(ctx)));
                "mqtt"
            }
            #[cfg(not(feature = "mqtt"))]
            SourceKind::Mqtt { .. } => {
                return Err(format!("source '{}' needs MQTT, which is off", src.name));
            }
        };
        status.nodes.push(NodeStatus {
            name: src.name.clone(),
            role: "source",
            kind,
            counters: None,
            inbox: None,
            inbox_capacity: 0,
            inbox_lossy: false,
        });
    }

    for st in &spec.stages {
        let out = outputs.next().expect("one output per stage");
        let (stage, kind): (Box<dyn Stage>, &'static str) = match &st.kind {
            StageKind::Filter(p) => (
                Box::new(Filter::new(p.clone(), registry.clone()).with_name(&st.name)),
                "filter",
            ),
            StageKind::Adaptive(p) => (
                Box::new(Adaptive::new(p.clone(), registry.clone()).with_name(&st.name)),
                "adaptive",
            ),
            StageKind::Retention(p) => {
                if status.retention.is_none() {
                    status.retention = Some(p.clone());
                }
                (
                    Box::new(Retention::new(p.clone(), registry.clone()).with_name(&st.name)),
                    "retention",
                )
            }
        };
        let rx = take(&mut inboxes, &st.name);
        status.nodes.push(NodeStatus {
            name: st.name.clone(),
            role: "stage",
            kind,
            counters: Some(stage.counters()),
            inbox: Some(rx.clone()),
            inbox_capacity: STAGE_QUEUE,
            inbox_lossy: true,
        });
        tasks.push(Box::pin(run_stage(stage, rx, out, registry.clone())));
    }

    for sk in &spec.sinks {
        let rx = take(&mut inboxes, &sk.name);
        let (kind, counters, cap, lossy): (&'static str, Arc<Counters>, usize, bool) =
            match &sk.kind {
                #[cfg(feature = "mqtt")]
                SinkKind::Mqtt(p) => {
                    let publish = parts
                        .mqtt
                        .ok_or_else(|| format!("sink '{}' needs MQTT, which is off", sk.name))?;
                    let sink = MqttSink::new(
                        &sk.name,
                        p.clone(),
                        &parts.settings.node.name,
                        &MqttSink::prefix(parts.settings, p.format),
                        registry.clone(),
                        publish.clone(),
                    );
                    let c = sink.counters();
                    tasks.push(Box::pin(sink.run(rx.clone())));
                    ("mqtt", c, STAGE_QUEUE, true)
                }
                #[cfg(not(feature = "mqtt"))]
                SinkKind::Mqtt(_) => {
                    return Err(format!("sink '{}' needs MQTT, which is off", sk.name));
                }
                SinkKind::Observer => {
                    let counters = Arc::new(Counters::new(&["changes", "forwarded"]));
                    let c = counters.clone();
                    let to = parts.observer.cloned();
                    let rx2 = rx.clone();
                    tasks.push(Box::pin(async move {
                        while let Ok(item) = rx2.recv().await {
                            if let Item::Change(ch) = item {
                                c.inc(0);
                                // Never wait on the observer: a missed change only delays a look.
                                if to.as_ref().is_some_and(|t| t.try_send(ch).is_ok()) {
                                    c.inc(1);
                                }
                            }
                        }
                    }));
                    ("observer", counters, STAGE_QUEUE, true)
                }
                SinkKind::Store => {
                    let writer = parts.writer.ok_or_else(|| {
                        format!("sink '{}' needs the store, which is not open", sk.name)
                    })?;
                    let sink = sinks::store::StoreSink::new(writer);
                    let c = sink.counters();
                    tasks.push(Box::pin(sink.run(rx.clone())));
                    ("store", c, SINK_QUEUE, false)
                }
                SinkKind::Log => {
                    let sink = sinks::log::LogSink::new(&sk.name, registry.clone());
                    let c = sink.counters();
                    tasks.push(Box::pin(sink.run(rx.clone())));
                    ("log", c, STAGE_QUEUE, true)
                }
            };
        status.nodes.push(NodeStatus {
            name: sk.name.clone(),
            role: "sink",
            kind,
            counters: Some(counters),
            inbox: Some(rx),
            inbox_capacity: cap,
            inbox_lossy: lossy,
        });
    }
    Ok(Built {
        tasks,
        status,
        #[cfg(feature = "mqtt")]
        subscriptions,
    })
}

fn find<'a>(inboxes: &'a [(String, Inbox)], name: &str) -> &'a Inbox {
    &inboxes
        .iter()
        .find(|(n, _)| n == name)
        .expect("validated pipeline: every `from` names a stage or sink")
        .1
}

/// Remove a node's inbox, dropping its own sender so the channel closes with its upstreams.
fn take(inboxes: &mut Vec<(String, Inbox)>, name: &str) -> Receiver<Item> {
    let i = inboxes
        .iter()
        .position(|(n, _)| n == name)
        .expect("inbox exists for every stage and sink");
    inboxes.swap_remove(i).1.into_receiver()
}

enum Wake {
    Item(Item),
    Closed,
    Tick,
}

/// Drive one stage: items in, items and feedback out, ticks at the stage's pace.
pub async fn run_stage(
    mut stage: Box<dyn Stage>,
    rx: Receiver<Item>,
    out: Output,
    registry: Arc<Registry>,
) {
    let mut buf = Out::default();
    // One timer for the task's whole life, re-armed only when the stage's next tick
    // moves: creating a timer per item would cost a reactor registration on the hot path.
    let mut timer = smol::Timer::never();
    let mut armed: Option<Micros> = None;
    stage.on_tick(now_us(), &mut buf);
    flush(&mut buf, &out, &registry).await;
    loop {
        let want = stage.next_tick();
        if want != armed {
            armed = want;
            match want {
                Some(at) => {
                    let wait = (at - now_us()).max(0) as u64;
                    timer.set_after(Duration::from_micros(wait));
                }
                None => timer = smol::Timer::never(),
            }
        }
        let wake = smol::future::or(
            async {
                match rx.recv().await {
                    Ok(item) => Wake::Item(item),
                    Err(_) => Wake::Closed,
                }
            },
            async {
                (&mut timer).await;
                Wake::Tick
            },
        )
        .await;
        match wake {
            Wake::Item(item) => {
                stage.on_item(item, &mut buf);
                // Take whatever else is queued before yielding: fewer wake-ups per burst.
                while let Ok(item) = rx.try_recv() {
                    stage.on_item(item, &mut buf);
                    if buf.items.len() >= FLUSH_AT {
                        flush(&mut buf, &out, &registry).await;
                    }
                }
            }
            Wake::Tick => {
                armed = None;
                timer = smol::Timer::never();
                stage.on_tick(now_us(), &mut buf);
            }
            Wake::Closed => {
                stage.on_close(now_us(), &mut buf);
                flush(&mut buf, &out, &registry).await;
                return;
            }
        }
        flush(&mut buf, &out, &registry).await;
    }
}

/// Emit downstream once this many items are pending, so a long burst streams through.
const FLUSH_AT: usize = 64;

async fn flush(buf: &mut Out, out: &Output, registry: &Registry) {
    for fb in buf.feedback.drain(..) {
        if let Some(info) = registry.get(fb.source) {
            info.live.set_interval(fb.interval);
        }
    }
    for item in buf.items.drain(..) {
        out.send(item).await;
    }
}
