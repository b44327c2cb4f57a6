//! When to observe next: look often while the world is changing, rarely while it is calm.
//!
//! The original looked every 15 minutes whatever happened. [`ObserveSchedule`] is a pure
//! state machine fed with the adaptive stage's [`Change`] events and told when a run
//! happened; the caller asks [`ObserveSchedule::next_due`] and sleeps until then (or until
//! the next `Change`, which may pull the due time earlier).
//!
//! Rules, with `last` the time of the last run (or of construction):
//!
//! * The world is *volatile* when some source was volatile at any moment since `last`:
//!   a `Change { volatile: true }` arrived since then, or a source's latest `Change` said
//!   volatile at `last` (it may have turned so long before, and may have calmed since).
//!   Otherwise it is *calm*.
//! * Volatile: the next run is due at `last + min_interval`. Calm: at `last + max_interval`.
//! * So a volatile change arriving between runs moves the due time from
//!   `last + max_interval` to `last + min_interval` at once; if that moment has already
//!   passed, the run is due immediately (`next_due() <= now`), yet never less than
//!   `min_interval` after the last run.
//! * A source that turns volatile and calms again between two runs still makes the next
//!   run come at `min_interval` (the change happened; the LLM should see it). After that
//!   run, if nothing is volatile any more, the schedule relaxes to `max_interval`.
//! * Construction counts as a run at `now`, and the first run is due `min_interval`
//!   later: the LLM gets a first look soon after start, once a window of data exists.
//!
//! Hence, if the caller runs when due: consecutive runs are at least `min_interval` and
//! at most `max_interval` apart.

use std::collections::BTreeSet;

use crate::graph::{Change, Micros, SourceId};

#[derive(Clone, Debug)]
pub struct ObserveSchedule {
    min_interval: Micros,
    max_interval: Micros,
    last_run: Micros,
    /// Sources whose latest `Change` said volatile.
    volatile_sources: BTreeSet<SourceId>,
    /// Some source was volatile at some moment since the last run (or this is the first
    /// run).
    volatile_since_run: bool,
}

impl ObserveSchedule {
    /// `min_interval` is raised to at least 1 µs and `max_interval` to at least
    /// `min_interval`. The first run is due at `now + min_interval`.
    pub fn new(min_interval: Micros, max_interval: Micros, now: Micros) -> ObserveSchedule {
        let min_interval = min_interval.max(1);
        ObserveSchedule {
            min_interval,
            max_interval: max_interval.max(min_interval),
            last_run: now,
            volatile_sources: BTreeSet::new(),
            volatile_since_run: true,
        }
    }

    /// Feeds one of the adaptive stage's control events. Arrival order is what counts:
    /// `change.ts` and the arrival time are not compared with the last run (a volatile
    /// change that arrives after a run counts for the next one even if the stage stamped
    /// it slightly earlier). `_now` is accepted so that time-dependent rules can be added
    /// without changing callers.
    pub fn on_change(&mut self, change: &Change, _now: Micros) {
        if change.volatile {
            self.volatile_sources.insert(change.source);
            self.volatile_since_run = true;
        } else {
            self.volatile_sources.remove(&change.source);
        }
    }

    /// When the next run is due. May be in the past: then run now.
    pub fn next_due(&self) -> Micros {
        let interval = if self.is_volatile() {
            self.min_interval
        } else {
            self.max_interval
        };
        self.last_run.saturating_add(interval)
    }

    /// Records a run at `now`. Sources still volatile now count for the next interval
    /// even if they calm before it ends.
    pub fn ran(&mut self, now: Micros) {
        self.last_run = now;
        self.volatile_since_run = !self.volatile_sources.is_empty();
    }

    /// Keeps the schedule on a wall clock stepped back (NTP): a last run that is now in
    /// the future counts as now, so the next run comes one interval on, not an interval
    /// plus the step (an hour without observations after a step back of an hour).
    pub fn follow_clock(&mut self, now: Micros) {
        self.last_run = self.last_run.min(now);
    }

    /// Whether the next run will come at `min_interval` (see the module rules).
    pub fn is_volatile(&self) -> bool {
        self.volatile_since_run || !self.volatile_sources.is_empty()
    }

    pub fn last_run(&self) -> Micros {
        self.last_run
    }

    pub fn min_interval(&self) -> Micros {
        self.min_interval
    }

    pub fn max_interval(&self) -> Micros {
        self.max_interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::MICROS_PER_SEC;

    const S: Micros = MICROS_PER_SEC;
    const MIN: Micros = 5 * 60 * S;
    const MAX: Micros = 30 * 60 * S;
    const DAY: Micros = 86_400 * S;

    fn change(source: u32, ts: Micros, volatile: bool) -> Change {
        Change {
            source: SourceId(source),
            ts,
            volatile,
            score: if volatile { 0.5 } else { 0.01 },
        }
    }

    /// Runs a simulated day in 1 s steps: deliver the changes due by `t`, then run if
    /// due. Returns the run times.
    fn simulate(mut changes: Vec<Change>) -> Vec<Micros> {
        changes.sort_by_key(|c| c.ts);
        let mut s = ObserveSchedule::new(MIN, MAX, 0);
        let mut runs = Vec::new();
        let mut next = 0;
        let mut t = 0;
        while t <= DAY {
            while next < changes.len() && changes[next].ts <= t {
                s.on_change(&changes[next], t);
                next += 1;
            }
            if s.next_due() <= t {
                s.ran(t);
                runs.push(t);
            }
            t += S;
        }
        runs
    }

    fn check_gaps(runs: &[Micros]) {
        let mut prev = 0;
        for &r in runs {
            assert!(r - prev >= MIN, "runs at {prev} and {r} closer than min");
            assert!(r - prev <= MAX, "gap {prev}..{r} longer than max");
            prev = r;
        }
        assert!(DAY - prev <= MAX);
    }

    /// Deterministic pseudo-random bursts: sources turning volatile and calm again.
    fn bursty(seed: u64, sources: u32) -> Vec<Change> {
        let mut x = seed;
        let mut rnd = move |n: u64| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % n
        };
        let mut out = Vec::new();
        for src in 0..sources {
            let mut t = rnd(3600) as Micros * S;
            while t < DAY {
                out.push(change(src, t, true));
                t += (60 + rnd(1800)) as Micros * S;
                out.push(change(src, t, false));
                t += (60 + rnd(4 * 3600)) as Micros * S;
            }
        }
        out
    }

