//! Wires a validated pipeline into tasks on one `smol::LocalExecutor`.
//!
//! Every source, stage and sink is set up by its kind (`plugins`) and becomes one task. Each non-source node owns one bounded
//! inbox that all its upstream edges send into. Inboxes are lossy (drop oldest, counted)
//! except in front of durable sinks, which apply backpressure instead; since a lossless
//! inbox always has a lossy one upstream, a slow disk makes the graph drop old readings
//! rather than stall a source or grow memory. The exception is a source that asks for
//! backpressure (`Source::lossless`, the mqtt source): the stages between it and a
//! durable sink get lossless inboxes too, so it is held back (and the broker holds the
//! rest) instead of losing readings.
//!
//! Shutdown needs no extra protocol: sources return when the shutdown signal fires,
//! dropping their senders; each downstream task sees its inbox close once all upstream
//! senders are gone, flushes (`Stage::on_close`) and returns in turn. The store sink is
//! last: it hands its final batch to the writer thread and drops its sender, and the
//! writer commits and exits.

use std::sync::Arc;
use std::time::Duration;

use async_channel::Receiver;

use super::counters::Counters;
use super::edge::{EdgeStats, Inbox, Output};
use super::registry::Registry;
use super::stage::{Out, Stage};
use super::{Item, Micros};
use crate::clock::now_us;
use crate::config::PipelineSpec;
#[cfg(feature = "mqtt")]
use crate::messages::Subscription;
use crate::plugins::{
    Health, Kind, Make, Parts, Setup, Sink, Source, SourceCtx, Task, Unavailable,
};
use crate::stages::retention_policy::RetentionParams;

/// Queue length in front of a stage: enough to absorb a burst of every system metric
/// and a few pin edges, small enough to stay a few KiB.
pub const STAGE_QUEUE: usize = 256;
/// Queue length in front of a durable sink (lossless).
pub const SINK_QUEUE: usize = 1024;

/// What status shows of one node.
pub struct NodeStatus {
    pub name: String,
    pub role: &'static str,
    pub kind: &'static str,
    pub version: &'static str,
    pub counters: Option<Arc<Counters>>,
    /// The node's inbox (sources have none), to read its depth.
    pub inbox: Option<Receiver<Item>>,
    pub inbox_capacity: usize,
    pub inbox_lossy: bool,
    /// Starting, running or stopped, set around the node's task.
    pub health: Arc<Health>,
    /// Why setup failed; the node was left out and the rest runs.
    pub unavailable: Option<String>,
}

impl NodeStatus {
    /// "running", "degraded", "stopped", ... or "unavailable".
    pub fn state(&self) -> &'static str {
        match self.unavailable {
            Some(_) => "unavailable",
            None => self.health.as_str(),
        }
    }

    /// Why it is unavailable or degraded.
    pub fn reason(&self) -> Option<String> {
        self.unavailable.clone().or_else(|| self.health.reason())
    }
}

/// The running graph as status sees it.
#[derive(Default)]
pub struct GraphStatus {
    pub nodes: Vec<NodeStatus>,
    pub edges: Vec<Arc<EdgeStats>>,
    /// Retention windows of the (first) retention stage, for history queries.
    pub retention: Option<RetentionParams>,
}

pub struct Built {
    pub tasks: Vec<Task>,
    pub status: GraphStatus,
    /// What each mqtt source wants from the broker, for the MQTT worker.
    #[cfg(feature = "mqtt")]
    pub subscriptions: Vec<Subscription>,
}

/// A node whose setup succeeded, waiting for its inbox and output.
enum Ready {
    Source(Box<dyn Source>),
    Stage(Box<dyn Stage>),
    Sink(Box<dyn Sink>, bool),
}

