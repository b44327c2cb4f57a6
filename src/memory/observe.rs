//! The pure half of the observation loop: the prompt that shows the LLM what the sensors
//! did, the JSON schema its answer must follow, the tolerant parser for that answer, and
//! the prompt that compacts old observations into a summary.
//!
//! No I/O here: the caller gathers the readings, the rollup statistics and the past
//! observations, sends the prompt, and stores what [`parse_answer`] returns.
//!
//! The prompt gets statistics per source ([`SourceStats`], built from rollups), never raw
//! rows: small boards run small models with small context windows, and a prompt's size
//! must depend on the number of sources, not on how many readings they produced.

use serde_json::{Map, Value as Json, json};

use super::{Observation, ObservationType};
use crate::clock::iso8601;
use crate::graph::Value;

/// Confidence given to an observation or memory whose answer did not state one.
pub const DEFAULT_CONFIDENCE: f32 = 0.8;
/// Confidence of the single observation made from an answer that was not JSON.
pub const RAW_FALLBACK_CONFIDENCE: f32 = 0.6;
/// How many characters of a non-JSON answer the fallback observation keeps.
pub const RAW_FALLBACK_CHARS: usize = 500;
/// A non-JSON answer must be longer than this (in characters) to become an observation.
pub const RAW_FALLBACK_MIN_CHARS: usize = 10;

/// Statistics of one source over the lookback window, built by the caller from rollups.
/// `min`, `max` and `mean` are `None` for sources without numeric values (text).
#[derive(Clone, Debug, PartialEq)]
pub struct SourceStats {
    pub id: String,
    pub unit: String,
    pub count: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

/// An observation the LLM proposed, not yet stored (no id, time or node).
#[derive(Clone, Debug, PartialEq)]
pub struct NewObservation {
    pub text: String,
    pub kind: ObservationType,
    pub confidence: f32,
    pub related_sources: Vec<String>,
}

/// A memory (durable fact) the LLM proposed, not yet stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NewMemory {
    pub fact: String,
    pub confidence: f32,
}

/// What [`parse_answer`] made of an answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    pub observations: Vec<NewObservation>,
    pub memories: Vec<NewMemory>,
    /// Items (or whole lists) that were present but unusable and were left out.
    pub skipped: u32,
    /// True when the answer was not JSON and became one `general` observation.
    pub raw_fallback: bool,
}

/// The observation prompt. `current` is `(full source id, latest value, unit)`; `history`
/// one line of statistics per source; `past` the relevant earlier observations (the caller
/// chooses and limits them). The prompt's length is linear in the number of entries given.
pub fn build_prompt(
    lookback_minutes: u32,
    current: &[(String, Value, String)],
    history: &[SourceStats],
    past: &[Observation],
) -> String {
    let mut p = String::with_capacity(1024);
    p.push_str(&format!(
        "Analyze the following sensor and system readings from the last {lookback_minutes} minutes.\n"
    ));

    p.push_str("\nCurrent readings:\n");
    if current.is_empty() {
        p.push_str("No readings available\n");
    }
    for (id, value, unit) in current {
        let value = match value {
            Value::Number(x) => fmt_num(*x),
            other => one_line(&other.to_string()),
        };
        p.push_str(&format!("- {}: {value}", one_line(id)));
        if !unit.trim().is_empty() {
            p.push_str(&format!(" {}", one_line(unit.trim())));
        }
        p.push('\n');
    }

    p.push_str("\nRecent reading history:\n");
    if history.is_empty() {
        p.push_str("No recent history\n");
    }
    for s in history {
        let id = one_line(&s.id);
        match (s.min, s.max, s.mean) {
            (Some(min), Some(max), Some(mean)) => {
                let unit = if s.unit.trim().is_empty() {
                    String::new()
                } else {
                    format!(" {}", one_line(s.unit.trim()))
                };
                p.push_str(&format!(
                    "- {id}: {} readings, min={}{unit}, max={}{unit}, avg={mean:.1}{unit}\n",
                    s.count,
                    fmt_num(min),
                    fmt_num(max),
                ));
            }
            _ => p.push_str(&format!("- {id}: {} readings\n", s.count)),
        }
    }

    p.push_str("\nRelevant past observations:\n");
    if past.is_empty() {
        p.push_str("No relevant past observations\n");
    }
    for o in past {
        p.push_str(&format!("- [{}] {}\n", o.kind.as_str(), one_line(&o.text)));
    }

    p.push_str(
        "\nYour tasks:\n\
         1. Identify any patterns, trends or anomalies in the readings.\n\
         2. Note significant changes compared to the previous observations.\n\
         3. Record any facts that should be remembered for the future.\n\
         \n\
         Respond with JSON only, in this shape:\n\
         {\"observations\": [{\"text\": \"...\", \"type\": \"pattern|anomaly|status\", \
         \"confidence\": 0.0-1.0, \"related_sources\": [\"full source ids\"]}], \
         \"memories\": [{\"fact\": \"...\", \"confidence\": 0.0-1.0}]}\n\
         If everything looks normal, empty lists are fine.\n",
    );
    p
}

