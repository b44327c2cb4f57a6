//! Named event counters a node keeps and status reads from another thread.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct Counters {
    names: &'static [&'static str],
    values: Box<[AtomicU64]>,
}

impl Counters {
    pub fn new(names: &'static [&'static str]) -> Counters {
        Counters {
            names,
            values: names.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Add one to counter `index` (an index into the `names` given to [`Counters::new`]).
    pub fn inc(&self, index: usize) {
        self.values[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, index: usize, n: u64) {
        self.values[index].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, index: usize) -> u64 {
        self.values[index].load(Ordering::Relaxed)
    }

    /// Value by name; 0 for an unknown name.
    pub fn by_name(&self, name: &str) -> u64 {
        self.names
            .iter()
            .position(|n| *n == name)
            .map_or(0, |i| self.get(i))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.names
            .iter()
            .zip(self.values.iter())
            .map(|(n, v)| (*n, v.load(Ordering::Relaxed)))
    }
}
