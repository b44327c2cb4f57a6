//! The `sh5461as` sink: a 4-digit multiplexed 7-segment display: eight segment lines
//! shared by the digits and one line per digit's common. `common = "anode"` (the
//! default) drives them as the original does: segments active-low, digits active-high;
//! `common = "cathode"` (a 5461AS part: common cathode) drives both the other way. Only one digit is lit at a time; the
//! multiplexer thread `7seg-<name>` lights each for ~1 ms in turn, so the eye sees all
//! four. It sleeps between digits (no busy-wait) and parks while the display is blank;
//! the event loop never drives the lines. The agent's `display_value` writes up to four
//! characters, right-aligned.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use toml::Value as Toml;

use super::params::{self, Showing};
use super::{Display, MAX_DIGITS, Segments, glyphs};
use crate::config::SinkSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::edges::gpio::OutputLine;
use crate::plugins::params::{Reader, describe, device_pin};
use crate::plugins::{Kind, Make, Param, ParamsBox, Role, Setup, Sink, Unavailable, params_of};

/// The kind's name, which `display_value` looks for among the attached devices.
pub const DEVICE: &str = "sh5461as";

/// The original's pins: digits left to right, segments a..g, dp.
const DIGITS: [u8; MAX_DIGITS] = [17, 27, 22, 5];
const SEGMENTS: [u8; 8] = [6, 13, 19, 26, 21, 20, 16, 12];

/// How long each digit is lit per turn (the original's ~1 ms: 250 Hz per digit).
pub(crate) const SLOT: Duration = Duration::from_millis(1);

/// An sh5461as sink's parameters, checked (twelve distinct pins, none of [gpio] pins).
#[derive(Clone, Debug)]
struct MuxParams {
    /// Common cathode (segments active-high, digits active-low) instead of anode.
    cathode: bool,
    digits: [u8; MAX_DIGITS],
    segments: [u8; 8],
    showing: Showing,
}

pub const KIND: Kind = Kind {
    role: Role::Sink,
    name: "sh5461as",
    version: env!("CARGO_PKG_VERSION"),
    doc: "a 4-digit multiplexed 7-segment display (SH5461AS) on GPIO pins: the display_value tool, or a pipeline value by template",
    params: &[
        Param::new(Spec {
            default: "[17, 27, 22, 5]",
            doc: "the BCM pins of the four digits' commons, left to right",
            ..Spec::new("digit_pins", Want::Tables)
        })
        .taking("a list of four pin numbers such as [17, 27, 22, 5]"),
        Param::new(Spec {
            default: "{ a = 6, b = 13, c = 19, d = 26, e = 21, f = 20, g = 16, dp = 12 }",
            doc: "the BCM pin of each segment (a to g, dp), shared by the digits, each through its own resistor (1 kΩ when the GPIOs drive the commons directly)",
            ..Spec::new("segment_pins", Want::Tables)
        })
        .taking("a table of pins { a = 6, ..., dp = 12 }"),
        Param::new(Spec {
            default: "\"anode\"",
            doc: "\"anode\": digits driven high, segments low (the original's drive); \"cathode\": the other way (a common-cathode 5461AS)",
            hint: "common = \"anode\" or common = \"cathode\"",
            ..Spec::new("common", Want::Text)
        }),
        params::TEMPLATE,
        params::HOLD,
    ],
    make: Make::Sink {
        parse,
        lossless: false,
        setup,
    },
};

