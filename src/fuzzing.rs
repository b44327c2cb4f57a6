//! The parsers that take outside input, each behind one function of bytes, for the fuzz
//! targets in `fuzz/` (cargo-fuzz). Only with the `fuzzing` feature, hidden from the
//! docs: not an API, and the parsers themselves stay `pub(crate)`.
//!
//! Each function guarantees it feeds `data` to the same code the running agent feeds a
//! message, request, file or line to, with the default settings, and panics only where
//! that code would (a panic is a finding), or where an invariant the callers rely on
//! breaks (such checks are marked).

use std::path::Path;
use std::sync::OnceLock;

use crate::config::{PipelineSpec, Settings};
use crate::edges::http::{HeadScan, Limits, parse_head, resolve};
use crate::edges::llm::http::StreamLines;
use crate::edges::mqtt::{discovery, payload};
use crate::edges::ollama::wire;

/// The default settings, made once: building them parses every declared default, which
/// would otherwise cost more than most inputs.
fn defaults() -> &'static Settings {
    static DEFAULTS: OnceLock<Settings> = OnceLock::new();
    DEFAULTS.get_or_init(Settings::defaults)
}

/// Topics a message may arrive on: a batch, a plain sensor, a Home Assistant command.
const TOPICS: [&str; 4] = [
    "smollama/kitchen/readings",
    "sensors/hall/temperature",
    "smollama/kitchen/gpio/17/set",
    "homeassistant/status",
];

/// An MQTT message (`[mqtt] max_payload_kb` as the bound): `data[0]` picks the topic and
/// whether a JSON pointer is set (then the pointer is `data[1..]` up to the first
/// newline); the rest is the payload for the readings parser, the GPIO/switch command
/// parser and the sync entries a `smollama/+/sync` message carries.
pub fn mqtt_payload(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let topic = TOPICS[(sel & 3) as usize];
    let (pointer, body) = if sel & 4 != 0 {
        let nl = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let p = std::str::from_utf8(&rest[..nl]).ok();
        (p, rest.get(nl + 1..).unwrap_or(&[]))
    } else {
        (None, rest)
    };
    let max = defaults().mqtt.max_payload_kb as usize * 1024;
    if let Ok(parsed) = payload::parse_inbound(topic, body, pointer, max) {
        // What the worker relies on: every reading has a name it can intern.
        for r in &parsed.readings {
            assert!(!r.name.is_empty(), "a reading without a name");
        }
    }
    let _ = discovery::parse_command(body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = payload::parse_iso8601(text);
    }
}

/// A question payload (MQTT ask topic or `POST /api/ask`'s body).
pub fn ask(data: &[u8]) {
    let _ = crate::agent::intake::parse(data);
}

/// An HTTP request as it arrives: the head found by the scanner (fed whole and byte by
/// byte, which must agree), parsed, then routed with its path and query; the rest is the
/// body, read as the handlers read it.
pub fn http_request(data: &[u8]) {
    let limits = Limits::from_settings(&defaults().http);
    let whole = HeadScan::default().scan(data, &limits);
    let mut bytewise = HeadScan::default();
    let mut found = Ok(None);
    for n in 1..=data.len() {
        found = bytewise.scan(&data[..n], &limits);
        if !matches!(found, Ok(None)) {
            break;
        }
    }
    // Checked: the server reads a head in pieces of any size.
    assert_eq!(
        format!("{whole:?}"),
        format!("{found:?}"),
        "the head scanner answers differently byte by byte"
    );
    let Ok(Some(head_len)) = whole else {
        return;
    };
    let Ok(req) = parse_head(&data[..head_len], &limits) else {
        return;
    };
    let _ = resolve(req.method, &req.path, &req.query);
    let body = &data[head_len..];
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = serde_json::from_str::<serde_json::Value>(text);
    }
}

/// A settings file (`smollama.toml`).
pub fn settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Settings::parse(Path::new("/etc/smollama/smollama.toml"), text);
}

/// A pipeline file, checked against the default settings.
pub fn pipeline(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = PipelineSpec::parse("pipeline.toml", text, defaults());
}

/// A `smollama memory import` file (JSON lines).
pub fn jsonl(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::memory::jsonl::parse_lines(&text, 1_700_000_000_000_000);
}

/// An Ollama reply: `data[0]` picks a chat reply (whole), a streamed chat (the rest split
/// into lines, fed as they come), an `/api/embed` reply (`data[0] >> 3` vectors
/// expected), `/api/tags` or `/api/version`.
pub fn ollama(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match sel & 7 {
        0 => drop(wire::parse_chat_reply(&text)),
        1 | 2 => {
            let mut asm = wire::StreamAssembler::default();
            for line in text.split('\n') {
                if asm.feed(line).is_err() || asm.is_done() {
                    break;
                }
            }
            drop(asm.finish());
        }
        3 => drop(wire::parse_embed_reply(&text, (sel >> 3) as usize)),
        4 => drop(wire::parse_tags(&text)),
        5 => drop(wire::parse_version(&text)),
        _ => {
            if let Ok(v) = serde_json::from_str(&text) {
                let _ = wire::error_message(&v);
                let _ = wire::parse_message(&v);
            }
        }
    }
}

/// A sync push body (`POST /api/sync/push`) or MQTT sync message: its entries, and each
/// entry's payload as an observation or a memory, as a merge reads them.
pub fn sync(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let list = body.get("entries").unwrap_or(&body);
    for e in crate::sync::apply::entries_of(Some(list)) {
        use crate::memory::replica;
        let _ = replica::payload_ref(&e.payload);
        let _ = replica::observation_of(&e.payload, &e.node_id);
        let _ = replica::memory_of(&e.payload, &e.node_id);
        let _ = replica::replaced(&e.payload);
        // Checked: an entry taken in goes back out in the form it came in.
        let again = crate::store::sync_log::Entry::from_json(&e.to_json());
        assert_eq!(
            again.as_ref().ok(),
            Some(&e),
            "an entry does not round-trip"
        );
    }
}

/// An exec plugin's stdout: each line as JSON or InfluxDB line protocol.
pub fn exec_lines(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        let _ = crate::sources::exec::parse_line(line, |_| {});
    }
}
