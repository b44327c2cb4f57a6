//! The `s5161as` sink: one 7-segment digit with its eight segments on GPIO pins driven
//! directly: `common = "cathode"` (the default, a 5161AS) active-high as the original
//! drives them, `common = "anode"` (a 5161BS) active-low. The agent's `display_digit`
//! writes one character (and its decimal point).

use std::sync::Arc;

use super::params::{self, Showing};
use super::{Display, Segments, glyphs};
use crate::config::SinkSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::edges::gpio::OutputLine;
use crate::plugins::params::{Reader, device_pin};
use crate::plugins::{Kind, Make, Param, ParamsBox, Role, Setup, Sink, Unavailable, params_of};

/// The kind's name, which `display_digit` looks for among the attached devices.
pub const DEVICE: &str = "s5161as";

/// The original's pins for a..g, dp.
const SEGMENTS: [u8; 8] = [27, 22, 11, 8, 10, 17, 4, 9];

/// An s5161as sink's parameters, checked (eight distinct pins, none of [gpio] pins).
#[derive(Clone, Debug)]
struct DigitParams {
    /// Common anode (segments active-low) instead of cathode.
    anode: bool,
    segments: [u8; 8],
    common: Option<u8>,
    showing: Showing,
}

pub const KIND: Kind = Kind {
    role: Role::Sink,
    name: "s5161as",
    version: env!("CARGO_PKG_VERSION"),
    doc: "a single 7-segment digit (5161AS) on GPIO pins: the display_digit tool, or a pipeline value by template",
    params: &[
        Param::new(Spec {
            default: "{ a = 27, b = 22, c = 11, d = 8, e = 10, f = 17, g = 4, dp = 9 }",
            doc: "the BCM pin of each segment (a to g, dp), each through its own resistor (~330 Ω)",
            ..Spec::new("segment_pins", Want::Tables)
        })
        .taking("a table of pins { a = 27, ..., dp = 9 }"),
        Param::new(Spec {
            range: Some((0.0, 27.0)),
            doc: "a GPIO the common is on (driven low for a cathode, high for an anode, while the node runs); leave it out with the common wired to ground (3.3 V for an anode)",
            ..Spec::new("common_pin", Want::WholeNumber)
        })
        .taking("a BCM pin number (0 to 27)"),
        Param::new(Spec {
            default: "\"cathode\"",
            doc: "\"cathode\": segments driven high (a 5161AS, the original's drive); \"anode\": segments driven low (a 5161BS)",
            hint: "common = \"cathode\" or common = \"anode\"",
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
    let mut p = DigitParams {
        anode: false,
        segments: SEGMENTS,
        common: None,
        showing: Showing::default(),
    };
    for raw in r.params() {
        match raw.key.as_str() {
            "segment_pins" => params::segment_pins(r, raw, &mut p.segments),
            "common" => {
                let hint = "common = \"cathode\" (segments high) or common = \"anode\"";
                if let Some(anode) = params::common_anode(r, raw, hint) {
                    p.anode = anode;
                }
            }
            "common_pin" => match device_pin(&raw.value, r.settings) {
                Ok(pin) => p.common = Some(pin),
                Err(e) => r.bad(raw, e),
            },
            _ => params::showing(r, raw, &mut p.showing),
        }
    }
    let mut pins: Vec<(String, u8)> = glyphs::NAMES
        .iter()
        .zip(p.segments)
        .map(|(n, pin)| (format!("segment {n}"), pin))
        .collect();
    if let Some(c) = p.common {
        pins.push(("common_pin".into(), c));
    }
    params::distinct(r, &pins);
    // The default pins must not be [gpio] pins either.
    if r.get("segment_pins").is_none()
        && let Some((n, pin)) = glyphs::NAMES
            .iter()
            .zip(SEGMENTS)
            .find(|(_, pin)| r.settings.gpio.pins.iter().any(|c| c.pin == *pin))
    {
        let msg = format!(
            "sink '{}': segment {n}'s default pin {pin} is one of [gpio] pins",
            r.name
        );
        r.bad_at(
            r.line,
            msg,
            Some(
                "give segment_pins = { a = .., ..., dp = .. } with pins of the display's own"
                    .into(),
            ),
        );
    }
    Arc::new(p)
}

fn setup(spec: &SinkSpec, s: &mut Setup) -> Result<Box<dyn Sink>, Unavailable> {
    let p = params_of::<DigitParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    let gpio = s.parts.gpio;
    let owner = format!("s5161as '{}'", spec.name);
    let failed = |e: crate::edges::gpio::GpioError| Unavailable::Failed(e.to_string());
    let mut segments = Vec::with_capacity(8);
    for pin in p.segments {
        // Dark: the level that does not light a segment.
        segments.push(gpio.claim_output(pin, &owner, p.anode).map_err(failed)?);
    }
    // Enabled: a cathode low, an anode high.
    let common = match p.common {
        Some(pin) => Some(gpio.claim_output(pin, &owner, p.anode).map_err(failed)?),
        None => None,
    };
    if let Some(mock) = gpio.mock() {
        mock.attach(Box::new(super::model::StaticModel::new(
            &spec.name, p.segments, p.common, p.anode,
        )));
    }
    let display = Arc::new(Display::new(
        DEVICE,
        &spec.name,
        1,
        p.showing.hold,
        Box::new(Direct {
            segments,
            common,
            anode: p.anode,
        }),
    ));
    s.parts.hardware.devices.attach(display.clone());
    Ok(Box::new(super::sink::DisplaySink::new(
        display,
        p.showing.template.clone(),
        s.parts.registry.clone(),
    )))
}

/// The segments driven directly: a lit segment is a high pin (a low one for an anode).
struct Direct {
    segments: Vec<Box<dyn OutputLine>>,
    /// Held enabling the digit while the node runs (a cathode low, an anode high).
    common: Option<Box<dyn OutputLine>>,
    anode: bool,
}

impl Segments for Direct {
    fn put(&mut self, masks: &[u8]) {
        let m = masks.first().copied().unwrap_or(0);
        for (bit, line) in self.segments.iter_mut().enumerate() {
            line.set((m & (1 << bit) != 0) != self.anode);
        }
    }

    fn stop(&mut self) {
        self.put(&[0]);
        if let Some(c) = self.common.as_mut() {
            c.set(!self.anode);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edges::gpio::GpioBackend;
    use crate::edges::gpio::mock::MockGpio;
    use crate::sinks::seven_segment::model::StaticModel;

    #[test]
    fn the_digit_model_sees_the_written_character() {
        for (anode, common) in [
            (false, None),
            (true, None),
            (false, Some(5)),
            (true, Some(5)),
        ] {
            shows_what_is_written(anode, common);
        }
    }

    fn shows_what_is_written(anode: bool, common_pin: Option<u8>) {
        let gpio = MockGpio::new(&crate::config::Settings::defaults().gpio);
        let claim = |p: u8| gpio.claim_output(p, "s5161as 'd'", anode).unwrap();
        let segments = SEGMENTS.iter().map(|&p| claim(p)).collect();
        let common = common_pin.map(claim);
        gpio.attach(Box::new(StaticModel::new("d", SEGMENTS, common_pin, anode)));
        let out = Direct {
            segments,
            common,
            anode,
        };
        let d = Display::new(DEVICE, "d", 1, 1_000_000, Box::new(out));
        let seen = || {
            gpio.with_model("s5161as", |m| m.state()["text"].clone())
                .unwrap()
        };
        assert_eq!(seen(), "", "dark from the start");
        d.write("7.").unwrap();
        assert_eq!(seen(), "7.");
        d.write("r").unwrap();
        assert_eq!(seen(), "r");
        assert_eq!(d.write("42"), Err(2));
        assert_eq!(seen(), "r", "too long shows nothing new");
        d.stop();
        assert_eq!(seen(), "");
    }
}
