//! `[gpio]` and its `[[gpio.pins]]` tables: the backend and the pins this node uses.

use super::key::{Key, Section, number, parse_bool, problem, quoted};
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::config::suggest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpioBackendChoice {
    /// rppal on a Raspberry Pi, the mock elsewhere (announced in the log).
    Auto,
    Mock,
    Rppal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinMode {
    Input,
    Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull {
    Off,
    Up,
    Down,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PinConfig {
    /// BCM pin number.
    pub pin: u8,
    pub name: String,
    pub mode: PinMode,
    /// Input pull resistor. Default down (as the original).
    pub pull: Pull,
    /// Output level at start. Default low.
    pub initial: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GpioSettings {
    pub backend: GpioBackendChoice,
    pub pins: Vec<PinConfig>,
    /// Mock backend only: toggle input pins in a slow random pattern (for demos).
    pub simulate: bool,
}

const BACKENDS: &[&str] = &["auto", "mock", "rppal"];
const MODES: &[&str] = &["input", "output"];
const PULLS: &[&str] = &["off", "up", "down"];

/// The `pins` key: a list of `[[gpio.pins]]` tables, read by [`pin`] from the file and
/// by [`pins_from_env`] from `SMOLLAMA_GPIO_PINS`.
pub(crate) const PINS: &str = "pins";

pub(crate) const SECTION: Section = Section {
    name: "gpio",
    doc: "",
    keys: &[
        Key {
            choices: BACKENDS,
            ..Key::new(
                Spec {
                    default: "\"auto\"",
                    doc: "\"auto\": rppal on a Raspberry Pi, the mock backend elsewhere (announced in the log); \"mock\": always the mock; \"rppal\": real GPIO, an error off a Pi. Only the agent and a tool that touches a pin open GPIO; status, pipeline check and memory commands never do.",
                    ..Spec::new("backend", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    s.gpio.backend = match v.as_str() {
                        "auto" => GpioBackendChoice::Auto,
                        "mock" => GpioBackendChoice::Mock,
                        "rppal" => GpioBackendChoice::Rppal,
                        _ => {
                            return Err((
                                format!("unknown gpio backend '{v}'"),
                                Some(suggest::hint(&v, "backends", BACKENDS)),
                            ));
                        }
                    };
                    Ok(())
                },
                |s| {
                    quoted(match s.gpio.backend {
                        GpioBackendChoice::Auto => "auto",
                        GpioBackendChoice::Mock => "mock",
                        GpioBackendChoice::Rppal => "rppal",
                    })
                },
            )
        },
        Key::new(
            Spec {
                default: "false",
                doc: "Mock backend only: toggle input pins in a slow random pattern (for demos).",
                ..Spec::new("simulate", Want::Bool)
            },
            |s, v, _| {
                s.gpio.simulate = v.bool()?;
                Ok(())
            },
            |s| number(s.gpio.simulate),
        ),
        Key::new(
            Spec {
                default: "[]",
                doc: "One [[gpio.pins]] table per pin (keys below). No pins by default. In the environment: comma-separated PIN:NAME[:MODE][:pull=P][:initial=B] entries, e.g. SMOLLAMA_GPIO_PINS=\"17:motion:input,27:led:output:initial=true\"; they replace the file's pins.",
                ..Spec::new(PINS, Want::Tables)
            },
            // Pins are tables, not a value: the file and the environment read them with
            // `pin` and `pins_from_env`.
            |_, _, _| Err(problem("internal: pins are read as tables")),
            |s| {
                let items: Vec<String> = s.gpio.pins.iter().map(show_pin).collect();
                Some(format!("[{}]", items.join(", ")))
            },
        ),
    ],
};

/// The keys of one `[[gpio.pins]]` table.
pub(crate) const PIN_KEYS: &[Spec] = &[
    Spec {
        range: Some((0.0, 27.0)),
        doc: "BCM pin number (not the physical header position). Required; unique.",
        ..Spec::new("pin", Want::WholeNumber)
    },
    Spec {
        doc: "Name: non-empty, A-Z a-z 0-9 _ -. Required; unique.",
        ..Spec::new("name", Want::Text)
    },
    Spec {
        default: "\"input\"",
        doc: "\"input\" or \"output\".",
        ..Spec::new("mode", Want::Text)
    },
    Spec {
        default: "\"down\"",
        doc: "Input pull resistor: \"off\", \"up\" or \"down\".",
        ..Spec::new("pull", Want::Text)
    },
    Spec {
        default: "false",
        doc: "Output level at start (outputs only): false = low, true = high.",
        ..Spec::new("initial", Want::Bool)
    },
];

/// The words a pin key takes, for the docs (`pin` checks them itself).
pub(crate) fn pin_choices(key: &str) -> &'static [&'static str] {
    match key {
        "mode" => MODES,
        "pull" => PULLS,
        _ => &[],
    }
}

/// An example pin for the default file, in `PIN_KEYS` order.
pub(crate) const PIN_EXAMPLE: &[&str] = &["17", "\"motion\""];

fn show_pin(p: &PinConfig) -> String {
    format!(
        "{{ pin = {}, name = {}, mode = \"{}\", pull = \"{}\", initial = {} }}",
        p.pin,
        toml::Value::String(p.name.clone()),
        match p.mode {
            PinMode::Input => "input",
            PinMode::Output => "output",
        },
        match p.pull {
            Pull::Off => "off",
            Pull::Up => "up",
            Pull::Down => "down",
        },
        p.initial
    )
}

/// One pin as written, each value with the line it is on (`None`: the environment).
pub(crate) struct RawPin {
    pub at: Option<usize>,
    pub pin: Option<(i64, Option<usize>)>,
    pub name: Option<(String, Option<usize>)>,
    pub mode: Option<(String, Option<usize>)>,
    pub pull: Option<(String, Option<usize>)>,
    pub initial: Option<(bool, Option<usize>)>,
}

/// A pin's problem: the line (when in the file), message and hint.
pub(crate) type PinProblem = (Option<usize>, String, String);

/// Check one pin against the pins before it.
pub(crate) fn pin(raw: RawPin, existing: &[PinConfig]) -> Result<PinConfig, PinProblem> {
    let keys = || {
        PIN_KEYS
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let missing = |field: &str| {
        (
            raw.at,
            format!("a [[gpio.pins]] entry has no `{field}`"),
            format!(
                "each [[gpio.pins]] needs at least `pin` and `name`; keys: {}",
                keys()
            ),
        )
    };
    let (pin, pin_at) = raw.pin.ok_or_else(|| missing("pin"))?;
    let (name, name_at) = raw.name.clone().ok_or_else(|| missing("name"))?;
    if !(0..=27).contains(&pin) {
        return Err((
            pin_at,
            format!("pin {pin} is not a GPIO pin"),
            "use a BCM number from 0 to 27 (BCM numbering, not the physical header position)"
                .into(),
        ));
    }
    let pin = pin as u8;
    if let Some(other) = existing.iter().find(|p| p.pin == pin) {
        return Err((
            pin_at,
            format!("pin {pin} is configured twice"),
            format!(
                "it is already configured as '{}'; give each pin one [[gpio.pins]] entry",
                other.name
            ),
        ));
    }
    if name.is_empty() || !super::node::valid_name_chars(&name) {
        return Err((
            name_at,
            format!("pin name '{name}' is not valid"),
            "use a non-empty name from A-Z a-z 0-9 _ -, e.g. \"motion\"".into(),
        ));
    }
    if let Some(other) = existing.iter().find(|p| p.name == name) {
        return Err((
            name_at,
            format!("pin name '{name}' is used twice"),
            format!(
                "pin {} is already called '{name}'; names must be unique",
                other.pin
            ),
        ));
    }
    let mode = match raw.mode {
        None => PinMode::Input,
        Some((m, at)) => match m.as_str() {
            "input" => PinMode::Input,
            "output" => PinMode::Output,
            other => {
                return Err((
                    at,
                    format!("unknown pin mode '{other}'"),
                    suggest::hint(other, "modes", MODES),
                ));
            }
        },
    };
    let pull = match raw.pull {
        None => Pull::Down,
        Some((p, at)) => match p.as_str() {
            "off" => Pull::Off,
            "up" => Pull::Up,
            "down" => Pull::Down,
            other => {
                return Err((
                    at,
                    format!("unknown pull '{other}'"),
                    suggest::hint(other, "pulls", PULLS),
                ));
            }
        },
    };
    Ok(PinConfig {
        pin,
        name,
        mode,
        pull,
        initial: raw.initial.is_some_and(|(i, _)| i),
    })
}

/// `SMOLLAMA_GPIO_PINS`: comma-separated `PIN:NAME[:MODE][:pull=P][:initial=B]`
/// entries (`mode=` may be written out too), e.g. `17:motion:input,27:led:output:initial=true`.
pub(crate) fn pins_from_env(value: &str) -> Result<Vec<RawPin>, (String, String)> {
    const FORMAT: &str = "write PIN:NAME[:MODE][:pull=P][:initial=B] entries separated by commas, e.g. \"17:motion:input,27:led:output:initial=true\"";
    let mut pins = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.split(':').map(str::trim);
        let pin = parts.next().unwrap_or("");
        let pin: i64 = pin.parse().map_err(|_| {
            (
                format!("pin entry '{entry}': '{pin}' is not a pin number"),
                FORMAT.to_string(),
            )
        })?;
        let Some(name) = parts.next() else {
            return Err((
                format!("pin entry '{entry}' has no name"),
                FORMAT.to_string(),
            ));
        };
        let mut raw = RawPin {
            at: None,
            pin: Some((pin, None)),
            name: Some((name.to_string(), None)),
            mode: None,
            pull: None,
            initial: None,
        };
        for part in parts {
            match part.split_once('=') {
                None => raw.mode = Some((part.to_string(), None)),
                Some(("mode", m)) => raw.mode = Some((m.trim().to_string(), None)),
                Some(("pull", p)) => raw.pull = Some((p.trim().to_string(), None)),
                Some(("initial", b)) => match parse_bool(b) {
                    Some(b) => raw.initial = Some((b, None)),
                    None => {
                        return Err((
                            format!("pin entry '{entry}': initial={b} is not true or false"),
                            "write initial=true or initial=false".into(),
                        ));
                    }
                },
                Some((k, _)) => {
                    return Err((
                        format!("pin entry '{entry}': unknown key '{k}'"),
                        suggest::hint(k, "keys", &["mode", "pull", "initial"]),
                    ));
                }
            }
        }
        pins.push(raw);
    }
    Ok(pins)
}
