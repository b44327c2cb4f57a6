//! The running agent: opens the store, builds the graph, starts HTTP, runs the event loop
//! on this thread until SIGTERM/SIGINT, then drains and exits.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use crate::clock::now_us;
use crate::config::{PipelineSpec, Settings};
use crate::edges::gpio::{self, GpioBackend};
use crate::edges::http;
use crate::graph::Micros;
use crate::graph::registry::Registry;
use crate::graph::runner::{self, GraphStatus, Parts};
use crate::shutdown;
use crate::store::writer::{self, WriterStats};
use crate::store::{Store, StoreOptions};

/// Batches that may wait for the writer thread before the store sink waits.
const WRITER_QUEUE: usize = 2;

/// What the HTTP thread (and later edges) may look at while the loop runs.
pub struct Shared {
    pub settings: Settings,
    pub started: Micros,
    pub registry: Arc<Registry>,
    pub store: Arc<Store>,
    pub writer: Arc<WriterStats>,
    pub gpio: Arc<dyn GpioBackend>,
    pub graph: GraphStatus,
    /// Health check: send a reply channel; the event loop answers it if it is alive.
    pub ping: async_channel::Sender<SyncSender<()>>,
}

/// Where the store lives under the data directory.
pub fn store_dir(settings: &Settings) -> std::path::PathBuf {
    settings.node.data_dir.join("store")
}

/// Run the agent until a termination signal; returns the process exit code.
pub fn run(settings: Settings, spec: PipelineSpec) -> Result<(), String> {
    let started = now_us();
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
    let registry = Arc::new(Registry::new());
    registry.load(store.sources().map_err(|e| e.to_string())?);
    let gpio = gpio::open(&settings.gpio).map_err(|e| e.to_string())?;
    log::info!(
        "node {}: store {}, gpio {} ({} pins)",
        settings.node.name,
        store_path.display(),
        gpio.name(),
        settings.gpio.pins.len()
    );

    let writer = writer::spawn(store.clone(), registry.clone(), WRITER_QUEUE);
    let (trigger, shutdown) = shutdown::channel();
    let built = runner::build(
        &spec,
        Parts {
            settings: &settings,
            registry: &registry,
            gpio: &gpio,
            writer: Some(&writer),
            shutdown: &shutdown,
        },
    )?;
    let (ping_tx, ping_rx) = async_channel::bounded::<SyncSender<()>>(16);
    let writer_stats = writer.stats.clone();
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        started,
        registry: registry.clone(),
        store: store.clone(),
        writer: writer_stats,
        gpio,
        graph: built.status,
        ping: ping_tx,
    });

    let http = if settings.http.enabled {
        Some(http::start(shared.clone()).map_err(|e| format!("http: {e}"))?)
    } else {
        None
    };

    let ex = smol::LocalExecutor::new();
    let node_tasks: Vec<_> = built.tasks.into_iter().map(|t| ex.spawn(t)).collect();
    // Answer health pings from inside the loop: a reply proves the loop is turning.
    ex.spawn(async move {
        while let Ok(reply) = ping_rx.recv().await {
            let _ = reply.try_send(());
        }
    })
    .detach();
    let signals =
        async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    ex.spawn(async move {
        use smol::stream::StreamExt;
        let mut signals = signals;
        if let Some(Ok(sig)) = signals.next().await {
            log::info!("received {sig:?}: stopping sources, draining the graph");
        }
        trigger.fire();
    })
    .detach();

    log::info!(
        "running: {} sources, {} stages, {} sinks{}",
        spec.sources.len(),
        spec.stages.len(),
        spec.sinks.len(),
        match &http {
            Some(h) => format!(", http on {}", h.addr),
            None => String::new(),
        }
    );
    let until = shutdown.clone();
    smol::block_on(ex.run(async {
        // A source may end early (a gpio source with no pins); the agent runs on
        // until told to stop, then waits for every node to drain.
        until.wait().await;
        for t in node_tasks {
            t.await;
        }
    }));

    // Every node has returned; the store sink dropped its sender. Wait for the last commit.
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
