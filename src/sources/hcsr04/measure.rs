//! One HC-SR04 measurement, run on the `hw` thread: a 10 µs trigger pulse, then the echo
//! line's rising and falling edges, timestamped by whoever saw them (the kernel on a Pi,
//! the chip's model on the mock). The pulse is as long as the sound's round trip.

use std::time::{Duration, Instant};

use crate::edges::gpio::{InputLine, OutputLine};

/// The speed of sound in air at about 20 °C, in metres per second.
pub(crate) const SOUND_M_PER_S: f64 = 343.0;

/// The trigger pulse the datasheet asks for (at least 10 µs; a longer one is harmless).
const TRIGGER: Duration = Duration::from_micros(10);

/// How long the chip takes from the trigger to the echo's start (its eight 40 kHz cycles
/// take 0.2 ms; clones answer within a few ms). No rising edge by then: nothing answers.
pub(crate) const RISE_TIMEOUT: Duration = Duration::from_millis(10);

/// Slack on top of the round trip to `max_distance`, for the sensor's own jitter.
const FALL_SLACK: Duration = Duration::from_millis(2);

/// The longest an echo line stays high by itself (a real HC-SR04 gives up after ~38 ms
/// when nothing echoes; some clones hold it longer).
const STALE_PULSE: Duration = Duration::from_millis(60);

/// The trigger and echo lines of one sensor, owned by its source.
pub(crate) struct Lines {
    pub trig: Box<dyn OutputLine>,
    pub echo: Box<dyn InputLine>,
}

/// What one measurement found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Echo {
    /// An obstacle this many metres away, within `max_distance`.
    Metres(f64),
    /// An echo pulse longer than the round trip to `max_distance` (nothing near enough,
    /// or the chip's ~38 ms "nothing echoed" pulse).
    OutOfRange,
}

/// How long the echo may stay high for an obstacle at `max_distance` (metres).
pub(crate) fn fall_timeout(max_distance: f64) -> Duration {
    Duration::from_secs_f64(2.0 * max_distance / SOUND_M_PER_S) + FALL_SLACK
}

/// Trigger once and time the echo. `Err` when the sensor does not answer at all (no
/// rising edge: unplugged, no 5 V, wrong pins) or the GPIO fails, with the reason.
pub(crate) fn measure(lines: &mut Lines, max_distance: f64) -> Result<Echo, String> {
    let gpio = |e: crate::edges::gpio::GpioError| e.to_string();
    // A pulse still high from the last trigger would be taken for this one's start.
    if lines.echo.is_high() {
        let until = Instant::now() + STALE_PULSE;
        while lines.echo.is_high() && Instant::now() < until {
            if lines
                .echo
                .wait_edge(until - Instant::now())
                .map_err(gpio)?
                .is_none()
            {
                break;
            }
        }
    }
    lines.echo.clear().map_err(gpio)?;
    lines.trig.set(true);
    std::thread::sleep(TRIGGER);
    lines.trig.set(false);
    let rise = match next_edge(lines.echo.as_mut(), true, RISE_TIMEOUT).map_err(gpio)? {
        Some(at) => at,
        None => {
            return Err(format!(
                "no echo within {} ms of the trigger",
                RISE_TIMEOUT.as_millis()
            ));
        }
    };
    let fall =
        match next_edge(lines.echo.as_mut(), false, fall_timeout(max_distance)).map_err(gpio)? {
            Some(at) => at,
            None => return Ok(Echo::OutOfRange),
        };
    let metres = fall.saturating_sub(rise).as_secs_f64() * SOUND_M_PER_S / 2.0;
    Ok(if metres > max_distance {
        Echo::OutOfRange
    } else {
        Echo::Metres(metres)
    })
}

/// The timestamp of the next edge going `rising` (edges the other way are skipped),
/// waiting at most `timeout` in all.
fn next_edge(
    line: &mut dyn InputLine,
    rising: bool,
    timeout: Duration,
) -> Result<Option<Duration>, crate::edges::gpio::GpioError> {
    let until = Instant::now() + timeout;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match line.wait_edge(left)? {
            Some(e) if e.rising == rising => return Ok(Some(e.at)),
            Some(_) if !left.is_zero() => continue,
            _ => return Ok(None),
        }
    }
}

/// The reading's value: centimetres, rounded to 2 decimals (the original's metres × 100).
pub(crate) fn centimetres(metres: f64) -> f64 {
    (metres * 10_000.0).round() / 100.0
}
