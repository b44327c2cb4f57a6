//! The values that flow through the graph. Everything here is `Copy` and fixed-size, so
//! moving a reading through a channel never touches the heap.

/// Microseconds since the Unix epoch (UTC). One integer type for every timestamp and
/// duration in the graph keeps arithmetic cheap and tests free of clocks.
pub type Micros = i64;

pub const MICROS_PER_SEC: Micros = 1_000_000;

/// An interned source name such as `system:cpu_temp`. Ids are dense (0, 1, 2, ...), stable
/// across restarts (the store persists the mapping) and index per-source state vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u32);

impl SourceId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What kind of value a source produces; used by validation (a deadband on a boolean
/// source is an error) and by the store codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    Number,
    Bool,
    Text,
}

impl ValueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::Number => "number",
            ValueKind::Bool => "bool",
            ValueKind::Text => "text",
        }
    }
}

/// Text short enough to live inline (states like "on", "charging", a firmware tag).
/// Longer text is truncated at a char boundary by [`ShortText::new`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortText {
    len: u8,
    bytes: [u8; ShortText::CAPACITY],
}

impl ShortText {
    pub const CAPACITY: usize = 22;

    pub fn new(s: &str) -> ShortText {
        let mut end = s.len().min(Self::CAPACITY);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; Self::CAPACITY];
        bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        ShortText {
            len: end as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from a &str cut at a char boundary.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Debug for ShortText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Number(f64),
    Bool(bool),
    Text(ShortText),
}

impl Value {
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Number(_) => ValueKind::Number,
            Value::Bool(_) => ValueKind::Bool,
            Value::Text(_) => ValueKind::Text,
        }
    }

    /// Numbers as themselves, booleans as 0/1 (so rollups give a duty cycle), text as none.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Number(x) => Some(x),
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Value::Text(_) => None,
        }
    }
}

/// A value as JSON, exactly (HTTP, status, MQTT payloads and the agent's tools all show
/// values this way): numbers as numbers (`null` when not finite: JSON has no NaN),
/// booleans, text.
pub fn value_json(v: &Value) -> serde_json::Value {
    match *v {
        Value::Number(x) => serde_json::Value::from(x),
        Value::Bool(b) => serde_json::Value::Bool(b),
        Value::Text(t) => serde_json::Value::String(t.as_str().to_owned()),
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // For people (log lines): rounded, see `Approx`. Exact values go out as JSON.
            Value::Number(x) => write!(f, "{}", super::shown::Approx(*x)),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Text(t) => f.write_str(t.as_str()),
        }
    }
}

/// Bits in [`Reading::flags`].
pub mod flags {
    /// Outside the filter's valid range: kept as measured, never clamped.
    pub const OUT_OF_RANGE: u8 = 1;
    /// Passed only because the heartbeat interval elapsed (the value did not change).
    pub const HEARTBEAT: u8 = 2;
}

/// One measurement. The unit lives in the registry next to the name: a source's unit
/// does not change from reading to reading, so it is not carried along.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub source: SourceId,
    pub ts: Micros,
    pub value: Value,
    pub flags: u8,
}

impl Reading {
    pub fn new(source: SourceId, ts: Micros, value: Value) -> Reading {
        Reading {
            source,
            ts,
            value,
            flags: 0,
        }
    }
}

/// Downsampled statistics of one source over one bucket (`level` indexes the retention
/// stage's configured rollup levels, finest first).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rollup {
    pub source: SourceId,
    pub level: u8,
    pub bucket_start: Micros,
    pub count: u32,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

impl Rollup {
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }
}

/// Which table a prune applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PruneTarget {
    Raw,
    Rollup(u8),
}

/// "Delete at most `max` rows of `target` older than `older_than`": age-off in small
/// batches, carried to the store like any other item so it never runs on the hot path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prune {
    pub target: PruneTarget,
    pub older_than: Micros,
    pub max: u32,
}

/// The adaptive stage's control event: a source turned volatile (or calm again).
/// The observation loop (a later issue) looks sooner when the world is changing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    pub source: SourceId,
    pub ts: Micros,
    pub volatile: bool,
    /// The volatility score that triggered the change (coefficient of variation).
    pub score: f32,
}

/// What travels along an edge. Stages handle the variants they care about and forward
/// the rest unchanged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Item {
    Reading(Reading),
    Rollup(Rollup),
    Prune(Prune),
    Change(Change),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_stay_small() {
        // Channels move these by value; growth here costs every hop.
        assert!(
            std::mem::size_of::<Item>() <= 64,
            "{}",
            std::mem::size_of::<Item>()
        );
    }

    #[test]
    fn short_text_truncates_at_char_boundary() {
        let t = ShortText::new("ééééééééééééééé"); // 30 bytes
        assert!(t.as_str().len() <= ShortText::CAPACITY);
        assert!(t.as_str().chars().all(|c| c == 'é'));
    }
}