/// Longest observation text / memory fact the schema allows, in characters.
pub const TEXT_MAX_CHARS: u32 = 160;
/// Most observations, and most memories, one answer may carry.
pub const ITEMS_MAX: u32 = 3;

/// JSON schema of the answer, for structured output (Ollama's `format`, OpenAI's
/// `response_format`). Only `text` and `fact` are required inside items; [`parse_answer`]
/// fills in the rest.
///
/// Every string and list is bounded (`maxLength`, `maxItems`, enums): servers that turn the
/// schema into a grammar (llama.cpp, llama-cpp-python, Ollama) then force the model to close
/// each string and the whole object within a few hundred tokens, so a rambling small model
/// gives a short, complete object instead of one cut at `max_tokens`.
pub fn answer_schema() -> Json {
    let text = json!({"type": "string", "minLength": 1, "maxLength": TEXT_MAX_CHARS});
    let confidence = json!({"type": "number", "minimum": 0, "maximum": 1});
    json!({
        "type": "object",
        "properties": {
            "observations": {
                "type": "array",
                "maxItems": ITEMS_MAX,
                "items": {
                    "type": "object",
                    "properties": {
                        "text": text,
                        "type": {"type": "string", "enum": ["pattern", "anomaly", "status"]},
                        "confidence": confidence,
                        "related_sources": {
                            "type": "array",
                            "maxItems": 4,
                            "items": {"type": "string", "maxLength": 100}
                        }
                    },
                    "required": ["text"]
                }
            },
            "memories": {
                "type": "array",
                "maxItems": ITEMS_MAX,
                "items": {
                    "type": "object",
                    "properties": {"fact": text, "confidence": confidence},
                    "required": ["fact"]
                }
            }
        },
        "required": ["observations", "memories"]
    })
}

/// Parses the LLM's answer, as leniently as is safe.
///
/// 1. Trim. If the answer starts with a code fence, every line starting with a fence is
///    dropped (as the original did).
/// 2. The whole text is decoded as JSON; failing that, a JSON object embedded in prose is
///    looked for: from each `{` in turn, one JSON value is decoded and any text after it
///    is ignored (so `Here you go: {...} Hope this helps` works). Before that, every ASCII
///    control character becomes a space, so a raw `\r` or newline inside a string (which
///    JSON forbids, and small models write) does not lose the answer.
/// 3. An object: `observations[]` and `memories[]` are read item by item. An item that is
///    not an object, or lacks a non-empty string `text` / `fact`, is skipped and counted
///    in [`Parsed::skipped`]; so is an `observations` / `memories` field that is not a
///    list. Missing `type` or an unknown one is `general`; `summary` is also read as
///    `general` (summaries come only from compaction, and are kept longer). Missing
///    `confidence` is 0.8; numbers (or numeric strings) are clamped to 0..1.
///    `related_sources` keeps its string elements (a single string is a list of one).
/// 4. A top-level JSON list is not the asked-for shape and its elements are not guessed
///    at: the result is empty, with every element counted as skipped, and no fallback.
/// 5. Anything else (no JSON found, or a JSON string/number) becomes, when the trimmed
///    answer is longer than 10 characters, one `general` observation of its first 500
///    characters with confidence 0.6, and `raw_fallback` is set. Shorter garbage is
///    dropped.
pub fn parse_answer(text: &str) -> Parsed {
    let trimmed = text.trim();
    let unfenced;
    let body = if trimmed.starts_with("```") {
        unfenced = trimmed
            .lines()
            .filter(|l| !l.trim_start().starts_with("```"))
            .collect::<Vec<_>>()
            .join("\n");
        unfenced.trim()
    } else {
        trimmed
    };

    // Raw control characters are not JSON inside strings, yet grammar-constrained small
    // models emit them there (llama.cpp lets a `\r` token through); outside strings they
    // are whitespace. So each becomes a space: valid JSON decodes the same, and such an
    // answer still decodes.
    let spaced;
    let body = if body.contains(|c: char| c < ' ') {
        spaced = body.replace(|c: char| c < ' ', " ");
        spaced.as_str()
    } else {
        body
    };
    match find_json(body) {
        Some(Json::Object(obj)) => from_object(&obj),
        Some(Json::Array(items)) => Parsed {
            skipped: items.len() as u32,
            ..Parsed::default()
        },
        _ => raw_fallback(trimmed),
    }
}

