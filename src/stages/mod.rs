//! Stages: plain state machines between sources and sinks (see `graph::stage::Stage`).
//!
//! - `filter`: drop what carries no information (deadband, range, debounce, min interval,
//!   heartbeat).
//! - `adaptive`: measure each source's volatility and move its sampling interval.
//! - `retention`: rollups for the long term and age-off of old rows.

pub mod adaptive;
pub mod filter;
pub mod retention;
pub mod retention_policy;

/// A per-source parameter: a default for every source plus rules for named sources.
/// A rule's key is a full id (`system:cpu_temp`) or a local id (`cpu_temp`, matching any
/// type); exact full ids win over local ids, which win over the default.
#[derive(Clone, Debug, PartialEq)]
pub struct PerSource<T> {
    pub default: Option<T>,
    pub rules: Vec<(String, T)>,
}

impl<T> Default for PerSource<T> {
    fn default() -> Self {
        PerSource {
            default: None,
            rules: Vec::new(),
        }
    }
}

impl<T: Copy> PerSource<T> {
    pub fn all(value: T) -> PerSource<T> {
        PerSource {
            default: Some(value),
            rules: Vec::new(),
        }
    }

    pub fn none() -> PerSource<T> {
        PerSource::default()
    }

    /// The value for a source with full id `full` (resolve once per source, not per reading).
    pub fn for_name(&self, full: &str) -> Option<T> {
        if let Some((_, v)) = self.rules.iter().find(|(k, _)| k == full) {
            return Some(*v);
        }
        let local = full.split_once(':').map_or(full, |(_, l)| l);
        if let Some((_, v)) = self.rules.iter().find(|(k, _)| k == local) {
            return Some(*v);
        }
        self.default
    }

    pub fn is_set(&self) -> bool {
        self.default.is_some() || !self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::PerSource;

    #[test]
    fn exact_beats_local_beats_default() {
        let p = PerSource {
            default: Some(1.0),
            rules: vec![("cpu_temp".into(), 2.0), ("system:cpu_temp".into(), 3.0)],
        };
        assert_eq!(p.for_name("system:cpu_temp"), Some(3.0));
        assert_eq!(p.for_name("other:cpu_temp"), Some(2.0));
        assert_eq!(p.for_name("system:load_avg"), Some(1.0));
        assert_eq!(PerSource::<f64>::none().for_name("x:y"), None);
    }
}
