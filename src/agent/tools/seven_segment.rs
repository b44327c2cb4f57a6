//! The original's 7-segment tools, on the displays the `s5161as` and `sh5461as` sinks
//! attached: `display_digit` (one character, optionally followed by `.`) and
//! `display_value` (up to four characters, right-aligned; a `.` joins the character
//! before it). Each is offered to the model only while its display is attached; both are
//! write tools (trusted questions only). A write holds the display for the sink's `hold`.

use serde_json::{Value as Json, json};

use super::schema::{args_obj, str_arg};
use super::{Tool, ToolContext};
use crate::sinks::seven_segment::{Display, glyphs, s5161as, sh5461as};

fn schema(text: &str) -> Json {
    json!({
        "type": "object",
        "properties": {
            "text": { "type": "string", "description": text },
            "name": {
                "type": "string",
                "description": "which display, by its pipeline node's name (default: the first)",
            },
        },
        "required": ["text"],
    })
}

/// The attached display of `kind` called `name` (or the first).
fn find(
    ctx: &ToolContext,
    kind: &str,
    name: Option<&str>,
) -> Result<std::sync::Arc<dyn crate::edges::hw::Device>, String> {
    let all = ctx.hardware.devices.of_kind(kind);
    all.iter()
        .find(|d| name.is_none_or(|n| d.name() == n))
        .cloned()
        .ok_or_else(|| match name {
            Some(n) => format!(
                "no {kind} display called '{n}'; {kind} displays: {}",
                all.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
            ),
            None => format!("no {kind} display is attached (a {kind} sink in the pipeline)"),
        })
}

/// Write `text` on the display and say what it shows.
fn show(ctx: &ToolContext, args: &Json, kind: &str, tool: &str) -> Result<Json, String> {
    let args = args_obj(args);
    let text = str_arg(&args, "text").unwrap_or("");
    let device = find(ctx, kind, str_arg(&args, "name"))?;
    let display = device
        .as_any()
        .downcast_ref::<Display>()
        .ok_or("the display device is of another type")?;
    let width = display.width();
    display.write(text).map_err(|n| {
        format!(
            "'{text}' needs {n} digits; the display has {width} (a '.' joins the character before it)"
        )
    })?;
    log::info!("agent: {tool} '{text}' ({})", device.name());
    let blank: String = glyphs::unknown(text).collect();
    Ok(Json::String(if blank.is_empty() {
        format!("Displaying '{text}'")
    } else {
        format!("Displaying '{text}' ('{blank}' shown blank: no such glyph)")
    }))
}

/// `display_digit {text}`: one character (and its point) on the attached s5161as.
pub struct DisplayDigit;

impl Tool for DisplayDigit {
    fn name(&self) -> &'static str {
        "display_digit"
    }

    fn description(&self) -> &'static str {
        "Show one character on the single-digit 7-segment display (0-9, -, E, H, L, P, r, n, space), optionally followed by '.' for the decimal point."
    }

    fn parameters(&self) -> Json {
        schema("one character, optionally followed by '.', e.g. '7' or '3.'")
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let text = args_obj(args);
        let text = str_arg(&text, "text").unwrap_or("");
        let mut chars = text.chars();
        let one = match (chars.next(), chars.next(), chars.next()) {
            (Some(_), None, None) => true,
            (Some(c), Some('.'), None) => c != '.',
            _ => false,
        };
        if !one {
            return Err(format!(
                "'{text}' is not one character optionally followed by '.' (e.g. '7' or '3.')"
            ));
        }
        show(ctx, args, s5161as::DEVICE, self.name())
    }

    fn writes(&self) -> bool {
        true
    }

    fn device(&self) -> Option<&'static str> {
        Some(s5161as::DEVICE)
    }
}

/// `display_value {text}`: up to four characters on the attached sh5461as.
pub struct DisplayValue;

impl Tool for DisplayValue {
    fn name(&self) -> &'static str {
        "display_value"
    }

    fn description(&self) -> &'static str {
        "Show up to 4 characters on the 4-digit 7-segment display, right-aligned (0-9, -, E, H, L, P, r, n, space); a '.' lights the decimal point of the character before it, e.g. '12.3'."
    }

    fn parameters(&self) -> Json {
        schema("up to 4 characters, e.g. '12.3' or 'Err'")
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        show(ctx, args, sh5461as::DEVICE, self.name())
    }

    fn writes(&self) -> bool {
        true
    }

    fn device(&self) -> Option<&'static str> {
        Some(sh5461as::DEVICE)
    }
}

