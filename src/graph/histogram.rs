//! Latencies counted in fixed buckets, lock-free: what `/metrics` shows as a Prometheus
//! histogram and `/api/status` as the same counts. Observing is two atomic adds, so the
//! MQTT and LLM threads can time every message and answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value as Json, json};

/// Upper bounds of the buckets, in seconds: from a PUBACK on loopback (milliseconds) to a
/// small model thinking on a Pi (minutes).
pub const BOUNDS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Counts per bucket (not cumulative; the last one is above every bound), their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BOUNDS.iter().position(|&b| s <= b).unwrap_or(BOUNDS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// `{count, sum_s, buckets: [[le, cumulative count], ...]}`; the last bucket's `le`
    /// is `"+Inf"`.
    pub fn json(&self) -> Json {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(BOUNDS.len() + 1);
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Ordering::Relaxed);
            let le = BOUNDS.get(i).map_or(json!("+Inf"), |b| json!(b));
            buckets.push(json!([le, total]));
        }
        json!({
            "count": total,
            "sum_s": self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            "buckets": buckets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_with_the_sum() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(400));
        let j = h.json();
        assert_eq!(j["count"], 4);
        assert_eq!(j["buckets"][0], json!([0.001, 1]));
        assert_eq!(j["buckets"][1], json!([0.005, 3]));
        assert_eq!(j["buckets"][11], json!([300.0, 3]));
        assert_eq!(j["buckets"][12], json!(["+Inf", 4]));
        assert!((j["sum_s"].as_f64().unwrap() - 400.0065).abs() < 1e-9);
    }
}
