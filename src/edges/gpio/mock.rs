//! The mock GPIO backend: pins hold state in memory; tests and the API set input levels.
//! With `simulate = true` a `gpio-sim` thread toggles each input now and then (demos).
//! Devices' lines (`claim_output`, `claim_input`) talk to the device models attached to
//! the mock (`attach`): an HC-SR04 model answers a trigger pulse with an echo pulse as
//! long as the sound takes, a display model decodes which segments are lit.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::{Edge, GpioBackend, GpioError, InputLine, OutputLine, PinEvent, PinModel};
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
    bench: Mutex<Bench>,
}

/// The devices' side of the mock: who owns which pin, and the models on them.
#[derive(Default)]
struct Bench {
    claimed: Vec<(u8, String)>,
    models: Vec<Box<dyn PinModel>>,
}

/// The mock's clock for device lines: time since the process's first use of it.
fn mock_now() -> Duration {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed()
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
            bench: Mutex::new(Bench::default()),
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

    /// Put a device model on the lines it uses.
    pub fn attach(&self, model: Box<dyn PinModel>) {
        self.shared.bench.lock().unwrap().models.push(model);
    }

    /// The mock's clock, as device models timestamp edges.
    pub fn now() -> Duration {
        mock_now()
    }

    /// Run `f` on the first attached model called `model` (tests inspect a display).
    pub fn with_model<T>(&self, model: &str, f: impl FnOnce(&mut dyn PinModel) -> T) -> Option<T> {
        let mut bench = self.shared.bench.lock().unwrap();
        bench
            .models
            .iter_mut()
            .find(|m| m.model() == model)
            .map(|m| f(m.as_mut()))
    }

    /// Every attached model with its state, for status.
    pub fn models_json(&self) -> Vec<Json> {
        let bench = self.shared.bench.lock().unwrap();
        bench
            .models
            .iter()
            .map(|m| json!({ "model": m.model(), "state": m.state() }))
            .collect()
    }

    fn claim(&self, pin: u8, owner: &str) -> Result<(), GpioError> {
        if let Some(p) = self
            .shared
            .pins
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.pin == pin)
        {
            return Err(GpioError::Busy {
                pin,
                owner: format!("[gpio] pins '{}'", p.name),
            });
        }
        let mut bench = self.shared.bench.lock().unwrap();
        if let Some((_, o)) = bench.claimed.iter().find(|(p, _)| *p == pin) {
            return Err(GpioError::Busy {
                pin,
                owner: o.clone(),
            });
        }
        bench.claimed.push((pin, owner.to_string()));
        Ok(())
    }
}

/// A device's output line on the mock: each level change goes to the models watching it.
struct MockOutput {
    pin: u8,
    level: bool,
    shared: Arc<Shared>,
}

impl OutputLine for MockOutput {
    fn set(&mut self, high: bool) {
        if self.level == high {
            return;
        }
        self.level = high;
        let at = mock_now();
        let mut bench = self.shared.bench.lock().unwrap();
        for m in bench.models.iter_mut().filter(|m| m.uses(self.pin)) {
            m.on_write(self.pin, high, at);
        }
    }
}

/// A device's input line on the mock: edges the models drive, delivered at their
/// timestamps (the wait sleeps until then, as a real echo takes its time).
struct MockInput {
    pin: u8,
    pull_up: bool,
    pending: std::collections::VecDeque<Edge>,
    scratch: Vec<Edge>,
    shared: Arc<Shared>,
}

impl MockInput {
    fn collect(&mut self) {
        let mut bench = self.shared.bench.lock().unwrap();
        for m in bench.models.iter_mut().filter(|m| m.uses(self.pin)) {
            m.drain_edges(self.pin, &mut self.scratch);
        }
        drop(bench);
        self.scratch.sort_by_key(|e| e.at);
        self.pending.extend(self.scratch.drain(..));
    }
}

impl InputLine for MockInput {
    fn is_high(&mut self) -> bool {
        let now = mock_now();
        let bench = self.shared.bench.lock().unwrap();
        bench
            .models
            .iter()
            .filter(|m| m.uses(self.pin))
            .find_map(|m| m.level(self.pin, now))
            .unwrap_or(self.pull_up)
    }

