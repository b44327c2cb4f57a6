//! The running agent: opens the store, builds the graph, starts HTTP, runs the event loop
//! on this thread until SIGTERM/SIGINT, then drains and exits.

use std::sync::Arc;

#[cfg(feature = "agent")]
use crate::agent::intake::Intake;
#[cfg(feature = "agent")]
use crate::agent::tools::registry::ToolRegistry;
#[cfg(feature = "agent")]
use crate::agent::tools::{MqttTools, ToolContext};
#[cfg(feature = "agent")]
use crate::agent::worker::{self, Agent, AgentHandle, LlmStats};
use crate::clock::now_us;
use crate::config::{PipelineSpec, Settings};
use crate::edges::gpio;
#[cfg(feature = "agent")]
use crate::edges::gpio::GpioBackend;
use crate::edges::http::{self, HttpStats, HttpView};
#[cfg(feature = "agent")]
use crate::edges::llm::Llm;
#[cfg(feature = "mqtt")]
use crate::edges::mqtt::connection;
use crate::graph::registry::Registry;
use crate::graph::runner;
#[cfg(feature = "agent")]
use crate::graph::runner::GraphStatus;
use crate::messages::EventHub;
#[cfg(feature = "agent")]
use crate::messages::QuestionIntake;
#[cfg(feature = "mqtt")]
use crate::messages::{Publish, Recent};
use crate::plugins::Parts;
use crate::shutdown;
#[cfg(feature = "mqtt")]
use crate::status::MqttView;
use crate::status::StatusView;
use crate::store::writer;
use crate::store::{Store, StoreOptions};

#[cfg(feature = "openclaw")]
mod openclaw;

/// Batches that may wait for the writer thread before the store sink waits.
const WRITER_QUEUE: usize = 2;

/// The tools' view of the running agent.
#[cfg(feature = "agent")]
pub fn tool_context(
    settings: &Settings,
    store: &Arc<Store>,
    registry: &Arc<Registry>,
    gpio: &Arc<dyn GpioBackend>,
    hardware: &Arc<crate::edges::hw::Hardware>,
    retention: Option<crate::stages::retention_policy::RetentionParams>,
    mqtt: Option<MqttTools>,
) -> ToolContext {
    ToolContext {
        settings: settings.clone(),
        store: store.clone(),
        registry: registry.clone(),
        gpio: gpio.clone(),
        hardware: hardware.clone(),
        retention,
        mqtt,
        embedder: Some(Arc::new(Llm::embedder(settings, None))),
        trusted: false,
        stats: Default::default(),
        stopping: Default::default(),
        events: None,
        node_events: None,
    }
}

/// The agent answers questions that arrive over MQTT, so it runs when both are on.
#[cfg(feature = "agent")]
#[allow(clippy::too_many_arguments)]
fn start_agent(
    settings: &Settings,
    store: &Arc<Store>,
    registry: &Arc<Registry>,
    gpio: &Arc<dyn GpioBackend>,
    hardware: &Arc<crate::edges::hw::Hardware>,
    graph: &GraphStatus,
    mqtt_on: bool,
    publish: &crate::messages::PublishTx,
    recent: &Arc<std::sync::Mutex<Recent>>,
    changes: async_channel::Receiver<crate::graph::Change>,
    events: Option<&Arc<EventHub>>,
    node_events: Option<&Arc<crate::messages::NodeEvents>>,
) -> Option<AgentHandle> {
    if !settings.agent.enabled {
        return None;
    }
    if !mqtt_on {
        log::info!(
            "agent: MQTT is off, so questions arrive only over HTTP (POST /api/ask); observations and `smollama ask` still work"
        );
    }
    let tools = mqtt_on.then(|| MqttTools {
        publish: publish.clone(),
        recent: recent.clone(),
        prefix: settings.mqtt_prefix(),
    });
    let mut ctx = tool_context(
        settings,
        store,
        registry,
        gpio,
        hardware,
        graph.retention.clone(),
        tools,
    );
    let stats = Arc::new(LlmStats::default());
    ctx.stats = stats.tools.clone();
    ctx.events = events.cloned();
    ctx.node_events = node_events.cloned();
    let llm = Llm::from_settings(settings);
    match llm.backend() {
        crate::edges::llm::Backend::Ollama => log::info!(
            "agent: model {} at {} (keep_alive {}), questions on {}",
            settings.ollama.model,
            settings.ollama.base_url(),
            settings.ollama.keep_alive,
            settings.ask_topics().join(", ")
        ),
        crate::edges::llm::Backend::OpenAi => log::info!(
            "agent: model {} at {} (OpenAI-compatible), questions on {}",
            llm.model(),
            llm.server(),
            settings.ask_topics().join(", ")
        ),
    }
    worker::start(Agent {
        llm,
        tools: ToolRegistry::with_plugins(settings, &hardware.devices),
        ctx,
        publish: mqtt_on.then(|| publish.clone()),
        stats,
        changes: settings.memory.observe.then_some(changes),
    })
}

