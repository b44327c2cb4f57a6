//! The mock GPIO backend: pins hold state in memory; tests and the API set input levels.

use super::{GpioBackend, GpioError, PinEvent};
use crate::config::settings::GpioSettings;

pub struct MockGpio {}

impl MockGpio {
    pub fn new(_settings: &GpioSettings) -> MockGpio {
        MockGpio {}
    }
}

impl GpioBackend for MockGpio {
    fn name(&self) -> &'static str {
        "mock"
    }
    fn read(&self, pin: u8) -> Result<bool, GpioError> {
        Err(GpioError::UnknownPin(pin))
    }
    fn write(&self, pin: u8, _level: bool) -> Result<(), GpioError> {
        Err(GpioError::UnknownPin(pin))
    }
    fn subscribe(&self, _tx: async_channel::Sender<PinEvent>) -> Result<(), GpioError> {
        Ok(())
    }
    fn set_input(&self, pin: u8, _level: bool) -> Result<(), GpioError> {
        Err(GpioError::UnknownPin(pin))
    }
}
