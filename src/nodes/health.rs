//! A node's health as the directory shows it.

use super::directory::Thresholds;
use super::entry::{NodeEntry, Status};
use crate::graph::Micros;

/// `active`: heard recently; `stale`: connected (status `online`) or recently known but
/// silent past `stale_after`; `offline`: its status says so (a clean stop or the broker's
/// last will), or silent past `offline_after` with no `online` status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Active,
    Stale,
    Offline,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Health::Active => "active",
            Health::Stale => "stale",
            Health::Offline => "offline",
        }
    }

    pub fn of(e: &NodeEntry, now: Micros, t: &Thresholds) -> Health {
        if e.status == Some(Status::Offline) {
            return Health::Offline;
        }
        let silent = now.saturating_sub(e.last_seen);
        if silent < t.stale_after {
            Health::Active
        } else if silent < t.offline_after || e.status == Some(Status::Online) {
            Health::Stale
        } else {
            Health::Offline
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn t() -> Thresholds {
        Thresholds {
            stale_after: 60 * S,
            offline_after: 600 * S,
            cache_ttl: 300 * S,
        }
    }

    #[test]
    fn health_follows_the_status_word_and_the_silence() {
        let mut e = NodeEntry::new("a", 0);
        assert_eq!(Health::of(&e, 10 * S, &t()), Health::Active);
        assert_eq!(Health::of(&e, 61 * S, &t()), Health::Stale);
        assert_eq!(Health::of(&e, 601 * S, &t()), Health::Offline);
        // Connected as far as the broker knows: stale, never offline, however silent.
        e.status = Some(Status::Online);
        assert_eq!(Health::of(&e, 6000 * S, &t()), Health::Stale);
        // Its last will (or a clean stop) is offline at once.
        e.status = Some(Status::Offline);
        assert_eq!(Health::of(&e, 1, &t()), Health::Offline);
    }
}
