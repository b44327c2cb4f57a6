//! GPIO tools: `read_gpio`, `list_gpio`, `write_gpio` (configured pins only).

use serde_json::{Value as Json, json};

use super::schema::{args_obj, str_arg};
use super::{Tool, ToolContext};
use crate::config::settings::{PinConfig, PinMode};

/// A configured pin by BCM number (`17`, `gpio:17`, `GPIO17`) or by name (exact, then
/// case-insensitive).
pub fn find_pin<'a>(pins: &'a [PinConfig], spec: &str) -> Option<&'a PinConfig> {
    let s = spec.trim();
    let lower = s.to_ascii_lowercase();
    let num = lower
        .strip_prefix("gpio:")
        .or_else(|| lower.strip_prefix("gpio"))
        .unwrap_or(&lower)
        .trim();
    if let Ok(n) = num.parse::<u8>()
        && let Some(p) = pins.iter().find(|p| p.pin == n)
    {
        return Some(p);
    }
    pins.iter()
        .find(|p| p.name == s)
        .or_else(|| pins.iter().find(|p| p.name.eq_ignore_ascii_case(s)))
}

fn not_found(spec: &str) -> String {
    format!("Pin '{spec}' not found")
}

fn state(level: bool) -> &'static str {
    if level { "HIGH" } else { "LOW" }
}

/// `high/on/1/true` or `low/off/0/false`, any case.
pub fn parse_level(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "high" | "on" | "1" | "true" => Some(true),
        "low" | "off" | "0" | "false" => Some(false),
        _ => None,
    }
}

fn pin_json(p: &PinConfig, level: bool) -> Json {
    json!({
        "pin": p.pin,
        "name": p.name,
        "value": u8::from(level),
        "state": state(level),
    })
}

pub struct ReadGpio;

impl Tool for ReadGpio {
    fn name(&self) -> &'static str {
        "read_gpio"
    }

    fn description(&self) -> &'static str {
        "Read the current level (HIGH or LOW) of a configured GPIO pin, given by BCM number \
         or by its configured name."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "pin": {
                    "type": "string",
                    "description": "BCM pin number (e.g. '17') or the pin's configured name",
                },
            },
            "required": ["pin"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let spec = str_arg(&args, "pin").unwrap_or("");
        let p = find_pin(&ctx.settings.gpio.pins, spec).ok_or_else(|| not_found(spec))?;
        let level = ctx.gpio.read(p.pin).map_err(|e| e.to_string())?;
        Ok(pin_json(p, level))
    }
}

pub struct ListGpio;

impl Tool for ListGpio {
    fn name(&self) -> &'static str {
        "list_gpio"
    }

    fn description(&self) -> &'static str {
        "List the configured GPIO pins with their names, modes (input or output) and current \
         levels."
    }

    fn parameters(&self) -> Json {
        json!({"type": "object", "properties": {}, "required": []})
    }

    fn call(&self, _args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let pins: Vec<Json> = ctx
            .settings
            .gpio
            .pins
            .iter()
            .map(|p| {
                let mut j = match ctx.gpio.read(p.pin) {
                    Ok(level) => pin_json(p, level),
                    Err(e) => json!({
                        "pin": p.pin,
                        "name": p.name,
                        "value": null,
                        "state": null,
                        "error": e.to_string(),
                    }),
                };
                j["mode"] = json!(match p.mode {
                    PinMode::Input => "input",
                    PinMode::Output => "output",
                });
                j
            })
            .collect();
        Ok(json!({
            "mock_mode": ctx.gpio.name() == "mock",
            "pins": pins,
        }))
    }
}

pub struct WriteGpio;

impl Tool for WriteGpio {
    fn name(&self) -> &'static str {
        "write_gpio"
    }

    fn description(&self) -> &'static str {
        "Set a configured GPIO output pin HIGH or LOW (input pins cannot be written); the pin \
         is given by BCM number or configured name."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "pin": {
                    "type": "string",
                    "description": "BCM pin number (e.g. '22') or the pin's configured name",
                },
                "state": {
                    "type": "string",
                    "enum": ["HIGH", "LOW"],
                    "x-aliases": ["on", "off", "1", "0", "true", "false"],
                    "description": "HIGH to switch the output on, LOW to switch it off",
                },
            },
            "required": ["pin", "state"],
        })
    }

    /// It switches real outputs: like `POST /api/gpio/{pin}` with the token, only for a
    /// trusted question (HTTP with the token, `smollama ask`; MQTT with `trust_mqtt`).
    fn writes(&self) -> bool {
        true
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let spec = str_arg(&args, "pin").unwrap_or("");
        let st = str_arg(&args, "state").unwrap_or("");
        let p = find_pin(&ctx.settings.gpio.pins, spec).ok_or_else(|| not_found(spec))?;
        let level = parse_level(st)
            .ok_or_else(|| format!("argument 'state': {st:?} is not HIGH or LOW"))?;
        if p.mode != PinMode::Output {
            let e = format!(
                "pin {} ({}) is an input; only outputs can be written",
                p.pin, p.name
            );
            log::warn!("agent: write_gpio refused: {e}");
            return Err(e);
        }
        if let Err(e) = ctx.gpio.write(p.pin, level) {
            log::warn!(
                "agent: write_gpio pin {} ({}) -> {} failed: {e}",
                p.pin,
                p.name,
                state(level)
            );
            return Err(e.to_string());
        }
        log::info!(
            "agent: write_gpio pin {} ({}) -> {}",
            p.pin,
            p.name,
            state(level)
        );
        let now = ctx.gpio.read(p.pin).unwrap_or(level);
        Ok(pin_json(p, now))
    }
}

