//! The mock GPIO backend: pins hold state in memory; tests and the API set input levels.
//! With `simulate = true` a `gpio-sim` thread toggles each input now and then (demos).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::{GpioBackend, GpioError, PinEvent};
use crate::clock::now_us;
use crate::config::settings::{GpioSettings, PinMode, Pull};

struct MockPin {
    pin: u8,
    name: String,
    mode: PinMode,
    level: bool,
}

#[derive(Default)]
struct Shared {
    pins: Mutex<Vec<MockPin>>,
    subscribers: Mutex<Vec<async_channel::Sender<PinEvent>>>,
}

impl Shared {
    fn set_input(&self, pin: u8, level: bool) -> Result<(), GpioError> {
        let changed = {
            let mut pins = self.pins.lock().unwrap();
            let p = pins
                .iter_mut()
                .find(|p| p.pin == pin)
                .ok_or(GpioError::UnknownPin(pin))?;
            if p.mode != PinMode::Input {
                // Outputs are driven with `write`; simulating them makes no sense.
                return Err(GpioError::NotAnInput(pin));
            }
            let changed = p.level != level;
            p.level = level;
            changed
        };
        if changed {
            self.notify(pin, level);
        }
        Ok(())
    }

    /// Tell every subscriber that `pin` is now at `level`.
    fn notify(&self, pin: u8, level: bool) {
        let ev = PinEvent {
            pin,
            level,
            ts: now_us(),
        };
        let mut subs = self.subscribers.lock().unwrap();
        subs.retain(|tx| !tx.is_closed());
        for tx in subs.iter() {
            // A full channel drops the event; the next sample catches up.
            let _ = tx.try_send(ev);
        }
    }
}

pub struct MockGpio {
    shared: Arc<Shared>,
}

impl MockGpio {
    pub fn new(settings: &GpioSettings) -> MockGpio {
        let pins = settings
            .pins
            .iter()
            .map(|p| MockPin {
                pin: p.pin,
                name: p.name.clone(),
                mode: p.mode,
                level: match p.mode {
                    PinMode::Input => p.pull == Pull::Up,
                    PinMode::Output => p.initial,
                },
            })
            .collect();
        let shared = Arc::new(Shared {
            pins: Mutex::new(pins),
            subscribers: Mutex::new(Vec::new()),
        });
        let inputs: Vec<u8> = settings
            .pins
            .iter()
            .filter(|p| p.mode == PinMode::Input)
            .map(|p| p.pin)
            .collect();
        if settings.simulate && !inputs.is_empty() {
            let weak = Arc::downgrade(&shared);
            let spawned = std::thread::Builder::new()
                .name("gpio-sim".into())
                .spawn(move || simulate(weak, inputs));
            match spawned {
                Ok(_) => log::info!("gpio: mock backend simulating input pins"),
                Err(e) => log::warn!("gpio: could not start the simulation thread: {e}"),
            }
        }
        MockGpio { shared }
    }
}

/// A tiny xorshift64 generator; the simulation needs variety, not quality.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A delay between 5 and 30 seconds.
    fn delay_us(&mut self) -> i64 {
        5_000_000 + (self.next() % 25_000_001) as i64
    }
}

/// Toggle each input pin at its own random-ish interval until the backend is dropped.
fn simulate(shared: Weak<Shared>, inputs: Vec<u8>) {
    let mut rng = XorShift((now_us() as u64) | 1);
    let start = now_us();
    let mut next: Vec<i64> = inputs.iter().map(|_| start + rng.delay_us()).collect();
    loop {
        let soonest = next.iter().copied().min().unwrap_or(start);
        let wait = (soonest - now_us()).max(0) as u64;
        std::thread::sleep(Duration::from_micros(wait));
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = now_us();
        for (i, &pin) in inputs.iter().enumerate() {
            if next[i] > now {
                continue;
            }
            next[i] = now + rng.delay_us();
            let level = {
                let pins = shared.pins.lock().unwrap();
                pins.iter().find(|p| p.pin == pin).is_some_and(|p| !p.level)
            };
            log::debug!(
                "gpio: simulated pin {pin} -> {}",
                if level { "high" } else { "low" }
            );
            let _ = shared.set_input(pin, level);
        }
    }
}

impl GpioBackend for MockGpio {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn read(&self, pin: u8) -> Result<bool, GpioError> {
        let pins = self.shared.pins.lock().unwrap();
        pins.iter()
            .find(|p| p.pin == pin)
            .map(|p| p.level)
            .ok_or(GpioError::UnknownPin(pin))
    }

