//! Sync's turns: publish this node's new entries on `<state prefix>/sync` (QoS 1,
//! through the outbox), ask every known node for what it missed every
//! `catchup_interval`, sync the HTTP peers when due, and trim the log. Between turns it
//! sleeps until something is due or the store rings (an own entry committed): an idle
//! node does not wake every `publish_interval`.
//!
//! Where the turns run: with a broker and no HTTP peers, on the `mqtt` worker's thread
//! beside it ([`Started::OnMqtt`]: what they do there is LMDB reads, an hourly-bounded
//! trim and handing messages to the outbox, which is that thread's work anyway), so sync
//! costs no thread; with HTTP peers (whose rounds block on the network, with retries) or
//! without a broker, on a `sync` thread of its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use super::client::Client;
use super::mqtt::MqttSync;
use super::stats::{STATS, SyncStats};
use crate::clock::now_us;
use crate::config::settings::Settings;
use crate::graph::Micros;
use crate::messages::{Publish, PublishTx};
use crate::store::Store;

/// How often the log is trimmed.
const TRIM_EVERY: Micros = 60_000_000;
/// Entries looked at per trim.
const TRIM_SCAN: usize = 10_000;
/// Broadcast batches per turn, at most (a backlog drains over a few turns).
const PUBLISH_ROUNDS: usize = 10;

/// A periodic turn's schedule that follows a step of the wall clock: due `every` after
/// the last run, a last run in the future (the clock stepped back since) counted as now.
/// So a backward step never holds a turn back for its length (as the sources' and the
/// observation loop's schedules), and a forward one brings it at once, never in a storm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Every {
    last: Micros,
    every: Micros,
}

impl Every {
    /// First due `every` after `last` (`Micros::MIN`: at once).
    pub(super) fn new(last: Micros, every: Micros) -> Every {
        Every {
            last,
            every: every.max(0),
        }
    }

    /// The next due time; a last run in the future is moved to `now` for good (counted
    /// as now only for this call, the turn would stay one interval ahead of a clock
    /// that went back).
    pub(super) fn due(&mut self, now: Micros) -> Micros {
        self.last = self.last.min(now);
        self.last.saturating_add(self.every)
    }

    pub(super) fn is_due(&mut self, now: Micros) -> bool {
        now >= self.due(now)
    }

    /// The turn ran at `now`; the next is `every` later.
    pub(super) fn ran(&mut self, now: Micros, every: Micros) {
        self.last = now;
        self.every = every.max(0);
    }
}

/// Sync's turns as a task, for a thread that already runs one (the MQTT worker's).
pub type Turns = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where sync runs; [`Started::stop`] ends it.
pub enum Started {
    /// On the `sync` thread.
    Thread(SyncHandle),
    /// As a task for the `mqtt` worker's thread: it ends when that thread stops.
    OnMqtt(Turns),
}

