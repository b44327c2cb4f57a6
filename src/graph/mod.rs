//! The engine: the reading type, the stage interface, edges, and the runner that wires a
//! validated pipeline into tasks on one single-threaded executor.

pub mod counters;
pub mod edge;
pub mod every_minute;
pub mod histogram;
pub mod origin;
pub mod reading;
pub mod registry;
pub mod runner;
pub mod shown;
pub mod stage;

pub use reading::{
    Change, Item, MICROS_PER_SEC, Micros, Prune, PruneTarget, Reading, Rollup, ShortText, SourceId,
    Value, ValueKind,
};
