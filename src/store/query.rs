//! Read-side queries: latest value, raw history, rollups.
//!
//! Every query runs in its own short read transaction; readers never block the writer.
//! Raw readings are the head's and `readings`' together (see `head`), read in the same
//! transaction so a fold in between never shows a reading twice or not at all.

use std::ops::Bound;

use super::{Store, StoreError, codec};
use crate::graph::{Micros, Reading, Rollup, SourceId};

impl Store {
    /// The newest reading of one source.
    pub fn latest(&self, source: SourceId) -> Result<Option<Reading>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let lo = codec::reading_key(source, Micros::MIN);
        let hi = codec::reading_key(source, Micros::MAX);
        let range = (
            Bound::Included(lo.as_slice()),
            Bound::Included(hi.as_slice()),
        );
        let folded = match self.readings.rev_range(&rtxn, &range)?.next() {
            Some(kv) => {
                let (k, v) = kv?;
                Some(codec::decode_reading(k, v)?)
            }
            None => None,
        };
        // Only head rows newer than the newest folded one can be newer.
        let after = match folded {
            Some(r) => match r.ts.checked_add(1) {
                Some(t) => t,
                None => return Ok(folded),
            },
            None => Micros::MIN,
        };
        let lo = codec::head_key(after, SourceId(0));
        let range = (Bound::Included(lo.as_slice()), Bound::Unbounded);
        for kv in self.head.rev_range(&rtxn, &range)? {
            let (k, v) = kv?;
            if k.get(8..) == Some(source.0.to_be_bytes().as_slice()) {
                return Ok(Some(codec::decode_head_reading(k, v)?));
            }
        }
        Ok(folded)
    }

    /// The newest reading of every source that has one, in source id order.
    ///
    /// A reverse skip scan: the last key of the table, then for each source found one seek
    /// to the last key below that source's first possible key. One seek per source, and it
    /// also finds readings of sources missing from the `sources` table.
    pub fn latest_all(&self) -> Result<Vec<Reading>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        let mut cur = self.readings.last(&rtxn)?;
        while let Some((k, v)) = cur {
            let r = codec::decode_reading(k, v)?;
            out.push(r);
            let below = codec::reading_key(r.source, Micros::MIN);
            cur = self.readings.get_lower_than(&rtxn, below.as_slice())?;
        }
        out.reverse();
        self.head_latest_all(&rtxn, &mut out)?;
        Ok(out)
    }

    /// Raw readings of `source` with `from <= ts < to`, newest first, at most `limit`.
    pub fn history(
        &self,
        source: SourceId,
        from: Micros,
        to: Micros,
        limit: usize,
    ) -> Result<Vec<Reading>, StoreError> {
        if from >= to || limit == 0 {
            return Ok(Vec::new());
        }
        let rtxn = self.env.read_txn()?;
        let lo = codec::reading_key(source, from);
        let hi = codec::reading_key(source, to);
        let range = (
            Bound::Included(lo.as_slice()),
            Bound::Excluded(hi.as_slice()),
        );
        let head = self.head_history(&rtxn, source, from, to, limit)?;
        let mut head = head.into_iter().peekable();
        let mut folded = self.readings.rev_range(&rtxn, &range)?.peekable();
        let mut out = Vec::with_capacity(limit.min(4096));
        // Merge the two, newest first.
        while out.len() < limit {
            let folded_ts = match folded.peek() {
                Some(Ok((k, _))) => Some(codec::decode_reading_key(k)?.1),
                Some(Err(_)) => {
                    folded.next().transpose()?;
                    None
                }
                None => None,
            };
            let r = match (head.peek(), folded_ts) {
                (Some(h), Some(f)) if h.ts < f => None,
                (Some(_), _) => head.next(),
                (None, Some(_)) => None,
                (None, None) => break,
            };
            match r {
                Some(r) => out.push(r),
                None => {
                    if let Some(kv) = folded.next() {
                        let (k, v) = kv?;
                        out.push(codec::decode_reading(k, v)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Rollups of `source` at `level` with `from <= bucket_start < to`, newest first.
    pub fn rollups(
        &self,
        source: SourceId,
        level: u8,
        from: Micros,
        to: Micros,
        limit: usize,
    ) -> Result<Vec<Rollup>, StoreError> {
        if from >= to || limit == 0 {
            return Ok(Vec::new());
        }
        let rtxn = self.env.read_txn()?;
        let lo = codec::rollup_key(level, source, from);
        let hi = codec::rollup_key(level, source, to);
        let range = (
            Bound::Included(lo.as_slice()),
            Bound::Excluded(hi.as_slice()),
        );
        let mut out = Vec::with_capacity(limit.min(4096));
        for kv in self.rollups.rev_range(&rtxn, &range)?.take(limit) {
            let (k, v) = kv?;
            out.push(codec::decode_rollup(k, v)?);
        }
        Ok(out)
    }
}
