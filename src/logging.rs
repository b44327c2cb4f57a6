//! Logging set-up: `--log-level` beats `RUST_LOG` beats `[log] level`, levels in any case
//! (`DEBUG` as `debug`), and a `RUST_LOG` part that would silently hide smollama's lines
//! (a mistyped level read as a module name) is reported and left out.

use std::io::Write;

use crate::config::settings::LogFormat;
use crate::config::suggest;

/// The levels `--log-level` and `[log] level` take.
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Modules a bare `RUST_LOG` word may name (smollama and the crates below it that log);
/// any other bare word is taken for a mistyped level, since env_logger would read it as a
/// module name and show nothing of smollama.
const MODULES: [&str; 11] = [
    "smollama",
    "rumqttc",
    "ureq",
    "httparse",
    "rppal",
    "heed",
    "async_io",
    "polling",
    "rustls",
    "tokio",
    "env_logger",
];

/// `level` as a filter, in any case (`DEBUG` as `debug`); `None` if it is not a level.
pub fn parse_level(level: &str) -> Option<log::LevelFilter> {
    let l = level.trim().to_ascii_lowercase();
    if LEVELS.contains(&l.as_str()) {
        l.parse().ok()
    } else {
        None
    }
}

/// A `RUST_LOG` value with the parts env_logger would misread left out, and a warning
/// per such part naming it.
pub fn check_rust_log(spec: &str) -> (String, Vec<String>) {
    let mut warnings = Vec::new();
    let (mods, filter) = match spec.split_once('/') {
        Some((m, f)) if f.contains('/') => {
            warnings.push(format!(
                "RUST_LOG '{spec}': more than one '/'; the text filter after it is ignored"
            ));
            (m, None)
        }
        Some((m, f)) => (m, Some(f)),
        None => (spec, None),
    };
    let all_levels = "off, error, warn, info, debug, trace";
    let mut kept = Vec::new();
    for part in mods.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let pieces: Vec<&str> = part.split('=').map(str::trim).collect();
        match pieces.as_slice() {
            [word] if word.parse::<log::LevelFilter>().is_ok() => kept.push(part),
            [word] if known_module(word) => kept.push(part),
            [word] => {
                let near = suggest::closest(word, ["off"].iter().chain(LEVELS.iter()))
                    .map(|l| format!(" (did you mean '{l}'?)"))
                    .unwrap_or_default();
                warnings.push(format!(
                    "RUST_LOG part '{word}' is not a level{near}; ignored. Levels: {all_levels}; \
                     for one module write MODULE=LEVEL, e.g. smollama=debug"
                ));
            }
            [_, ""] => kept.push(part),
            [module, level] if level.parse::<log::LevelFilter>().is_ok() => {
                if !known_module(module)
                    && let Some(m) = suggest::closest(module, MODULES)
                {
                    warnings.push(format!(
                        "RUST_LOG part '{part}': no module '{module}' logs here (did you mean '{m}'?)"
                    ));
                }
                kept.push(part);
            }
            [_, level] => warnings.push(format!(
                "RUST_LOG part '{part}': '{level}' is not a level; ignored. Levels: {all_levels}"
            )),
            _ => warnings.push(format!(
                "RUST_LOG part '{part}' has more than one '='; ignored. Write MODULE=LEVEL"
            )),
        }
    }
    let mut cleaned = kept.join(",");
    if let Some(f) = filter
        && !cleaned.is_empty()
    {
        cleaned = format!("{cleaned}/{f}");
    }
    (cleaned, warnings)
}

fn known_module(path: &str) -> bool {
    let root = path.split("::").next().unwrap_or(path);
    MODULES.contains(&root)
}

/// Install the logger. `flag` is `--log-level` (already checked), `config_level` is
/// `[log] level`; `format` is `--log-format`, else `[log] format`. `auto` is journald's
/// form under systemd (`JOURNAL_STREAM` set: a syslog priority prefix instead of a
/// timestamp, so `journalctl -p warning` works), text elsewhere.
pub fn init(flag: Option<&str>, config_level: Option<&str>, format: LogFormat) {
    let format = match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    let mut b = env_logger::Builder::new();
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let mut warnings = Vec::new();
    match (flag, env) {
        (Some(level), _) => our_level(&mut b, level),
        (None, Some(env)) => {
            let (cleaned, w) = check_rust_log(&env);
            warnings = w;
            if cleaned.is_empty() {
                our_level(&mut b, config_level.unwrap_or("info"))
            } else {
                b.parse_filters(&cleaned)
            }
        }
        (None, None) => our_level(&mut b, config_level.unwrap_or("info")),
    };
    b.format(move |buf, rec| {
        let fields = Fields(rec.key_values());
        writeln!(
            buf,
            "{}",
            line(format, rec.level(), rec.target(), rec.args(), &fields)
        )
    });
    b.init();
    // Straight to stderr: the filter being reported on may hide smollama's own warnings.
    let none: &[(&str, &str)] = &[];
    for w in warnings {
        eprintln!(
            "{}",
            line(
                format,
                log::Level::Warn,
                "smollama::logging",
                &w,
                &Fields(&none)
            )
        );
    }
}

/// A record's structured fields (`log::info!(tool = name, ms = 12; "...")`).
struct Fields<'a>(&'a dyn log::kv::Source);

