//! `smollama plugins list`: every kind this build knows, with role, version, status and
//! parameters, as text or JSON. Offline: nothing is set up, so the status is what can be
//! known without running ("built in"; external kinds would say where they came from).

use serde_json::{Value as Json, json};

#[cfg(feature = "agent")]
use super::Make;
use super::{Kind, registry};

/// Where a kind comes from, as `plugins list` says it.
fn status(_: &Kind) -> &'static str {
    "built in"
}

/// Said instead of a default for a tool argument the model must give.
const REQUIRED: &str = "(required)";

/// One parameter as shown: name, what it takes, default, doc.
struct Shown {
    name: String,
    takes: String,
    default: String,
    doc: String,
}

fn params(kind: &Kind) -> Vec<Shown> {
    #[cfg(feature = "agent")]
    if let Make::Tool { make } = kind.make {
        return tool_params(&make().parameters());
    }
    kind.params
        .iter()
        .map(|p| Shown {
            name: p.spec.name.to_string(),
            takes: match p.applies {
                super::Flow::Any => p.takes().to_string(),
                f => format!("{} (on {} sources)", p.takes(), f.adjective()),
            },
            default: p.spec.default.to_string(),
            doc: p.spec.doc.to_string(),
        })
        .collect()
}

/// A tool's parameters from its JSON schema (`properties`, `required`).
#[cfg(feature = "agent")]
fn tool_params(schema: &Json) -> Vec<Shown> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, p)| Shown {
            name: name.clone(),
            takes: p["type"].as_str().unwrap_or("any").to_string(),
            default: if required.contains(&name.as_str()) {
                REQUIRED.into()
            } else {
                String::new()
            },
            doc: p["description"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

/// Every kind as JSON: `[{role, name, version, status, doc, params: [{name, takes, default, doc}]}]`.
pub fn json() -> Json {
    Json::Array(
        registry::all()
            .map(|k| {
                json!({
                    "role": k.role.as_str(),
                    "name": k.name,
                    "version": k.version,
                    "status": status(k),
                    "doc": k.doc,
                    "params": params(k).into_iter().map(|p| json!({
                        "name": p.name,
                        "takes": p.takes,
                        "default": p.default,
                        "doc": p.doc,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// Every kind as text: one line per kind, then its parameters indented.
pub fn text() -> String {
    let mut out = String::new();
    for k in registry::all() {
        out.push_str(&format!(
            "{:<6} {:<20} {:<8} {:<9} {}\n",
            k.role.as_str(),
            k.name,
            k.version,
            status(k),
            k.doc
        ));
        for p in params(k) {
            let default = if p.default.is_empty() {
                String::new()
            } else if p.default == REQUIRED {
                format!(" {REQUIRED}")
            } else {
                format!(" [default {}]", p.default)
            };
            out.push_str(&format!(
                "         {} = {}{default}: {}\n",
                p.name, p.takes, p.doc
            ));
        }
    }
    out
}