pub const DISPLAY_DIGIT: crate::plugins::Kind = crate::plugins::tool(
    "display_digit",
    "show one character on the attached single 7-segment digit",
    || Box::new(DisplayDigit),
);
pub const DISPLAY_VALUE: crate::plugins::Kind = crate::plugins::tool(
    "display_value",
    "show up to 4 characters on the attached 4-digit 7-segment display",
    || Box::new(DisplayValue),
);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::ToolRegistry;
    use super::super::testutil::Fixture;
    use super::*;
    use crate::sinks::seven_segment::Segments;

    /// Lines that remember what they were given.
    struct Recorded(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Segments for Recorded {
        fn put(&mut self, masks: &[u8]) {
            *self.0.lock().unwrap() = masks.to_vec();
        }
        fn stop(&mut self) {}
    }

    fn attach(fx: &Fixture, kind: &'static str, width: usize) -> Arc<std::sync::Mutex<Vec<u8>>> {
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let d = Display::new(
            kind,
            "front",
            width,
            1_000_000,
            Box::new(Recorded(got.clone())),
        );
        fx.ctx.hardware.devices.attach(Arc::new(d));
        got
    }

    #[test]
    fn display_digit_takes_one_character_and_its_point() {
        let mut fx = Fixture::new("display-digit");
        fx.ctx.trusted = true;
        let r = ToolRegistry::with_plugins(&fx.ctx.settings, &fx.ctx.hardware.devices);
        assert!(
            r.get("display_digit").is_none(),
            "not offered without the display"
        );
        let got = attach(&fx, s5161as::DEVICE, 1);
        let r = ToolRegistry::with_plugins(&fx.ctx.settings, &fx.ctx.hardware.devices);
        assert!(
            r.get("display_value").is_none(),
            "only the attached kind's tool"
        );
        let call = |t: &str| r.execute("display_digit", &json!({ "text": t }), &fx.ctx);
        assert_eq!(call("7"), json!("Displaying '7'"));
        assert_eq!(*got.lock().unwrap(), [glyphs::glyph('7')]);
        assert_eq!(call("3."), json!("Displaying '3.'"));
        assert_eq!(*got.lock().unwrap(), [glyphs::glyph('3') | glyphs::DP]);
        assert_eq!(call("n"), json!("Displaying 'n'"));
        assert_eq!(
            call("A"),
            json!("Displaying 'A' ('A' shown blank: no such glyph)")
        );
        for bad in ["", "12", "7.5", "..", "7.."] {
            let e = call(bad);
            assert!(
                e["error"].as_str().unwrap().contains("not one character"),
                "{bad}: {e}"
            );
        }
        assert_eq!(*got.lock().unwrap(), [0], "refused writes change nothing");
        assert_eq!(
            r.get("display_digit").unwrap().parameters()["required"],
            json!(["text"])
        );
    }

    #[test]
    fn display_value_right_aligns_up_to_four_characters() {
        let mut fx = Fixture::new("display-value");
        let got = attach(&fx, sh5461as::DEVICE, 4);
        let r = ToolRegistry::with_plugins(&fx.ctx.settings, &fx.ctx.hardware.devices);
        let call =
            |fx: &Fixture, t: &str| r.execute("display_value", &json!({ "text": t }), &fx.ctx);
        assert!(call(&fx, "1").to_string().contains("not trusted"));
        fx.ctx.trusted = true;
        assert_eq!(call(&fx, "12.3"), json!("Displaying '12.3'"));
        let g = glyphs::glyph;
        assert_eq!(
            *got.lock().unwrap(),
            [0, g('1'), g('2') | glyphs::DP, g('3')]
        );
        assert_eq!(call(&fx, "-5"), json!("Displaying '-5'"));
        assert_eq!(*got.lock().unwrap(), [0, 0, g('-'), g('5')]);
        assert_eq!(
            call(&fx, "12345"),
            json!({"error": "'12345' needs 5 digits; the display has 4 (a '.' joins the character before it)"})
        );
        assert_eq!(*got.lock().unwrap(), [0, 0, g('-'), g('5')]);
        let e = r.execute(
            "display_value",
            &json!({"text": "1", "name": "back"}),
            &fx.ctx,
        );
        assert_eq!(
            e,
            json!({"error": "no sh5461as display called 'back'; sh5461as displays: front"})
        );
        assert!(r.execute("display_value", &json!({}), &fx.ctx)["error"].is_string());
    }
}