/// Home Assistant discovery messages for this node's local sources: a sensor per numeric
/// source, a binary sensor per boolean, a switch per GPIO output. They point at the state
/// topics of the first `format = "state"` mqtt sink; without one there is nothing for
/// Home Assistant to read, so nothing is announced.
#[cfg(feature = "mqtt")]
fn discovery_messages(
    settings: &Settings,
    spec: &PipelineSpec,
    registry: &Registry,
) -> Vec<Publish> {
    use crate::edges::mqtt::discovery;
    use crate::sinks::mqtt::MqttSink;
    use crate::sinks::mqtt_params::MqttFormat;
    if !settings.mqtt.discovery {
        return Vec::new();
    }
    let Some(template) = spec.sinks.iter().find_map(|s| {
        s.params::<crate::sinks::mqtt_params::MqttSinkParams>()
            .filter(|p| p.format == MqttFormat::State)
            .map(|p| p.topic.clone())
    }) else {
        log::info!(
            "mqtt: Home Assistant discovery is on, but no mqtt sink with format = \"state\" publishes states to point it at; nothing announced"
        );
        return Vec::new();
    };
    // State topics, availability and commands all live under the state prefix.
    let prefix = settings.mqtt_state_prefix();
    let node = &settings.node.name;
    let dev = discovery::Device {
        node,
        version: env!("CARGO_PKG_VERSION"),
    };
    let availability = format!("{prefix}/status");
    let hp = &settings.mqtt.discovery_prefix;
    let mut out = Vec::new();
    for info in registry.all() {
        let local = registry.is_local(&info.name);
        let available = info
            .live
            .available
            .load(std::sync::atomic::Ordering::Relaxed)
            || info.name.starts_with("gpio:");
        if !local || !available {
            continue;
        }
        let Some(state) = MqttSink::state_topic(&template, &prefix, node, &info.name) else {
            continue;
        };
        let output_pin = info
            .name
            .strip_prefix("gpio:")
            .and_then(|p| p.parse::<u8>().ok())
            .filter(|p| {
                settings
                    .gpio
                    .pins
                    .iter()
                    .any(|c| c.pin == *p && c.mode == crate::config::settings::PinMode::Output)
            });
        let (topic, payload) = match (info.kind, output_pin) {
            (_, Some(pin)) => discovery::switch(
                hp,
                &dev,
                &info.name,
                &state,
                &format!("{prefix}/gpio/{pin}/set"),
                &availability,
            ),
            (crate::graph::ValueKind::Bool, None) => {
                discovery::binary_sensor(hp, &dev, &info.name, &state, &availability)
            }
            (crate::graph::ValueKind::Number, None) => {
                discovery::sensor(hp, &dev, &info.name, &info.unit, &state, &availability)
            }
            _ => continue,
        };
        out.push(Publish {
            topic,
            payload,
            qos: 1,
            retain: true,
        });
    }
    out
}

