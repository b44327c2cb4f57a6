//! The queue from the graph's mqtt sinks, the agent's tools and answers, and sync to the
//! MQTT worker: bounded in messages and in bytes (topic plus payload), so a worker that
//! is behind (a stalled broker connection, a slow fsync) holds at most `max_bytes` of
//! messages here however big they are, where a count alone allowed 1,024 of
//! `max_payload_kb` each.
//!
//! A sender that may wait (a sink: its own inbox is lossy and keeps the newest readings)
//! waits for room; one that must not (a tool, an answer, sync) is refused, counted and
//! logged at warn at most once a minute with the count.
//!
//! Each message says what the worker must keep of it ([`Keep`]): every one (durable QoS 1
//! through the outbox), or only the newest on its topic (a retained state).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_channel::{RecvError, SendError, TryRecvError, TrySendError};

use super::Publish;
use crate::graph::every_minute::EveryMinute;

/// The queue's live numbers, for status.
#[derive(Default)]
pub struct PublishQueueStats {
    /// Bytes (topics and payloads) in the queue now.
    pub bytes: AtomicU64,
    /// The bound on them (`[mqtt] publish_queue_kb`).
    pub max_bytes: AtomicU64,
    /// Messages refused to a sender that must not wait (`try_send`): the queue was full
    /// in messages or bytes, or the worker had stopped.
    pub refused: AtomicU64,
    /// Times a sender that may wait waited for bytes to leave the queue.
    pub waited: AtomicU64,
    refused_report: EveryMinute,
}

struct Shared {
    stats: Arc<PublishQueueStats>,
    max_bytes: u64,
    /// Woken whenever bytes leave the queue.
    room: event_listener::Event,
}

impl Shared {
    /// Take room for `len` bytes, if the queue has it. An empty queue always has room
    /// for one message, so a message larger than the bound is not stuck forever (its
    /// size is `max_payload_kb`'s to refuse).
    fn reserve(&self, len: u64) -> bool {
        let bytes = &self.stats.bytes;
        let mut cur = bytes.load(Ordering::Acquire);
        loop {
            if cur > 0 && cur + len > self.max_bytes {
                return false;
            }
            match bytes.compare_exchange_weak(cur, cur + len, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    fn release(&self, len: u64) {
        self.stats.bytes.fetch_sub(len, Ordering::AcqRel);
        self.room.notify(usize::MAX);
    }
}

/// The wall clock in µs (messages import only the graph, not `crate::clock`).
fn now_us() -> crate::graph::Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as crate::graph::Micros)
}

fn size(p: &Publish) -> u64 {
    (p.topic.len() + p.payload.len()) as u64
}

/// What the worker must keep of a message until the broker has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Every message, in order (QoS 1: the durable outbox).
    Every,
    /// Only the newest on its topic: a retained value that a newer one makes stale (a
    /// state sink's). Held in memory, one per topic, sent again on reconnect.
    Newest,
}

/// A message in the queue, with what the worker must keep of it.
#[derive(Debug)]
pub struct Queued {
    pub publish: Publish,
    pub keep: Keep,
}

/// The sending side; clone it for every publisher. Guarantees the queue never holds more
/// than `max_messages` messages nor more than `max_bytes` of them (but one message alone).
#[derive(Clone)]
pub struct PublishTx {
    tx: async_channel::Sender<Queued>,
    shared: Arc<Shared>,
}

/// The worker's side. Every message taken frees its bytes for the senders.
pub struct PublishRx {
    rx: async_channel::Receiver<Queued>,
    shared: Arc<Shared>,
}

/// A queue of at most `max_messages` messages and `max_bytes` bytes.
pub fn publish_queue(max_messages: usize, max_bytes: u64) -> (PublishTx, PublishRx) {
    let (tx, rx) = async_channel::bounded(max_messages.max(1));
    let stats = Arc::new(PublishQueueStats::default());
    stats.max_bytes.store(max_bytes, Ordering::Relaxed);
    let shared = Arc::new(Shared {
        stats,
        max_bytes,
        room: event_listener::Event::new(),
    });
    (
        PublishTx {
            tx,
            shared: shared.clone(),
        },
        PublishRx { rx, shared },
    )
}

impl PublishTx {
    /// Queue `p`, waiting while the queue is full (in messages or bytes). Fails only
    /// when the worker has stopped.
    pub async fn send(&self, p: Publish) -> Result<(), SendError<Publish>> {
        self.send_keeping(p, Keep::Every).await
    }

    /// Queue `p` as its topic's current value (see [`Keep::Newest`]), waiting as `send`.
    pub async fn send_newest(&self, p: Publish) -> Result<(), SendError<Publish>> {
        self.send_keeping(p, Keep::Newest).await
    }

    async fn send_keeping(&self, p: Publish, keep: Keep) -> Result<(), SendError<Publish>> {
        let len = size(&p);
        let mut waited = false;
        while !self.shared.reserve(len) {
            if self.tx.is_closed() {
                return Err(SendError(p));
            }
            let room = self.shared.room.listen();
            if self.shared.reserve(len) {
                break;
            }
            if !waited {
                waited = true;
                self.shared.stats.waited.fetch_add(1, Ordering::Relaxed);
            }
            room.await;
        }
        self.tx
            .send(Queued { publish: p, keep })
            .await
            .map_err(|e| {
                self.shared.release(len);
                SendError(e.0.publish)
            })
    }

