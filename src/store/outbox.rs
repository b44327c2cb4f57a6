//! The MQTT outbox: QoS 1 messages waiting for the broker's acknowledgement.
//!
//! A message is written here before it is handed to the MQTT client and removed only
//! when the broker acknowledges it; after a broker outage or a restart whatever is left
//! is sent again, in sequence order.
//!
//! On disk (database `outbox`, plus three `meta` keys):
//!
//! | db       | key                       | value                                                 |
//! |----------|---------------------------|-------------------------------------------------------|
//! | `outbox` | seq u64 BE                | flags u8 ++ topic len u16 BE ++ topic ++ payload      |
//! | `meta`   | `outbox_next_seq`         | u64 BE: the next sequence number to hand out          |
//! | `meta`   | `outbox_bytes`            | u64 BE: sum of topic + payload lengths present        |
//! | `meta`   | `outbox_dropped`          | u64 BE: messages dropped to stay within the limits    |
//!
//! Flags: bit 0 = retain, bits 1-2 = QoS, bits 3-7 = format version (0; anything else is
//! refused as corrupt). Sequence numbers start at 1 and are never reused, not even after
//! the outbox empties or the store is reopened. The message count is LMDB's entry count
//! (O(1)); the byte total is kept exact in `meta` in the same transaction as every
//! change, so nothing ever scans the outbox to account for it.
//!
//! Every method is one short transaction: the MQTT worker calls these while the store's
//! writer thread commits readings, and LMDB runs one write transaction at a time.

use std::ops::Bound;

use heed::{PutFlags, RoTxn, RwTxn};

use super::codec::Corrupt;
use super::{Store, StoreError};
use crate::messages::Publish;

/// How much the outbox may hold; past either limit the oldest messages are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxLimits {
    pub max_messages: u64,
    /// Bound on the sum of topic + payload lengths.
    pub max_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub messages: u64,
    /// Sum of topic + payload lengths of the messages present.
    pub bytes: u64,
    /// Lowest sequence number present, or `next_seq` when empty.
    pub first_seq: u64,
    /// The sequence number the next pushed message will get.
    pub next_seq: u64,
    /// Messages dropped to stay within the limits, over the store's life (persisted).
    pub dropped: u64,
}

const META_NEXT_SEQ: &[u8] = b"outbox_next_seq";
const META_BYTES: &[u8] = b"outbox_bytes";
const META_DROPPED: &[u8] = b"outbox_dropped";

/// The first sequence number of a new store (0 is never used, so callers may use it as
/// "before everything").
pub const FIRST_SEQ: u64 = 1;

/// Value header: flags u8 ++ topic length u16 BE.
const HEADER: usize = 3;
const FLAG_RETAIN: u8 = 1;
const QOS_SHIFT: u8 = 1;
const QOS_MASK: u8 = 0b11;
/// Bits that must be zero in this format version.
const VERSION_MASK: u8 = !0b111;

/// Bytes a message counts for: topic + payload.
fn message_bytes(m: &Publish) -> u64 {
    (m.topic.len() + m.payload.len()) as u64
}

/// Bytes a stored value counts for (its length without the header).
fn value_bytes(v: &[u8]) -> u64 {
    v.len().saturating_sub(HEADER) as u64
}

fn encode_message(m: &Publish, buf: &mut Vec<u8>) {
    buf.clear();
    buf.push(u8::from(m.retain) | ((m.qos & QOS_MASK) << QOS_SHIFT));
    buf.extend_from_slice(&(m.topic.len() as u16).to_be_bytes());
    buf.extend_from_slice(m.topic.as_bytes());
    buf.extend_from_slice(&m.payload);
}

