//! The interface every stage implements: a plain state machine. No threads, channels or
//! clocks inside a stage; time arrives as reading timestamps and as `now` on ticks, so a
//! test drives a stage with a simulated clock.

use std::sync::Arc;

use super::counters::Counters;
use super::reading::{Item, Micros, SourceId};

/// "Sample this source every `interval` from now on": the adaptive stage's feedback,
/// applied by the runner to the source's live interval (which wakes the source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feedback {
    pub source: SourceId,
    pub interval: Micros,
}

/// Where a stage puts what it emits. The runner reuses one `Out` per stage, so emitting
/// does not allocate once the vectors have grown to their working size.
#[derive(Default, Debug)]
pub struct Out {
    pub items: Vec<Item>,
    pub feedback: Vec<Feedback>,
}

impl Out {
    pub fn emit(&mut self, item: Item) {
        self.items.push(item);
    }

    pub fn feedback(&mut self, source: SourceId, interval: Micros) {
        self.feedback.push(Feedback { source, interval });
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.feedback.clear();
    }
}

pub trait Stage {
    /// Take one item; emit zero or more. Items a stage does not handle (rollups, prunes,
    /// changes reaching a filter, say) must be forwarded unchanged.
    fn on_item(&mut self, item: Item, out: &mut Out);

    /// When the stage next needs `on_tick`, as an absolute time; `None` while it needs
    /// none. The runner asks after every wake-up and calls `on_tick` once at start, so a
    /// stage with nothing pending costs no wake-ups at all.
    fn next_tick(&self) -> Option<Micros> {
        None
    }

    fn on_tick(&mut self, _now: Micros, _out: &mut Out) {}

    /// The input closed (shutdown): emit whatever is held back (open rollup buckets).
    fn on_close(&mut self, _now: Micros, _out: &mut Out) {}

    /// Counters shown in status, by name.
    fn counters(&self) -> Arc<Counters>;
}