impl Fields<'_> {
    /// The fields as a JSON object: numbers and booleans as such, the rest as text.
    fn json(&self) -> serde_json::Map<String, serde_json::Value> {
        struct Collect(serde_json::Map<String, serde_json::Value>);
        impl<'kvs> log::kv::VisitSource<'kvs> for Collect {
            fn visit_pair(
                &mut self,
                key: log::kv::Key<'kvs>,
                value: log::kv::Value<'kvs>,
            ) -> Result<(), log::kv::Error> {
                let v = if let Some(b) = value.to_bool() {
                    serde_json::Value::Bool(b)
                } else if let Some(i) = value.to_i64() {
                    serde_json::Value::from(i)
                } else if let Some(u) = value.to_u64() {
                    serde_json::Value::from(u)
                } else if let Some(f) = value.to_f64() {
                    serde_json::Value::from(f)
                } else {
                    serde_json::Value::String(value.to_string())
                };
                self.0.insert(key.as_str().to_string(), v);
                Ok(())
            }
        }
        let mut c = Collect(serde_json::Map::new());
        let _ = self.0.visit(&mut c);
        c.0
    }
}

/// One log line as written: `<4>text` for journald, `timestamp LEVEL text` for text, a
/// JSON object for json. Structured fields go under `fields` in JSON only: the message
/// already says the same in words, for people.
fn line(
    format: LogFormat,
    level: log::Level,
    target: &str,
    text: &dyn std::fmt::Display,
    fields: &Fields<'_>,
) -> String {
    match format {
        LogFormat::Journald => {
            let prio = match level {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            format!("<{prio}>{text}")
        }
        LogFormat::Json => {
            let mut o = serde_json::Map::new();
            o.insert(
                "ts".into(),
                crate::clock::iso8601(crate::clock::now_us()).into(),
            );
            o.insert("level".into(), level.as_str().to_ascii_lowercase().into());
            o.insert("target".into(), target.into());
            o.insert("msg".into(), text.to_string().into());
            let f = fields.json();
            if !f.is_empty() {
                o.insert("fields".into(), serde_json::Value::Object(f));
            }
            serde_json::Value::Object(o).to_string()
        }
        LogFormat::Text | LogFormat::Auto => {
            let ts = crate::clock::iso8601(crate::clock::now_us());
            format!("{ts} {level:<5} {text}")
        }
    }
}

/// `level` for smollama's own lines; other crates' chatter stays at info and above.
fn our_level<'a>(b: &'a mut env_logger::Builder, level: &str) -> &'a mut env_logger::Builder {
    let level = parse_level(level).unwrap_or(log::LevelFilter::Info);
    b.filter_level(level.min(log::LevelFilter::Info))
        .filter_module("smollama", level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_one_object_with_fields_typed() {
        let kvs: &[(&str, log::kv::Value)] = &[
            ("tool", log::kv::Value::from("read_source")),
            ("ms", log::kv::Value::from(12u64)),
            ("ok", log::kv::Value::from(true)),
        ];
        let fields = Fields(&kvs);
        let l = line(
            LogFormat::Json,
            log::Level::Warn,
            "smollama::agent",
            &"a \"quoted\"\nline",
            &fields,
        );
        assert!(!l.contains('\n'), "one line: {l}");
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["target"], "smollama::agent");
        assert_eq!(v["msg"], "a \"quoted\"\nline");
        assert_eq!(v["fields"]["tool"], "read_source");
        assert_eq!(v["fields"]["ms"], 12);
        assert_eq!(v["fields"]["ok"], true);
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
        let t = line(LogFormat::Journald, log::Level::Warn, "x", &"hi", &fields);
        assert_eq!(t, "<4>hi");
    }

    #[test]
    fn levels_in_any_case() {
        assert_eq!(parse_level("DEBUG"), Some(log::LevelFilter::Debug));
        assert_eq!(parse_level("Warn"), Some(log::LevelFilter::Warn));
        assert_eq!(parse_level("loud"), None);
        assert_eq!(parse_level("off"), None);
    }

    #[test]
    fn rust_log_parts_that_would_hide_everything_are_reported() {
        assert_eq!(check_rust_log("debug"), ("debug".into(), vec![]));
        assert_eq!(check_rust_log("DEBUG"), ("DEBUG".into(), vec![]));
        assert_eq!(
            check_rust_log("info,rumqttc=debug"),
            ("info,rumqttc=debug".into(), vec![])
        );
        let (kept, w) = check_rust_log("debgu");
        assert_eq!(kept, "");
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("'debgu'") && w[0].contains("did you mean 'debug'"),
            "{w:?}"
        );
        let (kept, w) = check_rust_log("info,smollama=loud");
        assert_eq!(kept, "info");
        assert!(w[0].contains("'loud' is not a level"), "{w:?}");
        let (kept, w) = check_rust_log("smolama=debug");
        assert_eq!(kept, "smolama=debug");
        assert!(w[0].contains("did you mean 'smollama'"), "{w:?}");
        let (kept, w) = check_rust_log("a=b=c,warn");
        assert_eq!(kept, "warn");
        assert_eq!(w.len(), 1);
        assert_eq!(
            check_rust_log("smollama::store=trace/commit").0,
            "smollama::store=trace/commit"
        );
    }
}
