//! `set_led`: the original's LED tool, on the LED a `led` sink attached. Offered to the
//! model only while one is attached; a write tool (trusted questions only).

use serde_json::{Value as Json, json};

use super::schema::{args_obj, str_arg};
use super::{Tool, ToolContext};
use crate::sinks::led::{DEVICE, Led, Switch};

/// `set_led {state}`: switches the attached LED; the result says its new state.
pub struct SetLed;

/// `on`, `off` or `toggle`, any case.
fn parse_switch(s: &str) -> Option<Switch> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" => Some(Switch::On),
        "off" => Some(Switch::Off),
        "toggle" => Some(Switch::Toggle),
        _ => None,
    }
}

impl Tool for SetLed {
    fn name(&self) -> &'static str {
        "set_led"
    }

    fn description(&self) -> &'static str {
        "Turn the LED on or off, or toggle it."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "state": {
                    "type": "string",
                    "description": "'on', 'off' or 'toggle'",
                },
                "name": {
                    "type": "string",
                    "description": "which LED, by its pipeline node's name (default: the first)",
                },
            },
            "required": ["state"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let state = str_arg(&args, "state").unwrap_or("");
        let Some(switch) = parse_switch(state) else {
            return Err(format!(
                "Unknown state '{state}'. Use 'on', 'off' or 'toggle'."
            ));
        };
        let devices = ctx.hardware.devices.of_kind(DEVICE);
        let want = str_arg(&args, "name");
        let device = devices
            .iter()
            .find(|d| want.is_none_or(|w| d.name() == w))
            .ok_or_else(|| match want {
                Some(w) => format!(
                    "no LED called '{w}'; LEDs: {}",
                    devices
                        .iter()
                        .map(|d| d.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => "no LED is attached (a led sink in the pipeline)".into(),
            })?;
        let led = device
            .as_any()
            .downcast_ref::<Led>()
            .ok_or("the LED device is of another type")?;
        let on = led.switch(switch);
        let shown = if on { "ON" } else { "OFF" };
        log::info!("agent: set_led {state} -> {shown} ({})", device.name());
        Ok(Json::String(format!("LED is now {shown}")))
    }

    fn writes(&self) -> bool {
        true
    }

    fn device(&self) -> Option<&'static str> {
        Some(DEVICE)
    }
}

pub const SET_LED: crate::plugins::Kind = crate::plugins::tool(
    "set_led",
    "switch the attached LED on, off or toggle it",
    || Box::new(SetLed),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_in_any_case() {
        assert_eq!(parse_switch("ON"), Some(Switch::On));
        assert_eq!(parse_switch(" off "), Some(Switch::Off));
        assert_eq!(parse_switch("Toggle"), Some(Switch::Toggle));
        assert_eq!(parse_switch("blink"), None);
        let p = SetLed.parameters();
        assert_eq!(p["required"], json!(["state"]));
        assert_eq!(p["properties"]["state"]["type"], "string");
    }

    #[test]
    fn set_led_switches_the_attached_led_for_trusted_questions() {
        use crate::edges::gpio::GpioBackend;
        let mut fx = super::super::testutil::Fixture::new("set-led");
        let line = fx.gpio.claim_output(18, "led 'status'", false).unwrap();
        let led = std::sync::Arc::new(Led::new("status", 18, line, true, 1_000_000));
        let r =
            super::super::ToolRegistry::with_plugins(&fx.ctx.settings, &fx.ctx.hardware.devices);
        assert!(r.get("set_led").is_none(), "not offered without an LED");
        fx.ctx.hardware.devices.attach(led.clone());
        let r =
            super::super::ToolRegistry::with_plugins(&fx.ctx.settings, &fx.ctx.hardware.devices);
        let call = |fx: &super::super::testutil::Fixture, s: &str| {
            r.execute("set_led", &json!({ "state": s }), &fx.ctx)
        };
        assert!(
            call(&fx, "on")["error"]
                .as_str()
                .unwrap()
                .contains("not trusted")
        );
        assert!(!led.lit());
        fx.ctx.trusted = true;
        assert_eq!(call(&fx, "ON"), json!("LED is now ON"));
        assert!(led.lit());
        assert_eq!(call(&fx, "toggle"), json!("LED is now OFF"));
        assert_eq!(call(&fx, "Toggle"), json!("LED is now ON"));
        assert_eq!(
            call(&fx, "blink"),
            json!({"error": "Unknown state 'blink'. Use 'on', 'off' or 'toggle'."})
        );
        assert!(led.lit(), "an unknown state changes nothing");
        let e = r.execute(
            "set_led",
            &json!({"state": "off", "name": "porch"}),
            &fx.ctx,
        );
        assert_eq!(e, json!({"error": "no LED called 'porch'; LEDs: status"}));
    }
}
