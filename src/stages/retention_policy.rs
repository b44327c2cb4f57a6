//! How long readings are kept, as data: the raw window and the rollup levels, and which
//! of them answers a history query. Kept apart from the retention stage (which imports the
//! plugin interface) so the tools, HTTP and the runner can read the policy without
//! depending on the stage.

use crate::graph::Micros;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RollupLevel {
    /// Bucket width.
    pub every: Micros,
    /// How long buckets of this level are kept.
    pub keep: Micros,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RetentionParams {
    /// How long raw readings are kept.
    pub raw_for: Micros,
    /// Rollup levels, finest first (level index = position).
    pub rollups: Vec<RollupLevel>,
    /// How often age-off runs.
    pub prune_every: Micros,
    /// Most rows deleted per table per age-off run.
    pub prune_batch: u32,
}

impl Default for RetentionParams {
    fn default() -> Self {
        RetentionParams {
            raw_for: 7 * 86_400_000_000,
            rollups: vec![
                RollupLevel {
                    every: 60_000_000,
                    keep: 30 * 86_400_000_000,
                },
                RollupLevel {
                    every: 3_600_000_000,
                    keep: 365 * 86_400_000_000,
                },
            ],
            prune_every: 60_000_000,
            prune_batch: 1000,
        }
    }
}

impl RetentionParams {
    /// Where a history of `window` µs is answered from: `None` for raw readings (the
    /// window fits the raw retention, or there are no rollups), else the finest rollup
    /// level that still covers it (the coarsest when none does).
    pub fn level_for(&self, window: Micros) -> Option<usize> {
        if window <= self.raw_for || self.rollups.is_empty() {
            return None;
        }
        Some(
            self.rollups
                .iter()
                .position(|l| l.keep >= window)
                .unwrap_or(self.rollups.len() - 1),
        )
    }
}