    /// Queue `p` now, or refuse it (full in messages or bytes, or the worker stopped):
    /// counted, and logged at warn at most once a minute.
    pub fn try_send(&self, p: Publish) -> Result<(), TrySendError<Publish>> {
        let len = size(&p);
        let result = if self.shared.reserve(len) {
            self.tx
                .try_send(Queued {
                    publish: p,
                    keep: Keep::Every,
                })
                .map_err(|e| {
                    self.shared.release(len);
                    match e {
                        TrySendError::Full(q) => TrySendError::Full(q.publish),
                        TrySendError::Closed(q) => TrySendError::Closed(q.publish),
                    }
                })
        } else if self.tx.is_closed() {
            Err(TrySendError::Closed(p))
        } else {
            Err(TrySendError::Full(p))
        };
        if let Err(e) = &result {
            let stats = &self.shared.stats;
            stats.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = stats.refused_report.note(now_us()) {
                log::warn!(
                    "mqtt: refused {n} message(s) for the broker ({}): the queue to the MQTT worker holds {} of {} KiB",
                    if e.is_full() {
                        "queue full"
                    } else {
                        "MQTT stopped"
                    },
                    stats.bytes.load(Ordering::Relaxed) >> 10,
                    self.shared.max_bytes >> 10
                );
            }
        }
        result
    }

    pub fn stats(&self) -> Arc<PublishQueueStats> {
        self.shared.stats.clone()
    }
}

impl PublishRx {
    pub async fn recv(&self) -> Result<Queued, RecvError> {
        let q = self.rx.recv().await?;
        self.shared.release(size(&q.publish));
        Ok(q)
    }

    pub fn try_recv(&self) -> Result<Queued, TryRecvError> {
        let q = self.rx.try_recv()?;
        self.shared.release(size(&q.publish));
        Ok(q)
    }

    pub fn stats(&self) -> Arc<PublishQueueStats> {
        self.shared.stats.clone()
    }
}

impl Drop for PublishRx {
    /// Senders waiting for room see the queue closed instead of waiting forever.
    fn drop(&mut self) {
        self.rx.close();
        self.shared.room.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: usize) -> Publish {
        Publish {
            topic: "t".into(),
            payload: vec![b'x'; n - 1],
            qos: 0,
            retain: false,
        }
    }

    #[test]
    fn a_full_queue_refuses_by_bytes_and_counts() {
        let (tx, rx) = publish_queue(100, 1000);
        tx.try_send(msg(600)).unwrap();
        assert!(
            tx.try_send(msg(600)).unwrap_err().is_full(),
            "over the bytes"
        );
        tx.try_send(msg(400)).unwrap();
        assert_eq!(tx.stats().bytes.load(Ordering::Relaxed), 1000);
        assert_eq!(tx.stats().refused.load(Ordering::Relaxed), 1);
        assert_eq!(rx.try_recv().unwrap().publish.payload.len(), 599);
        assert_eq!(tx.stats().bytes.load(Ordering::Relaxed), 400);
        tx.try_send(msg(600)).unwrap();
        drop(rx);
        assert!(tx.try_send(msg(1)).unwrap_err().is_closed());
    }

    #[test]
    fn a_state_is_marked_for_the_worker_to_keep_only_the_newest() {
        let (tx, rx) = publish_queue(100, 1000);
        smol::block_on(async {
            tx.send(msg(10)).await.unwrap();
            tx.send_newest(msg(20)).await.unwrap();
        });
        tx.try_send(msg(30)).unwrap();
        let keeps: Vec<(Keep, usize)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|q| (q.keep, q.publish.payload.len() + 1))
            .collect();
        assert_eq!(
            keeps,
            [(Keep::Every, 10), (Keep::Newest, 20), (Keep::Every, 30)]
        );
        assert_eq!(tx.stats().bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn one_message_over_the_bound_goes_alone() {
        let (tx, rx) = publish_queue(100, 1000);
        tx.try_send(msg(5000)).unwrap();
        assert!(tx.try_send(msg(1)).is_err());
        rx.try_recv().unwrap();
        assert_eq!(tx.stats().bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_waiting_sender_goes_on_when_bytes_leave() {
        let (tx, rx) = publish_queue(100, 1000);
        smol::block_on(async {
            tx.send(msg(800)).await.unwrap();
            let second = {
                let tx = tx.clone();
                std::thread::spawn(move || smol::block_on(tx.send(msg(800))))
            };
            // It waits (the worker has not taken the first) ...
            while tx.stats().waited.load(Ordering::Relaxed) == 0 {
                std::thread::yield_now();
            }
            assert_eq!(tx.stats().bytes.load(Ordering::Relaxed), 800);
            // ... and goes on once it has.
            rx.recv().await.unwrap();
            second.join().unwrap().unwrap();
            assert_eq!(rx.recv().await.unwrap().publish.payload.len(), 799);
            assert_eq!(tx.stats().bytes.load(Ordering::Relaxed), 0);
        });
    }

    #[test]
    fn a_waiting_sender_is_told_when_the_worker_stops() {
        let (tx, rx) = publish_queue(100, 1000);
        smol::block_on(tx.send(msg(800))).unwrap();
        let second = {
            let tx = tx.clone();
            std::thread::spawn(move || smol::block_on(tx.send(msg(800))))
        };
        while tx.stats().waited.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        drop(rx);
        assert!(second.join().unwrap().is_err());
    }
}