/// The node directory (`crate::nodes`): what this node announces of itself, and the
/// bounds and thresholds of what it learns of the others.
fn node_directory(
    settings: &Settings,
    started: crate::graph::Micros,
    sources: usize,
    llm: bool,
) -> Arc<crate::nodes::NodeDirectory> {
    use crate::nodes::{Announcement, Capabilities, NodeDirectory, NodeTopics, Thresholds};
    #[cfg(feature = "mdns")]
    let addresses = crate::edges::mdns::interfaces::lan_addresses()
        .into_iter()
        .map(|a| a.ip)
        .filter(|ip| settings.http.bind.ip().is_unspecified() || *ip == settings.http.bind.ip())
        .collect();
    #[cfg(not(feature = "mdns"))]
    let addresses = Vec::new();
    #[cfg(feature = "agent")]
    let tools = if llm {
        ToolRegistry::with_core_tools().len()
    } else {
        0
    };
    #[cfg(not(feature = "agent"))]
    let tools = 0;
    let d = &settings.discovery;
    Arc::new(NodeDirectory::new(
        &settings.node.name,
        Announcement {
            addresses,
            port: settings.http.bind.port(),
            // The original's roles: a llama runs the LLM, an alpaca is an edge node.
            node_type: if llm { "llama" } else { "alpaca" }.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: Capabilities {
                sources: sources as u32,
                tools: tools as u32,
                llm,
            },
        },
        started,
        d.max_nodes,
        Thresholds {
            stale_after: d.stale_after,
            offline_after: d.offline_after,
            cache_ttl: d.cache_ttl,
        },
        NodeTopics::new(&[&settings.mqtt_prefix(), &settings.mqtt_state_prefix()]),
    ))
}

/// Start mDNS discovery, or say in one line why it does not run here.
#[cfg(feature = "mdns")]
fn start_mdns(
    settings: &Settings,
    directory: &Arc<crate::nodes::NodeDirectory>,
) -> Option<(
    crate::edges::mdns::MdnsHandle,
    impl std::future::Future<Output = ()> + use<>,
)> {
    let have = !directory.me().1.addresses.is_empty();
    if let Some(why) = crate::edges::mdns::unavailable(settings, have) {
        log::info!("discovery: {why}");
        return None;
    }
    crate::edges::mdns::start(settings, directory.clone())
}

/// Where the store lives under the data directory (`data_dir.rs`; here for the CLI).
pub use crate::data_dir::store_dir;

