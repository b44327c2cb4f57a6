//! Messages waiting in the MQTT worker's memory: QoS 0 messages for room in rumqttc's
//! queue, QoS 1 messages for the outbox's next write (or for the store to take writes
//! again). Bounded in messages and in bytes, so a few big payloads (an answer, a batch of
//! a thousand readings) cannot hold more memory than the outbox itself would.

use std::collections::VecDeque;

use crate::messages::Publish;

/// A first-in first-out queue of messages bounded by `max_messages` and `max_bytes`
/// (topic plus payload): a push past either bound drops the oldest and says how many.
/// It never holds more than both bounds allow, except one message larger than
/// `max_bytes`, which is held alone (refusing it is the caller's `max_payload_kb`).
pub(crate) struct Waiting {
    items: VecDeque<Publish>,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
}

fn size(p: &Publish) -> usize {
    p.topic.len() + p.payload.len()
}

impl Waiting {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Waiting {
        Waiting {
            items: VecDeque::new(),
            bytes: 0,
            max_messages: max_messages.max(1),
            max_bytes,
        }
    }

    /// Append `p`, dropping the oldest while over a bound; how many were dropped.
    pub(crate) fn push(&mut self, p: Publish) -> u64 {
        self.bytes += size(&p);
        self.items.push_back(p);
        let mut dropped = 0;
        while self.items.len() > 1
            && (self.items.len() > self.max_messages || self.bytes > self.max_bytes)
        {
            self.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// No room for another message without dropping one.
    pub(crate) fn full(&self) -> bool {
        self.items.len() >= self.max_messages || self.bytes >= self.max_bytes
    }

    pub(crate) fn front(&self) -> Option<&Publish> {
        self.items.front()
    }

    pub(crate) fn pop_front(&mut self) -> Option<Publish> {
        let p = self.items.pop_front()?;
        self.bytes -= size(&p);
        Some(p)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Empty it; how many it held.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        self.bytes = 0;
        n
    }

    /// Everything, oldest first, as one slice (for one outbox write).
    pub(crate) fn contiguous(&mut self) -> &[Publish] {
        self.items.make_contiguous()
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
    fn the_oldest_go_past_either_bound() {
        let mut w = Waiting::new(3, 100);
        assert_eq!(w.push(msg(10)), 0);
        assert_eq!(w.push(msg(20)), 0);
        assert_eq!(w.push(msg(30)), 0);
        assert!(w.full(), "three messages");
        // A fourth: over the count, the oldest (10 bytes) goes.
        assert_eq!(w.push(msg(40)), 1);
        assert_eq!(w.front().map(size), Some(20));
        assert_eq!(w.contiguous().len(), 3);
        // 20 + 30 + 40 + 50 bytes is over 100: the two oldest go.
        assert_eq!(w.push(msg(50)), 2);
        assert_eq!(w.contiguous().len(), 2);
        assert_eq!(
            w.contiguous().iter().map(size).collect::<Vec<_>>(),
            [40, 50]
        );
        assert_eq!(w.pop_front().map(|p| size(&p)), Some(40));
        assert!(!w.full());
        assert_eq!(w.clear(), 1);
        assert!(w.is_empty());
    }

    #[test]
    fn one_message_over_the_byte_bound_is_held_alone() {
        let mut w = Waiting::new(10, 100);
        w.push(msg(10));
        assert_eq!(w.push(msg(500)), 1);
        assert_eq!(w.front().map(size), Some(500));
        assert_eq!(w.contiguous().len(), 1);
        assert!(w.full());
        assert_eq!(w.push(msg(10)), 1, "the big one goes first");
        assert_eq!(w.front().map(size), Some(10));
    }
}