/// Set up one node by its kind; `Err` leaves it out.
fn set_up(kind: &Kind, node: Node<'_>, setup: &mut Setup<'_>) -> Result<Ready, Unavailable> {
    match (kind.make, node) {
        (Make::Source { setup: f, .. }, Node::Source(spec)) => f(spec, setup).map(Ready::Source),
        (Make::Stage { setup: f, .. }, Node::Stage(spec)) => f(spec, setup).map(Ready::Stage),
        (
            Make::Sink {
                setup: f, lossless, ..
            },
            Node::Sink(spec),
        ) => f(spec, setup).map(|s| Ready::Sink(s, lossless)),
        _ => Err(Unavailable::Failed(format!(
            "{} is not a kind of this role",
            kind.name
        ))),
    }
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Source(&'a crate::config::SourceSpec),
    Stage(&'a crate::config::StageSpec),
    Sink(&'a crate::config::SinkSpec),
}

/// Wire `spec` (already validated) into tasks ready to spawn. Every node is set up
/// first; one whose setup fails is left out with its edges, logged and shown in status
/// as unavailable, and the rest runs.
pub fn build(spec: &PipelineSpec, parts: Parts<'_>) -> Result<Built, String> {
    let registry = parts.registry;
    let mut status = GraphStatus {
        retention: spec.retention(),
        ..GraphStatus::default()
    };
    let mut setup = Setup {
        parts: &parts,
        #[cfg(feature = "mqtt")]
        subscriptions: Vec::new(),
    };

    // Setup, in pipeline order: sources, stages, sinks.
    let nodes: Vec<(&str, &'static Kind, Node)> = spec
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.kind, Node::Source(s)))
        .chain(
            spec.stages
                .iter()
                .map(|s| (s.name.as_str(), s.kind, Node::Stage(s))),
        )
        .chain(
            spec.sinks
                .iter()
                .map(|s| (s.name.as_str(), s.kind, Node::Sink(s))),
        )
        .collect();
    let mut ready: Vec<(&str, &'static Kind, Node, Ready)> = Vec::new();
    for (name, kind, node) in nodes {
        match set_up(kind, node, &mut setup) {
            Ok(r) => ready.push((name, kind, node, r)),
            Err(why) => {
                let role = kind.role.as_str();
                match &why {
                    Unavailable::Off(r) => {
                        log::info!("{} {role} '{name}' skipped: {r}", kind.name)
                    }
                    Unavailable::Failed(r) => log::warn!(
                        "{} {role} '{name}' unavailable: {r}; the rest of the node runs",
                        kind.name
                    ),
                }
                status.nodes.push(NodeStatus {
                    name: name.to_string(),
                    role,
                    kind: kind.name,
                    version: kind.version,
                    counters: None,
                    inbox: None,
                    inbox_capacity: 0,
                    inbox_lossy: false,
                    health: Arc::default(),
                    unavailable: Some(why.reason().to_string()),
                });
            }
        }
    }
    let up = |n: &str| ready.iter().any(|(name, ..)| *name == n);
    // Whether a node reads from `upstream`, which was set up (edges to or from a node
    // left out are left out too).
    let reads = |node: &Node, upstream: &str| -> bool {
        let from = match node {
            Node::Source(_) => return false,
            Node::Stage(s) => &s.from,
            Node::Sink(s) => &s.from,
        };
        up(upstream) && from.iter().any(|f| f == upstream)
    };

    let held = held_back(&ready, &reads);

    // One inbox per stage and sink, keyed by node name.
    let mut inboxes: Vec<(String, Inbox, usize, bool)> = Vec::new();
    for (i, (name, _, _, r)) in ready.iter().enumerate() {
        let (cap, lossy) = match r {
            Ready::Source(_) => continue,
            Ready::Stage(_) if held[i] => (STAGE_QUEUE, false),
            Ready::Stage(_) => (STAGE_QUEUE, true),
            Ready::Sink(_, true) => (SINK_QUEUE, false),
            Ready::Sink(_, false) => (STAGE_QUEUE, true),
        };
        inboxes.push((name.to_string(), Inbox::new(name, cap, lossy), cap, lossy));
    }

    // Fan-outs first: every sender must exist before inboxes give up their own.
    // The fan-out of a node: a sender into the inbox of every node that reads from it.
    let mut outputs: Vec<Option<Output>> = Vec::new();
    for (name, _, _, r) in &ready {
        if matches!(r, Ready::Sink(..)) {
            outputs.push(None);
            continue;
        }
        let mut edges = Vec::new();
        for (reader, _, node, _) in &ready {
            if reads(node, name) {
                let inbox = &inboxes
                    .iter()
                    .find(|(n, ..)| n == reader)
                    .expect("every reader has an inbox")
                    .1;
                edges.push(inbox.sender(name, registry));
            }
        }
        status.edges.extend(edges.iter().map(|e| e.stats().clone()));
        outputs.push(Some(Output::new(edges)));
    }

    let mut tasks: Vec<Task> = Vec::new();
    for ((name, kind, _, r), out) in ready.into_iter().zip(outputs) {
        let health = Arc::new(Health::default());
        let mut node = NodeStatus {
            name: name.to_string(),
            role: kind.role.as_str(),
            kind: kind.name,
            version: kind.version,
            counters: None,
            inbox: None,
            inbox_capacity: 0,
            inbox_lossy: false,
            health: health.clone(),
            unavailable: None,
        };
        let task = match r {
            Ready::Source(source) => {
                node.counters = source.counters();
                source.start(SourceCtx {
                    out: out.expect("one output per source"),
                    registry: registry.clone(),
                    shutdown: parts.shutdown.clone(),
                    health: health.clone(),
                })
            }
            Ready::Stage(stage) => {
                let rx = take(&mut inboxes, name, &mut node);
                node.counters = Some(stage.counters());
                Box::pin(run_stage(
                    stage,
                    rx,
                    out.expect("one output per stage"),
                    registry.clone(),
                ))
            }
            Ready::Sink(sink, _) => {
                let rx = take(&mut inboxes, name, &mut node);
                node.counters = Some(sink.counters());
                sink.start(rx)
            }
        };
        tasks.push(watched(task, health));
        status.nodes.push(node);
    }
    // Status lists nodes in pipeline order, the unavailable among them.
    let order: Vec<&str> = spec
        .sources
        .iter()
        .map(|s| s.name.as_str())
        .chain(spec.stages.iter().map(|s| s.name.as_str()))
        .chain(spec.sinks.iter().map(|s| s.name.as_str()))
        .collect();
    status
        .nodes
        .sort_by_key(|n| order.iter().position(|o| *o == n.name));
    Ok(Built {
        tasks,
        status,
        #[cfg(feature = "mqtt")]
        subscriptions: setup.subscriptions,
    })
}

/// Which stages get a lossless inbox: those between a source that asks for backpressure
/// (`Source::lossless`: the mqtt source, whose broker holds what waits) and a durable sink.
/// Their other upstreams then wait too when the stage is behind; a stage's inbox upstream
/// of them stays lossy, so local sources behind a stage still never stall.
fn held_back(
    ready: &[(&str, &'static Kind, Node, Ready)],
    reads: &dyn Fn(&Node, &str) -> bool,
) -> Vec<bool> {
    let n = ready.len();
    let mut durable: Vec<bool> = ready
        .iter()
        .map(|(.., r)| matches!(r, Ready::Sink(_, true)))
        .collect();
    let mut fed: Vec<bool> = ready
        .iter()
        .map(|(.., r)| matches!(r, Ready::Source(s) if s.lossless()))
        .collect();
    // Fixpoints over the (acyclic, validated) graph: at most n rounds each.
    for _ in 0..n {
        let mut changed = false;
        for i in 0..n {
            for j in 0..n {
                if reads(&ready[j].2, ready[i].0) {
                    if durable[j] && !durable[i] {
                        durable[i] = true;
                        changed = true;
                    }
                    if fed[i] && !fed[j] && matches!(ready[j].3, Ready::Stage(_)) {
                        fed[j] = true;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    (0..n)
        .map(|i| matches!(ready[i].3, Ready::Stage(_)) && durable[i] && fed[i])
        .collect()
}

/// The task with its health kept: running once polled, stopped once returned.
fn watched(task: Task, health: Arc<Health>) -> Task {
    Box::pin(async move {
        health.set_running();
        task.await;
        health.set_stopped();
    })
}

/// Remove a node's inbox, dropping its own sender so the channel closes with its
/// upstreams; the status keeps a receiver to read the depth.
fn take(
    inboxes: &mut Vec<(String, Inbox, usize, bool)>,
    name: &str,
    node: &mut NodeStatus,
) -> Receiver<Item> {
    let i = inboxes
        .iter()
        .position(|(n, ..)| n == name)
        .expect("inbox exists for every stage and sink");
    let (_, inbox, cap, lossy) = inboxes.swap_remove(i);
    let rx = inbox.into_receiver();
    node.inbox = Some(rx.clone());
    node.inbox_capacity = cap;
    node.inbox_lossy = lossy;
    rx
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::{PinConfig, PinMode, Pull, Settings};
    use crate::edges::gpio::{GpioBackend, GpioError, PinEvent};
    use crate::shutdown::Shutdown;

    /// A backend whose pins read (or not) and whose edge events fail.
    struct Flaky {
        reads: bool,
    }

    impl GpioBackend for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn read(&self, pin: u8) -> Result<bool, GpioError> {
            if self.reads {
                Ok(false)
            } else {
                Err(GpioError::UnknownPin(pin))
            }
        }
        fn write(&self, _: u8, _: bool) -> Result<(), GpioError> {
            Ok(())
        }
        fn subscribe(&self, _: async_channel::Sender<PinEvent>) -> Result<(), GpioError> {
            Err(GpioError::Backend("no interrupts here".into()))
        }
        fn set_input(&self, _: u8, _: bool) -> Result<(), GpioError> {
            Err(GpioError::NotSimulated)
        }
        fn claim_output(
            &self,
            _: u8,
            _: &str,
            _: bool,
        ) -> Result<Box<dyn crate::edges::gpio::OutputLine>, GpioError> {
            Err(GpioError::NotSimulated)
        }
        fn claim_input(
            &self,
            _: u8,
            _: &str,
            _: Pull,
        ) -> Result<Box<dyn crate::edges::gpio::InputLine>, GpioError> {
            Err(GpioError::NotSimulated)
        }
    }

    const PIPELINE: &str = r#"
[[source]]
name = "system"
kind = "system"
metrics = ["uptime"]

[[source]]
name = "pins"
kind = "gpio"

[[stage]]
name = "quiet"
kind = "filter"
from = ["system", "pins"]

[[sink]]
name = "log"
kind = "log"
from = ["quiet"]
"#;

    fn settings() -> Settings {
        let mut s = Settings::defaults();
        s.gpio.pins = vec![PinConfig {
            pin: 17,
            name: "motion".into(),
            mode: PinMode::Input,
            pull: Pull::Down,
            initial: false,
        }];
        s
    }

    fn build_with(backend: Flaky, shutdown: &Shutdown) -> Built {
        let settings = settings();
        let spec = PipelineSpec::parse("p.toml", PIPELINE, &settings).unwrap();
        let registry = Arc::new(Registry::new());
        let gpio: Arc<dyn GpioBackend> = Arc::new(backend);
        let hardware = Arc::new(crate::edges::hw::Hardware::new(&settings.hardware));
        build(
            &spec,
            Parts {
                settings: &settings,
                registry: &registry,
                gpio: &gpio,
                hardware: &hardware,
                writer: None,
                mqtt: None,
                observer: None,
                events: None,
                node_events: None,
                shutdown,
            },
        )
        .unwrap()
    }

    fn node<'a>(b: &'a Built, name: &str) -> &'a NodeStatus {
        b.status.nodes.iter().find(|n| n.name == name).unwrap()
    }

    #[test]
    fn a_source_whose_backend_reads_no_pin_is_left_out_and_the_rest_is_wired() {
        let (_trigger, shutdown) = crate::shutdown::channel();
        let built = build_with(Flaky { reads: false }, &shutdown);
        let pins = node(&built, "pins");
        assert_eq!(pins.state(), "unavailable");
        assert!(
            pins.reason()
                .unwrap()
                .contains("the flaky backend can read none of its pins (17)"),
            "{:?}",
            pins.reason()
        );
        let names: Vec<&str> = built.status.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["system", "pins", "quiet", "log"]);
        // system -> quiet and quiet -> log; nothing from the node left out.
        let edges: Vec<(&str, &str)> = built
            .status
            .edges
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str()))
            .collect();
        assert_eq!(edges, [("system", "quiet"), ("quiet", "log")]);
        assert_eq!(built.tasks.len(), 3);
        assert_eq!(node(&built, "quiet").state(), "starting");
    }

    #[test]
    fn a_source_may_report_itself_degraded_and_every_task_stops_on_shutdown() {
        let (trigger, shutdown) = crate::shutdown::channel();
        let built = build_with(Flaky { reads: true }, &shutdown);
        let ex = smol::LocalExecutor::new();
        let tasks: Vec<_> = built.tasks.into_iter().map(|t| ex.spawn(t)).collect();
        let nodes = built.status.nodes;
        smol::block_on(ex.run(async {
            let pins = nodes.iter().find(|n| n.name == "pins").unwrap();
            for _ in 0..1000 {
                if pins.state() == "degraded" {
                    break;
                }
                smol::Timer::after(Duration::from_millis(5)).await;
            }
            assert_eq!(pins.state(), "degraded");
            assert!(pins.reason().unwrap().contains("no interrupts here"));
            assert_eq!(nodes[0].state(), "running");
            trigger.fire();
            for t in tasks {
                t.await;
            }
        }));
        for n in &nodes {
            assert_eq!(n.state(), "stopped", "{}", n.name);
        }
    }
}
