//! `[ollama]`: the Ollama server the agent asks.

use super::key::{Key, Section, duration, number, problem_hint, quoted};
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::Micros;

#[derive(Clone, Debug, PartialEq)]
pub struct OllamaSettings {
    /// Empty: no LLM; questions are answered with an error (`skip`) or queued.
    pub host: String,
    pub port: u16,
    pub model: String,
    /// As written in the config; validated to be a number of seconds (negative: keep the
    /// model loaded forever) or a duration with a unit ("5m"). Sent as a number or string.
    pub keep_alive: String,
    pub connect_timeout: Micros,
    pub read_timeout: Micros,
    pub total_timeout: Micros,
    /// Attempts after the first on connection errors and 5xx, with capped backoff.
    pub retries: u32,
}

impl OllamaSettings {
    pub fn base_url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

/// `keep_alive` as Ollama accepts it: a number of seconds (negative keeps the model
/// loaded) or a duration with a unit. The original's default, the string "-1", is
/// rejected by Ollama; here "-1" means the number -1.
pub fn valid_keep_alive(v: &str) -> bool {
    let v = v.trim();
    if v.parse::<i64>().is_ok() {
        return true;
    }
    let body = v.strip_prefix('-').unwrap_or(v);
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(split);
    !num.is_empty()
        && num.parse::<f64>().is_ok()
        && ["ns", "us", "µs", "ms", "s", "m", "h"].contains(&unit)
}

pub(crate) const SECTION: Section = Section {
    name: "ollama",
    doc: "The Ollama server the agent asks (often a bigger machine on the LAN). When it is away, the agent degrades as [agent] fallback_mode says and keeps running.",
    keys: &[
        Key::new(
            Spec {
                default: "\"localhost\"",
                doc: "The server's host name or address (no scheme, no port).",
                ..Spec::new("host", Want::Text)
            },
            |s, v, _| {
                let v = v.text()?;
                if v.contains("://") || v.contains('/') {
                    return Err(problem_hint(
                        format!("host = '{v}' should be a host name or address only"),
                        "write e.g. host = \"192.168.1.20\" and the port in port = 11434",
                    ));
                }
                s.ollama.host = v.trim().to_string();
                Ok(())
            },
            |s| quoted(&s.ollama.host),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 65535.0)),
                default: "11434",
                doc: "The server's port.",
                hint: "Ollama listens on 11434",
                ..Spec::new("port", Want::WholeNumber)
            },
            |s, v, _| {
                s.ollama.port = v.int()? as u16;
                Ok(())
            },
            |s| number(s.ollama.port),
        ),
        Key::new(
            Spec {
                default: "\"gemma4:e2b\"",
                doc: "The chat model: exact name and tag, as `ollama list` shows it.",
                ..Spec::new("model", Want::Text)
            },
            |s, v, _| {
                let v = v.text()?;
                if v.trim().is_empty() {
                    return Err(problem_hint(
                        "model is empty",
                        "e.g. model = \"gemma4:e2b\"",
                    ));
                }
                s.ollama.model = v.trim().to_string();
                Ok(())
            },
            |s| quoted(&s.ollama.model),
        ),
        Key {
            numbers_as_text: true,
            ..Key::new(
                Spec {
                    default: "\"-1\"",
                    doc: "How long Ollama keeps the model loaded after a call: seconds (-1: forever, 0: unload at once) or a duration with a unit (\"5m\"). The original's \"-1\" string was rejected by Ollama; here it means the number -1 (written without quotes, -1 or 300, works too).",
                    ..Spec::new("keep_alive", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    if !valid_keep_alive(&v) {
                        return Err(problem_hint(
                            format!("keep_alive = \"{v}\" is not something Ollama accepts"),
                            "a number of seconds (-1 keeps the model loaded) or a duration with a unit, e.g. \"5m\" or \"1h\"",
                        ));
                    }
                    s.ollama.keep_alive = v.trim().to_string();
                    Ok(())
                },
                |s| quoted(&s.ollama.keep_alive),
            )
        },
        Key::new(
            Spec {
                range: Some((0.1, 600.0)),
                default: "\"5s\"",
                doc: "Longest wait for the connection to the server.",
                ..Spec::new("connect_timeout", Want::Duration)
            },
            |s, v, _| {
                s.ollama.connect_timeout = v.dur()?;
                Ok(())
            },
            |s| duration(s.ollama.connect_timeout),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 3600.0)),
                default: "\"120s\"",
                doc: "Longest wait for the next bytes of an answer.",
                ..Spec::new("read_timeout", Want::Duration)
            },
            |s, v, _| {
                s.ollama.read_timeout = v.dur()?;
                Ok(())
            },
            |s| duration(s.ollama.read_timeout),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 7200.0)),
                default: "\"300s\"",
                doc: "Longest a whole call may take.",
                ..Spec::new("total_timeout", Want::Duration)
            },
            |s, v, _| {
                s.ollama.total_timeout = v.dur()?;
                Ok(())
            },
            |s| duration(s.ollama.total_timeout),
        ),
        Key::new(
            Spec {
                range: Some((0.0, 20.0)),
                default: "3",
                doc: "Retries on connection errors and 5xx, with capped exponential backoff.",
                hint: "e.g. 3",
                ..Spec::new("retries", Want::WholeNumber)
            },
            |s, v, _| {
                s.ollama.retries = v.int()? as u32;
                Ok(())
            },
            |s| number(s.ollama.retries),
        ),
    ],
};
