//! `smollama plugins list`: every kind this build knows, with role, version, status and
//! parameters, as text or JSON. Offline: nothing is set up, so the status is what can be
//! known without running: "built in", or for a plugin manifest "ok" or "invalid: why",
//! with the file that declares it.

use serde_json::{Value as Json, json};

#[cfg(feature = "agent")]
use super::Make;
use super::manifest::Manifest;
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

/// One row of the list: a built-in kind or a manifest.
struct Row {
    role: &'static str,
    name: String,
    version: String,
    status: String,
    doc: String,
    /// The manifest file; `None` for built-ins.
    declared: Option<String>,
    params: Vec<Shown>,
}

fn rows(manifests: &[Manifest]) -> Vec<Row> {
    let built_in = registry::all().map(|k| Row {
        role: k.role.as_str(),
        name: k.name.to_string(),
        version: k.version.to_string(),
        status: status(k).to_string(),
        doc: k.doc.to_string(),
        declared: None,
        params: params(k),
    });
    let external = manifests.iter().map(|m| Row {
        role: super::Role::Tool.as_str(),
        name: m.name.clone(),
        version: m.version.clone(),
        status: m.status(),
        doc: m.doc.clone(),
        declared: Some(m.path.display().to_string()),
        params: m
            .plugin
            .as_ref()
            .map(|s| tool_params(&s.parameters))
            .unwrap_or_default(),
    });
    built_in.chain(external).collect()
}

/// Every kind as JSON: `[{role, name, version, status, doc, declared, params: [{name,
/// takes, default, doc}]}]` (`declared`: the manifest file, `null` for built-ins).
pub fn json(manifests: &[Manifest]) -> Json {
    Json::Array(
        rows(manifests)
            .into_iter()
            .map(|k| {
                json!({
                    "role": k.role,
                    "name": k.name,
                    "version": k.version,
                    "status": k.status,
                    "doc": k.doc,
                    "declared": k.declared,
                    "params": k.params.into_iter().map(|p| json!({
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

/// Every kind as text: one line per kind, then (for plugins) the file declaring it and
/// its parameters indented.
pub fn text(manifests: &[Manifest]) -> String {
    let mut out = String::new();
    for k in rows(manifests) {
        out.push_str(&format!(
            "{:<6} {:<20} {:<8} {:<9} {}\n",
            k.role, k.name, k.version, k.status, k.doc
        ));
        if let Some(file) = &k.declared {
            out.push_str(&format!("         declared in {file}\n"));
        }
        for p in k.params {
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
