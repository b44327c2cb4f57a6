//! GPIO backends behind one interface: rppal on a Raspberry Pi, a mock everywhere else.

pub mod lazy;
pub mod lines;
pub mod mock;
#[cfg(feature = "rpi")]
pub mod rppal;

use std::sync::Arc;

use serde_json::{Value as Json, json};

use crate::config::settings::{GpioBackendChoice, GpioSettings, PinConfig, PinMode, Pull};
use crate::graph::Micros;
pub use lines::{Edge, InputLine, OutputLine, PinModel};

/// A level change on a pin (an input's edge or an output's write), as the backend saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinEvent {
    pub pin: u8,
    pub level: bool,
    pub ts: Micros,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpioError {
    UnknownPin(u8),
    NotAnOutput(u8),
    /// Outputs are driven with `write`, not simulated.
    NotAnInput(u8),
    /// Only the mock can simulate an input level.
    NotSimulated,
    /// A device already owns the pin (or it is one of `[gpio] pins`).
    Busy {
        pin: u8,
        owner: String,
    },
    Backend(String),
}

impl std::fmt::Display for GpioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpioError::UnknownPin(p) => write!(f, "pin {p} is not configured in [gpio]"),
            GpioError::NotAnOutput(p) => {
                write!(f, "pin {p} is an input; only outputs can be written")
            }
            GpioError::NotAnInput(p) => {
                write!(
                    f,
                    "pin {p} is an output; drive it with a write, not a simulated input"
                )
            }
            GpioError::NotSimulated => {
                write!(f, "input levels can only be set on the mock backend")
            }
            GpioError::Busy { pin, owner } => write!(
                f,
                "pin {pin} is already used by {owner}; give each device its own pins"
            ),
            GpioError::Backend(e) => write!(f, "gpio: {e}"),
        }
    }
}

impl std::error::Error for GpioError {}

/// One GPIO backend. Implementations are thread-safe: the event loop reads, HTTP writes.
pub trait GpioBackend: Send + Sync {
    /// `"rppal"` or `"mock"`.
    fn name(&self) -> &'static str;
    /// Current level of a configured pin (input or output).
    fn read(&self, pin: u8) -> Result<bool, GpioError>;
    /// Drive an output pin.
    fn write(&self, pin: u8, level: bool) -> Result<(), GpioError>;
    /// Deliver level changes of every pin to `tx`: inputs' edges (interrupts on a Pi; on
    /// the mock, `set_input` or the simulated pattern) and outputs' writes, whoever made
    /// them (HTTP, MQTT, the agent), so the `gpio:<pin>` reading follows at once rather
    /// than at the next sample. `try_send`: a full channel drops the event (the next
    /// sample catches up).
    fn subscribe(&self, tx: async_channel::Sender<PinEvent>) -> Result<(), GpioError>;
    /// Mock only: set the level an input pin reads (tests, demos).
    fn set_input(&self, pin: u8, level: bool) -> Result<(), GpioError>;
    /// Take `pin` for one device (`owner` names it in errors: `"sh5461as 'clock'"`), as an
    /// output starting at `initial`. Refused for a pin of `[gpio] pins` or another device.
    fn claim_output(
        &self,
        pin: u8,
        owner: &str,
        initial: bool,
    ) -> Result<Box<dyn OutputLine>, GpioError>;
    /// Take `pin` for one device as an input with both edges timestamped.
    fn claim_input(
        &self,
        pin: u8,
        owner: &str,
        pull: Pull,
    ) -> Result<Box<dyn InputLine>, GpioError>;
    /// The mock behind this backend, for a kind to attach its device model to.
    fn mock(&self) -> Option<&mock::MockGpio> {
        None
    }
}

/// The configured pins and their levels now, as `/api/gpio` and status show them: a pin
/// the backend cannot read has `value: null` and the `error`.
pub fn pins_json(pins: &[PinConfig], backend: &dyn GpioBackend) -> Json {
    let pins: Vec<Json> = pins
        .iter()
        .map(|p| {
            let level = backend.read(p.pin);
            json!({
                "pin": p.pin,
                "name": p.name,
                "mode": match p.mode { PinMode::Input => "input", PinMode::Output => "output" },
                "value": level.as_ref().ok(),
                "error": level.err().map(|e| e.to_string()),
            })
        })
        .collect();
    json!({ "backend": backend.name(), "pins": pins })
}

/// Choose the backend per config: `auto` tries rppal and falls back to the mock, saying so
/// in the log; `rppal` fails if no Pi is found; `mock` is the mock.
pub fn open(settings: &GpioSettings) -> Result<Arc<dyn GpioBackend>, GpioError> {
    choose(settings)
}

fn choose(settings: &GpioSettings) -> Result<Arc<dyn GpioBackend>, GpioError> {
    match settings.backend {
        GpioBackendChoice::Mock => {
            log::info!("gpio: mock backend (configured)");
            Ok(Arc::new(mock::MockGpio::new(settings)))
        }
        // Asked for by name: say which setting to change rather than only rppal's reason.
        GpioBackendChoice::Rppal => open_rppal(settings).map_err(|e| {
            let e = match e {
                GpioError::Backend(reason) => reason,
                other => other.to_string(),
            };
            GpioError::Backend(format!(
                "[gpio] backend = \"rppal\" (or SMOLLAMA_GPIO_BACKEND=rppal), but no Raspberry Pi GPIO here ({e}); \
                 off a Pi set backend = \"mock\" (its pins are set over the API), or \"auto\" to use rppal only where there is a Pi"
            ))
        }),
        GpioBackendChoice::Auto => match open_rppal(settings) {
            Ok(b) => Ok(b),
            Err(e) => {
                log::info!(
                    "gpio: no Raspberry Pi GPIO here ({e}); using the mock backend, whose pins the API can set"
                );
                Ok(Arc::new(mock::MockGpio::new(settings)))
            }
        },
    }
}

#[cfg(feature = "rpi")]
fn open_rppal(settings: &GpioSettings) -> Result<Arc<dyn GpioBackend>, GpioError> {
    let b = rppal::RppalGpio::new(settings)?;
    log::info!(
        "gpio: rppal backend (Raspberry Pi), {} pin(s)",
        settings.pins.len()
    );
    Ok(Arc::new(b))
}

#[cfg(not(feature = "rpi"))]
fn open_rppal(_settings: &GpioSettings) -> Result<Arc<dyn GpioBackend>, GpioError> {
    Err(GpioError::Backend("built without the `rpi` feature".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_the_mock_off_a_pi() {
        let mut settings = mock::tests::settings();
        settings.backend = GpioBackendChoice::Mock;
        assert_eq!(open(&settings).unwrap().name(), "mock");
        // This test machine is not a Raspberry Pi: auto must still give a backend.
        settings.backend = GpioBackendChoice::Auto;
        let b = open(&settings).unwrap();
        if b.name() == "mock" {
            assert_eq!(b.read(22), Ok(true));
        }
    }
}
