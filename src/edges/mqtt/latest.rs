//! Retained state messages on their way out: one per topic, the newest.
//!
//! A state sink's message (`format = "state"`, retained) is its topic's current value:
//! the broker keeps only the newest retained message per topic, and Home Assistant or any
//! subscriber reads only that. So these do not go through the durable outbox (a commit
//! and an fsync each): at most one waits per topic, in memory, replaced by a newer one,
//! and what is waiting or unacknowledged is sent again on every (re)connect. An outage
//! then ends with one message per topic, the newest, instead of a replay of stale states;
//! a restart loses what was waiting, and the sources' next readings (a filter passes a
//! source's first reading) publish it again.

use std::collections::{HashMap, VecDeque};

use crate::messages::Publish;

/// The newest retained message per topic, until the broker has acknowledged it.
/// Guarantees: at most one message per topic, the last one `put`; each is handed out by
/// `next` at most once per connection (again after `resend_all`); it leaves only when
/// the broker acknowledged it (`acked` with its generation) and no newer one replaced it.
/// Bounded by `max_topics` and `max_bytes`: a new topic past either is refused (counted
/// by the caller); a newer message on a known topic is always taken.
pub(crate) struct Latest {
    entries: HashMap<String, Entry>,
    /// Topics to send, in the order their messages came; an item whose generation is
    /// no longer its entry's (replaced, or already sent) is skipped.
    to_send: VecDeque<(String, u64)>,
    bytes: usize,
    next_gen: u64,
    max_topics: usize,
    max_bytes: usize,
}

struct Entry {
    publish: Publish,
    /// Which `put` this is (unique across topics), to tell an acknowledgement of an older
    /// message on the topic from the current one's.
    generation: u64,
    /// Not yet handed to the client on this connection.
    unsent: bool,
}

/// What `put` did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Put {
    /// A message for a topic with none waiting.
    New,
    /// It replaced an older one not yet acknowledged (that one will never be sent, or
    /// its acknowledgement will not remove this one).
    Replaced,
    /// A new topic past `max_topics` or `max_bytes`: not taken.
    Refused,
}

fn size(p: &Publish) -> usize {
    p.topic.len() + p.payload.len()
}

impl Latest {
    pub(crate) fn new(max_topics: usize, max_bytes: usize) -> Latest {
        Latest {
            entries: HashMap::new(),
            to_send: VecDeque::new(),
            bytes: 0,
            next_gen: 0,
            max_topics: max_topics.max(1),
            max_bytes,
        }
    }

    /// Hold `p` as its topic's newest message.
    pub(crate) fn put(&mut self, p: Publish) -> Put {
        self.next_gen += 1;
        let generation = self.next_gen;
        let new_size = size(&p);
        if let Some(e) = self.entries.get_mut(&p.topic) {
            // Still waiting to be sent: its place in the queue goes, so the queue holds
            // each topic once however long an outage lasts (bounded as `entries` is).
            if e.unsent
                && let Some(i) = self.to_send.iter().position(|(t, _)| *t == p.topic)
            {
                self.to_send.remove(i);
            }
            self.bytes = self.bytes - size(&e.publish) + new_size;
            e.publish = p;
            e.generation = generation;
            e.unsent = true;
            self.to_send
                .push_back((e.publish.topic.clone(), generation));
            return Put::Replaced;
        }
        if !self.entries.is_empty()
            && (self.entries.len() >= self.max_topics || self.bytes + new_size > self.max_bytes)
        {
            return Put::Refused;
        }
        self.bytes += new_size;
        self.to_send.push_back((p.topic.clone(), generation));
        self.entries.insert(
            p.topic.clone(),
            Entry {
                publish: p,
                generation,
                unsent: true,
            },
        );
        Put::New
    }

    /// The oldest message not yet handed out on this connection, and its generation,
    /// without taking it (`sent` does, once the client took it).
    pub(crate) fn next(&mut self) -> Option<(&Publish, u64)> {
        loop {
            let (topic, generation) = self.to_send.front()?;
            if self
                .entries
                .get(topic)
                .is_some_and(|e| e.unsent && e.generation == *generation)
            {
                break;
            }
            self.to_send.pop_front();
        }
        let (topic, generation) = self.to_send.front()?;
        Some((&self.entries.get(topic)?.publish, *generation))
    }

    /// The client took the message `next` gave.
    pub(crate) fn sent(&mut self) {
        if let Some((topic, generation)) = self.to_send.pop_front()
            && let Some(e) = self.entries.get_mut(&topic)
            && e.generation == generation
        {
            e.unsent = false;
        }
    }

