//! The GPIO endpoints: pin levels, and writes (behind the bearer token).

use serde_json::{Value as Json, json};

use super::HttpView;
use super::auth::require_token;
use super::request::Call;
use super::request::short;
use super::response::{Reply, err, ok};
use crate::edges::gpio::GpioError;

/// `GET /api/gpio`: configured pins and their levels.
pub(crate) fn pins(view: &HttpView, _: &Call) -> Reply {
    ok(crate::edges::gpio::pins_json(
        &view.settings.gpio.pins,
        view.gpio.as_ref(),
    ))
}

/// `PUT /api/gpio/{pin}` `{"value": true}`: drive an output (or, on the mock, set an
/// input). Needs the bearer token. Runs on `http-slow`: hardware may take its time.
pub(crate) fn write(view: &HttpView, call: &Call) -> Reply {
    let pin = call.params[0].as_str();
    if let Err(refused) = require_token(view, call) {
        return refused;
    }
    let Ok(pin_no) = pin.parse::<u8>() else {
        return err(400, format!("'{}' is not a pin number", short(pin)));
    };
    let Some(cfg) = view.settings.gpio.pins.iter().find(|p| p.pin == pin_no) else {
        return err(404, format!("pin {pin_no} is not configured in [gpio]"));
    };
    let body = match call.body_text() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parsed: Result<Json, _> = serde_json::from_str(body);
    let level = match parsed.as_ref().ok().and_then(|j| j.get("value")) {
        Some(Json::Bool(b)) => *b,
        Some(Json::Number(n)) if n.as_u64() == Some(0) => false,
        Some(Json::Number(n)) if n.as_u64() == Some(1) => true,
        _ => {
            return err(
                400,
                "body must be a JSON object like {\"value\": true} (true/false or 1/0)",
            );
        }
    };
    let result = match cfg.mode {
        crate::config::settings::PinMode::Output => view.gpio.write(pin_no, level),
        crate::config::settings::PinMode::Input => view.gpio.set_input(pin_no, level),
    };
    match result {
        Ok(()) => {
            log::info!(
                "http: gpio pin {pin_no} ({}) set {}",
                cfg.name,
                if level { "high" } else { "low" }
            );
            ok(json!({ "pin": pin_no, "name": cfg.name, "value": level }))
        }
        Err(
            e @ (GpioError::NotSimulated | GpioError::NotAnOutput(_) | GpioError::NotAnInput(_)),
        ) => err(409, e.to_string()),
        Err(e @ GpioError::UnknownPin(_)) => err(404, e.to_string()),
        Err(e) => err(500, e.to_string()),
    }
}