pub const READ_GPIO: crate::plugins::Kind =
    crate::plugins::tool("read_gpio", "the level of a configured pin", || {
        Box::new(ReadGpio)
    });
pub const LIST_GPIO: crate::plugins::Kind = crate::plugins::tool(
    "list_gpio",
    "the configured pins with modes and levels",
    || Box::new(ListGpio),
);
pub const WRITE_GPIO: crate::plugins::Kind =
    crate::plugins::tool("write_gpio", "set an output pin high or low", || {
        Box::new(WriteGpio)
    });

#[cfg(test)]
mod tests {
    use super::super::registry::ToolRegistry;
    use super::super::testutil::Fixture;
    use super::*;
    use crate::edges::gpio::GpioBackend;

    #[test]
    fn schemas() {
        assert_eq!(ReadGpio.name(), "read_gpio");
        assert_eq!(ReadGpio.parameters()["required"], json!(["pin"]));
        assert_eq!(ReadGpio.parameters()["properties"]["pin"]["type"], "string");
        assert_eq!(ListGpio.name(), "list_gpio");
        assert_eq!(ListGpio.parameters()["required"], json!([]));
        assert_eq!(ListGpio.parameters()["properties"], json!({}));
        let p = WriteGpio.parameters();
        assert_eq!(WriteGpio.name(), "write_gpio");
        assert_eq!(p["required"], json!(["pin", "state"]));
        assert_eq!(p["properties"]["pin"]["type"], "string");
        assert_eq!(p["properties"]["state"]["type"], "string");
        assert_eq!(p["properties"]["state"]["enum"], json!(["HIGH", "LOW"]));
    }

    #[test]
    fn read_by_number_or_name() {
        let fx = Fixture::new("read-gpio");
        let r = ToolRegistry::with_core_tools();
        let read = |pin: Json| r.execute("read_gpio", &json!({ "pin": pin }), &fx.ctx);
        let fan = json!({"pin": 22, "name": "fan", "value": 1, "state": "HIGH"});
        assert_eq!(read(json!("22")), fan);
        assert_eq!(read(json!(22)), fan, "a number is taken as the pin");
        assert_eq!(read(json!("fan")), fan);
        assert_eq!(read(json!("FAN")), fan);
        assert_eq!(read(json!("gpio:22")), fan);
        assert_eq!(
            read(json!("door")),
            json!({"pin": 17, "name": "door", "value": 0, "state": "LOW"})
        );
        assert_eq!(read(json!("5")), json!({"error": "Pin '5' not found"}));
        assert_eq!(
            read(json!("heater")),
            json!({"error": "Pin 'heater' not found"})
        );
        assert_eq!(read(json!("300")), json!({"error": "Pin '300' not found"}));
    }

    #[test]
    fn list_all_pins() {
        let fx = Fixture::new("list-gpio");
        let r = ToolRegistry::with_core_tools();
        let out = r.execute("list_gpio", &json!({}), &fx.ctx);
        assert_eq!(out["mock_mode"], true);
        assert_eq!(
            out["pins"],
            json!([
                {"pin": 17, "name": "door", "value": 0, "state": "LOW", "mode": "input"},
                {"pin": 27, "name": "button", "value": 1, "state": "HIGH", "mode": "input"},
                {"pin": 22, "name": "fan", "value": 1, "state": "HIGH", "mode": "output"},
                {"pin": 23, "name": "led", "value": 0, "state": "LOW", "mode": "output"},
            ])
        );
        // No arguments at all is fine too.
        assert_eq!(r.execute("list_gpio", &Json::Null, &fx.ctx), out);
    }

    #[test]
    fn write_drives_outputs_only() {
        let mut fx = Fixture::new("write-gpio");
        fx.ctx.trusted = true; // as for HTTP with the token
        let r = ToolRegistry::with_core_tools();
        let write = |pin: &str, st: Json| {
            r.execute("write_gpio", &json!({"pin": pin, "state": st}), &fx.ctx)
        };
        assert_eq!(
            write("led", json!("HIGH")),
            json!({"pin": 23, "name": "led", "value": 1, "state": "HIGH"})
        );
        assert_eq!(fx.gpio.read(23), Ok(true));
        assert_eq!(write("23", json!("off"))["state"], "LOW");
        assert_eq!(fx.gpio.read(23), Ok(false));
        assert_eq!(write("23", json!(1))["state"], "HIGH");
        assert_eq!(write("23", json!(false))["state"], "LOW");
        assert_eq!(write("fan", json!("low"))["value"], 0);
        assert_eq!(fx.gpio.read(22), Ok(false));

        assert_eq!(
            write("17", json!("HIGH")),
            json!({"error": "pin 17 (door) is an input; only outputs can be written"})
        );
        assert_eq!(fx.gpio.read(17), Ok(false));
        assert_eq!(
            write("4", json!("HIGH")),
            json!({"error": "Pin '4' not found"})
        );
        assert!(
            write("23", json!("maybe"))["error"]
                .as_str()
                .unwrap()
                .starts_with("argument 'state':")
        );
        assert_eq!(fx.gpio.read(23), Ok(false));
    }

    #[test]
    fn levels() {
        for s in ["HIGH", "high", "On", "1", "true"] {
            assert_eq!(parse_level(s), Some(true), "{s}");
        }
        for s in ["LOW", "low", "OFF", "0", "False"] {
            assert_eq!(parse_level(s), Some(false), "{s}");
        }
        assert_eq!(parse_level("2"), None);
    }
}