/// Run the agent until a termination signal; returns the process exit code.
pub fn run(settings: Settings, spec: PipelineSpec) -> Result<(), String> {
    let started = crate::clock::mark_start();
    if !crate::clock::is_set(started) {
        log::warn!(
            "the system clock reads {}: not set yet (no real-time clock, NTP not answered); readings are stamped with it until it is",
            crate::clock::iso8601(started)
        );
    }
    // A lean build keeps running on what it has; say once what the config asked for in vain.
    for w in crate::features::ignored(&settings) {
        log::warn!("{w}");
    }
    // GPIO before the store: a backend that cannot open (rppal off a Pi) fails the start
    // before a store is created.
    let gpio = gpio::open(&settings.gpio).map_err(|e| e.to_string())?;
    let store_path = store_dir(&settings);
    let store = Arc::new(
        Store::open(
            &store_path,
            &StoreOptions {
                map_size: (settings.store.map_size_mb as usize) << 20,
            },
        )
        .map_err(|e| e.to_string())?,
    );
    store.set_fold_policy(crate::store::FoldPolicy {
        head_rows: settings.store.head_rows,
        every: std::time::Duration::from_micros(settings.store.fold_every.max(0) as u64),
    });
    // Sync on: every observation, memory and memory change from now on is a log entry.
    #[cfg(feature = "agent")]
    if settings.sync.enabled {
        store.set_sync_node(&settings.node.name);
    }
    let registry = Arc::new(Registry::with_local_types(
        crate::plugins::registry::local_id_types(),
    ));
    registry.load(store.sources().map_err(|e| e.to_string())?);
    log::info!(
        "node {}: store {}, gpio {} ({} pins)",
        settings.node.name,
        store_path.display(),
        gpio.name(),
        settings.gpio.pins.len()
    );

    let writer = writer::spawn(store.clone(), registry.clone(), WRITER_QUEUE);
    let (trigger, shutdown) = shutdown::channel();
    #[cfg(feature = "mqtt")]
    let (publish_tx, publish_rx) = crate::messages::publish_queue(
        connection::PUBLISH_QUEUE,
        settings.mqtt.publish_queue_kb << 10,
    );
    #[cfg(feature = "mqtt")]
    let mqtt_on = settings.mqtt.broker.is_some();
    #[cfg(feature = "mqtt")]
    let graph_mqtt = mqtt_on.then_some(&publish_tx);
    #[cfg(not(feature = "mqtt"))]
    let graph_mqtt = None;
    // Volatile/calm events for the observation loop (a missed one only delays a look).
    #[cfg(feature = "agent")]
    let (change_tx, change_rx) = async_channel::bounded::<crate::graph::Change>(64);
    #[cfg(feature = "agent")]
    let observer = Some(&change_tx);
    #[cfg(not(feature = "agent"))]
    let observer = None;
    let hardware = Arc::new(crate::edges::hw::Hardware::new(&settings.hardware));
    // The live events for `/api/events`: only HTTP streams them. Ids begin at the start
    // time in milliseconds, so they grow across restarts (see `EventHub`).
    let events = settings.http.enabled.then(|| {
        Arc::new(EventHub::new(
            settings.http.events_buffer as usize,
            settings.http.events_buffer_kb as usize * 1024,
            (started / 1000).max(1) as u64,
        ))
    });
    // What openclaw sinks and observations tell the gateway (with its client only).
    let node_events = (cfg!(feature = "openclaw") && settings.openclaw.enabled).then(|| {
        Arc::new(crate::messages::NodeEvents::new(
            settings.openclaw.event_queue_max as usize,
        ))
    });
    let built = runner::build(
        &spec,
        Parts {
            settings: &settings,
            registry: &registry,
            gpio: &gpio,
            hardware: &hardware,
            writer: Some(&writer),
            mqtt: graph_mqtt,
            observer,
            events: events.as_ref(),
            node_events: node_events.as_ref(),
            shutdown: &shutdown,
        },
    )?;
    #[cfg(feature = "mqtt")]
    let recent = Arc::new(std::sync::Mutex::new(Recent::default()));
    #[cfg(feature = "agent")]
    let agent = start_agent(
        &settings,
        &store,
        &registry,
        &gpio,
        &hardware,
        &built.status,
        mqtt_on,
        &publish_tx,
        &recent,
        change_rx,
        events.as_ref(),
        node_events.as_ref(),
    );
    // Questions from every edge come in through the agent's intake.
    #[cfg(feature = "agent")]
    let intake = agent.as_ref().map(|a| {
        Arc::new(Intake::new(
            &settings.node.name,
            settings.agent.rate_per_minute,
            a.questions.clone(),
            a.stats.clone(),
            u64::from(settings.agent.queue_kb) << 10,
        ))
    });
    #[cfg(feature = "agent")]
    let sync_peer = settings.sync.enabled.then(|| {
        Arc::new(crate::sync::mqtt::MqttSync {
            store: store.clone(),
            node: settings.node.name.clone(),
            batch: settings.sync.batch as usize,
            // Half the payload bound: the envelope and JSON escaping stay well inside it.
            max_bytes: (settings.mqtt.max_payload_kb as usize) * 512,
            topic: format!("{}/sync", settings.mqtt_state_prefix()),
            root: crate::sync::mqtt::root_of(&settings.mqtt_state_prefix()),
            pending: Default::default(),
            max_items: settings.sync.max_remote_items,
        })
    });
    // Sync's turns: on the MQTT worker's thread when they can be, else on their own.
    #[cfg(feature = "agent")]
    let (sync, sync_turns) = match sync_peer.as_ref().and_then(|peer| {
        crate::sync::worker::start(crate::sync::worker::SyncParts {
            store: store.clone(),
            settings: settings.clone(),
            mqtt: mqtt_on.then(|| (publish_tx.clone(), peer.clone())),
        })
    }) {
        Some(crate::sync::worker::Started::Thread(h)) => (Some(h), None),
        Some(crate::sync::worker::Started::OnMqtt(t)) => (None, Some(t)),
        None => (None, None),
    };
    #[cfg(feature = "agent")]
    let llm_on = agent.is_some();
    #[cfg(not(feature = "agent"))]
    let llm_on = false;
    let directory = node_directory(
        &settings,
        started,
        built
            .status
            .nodes
            .iter()
            .filter(|n| n.role == "source")
            .count(),
        llm_on,
    );
    #[cfg(feature = "mqtt")]
    let mqtt = if mqtt_on {
        connection::start(
            connection::Parts {
                settings: settings.clone(),
                store: store.clone(),
                registry: registry.clone(),
                gpio: gpio.clone(),
                subscriptions: built.subscriptions,
                discovery: discovery_messages(&settings, &spec, &registry),
                #[cfg(feature = "agent")]
                questions: intake.clone().map(|i| i as Arc<dyn QuestionIntake>),
                #[cfg(not(feature = "agent"))]
                questions: None,
                recent: recent.clone(),
                events: events.clone(),
                nodes: Some(directory.clone()),
                #[cfg(feature = "agent")]
                sync: sync_peer.map(|p| p as Arc<dyn crate::messages::SyncPeer>),
                #[cfg(not(feature = "agent"))]
                sync: None,
                #[cfg(feature = "agent")]
                beside: sync_turns,
                #[cfg(not(feature = "agent"))]
                beside: None,
            },
            (publish_tx, publish_rx),
        )
    } else {
        log::info!("mqtt: no broker configured ([mqtt] broker); running without MQTT");
        None
    };
    // The OpenClaw gateway's node client: its commands are the tools, answered once the
    // loop turns (NODE_NOT_READY before).
    #[cfg(feature = "openclaw")]
    let openclaw_ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    #[cfg(feature = "openclaw")]
    let openclaw = openclaw::start(
        &settings,
        &store_path,
        ToolContext {
            events: events.clone(),
            ..tool_context(
                &settings,
                &store,
                &registry,
                &gpio,
                &hardware,
                built.status.retention.clone(),
                None,
            )
        },
        intake.clone().map(|i| i as Arc<dyn QuestionIntake>),
        &openclaw_ready,
        node_events.clone(),
    );
    // A boot with the clock unset: once NTP sets it, this boot's 1970 readings move to
    // their true times (`store/restamp.rs`).
    let restamp_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let restamp = crate::store::restamp::Restamp::prepare(
        &store,
        &registry,
        started,
        built
            .status
            .retention
            .iter()
            .flat_map(|r| r.rollups.iter().map(|l| l.every))
            .collect(),
    )
    .map(|r| r.spawn(restamp_stop.clone()));
    let (ping_tx, ping_rx) = async_channel::bounded::<async_channel::Sender<()>>(16);
    let writer_stats = writer.stats.clone();
    let shared = Arc::new(StatusView {
        settings: settings.clone(),
        started,
        registry: registry.clone(),
        store: store.clone(),
        writer: writer_stats,
        gpio,
        hardware: hardware.clone(),
        graph: built.status,
        http: Arc::new(HttpStats::default()),
        events: events.clone(),
        #[cfg(feature = "mqtt")]
        mqtt: mqtt.as_ref().map(|m| MqttView {
            broker: m.broker.clone(),
            stats: m.stats.clone(),
        }),
        #[cfg(feature = "agent")]
        llm: agent.as_ref().map(|a| a.stats.clone()),
        #[cfg(feature = "agent")]
        intake: intake.clone(),
        #[cfg(feature = "openclaw")]
        openclaw: openclaw.as_ref().map(|h| h.stats.clone()),
        directory: directory.clone(),
    });

    let http = if let Some(events) = events {
        let view = HttpView {
            events,
            sessions: Default::default(),
            settings: settings.clone(),
            started,
            registry: registry.clone(),
            store: store.clone(),
            gpio: shared.gpio.clone(),
            retention: shared.graph.retention.clone(),
            ping: ping_tx,
            stats: shared.http.clone(),
            nodes: directory.clone(),
            status: Box::new({
                let shared = shared.clone();
                move || crate::status::live(&shared)
            }),
            // The same snapshot as /api/status, in Prometheus's format: they cannot disagree.
            metrics: Box::new({
                let shared = shared.clone();
                move || crate::status::prometheus::render(&crate::status::live(&shared))
            }),
            #[cfg(feature = "agent")]
            ask: intake.map(|i| i as Arc<dyn QuestionIntake>),
            #[cfg(not(feature = "agent"))]
            ask: None,
        };
        Some(http::start(Arc::new(view)).map_err(|e| format!("http: {e}"))?)
    } else {
        None
    };

    let ex = smol::LocalExecutor::new();
    // mDNS after HTTP is listening: the announced port answers from the first packet.
    #[cfg(feature = "mdns")]
    let mdns = start_mdns(&settings, &directory).map(|(handle, task)| {
        ex.spawn(task).detach();
        handle
    });
    #[cfg(not(feature = "mdns"))]
    if settings.discovery.enabled {
        log::info!("discovery: this build has no mdns feature; nodes are learned over MQTT only");
    }
    let node_tasks: Vec<_> = built.tasks.into_iter().map(|t| ex.spawn(t)).collect();
    // Answer health pings from inside the loop: a reply proves the loop is turning.
    ex.spawn(async move {
        while let Ok(reply) = ping_rx.recv().await {
            let _ = reply.try_send(());
        }
    })
    .detach();
    // SIGUSR1 stalls the event loop, for the watchdog test only (SMOLLAMA_TEST_HOOKS=1).
    let test_hooks = std::env::var_os("SMOLLAMA_TEST_HOOKS").is_some_and(|v| v == "1");
    let mut wanted = vec![async_signal::Signal::Term, async_signal::Signal::Int];
    if test_hooks {
        wanted.push(async_signal::Signal::Usr1);
    }
    let signals = async_signal::Signals::new(wanted)
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let writer_stopping = writer.stats.clone();
    ex.spawn(async move {
        use smol::stream::StreamExt;
        let mut signals = signals;
        while let Some(Ok(sig)) = signals.next().await {
            if sig == async_signal::Signal::Usr1 {
                log::warn!("test hook: stalling the event loop");
                std::thread::sleep(std::time::Duration::from_secs(3600));
                continue;
            }
            log::info!("received {sig:?}: stopping sources, draining the graph");
            writer_stopping
                .stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
            break;
        }
        trigger.fire();
    })
    .detach();
    // READY=1, STATUS= and watchdog pings (no-ops outside systemd), from the loop itself.
    ex.spawn(crate::edges::systemd::run({
        let shared = shared.clone();
        move || crate::status::line(&shared)
    }))
    .detach();

    // Once start-up is over (connections made, first samples taken), its code is given
    // back: only the install build, laid out by scripts/code-order.txt, has it in one place.
    ex.spawn(async {
        smol::Timer::after(std::time::Duration::from_secs(5)).await;
        let bytes = crate::footprint::give_back_startup_code();
        log::debug!("gave back {} KiB of start-up code", bytes / 1024);
    })
    .detach();
    let running = |role: &str| shared.graph.nodes.iter().filter(|n| n.role == role).count();
    log::info!(
        "running: {} sources, {} stages, {} sinks{}",
        running("source"),
        running("stage"),
        running("sink"),
        match &http {
            Some(h) => format!(", http on {}", h.addr),
            None => String::new(),
        }
    );
    let until = shutdown.clone();
    #[cfg(feature = "openclaw")]
    openclaw_ready.store(true, std::sync::atomic::Ordering::Release);
    smol::block_on(ex.run(async {
        // A source may end early (a gpio source with no pins); the agent runs on
        // until told to stop, then waits for every node to drain.
        until.wait().await;
        for t in node_tasks {
            t.await;
        }
    }));

    #[cfg(feature = "openclaw")]
    openclaw_ready.store(false, std::sync::atomic::Ordering::Release);
    // The goodbye first: peers drop this node at once, not after its records expire.
    #[cfg(feature = "mdns")]
    if let Some(m) = mdns {
        m.stop();
    }
    // Every node has returned. MQTT first (its outbox lives in the store), then the store
    // writer's last commit. Sync before MQTT: it publishes into MQTT's channel.
    #[cfg(feature = "agent")]
    if let Some(s) = sync {
        s.stop();
    }
    #[cfg(feature = "mqtt")]
    if let Some(m) = mqtt {
        m.stop();
    }
    #[cfg(feature = "openclaw")]
    if let Some(o) = openclaw {
        o.stop();
    }
    #[cfg(feature = "agent")]
    if let Some(a) = agent {
        a.stop();
    }
    restamp_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(t) = restamp
        && t.join().is_err()
    {
        log::error!("restamp thread panicked");
    }
    drop(writer.batches);
    if writer.thread.join().is_err() {
        log::error!("store writer thread panicked");
    }
    if let Some(h) = http {
        h.stop();
    }
    let stats = &shared.writer;
    log::info!(
        "stopped after {:.1}s: {} readings stored in {} commits",
        (now_us() - started) as f64 / 1e6,
        stats.readings.load(std::sync::atomic::Ordering::Relaxed),
        stats.commits.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}
