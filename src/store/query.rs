//! Read-side queries: latest value, raw history, rollups.

use super::{Store, StoreError};
use crate::graph::{Micros, Reading, Rollup, SourceId};

impl Store {
    /// The newest reading of one source.
    pub fn latest(&self, _source: SourceId) -> Result<Option<Reading>, StoreError> {
        Ok(None)
    }

    /// The newest reading of every source that has one.
    pub fn latest_all(&self) -> Result<Vec<Reading>, StoreError> {
        Ok(Vec::new())
    }

    /// Raw readings of `source` with `from <= ts < to`, newest first, at most `limit`.
    pub fn history(
        &self,
        _source: SourceId,
        _from: Micros,
        _to: Micros,
        _limit: usize,
    ) -> Result<Vec<Reading>, StoreError> {
        Ok(Vec::new())
    }

    /// Rollups of `source` at `level` with `from <= bucket_start < to`, newest first.
    pub fn rollups(
        &self,
        _source: SourceId,
        _level: u8,
        _from: Micros,
        _to: Micros,
        _limit: usize,
    ) -> Result<Vec<Rollup>, StoreError> {
        Ok(Vec::new())
    }
}
