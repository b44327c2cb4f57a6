//! The set of tools offered to the model: what it is told (`ollama_tools`) and how a
//! call is carried out (`execute`: validate, call, wrap errors as `{"error": ...}`).

use std::sync::OnceLock;

use serde_json::{Value as Json, json};

use super::schema;
use super::{Tool, ToolContext};

/// The tools by name, in registration order. What the model is told of them is built once
/// (tools and their schemas do not change once registered) and kept until the next
/// `register`.
#[derive(Default)]
pub struct ToolRegistry {
    tools: Vec<Box<dyn Tool>>,
    /// `ollama_tools`' answer: every question sends it, every round serialises it.
    offered: OnceLock<Json>,
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> ToolRegistry {
        ToolRegistry::default()
    }

    /// Every tool kind of `plugins::registry` that drives no device, in its order (the
    /// original's eight core tools first, then the memory tools).
    pub fn with_core_tools() -> ToolRegistry {
        ToolRegistry::with_tools(|device| device.is_none())
    }

    /// The tool kinds of `plugins::registry` that `keep` keeps by their device.
    fn with_tools(keep: impl Fn(Option<&'static str>) -> bool) -> ToolRegistry {
        let mut r = ToolRegistry::new();
        for kind in crate::plugins::registry::all() {
            if let crate::plugins::Make::Tool { make } = kind.make {
                let tool = make();
                if keep(tool.device()) {
                    r.register(tool);
                }
            }
        }
        r
    }

    /// The core tools, the device tools whose device is attached (after the core tools,
    /// as the original registers a plugin's tools), then the exec tools of `[plugins]
    /// dir`'s valid manifests (invalid ones are logged and skipped).
    pub fn with_plugins(
        settings: &crate::config::Settings,
        devices: &crate::edges::hw::Devices,
    ) -> ToolRegistry {
        // notify_human's "device" is the gateway client.
        let gateway = cfg!(feature = "openclaw") && settings.openclaw.enabled;
        let mut r = ToolRegistry::with_tools(|d| {
            d.is_none_or(|d| devices.has(d) || (gateway && d == super::notify_human::DEVICE))
        });
        super::exec::register_manifests(&mut r, settings);
        r
    }

    /// Add a tool; one with the same name is replaced in place (plugins may override).
    pub fn register(&mut self, tool: Box<dyn Tool>) {
        self.offered = OnceLock::new();
        match self.tools.iter_mut().find(|t| t.name() == tool.name()) {
            Some(slot) => *slot = tool,
            None => self.tools.push(tool),
        }
    }

    /// Tool names in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.tools.iter().map(|t| t.name()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&dyn Tool> {
        self.tools
            .iter()
            .find(|t| t.name() == name)
            .map(|t| t.as_ref())
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The tools in Ollama's (OpenAI's) function format:
    /// `[{type:"function", function:{name, description, parameters}}]`.
    pub fn ollama_tools(&self) -> &Json {
        self.offered.get_or_init(|| {
            Json::Array(
                self.tools
                    .iter()
                    .map(|t| {
                        json!({
                            "type": "function",
                            "function": {
                                "name": t.name(),
                                "description": t.description(),
                                "parameters": schema::public_schema(&t.parameters()),
                            }
                        })
                    })
                    .collect(),
            )
        })
    }

