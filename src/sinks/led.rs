//! The `led` sink: an LED on one GPIO pin the node owns, as the original's `led` plugin.
//!
//! - The agent's `set_led` tool (`agent/tools/led.rs`) switches it on, off or toggles it.
//! - It is lit during each observation cycle (the `Device::observing` hook), then shows
//!   what it showed before again.
//! - With `source = "<id>"` it follows that reading: a boolean as it is, a number with
//!   `above = N` (on while the value is above N). A tool write holds the LED for `hold`
//!   (default 60 s); then the source's latest value shows again at once. Without `source` only the tool
//!   (and the observation hook) drives it; the sink still needs `from`, like every sink.
//!
//! The LED is off at setup and when the node stops (the original drives it low; with
//! `active_high = false` off is high).

use std::sync::{Arc, Mutex};

use async_channel::Receiver;
use serde_json::{Value as Json, json};

use crate::clock::now_us;
use crate::config::SinkSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::edges::gpio::OutputLine;
use crate::edges::hw::Device;
use crate::graph::counters::Counters;
use crate::graph::registry::Registry;
use crate::graph::{Item, MICROS_PER_SEC, Micros, SourceId, Value, ValueKind};
use crate::plugins::params::{Reader, as_num, as_text, device_pin, positive_dur};
use crate::plugins::params_of;
use crate::plugins::{Kind, Make, Param, ParamsBox, Role, Setup, Sink, Task, Unavailable};
use crate::sinks::seven_segment::sink::{Next, next};

/// The kind's name, which `set_led` looks for among the attached devices.
pub const DEVICE: &str = "led";

/// A led sink's parameters, checked (`source` reaches the sink, `above` with a number).
#[derive(Clone, Debug)]
struct LedParams {
    pin: u8,
    active_high: bool,
    /// The full id it follows, if any.
    source: Option<String>,
    /// For a numeric source: on while the value is above this.
    above: Option<f64>,
    hold: Micros,
}

pub const KIND: Kind = Kind {
    role: Role::Sink,
    name: "led",
    version: env!("CARGO_PKG_VERSION"),
    doc: "an LED on a GPIO pin: the set_led tool, lit while the agent observes, optionally following a reading",
    params: &[
        Param::new(Spec {
            range: Some((0.0, 27.0)),
            doc: "the BCM pin the LED is on, through a ~330 Ω resistor (required)",
            hint: "e.g. pin = 18 (a BCM number from 0 to 27, not one of [gpio] pins)",
            ..Spec::new("pin", Want::WholeNumber)
        })
        .taking("a BCM pin number (0 to 27)"),
        Param::new(Spec {
            default: "true",
            doc: "true: the pin high lights the LED (LED to ground); false: low does (LED to 3.3 V)",
            ..Spec::new("active_high", Want::Bool)
        }),
        Param::new(Spec {
            doc: "a full source id the LED follows: a boolean as it is, a number with `above`",
            hint: "e.g. source = \"gpio:17\" or source = \"hcsr04:distance\" with above = 50",
            ..Spec::new("source", Want::Text)
        }),
        Param::new(Spec {
            doc: "with a numeric `source`: the LED is on while the value is above this",
            ..Spec::new("above", Want::Number)
        }),
        Param::new(Spec {
            default: "\"60s\"",
            doc: "how long a set_led call holds the LED before `source` takes over again",
            ..Spec::new("hold", Want::Duration)
        }),
    ],
    make: Make::Sink {
        parse,
        lossless: false,
        setup,
    },
};

fn parse(r: &mut Reader) -> ParamsBox {
    let mut p = LedParams {
        pin: 0,
        active_high: true,
        source: None,
        above: None,
        hold: 60 * MICROS_PER_SEC,
    };
    for raw in r.params() {
        match raw.key.as_str() {
            "pin" => match device_pin(&raw.value, r.settings) {
                Ok(pin) => p.pin = pin,
                Err(e) => r.bad(raw, e),
            },
            "active_high" => match &raw.value {
                toml::Value::Boolean(b) => p.active_high = *b,
                other => r.bad(raw, crate::config::expect::mismatch(Want::Bool, other)),
            },
            "source" => match as_text(&raw.value) {
                Ok(s) => p.source = Some(s.to_string()),
                Err(e) => r.bad(raw, e),
            },
            "above" => match as_num(&raw.value) {
                Ok(n) => p.above = Some(n),
                Err(e) => r.bad(raw, e),
            },
            "hold" => match positive_dur(&raw.value) {
                Ok(d) => p.hold = d,
                Err(e) => r.bad(raw, e),
            },
            _ => {}
        }
    }
    if r.get("pin").is_none() {
        let msg = format!("led sink '{}' has no pin", r.name);
        r.bad_at(
            r.line,
            msg,
            Some("add pin = 18 (the BCM pin the LED is on)".into()),
        );
    }
    check_source(r, &p);
    Arc::new(p)
}

