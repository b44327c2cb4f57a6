//! Pins owned by one device (an LED, a display's segments, an HC-SR04's trigger and echo),
//! as opposed to `[gpio] pins`, which the API, the agent and the gpio source share.
//! A device's line is set directly: no event, no log line per write (a multiplexed
//! display writes thousands a second), and no one else may write it.

use std::time::Duration;

use serde_json::Value as Json;

use super::GpioError;

/// An output pin owned by one device.
pub trait OutputLine: Send {
    fn set(&mut self, high: bool);
}

/// An edge on an input line, timestamped by whoever saw it (the kernel on a Pi, the
/// device model on the mock). Only differences between timestamps mean anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub rising: bool,
    pub at: Duration,
}

/// An input pin owned by one device, with both edges timestamped.
pub trait InputLine: Send {
    fn is_high(&mut self) -> bool;
    /// Forget edges seen so far (before a measurement starts).
    fn clear(&mut self) -> Result<(), GpioError>;
    /// The next edge, oldest first, waiting up to `timeout`; `None` if none came.
    /// Blocking: called on the `hw` thread, never on the event loop.
    fn wait_edge(&mut self, timeout: Duration) -> Result<Option<Edge>, GpioError>;
}

/// A device model on the mock backend's lines: it sees the writes of the output lines it
/// watches and drives edges on the input lines it owns, with timestamps on the mock's
/// clock (`MockGpio::now`), the way the chip would (an HC-SR04's echo pulse).
pub trait PinModel: Send {
    /// What it models, for status (`"hcsr04"`, `"sh5461as"`).
    fn model(&self) -> &'static str;
    /// Whether it watches or drives `pin`.
    fn uses(&self, pin: u8) -> bool;
    /// An output line it watches went to `high` at `at`.
    fn on_write(&mut self, pin: u8, high: bool, at: Duration);
    /// Move the edges it has driven on input `pin` so far (or will, at their timestamps)
    /// into `out`, oldest first.
    fn drain_edges(&mut self, _pin: u8, _out: &mut Vec<Edge>) {}
    /// The level it drives on input `pin` now.
    fn level(&self, _pin: u8, _now: Duration) -> Option<bool> {
        None
    }
    /// What it shows or senses, for status and tests (a display's digits).
    fn state(&self) -> Json {
        Json::Null
    }
}