fn decode_message(k: &[u8], v: &[u8]) -> Result<(u64, Publish), Corrupt> {
    let seq = u64::from_be_bytes(k.try_into().map_err(|_| Corrupt("outbox key length"))?);
    let flags = *v.first().ok_or(Corrupt("empty outbox entry"))?;
    if flags & VERSION_MASK != 0 {
        return Err(Corrupt("unknown outbox entry version"));
    }
    let len = v
        .get(1..HEADER)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map(u16::from_be_bytes)
        .ok_or(Corrupt("short outbox entry"))? as usize;
    let topic = v
        .get(HEADER..HEADER + len)
        .ok_or(Corrupt("short outbox topic"))?;
    let topic = std::str::from_utf8(topic).map_err(|_| Corrupt("outbox topic is not UTF-8"))?;
    Ok((
        seq,
        Publish {
            topic: topic.to_owned(),
            payload: v[HEADER + len..].to_vec(),
            qos: (flags >> QOS_SHIFT) & QOS_MASK,
            retain: flags & FLAG_RETAIN != 0,
        },
    ))
}

impl Store {
    /// The next sequence number: the persisted counter, and never at or below a key present.
    fn outbox_next_seq(&self, txn: &RoTxn) -> Result<u64, StoreError> {
        let stored = self.meta_u64(txn, META_NEXT_SEQ)?.unwrap_or(FIRST_SEQ);
        let after_last = match self.outbox.last(txn)? {
            Some((k, _)) => {
                u64::from_be_bytes(k.try_into().map_err(|_| Corrupt("outbox key length"))?)
                    .saturating_add(1)
            }
            None => FIRST_SEQ,
        };
        Ok(stored.max(after_last))
    }

    /// Append messages in one transaction, in order; returns the sequence numbers given to
    /// them and how many messages (oldest first, possibly some of these new ones if a batch
    /// alone exceeds the limit) were dropped to stay within `limits`.
    ///
    /// New messages that could not stay even on their own (the oldest of a batch larger
    /// than the limits) still get their sequence numbers but are never written. A topic
    /// longer than 65535 bytes or a QoS above 2 is refused before anything is written.
    pub fn outbox_push(
        &self,
        msgs: &[Publish],
        limits: &OutboxLimits,
    ) -> Result<(Vec<u64>, u64), StoreError> {
        self.outbox_push_removing(msgs, &[], limits)
    }

    /// [`Store::outbox_push`], removing the acknowledged `acked` (missing seqs ignored) in
    /// the same write transaction: one commit, one fsync, where a push and a removal
    /// would take two (the MQTT worker removes what the broker acknowledged with its next
    /// push).
    pub fn outbox_push_removing(
        &self,
        msgs: &[Publish],
        acked: &[u64],
        limits: &OutboxLimits,
    ) -> Result<(Vec<u64>, u64), StoreError> {
        if msgs.is_empty() {
            self.outbox_remove(acked)?;
            return Ok((Vec::new(), 0));
        }
        for m in msgs {
            if m.topic.len() > u16::MAX as usize {
                return Err(StoreError::Lmdb(format!(
                    "outbox: a topic of {} bytes is longer than MQTT allows (65535)",
                    m.topic.len()
                )));
            }
            if m.qos > 2 {
                return Err(StoreError::Lmdb(format!(
                    "outbox: QoS {} is not 0, 1 or 2",
                    m.qos
                )));
            }
        }
        // The newest messages of the batch that fit within the limits by themselves.
        let mut keep_from = msgs.len();
        let (mut n, mut b) = (0u64, 0u64);
        for (i, m) in msgs.iter().enumerate().rev() {
            let mb = message_bytes(m);
            if n >= limits.max_messages || b.saturating_add(mb) > limits.max_bytes {
                break;
            }
            n += 1;
            b += mb;
            keep_from = i;
        }

        let mut wtxn = self.env.write_txn()?;
        let mut next = self.outbox_next_seq(&wtxn)?;
        let mut bytes = self.meta_u64(&wtxn, META_BYTES)?.unwrap_or(0);
        self.remove_in(&mut wtxn, acked, &mut bytes)?;
        let mut dropped = 0u64;
        let mut seqs = Vec::with_capacity(msgs.len());
        let mut buf = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let seq = next;
            next = next
                .checked_add(1)
                .ok_or_else(|| StoreError::Lmdb("outbox: sequence numbers exhausted".into()))?;
            seqs.push(seq);
            if i < keep_from {
                dropped += 1;
                continue;
            }
            encode_message(m, &mut buf);
            // Keys only grow, so every put is an append at the end of the tree.
            self.outbox
                .put_with_flags(&mut wtxn, PutFlags::APPEND, &seq.to_be_bytes(), &buf)?;
            bytes += message_bytes(m);
        }