/// `source` must reach the sink and be a boolean, or a number given with `above`.
fn check_source(r: &mut Reader, p: &LedParams) {
    let (Some(id), Some(raw)) = (&p.source, r.get("source")) else {
        if let Some(raw) = r.get("above") {
            r.bad(
                raw,
                (
                    "above needs a source to compare".into(),
                    Some("add source = \"<full id>\", or remove above".into()),
                ),
            );
        }
        return;
    };
    let kind = r.reach.ids.iter().find(|(i, _)| i == id).map(|(_, k)| *k);
    let problem = match kind {
        Some(ValueKind::Bool) if p.above.is_some() => Some((
            format!("{id} is boolean; above applies to a numeric source"),
            Some("remove above: the LED follows the boolean as it is".into()),
        )),
        Some(ValueKind::Number) if p.above.is_none() => Some((
            format!("{id} is numeric; say when the LED is on"),
            Some("add above = N (on while the value is above N)".into()),
        )),
        Some(ValueKind::Text) => Some((
            format!("{id} is text; the LED follows a boolean or a number"),
            None,
        )),
        Some(_) => None,
        None if r.reach.remote || (r.reach.open_bool && id.starts_with("gpio:")) => None,
        None => Some((
            format!(
                "no source reaching sink '{}' is called '{id}'; sources here: {}",
                r.name,
                r.reach.list()
            ),
            Some(
                "write a full id of a source in this sink's `from`, e.g. source = \"gpio:17\""
                    .into(),
            ),
        )),
    };
    if let Some(e) = problem {
        r.bad(raw, e);
    }
}

fn setup(spec: &SinkSpec, s: &mut Setup) -> Result<Box<dyn Sink>, Unavailable> {
    let p = params_of::<LedParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    let owner = format!("led '{}'", spec.name);
    let line = s
        .parts
        .gpio
        .claim_output(p.pin, &owner, !p.active_high)
        .map_err(|e| Unavailable::Failed(e.to_string()))?;
    if let Some(mock) = s.parts.gpio.mock() {
        mock.attach(Box::new(LedModel {
            name: spec.name.clone(),
            pin: p.pin,
            active_high: p.active_high,
            high: !p.active_high,
        }));
    }
    let device = Arc::new(Led::new(&spec.name, p.pin, line, p.active_high, p.hold));
    s.parts.hardware.devices.attach(device.clone());
    Ok(Box::new(LedSink {
        device,
        registry: s.parts.registry.clone(),
        source: p.source.clone(),
        above: p.above,
        counters: Arc::new(Counters::new(COUNTERS)),
    }))
}

/// The LED itself: its line and what it shows. Lit while `on` or an observation runs.
pub struct Led {
    name: String,
    pin: u8,
    active_high: bool,
    hold: Micros,
    inner: Mutex<Inner>,
    /// Told of each tool write, so the sink knows a hold began.
    written: (async_channel::Sender<()>, async_channel::Receiver<()>),
}

/// What the LED shows and why; the line is set whenever one of them changes.
struct Inner {
    line: Box<dyn OutputLine>,
    on: bool,
    observing: bool,
    /// A tool write holds the LED until then (µs since the epoch; 0: not held).
    held_until: Micros,
    /// The node stopped: the LED stays off (a late observation cycle lights nothing).
    stopped: bool,
}

impl Inner {
    fn apply(&mut self, active_high: bool) {
        let lit = !self.stopped && (self.on || self.observing);
        self.line.set(lit == active_high);
    }
}

/// What `set_led` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
    Toggle,
}

