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
//!
//! Retained states ([`Keep::Newest`]) skip the outbox: the newest per topic waits in
//! memory until its PUBACK, a newer one replacing it, and all of them go again after a
//! reconnect (`latest.rs`). An idle node's state messages then cost no commit and fsync.
//!
//! The protocol is MQTT 5, for one property: the Maximum Packet Size in CONNECT
//! ([`max_packet_size`]). The broker must not send this client a larger packet, so a big
//! (retained) message on a subscribed topic cannot break the connection: in MQTT 3.1.1 a
//! client cannot refuse one, and rumqttc's reader could only drop the connection, which
//! the retained message then broke again on every reconnect. Messages between
//! `max_payload_kb` and the declared size arrive and are counted as too large per topic.
//!
//! A clean stop publishes `offline`, waits (at most [`STOP_WAIT`]) for the PUBACKs of
//! what was handed over last, and sends DISCONNECT, so the broker discards the last will.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, LastWill, Packet, PubAckReason};
use rumqttc::v5::{Client, Connection, Event, MqttOptions, Request};

use super::give_back::GiveBack;
use super::latest::{Latest, Put};
use super::payload::{self, Inbound};
use super::remote::{self, Limits, RemoteTally};
use super::topic;
use super::waiting::Waiting;
use crate::clock::now_us;
use crate::config::settings::Settings;
use crate::edges::gpio::GpioBackend;
use crate::graph::registry::Registry;
use crate::graph::{Item, Micros, Reading};
use crate::messages::{
    Arrival, EventHub, EventKind, Keep, MAX_TRACKED_TOPICS, Publish, PublishRx, PublishTx,
    QuestionIntake, Queued, Recent, Subscription, SyncPeer, topic_key,
};
use crate::store::Store;
use crate::store::outbox::OutboxLimits;

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
    /// QoS 1 messages dropped from memory while the store refused outbox writes (past
    /// `PENDING_MAX` or `outbox_max_mb`).
    pub outbox_dropped_in_memory: AtomicU64,
    /// Retained states held in memory (the newest per topic, until acknowledged).
    pub states_waiting: AtomicU64,
    /// States replaced by a newer one on their topic before the broker acknowledged them.
    pub states_replaced: AtomicU64,
    /// States for a new topic refused past `outbox_max_messages` topics or `outbox_max_mb`.
    pub states_refused: AtomicU64,
    pub readings_in: AtomicU64,
    /// Times the worker waited for the graph before taking the next message (every
    /// batch buffer of a source was still in the graph): backpressure, the broker and the
    /// socket holding what comes, where there used to be drops.
    pub held_back: AtomicU64,
    /// Payload bytes the recent messages for the agent hold now (`[mqtt] recent_max_kb`).
    pub recent_bytes: AtomicU64,
    pub malformed: AtomicU64,
    /// Inbound messages over `max_payload_kb` (also counted in `malformed` and per topic).
    pub too_large: AtomicU64,
    /// Batch items whose value was null, missing, an object or an array.
    pub malformed_items: AtomicU64,
    /// Remote readings whose timestamp was implausible and replaced by the arrival time.
    pub ts_replaced: AtomicU64,
    /// Outgoing messages refused: over `max_payload_kb` or the broker's maximum packet
    /// size, or an invalid topic.
    pub refused_out: AtomicU64,
    /// QoS 1 messages the broker acknowledged with an error (e.g. not authorised); they
    /// leave the outbox, since sending them again would fail again.
    pub refused_by_broker: AtomicU64,
    /// Seconds from a QoS 1 message leaving the client to its PUBACK.
    pub ack_latency: crate::graph::histogram::Histogram,
    pub last_error: Mutex<Option<String>>,
    /// Malformed payloads (and batch items) per topic (bounded to `MAX_TRACKED_TOPICS`
    /// topics, keys cut to `MAX_TOPIC_KEY` bytes).
    pub malformed_by_topic: Mutex<HashMap<String, u64>>,
    /// Sources learned from other nodes: per node, and what the limits refused.
    pub remote: Mutex<RemoteTally>,
    /// Payload bytes received and waiting for the worker (bounded, see `io_loop`).
    inbound_waiting: AtomicU64,
    /// Outbox messages the broker acknowledged that are still stored (they leave with
    /// the next write, see [`ACK_BATCH`]): status does not count them as waiting.
    pub outbox_acked: AtomicU64,
    /// The queue from the sinks, tools and sync to the worker (`[mqtt] publish_queue_kb`).
    pub publish_queue: Arc<crate::messages::PublishQueueStats>,
    /// Bytes handed to rumqttc and not yet written (QoS 0) or acknowledged (QoS 1)...
    pub client_bytes: AtomicU64,
    /// ...their bound (`[mqtt] client_queue_kb`)...
    pub client_max_bytes: AtomicU64,
    /// ...and the times a message waited for room under it.
    pub client_full: AtomicU64,
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

/// How long a clean stop waits for the last PUBACKs, at most...
pub const STOP_WAIT: Duration = Duration::from_secs(1);
/// ...and for the broker to close the connection after DISCONNECT.
const IO_STOP_WAIT: Duration = Duration::from_millis(500);
/// Packet size of a PUBLISH beyond its topic and payload, at most: fixed header (5),
/// topic length (2), packet id (2), property length (1).
const PUBLISH_OVERHEAD: usize = 10;

/// The Maximum Packet Size this client declares in CONNECT (and the largest packet its
/// reader accepts): four times `max_payload_kb`, at most 1 MiB more than it, within
/// MQTT's limit. Messages up to it arrive and are counted when over `max_payload_kb`;
/// the broker drops larger ones for this client (MQTT 5, 3.1.2.11.4).
pub fn max_packet_size(max_payload_kb: u64) -> u32 {
    const MQTT_MAX: u64 = 268_435_455;
    let payload = max_payload_kb * 1024;
    (payload * 4).min(payload + (1 << 20)).min(MQTT_MAX) as u32
}

