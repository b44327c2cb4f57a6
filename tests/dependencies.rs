//! The dependency rule between folders (ARCHITECTURE.md, "Dependencies point one way"),
//! checked on the source itself so an import that breaks it fails the suite:
//!
//! - edges never import the agent, app or status (they get narrow views and closures
//!   from app, and offer questions through `messages::QuestionIntake`);
//! - the agent never imports the MQTT connection or the HTTP edge (messages cross in
//!   `messages.rs`);
//! - stages never import edges, sources, sinks, the agent, app or status;
//! - the store imports only the graph, the clock, config and messages; messages only
//!   the graph;
//! - no import cycle runs between folders (files within one folder may lean on each
//!   other, like the `llm` thread and its memory work).
//!
//! A reference is any `crate::…` or `super::…` path outside a comment, resolved to the
//! file that defines the module; `mod` declarations are containment, not imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Module path (`edges::http::gpio`, `` for lib.rs) → the file's text.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut mods = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts == ["main"] {
            continue; // the binary: it uses the library from outside (`smollama::`)
        }
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
            parts.pop();
        }
        mods.insert(parts.join("::"), std::fs::read_to_string(&f).unwrap());
    }
    mods
}

/// The modules `text` (the file of module `me`) refers to.
fn references(me: &str, text: &str, mods: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        for (at, _) in code
            .match_indices("crate::")
            .chain(code.match_indices("super::"))
        {
            // A whole path only: not the tail of `smollama::crate_x` or `a_super::`.
            if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let mut base: Vec<&str> = if me.is_empty() {
                Vec::new()
            } else {
                me.split("::").collect()
            };
            if segs.first() == Some(&"crate") {
                base.clear();
                segs.remove(0);
            } else {
                // `super` from a file module is its parent; each further `super` one up.
                while segs.first() == Some(&"super") {
                    base.pop();
                    segs.remove(0);
                }
            }
            let full: Vec<&str> = base.into_iter().chain(segs).collect();
            for k in (1..=full.len()).rev() {
                let cand = full[..k].join("::");
                if mods.contains_key(&cand) {
                    let inside_me = cand == me || me.starts_with(&format!("{cand}::"));
                    if !inside_me {
                        out.insert(cand);
                    }
                    break;
                }
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    mods.iter()
        .map(|(m, text)| (m.clone(), references(m, text, &mods)))
        .collect()
}

fn under(m: &str, folder: &str) -> bool {
    m == folder || m.starts_with(&format!("{folder}::"))
}

/// Every reference from modules under `from` to modules under any of `forbidden`.
fn breaking(from: &str, forbidden: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for (m, refs) in graph() {
        if !under(&m, from) {
            continue;
        }
        for r in refs {
            if forbidden.iter().any(|f| under(&r, f)) {
                bad.push(format!("{m} -> {r}"));
            }
        }
    }
    bad
}

/// Every reference from modules under `from` to a module outside `allowed` (and
/// outside `from` itself).
fn outside(from: &str, allowed: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for (m, refs) in graph() {
        if !under(&m, from) {
            continue;
        }
        for r in refs {
            if !under(&r, from) && !allowed.iter().any(|a| under(&r, a)) {
                bad.push(format!("{m} -> {r}"));
            }
        }
    }
    bad
}

#[test]
fn the_checker_sees_imports() {
    // The rules below would pass vacuously if nothing were found.
    let g = graph();
    assert!(g["app"].contains("edges::http"), "{:?}", g["app"]);
    assert!(g["edges::mqtt::connection"].contains("messages"));
    assert!(
        g["edges::http::gpio"].contains("edges::http::request"),
        "super:: paths resolve: {:?}",
        g["edges::http::gpio"]
    );
    let mods = modules();
    let r = references(
        "edges::http::gpio",
        "use crate::agent::worker::X;\n// use crate::app::Y;\nlet a = super::super::super::status::live();",
        &mods,
    );
    assert_eq!(
        r.into_iter().collect::<Vec<_>>(),
        ["agent::worker", "status"],
        "a comment is no import; super::super::super from edges::http::gpio is the crate"
    );
}

#[test]
fn edges_never_import_the_agent_app_or_status() {
    let bad = breaking("edges", &["agent", "app", "status"]);
    assert!(
        bad.is_empty(),
        "edges must get what they need from app as views or closures, and offer questions through messages::QuestionIntake:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_agent_never_imports_the_mqtt_connection_or_http() {
    let bad = breaking(
        "agent",
        &["edges::mqtt::connection", "edges::http", "app", "status"],
    );
    assert!(
        bad.is_empty(),
        "what crosses between the agent and the edges lives in messages.rs:\n{}",
        bad.join("\n")
    );
}

#[test]
fn stages_never_import_edges_sources_sinks_or_the_agent() {
    let bad = breaking(
        "stages",
        &["edges", "sources", "sinks", "agent", "app", "status"],
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_store_and_messages_sit_at_the_bottom() {
    let bad: Vec<String> = outside("store", &["graph", "clock", "config", "messages"])
        .into_iter()
        .chain(outside("messages", &["graph"]))
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// A folder for the cycle check: `edges::http`, `edges::mqtt`, ... count apart (each edge
/// is its own subsystem); otherwise the top-level module.
fn folder(m: &str) -> String {
    let parts: Vec<&str> = m.split("::").collect();
    match parts.as_slice() {
        ["edges", edge, ..] => format!("edges::{edge}"),
        [first, ..] => first.to_string(),
        [] => String::new(),
    }
}

#[test]
fn no_import_cycle_runs_between_folders() {
    let g = graph();
    // Tarjan's strongly connected components over files.
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        comps: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            t.comps.push(comp);
        }
    }
    let mut t = T {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        comps: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    let crossing: Vec<String> = t
        .comps
        .iter()
        .filter(|c| c.iter().map(|m| folder(m)).collect::<BTreeSet<_>>().len() > 1)
        .map(|c| {
            let mut c = c.clone();
            c.sort();
            c.iter()
                .map(|m| {
                    let to: Vec<&str> = g[*m]
                        .iter()
                        .map(String::as_str)
                        .filter(|r| c.contains(r))
                        .collect();
                    format!("  {m} -> {}", to.join(", "))
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert!(
        crossing.is_empty(),
        "files in different folders import each other in a circle:\n{}",
        crossing.join("\n\n")
    );
}
