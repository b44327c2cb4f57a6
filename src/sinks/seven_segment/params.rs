//! The parameters both displays share: `segment_pins`, `common`, `template`, `hold`, and
//! the check that a display's pins are all different.

use toml::Value as Toml;

use super::glyphs::NAMES;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::{MICROS_PER_SEC, Micros};
use crate::plugins::Param;
use crate::plugins::params::{RawParam, Reader, as_text, describe, device_pin, positive_dur};
use crate::sinks::template::Template;

/// What a display shows besides the tools' writes, and how long a write holds.
#[derive(Clone, Debug)]
pub(crate) struct Showing {
    pub template: Option<Template>,
    pub hold: Micros,
}

impl Default for Showing {
    fn default() -> Showing {
        Showing {
            template: None,
            hold: 60 * MICROS_PER_SEC,
        }
    }
}

pub(crate) const TEMPLATE: Param = Param::new(Spec {
    doc: "what the display shows from the pipeline, e.g. \"{system:cpu_temp|.0}\" (none: only the agent's tool writes)",
    hint: "a full source id in braces, with |.N for N decimals, e.g. template = \"{hcsr04:distance|.0}\"",
    ..Spec::new("template", Want::Text)
});

pub(crate) const HOLD: Param = Param::new(Spec {
    default: "\"60s\"",
    doc: "how long the agent's tool write stays before `template` shows again",
    ..Spec::new("hold", Want::Duration)
});

/// `common = "anode" | "cathode"`: whether the part is common anode (`Some(true)`), or
/// `None` after reporting anything else (with `hint`, which says what each drives).
pub(crate) fn common_anode(r: &mut Reader, raw: &RawParam, hint: &str) -> Option<bool> {
    match &raw.value {
        Toml::String(s) if s == "anode" || s == "cathode" => Some(s == "anode"),
        other => {
            r.bad(
                raw,
                (
                    format!(
                        "expected \"anode\" or \"cathode\", found {}",
                        describe(other)
                    ),
                    Some(hint.into()),
                ),
            );
            None
        }
    }
}

/// `template` and `hold`; a template's ids must reach the sink.
pub(crate) fn showing(r: &mut Reader, raw: &RawParam, out: &mut Showing) {
    match raw.key.as_str() {
        "template" => {
            match as_text(&raw.value).and_then(|s| Template::parse(s).map_err(|e| (e, None))) {
                Ok(t) => {
                    let missing = t
                        .ids()
                        .find(|id| !r.reach.remote && !r.reach.ids.iter().any(|(i, _)| i == id))
                        .map(str::to_string);
                    match missing {
                    Some(id) if !(r.reach.open_bool && id.starts_with("gpio:")) => r.bad(
                        raw,
                        (
                            format!(
                                "the template shows {id}, which does not reach sink '{}'; sources here: {}",
                                r.name,
                                r.reach.list()
                            ),
                            Some("name a source in this sink's `from` (or a stage it feeds)".into()),
                        ),
                    ),
                    _ => out.template = Some(t),
                }
                }
                Err(e) => r.bad(raw, e),
            }
        }
        "hold" => match positive_dur(&raw.value) {
            Ok(d) => out.hold = d,
            Err(e) => r.bad(raw, e),
        },
        _ => {}
    }
}

/// `segment_pins = { a = 27, b = 22, ..., dp = 9 }`: all eight, each a device pin.
pub(crate) fn segment_pins(r: &mut Reader, raw: &RawParam, pins: &mut [u8; 8]) {
    let hint = || {
        Some("write all eight, e.g. segment_pins = { a = 27, b = 22, c = 11, d = 8, e = 10, f = 17, g = 4, dp = 9 }".to_string())
    };
    let Toml::Table(t) = &raw.value else {
        let found = describe(&raw.value);
        r.bad(
            raw,
            (format!("expected a table of pins, found {found}"), hint()),
        );
        return;
    };
    if let Some(k) = t.keys().find(|k| !NAMES.contains(&k.as_str())) {
        r.bad(
            raw,
            (
                format!("'{k}' is not a segment (a, b, c, d, e, f, g, dp)"),
                hint(),
            ),
        );
        return;
    }
    let mut got = *pins;
    for (i, name) in NAMES.iter().enumerate() {
        match t.get(*name) {
            None => {
                r.bad(raw, (format!("segment {name} has no pin"), hint()));
                return;
            }
            Some(v) => match device_pin(v, r.settings) {
                Ok(p) => got[i] = p,
                Err((m, h)) => {
                    r.bad(raw, (format!("{name}: {m}"), h));
                    return;
                }
            },
        }
    }
    *pins = got;
}

/// Every pin of the display once: a pin used twice is named with both uses.
pub(crate) fn distinct(r: &mut Reader, pins: &[(String, u8)]) {
    for (i, (a, p)) in pins.iter().enumerate() {
        if let Some((b, _)) = pins[..i].iter().find(|(_, q)| q == p) {
            let msg = format!("sink '{}': pin {p} is given for both {b} and {a}", r.name);
            r.bad_at(
                r.line,
                msg,
                Some("each segment and digit needs its own pin".into()),
            );
            return;
        }
    }
}