/// Acknowledged messages waiting to leave the outbox, at most: they go with the next
/// push's write transaction (one commit and fsync where two were), on a reconnect and
/// on a clean stop, or in a transaction of their own once this many wait. A crash before
/// then sends them once more (QoS 1 allows a duplicate); status counts them as sent.
const ACK_BATCH: usize = 512;
/// How long the worker waits after the first QoS 1 message of a wake-up for the ones sent
/// right after it, before their outbox write (a fraction of the fsync it saves).
const OUTBOX_LINGER: Duration = Duration::from_micros(500);
/// QoS 0 messages waiting for room in rumqttc's request queue; beyond it (or beyond
/// `outbox_max_mb` of them) the oldest is dropped (the newest value matters most).
const QOS0_QUEUE: usize = 1024;
/// QoS 1 messages held in memory while the store refuses outbox writes, at most (and at
/// most `outbox_max_mb` of them); the oldest go first, counted as outbox drops.
const PENDING_MAX: usize = 10_000;

/// What app holds of the running edge: a sender for more publishers, the counters, the
/// broker's address, and the stop.
pub struct MqttHandle {
    pub publish: PublishTx,
    pub stats: Arc<MqttStats>,
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
    /// CONNACK: session present, the broker's maximum packet size.
    Connected(bool, Option<u32>),
    Sent(u16),
    /// PUBACK: packet id, whether the broker accepted the message.
    Acked(u16, bool),
    Message(String, Vec<u8>),
    /// The connection ended; rumqttc had not yet taken this many of the publishes handed
    /// to it (they are gone: see `io_loop`).
    Disconnected(String, usize),
    /// DISCONNECT was written (a clean stop).
    DisconnectSent,
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
    /// Where messages on ask topics go (the agent's intake); `None` when the agent is off,
    /// and then this edge does not subscribe to ask topics.
    pub questions: Option<Arc<dyn QuestionIntake>>,
    /// The last messages per topic, shared with the agent's tools.
    pub recent: Arc<Mutex<Recent>>,
    /// The replicated log's topics (`None`: sync off).
    pub sync: Option<Arc<dyn SyncPeer>>,
    /// The live events (`/api/events`): connected and disconnected go there. `None`
    /// without HTTP.
    pub events: Option<Arc<EventHub>>,
    /// The node directory: learns other nodes from their status, readings and sync
    /// topics (`None`: nobody reads it, e.g. in benches).
    pub nodes: Option<Arc<crate::nodes::NodeDirectory>>,
    /// A task that runs on the worker's thread beside it until the worker stops (sync's
    /// turns, which then need no thread of their own). It must not block for long.
    pub beside: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

/// Messages that may wait between the sinks and the worker.
pub const PUBLISH_QUEUE: usize = 1024;

/// Connect (in the background) and start the threads. `None` when MQTT is off.
/// `publish` is the channel the mqtt sinks send into; the handle keeps a sender for
/// later publishers (the agent's `publish` tool).
pub fn start(parts: Parts, publish: (PublishTx, PublishRx)) -> Option<MqttHandle> {
    let m = parts.settings.mqtt.clone();
    let broker = m.broker.clone()?;
    let prefix = parts.settings.mqtt_prefix();
    let state_prefix = parts.settings.mqtt_state_prefix();
    let status_topic = format!("{state_prefix}/status");
    let mut opts = MqttOptions::new(parts.settings.mqtt_client_id(), broker.clone(), m.port);
    opts.set_keep_alive(Duration::from_micros(m.keepalive as u64))
        .set_clean_start(m.clean_session)
        // rumqttc keeps a slot per packet id up to this limit (65,535 by default).
        .set_outgoing_inflight_upper_limit(m.inflight)
        // Also rumqttc's incoming limit: the broker keeps larger packets from us.
        .set_max_packet_size(Some(max_packet_size(m.max_payload_kb)))
        .set_last_will(LastWill::new(
            &status_topic,
            "offline",
            QoS::AtLeastOnce,
            true,
            None,
        ));
    if !m.clean_session {
        // MQTT 5 ends a session on disconnect unless it has an expiry interval; a kept
        // session (3.1.1's clean_session = false) is one that never expires.
        opts.set_session_expiry_interval(Some(u32::MAX));
    }
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
    // rumqttc writes and flushes each packet on its own; with Nagle's algorithm on, small
    // packets wait for the peer's delayed ACK and throughput collapses (measured: ~100
    // messages/s on loopback). Readings are small packets: send them at once.
    let mut net = opts.network_options();
    net.set_tcp_nodelay(true);
    opts.set_network_options(net);
    let (client, connection) = Client::new(opts, 2 * m.inflight as usize + 64);
    let (pub_tx, pub_rx) = publish;
    let stats = Arc::new(MqttStats {
        remote: Mutex::new(RemoteTally::seed(&parts.registry)),
        publish_queue: pub_rx.stats(),
        client_max_bytes: AtomicU64::new(m.client_queue_kb << 10),
        ..MqttStats::default()
    });
    let recent = parts.recent.clone();
    let (ev_tx, ev_rx) = async_channel::bounded::<Ev>(1024);
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let io_stop = Arc::new(AtomicBool::new(false));

    let io = {
        let stats = stats.clone();
        let io_stop = io_stop.clone();
        let backoff = (m.reconnect_min, m.reconnect_max);
        std::thread::Builder::new()
            .name("mqtt-io".into())
            .spawn(move || {
                let budget = max_packet_size(m.max_payload_kb) as u64;
                io_loop(connection, ev_tx, stats, io_stop, backoff, budget)
            })
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
                let mut parts = parts;
                let beside = parts.beside.take();
                let mut w = Worker::new(
                    parts,
                    client,
                    stats,
                    recent,
                    (prefix, state_prefix),
                    status_topic,
                );
                smol::block_on(async {
                    let run = w.run(pub_rx, &ev_rx, stop_rx);
                    match beside {
                        // Until the worker stops; the task is dropped with it.
                        Some(task) => {
                            smol::future::or(run, async {
                                task.await;
                                std::future::pending().await
                            })
                            .await
                        }
                        None => run.await,
                    }
                });
                smol::block_on(w.finish(&ev_rx, &io_stop));
                io_stop.store(true, Ordering::Relaxed);
                drop(w);
                // mqtt-io returns on the connection error that follows DISCONNECT (the
                // broker closes the socket). rumqttc's event loop holds a sender of its
                // own request channel, so dropping the client does not end it; if the
                // broker never closes (a dead link), leave the thread to the process exit
                // rather than wait for the keepalive.
                let deadline = std::time::Instant::now() + IO_STOP_WAIT;
                while !io.is_finished() && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if io.is_finished() {
                    let _ = io.join();
                } else {
                    log::warn!("mqtt: the connection did not close in time; exiting without it");
                }
            })
            .ok()?
    };
    Some(MqttHandle {
        publish: pub_tx,
        stats,
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
    waiting_budget: u64,
) {
    let mut backoff = min;
    let mut seed = (now_us() as u64) | 1;
    loop {
        let event = match connection.recv() {
            Ok(e) => e,
            Err(_) => return, // rumqttc ended its request stream
        };
        let forward = match event {
            Ok(Event::Incoming(Packet::ConnAck(c))) => {
                backoff = min;
                let max = c.properties.as_ref().and_then(|p| p.max_packet_size);
                log::debug!(
                    "mqtt: CONNACK: session present {}, broker's maximum packet size {max:?}, receive maximum {:?}",
                    c.session_present,
                    c.properties.as_ref().and_then(|p| p.receive_max)
                );
                Some(Ev::Connected(c.session_present, max))
            }
            Ok(Event::Incoming(Packet::PubAck(a))) => {
                let ok = matches!(
                    a.reason,
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                );
                Some(Ev::Acked(a.pkid, ok))
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // The event channel holds up to 1024 messages, each up to the declared
                // packet size: also bound the bytes waiting, so a burst of big messages
                // while the worker is busy (an fsync) waits in the socket (the broker
                // holds the rest) rather than in memory.
                let len = p.payload.len() as u64;
                while stats.inbound_waiting.load(Ordering::Relaxed) > 0
                    && stats.inbound_waiting.load(Ordering::Relaxed) + len > waiting_budget
                    && !stop.load(Ordering::Relaxed)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                stats.inbound_waiting.fetch_add(len, Ordering::Relaxed);
                Some(Ev::Message(
                    String::from_utf8_lossy(&p.topic).into_owned(),
                    p.payload.to_vec(),
                ))
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Some(Ev::Sent(pkid)),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => Some(Ev::DisconnectSent),
            Ok(_) => None,
            Err(e) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // rumqttc would replay what it had not written or had not got acknowledged
                // when the broker resumes a kept session (`clean_session = false`); the
                // worker sends all of it again from the outbox, in order, and ties packet
                // ids to outbox entries by the order of `Outgoing::Publish`, which replays
                // would upset. Status, discovery and subscriptions are redone on connect.
                // rumqttc moved the requests it had not taken yet into `pending` (after
                // the sent but unacknowledged ones, which have a packet id by now).
                let untaken = connection
                    .eventloop
                    .pending
                    .iter()
                    .filter(|r| matches!(r, Request::Publish(p) if p.pkid == 0))
                    .count();
                connection.eventloop.pending.clear();
                let _ = ev.send_blocking(Ev::Disconnected(e.to_string(), untaken));
                // rumqttc would reconnect at once on the next recv: wait first, with
                // jitter so a fleet of nodes does not reconnect in lockstep.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let jitter = (seed % 1000) as f64 / 1000.0; // 0..1
                let wait = (backoff as f64 * (0.5 + jitter * 0.5)) as u64;
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
    /// Where status, state and GPIO commands live (`[mqtt] state_prefix`, else `prefix`).
    state_prefix: String,
    status_topic: String,
    command_prefix: String,
    limits: OutboxLimits,
    connected: bool,
    ever_connected: bool,
    /// Next outbox sequence to hand to the client on this connection.
    next_to_send: u64,
    /// Highest sequence ever handed over (to count re-sends after a reconnect).
    highest_sent: Option<u64>,
    /// Publishes handed to rumqttc and not yet written, in order (rumqttc reports each as
    /// it writes it, in that order: `Ev::Sent`).
    handed: VecDeque<Handed>,
    /// Of them, QoS 1 (they take a place in the `inflight` window).
    handed_qos1: usize,
    /// Packet id -> outbox sequence, when it was sent and its bytes, waiting for PUBACK.
    inflight: HashMap<u16, (u64, std::time::Instant, usize)>,
    /// Packet ids (and bytes) of direct publishes (status, discovery) waiting for PUBACK.
    direct_inflight: Vec<(u16, usize)>,
    /// Bytes in `handed`, `inflight` and `direct_inflight`: what rumqttc holds of ours,
    /// kept within `client_max` (but one message alone).
    client_bytes: usize,
    client_max: usize,
    /// QoS 0 drops not yet in a warn line, and when the last line was (at most one a
    /// minute, the first at once).
    qos0_report: (u64, Micros),
    /// The broker's Maximum Packet Size (CONNACK), if it has one.
    broker_max_packet: Option<u32>,
    remote_limits: Limits,
    /// QoS 1 messages for the outbox's next write (more only while the store refuses
    /// writes), bounded like the outbox.
    pending: Waiting,
    /// Retained states, the newest per topic, until acknowledged (bounded like the outbox).
    latest: Latest,
    /// Packet id -> topic, generation and bytes of a state waiting for its PUBACK.
    latest_inflight: Vec<(u16, String, u64, usize)>,
    acked: Vec<u64>,
    /// QoS 0 messages waiting for room in rumqttc's request queue (`QOS0_QUEUE`, and the
    /// outbox's bytes).
    qos0: Waiting,
    qos0_blocked: bool,
    /// Hashes of (topic, payload) this node published lately: a message that comes back
    /// on an ask topic is our own and never starts the agent.
    own: VecDeque<u64>,
    /// One empty batch buffer per subscription (by index), from its source's pool. The
    /// worker takes a message only while it holds one for every subscription: a graph
    /// that is behind holds it back (see `messages::Subscription`).
    spares: Vec<Option<Vec<Item>>>,
    /// When a burst of inbound bytes is over, give the memory it took back.
    give_back: GiveBack,
    /// A burst began: arm the give-back timer.
    give_back_due: bool,
}

/// A publish handed to rumqttc: its outbox sequence (`None`: QoS 0, direct or a state),
/// a state's topic and generation, its bytes (topic and payload) and whether it waits
/// for a PUBACK.
struct Handed {
    seq: Option<u64>,
    state: Option<(String, u64)>,
    bytes: usize,
    qos1: bool,
}

fn message_hash(topic: &str, payload: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish()
}

impl Worker {
    fn new(
        parts: Parts,
        client: Client,
        stats: Arc<MqttStats>,
        recent: Arc<Mutex<Recent>>,
        (prefix, state_prefix): (String, String),
        status_topic: String,
    ) -> Worker {
        let m = &parts.settings.mqtt;
        let limits = OutboxLimits {
            max_messages: m.outbox_max_messages,
            max_bytes: m.outbox_max_mb << 20,
        };
        let remote_limits = Limits {
            total: m.max_remote_sources,
            per_node: m.max_sources_per_node,
        };
        let spares = parts.subscriptions.iter().map(|_| None).collect();
        let client_max = (m.client_queue_kb << 10) as usize;
        Worker {
            limits,
            spares,
            give_back: GiveBack::new(),
            give_back_due: false,
            command_prefix: format!("{state_prefix}/gpio/"),
            parts,
            client,
            stats,
            recent,
            prefix,
            state_prefix,
            status_topic,
            connected: false,
            ever_connected: false,
            next_to_send: 0,
            highest_sent: None,
            handed: VecDeque::new(),
            handed_qos1: 0,
            inflight: HashMap::new(),
            direct_inflight: Vec::new(),
            client_bytes: 0,
            client_max,
            qos0_report: (0, 0),
            broker_max_packet: None,
            remote_limits,
            pending: Waiting::new(PENDING_MAX, limits.max_bytes as usize),
            latest: Latest::new(limits.max_messages as usize, limits.max_bytes as usize),
            latest_inflight: Vec::new(),
            acked: Vec::new(),
            qos0: Waiting::new(QOS0_QUEUE, limits.max_bytes as usize),
            qos0_blocked: false,
            own: VecDeque::new(),
        }
    }

    async fn run(
        &mut self,
        publish: PublishRx,
        events: &async_channel::Receiver<Ev>,
        stop: async_channel::Receiver<()>,
    ) {
        enum Wake {
            Publish(Queued),
            Event(Ev),
            /// A batch buffer came back from the source of subscription `.0`.
            Spare(usize, Vec<Item>),
            RetryQos0,
            GiveBack,
            Stop,
        }
        let mut give_back = smol::Timer::never();
        loop {
            // Stop taking QoS 0 messages while the client cannot take them: the sinks
            // wait, and their lossy inboxes keep the newest readings.
            let accepting = !self.qos0.full();
            let retry = self.qos0_blocked;
            // While a source has all its buffers in the graph, wait for one back instead
            // of taking events: `mqtt-io` then stops reading the socket once its channel
            // is full. Publishes from the sinks are still taken meanwhile (they go to the
            // outbox), so nothing the graph waits on waits on this.
            let held = self.missing_spare();
            let spare = held.map(|i| (i, self.parts.subscriptions[i].spare.clone()));
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
                                return Wake::RetryQos0;
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
                                    Wake::RetryQos0
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
                            if let Some((i, spare)) = &spare {
                                // Closed: the source has stopped; its readings are
                                // counted as dropped from here on (`hand_over`).
                                return Wake::Spare(*i, spare.recv().await.unwrap_or_default());
                            }
                            match events.recv().await {
                                Ok(e) => Wake::Event(e),
                                Err(_) => Wake::Stop,
                            }
                        },
                        async {
                            (&mut give_back).await;
                            Wake::GiveBack
                        },
                    ),
                ),
            )
            .await;
            match wake {
                Wake::Stop => {
                    // Whatever the sinks sent before they stopped goes to the outbox (and
                    // out, in `finish`).
                    while let Ok(p) = publish.try_recv() {
                        self.queue(p.publish, p.keep);
                    }
                    self.store_pending();
                    return;
                }
                Wake::Publish(p) => {
                    self.queue(p.publish, p.keep);
                    while !self.qos0.full()
                        && let Ok(p) = publish.try_recv()
                    {
                        self.queue(p.publish, p.keep);
                    }
                    if !self.pending.is_empty() {
                        // A sink sends a tick's QoS 1 messages one by one, microseconds
                        // apart: wait for the rest so that they share one outbox commit
                        // (and fsync) instead of the first going alone.
                        std::thread::sleep(OUTBOX_LINGER);
                        while !self.qos0.full()
                            && let Ok(p) = publish.try_recv()
                        {
                            self.queue(p.publish, p.keep);
                        }
                    }
                }
                Wake::Event(e) => {
                    self.on_event(e);
                    while self.missing_spare().is_none()
                        && let Ok(e) = events.try_recv()
                    {
                        self.on_event(e);
                    }
                }
                Wake::GiveBack => match self.give_back.check() {
                    Some(wait) => {
                        give_back.set_after(wait);
                    }
                    None => give_back = smol::Timer::never(),
                },
                Wake::Spare(i, buf) => {
                    self.stats.held_back.fetch_add(1, Ordering::Relaxed);
                    self.spares[i] = Some(buf);
                }
                // QoS 0 messages to retry: `pump` below.
                Wake::RetryQos0 => {}
            }
            if std::mem::take(&mut self.give_back_due) {
                give_back.set_after(super::give_back::QUIET);
            }
            self.store_pending();
            if self.acked.len() >= ACK_BATCH {
                self.remove_acked();
            }
            self.stats
                .outbox_acked
                .store(self.acked.len() as u64, Ordering::Relaxed);
            self.pump();
            self.stats
                .states_waiting
                .store(self.latest.len() as u64, Ordering::Relaxed);
        }
    }

    /// Take back the buffers the sources have returned; the first subscription still
    /// without one, if any.
    fn missing_spare(&mut self) -> Option<usize> {
        let mut missing = None;
        for (i, slot) in self.spares.iter_mut().enumerate() {
            if slot.is_none() {
                *slot = self.parts.subscriptions[i].spare.try_recv().ok();
            }
            if slot.is_none() && missing.is_none() {
                missing = Some(i);
            }
        }
        missing
    }

    /// QoS 0 goes straight out (or is dropped while away); QoS 1 waits for the outbox,
    /// a retained state (QoS 1) in `latest`. A message over `max_payload_kb` or with an
    /// invalid topic is refused and counted.
    fn queue(&mut self, p: Publish, keep: Keep) {
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
                self.dropped_qos0(1, "not connected to the broker");
                return;
            }
            let dropped = self.qos0.push(p);
            self.dropped_qos0(dropped, "more than outbox_max_mb waited for the client");
        } else if keep == Keep::Newest {
            match self.latest.put(p) {
                Put::New => {}
                Put::Replaced => {
                    self.stats.states_replaced.fetch_add(1, Ordering::Relaxed);
                }
                Put::Refused => {
                    self.stats.states_refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else {
            let dropped = self.pending.push(p);
            self.stats
                .outbox_dropped_in_memory
                .fetch_add(dropped, Ordering::Relaxed);
        }
    }

    fn store_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match self.parts.store.outbox_push_removing(
            self.pending.contiguous(),
            &self.acked,
            &self.limits,
        ) {
            Ok((_, dropped)) => {
                self.acked.clear();
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
                // Keep them in memory and try again on the next wake-up (bounded: past
                // `PENDING_MAX` messages or the outbox's bytes the oldest go, counted).
                log::error!("mqtt: cannot write the outbox: {e}");
                self.stats.set_error(format!("outbox: {e}"));
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
        self.stats.outbox_acked.store(0, Ordering::Relaxed);
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
            let bytes = p.topic.len() + p.payload.len();
            if !self.client_has_room(bytes) {
                // Over `client_queue_kb`: the next write or PUBACK (an event) frees room.
                break;
            }
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
            self.handed_over(None, bytes, false);
            self.stats.messages_out.fetch_add(1, Ordering::Relaxed);
        }
        let mut busy = self.handed_qos1 + self.inflight.len() + self.latest_inflight.len();
        while busy < window
            && let Some((p, generation)) = self.latest.next()
        {
            let bytes = p.topic.len() + p.payload.len();
            let (topic, payload, retain) = (p.topic.clone(), p.payload.clone(), p.retain);
            if !self.client_has_room(bytes) {
                return;
            }
            if self
                .client
                .try_publish(topic.clone(), QoS::AtLeastOnce, retain, payload)
                .is_err()
            {
                return; // rumqttc's request queue is full; the next wake-up continues
            }
            self.latest.sent();
            self.handed.push_back(Handed {
                seq: None,
                state: Some((topic, generation)),
                bytes,
                qos1: true,
            });
            self.handed_qos1 += 1;
            self.add_client_bytes(bytes as isize);
            self.stats.messages_out.fetch_add(1, Ordering::Relaxed);
            busy += 1;
        }
        if busy >= window || !self.client_has_room(1) {
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
            if let Some(max) = self.broker_max_packet
                && msg.topic.len() + msg.payload.len() + PUBLISH_OVERHEAD > max as usize
            {
                // rumqttc would refuse to write it and drop the connection, again after
                // every reconnect: it can never go to this broker.
                self.stats.refused_out.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "mqtt: dropped a {} byte message for '{}': over the broker's maximum packet size ({max} bytes)",
                    msg.payload.len(),
                    msg.topic
                );
                self.acked.push(seq);
                self.next_to_send = seq + 1;
                continue;
            }
            let bytes = msg.topic.len() + msg.payload.len();
            if !self.client_has_room(bytes) {
                break; // it stays in the outbox until a PUBACK frees room
            }
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
            self.handed_over(Some(seq), bytes, qos != QoS::AtMostOnce);
            if self.highest_sent.is_some_and(|h| seq <= h) {
                self.stats.republished.fetch_add(1, Ordering::Relaxed);
            }
            self.highest_sent = Some(self.highest_sent.map_or(seq, |h| h.max(seq)));
            self.next_to_send = seq + 1;
            self.stats.messages_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publish outside the outbox (status, discovery): QoS 1, no persistence needed
    /// because they are re-sent on every connect.
    fn publish_direct(&mut self, topic: &str, payload: Vec<u8>, retain: bool) {
        let bytes = topic.len() + payload.len();
        if self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .is_ok()
        {
            self.handed_over(None, bytes, true);
            self.stats.messages_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Room in rumqttc for `bytes` more under `client_queue_kb` (always when it holds
    /// nothing of ours, so one message larger than the bound still goes); counted when not.
    fn client_has_room(&self, bytes: usize) -> bool {
        let room = self.client_bytes == 0 || self.client_bytes + bytes <= self.client_max;
        if !room {
            self.stats.client_full.fetch_add(1, Ordering::Relaxed);
        }
        room
    }

    fn handed_over(&mut self, seq: Option<u64>, bytes: usize, qos1: bool) {
        self.handed.push_back(Handed {
            seq,
            state: None,
            bytes,
            qos1,
        });
        self.handed_qos1 += usize::from(qos1);
        self.add_client_bytes(bytes as isize);
    }

    fn add_client_bytes(&mut self, d: isize) {
        self.client_bytes = self.client_bytes.saturating_add_signed(d);
        self.stats
            .client_bytes
            .store(self.client_bytes as u64, Ordering::Relaxed);
    }

    /// The oldest publish handed over has been written (or is gone with the connection).
    fn pop_handed(&mut self) -> Option<Handed> {
        let h = self.handed.pop_front()?;
        self.handed_qos1 -= usize::from(h.qos1);
        Some(h)
    }

    /// QoS 0 messages dropped (`why`): counted, and a warn line at most once a minute.
    fn dropped_qos0(&mut self, n: u64, why: &str) {
        if n == 0 {
            return;
        }
        self.stats.dropped_qos0.fetch_add(n, Ordering::Relaxed);
        let (unreported, last) = &mut self.qos0_report;
        *unreported += n;
        let now = now_us();
        if *last == 0 || now - *last >= crate::graph::every_minute::EVERY {
            log::warn!(
                "mqtt: dropped {unreported} QoS 0 message(s) ({why}; counted as dropped_qos0)"
            );
            (*unreported, *last) = (0, now);
        }
    }

    /// Tell the live events (the dashboard) that the connection changed state.
    fn edge_event(&self, state: &str, error: Option<&str>) {
        if let Some(hub) = &self.parts.events {
            hub.publish_json(
                EventKind::Edge,
                &serde_json::json!({"edge": "mqtt", "state": state, "error": error}),
            );
        }
    }

    fn on_event(&mut self, e: Ev) {
        match e {
            Ev::Connected(session_present, broker_max_packet) => {
                self.connected = true;
                self.edge_event("connected", None);
                self.broker_max_packet = broker_max_packet;
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
                // What was handed over before and not yet written stays in `handed`:
                // rumqttc writes it on this connection first and reports it.
                self.inflight.clear();
                self.direct_inflight.clear();
                // Everything unacknowledged goes again, oldest first (what was
                // acknowledged leaves first, so it is not sent again).
                self.remove_acked();
                self.next_to_send = 0;
                self.subscribe();
                let status = self.status_topic.clone();
                self.publish_direct(&status, b"online".to_vec(), true);
                self.publish_discovery();
                if let Some(sync) = self.parts.sync.clone() {
                    for p in sync.on_connect() {
                        self.queue(p, Keep::Every);
                    }
                }
            }
            Ev::Sent(pkid) => {
                // pkid 0 is a QoS 0 publish: it takes no place in the queue.
                let Some(h) = self.pop_handed() else {
                    return;
                };
                match (pkid, h.seq, h.state) {
                    (0, _, _) => self.add_client_bytes(-(h.bytes as isize)),
                    (_, Some(seq), _) => {
                        self.inflight
                            .insert(pkid, (seq, std::time::Instant::now(), h.bytes));
                    }
                    (_, None, Some((topic, generation))) => {
                        self.latest_inflight
                            .push((pkid, topic, generation, h.bytes));
                    }
                    (_, None, None) => self.direct_inflight.push((pkid, h.bytes)),
                }
            }
            Ev::Acked(pkid, ok) => {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
                if let Some((seq, sent, bytes)) = self.inflight.remove(&pkid) {
                    self.add_client_bytes(-(bytes as isize));
                    self.stats.ack_latency.observe(sent.elapsed());
                    if !ok {
                        self.stats.refused_by_broker.fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "mqtt: the broker refused a message (outbox #{seq}); not sending it again"
                        );
                    }
                    self.acked.push(seq);
                } else if let Some(i) = self.latest_inflight.iter().position(|p| p.0 == pkid) {
                    let (_, topic, generation, bytes) = self.latest_inflight.swap_remove(i);
                    self.add_client_bytes(-(bytes as isize));
                    if !ok {
                        self.stats.refused_by_broker.fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "mqtt: the broker refused the state on '{topic}'; not sending it again"
                        );
                    }
                    self.latest.acked(&topic, generation);
                } else if let Some(i) = self.direct_inflight.iter().position(|p| p.0 == pkid) {
                    let (_, bytes) = self.direct_inflight.swap_remove(i);
                    self.add_client_bytes(-(bytes as isize));
                }
            }
            Ev::DisconnectSent => {}
            Ev::Message(topic, payload) => {
                let len = payload.len() as u64;
                if self.give_back.message(len) {
                    self.give_back_due = true;
                }
                self.on_message(topic, payload);
                self.stats.inbound_waiting.fetch_sub(len, Ordering::Relaxed);
            }
            Ev::Disconnected(err, untaken) => {
                // A broker that speaks only MQTT 3.1.1 (mosquitto before 1.6) answers an
                // MQTT 5 CONNECT with a 3.1.1 refusal and closes: rumqttc then sees the
                // connection end before a CONNACK it can read.
                let err = if !self.ever_connected && err.contains("closed by peer") {
                    format!(
                        "{err} (right after CONNECT: smollama speaks MQTT 5; a broker older than mosquitto 1.6 refuses it, see its log)"
                    )
                } else {
                    err
                };
                if self.connected || self.stats.last_error().as_deref() != Some(err.as_str()) {
                    log::warn!(
                        "mqtt: connection to the broker lost or refused: {err}; retrying with backoff"
                    );
                }
                if self.connected {
                    self.edge_event("disconnected", Some(&err));
                }
                self.connected = false;
                self.stats
                    .state
                    .store(STATE_DISCONNECTED, Ordering::Relaxed);
                self.stats.set_error(err);
                // rumqttc dropped what it had not taken yet (the oldest `untaken` still
                // handed over; any after them, handed over since, it still holds) and
                // what waited for a PUBACK: the outbox sends those again.
                for _ in 0..untaken {
                    self.pop_handed();
                }
                self.inflight.clear();
                self.direct_inflight.clear();
                // States not acknowledged go again, the newest per topic.
                self.latest_inflight.clear();
                self.latest.resend_all();
                self.client_bytes = 0;
                self.add_client_bytes(self.handed.iter().map(|h| h.bytes).sum::<usize>() as isize);
                let lost = self.qos0.clear();
                self.dropped_qos0(lost as u64, "the broker connection was lost");
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
        if self.parts.questions.is_some() {
            for t in self.parts.settings.ask_topics() {
                if !filters.contains(&t) {
                    filters.push(t);
                }
            }
        }
        if let Some(sync) = &self.parts.sync {
            filters.extend(sync.filters());
        }
        if let Some(nodes) = &self.parts.nodes {
            for f in nodes.mqtt_filters() {
                if !filters.contains(&f) {
                    filters.push(f);
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
            // No Local: the broker does not send this node's own publications back (the
            // echo guards below stay, for brokers that ignore it).
            let mut filter = Filter::new(f.clone(), QoS::AtLeastOnce);
            filter.nolocal = true;
            if let Err(e) = self.client.try_subscribe_many([filter]) {
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

    /// Count a malformed message (or `n` batch items) against its topic.
    fn count_malformed(&self, topic: &str, n: u64) {
        let key = topic_key(topic);
        if let Ok(mut m) = self.stats.malformed_by_topic.lock()
            && (m.len() < MAX_TRACKED_TOPICS || m.contains_key(key))
        {
            *m.entry(key.to_string()).or_insert(0) += n;
        }
    }

    fn on_message(&mut self, topic: String, payload: Vec<u8>) {
        self.stats.messages_in.fetch_add(1, Ordering::Relaxed);
        // Too large for any use: not kept, routed or parsed (whatever the topic).
        let max = (self.parts.settings.mqtt.max_payload_kb as usize) * 1024;
        if payload.len() > max {
            self.stats.too_large.fetch_add(1, Ordering::Relaxed);
            self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            self.count_malformed(&topic, 1);
            log::debug!(
                "mqtt: skipped a {} byte message on {topic}: over max_payload_kb ({max} bytes)",
                payload.len()
            );
            return;
        }
        self.remember(&topic, &payload);
        // Other nodes' status, readings and sync messages tell the directory they exist.
        if let Some(nodes) = &self.parts.nodes {
            nodes.on_mqtt(&topic, &payload, now_us());
        }
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
        if let Some(intake) = &self.parts.questions
            && self
                .parts
                .settings
                .ask_topics()
                .iter()
                .any(|f| topic::matches(f, &topic))
        {
            // The agent's intake decides (loop guard, rate limit); it only needs to know
            // whether this node published the very message itself.
            let own = self.own.contains(&message_hash(&topic, &payload));
            let _ = intake.offer(Arrival::Mqtt { topic: &topic, own }, &payload);
            return;
        }
        // Cheap test first: no allocation for the readings that are most messages.
        if let Some(sync) = self.parts.sync.clone()
            && topic.contains("/sync")
            && sync.filters().iter().any(|f| topic::matches(f, &topic))
        {
            for p in sync.on_message(&topic, &payload) {
                self.queue(p, Keep::Every);
            }
            return;
        }
        // Echo guard: our own publications never come back in as readings.
        let own = |p: &str| topic.starts_with(p) && topic[p.len()..].starts_with('/');
        if own(&self.prefix) || own(&self.state_prefix) {
            return;
        }
        for i in 0..self.parts.subscriptions.len() {
            let sub = &self.parts.subscriptions[i];
            if !sub.filters.iter().any(|f| topic::matches(f, &topic)) {
                continue;
            }
            match payload::parse_inbound(&topic, &payload, sub.pointer.as_deref(), max) {
                Ok(parsed) => {
                    let unit = sub.unit.clone();
                    let now = now_us();
                    // Taken before this message (`run`); missing only while stopping.
                    let mut batch = self.spares[i].take();
                    for r in parsed.readings {
                        if let Some(reading) = self.forward(r, unit.as_deref(), now) {
                            match &mut batch {
                                Some(b) => b.push(Item::Reading(reading)),
                                None => self.parts.registry.count_drop(reading.source),
                            }
                        }
                    }
                    if let Some(b) = batch {
                        self.hand_over(i, b);
                    }
                    if parsed.malformed_items > 0 {
                        let n = u64::from(parsed.malformed_items);
                        self.stats.malformed_items.fetch_add(n, Ordering::Relaxed);
                        self.count_malformed(&topic, n);
                        log::debug!(
                            "mqtt: skipped {n} malformed batch items on {topic} (first: {})",
                            parsed.first_problem.as_deref().unwrap_or("")
                        );
                    }
                }
                Err(e) => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    self.count_malformed(&topic, 1);
                    log::debug!("mqtt: skipped a malformed payload on {topic}: {e}");
                }
            }
        }
    }

    /// A message's readings to subscription `i`'s source. The channel holds the whole
    /// pool, so it is never full; it is closed once the source has stopped, and then the
    /// readings are dropped and counted.
    fn hand_over(&mut self, i: usize, batch: Vec<Item>) {
        if batch.is_empty() {
            self.spares[i] = Some(batch);
            return;
        }
        if let Err(e) = self.parts.subscriptions[i].tx.try_send(batch) {
            let mut batch = e.into_inner();
            for item in batch.drain(..) {
                if let Item::Reading(r) = item {
                    self.parts.registry.count_drop(r.source);
                }
            }
            self.spares[i] = Some(batch);
        }
    }

    /// One remote reading for the graph, if its name is admitted (see `remote`); an
    /// implausible timestamp becomes the arrival time.
    fn forward(&self, r: Inbound, unit: Option<&str>, now: Micros) -> Option<Reading> {
        let unit = if r.unit.is_empty() {
            unit.unwrap_or("")
        } else {
            &r.unit
        };
        let admitted = match self.stats.remote.lock() {
            Ok(mut t) => t.admit(&self.parts.registry, &r, unit, self.remote_limits),
            Err(_) => return None,
        };
        let info = match admitted {
            Ok(info) => info,
            Err(why) => {
                log::debug!("mqtt: refused a reading of '{}': {why:?}", r.name);
                return None;
            }
        };
        let m = &self.parts.settings.mqtt;
        let ts = match r.ts {
            None => now,
            Some(ts) if remote::plausible_ts(ts, now, m.max_reading_age, m.max_clock_ahead) => ts,
            Some(ts) => {
                self.stats.ts_replaced.fetch_add(1, Ordering::Relaxed);
                log::debug!(
                    "mqtt: '{}' came with an implausible time ({} µs since the epoch); using the arrival time",
                    r.name,
                    ts
                );
                now
            }
        };
        info.live.record(ts, r.value);
        self.stats.readings_in.fetch_add(1, Ordering::Relaxed);
        Some(Reading::new(info.id, ts, r.value))
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
        let max = self.parts.settings.mqtt.recent_max_kb << 10;
        if keep > 0
            && let Ok(mut r) = self.recent.lock()
        {
            r.push(topic, now_us(), payload, keep, max);
            self.stats
                .recent_bytes
                .store(r.bytes() as u64, Ordering::Relaxed);
        }
    }

    /// Clean shutdown: what the sinks sent last goes out, `offline` on the status topic,
    /// a bounded wait for their PUBACKs (so the last batch is not sent again on the next
    /// start), then DISCONNECT (so the broker discards the last will).
    async fn finish(&mut self, events: &async_channel::Receiver<Ev>, io_stop: &AtomicBool) {
        self.store_pending();
        if self.connected {
            self.pump();
            let status = self.status_topic.clone();
            self.publish_direct(&status, b"offline".to_vec(), true);
            let deadline = std::time::Instant::now() + STOP_WAIT;
            while self.connected
                && !(self.handed_qos1 == 0
                    && self.inflight.is_empty()
                    && self.latest_inflight.is_empty()
                    && self.direct_inflight.is_empty())
            {
                let Some(e) = recv_until(events, deadline).await else {
                    log::warn!(
                        "mqtt: stopping without acknowledgements for {} messages; they stay in the outbox",
                        self.handed_qos1 + self.inflight.len()
                    );
                    break;
                };
                self.on_event(e);
            }
            self.remove_acked();
            // From here a connection error ends `mqtt-io` instead of reconnecting (a new
            // connection would carry the will again).
            io_stop.store(true, Ordering::Relaxed);
            if self.connected && self.client.try_disconnect().is_ok() {
                // Until rumqttc has written it (or a short while).
                let deadline = std::time::Instant::now() + Duration::from_millis(500);
                while let Some(e) = recv_until(events, deadline).await {
                    if matches!(e, Ev::DisconnectSent | Ev::Disconnected(..)) {
                        break;
                    }
                }
            }
        }
        self.remove_acked();
        self.stats.state.store(STATE_STOPPED, Ordering::Relaxed);
    }
}

/// The next event, or `None` at `deadline` (or when the channel closed).
async fn recv_until(
    events: &async_channel::Receiver<Ev>,
    deadline: std::time::Instant,
) -> Option<Ev> {
    smol::future::or(async { events.recv().await.ok() }, async {
        smol::Timer::at(deadline).await;
        None
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_packet_size_leaves_room_above_the_payload_limit() {
        assert_eq!(max_packet_size(1), 4 * 1024);
        assert_eq!(max_packet_size(256), 1024 * 1024);
        assert_eq!(max_packet_size(1024), 2048 * 1024);
        // MQTT's own limit (256 MiB - 1) caps it.
        assert_eq!(max_packet_size(262_144), 268_435_455);
        for kb in [1, 4, 64, 256, 1024] {
            assert!(u64::from(max_packet_size(kb)) >= 2 * kb * 1024, "{kb}");
        }
    }
}
