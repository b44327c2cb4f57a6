//! Liveness of the gateway connection: the gateway sends a `tick` event every
//! `policy.tickIntervalMs`; like the reference client we close (code 4000) and reconnect
//! after twice that interval without hearing anything. Time is passed in (milliseconds
//! of a monotonic clock), so it is tested without waiting.

/// Tracks when the gateway was last heard from.
#[derive(Debug)]
pub(crate) struct TickWatchdog {
    interval_ms: u64,
    last_heard_ms: u64,
}

impl TickWatchdog {
    /// Started at `now_ms` (the handshake counts as hearing from the gateway).
    pub(crate) fn new(interval_ms: u64, now_ms: u64) -> TickWatchdog {
        TickWatchdog {
            interval_ms: interval_ms.max(1),
            last_heard_ms: now_ms,
        }
    }

    /// Any frame from the gateway (a tick or anything else) proves it alive.
    pub(crate) fn heard(&mut self, now_ms: u64) {
        self.last_heard_ms = self.last_heard_ms.max(now_ms);
    }

    /// When silence becomes too long: two tick intervals after the last frame.
    pub(crate) fn deadline_ms(&self) -> u64 {
        self.last_heard_ms + 2 * self.interval_ms
    }

    /// Whether the connection must be closed and reconnected.
    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        now_ms > self.deadline_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tick_intervals_of_silence_expire_it_and_any_frame_renews_it() {
        // A mock clock: plain numbers of milliseconds.
        let mut w = TickWatchdog::new(30_000, 1_000);
        assert!(!w.expired(31_000), "one interval of silence is normal");
        assert!(!w.expired(61_000), "exactly two intervals is still alive");
        assert!(w.expired(61_001));
        w.heard(50_000);
        assert_eq!(w.deadline_ms(), 110_000);
        assert!(!w.expired(100_000));
        assert!(w.expired(110_001));
        // A late-arriving older timestamp never moves the deadline back.
        w.heard(10_000);
        assert_eq!(w.deadline_ms(), 110_000);
    }
}
