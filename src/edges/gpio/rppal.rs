//! The rppal backend: real pins on a Raspberry Pi, edge interrupts for inputs.
//!
//! rppal delivers interrupts on its own thread per pin (`set_async_interrupt`); the
//! callback only timestamps the edge and `try_send`s it to every subscriber. A write to
//! an output is sent to them the same way (outputs raise no interrupt).

use std::sync::{Arc, Mutex};

use rppal::gpio::{Event, Gpio, InputPin, OutputPin, Trigger};

use super::{Edge, GpioBackend, GpioError, InputLine, OutputLine, PinEvent};
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
    gpio: Gpio,
    /// Pins devices own (`claim_output`, `claim_input`), with their owner.
    claimed: Mutex<Vec<(u8, String)>>,
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
            gpio,
            claimed: Mutex::new(Vec::new()),
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

    fn claim_output(
        &self,
        pin: u8,
        owner: &str,
        initial: bool,
    ) -> Result<Box<dyn OutputLine>, GpioError> {
        let p = self.claim(pin, owner)?;
        Ok(Box::new(if initial {
            p.into_output_high()
        } else {
            p.into_output_low()
        }))
    }

    fn claim_input(
        &self,
        pin: u8,
        owner: &str,
        pull: Pull,
    ) -> Result<Box<dyn InputLine>, GpioError> {
        let p = self.claim(pin, owner)?;
        let mut input = match pull {
            Pull::Down => p.into_input_pulldown(),
            Pull::Up => p.into_input_pullup(),
            Pull::Off => p.into_input(),
        };
        // Synchronous interrupts on both edges: the kernel timestamps each one, which is
        // what an echo's width is measured from.
        input
            .set_interrupt(Trigger::Both, None)
            .map_err(|e| GpioError::Backend(format!("pin {pin} interrupt: {e}")))?;
        Ok(Box::new(input))
    }
}

impl RppalGpio {
    fn claim(&self, pin: u8, owner: &str) -> Result<rppal::gpio::Pin, GpioError> {
        if let Some(p) = self.pins.lock().unwrap().iter().find(|p| p.pin == pin) {
            return Err(GpioError::Busy {
                pin,
                owner: format!("[gpio] pins '{}'", p.name),
            });
        }
        let mut claimed = self.claimed.lock().unwrap();
        if let Some((_, o)) = claimed.iter().find(|(p, _)| *p == pin) {
            return Err(GpioError::Busy {
                pin,
                owner: o.clone(),
            });
        }
        let p = self
            .gpio
            .get(pin)
            .map_err(|e| GpioError::Backend(format!("pin {pin}: {e}")))?;
        claimed.push((pin, owner.to_string()));
        Ok(p)
    }
}

impl OutputLine for OutputPin {
    fn set(&mut self, high: bool) {
        if high {
            self.set_high();
        } else {
            self.set_low();
        }
    }
}

impl InputLine for InputPin {
    fn is_high(&mut self) -> bool {
        InputPin::is_high(self)
    }

    fn clear(&mut self) -> Result<(), GpioError> {
        // `reset` drops whatever edges are queued; a zero timeout returns at once.
        self.poll_interrupt(true, Some(std::time::Duration::ZERO))
            .map(|_| ())
            .map_err(|e| GpioError::Backend(e.to_string()))
    }

    fn wait_edge(&mut self, timeout: std::time::Duration) -> Result<Option<Edge>, GpioError> {
        match self.poll_interrupt(false, Some(timeout)) {
            Ok(Some(ev)) => Ok(Some(Edge {
                rising: matches!(ev.trigger, Trigger::RisingEdge),
                at: ev.timestamp,
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(GpioError::Backend(e.to_string())),
        }
    }
}