fn parse(r: &mut Reader) -> ParamsBox {
    let mut p = MuxParams {
        cathode: false,
        digits: DIGITS,
        segments: SEGMENTS,
        showing: Showing::default(),
    };
    for raw in r.params() {
        match raw.key.as_str() {
            "segment_pins" => params::segment_pins(r, raw, &mut p.segments),
            "common" => {
                let hint = "common = \"anode\" (digits high, segments low) or common = \"cathode\"";
                if let Some(anode) = params::common_anode(r, raw, hint) {
                    p.cathode = !anode;
                }
            }
            "digit_pins" => {
                let hint = Some(
                    "write four pins, left to right, e.g. digit_pins = [17, 27, 22, 5]".to_string(),
                );
                match &raw.value {
                    Toml::Array(a) if a.len() == MAX_DIGITS => {
                        let mut got = p.digits;
                        let mut ok = true;
                        for (slot, v) in got.iter_mut().zip(a) {
                            match device_pin(v, r.settings) {
                                Ok(pin) => *slot = pin,
                                Err(e) => {
                                    r.bad(raw, e);
                                    ok = false;
                                    break;
                                }
                            }
                        }
                        if ok {
                            p.digits = got;
                        }
                    }
                    Toml::Array(a) => r.bad(
                        raw,
                        (format!("expected four pins, found {}", a.len()), hint),
                    ),
                    other => r.bad(
                        raw,
                        (
                            format!("expected a list of four pins, found {}", describe(other)),
                            hint,
                        ),
                    ),
                }
            }
            _ => params::showing(r, raw, &mut p.showing),
        }
    }
    let mut pins: Vec<(String, u8)> = glyphs::NAMES
        .iter()
        .zip(p.segments)
        .map(|(n, pin)| (format!("segment {n}"), pin))
        .collect();
    pins.extend(
        p.digits
            .iter()
            .enumerate()
            .map(|(i, &pin)| (format!("digit {}", i + 1), pin)),
    );
    params::distinct(r, &pins);
    let defaults = r.get("segment_pins").is_none() || r.get("digit_pins").is_none();
    if defaults
        && let Some((what, pin)) = pins
            .iter()
            .find(|(_, pin)| r.settings.gpio.pins.iter().any(|c| c.pin == *pin))
    {
        let msg = format!(
            "sink '{}': {what}'s default pin {pin} is one of [gpio] pins",
            r.name
        );
        r.bad_at(
            r.line,
            msg,
            Some("give digit_pins and segment_pins with pins of the display's own".into()),
        );
    }
    Arc::new(p)
}

fn setup(spec: &SinkSpec, s: &mut Setup) -> Result<Box<dyn Sink>, Unavailable> {
    let p = params_of::<MuxParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    let gpio = s.parts.gpio;
    let owner = format!("sh5461as '{}'", spec.name);
    let failed = |e: crate::edges::gpio::GpioError| Unavailable::Failed(e.to_string());
    let mut segments = Vec::with_capacity(8);
    for pin in p.segments {
        // Dark: a segment's line at the level that does not light it.
        segments.push(gpio.claim_output(pin, &owner, !p.cathode).map_err(failed)?);
    }
    let mut digits = Vec::with_capacity(MAX_DIGITS);
    for pin in p.digits {
        digits.push(gpio.claim_output(pin, &owner, p.cathode).map_err(failed)?);
    }
    if let Some(mock) = gpio.mock() {
        mock.attach(Box::new(super::model::MuxModel::new(
            &spec.name, p.digits, p.segments, p.cathode,
        )));
    }
    let lines = Lines {
        segments,
        digits,
        cathode: p.cathode,
    };
    let mux = Multiplexer::start(&spec.name, lines)
        .map_err(|e| Unavailable::Failed(format!("cannot start the multiplexer thread: {e}")))?;
    let display = Arc::new(Display::new(
        DEVICE,
        &spec.name,
        MAX_DIGITS,
        p.showing.hold,
        Box::new(mux),
    ));
    s.parts.hardware.devices.attach(display.clone());
    Ok(Box::new(super::sink::DisplaySink::new(
        display,
        p.showing.template.clone(),
        s.parts.registry.clone(),
    )))
}

/// The display's lines, owned by its multiplexer thread.
pub(crate) struct Lines {
    pub segments: Vec<Box<dyn OutputLine>>,
    pub digits: Vec<Box<dyn OutputLine>>,
    /// Common cathode: a segment lights high, a digit is on low (anode: the other way).
    pub cathode: bool,
}

impl Lines {
    /// Light digit `i` with `mask`: the digit lit before off first, then the segments,
    /// then digit `i` (so no digit ever shows another's segments: no ghosting). A blank
    /// digit is selected too, with no segment lit, so every digit's turn lasts the same.
    fn light(&mut self, before: usize, i: usize, mask: u8) {
        let k = self.cathode;
        self.digits[before].set(k);
        for (bit, s) in self.segments.iter_mut().enumerate() {
            s.set((mask & (1 << bit) != 0) == k);
        }
        self.digits[i].set(!k);
    }

    /// Every digit off, every segment dark.
    fn blank(&mut self) {
        for d in &mut self.digits {
            d.set(self.cathode);
        }
        for s in &mut self.segments {
            s.set(!self.cathode);
        }
    }
}