        // Drop the oldest while over either limit: one cursor step per deletion.
        let mut count = self.outbox.len(&wtxn)?;
        if count > limits.max_messages || bytes > limits.max_bytes {
            let mut it = self.outbox.iter_mut(&mut wtxn)?;
            while count > limits.max_messages || bytes > limits.max_bytes {
                match it.next() {
                    Some(Ok((_, v))) => {
                        let vb = value_bytes(v);
                        // SAFETY: no key or value borrowed from the iterator is alive here.
                        unsafe { it.del_current()? };
                        count -= 1;
                        bytes = bytes.saturating_sub(vb);
                        dropped += 1;
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => break,
                }
            }
        }
        if count == 0 {
            bytes = 0;
        }
        self.put_meta_u64(&mut wtxn, META_NEXT_SEQ, next)?;
        self.put_meta_u64(&mut wtxn, META_BYTES, bytes)?;
        if dropped > 0 {
            let total = self.meta_u64(&wtxn, META_DROPPED)?.unwrap_or(0);
            self.put_meta_u64(&mut wtxn, META_DROPPED, total.saturating_add(dropped))?;
        }
        wtxn.commit()?;
        Ok((seqs, dropped))
    }

    /// Up to `max` messages with seq >= from, ascending.
    pub fn outbox_read(&self, from: u64, max: usize) -> Result<Vec<(u64, Publish)>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let rtxn = self.env.read_txn()?;
        let lo = from.to_be_bytes();
        let range = (Bound::Included(lo.as_slice()), Bound::Unbounded);
        let mut out = Vec::new();
        for kv in self.outbox.range(&rtxn, &range)?.take(max) {
            let (k, v) = kv?;
            out.push(decode_message(k, v)?);
        }
        Ok(out)
    }

    /// Remove acknowledged messages (missing seqs are ignored). Returns how many were removed.
    pub fn outbox_remove(&self, seqs: &[u64]) -> Result<u64, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let mut wtxn = self.env.write_txn()?;
        let mut bytes = self.meta_u64(&wtxn, META_BYTES)?.unwrap_or(0);
        let removed = self.remove_in(&mut wtxn, seqs, &mut bytes)?;
        if removed == 0 {
            return Ok(0); // nothing changed: the transaction is aborted on drop
        }
        if self.outbox.is_empty(&wtxn)? {
            bytes = 0;
        }
        self.put_meta_u64(&mut wtxn, META_BYTES, bytes)?;
        wtxn.commit()?;
        Ok(removed)
    }

    /// Delete `seqs` (missing ones ignored) in `wtxn`, taking their bytes off `bytes`.
    fn remove_in(
        &self,
        wtxn: &mut RwTxn,
        seqs: &[u64],
        bytes: &mut u64,
    ) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        for seq in seqs {
            let key = seq.to_be_bytes();
            let Some(v) = self.outbox.get(wtxn, &key)? else {
                continue;
            };
            let vb = value_bytes(v);
            self.outbox.delete(wtxn, &key)?;
            *bytes = bytes.saturating_sub(vb);
            removed += 1;
        }
        Ok(removed)
    }

    pub fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let rtxn = self.env.read_txn()?;
        let next_seq = self.outbox_next_seq(&rtxn)?;
        let first_seq = match self.outbox.first(&rtxn)? {
            Some((k, _)) => {
                u64::from_be_bytes(k.try_into().map_err(|_| Corrupt("outbox key length"))?)
            }
            None => next_seq,
        };
        Ok(OutboxStats {
            messages: self.outbox.len(&rtxn)?,
            bytes: self.meta_u64(&rtxn, META_BYTES)?.unwrap_or(0),
            first_seq,
            next_seq,
            dropped: self.meta_u64(&rtxn, META_DROPPED)?.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::StoreOptions;
    use crate::store::tests::TempDir;

    const NO_LIMITS: OutboxLimits = OutboxLimits {
        max_messages: u64::MAX,
        max_bytes: u64::MAX,
    };

    fn opts() -> StoreOptions {
        StoreOptions { map_size: 16 << 20 }
    }

    fn msg(topic: &str, payload: &[u8]) -> Publish {
        Publish {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos: 1,
            retain: false,
        }
    }

    fn numbered(i: u64) -> Publish {
        msg(&format!("t/{i}"), &i.to_be_bytes())
    }

    fn all(store: &Store) -> Vec<(u64, Publish)> {
        store.outbox_read(0, usize::MAX).unwrap()
    }

    fn seqs(store: &Store) -> Vec<u64> {
        all(store).into_iter().map(|(s, _)| s).collect()
    }

    /// Stats recomputed from the messages themselves.
    fn check_stats(store: &Store) -> OutboxStats {
        let st = store.outbox_stats().unwrap();
        let present = all(store);
        assert_eq!(st.messages, present.len() as u64, "{st:?}");
        let bytes: u64 = present.iter().map(|(_, m)| message_bytes(m)).sum();
        assert_eq!(st.bytes, bytes, "{st:?}");
        assert_eq!(
            st.first_seq,
            present.first().map_or(st.next_seq, |(s, _)| *s),
            "{st:?}"
        );
        assert!(present.iter().all(|(s, _)| *s < st.next_seq), "{st:?}");
        st
    }

    #[test]
    fn push_read_round_trip() {
        let dir = TempDir::new("outbox-rt");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let msgs = vec![
            Publish {
                topic: "smollama/pi-1/readings".into(),
                payload: br#"{"v":21.5}"#.to_vec(),
                qos: 1,
                retain: false,
            },
            Publish {
                topic: "smollama/pi-1/status".into(),
                payload: b"online".to_vec(),
                qos: 1,
                retain: true,
            },
            Publish {
                topic: "bin/ära/☃".into(),
                payload: (0..=255u8).chain([0, 0, 255]).collect(),
                qos: 2,
                retain: true,
            },
            Publish {
                topic: String::new(),
                payload: Vec::new(),
                qos: 0,
                retain: false,
            },
        ];
        let (s, dropped) = store.outbox_push(&msgs, &NO_LIMITS).unwrap();
        assert_eq!(s, vec![1, 2, 3, 4]);
        assert_eq!(dropped, 0);
        let got = all(&store);
        assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), s);
        assert_eq!(got.into_iter().map(|(_, m)| m).collect::<Vec<_>>(), msgs);
        // `from` and `max`.
        let r = store.outbox_read(2, 2).unwrap();
        assert_eq!(r, vec![(2, msgs[1].clone()), (3, msgs[2].clone())]);
        assert!(store.outbox_read(5, 10).unwrap().is_empty());
        assert!(store.outbox_read(0, 0).unwrap().is_empty());
        assert_eq!(store.outbox_read(u64::MAX, 10).unwrap(), vec![]);
        // Nothing pushed: nothing changes.
        assert_eq!(store.outbox_push(&[], &NO_LIMITS).unwrap(), (vec![], 0));
        check_stats(&store);
    }

    #[test]
    fn encoding_is_the_documented_layout_and_refuses_garbage() {
        let m = Publish {
            topic: "a/b".into(),
            payload: vec![0, 1],
            qos: 2,
            retain: true,
        };
        let mut buf = Vec::new();
        encode_message(&m, &mut buf);
        assert_eq!(buf, [0b101, 0, 3, b'a', b'/', b'b', 0, 1]);
        assert_eq!(value_bytes(&buf), 5);
        assert_eq!(decode_message(&7u64.to_be_bytes(), &buf), Ok((7, m)));
        let k = 1u64.to_be_bytes();
        assert!(decode_message(&k, &[]).is_err());
        assert!(decode_message(&k, &[0, 0]).is_err());
        assert!(decode_message(&k, &[0, 0, 4, b'a']).is_err());
        assert!(
            decode_message(&k, &[0b1000, 0, 0]).is_err(),
            "unknown version"
        );
        assert!(decode_message(&k, &[0, 0, 1, 0xff]).is_err(), "not UTF-8");
        assert!(decode_message(&[0; 4], &[0, 0, 0]).is_err());
    }

    #[test]
    fn bad_messages_are_refused_before_anything_is_written() {
        let dir = TempDir::new("outbox-bad");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let long = Publish {
            topic: "x".repeat(65_536),
            ..msg("", b"")
        };
        let err = store
            .outbox_push(&[msg("ok", b"1"), long], &NO_LIMITS)
            .unwrap_err();
        assert!(err.to_string().contains("65536 bytes"), "{err}");
        let qos3 = Publish {
            qos: 3,
            ..msg("a", b"")
        };
        assert!(store.outbox_push(&[qos3], &NO_LIMITS).is_err());
        assert_eq!(
            check_stats(&store),
            OutboxStats {
                first_seq: 1,
                next_seq: 1,
                ..OutboxStats::default()
            }
        );
        // The longest legal topic is fine.
        let longest = Publish {
            topic: "x".repeat(65_535),
            ..msg("", b"p")
        };
        store
            .outbox_push(std::slice::from_ref(&longest), &NO_LIMITS)
            .unwrap();
        assert_eq!(all(&store), vec![(1, longest)]);
    }

    #[test]
    fn order_holds_across_many_pushes_and_paged_reads() {
        let dir = TempDir::new("outbox-order");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let mut i = 0u64;
        let mut want = Vec::new();
        for batch in 0..60u64 {
            let msgs: Vec<Publish> = (0..batch % 4)
                .map(|_| {
                    i += 1;
                    numbered(i)
                })
                .collect();
            let (s, d) = store.outbox_push(&msgs, &NO_LIMITS).unwrap();
            assert_eq!(d, 0);
            assert_eq!(s.len(), msgs.len());
            want.extend(s.into_iter().zip(msgs));
        }
        assert_eq!(want.len() as u64, i);
        assert!(want.windows(2).all(|w| w[1].0 == w[0].0 + 1));
        // Page through as the MQTT worker would: from = last seen + 1.
        let mut got = Vec::new();
        let mut from = 0;
        loop {
            let page = store.outbox_read(from, 7).unwrap();
            let Some(&(last, _)) = page.last() else { break };
            from = last + 1;
            got.extend(page);
        }
        assert_eq!(got, want);
        check_stats(&store);
    }

    #[test]
    fn remove_deletes_acknowledged_and_ignores_missing() {
        let dir = TempDir::new("outbox-rm");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let msgs: Vec<Publish> = (1..=10).map(numbered).collect();
        let (s, _) = store.outbox_push(&msgs, &NO_LIMITS).unwrap();
        assert_eq!(s, (1..=10).collect::<Vec<_>>());
        // Middle ones, a missing one, a duplicate.
        assert_eq!(store.outbox_remove(&[5, 3, 99, 4, 3, 0]).unwrap(), 3);
        assert_eq!(seqs(&store), vec![1, 2, 6, 7, 8, 9, 10]);
        assert_eq!(
            store.outbox_read(3, 2).unwrap(),
            vec![(6, msgs[5].clone()), (7, msgs[6].clone())]
        );
        // Only missing ones, or none: nothing removed.
        assert_eq!(store.outbox_remove(&[3, 4, 5]).unwrap(), 0);
        assert_eq!(store.outbox_remove(&[]).unwrap(), 0);
        let st = check_stats(&store);
        assert_eq!((st.messages, st.first_seq, st.next_seq), (7, 1, 11));
        // The first and the last.
        assert_eq!(store.outbox_remove(&[1, 10]).unwrap(), 2);
        assert_eq!(seqs(&store), vec![2, 6, 7, 8, 9]);
        let st = check_stats(&store);
        assert_eq!((st.messages, st.first_seq, st.next_seq), (5, 2, 11));
    }

    /// The MQTT worker removes what the broker acknowledged with its next push: one
    /// commit does both, and the limits see the outbox after the removal.
    #[test]
    fn a_push_removes_the_acknowledged_in_the_same_transaction() {
        let dir = TempDir::new("outbox-push-rm");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let msgs: Vec<Publish> = (1..=6).map(numbered).collect();
        store.outbox_push(&msgs[..4], &NO_LIMITS).unwrap();
        let limits = OutboxLimits {
            max_messages: 3,
            max_bytes: u64::MAX,
        };
        // 1..=4 stored, 1..=3 acknowledged (and a missing one): 4, 5, 6 fit the limit.
        let (s, dropped) = store
            .outbox_push_removing(&msgs[4..], &[1, 2, 3, 77], &limits)
            .unwrap();
        assert_eq!((s, dropped), (vec![5, 6], 0));
        assert_eq!(seqs(&store), vec![4, 5, 6]);
        let st = check_stats(&store);
        assert_eq!(
            (st.messages, st.first_seq, st.next_seq, st.dropped),
            (3, 4, 7, 0)
        );
        // Nothing to push: the acknowledged still go.
        store.outbox_push_removing(&[], &[4, 6], &limits).unwrap();
        assert_eq!(seqs(&store), vec![5]);
        check_stats(&store);
    }

    #[test]
    fn stats_are_exact_after_push_remove_and_drop() {
        let dir = TempDir::new("outbox-stats");
        let store = Store::open(&dir.0, &opts()).unwrap();
        assert_eq!(
            check_stats(&store),
            OutboxStats {
                messages: 0,
                bytes: 0,
                first_seq: 1,
                next_seq: 1,
                dropped: 0,
            }
        );
        let limits = OutboxLimits {
            max_messages: 5,
            max_bytes: 1000,
        };
        // topic 2 + payload 10 = 12 bytes each.
        let m = |i: u8| msg(&format!("t{}", i % 10), &[i; 10]);
        store.outbox_push(&[m(0), m(1), m(2)], &limits).unwrap();
        assert_eq!(
            check_stats(&store),
            OutboxStats {
                messages: 3,
                bytes: 36,
                first_seq: 1,
                next_seq: 4,
                dropped: 0,
            }
        );
        assert_eq!(store.outbox_remove(&[2]).unwrap(), 1);
        assert_eq!(
            check_stats(&store),
            OutboxStats {
                messages: 2,
                bytes: 24,
                first_seq: 1,
                next_seq: 4,
                dropped: 0,
            }
        );
        let big = msg("big", &[7; 97]); // 100 bytes
        let (s, d) = store
            .outbox_push(&[m(3), m(4), m(5), big.clone()], &limits)
            .unwrap();
        assert_eq!((s, d), (vec![4, 5, 6, 7], 1));
        assert_eq!(seqs(&store), vec![3, 4, 5, 6, 7]);
        assert_eq!(
            check_stats(&store),
            OutboxStats {
                messages: 5,
                bytes: 4 * 12 + 100,
                first_seq: 3,
                next_seq: 8,
                dropped: 1,
            }
        );
        // Now by bytes: 200 allows the big one and at most 8 small ones.
        let limits = OutboxLimits {
            max_messages: 100,
            max_bytes: 200,
        };
        let (_, d) = store
            .outbox_push(&(10..16).map(m).collect::<Vec<_>>(), &limits)
            .unwrap();
        // 4 + 6 small (120) + big (100) = 220 > 200: the two oldest small ones go.
        assert_eq!(d, 2);
        assert_eq!(seqs(&store), vec![5, 6, 7, 8, 9, 10, 11, 12, 13]);
        let st = check_stats(&store);
        assert_eq!((st.bytes, st.dropped), (8 * 12 + 100, 3));
        // Removing everything resets the byte total exactly.
        let n = store.outbox_remove(&seqs(&store)).unwrap();
        assert_eq!(n, 9);
        let st = check_stats(&store);
        assert_eq!(
            (st.messages, st.bytes, st.first_seq, st.next_seq),
            (0, 0, 14, 14)
        );
    }

    #[test]
    fn limits_drop_the_oldest_by_count_and_by_bytes() {
        let dir = TempDir::new("outbox-limits");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let by_count = OutboxLimits {
            max_messages: 10,
            max_bytes: u64::MAX,
        };
        let mut dropped = 0;
        for i in 1..=25 {
            let (s, d) = store.outbox_push(&[numbered(i)], &by_count).unwrap();
            assert_eq!(s, vec![i]);
            dropped += d;
        }
        assert_eq!(dropped, 15);
        assert_eq!(seqs(&store), (16..=25).collect::<Vec<_>>());
        assert_eq!(all(&store)[0].1, numbered(16));
        assert_eq!(check_stats(&store).dropped, 15);

        // By bytes: "t/NN" + 8 = 12 bytes each; 50 bytes hold 4.
        let by_bytes = OutboxLimits {
            max_messages: u64::MAX,
            max_bytes: 50,
        };
        let (s, d) = store.outbox_push(&[numbered(26)], &by_bytes).unwrap();
        assert_eq!((s, d), (vec![26], 7));
        assert_eq!(seqs(&store), vec![23, 24, 25, 26]);
        let st = check_stats(&store);
        assert_eq!((st.bytes, st.dropped), (48, 22));
        // A message larger than the byte limit by itself is dropped on arrival and takes
        // nothing else with it.
        let huge = msg("h", &[0; 60]);
        let (s, d) = store.outbox_push(&[huge], &by_bytes).unwrap();
        assert_eq!((s, d), (vec![27], 1));
        assert_eq!(seqs(&store), vec![23, 24, 25, 26]);
        // Zero limits drop everything.
        let zero = OutboxLimits {
            max_messages: 0,
            max_bytes: u64::MAX,
        };
        let (s, d) = store.outbox_push(&[numbered(28)], &zero).unwrap();
        assert_eq!((s, d), (vec![28], 5));
        let st = check_stats(&store);
        assert_eq!((st.messages, st.bytes, st.dropped), (0, 0, 28));
        assert_eq!((st.first_seq, st.next_seq), (29, 29));
    }

    #[test]
    fn a_batch_larger_than_the_limit_keeps_only_the_newest() {
        let dir = TempDir::new("outbox-batch");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let limits = OutboxLimits {
            max_messages: 3,
            max_bytes: u64::MAX,
        };
        store
            .outbox_push(&[numbered(1), numbered(2)], &limits)
            .unwrap();
        let msgs: Vec<Publish> = (3..=10).map(numbered).collect();
        let (s, d) = store.outbox_push(&msgs, &limits).unwrap();
        assert_eq!(s, (3..=10).collect::<Vec<_>>());
        // The two old ones and the five oldest new ones.
        assert_eq!(d, 7);
        assert_eq!(
            all(&store),
            (8..=10).map(|i| (i, numbered(i))).collect::<Vec<_>>()
        );
        let st = check_stats(&store);
        assert_eq!((st.dropped, st.next_seq), (7, 11));
        // The same by bytes: 12 bytes each, 30 hold two.
        let limits = OutboxLimits {
            max_messages: 100,
            max_bytes: 30,
        };
        let msgs: Vec<Publish> = (11..=15).map(numbered).collect();
        let (s, d) = store.outbox_push(&msgs, &limits).unwrap();
        assert_eq!((s.len(), d), (5, 3 + 3));
        assert_eq!(seqs(&store), vec![14, 15]);
        assert_eq!(check_stats(&store).dropped, 13);
    }

    #[test]
    fn sequence_numbers_never_repeat_after_emptying_or_reopening() {
        let dir = TempDir::new("outbox-seq");
        {
            let store = Store::open(&dir.0, &opts()).unwrap();
            let (s, _) = store
                .outbox_push(&[numbered(1), numbered(2), numbered(3)], &NO_LIMITS)
                .unwrap();
            assert_eq!(s, vec![1, 2, 3]);
            assert_eq!(store.outbox_remove(&s).unwrap(), 3);
            let st = check_stats(&store);
            assert_eq!((st.messages, st.first_seq, st.next_seq), (0, 4, 4));
            let (s, _) = store.outbox_push(&[numbered(4)], &NO_LIMITS).unwrap();
            assert_eq!(s, vec![4]);
            store.outbox_remove(&s).unwrap();
        }
        {
            let store = Store::open(&dir.0, &opts()).unwrap();
            let st = check_stats(&store);
            assert_eq!((st.messages, st.first_seq, st.next_seq), (0, 5, 5));
            let (s, _) = store
                .outbox_push(&[numbered(5), numbered(6)], &NO_LIMITS)
                .unwrap();
            assert_eq!(s, vec![5, 6]);
            // Dropped numbers are not reused either.
            let zero = OutboxLimits {
                max_messages: 0,
                max_bytes: 0,
            };
            let (s, d) = store.outbox_push(&[numbered(7)], &zero).unwrap();
            assert_eq!((s, d), (vec![7], 3));
        }
        let store = Store::open(&dir.0, &opts()).unwrap();
        let st = check_stats(&store);
        assert_eq!((st.next_seq, st.dropped), (8, 3));
        let (s, _) = store.outbox_push(&[numbered(8)], &NO_LIMITS).unwrap();
        assert_eq!(s, vec![8]);
    }

    #[test]
    fn reopen_keeps_messages_and_accounting() {
        let dir = TempDir::new("outbox-reopen");
        let msgs: Vec<Publish> = (1..=20)
            .map(|i| Publish {
                retain: i % 2 == 0,
                qos: (i % 3) as u8,
                ..numbered(i)
            })
            .collect();
        let before = {
            let store = Store::open(&dir.0, &opts()).unwrap();
            store.outbox_push(&msgs, &NO_LIMITS).unwrap();
            store.outbox_remove(&[1, 2, 10]).unwrap();
            check_stats(&store)
        };
        let store = Store::open(&dir.0, &opts()).unwrap();
        assert_eq!(check_stats(&store), before);
        let want: Vec<(u64, Publish)> = (1..=20u64)
            .zip(msgs)
            .filter(|(s, _)| ![1, 2, 10].contains(s))
            .collect();
        assert_eq!(all(&store), want);
        // The rest of the store is untouched by the outbox.
        let c = store.counts().unwrap();
        assert_eq!((c.readings, c.rollups, c.sources), (0, 0, 0));
    }

    #[test]
    fn works_next_to_the_writer_thread() {
        use crate::graph::registry::Registry;
        use crate::graph::{Item, Reading, Value, ValueKind};

        let dir = TempDir::new("outbox-concurrent");
        let store = Arc::new(Store::open(&dir.0, &opts()).unwrap());
        let reg = Arc::new(Registry::new());
        let src = reg.intern("system:x", "u", ValueKind::Number);
        let h = crate::store::writer::spawn(store.clone(), reg, 4);
        let mqtt = {
            let store = store.clone();
            std::thread::spawn(move || {
                let limits = OutboxLimits {
                    max_messages: 1000,
                    max_bytes: 1 << 20,
                };
                let mut acked = 0;
                for i in 1..=200 {
                    let (s, _) = store.outbox_push(&[numbered(i)], &limits).unwrap();
                    if i % 2 == 0 {
                        acked += store.outbox_remove(&s).unwrap();
                    }
                }
                acked
            })
        };
        for b in 0..20 {
            let batch: Vec<Item> = (0..100)
                .map(|i| Item::Reading(Reading::new(src.id, b * 100 + i, Value::Number(i as f64))))
                .collect();
            h.batches.send_blocking(batch).unwrap();
        }
        assert_eq!(mqtt.join().unwrap(), 100);
        drop(h.batches);
        h.thread.join().unwrap();
        assert_eq!(store.counts().unwrap().readings, 2000);
        assert_eq!(
            seqs(&store),
            (1..=200).filter(|i| i % 2 == 1).collect::<Vec<_>>()
        );
        check_stats(&store);
    }
}
