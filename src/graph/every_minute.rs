//! A count that is reported at most once a minute: for log lines about something that can
//! happen thousands of times a second (a full lossy edge dropping readings).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::Micros;

/// How often a report may be made.
pub const EVERY: Micros = 60_000_000;

/// Events counted since the last report, and when that was. `note` says when to report
/// and how many to report: the first event at once, then the ones gathered over at least
/// a minute, so a log sees one line a minute at most with every event in some line's count
/// (the last ones in the next line, whenever it comes). Lock-free; a race between two
/// threads at most delays a count to the next report.
#[derive(Default)]
pub struct EveryMinute {
    last: AtomicI64,
    pending: AtomicU64,
}

impl EveryMinute {
    /// Count one event at `now`; `Some(n)` when this one should be reported, with the
    /// number of events the report covers (this one included).
    pub fn note(&self, now: Micros) -> Option<u64> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now - last < EVERY {
            return None;
        }
        if self
            .last
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        Some(self.pending.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_is_reported_then_at_most_once_a_minute_with_the_count() {
        let e = EveryMinute::default();
        let t0 = 1_000_000;
        assert_eq!(e.note(t0), Some(1));
        for i in 1..1000 {
            assert_eq!(e.note(t0 + i * 1000), None);
        }
        // A minute after the last report: everything since it, in one line.
        assert_eq!(e.note(t0 + EVERY), Some(1000));
        assert_eq!(e.note(t0 + EVERY + 1), None);
        assert_eq!(e.note(t0 + 3 * EVERY), Some(2));
    }
}
