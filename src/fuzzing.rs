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
    // The defaults cloned, not built: building them is the same every time.
    let _ = Settings::parse_over(
        defaults().clone(),
        Path::new("/etc/smollama/smollama.toml"),
        text,
    );
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

/// An OpenAI-compatible server's reply: `data[0]` picks a chat reply (whole), a streamed
/// chat (the rest split into server-sent-event lines, fed as they come), an
/// `/v1/embeddings` reply (`data[0] >> 3` vectors expected) or `/v1/models`.
pub fn openai(data: &[u8]) {
    use crate::edges::openai::wire as oa;
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match sel & 7 {
        0 => drop(oa::parse_chat_reply(&text)),
        1 | 2 => {
            let mut asm = oa::StreamAssembler::default();
            for line in text.split('\n') {
                if asm.feed(line).is_err() || asm.is_done() {
                    break;
                }
            }
            drop(asm.finish());
        }
        3 => drop(oa::parse_embed_reply(&text, (sel >> 3) as usize)),
        4 => drop(oa::parse_models(&text)),
        _ => {
            if let Ok(v) = serde_json::from_str(&text) {
                let _ = oa::error_message(&v);
                let _ = oa::is_model_not_found(404, &v);
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

/// An http source's answer: the first line of `data` holds the JSON pointers to pick,
/// separated by spaces (at most 8; `data[0] & 1` makes them booleans rather than
/// numbers), the rest is the body as the poll thread reads it (lossy UTF-8).
pub fn http_answer(data: &[u8]) {
    use crate::graph::ValueKind;
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let kind = if sel & 1 == 1 {
        ValueKind::Bool
    } else {
        ValueKind::Number
    };
    let nl = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let picks: Vec<(String, ValueKind)> = String::from_utf8_lossy(&rest[..nl])
        .split(' ')
        .take(8)
        .map(|p| (p.to_string(), kind))
        .collect();
    let body = String::from_utf8_lossy(rest.get(nl + 1..).unwrap_or(&[]));
    if let Ok(values) = crate::sources::http::read_answer(&body, &picks) {
        // Checked: one result per pick, in order (the source matches them by position).
        assert_eq!(values.len(), picks.len(), "a pick without its result");
    }
}

/// A file source's file (what a sysfs, 1-Wire or hwmon file holds), at most `MAX_READ`
/// bytes as the source reads it: `data[0] & 1` reads it as a number, else through the
/// 1-Wire regex the docs give (`t=(-?\d+)`).
pub fn file_text(data: &[u8]) {
    use crate::sources::file::{MAX_READ, Parse, number_in};
    static ONE_WIRE: OnceLock<Parse> = OnceLock::new();
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = &rest[..rest.len().min(MAX_READ)];
    let got = if sel & 1 == 1 {
        number_in(text, &Parse::Number, None)
    } else {
        let parse = ONE_WIRE.get_or_init(|| {
            Parse::Regex(regex_lite::Regex::new(r"t=(-?\d+)").expect("a valid regex"))
        });
        let Parse::Regex(re) = parse else {
            unreachable!("ONE_WIRE is a regex")
        };
        number_in(text, parse, Some(&mut re.capture_locations()))
    };
    // Checked: the graph holds finite numbers only.
    if let Ok(x) = got {
        assert!(x.is_finite(), "a file gave a non-finite number");
    }
}

/// A `contract_file` source's file (JSON written by another program), with the default
/// `max_entries`.
pub fn contract(data: &[u8]) {
    let _ = crate::sources::contract_file::parse_contract(data, 64);
}

/// A plugin manifest (`[plugins] dir`/*.toml), checked as `smollama plugins check` does.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let m = crate::plugins::manifest::parse(Path::new("/etc/smollama/plugins/t.toml"), text);
    let _ = m.status();
}

/// A text frame from an OpenClaw gateway, and the challenge and `hello-ok` payloads the
/// handshake reads from its events and responses.
#[cfg(feature = "openclaw")]
pub fn openclaw_frame(data: &[u8]) {
    use crate::edges::openclaw::{frame, handshake};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match frame::parse(text) {
        Ok(frame::Incoming::Event { payload, .. }) => {
            let _ = handshake::Challenge::from_payload(&payload);
        }
        Ok(frame::Incoming::Res { result, .. }) => match result {
            Ok(payload) => drop(handshake::parse_hello(&payload)),
            Err(e) => drop(e.to_string()),
        },
        _ => {}
    }
}
