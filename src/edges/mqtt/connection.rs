//! The MQTT connection: two named threads around one rumqttc client.
//!
//! - `mqtt-io` drives rumqttc's event loop (`Connection::recv`, which runs a tokio
//!   current-thread runtime inside this thread) and forwards the events that matter.
//!   rumqttc reconnects at once after an error, so this thread sleeps a capped
//!   exponential backoff with jitter between attempts: never a tight loop while the
//!   broker is down.
//! - `mqtt` (the worker) owns the client, the QoS 1 outbox flow and inbound routing. It
//!   waits on two bounded channels: messages from the graph's mqtt sinks, and events from
//!   `mqtt-io`. Nothing here runs on the event loop.
//!
//! QoS 1 flow: a message is appended to the LMDB outbox first, then handed to rumqttc
//! from the outbox, at most `inflight` at a time, and deleted when its PUBACK arrives.
//! rumqttc reports each publish it sends (`Outgoing::Publish(pkid)`) in the order it was
//! handed over, which is how a packet id is tied back to its outbox sequence number.
//! After a reconnect (or a restart) everything still in the outbox is sent again, in
//! order: a message may arrive twice (as MQTT QoS 1 permits; counted as `republished`),
//! never zero times, unless the bounded outbox had to drop its oldest.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[cfg(feature = "agent")]
use serde_json::Value as Json;

use rumqttc::{Client, Connection, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS};

use super::payload::{self, Inbound};
use super::topic;
// Questions over MQTT go to the agent; a build without it never subscribes to ask topics.
#[cfg(feature = "agent")]
use crate::agent::worker::Question;
use crate::clock::now_us;
use crate::config::settings::Settings;
use crate::edges::gpio::GpioBackend;
use crate::graph::registry::Registry;
use crate::graph::{Item, Micros, Reading};
use crate::store::Store;
use crate::store::outbox::{OutMessage, OutboxLimits};

/// A message for the broker, from a sink (or later, the agent's `publish` tool).
pub type Publish = OutMessage;

/// Connection states shown in status.
pub const STATE_CONNECTING: u8 = 0;
pub const STATE_CONNECTED: u8 = 1;
pub const STATE_DISCONNECTED: u8 = 2;
pub const STATE_STOPPED: u8 = 3;

pub fn state_name(s: u8) -> &'static str {
    match s {
        STATE_CONNECTING => "connecting",
        STATE_CONNECTED => "connected",
        STATE_DISCONNECTED => "disconnected",
        _ => "stopped",
    }
}

/// Live numbers of the MQTT edge, for status.
#[derive(Default)]
pub struct MqttStats {
    pub state: AtomicU8,
    pub connects: AtomicU64,
    pub reconnects: AtomicU64,
    pub messages_out: AtomicU64,
    pub messages_in: AtomicU64,
    pub acked: AtomicU64,
    pub republished: AtomicU64,
    /// QoS 0 messages dropped because the broker was away.
    pub dropped_qos0: AtomicU64,
    /// Oldest outbox messages dropped to stay within its bounds (this run).
    pub outbox_dropped: AtomicU64,
    pub readings_in: AtomicU64,
    pub malformed: AtomicU64,
    pub too_large: AtomicU64,
    /// Outgoing messages refused: over `max_payload_kb` or an invalid topic.
    pub refused_out: AtomicU64,
    /// Questions handed to the agent, and those ignored by the loop guard or rate limit.
    pub questions: AtomicU64,
    pub questions_ignored: AtomicU64,
    pub questions_rate_limited: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// Malformed payloads per topic (bounded to `MAX_TRACKED_TOPICS` topics).
    pub malformed_by_topic: Mutex<HashMap<String, u64>>,
}