/// The thread that lights the digits in turn, reading what to show from one atomic
/// (four masks, leftmost in the low byte), which the display sets.
pub(crate) struct Multiplexer {
    masks: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Multiplexer {
    pub(crate) fn start(name: &str, lines: Lines) -> std::io::Result<Multiplexer> {
        let masks = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (masks.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("7seg-{name}"))
            .spawn(move || multiplex(lines, &m, &s))?;
        Ok(Multiplexer {
            masks,
            stop,
            thread: Some(thread),
        })
    }
}

fn multiplex(mut lines: Lines, masks: &AtomicU32, stop: &AtomicBool) {
    let mut lit = 0;
    loop {
        if stop.load(Ordering::Acquire) {
            lines.blank();
            return;
        }
        let m = masks.load(Ordering::Acquire);
        if m == 0 {
            // Blank: nothing to refresh until the display is given something.
            lines.blank();
            std::thread::park();
            continue;
        }
        for i in 0..MAX_DIGITS {
            lines.light(lit, i, (m >> (8 * i)) as u8);
            lit = i;
            std::thread::sleep(SLOT);
        }
    }
}

impl Segments for Multiplexer {
    fn put(&mut self, masks: &[u8]) {
        let packed = masks
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &m)| acc | u32::from(m) << (8 * i));
        self.masks.store(packed, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Multiplexer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edges::gpio::GpioBackend;
    use crate::edges::gpio::mock::MockGpio;
    use crate::sinks::seven_segment::glyphs::{DP, glyph};
    use crate::sinks::seven_segment::model::MuxModel;

    fn display(gpio: &MockGpio, cathode: bool) -> Display {
        let claim = |p: u8, initial| gpio.claim_output(p, "sh5461as 'd'", initial).unwrap();
        let lines = Lines {
            segments: SEGMENTS.iter().map(|&p| claim(p, !cathode)).collect(),
            digits: DIGITS.iter().map(|&p| claim(p, cathode)).collect(),
            cathode,
        };
        gpio.attach(Box::new(MuxModel::new("d", DIGITS, SEGMENTS, cathode)));
        let mux = Multiplexer::start("d", lines).unwrap();
        Display::new(DEVICE, "d", MAX_DIGITS, 1_000_000, Box::new(mux))
    }

    /// The model's state once every digit was refreshed `n` more times.
    fn seen_after(gpio: &MockGpio, n: u64) -> serde_json::Value {
        let state = || gpio.with_model("sh5461as", |m| m.state()).unwrap();
        let refreshes = |s: &serde_json::Value| -> Vec<u64> {
            (0..MAX_DIGITS)
                .map(|i| s["refreshes"][i].as_u64().unwrap())
                .collect()
        };
        let start = refreshes(&state());
        loop {
            let s = state();
            if refreshes(&s).iter().zip(&start).all(|(a, b)| *a >= b + n) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn masks(state: &serde_json::Value) -> Vec<u8> {
        (0..MAX_DIGITS)
            .map(|i| state["masks"][i].as_u64().unwrap() as u8)
            .collect()
    }

    #[test]
    fn twelve_point_three_lights_the_right_segments_on_the_right_digit() {
        for cathode in [false, true] {
            shows_twelve_point_three(cathode);
        }
    }

    fn shows_twelve_point_three(cathode: bool) {
        let gpio = MockGpio::new(&crate::config::Settings::defaults().gpio);
        let d = display(&gpio, cathode);
        d.write("12.3").unwrap();
        let seen = seen_after(&gpio, 3);
        assert_eq!(masks(&seen), [0, glyph('1'), glyph('2') | DP, glyph('3')]);
        assert_eq!(seen["text"], "12.3");
        d.write("Err").unwrap();
        // Refreshed since: the new text, and nothing of the old on any digit.
        let seen = seen_after(&gpio, 2);
        assert_eq!(masks(&seen), [0, glyph('E'), glyph('r'), glyph('r')]);
        assert_eq!(seen["text"], "Err");
        assert_eq!(d.write("12345"), Err(5));
        d.stop();
        // Past the eye's persistence, nothing is lit.
        std::thread::sleep(Duration::from_millis(150));
        let dark = gpio.with_model("sh5461as", |m| m.state()).unwrap();
        assert_eq!(
            dark["masks"],
            serde_json::json!([0, 0, 0, 0]),
            "stopped: dark"
        );
    }
}
