//! Read-side queries: latest value, raw history, rollups.
//!
//! Every query runs in its own short read transaction; readers never block the writer.

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
        match self.readings.rev_range(&rtxn, &range)?.next() {
            Some(kv) => {
                let (k, v) = kv?;
                Ok(Some(codec::decode_reading(k, v)?))
            }
            None => Ok(None),
        }
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
        let mut out = Vec::with_capacity(limit.min(4096));
        for kv in self.readings.rev_range(&rtxn, &range)?.take(limit) {
            let (k, v) = kv?;
            out.push(codec::decode_reading(k, v)?);
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
