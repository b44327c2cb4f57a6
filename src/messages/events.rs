//! The live events the dashboard follows (`GET /api/events`): readings as they pass the
//! filter, answers, observations and memories as they are stored, edge state changes.
//!
//! One [`EventHub`] is shared by whoever publishes (the `events` sink on the event loop,
//! the `llm` thread, the MQTT worker) and the HTTP edge's streams. It keeps the last
//! events in a ring bounded in count and bytes, each serialised once into its SSE frame;
//! a stream holds only a cursor (the last id it sent), so memory does not grow with the
//! number of clients, and a client that falls behind the ring loses its oldest events,
//! counted for it and in total. Publishing never waits for a client.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;

use crate::graph::Micros;

/// What an event is about: its SSE `event:` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Reading,
    Answer,
    /// A piece of an answer still being written (`{id, text}`), before its `answer`.
    AnswerPart,
    Observation,
    Memory,
    Edge,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Reading => "reading",
            EventKind::Answer => "answer",
            EventKind::AnswerPart => "answer_part",
            EventKind::Observation => "observation",
            EventKind::Memory => "memory",
            EventKind::Edge => "edge",
        }
    }
}

/// One buffered event: its id and its frame after the `id:` line (`event: ...\ndata:
/// ...\n\n`). The frame's buffer is reused for a later event once this one is evicted.
struct Slot {
    id: u64,
    frame: Vec<u8>,
}

/// The ring itself (behind the hub's lock). Ids are consecutive: the slot at index `i`
/// has id `front_id + i`.
struct Ring {
    slots: VecDeque<Slot>,
    /// Capacity of the frames' buffers held (what `max_bytes` bounds).
    bytes: usize,
    /// The id the next event gets.
    next_id: u64,
    /// The id of this run's first event: ids below it were never lost by this run.
    first_id: u64,
    /// An evicted slot's buffer, kept for the next event so a steady stream of
    /// readings reuses buffers instead of allocating.
    spare: Option<Vec<u8>>,
}

/// Counters of the hub, for `/api/status` (`connections.http.events`).
#[derive(Debug, Default)]
pub struct EventStats {
    /// Events published (buffered), by every publisher.
    pub published: AtomicU64,
    /// Events larger than the whole byte bound, not buffered.
    pub oversized: AtomicU64,
    /// Events evicted from the ring (oldest first) to keep its bounds.
    pub evicted: AtomicU64,
    /// Events streams missed because they fell behind the ring, summed over clients.
    pub lost: AtomicU64,
    /// Events written to streams, summed over clients.
    pub sent: AtomicU64,
}

/// One stream's counters, listed in status while it is open.
#[derive(Debug)]
pub struct ClientStats {
    /// The stream's number (per process, from 1).
    pub id: u64,
    /// When it connected.
    pub since: Micros,
    /// Events written to it.
    pub sent: AtomicU64,
    /// Events it missed because it fell behind the ring.
    pub lost: AtomicU64,
}

/// What [`EventHub::read_after`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Got {
    /// The id of the last event appended (the cursor to read after next time); the
    /// cursor passed in when nothing was.
    pub cursor: u64,
    /// Events appended.
    pub events: u64,
    /// Events between the cursor and the oldest buffered one: gone before they were read.
    pub lost: u64,
}

/// The shared ring of live events. Guarantees: at most `max_events` events in buffers of
/// at most `max_bytes` in all (capacity, not length: the memory held, plus one spare
/// buffer kept for reuse), whatever the number of clients and however slow they are;
/// ids increase by one per event and begin, per process, at the Unix time in
/// milliseconds when it started (so a browser resuming after a restart with an id of
/// the previous run is not mistaken for one ahead of this run: see
/// [`EventHub::start_cursor`]); publishing takes the lock for a copy of one frame and
/// never waits for a reader.
pub struct EventHub {
    ring: Mutex<Ring>,
    max_events: usize,
    max_bytes: usize,
    /// Woken (all listeners) on every event.
    wake: event_listener::Event,
    pub stats: EventStats,
    clients: Mutex<Vec<Arc<ClientStats>>>,
    next_client: AtomicU64,
}

