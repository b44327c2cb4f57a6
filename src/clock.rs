//! Wall-clock helpers. Only sources, ticks and HTTP read the clock; stages get time passed in.

use crate::graph::Micros;

pub fn now_us() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as Micros)
}

/// 2025-01-01T00:00:00Z. A wall clock reading earlier has not been set yet (this code did
/// not exist then): a Pi without a real-time clock starts in 1970 until NTP answers.
pub const SET_AFTER: Micros = 1_735_689_600_000_000;

/// Whether the wall clock reading `now` can be right (see [`SET_AFTER`]).
pub fn is_set(now: Micros) -> bool {
    now >= SET_AFTER
}

/// The wall clock and the monotonic clock when the agent started ([`mark_start`]).
static START: std::sync::OnceLock<(Micros, std::time::Instant)> = std::sync::OnceLock::new();

/// Records the start (once; later calls keep the first) and returns its wall time.
pub fn mark_start() -> Micros {
    START
        .get_or_init(|| (now_us(), std::time::Instant::now()))
        .0
}

/// Time since [`mark_start`] by the monotonic clock: what steps of the wall clock do not
/// change (zero before the start is marked).
pub fn since_start() -> std::time::Duration {
    START
        .get()
        .map_or(std::time::Duration::ZERO, |(_, t)| t.elapsed())
}

/// How far the wall clock has been stepped since [`mark_start`], in total: its advance
/// minus the monotonic clock's (positive when set forward, as NTP does to a clock that
/// started in 1970).
pub fn stepped_us() -> Micros {
    START.get().map_or(0, |(wall, t)| {
        (now_us() - wall).saturating_sub(t.elapsed().as_micros() as Micros)
    })
}

/// RFC 3339 UTC with millisecond precision, e.g. `2026-11-27T09:28:43.123Z`.
pub fn iso8601(ts: Micros) -> String {
    Iso8601(ts).to_string()
}

/// [`iso8601`] as `Display`, to write into a reused buffer without a `String`.
pub struct Iso8601(pub Micros);

impl std::fmt::Display for Iso8601 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ts = self.0;
        let secs = ts.div_euclid(1_000_000);
        let millis = ts.rem_euclid(1_000_000) / 1000;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        )
    }
}

/// Howard Hinnant's civil-to-days algorithm (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        // 2026-11-27T09:28:43.123Z
        assert_eq!(iso8601(1_795_771_723_123_000), "2026-11-27T09:28:43.123Z");
        assert_eq!(iso8601(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(SET_AFTER), "2025-01-01T00:00:00.000Z");
    }
}
