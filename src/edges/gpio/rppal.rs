//! The rppal backend: real pins on a Raspberry Pi, edge interrupts for inputs.
//!
//! rppal delivers interrupts on its own thread per pin (`set_async_interrupt`); the
//! callback only timestamps the edge and `try_send`s it to every subscriber. A write to
//! an output is sent to them the same way (outputs raise no interrupt).

use std::sync::{Arc, Mutex};

use rppal::gpio::{Event, Gpio, InputPin, OutputPin, Trigger};

use super::{GpioBackend, GpioError, PinEvent};
use crate::clock::now_us;
use crate::config::settings::{GpioSettings, PinMode, Pull};

enum Handle {
    Input(InputPin),
    Output(OutputPin),
}

struct Pin {
    pin: u8,
    name: String,
    handle: Handle,
}

type Subscribers = Arc<Mutex<Vec<async_channel::Sender<PinEvent>>>>;

pub struct RppalGpio {
    pins: Mutex<Vec<Pin>>,
    subscribers: Subscribers,
    /// Interrupts are installed on the first `subscribe`.
    interrupts_on: Mutex<bool>,
}

/// Send `ev` to every live subscriber (a full channel drops it; the next sample catches up).
fn notify(subs: &Subscribers, ev: PinEvent) {
    let mut subs = subs.lock().unwrap();
    subs.retain(|tx| !tx.is_closed());
    for tx in subs.iter() {
        let _ = tx.try_send(ev);
    }
}

fn backend_err(e: rppal::gpio::Error) -> GpioError {
    GpioError::Backend(e.to_string())
}

impl RppalGpio {
    /// Open the GPIO peripheral and configure every pin of `[gpio]`. Off a Pi
    /// `Gpio::new` fails and so does this (then `open` falls back to the mock).
    pub fn new(settings: &GpioSettings) -> Result<RppalGpio, GpioError> {
        let gpio = Gpio::new().map_err(backend_err)?;
        let mut pins = Vec::with_capacity(settings.pins.len());
        for cfg in &settings.pins {
            let pin = gpio
                .get(cfg.pin)
                .map_err(|e| GpioError::Backend(format!("pin {}: {e}", cfg.pin)))?;
            let handle = match cfg.mode {
                PinMode::Input => Handle::Input(match cfg.pull {
                    Pull::Down => pin.into_input_pulldown(),
                    Pull::Up => pin.into_input_pullup(),
                    Pull::Off => pin.into_input(),
                }),
                PinMode::Output => Handle::Output(if cfg.initial {
                    pin.into_output_high()
                } else {
                    pin.into_output_low()
                }),
            };
            pins.push(Pin {
                pin: cfg.pin,
                name: cfg.name.clone(),
                handle,
            });
        }
        Ok(RppalGpio {
            pins: Mutex::new(pins),
            subscribers: Arc::default(),
            interrupts_on: Mutex::new(false),
        })
    }
}

impl GpioBackend for RppalGpio {
    fn name(&self) -> &'static str {
        "rppal"
    }

    fn read(&self, pin: u8) -> Result<bool, GpioError> {
        let pins = self.pins.lock().unwrap();
        let p = pins
            .iter()
            .find(|p| p.pin == pin)
            .ok_or(GpioError::UnknownPin(pin))?;
        Ok(match &p.handle {
            Handle::Input(i) => i.is_high(),
            Handle::Output(o) => o.is_set_high(),
        })
    }

    fn write(&self, pin: u8, level: bool) -> Result<(), GpioError> {
        let mut pins = self.pins.lock().unwrap();
        let p = pins
            .iter_mut()
            .find(|p| p.pin == pin)
            .ok_or(GpioError::UnknownPin(pin))?;
        let Handle::Output(o) = &mut p.handle else {
            return Err(GpioError::NotAnOutput(pin));
        };
        let changed = o.is_set_high() != level;
        if level {
            o.set_high();
        } else {
            o.set_low();
        }
        log::info!(
            "gpio: pin {pin} ({}) set {}",
            p.name,
            if level { "high" } else { "low" }
        );
        drop(pins);
        // Outputs raise no interrupt: the write itself is the event.
        if changed {
            notify(
                &self.subscribers,
                PinEvent {
                    pin,
                    level,
                    ts: now_us(),
                },
            );
        }
        Ok(())
    }

    fn subscribe(&self, tx: async_channel::Sender<PinEvent>) -> Result<(), GpioError> {
        self.subscribers.lock().unwrap().push(tx);
        let mut on = self.interrupts_on.lock().unwrap();
        if *on {
            return Ok(());
        }
        let mut pins = self.pins.lock().unwrap();
        for p in pins.iter_mut() {
            let Handle::Input(input) = &mut p.handle else {
                continue;
            };
            let pin = p.pin;
            let subs = self.subscribers.clone();
            input
                .set_async_interrupt(Trigger::Both, None, move |ev: Event| {
                    let ev = PinEvent {
                        pin,
                        level: matches!(ev.trigger, Trigger::RisingEdge),
                        ts: now_us(),
                    };
                    notify(&subs, ev);
                })
                .map_err(|e| GpioError::Backend(format!("pin {pin} interrupt: {e}")))?;
        }
        *on = true;
        Ok(())
    }

    fn set_input(&self, _pin: u8, _level: bool) -> Result<(), GpioError> {
        Err(GpioError::NotSimulated)
    }
}