/// The `sync` thread; `stop` ends it.
pub struct SyncHandle {
    doorbell: async_channel::Sender<Ring>,
    stopping: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why the turns wake before their next due time.
enum Ring {
    /// A transaction that appended own entries committed: publish them.
    Appended,
    Stop,
}

impl SyncHandle {
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.doorbell.try_send(Ring::Stop);
        self.doorbell.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the turns need.
pub struct SyncParts {
    pub store: Arc<Store>,
    pub settings: Settings,
    /// The MQTT edge's publish channel and the MQTT side of sync, when a broker is set.
    pub mqtt: Option<(PublishTx, Arc<MqttSync>)>,
}

/// Set sync's turns up: on the MQTT worker when there is a broker and no HTTP peer, on a
/// thread of its own otherwise (None if it could not be spawned).
pub fn start(parts: SyncParts) -> Option<Started> {
    // Room for a ring and the stop: a full doorbell already means "look".
    let (tx, rx) = async_channel::bounded::<Ring>(2);
    let ring = tx.clone();
    parts.store.set_sync_wake(Box::new(move || {
        let _ = ring.try_send(Ring::Appended);
    }));
    let stopping = Arc::new(AtomicBool::new(false));
    if parts.mqtt.is_some() && parts.settings.sync.peers.is_empty() {
        return Some(Started::OnMqtt(Box::pin(run(parts, rx, stopping))));
    }
    let st = stopping.clone();
    let thread = std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || smol::block_on(run(parts, rx, st)))
        .ok()?;
    Some(Started::Thread(SyncHandle {
        doorbell: tx,
        stopping,
        thread: Some(thread),
    }))
}

async fn run(parts: SyncParts, rx: async_channel::Receiver<Ring>, stopping: Arc<AtomicBool>) {
    let s = &parts.settings.sync;
    let node = parts.settings.node.name.clone();
    let mut client =
        (!s.peers.is_empty()).then(|| Client::new(parts.store.clone(), &node, s, stopping));
    // What this node knew before sync was on (or before this version) is shared too.
    match parts.store.memory().log_unlogged(500) {
        Ok(0) => {}
        Ok(n) => log::info!("sync: logged {n} observations and memories stored before sync was on"),
        Err(e) => log::warn!("sync: cannot log the items stored before sync was on: {e}"),
    }
    let mut catchup = Every::new(now_us(), s.catchup_interval);
    let mut trimmed = Every::new(Micros::MIN, TRIM_EVERY);
    let mut next_peer: Option<Micros> = None;
    // Publish at start: entries committed while the node was down, or logged just now.
    let mut publish = true;
    loop {
        let now = now_us();
        // A batch that did not fit one round is continued after publish_interval.
        let mut more = false;
        if let Some((tx, peer)) = &parts.mqtt {
            if publish {
                more = publish_own(
                    &parts.store,
                    &node,
                    &peer.topic,
                    s.batch as usize,
                    peer.max_bytes,
                    tx,
                )
                .await;
            }
            if catchup.is_due(now) {
                for p in peer.requests() {
                    let _ = tx.send(p).await;
                }
                catchup.ran(now, s.catchup_interval);
            }
        }
        // Each peer's schedule is asked anew (a cached due time would wait out a
        // backward step); peers not due are skipped at once.
        if let Some(c) = client.as_mut() {
            next_peer = c.run_due(now);
        }
        if trimmed.is_due(now) {
            trim(&parts.store, &node, &parts.settings);
            trimmed.ran(now, TRIM_EVERY);
        }
        let mut due = trimmed.due(now);
        if parts.mqtt.is_some() {
            due = due.min(catchup.due(now));
        }
        if let Some(t) = next_peer {
            due = due.min(t);
        }
        if more {
            due = due.min(now_us() + s.publish_interval.max(1000));
        }
        let wait = Duration::from_micros((due - now_us()).max(0) as u64);
        publish = more;
        let rung = smol::future::or(async { Some(rx.recv().await) }, async {
            smol::Timer::after(wait).await;
            None
        })
        .await;
        match rung {
            Some(Ok(Ring::Appended)) => publish = true,
            None => {}
            Some(Ok(Ring::Stop) | Err(_)) => return,
        }
    }
}

/// Own entries not yet broadcast, in batches carrying `prev` (the last one before).
/// True when more are left after this round's batches.
async fn publish_own(
    store: &Store,
    node: &str,
    topic: &str,
    batch: usize,
    max_bytes: usize,
    tx: &PublishTx,
) -> bool {
    for _ in 0..PUBLISH_ROUNDS {
        let prev = store.sync_cursor("published").unwrap_or(0);
        let entries = match store.sync_since(prev, batch, Some(node)) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("sync: cannot read the log: {e}");
                return true;
            }
        };
        let list = super::mqtt::fitting(&entries, max_bytes);
        let Some(last) = entries
            .get(list.len().wrapping_sub(1))
            .map(|e| e.lamport_ts)
        else {
            return false;
        };
        let body = json!({ "node_id": node, "prev": prev, "entries": list });
        let msg = Publish {
            topic: topic.to_string(),
            payload: body.to_string().into_bytes(),
            qos: 1,
            retain: false,
        };
        if tx.send(msg).await.is_err() {
            return false;
        }
        SyncStats::add(&STATS.published, list.len() as u64);
        let _ = store.sync_raise_cursor("published", last);
        // Cut by bytes: the rest goes in the next message.
        if list.len() == entries.len() && entries.len() < batch {
            return false;
        }
    }
    true
}

/// Retention: own entries stay until every known peer acknowledged them and `retention`
/// passed; others' once `retention` passed; everything oldest first past `max_log_mb`.
pub fn trim(store: &Store, node: &str, settings: &Settings) {
    let s = &settings.sync;
    let acked = store.sync_cursors("acked:").unwrap_or_default();
    let mut peers: Vec<String> = store
        .sync_cursors("seen:")
        .unwrap_or_default()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    peers.extend(s.peers.iter().cloned());
    let floor = peers
        .iter()
        .map(|p| acked.iter().find(|(a, _)| a == p).map_or(0, |(_, v)| *v))
        .min()
        .unwrap_or(u64::MAX);
    let kept = |n: &str, lamport: u64| n == node && lamport > floor;
    match store.sync_trim(now_us() - s.retention, s.max_log_mb << 20, &kept, TRIM_SCAN) {
        Ok((age, size)) => {
            SyncStats::add(&STATS.trimmed_age, age);
            SyncStats::add(&STATS.trimmed_size, size);
            if size > 0 {
                log::warn!(
                    "sync: the log is over max_log_mb ({}): deleted the {size} oldest entries",
                    s.max_log_mb
                );
            }
        }
        Err(e) => log::warn!("sync: cannot trim the log: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;
    const HOUR: Micros = 3600 * S;

    #[test]
    fn a_turn_stays_due_every_interval_through_a_backward_step() {
        let t0 = 1_800_000_000 * S;
        let mut e = Every::new(t0, 60 * S);
        assert!(!e.is_due(t0 + 59 * S));
        assert!(e.is_due(t0 + 60 * S));
        e.ran(t0 + 60 * S, 60 * S);
        // The clock goes back an hour 10 s later: the next turn is one interval from now,
        // not an hour and 50 s away.
        let back = t0 + 70 * S - HOUR;
        assert_eq!(e.due(back), back + 60 * S);
        assert!(!e.is_due(back + 59 * S));
        assert!(e.is_due(back + 60 * S));
        // Forward a day: due at once, then every interval again (no storm).
        let fwd = t0 + 24 * HOUR;
        assert!(e.is_due(fwd));
        e.ran(fwd, 60 * S);
        assert!(!e.is_due(fwd + 30 * S));
    }

    #[test]
    fn a_first_turn_from_min_is_due_at_once() {
        let mut e = Every::new(Micros::MIN, TRIM_EVERY);
        assert!(e.is_due(0));
        assert!(e.is_due(1_800_000_000 * S));
    }
}