    /// Run one tool call. Always returns JSON for the model: the tool's result, or
    /// `{"error": ...}` for an unknown tool, invalid arguments or a failed call.
    pub fn execute(&self, name: &str, args: &Json, ctx: &ToolContext) -> Json {
        let Some(tool) = self.get(name) else {
            log::debug!("agent: the model called an unknown tool '{name}'");
            return json!({
                "error": format!("unknown tool '{name}'; available: {}", self.names().join(", "))
            });
        };
        if tool.writes() && !ctx.trusted {
            super::ToolStats::hit(&ctx.stats.writes_refused);
            log::info!(
                "agent: {name} refused: a write tool, and the question's origin is not trusted"
            );
            return json!({
                "error": format!("{name} is a write tool; this question's origin is not trusted to run it (questions over MQTT are not, unless [agent] trust_mqtt = true; POST /api/ask with the token and smollama ask are)")
            });
        }
        let args = match schema::validate(&tool.parameters(), args) {
            Ok(a) => Json::Object(a),
            Err(e) => {
                log::debug!("agent: {name}: {e}");
                return json!({ "error": e });
            }
        };
        log::debug!("agent: tool {name} {args}");
        match tool.call(&args, ctx) {
            Ok(v) => v,
            Err(e) => {
                log::debug!("agent: {name} failed: {e}");
                json!({ "error": e })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::Fixture;
    use super::*;

    struct Echo(&'static str);

    impl Tool for Echo {
        fn name(&self) -> &'static str {
            "echo"
        }
        fn description(&self) -> &'static str {
            self.0
        }
        fn parameters(&self) -> Json {
            json!({
                "type": "object",
                "properties": {
                    "mode": {"type": "string", "enum": ["fast", "slow"]},
                    "fail": {"type": "boolean"},
                },
                "required": ["mode"],
            })
        }
        fn call(&self, args: &Json, _ctx: &ToolContext) -> Result<Json, String> {
            if args["fail"] == json!(true) {
                return Err("it failed".into());
            }
            Ok(args.clone())
        }
    }

    #[test]
    fn core_tools_in_order() {
        let r = ToolRegistry::with_core_tools();
        // Device tools (lcd_write, ...) are offered only with their device: not core.
        let core: Vec<&str> = r
            .tools
            .iter()
            .filter(|t| t.device().is_none())
            .map(|t| t.name())
            .collect();
        assert_eq!(
            core,
            [
                "read_source",
                "list_sources",
                "get_reading_history",
                "publish",
                "get_recent_messages",
                "read_gpio",
                "list_gpio",
                "write_gpio",
                "recall",
                "remember",
                "observe",
                "cross_node_recall"
            ]
        );
        assert_eq!(core.len(), 12);
        assert!(!r.is_empty());
        assert!(ToolRegistry::new().is_empty());
    }

    #[test]
    fn register_replaces_by_name() {
        let mut r = ToolRegistry::new();
        r.register(Box::new(Echo("first")));
        assert_eq!(r.ollama_tools()[0]["function"]["description"], "first");
        r.register(Box::new(Echo("second")));
        assert_eq!(r.names(), ["echo"]);
        assert_eq!(r.get("echo").unwrap().description(), "second");
        // What the model is told follows a registration made after it was first built.
        assert_eq!(r.ollama_tools()[0]["function"]["description"], "second");
    }

    #[test]
    fn ollama_tools_shape() {
        let r = ToolRegistry::with_core_tools();
        let tools = r.ollama_tools();
        let list = tools.as_array().unwrap();
        assert_eq!(list.len(), r.len());
        for (t, name) in list.iter().zip(r.names()) {
            assert_eq!(t["type"], "function");
            let f = &t["function"];
            assert_eq!(f["name"], name);
            assert!(f["description"].as_str().unwrap().len() > 20);
            assert_eq!(f["parameters"]["type"], "object");
            assert!(f["parameters"]["properties"].is_object());
            assert!(f["parameters"]["required"].is_array());
        }
        // Extension keys stay private.
        assert!(!tools.to_string().contains("x-aliases"));
        assert_eq!(
            list[7]["function"]["parameters"]["properties"]["state"]["enum"],
            json!(["HIGH", "LOW"])
        );
    }

    #[test]
    fn execute_errors() {
        let mut fx = Fixture::new("registry");
        fx.ctx.trusted = true; // write_gpio's arguments are checked only for a trusted asker
        let mut r = ToolRegistry::with_core_tools();
        r.register(Box::new(Echo("echo")));
        let ctx = &fx.ctx;
        let e = r.execute("nope", &json!({}), ctx);
        let msg = e["error"].as_str().unwrap();
        assert!(msg.starts_with("unknown tool 'nope'; available: read_source, list_sources"));
        assert!(msg.ends_with("observe, cross_node_recall, echo"), "{msg}");

        let e = r.execute("read_source", &json!({}), ctx);
        assert_eq!(
            e,
            json!({"error": "argument 'source_id': required but missing"})
        );
        let e = r.execute("read_source", &json!({"source_id": {"a": 1}}), ctx);
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .starts_with("argument 'source_id': expected a string")
        );
        let e = r.execute(
            "get_reading_history",
            &json!({"source_id": "a", "minutes": "soon"}),
            ctx,
        );
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .starts_with("argument 'minutes':")
        );
        let e = r.execute("echo", &json!({"mode": "medium"}), ctx);
        assert!(
            e["error"].as_str().unwrap().starts_with("argument 'mode':"),
            "{e}"
        );
        let e = r.execute(
            "write_gpio",
            &json!({"pin": "22", "state": "sideways"}),
            ctx,
        );
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .starts_with("argument 'state':"),
            "{e}"
        );
        assert_eq!(
            r.execute("echo", &json!({"mode": "fast", "fail": true}), ctx),
            json!({"error": "it failed"})
        );
        assert_eq!(
            r.execute("echo", &json!("{\"mode\": \"FAST\"}"), ctx),
            json!({"mode": "fast"})
        );
    }

    struct Switch;

    impl Tool for Switch {
        fn name(&self) -> &'static str {
            "switch"
        }
        fn description(&self) -> &'static str {
            "switches"
        }
        fn parameters(&self) -> Json {
            json!({"type": "object", "properties": {}})
        }
        fn call(&self, _: &Json, _: &ToolContext) -> Result<Json, String> {
            Ok(json!({"switched": true}))
        }
        fn writes(&self) -> bool {
            true
        }
    }

    #[test]
    fn write_tools_run_only_for_trusted_questions() {
        let mut fx = Fixture::new("registry-trust");
        let mut r = ToolRegistry::new();
        r.register(Box::new(Switch));
        let e = r.execute("switch", &json!({}), &fx.ctx);
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .starts_with("switch is a write tool; this question's origin is not trusted"),
            "{e}"
        );
        fx.ctx.trusted = true;
        assert_eq!(
            r.execute("switch", &json!({}), &fx.ctx),
            json!({"switched": true})
        );
    }

    #[test]
    fn write_gpio_is_refused_to_an_untrusted_question() {
        // A question over MQTT (without trust_mqtt) must not switch a pin the HTTP API
        // switches only with the token.
        let fx = Fixture::new("registry-gpio-trust");
        let r = ToolRegistry::with_core_tools();
        let e = r.execute(
            "write_gpio",
            &json!({"pin": "22", "state": "HIGH"}),
            &fx.ctx,
        );
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .starts_with("write_gpio is a write tool"),
            "{e}"
        );
    }

    #[test]
    fn odd_input_never_panics() {
        let fx = Fixture::new("registry-odd");
        let r = ToolRegistry::with_core_tools();
        let odd = [
            Json::Null,
            json!([]),
            json!([1, 2]),
            json!(1e308),
            json!(u64::MAX),
            json!(-1),
            json!("{"),
            json!(""),
            json!("[]"),
            json!(true),
            json!({"source_id": null, "minutes": 1e308, "limit": -5}),
            json!({"source_id": "system:cpu_temp", "minutes": u64::MAX, "limit": i64::MIN}),
            json!({"source_id": "system:cpu_temp", "minutes": -1e300, "limit": "1e30"}),
            json!({"topic": "", "message": "", "count": 1e300}),
            json!({"topic": "#", "message": [1], "count": -1}),
            json!({"pin": 1e300, "state": 1, "source_type": 5}),
            json!({"pin": "", "state": "", "source_type": ""}),
            json!({"pin": "99999999999", "state": "on"}),
        ];
        for name in r.names() {
            for a in &odd {
                let out = r.execute(name, a, &fx.ctx);
                assert!(out.is_object(), "{name} {a} -> {out}");
            }
        }
    }
}
