//! The rppal backend: real pins on a Raspberry Pi, edge interrupts for inputs.

use super::{GpioBackend, GpioError, PinEvent};
use crate::config::settings::GpioSettings;

pub struct RppalGpio {}

impl RppalGpio {
    pub fn new(_settings: &GpioSettings) -> Result<RppalGpio, GpioError> {
        Err(GpioError::Backend("not implemented yet".into()))
    }
}

impl GpioBackend for RppalGpio {
    fn name(&self) -> &'static str {
        "rppal"
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
    fn set_input(&self, _pin: u8, _level: bool) -> Result<(), GpioError> {
        Err(GpioError::NotSimulated)
    }
}