    fn write(&self, pin: u8, level: bool) -> Result<(), GpioError> {
        let changed = {
            let mut pins = self.shared.pins.lock().unwrap();
            let p = pins
                .iter_mut()
                .find(|p| p.pin == pin)
                .ok_or(GpioError::UnknownPin(pin))?;
            if p.mode != PinMode::Output {
                return Err(GpioError::NotAnOutput(pin));
            }
            let changed = p.level != level;
            p.level = level;
            log::info!(
                "gpio: pin {pin} ({}) set {} (mock)",
                p.name,
                if level { "high" } else { "low" }
            );
            changed
        };
        if changed {
            self.shared.notify(pin, level);
        }
        Ok(())
    }

    fn subscribe(&self, tx: async_channel::Sender<PinEvent>) -> Result<(), GpioError> {
        self.shared.subscribers.lock().unwrap().push(tx);
        Ok(())
    }

    fn set_input(&self, pin: u8, level: bool) -> Result<(), GpioError> {
        self.shared.set_input(pin, level)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::settings::{GpioBackendChoice, PinConfig};

    pub(crate) fn settings() -> GpioSettings {
        let pin = |pin, name: &str, mode, pull, initial| PinConfig {
            pin,
            name: name.into(),
            mode,
            pull,
            initial,
        };
        GpioSettings {
            backend: GpioBackendChoice::Mock,
            pins: vec![
                pin(17, "door", PinMode::Input, Pull::Down, false),
                pin(27, "button", PinMode::Input, Pull::Up, false),
                pin(22, "fan", PinMode::Output, Pull::Off, true),
                pin(23, "led", PinMode::Output, Pull::Off, false),
            ],
            simulate: false,
        }
    }

    #[test]
    fn initial_levels() {
        let g = MockGpio::new(&settings());
        assert_eq!(g.read(17), Ok(false), "pull down starts low");
        assert_eq!(g.read(27), Ok(true), "pull up starts high");
        assert_eq!(g.read(22), Ok(true), "output at its initial level");
        assert_eq!(g.read(23), Ok(false));
        assert_eq!(g.read(5), Err(GpioError::UnknownPin(5)));
        assert_eq!(g.name(), "mock");
    }

    #[test]
    fn write_rules() {
        let g = MockGpio::new(&settings());
        assert_eq!(g.write(23, true), Ok(()));
        assert_eq!(g.read(23), Ok(true));
        assert_eq!(g.write(17, true), Err(GpioError::NotAnOutput(17)));
        assert_eq!(g.write(5, true), Err(GpioError::UnknownPin(5)));
        assert_eq!(g.read(17), Ok(false));
    }

    #[test]
    fn set_input_rules_and_events() {
        let g = MockGpio::new(&settings());
        let (tx1, rx1) = async_channel::bounded(8);
        let (tx2, rx2) = async_channel::bounded(8);
        g.subscribe(tx1).unwrap();
        g.subscribe(tx2).unwrap();
        assert_eq!(g.set_input(17, true), Ok(()));
        assert_eq!(g.read(17), Ok(true));
        for rx in [&rx1, &rx2] {
            let ev = rx.try_recv().unwrap();
            assert_eq!((ev.pin, ev.level), (17, true));
            assert!(ev.ts > 0);
        }
        // No change, no event.
        g.set_input(17, true).unwrap();
        assert!(rx1.try_recv().is_err());
        assert_eq!(g.set_input(22, false), Err(GpioError::NotAnInput(22)));
        assert_eq!(g.read(22), Ok(true));
        assert_eq!(g.set_input(5, true), Err(GpioError::UnknownPin(5)));
        // A closed subscriber is forgotten; the others still get events.
        drop(rx2);
        g.set_input(27, false).unwrap();
        assert!(!rx1.try_recv().unwrap().level);
        assert_eq!(g.shared.subscribers.lock().unwrap().len(), 1);
    }

    #[test]
    fn writing_an_output_is_an_event_too() {
        let g = MockGpio::new(&settings());
        let (tx, rx) = async_channel::bounded(8);
        g.subscribe(tx).unwrap();
        g.write(23, true).unwrap();
        let ev = rx.try_recv().unwrap();
        assert_eq!((ev.pin, ev.level), (23, true));
        // Writing the level it already has changes nothing.
        g.write(23, true).unwrap();
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn full_subscriber_drops_events() {
        let g = MockGpio::new(&settings());
        let (tx, rx) = async_channel::bounded(1);
        g.subscribe(tx).unwrap();
        g.set_input(17, true).unwrap();
        g.set_input(17, false).unwrap();
        assert_eq!(rx.len(), 1);
        assert!(rx.try_recv().unwrap().level);
    }

    #[test]
    fn xorshift_delays_stay_in_range() {
        let mut r = XorShift(now_us() as u64 | 1);
        for _ in 0..1000 {
            let d = r.delay_us();
            assert!((5_000_000..=30_000_000).contains(&d));
        }
    }
}