impl MqttStats {
    fn set_error(&self, e: String) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(e);
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

const MAX_TRACKED_TOPICS: usize = 256;
/// Acknowledged messages removed from the outbox per write transaction, at most...
const ACK_BATCH: usize = 512;
/// ...or after this long.
const ACK_FLUSH: Duration = Duration::from_millis(100);
/// QoS 0 messages waiting for room in rumqttc's request queue; beyond it the oldest is
/// dropped (the newest value matters most).
const QOS0_QUEUE: usize = 1024;

/// An mqtt source's subscription: where its readings go.
pub struct Subscription {
    pub source: String,
    pub filters: Vec<String>,
    pub pointer: Option<String>,
    pub unit: Option<String>,
    pub tx: async_channel::Sender<Item>,
}

/// The last messages seen per topic (for the agent's `get_recent_messages` tool).
#[derive(Default)]
pub struct Recent {
    pub by_topic: HashMap<String, VecDeque<(Micros, String)>>,
}

/// What the rest of the agent holds.
pub struct MqttHandle {
    pub publish: async_channel::Sender<Publish>,
    pub stats: Arc<MqttStats>,
    pub recent: Arc<Mutex<Recent>>,
    pub broker: String,
    stop: async_channel::Sender<()>,
    worker: Option<JoinHandle<()>>,
}

impl MqttHandle {
    /// Finish: the worker stores what the sinks sent last, publishes `offline`,
    /// disconnects and joins its threads.
    pub fn stop(mut self) {
        self.stop.close();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

enum Ev {
    Connected(bool),
    Sent(u16),
    Acked(u16),
    Message(String, Vec<u8>),
    Disconnected(String),
}

/// Everything the worker needs besides the client.
pub struct Parts {
    pub settings: Settings,
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub gpio: Arc<dyn GpioBackend>,
    pub subscriptions: Vec<Subscription>,
    /// Home Assistant discovery messages to publish on every connect (and when Home
    /// Assistant announces itself).
    pub discovery: Vec<Publish>,
    /// Where questions go (the agent); `None` when the agent is off.
    #[cfg(feature = "agent")]
    pub questions: Option<async_channel::Sender<Question>>,
    /// The last messages per topic, shared with the agent's tools.
    pub recent: Arc<Mutex<Recent>>,
}

/// Messages that may wait between the sinks and the worker.
pub const PUBLISH_QUEUE: usize = 1024;

/// Connect (in the background) and start the threads. `None` when MQTT is off.
/// `publish` is the channel the mqtt sinks send into; the handle keeps a sender for
/// later publishers (the agent's `publish` tool).
pub fn start(
    parts: Parts,
    publish: (
        async_channel::Sender<Publish>,
        async_channel::Receiver<Publish>,
    ),
) -> Option<MqttHandle> {
    let m = parts.settings.mqtt.clone();
    let broker = m.broker.clone()?;
    let prefix = parts.settings.mqtt_prefix();
    let status_topic = format!("{prefix}/status");
    let mut opts = MqttOptions::new(parts.settings.mqtt_client_id(), broker.clone(), m.port);
    opts.set_keep_alive(Duration::from_micros(m.keepalive as u64))
        .set_clean_session(m.clean_session)
        .set_inflight(m.inflight)
        .set_max_packet_size(
            (m.max_payload_kb as usize) * 1024 + 1024,
            (m.max_payload_kb as usize) * 1024 + 1024,
        )
        .set_last_will(LastWill::new(
            &status_topic,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if let (Some(u), Some(p)) = (&m.username, &m.password) {
        opts.set_credentials(u.clone(), p.0.clone());
    }
    #[cfg(feature = "mqtt-tls")]
    if let Some(ca) = &m.ca_file {
        match std::fs::read(ca) {
            Ok(pem) => {
                opts.set_transport(rumqttc::Transport::tls(pem, None, None));
            }
            Err(e) => log::error!("mqtt: cannot read ca_file {}: {e}", ca.display()),
        }
    }
    let (client, mut connection) = Client::new(opts, 2 * m.inflight as usize + 64);
    // rumqttc writes and flushes each packet on its own; with Nagle's algorithm on, small
    // packets wait for the peer's delayed ACK and throughput collapses (measured: ~100
    // messages/s on loopback). Readings are small packets: send them at once.
    let mut net = connection.eventloop.network_options();
    net.set_tcp_nodelay(true);
    connection.eventloop.set_network_options(net);
    let stats = Arc::new(MqttStats::default());
    let recent = parts.recent.clone();
    let (pub_tx, pub_rx) = publish;
    let (ev_tx, ev_rx) = async_channel::bounded::<Ev>(1024);
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let io_stop = Arc::new(AtomicBool::new(false));

    let io = {
        let stats = stats.clone();
        let io_stop = io_stop.clone();
        let backoff = (m.reconnect_min, m.reconnect_max);
        std::thread::Builder::new()
            .name("mqtt-io".into())
            .spawn(move || io_loop(connection, ev_tx, stats, io_stop, backoff))
            .ok()?
    };
    log::info!(
        "mqtt: connecting to {broker}:{} as {} (prefix {prefix})",
        m.port,
        parts.settings.mqtt_client_id()
    );
    let worker = {
        let stats = stats.clone();
        let recent = recent.clone();
        std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || {
                let mut w = Worker::new(parts, client, stats, recent, prefix, status_topic);
                smol::block_on(w.run(pub_rx, ev_rx, stop_rx));
                w.finish();
                io_stop.store(true, Ordering::Relaxed);
                drop(w); // drops the client: rumqttc's event loop ends, mqtt-io returns
                let _ = io.join();
            })
            .ok()?
    };
    Some(MqttHandle {
        publish: pub_tx,
        stats,
        recent,
        broker: format!("{broker}:{}", m.port),
        stop: stop_tx,
        worker: Some(worker),
    })
}

fn io_loop(
    mut connection: Connection,
    ev: async_channel::Sender<Ev>,
    stats: Arc<MqttStats>,
    stop: Arc<AtomicBool>,
    (min, max): (Micros, Micros),
) {
    let mut backoff = min;
    let mut seed = (now_us() as u64) | 1;
    loop {
        let event = match connection.recv() {
            Ok(e) => e,
            Err(_) => return, // the client was dropped: shutting down
        };
        let forward = match event {
            Ok(Event::Incoming(Incoming::ConnAck(c))) => {
                backoff = min;
                Some(Ev::Connected(c.session_present))
            }
            Ok(Event::Incoming(Incoming::PubAck(a))) => Some(Ev::Acked(a.pkid)),
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                Some(Ev::Message(p.topic.clone(), p.payload.to_vec()))
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Some(Ev::Sent(pkid)),
            Ok(_) => None,
            Err(e) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let _ = ev.send_blocking(Ev::Disconnected(e.to_string()));
                // rumqttc would reconnect at once on the next recv: wait first, with
                // jitter so a fleet of nodes does not reconnect in lockstep.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let jitter = (seed % 1000) as f64 / 1000.0; // 0..1
                let wait = (backoff as f64 * (0.5 + jitter * 0.5)) as u64;
                let _ = &stats;
                let end = std::time::Instant::now() + Duration::from_micros(wait);
                while std::time::Instant::now() < end {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(
                        Duration::from_millis(50).min(end - std::time::Instant::now()),
                    );
                }
                backoff = (backoff * 2).min(max);
                None
            }
        };
        if let Some(f) = forward
            && ev.send_blocking(f).is_err()
        {
            return;
        }
    }
}

struct Worker {
    parts: Parts,
    client: Client,
    stats: Arc<MqttStats>,
    recent: Arc<Mutex<Recent>>,
    prefix: String,
    status_topic: String,
    command_prefix: String,
    limits: OutboxLimits,
    connected: bool,
    ever_connected: bool,
    /// Next outbox sequence to hand to the client on this connection.
    next_to_send: u64,
    /// Highest sequence ever handed over (to count re-sends after a reconnect).
    highest_sent: Option<u64>,
    /// Publishes handed to rumqttc, waiting for their packet id, in order
    /// (`None`: not from the outbox, e.g. status or discovery).
    awaiting_pkid: VecDeque<Option<u64>>,
    /// Packet id -> outbox sequence, waiting for PUBACK.
    inflight: HashMap<u16, u64>,
    pending: Vec<Publish>,
    acked: Vec<u64>,
    /// QoS 0 messages waiting for room in rumqttc's request queue.
    qos0: VecDeque<Publish>,
    qos0_blocked: bool,
    /// Hashes of (topic, payload) this node published lately: a message that comes back
    /// on an ask topic is our own and never starts the agent.
    own: VecDeque<u64>,
    /// Questions per ask topic in the current minute.
    #[cfg(feature = "agent")]
    rate: HashMap<String, (Micros, u32)>,
    #[cfg(feature = "agent")]
    ask_seq: u64,
}

fn message_hash(topic: &str, payload: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish()
}

/// Topics that never trigger the agent, whoever publishes them: answers, status,
/// readings and states (a question about a reading is not a reading).
#[cfg(feature = "agent")]
fn loop_guarded(topic: &str) -> bool {
    topic.ends_with("/answers")
        || topic.ends_with("/status")
        || topic.ends_with("/readings")
        || topic.contains("/state/")
}

impl Worker {
    fn new(
        parts: Parts,
        client: Client,
        stats: Arc<MqttStats>,
        recent: Arc<Mutex<Recent>>,
        prefix: String,
        status_topic: String,
    ) -> Worker {
        let m = &parts.settings.mqtt;
        let limits = OutboxLimits {
            max_messages: m.outbox_max_messages,
            max_bytes: m.outbox_max_mb << 20,
        };
        Worker {
            command_prefix: format!("{prefix}/gpio/"),
            parts,
            client,
            stats,
            recent,
            prefix,
            status_topic,
            limits,
            connected: false,
            ever_connected: false,
            next_to_send: 0,
            highest_sent: None,
            awaiting_pkid: VecDeque::new(),
            inflight: HashMap::new(),
            pending: Vec::new(),
            acked: Vec::new(),
            qos0: VecDeque::new(),
            qos0_blocked: false,
            own: VecDeque::new(),
            #[cfg(feature = "agent")]
            rate: HashMap::new(),
            #[cfg(feature = "agent")]
            ask_seq: 0,
        }
    }

    async fn run(
        &mut self,
        publish: async_channel::Receiver<Publish>,
        events: async_channel::Receiver<Ev>,
        stop: async_channel::Receiver<()>,
    ) {
        enum Wake {
            Publish(Publish),
            Event(Ev),
            Flush,
            Stop,
        }
        // Acknowledged messages leave the outbox in batches (one write transaction, one
        // fsync, per batch): at most `ACK_FLUSH` later, or once `ACK_BATCH` are waiting.
        // A crash in between only means those few are sent again.
        let mut flush = smol::Timer::never();
        let mut flush_armed = false;
        loop {
            // Stop taking QoS 0 messages while the client cannot take them: the sinks
            // wait, and their lossy inboxes keep the newest readings.
            let accepting = self.qos0.len() < QOS0_QUEUE;
            let retry = self.qos0_blocked;
            let wake = smol::future::or(
                async {
                    let _ = stop.recv().await;
                    Wake::Stop
                },
                smol::future::or(
                    async {
                        if !accepting {
                            if retry {
                                smol::Timer::after(Duration::from_millis(2)).await;
                                return Wake::Flush;
                            }
                            return std::future::pending().await;
                        }
                        if retry {
                            return smol::future::or(
                                async {
                                    match publish.recv().await {
                                        Ok(p) => Wake::Publish(p),
                                        Err(_) => std::future::pending().await,
                                    }
                                },
                                async {
                                    smol::Timer::after(Duration::from_millis(2)).await;
                                    Wake::Flush
                                },
                            )
                            .await;
                        }
                        match publish.recv().await {
                            Ok(p) => Wake::Publish(p),
                            Err(_) => std::future::pending().await,
                        }
                    },
                    smol::future::or(
                        async {
                            match events.recv().await {
                                Ok(e) => Wake::Event(e),
                                Err(_) => Wake::Stop,
                            }
                        },
                        async {
                            (&mut flush).await;
                            Wake::Flush
                        },
                    ),
                ),
            )
            .await;
            match wake {
                Wake::Stop => {
                    // Whatever the sinks sent before they stopped goes to the outbox.
                    while let Ok(p) = publish.try_recv() {
                        self.queue(p);
                    }
                    self.store_pending();
                    self.remove_acked();
                    return;
                }
                Wake::Publish(p) => {
                    self.queue(p);
                    while self.qos0.len() < QOS0_QUEUE
                        && let Ok(p) = publish.try_recv()
                    {
                        self.queue(p);
                    }
                }
                Wake::Event(e) => {
                    self.on_event(e);
                    while let Ok(e) = events.try_recv() {
                        self.on_event(e);
                    }
                }
                Wake::Flush => {
                    if flush_armed && !self.acked.is_empty() {
                        flush_armed = false;
                        flush = smol::Timer::never();
                        self.remove_acked();
                    }
                }
            }
            self.store_pending();
            if self.acked.len() >= ACK_BATCH {
                self.remove_acked();
            } else if !self.acked.is_empty() && !flush_armed {
                flush.set_after(ACK_FLUSH);
                flush_armed = true;
            }
            self.pump();
        }
    }

    /// QoS 0 goes straight out (or is dropped while away); QoS 1 waits for the outbox.
    /// A message over `max_payload_kb` or with an invalid topic is refused and counted.
    fn queue(&mut self, p: Publish) {
        let max = (self.parts.settings.mqtt.max_payload_kb as usize) * 1024;
        if p.payload.len() > max || topic::validate_topic(&p.topic, topic::MAX_TOPIC_LEN).is_err() {
            self.stats.refused_out.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "mqtt: refused a {} byte message for '{}' (limit {max} bytes, no wildcards in topics)",
                p.payload.len(),
                p.topic
            );
            return;
        }
        if self.own.len() >= 256 {
            self.own.pop_front();
        }
        self.own.push_back(message_hash(&p.topic, &p.payload));
        if p.qos == 0 {
            if !self.connected {
                self.stats.dropped_qos0.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if self.qos0.len() >= QOS0_QUEUE {
                self.qos0.pop_front();
                self.stats.dropped_qos0.fetch_add(1, Ordering::Relaxed);
            }
            self.qos0.push_back(p);
        } else {
            self.pending.push(p);
        }
    }

    fn store_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match self.parts.store.outbox_push(&self.pending, &self.limits) {
            Ok((_, dropped)) => {
                if dropped > 0 {
                    self.stats
                        .outbox_dropped
                        .fetch_add(dropped, Ordering::Relaxed);
                    log::warn!(
                        "mqtt: outbox full ({} messages / {} MiB): dropped the {dropped} oldest",
                        self.limits.max_messages,
                        self.limits.max_bytes >> 20
                    );
                }
                self.pending.clear();
            }
            Err(e) => {
                // Keep them in memory and try again on the next wake-up (bounded: the
                // sinks' channel is bounded and this vector is cleared on success).
                log::error!("mqtt: cannot write the outbox: {e}");
                self.stats.set_error(format!("outbox: {e}"));
                if self.pending.len() > 10_000 {
                    let n = self.pending.len() - 10_000;
                    self.pending.drain(..n);
                    self.stats
                        .outbox_dropped
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    }

    fn remove_acked(&mut self) {
        if self.acked.is_empty() {
            return;
        }
        match self.parts.store.outbox_remove(&self.acked) {
            Ok(_) => self.acked.clear(),
            Err(e) => log::error!("mqtt: cannot remove acknowledged messages from the outbox: {e}"),
        }
    }

    /// Hand queued QoS 0 messages and outbox messages to the client while the window has
    /// room. rumqttc reports each publish it writes (`Sent`), which frees a place.
    fn pump(&mut self) {
        if !self.connected {
            return;
        }
        let window = self.parts.settings.mqtt.inflight as usize;
        self.qos0_blocked = false;
        while let Some(p) = self.qos0.front() {
            let (topic, payload) = (p.topic.clone(), p.payload.clone());
            if self
                .client
                .try_publish(topic, QoS::AtMostOnce, p.retain, payload)
                .is_err()
            {
                // rumqttc's request queue is full: try again shortly.
                self.qos0_blocked = true;
                break;
            }
            self.qos0.pop_front();
            self.stats.messages_out.fetch_add(1, Ordering::Relaxed);
        }
        let busy = self.awaiting_pkid.len() + self.inflight.len();
        if busy >= window {
            return;
        }
        let batch = match self
            .parts
            .store
            .outbox_read(self.next_to_send, window - busy)
        {
            Ok(b) => b,
            Err(e) => {
                log::error!("mqtt: cannot read the outbox: {e}");
                return;
            }
        };
        for (seq, msg) in batch {
            let qos = if msg.qos == 0 {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            if self
                .client
                .try_publish(msg.topic, qos, msg.retain, msg.payload)
                .is_err()
            {
                break; // rumqttc's request queue is full; the next wake-up continues
            }
            if self.highest_sent.is_some_and(|h| seq <= h) {
                self.stats.republished.fetch_add(1, Ordering::Relaxed);
            }
            self.highest_sent = Some(self.highest_sent.map_or(seq, |h| h.max(seq)));
            self.awaiting_pkid.push_back(Some(seq));
            self.next_to_send = seq + 1;
            self.stats.messages_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publish outside the outbox (status, discovery): QoS 1, no persistence needed
    /// because they are re-sent on every connect.
    fn publish_direct(&mut self, topic: &str, payload: Vec<u8>, retain: bool) {
        if self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .is_ok()
        {
            self.awaiting_pkid.push_back(None);
            self.stats.messages_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_event(&mut self, e: Ev) {
        match e {
            Ev::Connected(session_present) => {
                self.connected = true;
                self.stats.state.store(STATE_CONNECTED, Ordering::Relaxed);
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                if self.ever_connected {
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    log::info!("mqtt: reconnected (session present: {session_present})");
                } else {
                    log::info!(
                        "mqtt: connected to {}",
                        self.parts.settings.mqtt.broker.as_deref().unwrap_or("")
                    );
                }
                self.ever_connected = true;
                self.awaiting_pkid.clear();
                self.inflight.clear();
                // Everything unacknowledged goes again, oldest first.
                self.next_to_send = 0;
                self.subscribe();
                let status = self.status_topic.clone();
                self.publish_direct(&status, b"online".to_vec(), true);
                self.publish_discovery();
            }
            Ev::Sent(pkid) => {
                // pkid 0 is a QoS 0 publish: it takes no place in the queue.
                if pkid != 0
                    && let Some(Some(seq)) = self.awaiting_pkid.pop_front()
                {
                    self.inflight.insert(pkid, seq);
                }
            }
            Ev::Acked(pkid) => {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
                if let Some(seq) = self.inflight.remove(&pkid) {
                    self.acked.push(seq);
                }
            }
            Ev::Message(topic, payload) => self.on_message(topic, payload),
            Ev::Disconnected(err) => {
                if self.connected || self.stats.last_error().as_deref() != Some(err.as_str()) {
                    log::warn!(
                        "mqtt: connection to the broker lost or refused: {err}; retrying with backoff"
                    );
                }
                self.connected = false;
                self.stats
                    .state
                    .store(STATE_DISCONNECTED, Ordering::Relaxed);
                self.stats.set_error(err);
                self.awaiting_pkid.clear();
                self.inflight.clear();
                self.stats
                    .dropped_qos0
                    .fetch_add(self.qos0.len() as u64, Ordering::Relaxed);
                self.qos0.clear();
            }
        }
    }

    fn subscribe(&mut self) {
        let mut filters: Vec<String> = Vec::new();
        for s in &self.parts.subscriptions {
            for f in &s.filters {
                if !filters.contains(f) {
                    filters.push(f.clone());
                }
            }
        }
        #[cfg(feature = "agent")]
        if self.parts.questions.is_some() {
            for t in self.parts.settings.ask_topics() {
                if !filters.contains(&t) {
                    filters.push(t);
                }
            }
        }
        if !self.parts.discovery.is_empty() {
            filters.push(format!(
                "{}/status",
                self.parts.settings.mqtt.discovery_prefix
            ));
            filters.push(format!("{}+/set", self.command_prefix));
        }
        for f in filters {
            if let Err(e) = self.client.try_subscribe(f.clone(), QoS::AtLeastOnce) {
                log::error!("mqtt: cannot subscribe to {f}: {e}");
            }
        }
    }

    /// Announce our entities, and remove (empty retained config) those announced before
    /// that are gone now (a source or pin removed from the config). The announced set is
    /// kept in the store across restarts.
    fn publish_discovery(&mut self) {
        const KEY: &str = "ha_discovery_topics";
        let msgs: Vec<Publish> = self.parts.discovery.clone();
        let current: Vec<&str> = msgs.iter().map(|m| m.topic.as_str()).collect();
        let before = self
            .parts
            .store
            .state_get(KEY)
            .ok()
            .flatten()
            .unwrap_or_default();
        let before = String::from_utf8_lossy(&before).into_owned();
        for old in before
            .lines()
            .filter(|t| !t.is_empty() && !current.contains(t))
        {
            log::info!("mqtt: removing Home Assistant entity {old} (no longer configured)");
            self.publish_direct(old, Vec::new(), true);
        }
        let now = current.join("\n");
        if now != before
            && let Err(e) = self.parts.store.state_put(KEY, now.as_bytes())
        {
            log::warn!("mqtt: cannot remember the announced entities: {e}");
        }
        for m in msgs {
            self.publish_direct(&m.topic, m.payload, m.retain);
        }
    }

    fn on_message(&mut self, topic: String, payload: Vec<u8>) {
        self.stats.messages_in.fetch_add(1, Ordering::Relaxed);
        self.remember(&topic, &payload);
        // Home Assistant came (back) online: announce our entities again.
        if !self.parts.discovery.is_empty()
            && topic == format!("{}/status", self.parts.settings.mqtt.discovery_prefix)
        {
            if payload.trim_ascii() == b"online" {
                log::info!("mqtt: Home Assistant is online; re-publishing discovery");
                self.publish_discovery();
            }
            return;
        }
        if let Some(rest) = topic.strip_prefix(&self.command_prefix) {
            self.on_gpio_command(rest, &payload);
            return;
        }
        #[cfg(feature = "agent")]
        if self.parts.questions.is_some()
            && self
                .parts
                .settings
                .ask_topics()
                .iter()
                .any(|f| topic::matches(f, &topic))
        {
            self.on_question(&topic, &payload);
            return;
        }
        // Echo guard: our own publications never come back in as readings.
        if topic.starts_with(&self.prefix) && topic[self.prefix.len()..].starts_with('/') {
            return;
        }
        let max = (self.parts.settings.mqtt.max_payload_kb as usize) * 1024;
        for i in 0..self.parts.subscriptions.len() {
            let sub = &self.parts.subscriptions[i];
            if !sub.filters.iter().any(|f| topic::matches(f, &topic)) {
                continue;
            }
            match payload::parse_inbound(&topic, &payload, sub.pointer.as_deref(), max) {
                Ok(readings) => {
                    let unit = sub.unit.clone();
                    let tx = sub.tx.clone();
                    for r in readings {
                        self.forward(r, unit.as_deref(), &tx);
                    }
                }
                Err(e) => {
                    if matches!(e, payload::PayloadError::TooLarge { .. }) {
                        self.stats.too_large.fetch_add(1, Ordering::Relaxed);
                    }
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut m) = self.stats.malformed_by_topic.lock()
                        && (m.len() < MAX_TRACKED_TOPICS || m.contains_key(&topic))
                    {
                        *m.entry(topic.clone()).or_insert(0) += 1;
                    }
                    log::debug!("mqtt: skipped a malformed payload on {topic}: {e}");
                }
            }
        }
    }

    fn forward(&self, r: Inbound, unit: Option<&str>, tx: &async_channel::Sender<Item>) {
        let unit = if r.unit.is_empty() {
            unit.unwrap_or("")
        } else {
            &r.unit
        };
        let info = self.parts.registry.intern(&r.name, unit, r.value.kind());
        let ts = r.ts.unwrap_or_else(now_us);
        info.live.record(ts, r.value);
        self.stats.readings_in.fetch_add(1, Ordering::Relaxed);
        let reading = Reading::new(info.id, ts, r.value);
        if let Ok(Some(Item::Reading(old))) = tx.force_send(Item::Reading(reading)) {
            self.parts.registry.count_drop(old.source);
        }
    }

    /// A message on an ask topic: unless the loop guard or the rate limit says no, a
    /// question for the agent. Payload: plain text, or JSON with `question` (or `text`,
    /// `message`, `query`) and optional `id` and `reply_to`.
    #[cfg(feature = "agent")]
    fn on_question(&mut self, topic: &str, payload: &[u8]) {
        let own = self.own.contains(&message_hash(topic, payload));
        if own || loop_guarded(topic) {
            self.stats.questions_ignored.fetch_add(1, Ordering::Relaxed);
            log::debug!("mqtt: ignored a message on {topic} (own message or loop-guarded topic)");
            return;
        }
        let now = now_us();
        let limit = self.parts.settings.agent.rate_per_minute;
        let slot = self.rate.entry(topic.to_string()).or_insert((now, 0));
        if now - slot.0 >= 60_000_000 {
            *slot = (now, 0);
        }
        if slot.1 >= limit {
            self.stats
                .questions_rate_limited
                .fetch_add(1, Ordering::Relaxed);
            log::warn!("mqtt: more than {limit} questions a minute on {topic}; ignoring this one");
            return;
        }
        slot.1 += 1;
        if self.rate.len() > MAX_TRACKED_TOPICS {
            self.rate.retain(|_, (start, _)| now - *start < 60_000_000);
        }
        let text = String::from_utf8_lossy(payload).trim().to_string();
        let json: Option<Json> = serde_json::from_str(&text).ok();
        let field = |k: &str| {
            json.as_ref()
                .and_then(|j| j.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let question = ["question", "text", "message", "query"]
            .iter()
            .find_map(|k| field(k))
            .unwrap_or_else(|| text.clone());
        if question.is_empty() {
            self.stats.questions_ignored.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.ask_seq += 1;
        let id = field("id").unwrap_or_else(|| {
            format!(
                "{}-{}-{}",
                self.parts.settings.node.name,
                now / 1000,
                self.ask_seq
            )
        });
        let reply_to =
            field("reply_to").filter(|t| topic::validate_topic(t, topic::MAX_TOPIC_LEN).is_ok());
        let q = Question {
            id,
            text: question,
            topic: topic.to_string(),
            reply_to,
            received: now,
        };
        if let Some(tx) = &self.parts.questions {
            if tx.try_send(q).is_ok() {
                self.stats.questions.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats
                    .questions_rate_limited
                    .fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "mqtt: the agent is busy (64 questions waiting); ignored one on {topic}"
                );
            }
        }
    }

    fn on_gpio_command(&mut self, rest: &str, payload: &[u8]) {
        let Some(pin) = rest.strip_suffix("/set").and_then(|p| p.parse::<u8>().ok()) else {
            return;
        };
        let Some(cfg) = self
            .parts
            .settings
            .gpio
            .pins
            .iter()
            .find(|p| p.pin == pin && p.mode == crate::config::settings::PinMode::Output)
        else {
            log::warn!("mqtt: ignored a command for pin {pin}: not a configured output");
            return;
        };
        let Some(level) = super::discovery::parse_command(payload) else {
            log::warn!("mqtt: ignored a command for pin {pin}: payload is not ON or OFF");
            return;
        };
        match self.parts.gpio.write(pin, level) {
            Ok(()) => log::info!(
                "mqtt: pin {pin} ({}) set {} by a command on {}gpio/{pin}/set",
                cfg.name,
                if level { "high" } else { "low" },
                self.prefix
            ),
            Err(e) => log::error!("mqtt: pin {pin}: {e}"),
        }
    }

    fn remember(&self, topic: &str, payload: &[u8]) {
        let keep = self.parts.settings.mqtt.recent_per_topic;
        if keep == 0 {
            return;
        }
        if let Ok(mut r) = self.recent.lock() {
            if r.by_topic.len() >= MAX_TRACKED_TOPICS && !r.by_topic.contains_key(topic) {
                return;
            }
            let q = r.by_topic.entry(topic.to_string()).or_default();
            if q.len() >= keep {
                q.pop_front();
            }
            q.push_back((now_us(), String::from_utf8_lossy(payload).into_owned()));
        }
    }

    /// Clean shutdown: `offline` on the status topic, then disconnect.
    fn finish(&mut self) {
        self.store_pending();
        self.remove_acked();
        if self.connected {
            let status = self.status_topic.clone();
            let _ = self
                .client
                .try_publish(status, QoS::AtLeastOnce, true, b"offline".to_vec());
            let _ = self.client.try_disconnect();
            // Give rumqttc a moment to write both packets.
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stats.state.store(STATE_STOPPED, Ordering::Relaxed);
    }
}