/// The compaction prompt: the observations as a numbered list, oldest first as given,
/// ending with a `Summary:` cue.
pub fn compaction_prompt(obs: &[Observation]) -> String {
    let mut p = String::from(
        "Summarize the following observations into a concise summary of 2-3 sentences. \
         Keep the important patterns, anomalies and trends.\n\nObservations:\n",
    );
    for (i, o) in obs.iter().enumerate() {
        let ts = iso8601(o.ts);
        p.push_str(&format!(
            "{}. [{}] {}\n",
            i + 1,
            &ts[..16.min(ts.len())],
            one_line(&o.text)
        ));
    }
    p.push_str("\nSummary:");
    p
}

/// The whole text as JSON, or the first JSON value starting at some `{`.
fn find_json(body: &str) -> Option<Json> {
    if let Ok(v) = serde_json::from_str::<Json>(body) {
        return Some(v);
    }
    // Each attempt decodes at most to the end of one value; answers are short.
    for (start, _) in body.match_indices('{') {
        let mut stream = serde_json::Deserializer::from_str(&body[start..]).into_iter::<Json>();
        if let Some(Ok(v @ Json::Object(_))) = stream.next() {
            return Some(v);
        }
    }
    None
}

fn from_object(obj: &Map<String, Json>) -> Parsed {
    let mut out = Parsed::default();
    match obj.get("observations") {
        None | Some(Json::Null) => {}
        Some(Json::Array(items)) => {
            for item in items {
                match observation_item(item) {
                    Some(o) => out.observations.push(o),
                    None => out.skipped += 1,
                }
            }
        }
        Some(_) => out.skipped += 1,
    }
    match obj.get("memories") {
        None | Some(Json::Null) => {}
        Some(Json::Array(items)) => {
            for item in items {
                match memory_item(item) {
                    Some(m) => out.memories.push(m),
                    None => out.skipped += 1,
                }
            }
        }
        Some(_) => out.skipped += 1,
    }
    out
}