    #[test]
    fn calm_day_runs_at_max_interval() {
        let runs = simulate(Vec::new());
        check_gaps(&runs);
        // First look after MIN, then every MAX.
        assert_eq!(runs[0], MIN);
        assert!(runs.windows(2).all(|w| w[1] - w[0] == MAX));
        assert_eq!(runs.len(), 48);
    }

    #[test]
    fn volatile_day_runs_at_min_interval() {
        let runs = simulate(vec![change(0, 10 * S, true)]);
        check_gaps(&runs);
        assert!(runs.windows(2).all(|w| w[1] - w[0] == MIN));
        assert_eq!(runs.len(), (DAY / MIN) as usize);
        let calm = simulate(Vec::new()).len();
        assert!(runs.len() >= 5 * calm, "{} vs {calm}", runs.len());
    }

    #[test]
    fn bursty_days_keep_bounds_and_run_more_than_calm() {
        let calm = simulate(Vec::new()).len();
        for seed in 1..=5 {
            let runs = simulate(bursty(seed, 3));
            check_gaps(&runs);
            assert!(runs.len() > calm, "seed {seed}: {} vs {calm}", runs.len());
        }
    }

    #[test]
    fn volatile_change_pulls_due_time_earlier_at_once() {
        let mut s = ObserveSchedule::new(MIN, MAX, 0);
        s.ran(1000 * S);
        assert!(!s.is_volatile());
        assert_eq!(s.next_due(), 1000 * S + MAX);

        // Before MIN has passed: due at last + MIN, not earlier.
        s.on_change(&change(7, 1060 * S, true), 1060 * S);
        assert_eq!(s.next_due(), 1000 * S + MIN);

        // Calm again before the run: the change still happened, so MIN this time...
        s.on_change(&change(7, 1100 * S, false), 1100 * S);
        assert_eq!(s.next_due(), 1000 * S + MIN);
        s.ran(1000 * S + MIN);
        // ...and MAX after it.
        assert_eq!(s.next_due(), 1000 * S + MIN + MAX);

        // A change after MIN has passed: due at once (in the past).
        let last = s.last_run();
        let now = last + 20 * 60 * S;
        s.on_change(&change(8, now, true), now);
        assert_eq!(s.next_due(), last + MIN);
        assert!(s.next_due() <= now);
    }

    #[test]
    fn stays_volatile_while_any_source_is() {
        let mut s = ObserveSchedule::new(MIN, MAX, 0);
        s.on_change(&change(1, 0, true), 0);
        s.on_change(&change(2, 0, true), 0);
        s.ran(MIN);
        assert_eq!(s.next_due(), 2 * MIN);
        s.on_change(&change(1, MIN + S, false), MIN + S);
        s.ran(2 * MIN);
        assert_eq!(s.next_due(), 3 * MIN, "source 2 is still volatile");
        s.on_change(&change(2, 2 * MIN + S, false), 2 * MIN + S);
        assert_eq!(s.next_due(), 3 * MIN, "it was volatile since the last run");
        s.ran(3 * MIN);
        assert_eq!(s.next_due(), 3 * MIN + MAX);
        // A calm change for a source never seen volatile is harmless.
        s.on_change(&change(9, 3 * MIN, false), 3 * MIN);
        assert_eq!(s.next_due(), 3 * MIN + MAX);
    }

    #[test]
    fn a_clock_stepped_back_delays_no_run() {
        let mut s = ObserveSchedule::new(MIN, 10 * MIN, 100 * MIN);
        s.ran(100 * MIN);
        // Stepped back an hour: the next run is one interval from now, not from before.
        s.follow_clock(40 * MIN);
        assert_eq!(s.next_due(), 40 * MIN + 10 * MIN);
        // A clock that did not go back changes nothing.
        s.follow_clock(45 * MIN);
        assert_eq!(s.next_due(), 50 * MIN);
    }

    #[test]
    fn intervals_are_sanitised() {
        let s = ObserveSchedule::new(0, -5, 100);
        assert_eq!(s.min_interval(), 1);
        assert_eq!(s.max_interval(), 1);
        assert_eq!(s.next_due(), 101);
        let s = ObserveSchedule::new(MAX, MIN, 0);
        assert_eq!((s.min_interval(), s.max_interval()), (MAX, MAX));
        let s = ObserveSchedule::new(MIN, Micros::MAX, Micros::MAX - 1);
        let mut s2 = s.clone();
        s2.ran(Micros::MAX - 1);
        assert_eq!(s2.next_due(), Micros::MAX);
    }
}