    fn clear(&mut self) -> Result<(), GpioError> {
        self.collect();
        let now = mock_now();
        // Edges still to come stay: they belong to a pulse in flight.
        self.pending.retain(|e| e.at > now);
        Ok(())
    }

    fn wait_edge(&mut self, timeout: Duration) -> Result<Option<Edge>, GpioError> {
        let deadline = mock_now() + timeout;
        loop {
            self.collect();
            if let Some(&e) = self.pending.front() {
                if e.at > deadline {
                    std::thread::sleep(deadline.saturating_sub(mock_now()));
                    return Ok(None);
                }
                std::thread::sleep(e.at.saturating_sub(mock_now()));
                self.pending.pop_front();
                return Ok(Some(e));
            }
            let now = mock_now();
            if now >= deadline {
                return Ok(None);
            }
            // Nothing scheduled yet: look again shortly (a model may schedule edges
            // only when another line is written).
            std::thread::sleep((deadline - now).min(Duration::from_micros(500)));
        }
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

    fn claim_output(
        &self,
        pin: u8,
        owner: &str,
        initial: bool,
    ) -> Result<Box<dyn OutputLine>, GpioError> {
        self.claim(pin, owner)?;
        let mut line = MockOutput {
            pin,
            level: !initial,
            shared: self.shared.clone(),
        };
        line.set(initial);
        Ok(Box::new(line))
    }

    fn claim_input(
        &self,
        pin: u8,
        owner: &str,
        pull: Pull,
    ) -> Result<Box<dyn InputLine>, GpioError> {
        self.claim(pin, owner)?;
        Ok(Box::new(MockInput {
            pin,
            pull_up: pull == Pull::Up,
            pending: Default::default(),
            scratch: Vec::new(),
            shared: self.shared.clone(),
        }))
    }

    fn mock(&self) -> Option<&MockGpio> {
        Some(self)
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

    /// Echoes each trigger pulse on pin 6 with one on pin 24 after 100 µs, 1 ms long (a stand-in model).
    struct Echo(Vec<Edge>);
    impl PinModel for Echo {
        fn model(&self) -> &'static str {
            "echo"
        }
        fn uses(&self, pin: u8) -> bool {
            pin == 6 || pin == 24
        }
        fn on_write(&mut self, pin: u8, high: bool, at: Duration) {
            if pin == 6 && !high {
                let up = at + Duration::from_micros(100);
                self.0.push(Edge {
                    rising: true,
                    at: up,
                });
                self.0.push(Edge {
                    rising: false,
                    at: up + Duration::from_millis(1),
                });
            }
        }
        fn drain_edges(&mut self, _pin: u8, out: &mut Vec<Edge>) {
            out.append(&mut self.0);
        }
    }

    #[test]
    fn device_lines_reach_their_models_and_are_owned_once() {
        let g = MockGpio::new(&settings());
        g.attach(Box::new(Echo(Vec::new())));
        let mut trig = g.claim_output(5, "hcsr04 'range'", false).unwrap();
        let mut echo = g.claim_input(24, "hcsr04 'range'", Pull::Down).unwrap();
        assert_eq!(
            g.claim_output(5, "led 'x'", false)
                .err()
                .unwrap()
                .to_string(),
            "pin 5 is already used by hcsr04 'range'; give each device its own pins"
        );
        assert!(matches!(
            g.claim_output(17, "led 'x'", false),
            Err(GpioError::Busy { .. })
        ));
        // Pin 5 is not the model's trigger (6): no echo.
        trig.set(true);
        trig.set(false);
        assert_eq!(echo.wait_edge(Duration::from_millis(3)).unwrap(), None);
        let mut trig = g.claim_output(6, "hcsr04 'range'", false).unwrap();
        echo.clear().unwrap();
        trig.set(true);
        trig.set(false);
        let up = echo.wait_edge(Duration::from_millis(50)).unwrap().unwrap();
        let down = echo.wait_edge(Duration::from_millis(50)).unwrap().unwrap();
        assert!(up.rising && !down.rising);
        assert_eq!(down.at - up.at, Duration::from_millis(1));
        // Delivered no earlier than the model's timestamp.
        assert!(MockGpio::now() >= down.at);
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