impl EventHub {
    /// A hub holding at most `max_events` events and `max_bytes` bytes; the first id is
    /// `first_id` (app passes the start time in milliseconds).
    pub fn new(max_events: usize, max_bytes: usize, first_id: u64) -> EventHub {
        EventHub {
            ring: Mutex::new(Ring {
                slots: VecDeque::new(),
                bytes: 0,
                next_id: first_id.max(1),
                first_id: first_id.max(1),
                spare: None,
            }),
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1024),
            wake: event_listener::Event::new(),
            stats: EventStats::default(),
            clients: Mutex::new(Vec::new()),
            next_client: AtomicU64::new(1),
        }
    }

    /// Buffer an event whose `data:` is `json` (one line of compact JSON, as
    /// `serde_json` writes it: it never holds a raw newline) and wake the streams.
    /// Returns its id, or `None` when it is larger than the whole byte bound.
    pub fn publish(&self, kind: EventKind, json: &[u8]) -> Option<u64> {
        let name = kind.name();
        let len = "event: \ndata: \n\n".len() + name.len() + json.len();
        if len > self.max_bytes {
            self.stats.oversized.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let id = {
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            // Buffers come in power-of-two sizes (256 bytes at least), so a reused one
            // fits the next event of about the same size without growing; one much
            // larger than this event (a long answer's) is let go.
            let size = len.max(256).next_power_of_two().min(self.max_bytes);
            let mut frame = ring
                .spare
                .take()
                .filter(|b| b.capacity() <= (2 * size).min(self.max_bytes))
                .unwrap_or_default();
            frame.clear();
            frame.reserve_exact(size);
            frame.extend_from_slice(b"event: ");
            frame.extend_from_slice(name.as_bytes());
            frame.extend_from_slice(b"\ndata: ");
            frame.extend_from_slice(json);
            frame.extend_from_slice(b"\n\n");
            // The bound is on the buffers' capacity: the memory the ring holds.
            let cost = frame.capacity();
            let mut evicted = 0;
            while !ring.slots.is_empty()
                && (ring.slots.len() >= self.max_events || ring.bytes + cost > self.max_bytes)
            {
                if let Some(old) = ring.slots.pop_front() {
                    ring.bytes -= old.frame.capacity();
                    evicted += 1;
                    if ring.spare.is_none() {
                        ring.spare = Some(old.frame);
                    }
                }
            }
            let id = ring.next_id;
            ring.next_id += 1;
            ring.bytes += cost;
            ring.slots.push_back(Slot { id, frame });
            if evicted > 0 {
                self.stats.evicted.fetch_add(evicted, Ordering::Relaxed);
            }
            id
        };
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        self.wake.notify(usize::MAX);
        Some(id)
    }

    /// [`EventHub::publish`] for events built as JSON values (answers, observations:
    /// seldom, so the allocation does not matter).
    pub fn publish_json(&self, kind: EventKind, json: &Json) -> Option<u64> {
        self.publish(kind, json.to_string().as_bytes())
    }

    /// The id of the newest event (one less than the next), for a stream that starts now.
    pub fn newest(&self) -> u64 {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).next_id - 1
    }

    /// Where a stream starts: after `last_event_id` when the client resumes (an id
    /// ahead of this run's newest came from a previous run, so it gets everything
    /// buffered), else after the newest event (only what happens from now on).
    pub fn start_cursor(&self, last_event_id: Option<u64>) -> u64 {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let newest = ring.next_id - 1;
        match last_event_id {
            Some(id) if id <= newest => id.max(ring.first_id - 1),
            Some(_) => ring.slots.front().map_or(newest, |s| s.id - 1),
            None => newest,
        }
    }

    /// Append the SSE frames (`id:` line first) of the events after `cursor` to `out`,
    /// until `out` holds at least `max` bytes (one event at least, whatever its size).
    pub fn read_after(&self, cursor: u64, out: &mut Vec<u8>, max: usize) -> Got {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let mut got = Got {
            cursor,
            events: 0,
            lost: 0,
        };
        let Some(front) = ring.slots.front().map(|s| s.id) else {
            return got;
        };
        if cursor + 1 < front {
            got.lost = front - cursor - 1;
        }
        let start = (cursor + 1).saturating_sub(front) as usize;
        for slot in ring.slots.iter().skip(start) {
            if got.events > 0 && out.len() >= max {
                break;
            }
            let _ = writeln!(out, "id: {}", slot.id);
            out.extend_from_slice(&slot.frame);
            got.cursor = slot.id;
            got.events += 1;
        }
        got
    }

    /// A listener woken by the next event. Take it before [`EventHub::read_after`]
    /// finds nothing, so an event between the two is not missed.
    pub fn listen(&self) -> event_listener::EventListener {
        self.wake.listen()
    }

    /// Events and bytes buffered now.
    pub fn held(&self) -> (usize, usize) {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        (ring.slots.len(), ring.bytes)
    }

    pub fn max_events(&self) -> usize {
        self.max_events
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// A new stream's counters, listed until [`EventHub::leave`].
    pub fn join(&self, since: Micros) -> Arc<ClientStats> {
        let c = Arc::new(ClientStats {
            id: self.next_client.fetch_add(1, Ordering::Relaxed),
            since,
            sent: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        });
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c.clone());
        c
    }

    pub fn leave(&self, client: &ClientStats) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| c.id != client.id);
    }

    /// Count what a stream sent and missed, for it and in total.
    pub fn count(&self, client: &ClientStats, sent: u64, lost: u64) {
        client.sent.fetch_add(sent, Ordering::Relaxed);
        client.lost.fetch_add(lost, Ordering::Relaxed);
        self.stats.sent.fetch_add(sent, Ordering::Relaxed);
        self.stats.lost.fetch_add(lost, Ordering::Relaxed);
    }

    /// The open streams' counters (at most `[http] max_streams`).
    pub fn clients(&self) -> Vec<Arc<ClientStats>> {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(frames: &[u8]) -> Vec<u64> {
        String::from_utf8_lossy(frames)
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|n| n.parse().unwrap())
            .collect()
    }

    #[test]
    fn a_reader_gets_every_event_after_its_cursor_once_in_order() {
        let hub = EventHub::new(8, 4096, 100);
        assert_eq!(hub.newest(), 99);
        for i in 0..5 {
            assert_eq!(
                hub.publish(EventKind::Reading, format!("{{\"n\":{i}}}").as_bytes()),
                Some(100 + i)
            );
        }
        let mut out = Vec::new();
        let got = hub.read_after(101, &mut out, 1 << 20);
        assert_eq!((got.cursor, got.events, got.lost), (104, 3, 0));
        assert_eq!(ids(&out), [102, 103, 104]);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("id: 102\nevent: reading\ndata: {\"n\":2}\n\n"),
            "{text}"
        );
        let mut out = Vec::new();
        assert_eq!(hub.read_after(104, &mut out, 1 << 20).events, 0);
        assert!(out.is_empty());
        // A batch stops at `max` bytes (after one event at least) and goes on from there.
        let mut out = Vec::new();
        let got = hub.read_after(99, &mut out, 1);
        assert_eq!((got.cursor, got.events), (100, 1));
    }

    #[test]
    fn the_ring_is_bounded_in_count_and_bytes_and_a_slow_reader_loses_the_oldest() {
        let hub = EventHub::new(4, 4096, 1);
        for _ in 0..10 {
            hub.publish(EventKind::Reading, b"{}");
        }
        assert_eq!(hub.held().0, 4);
        assert_eq!(hub.stats.evicted.load(Ordering::Relaxed), 6);
        let mut out = Vec::new();
        let got = hub.read_after(2, &mut out, 1 << 20);
        assert_eq!(
            (got.lost, got.events, got.cursor),
            (4, 4, 10),
            "3 to 6 are gone"
        );
        assert_eq!(ids(&out), [7, 8, 9, 10]);
        // Bytes: each small frame takes a 256-byte buffer; 2000 bytes hold 7 of them.
        let hub = EventHub::new(1000, 2000, 1);
        for _ in 0..50 {
            hub.publish(EventKind::Edge, b"{\"x\":1}");
        }
        let (n, bytes) = hub.held();
        assert!(bytes <= 2000 && n == 7, "{n} events, {bytes} bytes");
        // One almost as large as the bound pushes out all the others and stays within it.
        hub.publish(EventKind::Answer, &[b'a'; 1900]);
        let (n, bytes) = hub.held();
        assert!(bytes <= 2000 && n == 1, "{n} events, {bytes} bytes");
        // One larger than the whole bound is refused and counted, and takes no id.
        assert_eq!(hub.publish(EventKind::Answer, &[b'a'; 3000]), None);
        assert_eq!(hub.stats.oversized.load(Ordering::Relaxed), 1);
        assert_eq!(hub.publish(EventKind::Edge, b"{}"), Some(52));
    }

    #[test]
    fn resuming_starts_after_the_given_id_or_everything_for_one_from_another_run() {
        let hub = EventHub::new(4, 4096, 10);
        assert_eq!(hub.start_cursor(None), 9);
        for _ in 0..6 {
            hub.publish(EventKind::Reading, b"{}");
        }
        assert_eq!(hub.start_cursor(None), 15);
        assert_eq!(hub.start_cursor(Some(13)), 13);
        // Below this run's first id: nothing of this run was missed before it.
        assert_eq!(hub.start_cursor(Some(0)), 9);
        // Ahead of the newest: from a previous run; the oldest buffered is 12.
        assert_eq!(hub.start_cursor(Some(1_000_000)), 11);
    }

    #[test]
    fn evicted_buffers_are_reused() {
        let hub = EventHub::new(2, 4096, 1);
        for _ in 0..2 {
            hub.publish(EventKind::Reading, &[b'1'; 100]);
        }
        let front = |hub: &EventHub| {
            hub.ring
                .lock()
                .unwrap()
                .slots
                .front()
                .unwrap()
                .frame
                .as_ptr()
        };
        let back = |hub: &EventHub| {
            hub.ring
                .lock()
                .unwrap()
                .slots
                .back()
                .unwrap()
                .frame
                .as_ptr()
        };
        // The third evicts the first, whose buffer the fourth is written into.
        let first = front(&hub);
        hub.publish(EventKind::Reading, &[b'2'; 100]);
        hub.publish(EventKind::Reading, &[b'3'; 100]);
        assert_eq!(back(&hub), first);
        let (n, bytes) = hub.held();
        assert_eq!(n, 2);
        assert_eq!(
            bytes,
            2 * 256,
            "two 256-byte buffers for two 123-byte frames"
        );
    }

    #[test]
    fn clients_are_listed_while_open_and_counted_in_total() {
        let hub = EventHub::new(4, 4096, 1);
        let a = hub.join(0);
        let b = hub.join(0);
        hub.count(&a, 3, 2);
        hub.count(&b, 1, 0);
        assert_eq!(hub.clients().len(), 2);
        hub.leave(&a);
        let open = hub.clients();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].id, b.id);
        assert_eq!(hub.stats.lost.load(Ordering::Relaxed), 2);
        assert_eq!(hub.stats.sent.load(Ordering::Relaxed), 4);
    }
}
