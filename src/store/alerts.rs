//! The alert queue: messages for a person (`notify_human`) waiting for the OpenClaw
//! gateway to acknowledge them, as the MQTT outbox (`outbox.rs`) holds messages for the
//! broker. An alert is written here first and removed only when the gateway acknowledged
//! it; after a gateway outage or a restart what is left is sent again, oldest first.
//!
//! On disk (database `alerts`, plus three `meta` keys):
//!
//! | db       | key               | value                                           |
//! |----------|-------------------|-------------------------------------------------|
//! | `alerts` | seq u64 BE        | the alert as the caller encoded it (JSON bytes)  |
//! | `meta`   | `alerts_next_seq` | u64 BE: the next sequence number to hand out     |
//! | `meta`   | `alerts_bytes`    | u64 BE: sum of the value lengths present         |
//! | `meta`   | `alerts_dropped`  | u64 BE: alerts dropped to stay within the limits |
//!
//! Sequence numbers start at 1 and are never reused. Every method is one short
//! transaction.

use heed::PutFlags;

use super::codec::Corrupt;
use super::{Store, StoreError};

/// How much the queue may hold; past either limit the oldest alerts are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertLimits {
    pub max_alerts: u64,
    pub max_bytes: u64,
}

/// The queue's size and what it lost, over the store's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertStats {
    pub queued: u64,
    pub bytes: u64,
    /// Alerts dropped to stay within the limits (persisted).
    pub dropped: u64,
}

const META_NEXT_SEQ: &[u8] = b"alerts_next_seq";
const META_BYTES: &[u8] = b"alerts_bytes";
const META_DROPPED: &[u8] = b"alerts_dropped";

fn seq_of(k: &[u8]) -> Result<u64, Corrupt> {
    Ok(u64::from_be_bytes(
        k.try_into().map_err(|_| Corrupt("alerts key length"))?,
    ))
}

impl Store {
    /// Append one alert; returns its sequence number and how many alerts (the oldest,
    /// or this one when it alone exceeds `max_bytes`) were dropped to stay within `limits`.
    pub fn alerts_push(
        &self,
        alert: &[u8],
        limits: &AlertLimits,
    ) -> Result<(u64, u64), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let after_last = match self.alerts.last(&wtxn)? {
            Some((k, _)) => seq_of(k)?.saturating_add(1),
            None => 1,
        };
        let seq = self
            .meta_count(&wtxn, META_NEXT_SEQ)?
            .max(after_last)
            .max(1);
        let mut bytes = self.meta_count(&wtxn, META_BYTES)?;
        let mut dropped = 0u64;
        if alert.len() as u64 > limits.max_bytes || limits.max_alerts == 0 {
            dropped = 1;
        } else {
            self.alerts
                .put_with_flags(&mut wtxn, PutFlags::APPEND, &seq.to_be_bytes(), alert)?;
            bytes += alert.len() as u64;
            let mut count = self.alerts.len(&wtxn)?;
            let mut it = self.alerts.iter_mut(&mut wtxn)?;
            while count > limits.max_alerts || bytes > limits.max_bytes {
                match it.next() {
                    Some(Ok((_, v))) => {
                        let vb = v.len() as u64;
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
        self.put_meta_u64(&mut wtxn, META_NEXT_SEQ, seq + 1)?;
        self.put_meta_u64(&mut wtxn, META_BYTES, bytes)?;
        if dropped > 0 {
            let total = self.meta_count(&wtxn, META_DROPPED)?;
            self.put_meta_u64(&mut wtxn, META_DROPPED, total.saturating_add(dropped))?;
        }
        wtxn.commit()?;
        if let Some(wake) = self.alerts_wake.get() {
            wake();
        }
        Ok((seq, dropped))
    }

    /// Call `wake` whenever an alert was queued. Set once.
    pub fn set_alerts_wake(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.alerts_wake.set(wake);
    }

    /// Up to `max` of the oldest alerts waiting, oldest first.
    pub fn alerts_read(&self, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for kv in self.alerts.iter(&rtxn)?.take(max) {
            let (k, v) = kv?;
            out.push((seq_of(k)?, v.to_vec()));
        }
        Ok(out)
    }

    /// Remove acknowledged alerts (missing seqs are ignored); how many were there.
    pub fn alerts_remove(&self, seqs: &[u64]) -> Result<u64, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let mut bytes = self.meta_count(&wtxn, META_BYTES)?;
        let mut removed = 0;
        for seq in seqs {
            let key = seq.to_be_bytes();
            let Some(v) = self.alerts.get(&wtxn, &key)? else {
                continue;
            };
            bytes = bytes.saturating_sub(v.len() as u64);
            self.alerts.delete(&mut wtxn, &key)?;
            removed += 1;
        }
        if removed > 0 {
            self.put_meta_u64(&mut wtxn, META_BYTES, bytes)?;
            wtxn.commit()?;
        }
        Ok(removed)
    }

    pub fn alerts_stats(&self) -> Result<AlertStats, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(AlertStats {
            queued: self.alerts.len(&rtxn)?,
            bytes: self.meta_count(&rtxn, META_BYTES)?,
            dropped: self.meta_count(&rtxn, META_DROPPED)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;
    use crate::store::tests::TempDir;

    const LIMITS: AlertLimits = AlertLimits {
        max_alerts: 3,
        max_bytes: 20,
    };

    #[test]
    fn alerts_keep_their_order_survive_a_reopen_and_drop_the_oldest() {
        let dir = TempDir::new("alerts");
        let opts = StoreOptions { map_size: 16 << 20 };
        {
            let s = Store::open(&dir.0, &opts).unwrap();
            assert_eq!(s.alerts_push(b"one", &LIMITS).unwrap(), (1, 0));
            assert_eq!(s.alerts_push(b"two", &LIMITS).unwrap(), (2, 0));
        }
        let s = Store::open(&dir.0, &opts).unwrap();
        assert_eq!(
            s.alerts_read(5).unwrap(),
            [(1, b"one".to_vec()), (2, b"two".to_vec())]
        );
        assert_eq!(s.alerts_remove(&[1]).unwrap(), 1);
        assert_eq!(s.alerts_remove(&[1]).unwrap(), 0, "removed once");
        assert_eq!(s.alerts_read(1).unwrap(), [(2, b"two".to_vec())]);
        // Over the count: the oldest goes, counted.
        for m in [&b"three"[..], b"four", b"five"] {
            s.alerts_push(m, &LIMITS).unwrap();
        }
        assert_eq!(s.alerts_read(1).unwrap()[0].1, b"three");
        let st = s.alerts_stats().unwrap();
        assert_eq!((st.queued, st.bytes, st.dropped), (3, 13, 1));
        // Over the bytes: the oldest goes again.
        assert_eq!(s.alerts_push(b"0123456789", &LIMITS).unwrap(), (6, 1));
        assert_eq!(s.alerts_read(1).unwrap()[0].1, b"four");
        // One alone over the bytes is dropped itself; numbers are never reused.
        assert_eq!(s.alerts_push(&[b'x'; 21], &LIMITS).unwrap(), (7, 1));
        let st = s.alerts_stats().unwrap();
        assert_eq!((st.queued, st.bytes, st.dropped), (3, 18, 3));
        assert_eq!(s.alerts_remove(&[4, 5, 6]).unwrap(), 3);
        assert_eq!(s.alerts_stats().unwrap().bytes, 0);
        assert_eq!(s.alerts_push(b"again", &LIMITS).unwrap().0, 8);
    }
}
