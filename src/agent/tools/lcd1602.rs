//! LCD tools, as the original's lcd1602 plugin: `lcd_write` (`line1`, optional `line2`;
//! each truncated to the display's width, the display cleared first) and `lcd_clear`.
//! Offered only while an `lcd1602` sink has attached its display; they drive the first
//! one. They run on the `llm` thread and do their I2C writes there (the tool's blocking
//! work), serialised with the sink by the display's own mutex.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::schema::{args_obj, str_arg};
use super::{Tool, ToolContext};
use crate::edges::hw::Device;
use crate::sinks::lcd1602::Lcd1602;

const DEVICE: &str = "lcd1602";

/// The first attached display, or why there is none.
fn display(ctx: &ToolContext) -> Result<(Arc<dyn Device>, String), String> {
    let d = ctx
        .hardware
        .devices
        .of_kind(DEVICE)
        .into_iter()
        .next()
        .ok_or_else(|| "no lcd1602 display is attached (add an lcd1602 sink)".to_string())?;
    let name = d.name().to_string();
    Ok((d, name))
}

fn lcd(d: &Arc<dyn Device>) -> Result<&Lcd1602, String> {
    d.as_any()
        .downcast_ref::<Lcd1602>()
        .ok_or_else(|| "the lcd1602 device is of another type".to_string())
}

pub struct LcdWrite;

impl Tool for LcdWrite {
    fn name(&self) -> &'static str {
        "lcd_write"
    }

    fn description(&self) -> &'static str {
        "Write text to the attached LCD character display (16x2 by default): line1 on the \
         first row, line2 on the second; each is cut to the display's width and the \
         display is cleared first."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "line1": {"type": "string", "description": "text for the first row"},
                "line2": {"type": "string", "description": "text for the second row (optional)"},
            },
            "required": ["line1"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let line1 = str_arg(&args, "line1").unwrap_or("");
        let line2 = str_arg(&args, "line2").unwrap_or("");
        let (d, name) = display(ctx)?;
        let shown = lcd(&d)?
            .write(&[line1, line2])
            .map_err(|e| format!("lcd1602 '{name}': {e}"))?;
        log::info!("agent: lcd_write on '{name}': {shown:?}");
        Ok(json!({ "display": name, "lines": shown }))
    }

    fn writes(&self) -> bool {
        true
    }

    fn device(&self) -> Option<&'static str> {
        Some(DEVICE)
    }
}

pub struct LcdClear;

impl Tool for LcdClear {
    fn name(&self) -> &'static str {
        "lcd_clear"
    }

    fn description(&self) -> &'static str {
        "Clear the attached LCD character display."
    }

    fn parameters(&self) -> Json {
        json!({"type": "object", "properties": {}, "required": []})
    }

    fn call(&self, _args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let (d, name) = display(ctx)?;
        lcd(&d)?
            .clear()
            .map_err(|e| format!("lcd1602 '{name}': {e}"))?;
        Ok(json!({ "display": name, "cleared": true }))
    }

    fn writes(&self) -> bool {
        true
    }

    fn device(&self) -> Option<&'static str> {
        Some(DEVICE)
    }
}

pub const LCD_WRITE: crate::plugins::Kind = crate::plugins::tool(
    "lcd_write",
    "write two lines on the attached LCD1602",
    || Box::new(LcdWrite),
);
pub const LCD_CLEAR: crate::plugins::Kind =
    crate::plugins::tool("lcd_clear", "clear the attached LCD1602", || {
        Box::new(LcdClear)
    });

#[cfg(test)]
mod tests {
    use super::super::registry::ToolRegistry;
    use super::super::testutil::Fixture;
    use super::*;
    use crate::config::SinkSpec;
    use crate::plugins::params::{Reach, Reader};

    /// An lcd1602 sink set up on the fixture's hardware (a mock bus: the backpack is the
    /// PCF8574 + HD44780 model), as the pipeline would.
    fn attach(fx: &Fixture) {
        let kind = &crate::sinks::lcd1602::KIND;
        let reach = Reach::default();
        let mut r = Reader {
            name: "lcd",
            kind,
            line: 1,
            params: &[],
            reach: &reach,
            settings: &fx.ctx.settings,
            problems: Vec::new(),
            needs: Vec::new(),
        };
        let params = kind.parse_fn().unwrap()(&mut r);
        let spec = SinkSpec {
            name: "lcd".into(),
            from: vec![],
            kind,
            params,
        };
        let crate::plugins::Make::Sink { setup, .. } = kind.make else {
            unreachable!()
        };
        let gpio: Arc<dyn crate::edges::gpio::GpioBackend> = fx.gpio.clone();
        let (_trigger, shutdown) = crate::shutdown::channel();
        let parts = crate::plugins::Parts {
            settings: &fx.ctx.settings,
            registry: &fx.registry,
            gpio: &gpio,
            hardware: &fx.ctx.hardware,
            writer: None,
            mqtt: None,
            observer: None,
            events: None,
            node_events: None,
            shutdown: &shutdown,
        };
        let mut s = crate::plugins::Setup {
            parts: &parts,
            #[cfg(feature = "mqtt")]
            subscriptions: Vec::new(),
        };
        assert!(setup(&spec, &mut s).is_ok());
    }

    fn glass(fx: &Fixture) -> Json {
        let bus = fx.ctx.hardware.i2c(1).unwrap();
        bus.mock().unwrap().with_model(0x27, |m| m.state()).unwrap()
    }

    #[test]
    fn write_and_clear_reach_the_display() {
        let mut fx = Fixture::new("lcd");
        // Both tools registered directly: `with_plugins` would offer them only once a
        // display is attached, and this also checks what they say when none is.
        let mut r = ToolRegistry::new();
        for kind in [&LCD_WRITE, &LCD_CLEAR] {
            if let crate::plugins::Make::Tool { make } = kind.make {
                r.register(make());
            }
        }
        let e = r.execute("lcd_write", &json!({"line1": "x"}), &fx.ctx);
        assert!(e["error"].as_str().unwrap().contains("write tool"), "{e}");
        fx.ctx.trusted = true;
        let e = r.execute("lcd_write", &json!({"line1": "x"}), &fx.ctx);
        assert_eq!(
            e,
            json!({"error": "no lcd1602 display is attached (add an lcd1602 sink)"})
        );
        attach(&fx);
        let out = r.execute(
            "lcd_write",
            &json!({"line1": "Hello from the agent", "line2": "21.5°C"}),
            &fx.ctx,
        );
        assert_eq!(
            out,
            json!({"display": "lcd", "lines": ["Hello from the a", "21.5°C"]})
        );
        assert_eq!(glass(&fx)["lines"], json!(["Hello from the a", "21.5°C"]));
        // line2 left out: the second row is blank (cleared first).
        r.execute("lcd_write", &json!({"line1": "only one"}), &fx.ctx);
        assert_eq!(glass(&fx)["lines"], json!(["only one", ""]));
        let out = r.execute("lcd_clear", &json!({}), &fx.ctx);
        assert_eq!(out, json!({"display": "lcd", "cleared": true}));
        assert_eq!(glass(&fx)["lines"], json!(["", ""]));
        let e = r.execute("lcd_write", &json!({}), &fx.ctx);
        assert_eq!(
            e,
            json!({"error": "argument 'line1': required but missing"})
        );
    }
}
