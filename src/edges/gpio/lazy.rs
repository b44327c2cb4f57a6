//! A backend opened on first use, for commands that may never touch a pin (`smollama
//! ask`, `smollama memory`): they neither initialise GPIO nor log about it unless a tool
//! actually reads or drives a pin.

use std::sync::{Arc, OnceLock};

use super::{GpioBackend, GpioError, InputLine, OutputLine, PinEvent};
use crate::config::settings::{GpioSettings, Pull};

/// Opens the configured backend (as [`super::open`]) the first time it is used; an open
/// failure is kept and returned by every call.
pub struct LazyGpio {
    settings: GpioSettings,
    backend: OnceLock<Result<Arc<dyn GpioBackend>, GpioError>>,
}

impl LazyGpio {
    pub fn new(settings: &GpioSettings) -> LazyGpio {
        LazyGpio {
            settings: settings.clone(),
            backend: OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&Arc<dyn GpioBackend>, GpioError> {
        self.backend
            .get_or_init(|| super::open(&self.settings))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl GpioBackend for LazyGpio {
    fn name(&self) -> &'static str {
        self.get().map_or("unavailable", |b| b.name())
    }

    fn read(&self, pin: u8) -> Result<bool, GpioError> {
        self.get()?.read(pin)
    }

    fn write(&self, pin: u8, level: bool) -> Result<(), GpioError> {
        self.get()?.write(pin, level)
    }

    fn subscribe(&self, tx: async_channel::Sender<PinEvent>) -> Result<(), GpioError> {
        self.get()?.subscribe(tx)
    }

    fn set_input(&self, pin: u8, level: bool) -> Result<(), GpioError> {
        self.get()?.set_input(pin, level)
    }

    fn claim_output(
        &self,
        pin: u8,
        owner: &str,
        initial: bool,
    ) -> Result<Box<dyn OutputLine>, GpioError> {
        self.get()?.claim_output(pin, owner, initial)
    }

    fn claim_input(
        &self,
        pin: u8,
        owner: &str,
        pull: Pull,
    ) -> Result<Box<dyn InputLine>, GpioError> {
        self.get()?.claim_input(pin, owner, pull)
    }

    fn mock(&self) -> Option<&super::mock::MockGpio> {
        self.get().ok()?.mock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::GpioBackendChoice;

    #[test]
    fn opens_on_first_use_only() {
        let mut settings = super::super::mock::tests::settings();
        settings.backend = GpioBackendChoice::Mock;
        let lazy = LazyGpio::new(&settings);
        assert!(lazy.backend.get().is_none());
        assert_eq!(lazy.name(), "mock");
        assert!(lazy.backend.get().is_some());
    }
}
