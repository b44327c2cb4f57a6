//! How long to wait before the next connect: the reference client's capped doubling
//! (oc `docs/gateway/protocol/versioning.md`: 1 s initial, 30 s max), reset by a
//! successful handshake, so a wrong token is retried slowly rather than in a loop.

use std::time::Duration;

/// Capped exponential backoff: `min`, `2·min`, `4·min`, ... up to `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay after a failure; the one after it is twice as long, up to `max`.
    pub(crate) fn fail(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// A connection came up: the next failure waits `min` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_starts_over_after_a_success() {
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(1), s(30));
        let waits: Vec<u64> = (0..7).map(|_| b.fail().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.fail(), s(1));
    }
}