fn observation_item(item: &Json) -> Option<NewObservation> {
    let obj = item.as_object()?;
    let text = required_text(obj, "text")?;
    let kind = match obj.get("type").and_then(Json::as_str) {
        Some(t) => match ObservationType::parse(t) {
            ObservationType::Summary => ObservationType::General,
            k => k,
        },
        None => ObservationType::General,
    };
    let related_sources = match obj.get("related_sources") {
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(Json::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Some(Json::String(s)) if !s.trim().is_empty() => vec![s.trim().to_string()],
        _ => Vec::new(),
    };
    Some(NewObservation {
        text,
        kind,
        confidence: confidence(obj),
        related_sources,
    })
}

fn memory_item(item: &Json) -> Option<NewMemory> {
    let obj = item.as_object()?;
    Some(NewMemory {
        fact: required_text(obj, "fact")?,
        confidence: confidence(obj),
    })
}

fn required_text(obj: &Map<String, Json>, key: &str) -> Option<String> {
    let s = obj.get(key)?.as_str()?.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn confidence(obj: &Map<String, Json>) -> f32 {
    let c = match obj.get("confidence") {
        Some(Json::Number(n)) => n.as_f64(),
        Some(Json::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match c {
        Some(c) if c.is_finite() => c.clamp(0.0, 1.0) as f32,
        _ => DEFAULT_CONFIDENCE,
    }
}

fn raw_fallback(trimmed: &str) -> Parsed {
    if trimmed.chars().count() <= RAW_FALLBACK_MIN_CHARS {
        return Parsed::default();
    }
    let text: String = trimmed.chars().take(RAW_FALLBACK_CHARS).collect();
    Parsed {
        observations: vec![NewObservation {
            text,
            kind: ObservationType::General,
            confidence: RAW_FALLBACK_CONFIDENCE,
            related_sources: Vec::new(),
        }],
        raw_fallback: true,
        ..Parsed::default()
    }
}

/// Numbers in the prompt: at most two decimals, trailing zeros dropped (`21.5`, `3`).
fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// One prompt line per entry: embedded line breaks would break the list's shape.
fn one_line(s: &str) -> String {
    if s.contains(['\n', '\r']) {
        s.split(['\n', '\r'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::reading::ShortText;

    fn obs(ts: i64, kind: ObservationType, text: &str) -> Observation {
        Observation {
            id: 1,
            ts,
            text: text.into(),
            kind,
            confidence: 0.9,
            related_sources: vec![],
            node: "pi".into(),
        }
    }

    fn stats(id: &str, unit: &str, count: u64, mmm: Option<(f64, f64, f64)>) -> SourceStats {
        SourceStats {
            id: id.into(),
            unit: unit.into(),
            count,
            min: mmm.map(|m| m.0),
            max: mmm.map(|m| m.1),
            mean: mmm.map(|m| m.2),
        }
    }

    #[test]
    fn prompt_has_sections_and_statistics() {
        let current = vec![
            (
                "system:cpu_temp".to_string(),
                Value::Number(48.25),
                "°C".to_string(),
            ),
            ("gpio:door".to_string(), Value::Bool(true), String::new()),
            (
                "system:power".to_string(),
                Value::Text(ShortText::new("charging")),
                String::new(),
            ),
        ];
        let history = vec![
            stats("system:cpu_temp", "", 1440, Some((41.0, 55.5, 47.123))),
            stats("system:power", "", 3, None),
        ];
        let past = vec![obs(0, ObservationType::Anomaly, "CPU hot\nat noon")];
        let p = build_prompt(15, &current, &history, &past);

        assert!(p.contains("last 15 minutes"), "{p}");
        for section in [
            "Current readings:",
            "Recent reading history:",
            "Relevant past observations:",
        ] {
            assert!(p.contains(section), "{section}\n{p}");
        }
        assert!(p.contains("- system:cpu_temp: 48.25 °C\n"), "{p}");
        assert!(p.contains("- gpio:door: true\n"), "{p}");
        assert!(p.contains("- system:power: charging\n"), "{p}");
        assert!(
            p.contains("- system:cpu_temp: 1440 readings, min=41, max=55.5, avg=47.1\n"),
            "{p}"
        );
        assert!(p.contains("- system:power: 3 readings\n"), "{p}");
        assert!(p.contains("- [anomaly] CPU hot at noon\n"), "{p}");
        assert!(p.contains("\"observations\"") && p.contains("\"memories\""));
        assert!(p.contains("pattern|anomaly|status"));
        assert!(p.contains("empty lists are fine"));
        assert!(!p.contains("No readings available"));

        // Statistics, never rows: 1440 readings still take one line, and the prompt's
        // size depends only on how many entries were passed in.
        let fixed = build_prompt(15, &[], &[], &[]).lines().count();
        assert_eq!(
            p.lines().count(),
            fixed - 3 + current.len() + history.len() + 1
        );
    }

    #[test]
    fn prompt_placeholders_when_empty() {
        let p = build_prompt(30, &[], &[], &[]);
        assert!(p.contains("last 30 minutes"));
        assert!(
            p.contains("Current readings:\nNo readings available\n"),
            "{p}"
        );
        assert!(
            p.contains("Recent reading history:\nNo recent history\n"),
            "{p}"
        );
        assert!(
            p.contains("Relevant past observations:\nNo relevant past observations\n"),
            "{p}"
        );
    }

    #[test]
    fn schema_matches_answer_shape() {
        let s = answer_schema();
        let o = &s["properties"]["observations"]["items"];
        assert_eq!(o["required"], json!(["text"]));
        assert_eq!(
            o["properties"]["type"]["enum"],
            json!(["pattern", "anomaly", "status"])
        );
        assert_eq!(o["properties"]["confidence"]["maximum"], json!(1));
        // Bounded everywhere, so a grammar-constrained model must finish the object.
        assert_eq!(o["properties"]["text"]["maxLength"], json!(TEXT_MAX_CHARS));
        assert_eq!(o["properties"]["related_sources"]["maxItems"], json!(4));
        assert_eq!(
            o["properties"]["related_sources"]["items"]["maxLength"],
            json!(100)
        );
        assert_eq!(
            s["properties"]["observations"]["maxItems"],
            json!(ITEMS_MAX)
        );
        assert_eq!(s["properties"]["memories"]["maxItems"], json!(ITEMS_MAX));
        let m = &s["properties"]["memories"]["items"];
        assert_eq!(m["properties"]["fact"]["maxLength"], json!(TEXT_MAX_CHARS));
        assert_eq!(m["required"], json!(["fact"]));
        // A well-formed answer to the schema parses without loss.
        let answer = json!({
            "observations": [{"text": "t", "type": "status", "confidence": 0.5,
                              "related_sources": ["a:b"]}],
            "memories": [{"fact": "f", "confidence": 0.25}]
        });
        let p = parse_answer(&answer.to_string());
        assert_eq!(p.observations.len(), 1);
        assert_eq!(p.memories.len(), 1);
        assert_eq!(p.skipped, 0);
    }

    const PLAIN: &str = r#"{"observations": [{"text": "CPU temperature rises every afternoon",
        "type": "pattern", "confidence": 0.9, "related_sources": ["system:cpu_temp"]}],
        "memories": [{"fact": "The fan starts at 60 °C", "confidence": 0.7}]}"#;

    fn check_plain(p: &Parsed) {
        assert!(!p.raw_fallback);
        assert_eq!(p.skipped, 0);
        assert_eq!(
            p.observations,
            vec![NewObservation {
                text: "CPU temperature rises every afternoon".into(),
                kind: ObservationType::Pattern,
                confidence: 0.9,
                related_sources: vec!["system:cpu_temp".into()],
            }]
        );
        assert_eq!(
            p.memories,
            vec![NewMemory {
                fact: "The fan starts at 60 °C".into(),
                confidence: 0.7
            }]
        );
    }

    #[test]
    fn parses_plain_json() {
        check_plain(&parse_answer(PLAIN));
        check_plain(&parse_answer(&format!("\n  {PLAIN}  \n")));
    }

    #[test]
    fn parses_fenced_json() {
        check_plain(&parse_answer(&format!("```json\n{PLAIN}\n```")));
        check_plain(&parse_answer(&format!("```\n{PLAIN}\n```\n")));
        // A fence after some prose: found as JSON embedded in prose.
        check_plain(&parse_answer(&format!(
            "Here is the analysis:\n```json\n{PLAIN}\n```\nThanks."
        )));
    }

    #[test]
    fn parses_json_inside_prose_with_trailing_text() {
        let text = format!(
            "Sure! Here is my analysis {{as requested}}:\n{PLAIN}\nLet me know if {{more}} is needed."
        );
        check_plain(&parse_answer(&text));
        // Braces inside strings do not confuse the matching.
        let p = parse_answer(r#"Result: {"observations": [{"text": "a } b {"}]} done"#);
        assert_eq!(p.observations[0].text, "a } b {");
    }

    #[test]
    fn raw_control_characters_inside_strings_do_not_lose_the_answer() {
        // As llama.cpp's grammar let through from a small model: a raw CR and tab in
        // the text, a newline between fields.
        let p =
            parse_answer("{\"observations\": [{\"text\": \");\rload\tup\"}],\n\"memories\": []}");
        assert!(!p.raw_fallback);
        assert_eq!(p.observations.len(), 1);
        assert_eq!(p.observations[0].text, "); load up");
        // Valid JSON with escaped control characters keeps them.
        let p = parse_answer(r#"{"observations": [{"text": "a\nb"}], "memories": []}"#);
        assert_eq!(p.observations[0].text, "a\nb");
    }

    #[test]
    fn broken_json_becomes_one_low_confidence_observation() {
        let long = format!("{{\"observations\": [{{\"text\": \"{}", "x".repeat(600));
        let p = parse_answer(&long);
        assert!(p.raw_fallback);
        assert!(p.memories.is_empty());
        assert_eq!(p.observations.len(), 1);
        let o = &p.observations[0];
        assert_eq!(o.kind, ObservationType::General);
        assert_eq!(o.confidence, RAW_FALLBACK_CONFIDENCE);
        assert_eq!(o.text.chars().count(), 500);
        assert!(long.starts_with(&o.text));

        let p = parse_answer("  The temperatures all look normal today.  ");
        assert!(p.raw_fallback);
        assert_eq!(
            p.observations[0].text,
            "The temperatures all look normal today."
        );

        // Cut at characters, not bytes.
        let p = parse_answer(&"é".repeat(700));
        assert_eq!(p.observations[0].text, "é".repeat(500));
    }

    #[test]
    fn short_garbage_gives_nothing() {
        for text in ["", "   ", "ok", "{broken", "0123456789", "\"a string\""] {
            let p = parse_answer(text);
            assert_eq!(p, Parsed::default(), "{text:?}");
        }
        // Eleven characters is enough.
        assert!(parse_answer("01234567890").raw_fallback);
    }

    #[test]
    fn top_level_list_gives_nothing_and_counts_elements() {
        let p = parse_answer(r#"[{"text": "one"}, {"text": "two"}]"#);
        assert!(p.observations.is_empty() && p.memories.is_empty());
        assert!(!p.raw_fallback);
        assert_eq!(p.skipped, 2);
        assert_eq!(parse_answer("[]"), Parsed::default());
    }

    #[test]
    fn malformed_items_are_skipped_and_counted() {
        let p = parse_answer(
            r#"{"observations": [
                 {"text": "good one"},
                 {"type": "anomaly"},
                 "just a string",
                 {"text": ""},
                 {"text": 42},
                 {"text": "another", "related_sources": ["a:b", 3, "", "c:d"]},
                 {"text": "single source", "related_sources": "e:f"}
               ],
               "memories": [{"fact": "kept"}, {"confidence": 0.9}, null]}"#,
        );
        assert_eq!(p.skipped, 6);
        let texts: Vec<_> = p.observations.iter().map(|o| o.text.as_str()).collect();
        assert_eq!(texts, ["good one", "another", "single source"]);
        assert_eq!(p.observations[0].kind, ObservationType::General);
        assert_eq!(p.observations[0].confidence, DEFAULT_CONFIDENCE);
        assert_eq!(p.observations[1].related_sources, ["a:b", "c:d"]);
        assert_eq!(p.observations[2].related_sources, ["e:f"]);
        assert_eq!(p.memories.len(), 1);
        assert_eq!(p.memories[0].confidence, DEFAULT_CONFIDENCE);

        // A field of the wrong shape counts once; missing fields are fine.
        let p = parse_answer(r#"{"observations": "none", "memories": {}}"#);
        assert_eq!(p.skipped, 2);
        assert_eq!(parse_answer(r#"{"observations": []}"#), Parsed::default());
    }

    #[test]
    fn confidence_clamped_and_types_mapped() {
        let p = parse_answer(
            r#"{"observations": [
                 {"text": "a", "type": "ANOMALY", "confidence": 7},
                 {"text": "b", "type": "weird", "confidence": -0.5},
                 {"text": "c", "type": "summary", "confidence": "0.4"},
                 {"text": "d", "type": 3, "confidence": "high"}
               ],
               "memories": [{"fact": "m", "confidence": 1.5}]}"#,
        );
        let got: Vec<_> = p
            .observations
            .iter()
            .map(|o| (o.kind, o.confidence))
            .collect();
        assert_eq!(
            got,
            [
                (ObservationType::Anomaly, 1.0),
                (ObservationType::General, 0.0),
                (ObservationType::General, 0.4),
                (ObservationType::General, DEFAULT_CONFIDENCE),
            ]
        );
        assert_eq!(p.memories[0].confidence, 1.0);
    }

    #[test]
    fn compaction_prompt_lists_observations() {
        // 2026-11-27T09:28:43.123Z
        let ts = 1_795_771_723_123_000;
        let p = compaction_prompt(&[
            obs(ts, ObservationType::Pattern, "first"),
            obs(ts + 3_600_000_000, ObservationType::Status, "second\nline"),
        ]);
        assert!(p.contains("2-3 sentences"), "{p}");
        assert!(p.contains("1. [2026-11-27T09:28] first\n"), "{p}");
        assert!(p.contains("2. [2026-11-27T10:28] second line\n"), "{p}");
        assert!(p.ends_with("Summary:"), "{p}");
    }
}
