//! Memory taken for a burst of big messages goes back to the system once the burst is
//! over. Parsing a 5,000-reading batch takes a few MiB for a moment, on the `mqtt-io`
//! and `mqtt` threads; glibc keeps what those threads' arenas freed (it trims only the
//! main arena's top on its own), so a node that took one flood would keep its peak for
//! good. `malloc_trim(0)` returns the free pages of every arena.

use std::time::{Duration, Instant};

/// Payload bytes received since the last trim before one is worth it.
const AFTER_BYTES: u64 = 1 << 20;
/// A burst is over once no message came for this long.
pub(crate) const QUIET: Duration = Duration::from_secs(1);

/// Counts what a burst brought in and says when it is over (`due`). Guarantees at most one
/// trim per `QUIET` and none while messages keep coming or after small traffic.
pub(crate) struct GiveBack {
    bytes: u64,
    last_message: Instant,
}

impl GiveBack {
    pub(crate) fn new() -> GiveBack {
        GiveBack {
            bytes: 0,
            last_message: Instant::now(),
        }
    }

    /// A message of `len` bytes came in; `true` when the caller should arm its timer
    /// (`QUIET` from now) because a burst has begun.
    pub(crate) fn message(&mut self, len: u64) -> bool {
        self.last_message = Instant::now();
        let was = self.bytes;
        self.bytes += len;
        was < AFTER_BYTES && self.bytes >= AFTER_BYTES
    }

    /// The timer fired: `Some(wait)` to look again later (messages still coming), or
    /// `None` after giving the memory back.
    pub(crate) fn check(&mut self) -> Option<Duration> {
        let quiet_for = self.last_message.elapsed();
        if quiet_for < QUIET {
            return Some(QUIET - quiet_for);
        }
        self.bytes = 0;
        trim();
        None
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    let t = Instant::now();
    // SAFETY: malloc_trim only walks and trims glibc's own arenas; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
    log::debug!(
        "mqtt: gave free memory back after a burst ({:?})",
        t.elapsed()
    );
}

/// Other allocators (musl's) return freed pages themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
