//! How a source retries a device that stopped answering (a bus NACK, a missing sysfs
//! directory, no echo): capped exponential backoff, so a missing sensor costs a look a
//! minute at most and is found again soon after it is back. One rule for every kind.

use crate::graph::Micros;

/// The longest wait between looks for a missing device.
pub const BACKOFF_MAX: Micros = 60_000_000;

/// Capped exponential backoff while a device is missing: the first retry after `start`
/// (the sampling interval, at least 1 s and at most [`BACKOFF_MAX`]), doubling up to
/// [`BACKOFF_MAX`]; `reset` when the device answers again.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    start: Micros,
    next: Micros,
}

impl Backoff {
    /// Starting at `start` (at least 1 s and at most the cap).
    pub fn new(start: Micros) -> Backoff {
        let start = start.clamp(1_000_000, BACKOFF_MAX);
        Backoff { start, next: start }
    }

    /// The wait before the next look; the one after is twice as long (capped).
    pub fn next_delay(&mut self) -> Micros {
        let d = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        d
    }

    /// The device answers again: the next failure starts from `start`.
    pub fn reset(&mut self) {
        self.next = self.start;
    }

    /// Start again from `start` (the sampling interval may have changed meanwhile).
    pub fn restart(&mut self, start: Micros) {
        *self = Backoff::new(start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute_and_resets() {
        let mut b = Backoff::new(10_000_000);
        let got: Vec<Micros> = (0..5).map(|_| b.next_delay() / 1_000_000).collect();
        assert_eq!(got, [10, 20, 40, 60, 60]);
        b.reset();
        assert_eq!(b.next_delay(), 10_000_000);
        assert_eq!(
            Backoff::new(100_000).next_delay(),
            1_000_000,
            "at least 1 s"
        );
        assert_eq!(
            Backoff::new(300_000_000).next_delay(),
            BACKOFF_MAX,
            "a sensor sampled every 5 minutes is looked for every minute while missing"
        );
    }
}