impl Led {
    /// The LED on `line` (claimed off), holding a tool write for `hold`.
    pub(crate) fn new(
        name: &str,
        pin: u8,
        line: Box<dyn OutputLine>,
        active_high: bool,
        hold: Micros,
    ) -> Led {
        Led {
            name: name.to_string(),
            pin,
            active_high,
            hold,
            inner: Mutex::new(Inner {
                line,
                on: false,
                observing: false,
                held_until: 0,
                stopped: false,
            }),
            written: async_channel::bounded(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tool's write: switch, hold it against the source for `hold`; the new state.
    pub fn switch(&self, s: Switch) -> bool {
        let mut i = self.lock();
        i.on = match s {
            Switch::On => true,
            Switch::Off => false,
            Switch::Toggle => !i.on,
        };
        i.held_until = now_us() + self.hold;
        i.apply(self.active_high);
        let _ = self.written.0.try_send(());
        i.on
    }

    /// The source's value, unless a tool write holds the LED; whether it applied.
    fn follow(&self, on: bool, now: Micros) -> bool {
        let mut i = self.lock();
        if now < i.held_until {
            return false;
        }
        i.on = on;
        i.apply(self.active_high);
        true
    }

    fn held_until(&self) -> Micros {
        self.lock().held_until
    }

    /// Off for good (the node stops).
    fn off(&self) {
        let mut i = self.lock();
        i.on = false;
        i.observing = false;
        i.stopped = true;
        i.apply(self.active_high);
    }

    /// Whether it is lit now.
    pub fn lit(&self) -> bool {
        let i = self.lock();
        !i.stopped && (i.on || i.observing)
    }
}

impl Device for Led {
    fn kind(&self) -> &'static str {
        DEVICE
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn state(&self) -> Json {
        let i = self.lock();
        json!({
            "pin": self.pin,
            "on": !i.stopped && (i.on || i.observing),
            "observing": i.observing,
            "held": i.held_until > now_us(),
        })
    }

    fn observing(&self, active: bool) {
        let mut i = self.lock();
        i.observing = active;
        i.apply(self.active_high);
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The LED on the mock GPIO: whether its pin's level lights it (status
/// `hardware.pin_models`), so a test sees the line driven, not only the device's word.
struct LedModel {
    name: String,
    pin: u8,
    active_high: bool,
    high: bool,
}

impl crate::edges::gpio::PinModel for LedModel {
    fn model(&self) -> &'static str {
        "led"
    }

    fn uses(&self, pin: u8) -> bool {
        pin == self.pin
    }

    fn on_write(&mut self, _pin: u8, high: bool, _at: std::time::Duration) {
        self.high = high;
    }

    fn state(&self) -> Json {
        json!({ "name": self.name, "pin": self.pin, "lit": self.high == self.active_high })
    }
}

const COUNTERS: &[&str] = &["readings"];

/// The sink's task: the readings of `source` to the LED.
struct LedSink {
    device: Arc<Led>,
    registry: Arc<Registry>,
    source: Option<String>,
    above: Option<f64>,
    counters: Arc<Counters>,
}

/// Whether a source id is the one followed: unknown, yes, no (cached per id).
const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

impl LedSink {
    fn is_followed(&self, id: SourceId, seen: &mut Vec<u8>) -> bool {
        let Some(want) = &self.source else {
            return false;
        };
        if seen.len() <= id.index() {
            seen.resize(id.index() + 1, UNKNOWN);
        }
        if seen[id.index()] == UNKNOWN {
            let name = self.registry.get(id);
            seen[id.index()] = if name.is_some_and(|i| &*i.name == want) {
                YES
            } else {
                NO
            };
        }
        seen[id.index()] == YES
    }

    fn wanted(&self, v: Value) -> Option<bool> {
        match (v, self.above) {
            (Value::Bool(b), _) => Some(b),
            (Value::Number(x), Some(n)) => Some(x > n),
            (Value::Number(x), None) => Some(x != 0.0),
            (Value::Text(_), _) => None,
        }
    }

    async fn run(self, rx: Receiver<Item>) {
        let mut seen = Vec::new();
        // The source's latest wish, shown again when a tool write's hold ends.
        let mut latest: Option<bool> = None;
        let written = self.device.written.1.clone();
        loop {
            match next(&rx, &written, self.device.held_until()).await {
                Next::HoldOver => {
                    if let Some(on) = latest {
                        self.device.follow(on, now_us());
                    }
                }
                Next::Written => {}
                Next::Item(None) => break,
                Next::Item(Some(Item::Reading(r))) if self.is_followed(r.source, &mut seen) => {
                    self.counters.inc(0);
                    if let Some(on) = self.wanted(r.value) {
                        latest = Some(on);
                        // Refused while a tool write holds the LED.
                        self.device.follow(on, now_us());
                    }
                }
                Next::Item(Some(_)) => {}
            }
        }
        self.device.off();
    }
}

impl Sink for LedSink {
    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn start(self: Box<Self>, rx: Receiver<Item>) -> Task {
        Box::pin(self.run(rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edges::gpio::GpioBackend;
    use crate::edges::gpio::mock::MockGpio;

    fn led(active_high: bool) -> Led {
        let gpio = MockGpio::new(&crate::config::Settings::defaults().gpio);
        let line = gpio.claim_output(18, "led 'status'", !active_high).unwrap();
        Led::new("status", 18, line, active_high, 60 * MICROS_PER_SEC)
    }

    #[test]
    fn the_observation_hook_lights_it_and_gives_back_what_it_showed() {
        let l = led(true);
        l.observing(true);
        assert!(l.lit());
        l.observing(false);
        assert!(!l.lit());
        assert!(l.switch(Switch::On));
        l.observing(true);
        l.observing(false);
        assert!(l.lit(), "on before the cycle, on after it");
        assert!(!l.switch(Switch::Toggle));
        assert!(l.switch(Switch::Toggle));
    }

    #[test]
    fn a_tool_write_holds_against_the_source() {
        let l = led(false);
        let now = now_us();
        assert!(l.follow(true, now));
        assert!(l.lit());
        assert!(!l.switch(Switch::Off));
        assert!(!l.follow(true, now_us()), "held by the tool");
        assert!(!l.lit());
        assert!(l.follow(true, now_us() + 61 * MICROS_PER_SEC));
        assert!(l.lit());
        l.off();
        assert!(!l.lit());
        l.observing(true);
        assert!(!l.lit(), "stopped: stays off");
    }
}