    /// The broker acknowledged the message of `generation` on `topic`: it leaves, unless a
    /// newer one replaced it meanwhile.
    pub(crate) fn acked(&mut self, topic: &str, generation: u64) {
        if self
            .entries
            .get(topic)
            .is_some_and(|e| e.generation == generation && !e.unsent)
            && let Some(e) = self.entries.remove(topic)
        {
            self.bytes -= size(&e.publish);
        }
    }

    /// The connection is gone: everything still held goes again on the next one, in the
    /// order the topics first came.
    pub(crate) fn resend_all(&mut self) {
        let mut all: Vec<(u64, String)> = Vec::with_capacity(self.entries.len());
        for (topic, e) in self.entries.iter_mut() {
            e.unsent = true;
            all.push((e.generation, topic.clone()));
        }
        all.sort_unstable();
        self.to_send = all.into_iter().map(|(g, t)| (t, g)).collect();
    }

    /// Messages held (waiting or unacknowledged).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(topic: &str, value: &str) -> Publish {
        Publish {
            topic: topic.into(),
            payload: value.as_bytes().to_vec(),
            qos: 1,
            retain: true,
        }
    }

    /// Hands out everything `next` offers, as the worker does while connected.
    fn send_all(l: &mut Latest) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        while let Some((p, g)) = l.next() {
            out.push((
                p.topic.clone(),
                String::from_utf8(p.payload.clone()).unwrap(),
                g,
            ));
            l.sent();
        }
        out
    }

    #[test]
    fn an_outage_leaves_one_message_per_topic_the_newest() {
        let mut l = Latest::new(100, 1 << 20);
        for v in ["1", "2", "3"] {
            l.put(state("s/cpu", v));
        }
        assert_eq!(l.put(state("s/mem", "7")), Put::New);
        assert_eq!(l.put(state("s/cpu", "4")), Put::Replaced);
        let sent = send_all(&mut l);
        let sent: Vec<_> = sent
            .iter()
            .map(|(t, v, _)| (t.as_str(), v.as_str()))
            .collect();
        assert_eq!(sent, [("s/mem", "7"), ("s/cpu", "4")]);
        assert!(l.next().is_none(), "each once per connection");
    }

    #[test]
    fn a_long_outage_queues_each_topic_once() {
        let mut l = Latest::new(100, 1 << 20);
        for v in 0..10_000 {
            l.put(state("s/cpu", &v.to_string()));
            l.put(state("s/mem", &v.to_string()));
        }
        assert_eq!(l.to_send.len(), 2);
        let sent = send_all(&mut l);
        let sent: Vec<_> = sent
            .iter()
            .map(|(t, v, _)| (t.as_str(), v.as_str()))
            .collect();
        assert_eq!(sent, [("s/cpu", "9999"), ("s/mem", "9999")]);
    }

    #[test]
    fn an_acknowledgement_removes_only_the_message_it_was_for() {
        let mut l = Latest::new(100, 1 << 20);
        l.put(state("s/cpu", "1"));
        let (_, _, old) = send_all(&mut l).pop().unwrap();
        // A newer value while the older is in flight: the older's PUBACK keeps it.
        l.put(state("s/cpu", "2"));
        l.acked("s/cpu", old);
        assert_eq!(l.len(), 1);
        let (_, v, new) = send_all(&mut l).pop().unwrap();
        assert_eq!(v, "2");
        l.acked("s/cpu", new);
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn what_was_not_acknowledged_goes_again_after_a_reconnect() {
        let mut l = Latest::new(100, 1 << 20);
        l.put(state("s/a", "1"));
        l.put(state("s/b", "2"));
        let sent = send_all(&mut l);
        l.acked("s/a", sent[0].2);
        l.resend_all();
        let again: Vec<_> = send_all(&mut l)
            .into_iter()
            .map(|(t, v, _)| (t, v))
            .collect();
        assert_eq!(again, [("s/b".to_string(), "2".to_string())]);
    }

    #[test]
    fn a_new_topic_past_the_bounds_is_refused_a_known_one_replaced() {
        let mut l = Latest::new(2, 1 << 20);
        l.put(state("s/a", "1"));
        l.put(state("s/b", "1"));
        assert_eq!(l.put(state("s/c", "1")), Put::Refused);
        assert_eq!(l.put(state("s/a", "2")), Put::Replaced);
        assert_eq!(l.len(), 2);
        let mut small = Latest::new(100, 10);
        assert_eq!(small.put(state("s/a", "123456")), Put::New);
        assert_eq!(small.put(state("s/b", "1")), Put::Refused);
    }
}
