//! The Ollama wire format, as pure functions: request bodies out, replies in.
//!
//! Nothing here does I/O, so every shape the server expects or sends is unit-tested
//! without a server.

use serde_json::{Map, Value, json};

use super::{ChatReply, KeepAlive, Message, OllamaError, ToolCall};
use crate::edges::llm::http::StreamLines;
pub use crate::edges::llm::http::excerpt;
use crate::edges::llm::sampling::{Sampling, ToolChoice};

/// One message as Ollama expects it: `role` and `content` always; `tool_calls` only when
/// there are some, as `[{function:{name, arguments}}]`; `tool_name` only when set.
pub fn message_json(m: &Message) -> Value {
    let mut o = Map::new();
    o.insert("role".into(), Value::String(m.role.as_str().into()));
    o.insert("content".into(), Value::String(m.content.clone()));
    if !m.tool_calls.is_empty() {
        let calls = m
            .tool_calls
            .iter()
            .map(|c| json!({"function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
        o.insert("tool_calls".into(), Value::Array(calls));
    }
    if let Some(name) = &m.tool_name {
        o.insert("tool_name".into(), Value::String(name.clone()));
    }
    Value::Object(o)
}

/// The body of `POST /api/chat`. `tools` is left out when it is not a non-empty array,
/// `format` when `None`, `options` when no sampling setting is set.
///
/// Ollama has no `tool_choice`; it is approximated by the tools sent: `none` sends no
/// tools, a named function only that one (the model may still answer in text), `auto`
/// and `required` all of them.
#[allow(clippy::too_many_arguments)]
pub fn chat_body(
    model: &str,
    messages: &[Message],
    tools: &Value,
    format: Option<&Value>,
    keep_alive: &KeepAlive,
    sampling: &Sampling,
    stream: bool,
) -> Value {
    let mut o = Map::new();
    o.insert("model".into(), Value::String(model.into()));
    o.insert(
        "messages".into(),
        Value::Array(messages.iter().map(message_json).collect()),
    );
    if let Some(t) = tools.as_array().filter(|t| !t.is_empty()) {
        let chosen: Vec<Value> = match sampling.choice_for(messages) {
            ToolChoice::None => Vec::new(),
            ToolChoice::Function(name) => t
                .iter()
                .filter(|d| d["function"]["name"].as_str() == Some(name.as_str()))
                .cloned()
                .collect(),
            ToolChoice::Auto | ToolChoice::Required => t.clone(),
        };
        if !chosen.is_empty() {
            o.insert("tools".into(), Value::Array(chosen));
        }
    }
    o.insert("stream".into(), Value::Bool(stream));
    if let Some(f) = format {
        o.insert("format".into(), f.clone());
    }
    let mut options = Map::new();
    if let Some(t) = sampling.temperature {
        options.insert("temperature".into(), json!(t));
    }
    if let Some(s) = sampling.seed {
        options.insert("seed".into(), json!(s));
    }
    if let Some(n) = sampling.num_ctx {
        options.insert("num_ctx".into(), json!(n));
    }
    if let Some(n) = sampling.max_tokens {
        options.insert("num_predict".into(), json!(n));
    }
    if !options.is_empty() {
        o.insert("options".into(), Value::Object(options));
    }
    o.insert("keep_alive".into(), keep_alive.to_json());
    Value::Object(o)
}

/// The body of `POST /api/embed`: `input` is a string for one text, a list for several.
pub fn embed_body(model: &str, inputs: &[&str], keep_alive: &KeepAlive) -> Value {
    let input = match inputs {
        [one] => Value::String((*one).into()),
        many => Value::Array(many.iter().map(|s| Value::String((*s).into())).collect()),
    };
    json!({"model": model, "input": input, "keep_alive": keep_alive.to_json()})
}

fn parse_json(text: &str) -> Result<Value, OllamaError> {
    serde_json::from_str(text)
        .map_err(|e| OllamaError::BadResponse(format!("not JSON ({e}): {}", excerpt(text))))
}

/// The message of an error body `{"error":"..."}`, if that is what `v` is.
pub fn error_message(v: &Value) -> Option<String> {
    match v.get("error")? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The `message` of a whole reply or of one stream fragment: its content (possibly
/// empty) and its tool calls. Tool-call arguments are JSON objects; a string holding a
/// JSON object is accepted too (some model templates produce one).
pub fn parse_message(v: &Value) -> Result<(String, Vec<ToolCall>), OllamaError> {
    let Some(msg) = v.get("message") else {
        return Ok((String::new(), Vec::new()));
    };
    let content = match msg.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(OllamaError::BadResponse(format!(
                "message content is not a string: {other}"
            )));
        }
    };
    let mut calls = Vec::new();
    match msg.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                calls.push(parse_tool_call(item)?);
            }
        }
        Some(other) => {
            return Err(OllamaError::BadResponse(format!(
                "tool_calls is not a list: {other}"
            )));
        }
    }
    Ok((content, calls))
}

fn parse_tool_call(item: &Value) -> Result<ToolCall, OllamaError> {
    let bad = |why: &str| OllamaError::BadResponse(format!("tool call {why}: {item}"));
    let f = item
        .get("function")
        .ok_or_else(|| bad("without function"))?;
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("without a name"))?;
    let arguments = match f.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(bad("whose arguments are not a JSON object")),
        },
        Some(_) => return Err(bad("whose arguments are not a JSON object")),
    };
    Ok(ToolCall {
        name: name.to_string(),
        arguments,
    })
}

/// A whole (non-streaming) `/api/chat` reply.
pub fn parse_chat_reply(text: &str) -> Result<ChatReply, OllamaError> {
    let v = parse_json(text)?;
    if let Some(e) = error_message(&v) {
        return Err(OllamaError::Stream(e));
    }
    if v.get("message").is_none() {
        return Err(OllamaError::BadResponse(format!(
            "chat reply without a message: {}",
            excerpt(text)
        )));
    }
    let (content, tool_calls) = parse_message(&v)?;
    Ok(ChatReply {
        content,
        tool_calls,
        total_duration_ns: v.get("total_duration").and_then(Value::as_u64),
    })
}

/// What one NDJSON line of a streamed chat contributed.
#[derive(Debug, PartialEq)]
pub enum StreamLine {
    /// A fragment: content to append, tool calls that arrived with it, and on the last
    /// line (`done: true`) the total duration.
    Fragment {
        content: String,
        tool_calls: Vec<ToolCall>,
        done: bool,
        total_duration_ns: Option<u64>,
    },
    /// A blank line (ignored).
    Blank,
}

/// One line of a streamed chat. An `{"error": ...}` line (sent with status 200 when the
/// model fails mid-answer) is `Err(OllamaError::Stream)`.
pub fn parse_stream_line(line: &str) -> Result<StreamLine, OllamaError> {
    if line.trim().is_empty() {
        return Ok(StreamLine::Blank);
    }
    let v = parse_json(line)?;
    if let Some(e) = error_message(&v) {
        return Err(OllamaError::Stream(e));
    }
    let (content, tool_calls) = parse_message(&v)?;
    let done = v.get("done").and_then(Value::as_bool).unwrap_or(false);
    Ok(StreamLine::Fragment {
        content,
        tool_calls,
        done,
        total_duration_ns: v.get("total_duration").and_then(Value::as_u64),
    })
}

/// Accumulates stream lines into a [`ChatReply`].
#[derive(Debug, Default)]
pub struct StreamAssembler {
    content: String,
    tool_calls: Vec<ToolCall>,
    total_duration_ns: Option<u64>,
    done: bool,
}

impl StreamLines for StreamAssembler {
    /// Feeds one line; returns the new text (possibly empty) for the caller to show.
    fn feed(&mut self, line: &str) -> Result<String, OllamaError> {
        match parse_stream_line(line)? {
            StreamLine::Blank => Ok(String::new()),
            StreamLine::Fragment {
                content,
                tool_calls,
                done,
                total_duration_ns,
            } => {
                self.content.push_str(&content);
                self.tool_calls.extend(tool_calls);
                if done {
                    self.done = true;
                    self.total_duration_ns = total_duration_ns;
                }
                Ok(content)
            }
        }
    }

    /// Whether the `done: true` line has been seen.
    fn is_done(&self) -> bool {
        self.done
    }

    /// The reply so far; an error if the stream ended before its `done` line.
    fn finish(self) -> Result<ChatReply, OllamaError> {
        if !self.done {
            return Err(OllamaError::Stream(
                "the stream ended before its final (done) line".into(),
            ));
        }
        Ok(ChatReply {
            content: self.content,
            tool_calls: self.tool_calls,
            total_duration_ns: self.total_duration_ns,
        })
    }
}

/// The `/api/embed` reply: one vector per input.
pub fn parse_embed_reply(text: &str, expected: usize) -> Result<Vec<Vec<f32>>, OllamaError> {
    let v = parse_json(text)?;
    let bad = |why: &str| OllamaError::BadResponse(format!("embed reply {why}: {}", excerpt(text)));
    let list = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("without an embeddings list"))?;
    let mut out = Vec::with_capacity(list.len());
    for row in list {
        let row = row
            .as_array()
            .ok_or_else(|| bad("with a non-list vector"))?;
        let mut vec = Vec::with_capacity(row.len());
        for x in row {
            vec.push(x.as_f64().ok_or_else(|| bad("with a non-number"))? as f32);
        }
        out.push(vec);
    }
    if out.len() != expected {
        return Err(bad(&format!(
            "with {} vectors for {expected} inputs",
            out.len()
        )));
    }
    Ok(out)
}

/// The model names of a `/api/tags` reply (`name`, else `model`).
pub fn parse_tags(text: &str) -> Result<Vec<String>, OllamaError> {
    let v = parse_json(text)?;
    let list = v.get("models").and_then(Value::as_array).ok_or_else(|| {
        OllamaError::BadResponse(format!("tags reply without models: {}", excerpt(text)))
    })?;
    Ok(list
        .iter()
        .filter_map(|m| {
            m.get("name")
                .and_then(Value::as_str)
                .or_else(|| m.get("model").and_then(Value::as_str))
                .map(str::to_string)
        })
        .collect())
}

/// The version of a `/api/version` reply.
pub fn parse_version(text: &str) -> Result<String, OllamaError> {
    let v = parse_json(text)?;
    v.get("version")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            OllamaError::BadResponse(format!("version reply without version: {}", excerpt(text)))
        })
}

/// A model name with its tag made explicit: `llama3` is `llama3:latest`. A colon in a
/// registry host (`host:5000/ns/model`) is not a tag: only a colon after the last `/`.
pub fn with_tag(model: &str) -> String {
    let last = model.rsplit('/').next().unwrap_or(model);
    if last.contains(':') {
        model.to_string()
    } else {
        format!("{model}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edges::ollama::Role;

    #[test]
    fn every_message_kind_serialises() {
        assert_eq!(
            message_json(&Message::system("be brief")),
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(
            message_json(&Message::user("hi")),
            json!({"role": "user", "content": "hi"})
        );
        assert_eq!(
            message_json(&Message::assistant("ok", vec![])),
            json!({"role": "assistant", "content": "ok"})
        );
        let call = ToolCall {
            name: "read_pin".into(),
            arguments: json!({"pin": 17}),
        };
        assert_eq!(
            message_json(&Message::assistant("", vec![call])),
            json!({"role": "assistant", "content": "",
                   "tool_calls": [{"function": {"name": "read_pin", "arguments": {"pin": 17}}}]})
        );
        assert_eq!(
            message_json(&Message::tool("read_pin", "{\"value\":true}")),
            json!({"role": "tool", "content": "{\"value\":true}", "tool_name": "read_pin"})
        );
        assert_eq!(Message::tool("t", "c").role, Role::Tool);
    }

    #[test]
    fn chat_body_carries_keep_alive_number_tools_and_format() {
        let tools = json!([{"type": "function", "function": {"name": "f", "description": "d",
            "parameters": {"type": "object", "properties": {}}}}]);
        let b = chat_body(
            "m:t",
            &[Message::user("q")],
            &tools,
            Some(&json!("json")),
            &KeepAlive::Seconds(-1),
            &Sampling::default(),
            false,
        );
        assert_eq!(b["model"], "m:t");
        assert_eq!(b["keep_alive"], json!(-1));
        assert!(b["keep_alive"].is_number());
        assert_eq!(b["tools"], tools);
        assert_eq!(b["format"], "json");
        assert_eq!(b["stream"], false);
        assert_eq!(b["messages"], json!([{"role": "user", "content": "q"}]));
    }

    #[test]
    fn chat_body_omits_empty_tools_and_no_format_and_keeps_duration_string() {
        let b = chat_body(
            "m",
            &[],
            &json!([]),
            None,
            &KeepAlive::Duration("5m".into()),
            &Sampling::default(),
            true,
        );
        let o = b.as_object().unwrap();
        assert!(!o.contains_key("tools"));
        assert!(!o.contains_key("format"));
        assert!(!o.contains_key("options"), "nothing set, nothing sent");
        assert_eq!(b["keep_alive"], "5m");
        assert_eq!(b["stream"], true);
        let schema = json!({"type": "object", "properties": {"a": {"type": "number"}}});
        let b = chat_body(
            "m",
            &[],
            &Value::Null,
            Some(&schema),
            &KeepAlive::Seconds(0),
            &Sampling::default(),
            false,
        );
        assert_eq!(b["format"], schema);
        assert!(!b.as_object().unwrap().contains_key("tools"));
    }

    #[test]
    fn sampling_goes_into_options_and_tool_choice_picks_the_tools() {
        let tools = json!([
            {"type": "function", "function": {"name": "a", "parameters": {}}},
            {"type": "function", "function": {"name": "b", "parameters": {}}}
        ]);
        let sampling = Sampling {
            temperature: Some(0.0),
            seed: Some(42),
            num_ctx: Some(2048),
            max_tokens: Some(64),
            tool_choice: ToolChoice::Function("b".into()),
        };
        let q = [Message::user("q")];
        let b = chat_body(
            "m",
            &q,
            &tools,
            None,
            &KeepAlive::Seconds(-1),
            &sampling,
            false,
        );
        assert_eq!(
            b["options"],
            json!({"temperature": 0.0, "seed": 42, "num_ctx": 2048, "num_predict": 64})
        );
        assert_eq!(b["tools"], json!([tools[1]]), "only the forced tool");
        // After the tool answered, the model may answer: every tool again.
        let after = [
            Message::user("q"),
            Message::assistant("", vec![]),
            Message::tool("b", "{}"),
        ];
        let b = chat_body(
            "m",
            &after,
            &tools,
            None,
            &KeepAlive::Seconds(-1),
            &sampling,
            false,
        );
        assert_eq!(b["tools"], tools);
        let none = Sampling {
            tool_choice: ToolChoice::None,
            ..Sampling::default()
        };
        let b = chat_body("m", &q, &tools, None, &KeepAlive::Seconds(-1), &none, false);
        assert!(b.get("tools").is_none());
    }

    #[test]
    fn embed_body_is_a_string_for_one_and_a_list_for_many() {
        let ka = KeepAlive::Seconds(300);
        assert_eq!(embed_body("e", &["a"], &ka)["input"], "a");
        assert_eq!(
            embed_body("e", &["a", "b"], &ka)["input"],
            json!(["a", "b"])
        );
        assert_eq!(embed_body("e", &["a"], &ka)["keep_alive"], json!(300));
    }

    #[test]
    fn parses_a_plain_reply() {
        let r = parse_chat_reply(
            r#"{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"Hello"},"done":true,"total_duration":123456}"#,
        )
        .unwrap();
        assert_eq!(r.content, "Hello");
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.total_duration_ns, Some(123456));
    }

    #[test]
    fn parses_tool_calls_with_object_arguments() {
        let r = parse_chat_reply(
            r#"{"message":{"role":"assistant","content":"","tool_calls":[
                {"function":{"name":"set_pin","arguments":{"pin":17,"on":true}}},
                {"function":{"name":"now"}}]},"done":true}"#,
        )
        .unwrap();
        assert_eq!(r.content, "");
        assert_eq!(r.total_duration_ns, None);
        assert_eq!(
            r.tool_calls,
            vec![
                ToolCall {
                    name: "set_pin".into(),
                    arguments: json!({"pin": 17, "on": true})
                },
                ToolCall {
                    name: "now".into(),
                    arguments: json!({})
                },
            ]
        );
        assert!(r.tool_calls[0].arguments.is_object());
    }

    #[test]
    fn string_arguments_holding_an_object_are_accepted_others_rejected() {
        let r = parse_chat_reply(
            r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":"{\"x\":1}"}}]},"done":true}"#,
        )
        .unwrap();
        assert_eq!(r.tool_calls[0].arguments, json!({"x": 1}));
        let e = parse_chat_reply(
            r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":[1]}}]},"done":true}"#,
        )
        .unwrap_err();
        assert!(matches!(e, OllamaError::BadResponse(_)), "{e:?}");
    }

    #[test]
    fn bad_replies_are_bad_responses() {
        assert!(matches!(
            parse_chat_reply("<html>").unwrap_err(),
            OllamaError::BadResponse(_)
        ));
        assert!(matches!(
            parse_chat_reply(r#"{"done":true}"#).unwrap_err(),
            OllamaError::BadResponse(_)
        ));
    }

    #[test]
    fn stream_fragments_concatenate_and_tool_calls_collect() {
        let mut a = StreamAssembler::default();
        let lines = [
            r#"{"model":"m","message":{"role":"assistant","content":"Hel"},"done":false}"#,
            "",
            r#"{"model":"m","message":{"role":"assistant","content":"lo"},"done":false}"#,
            r#"{"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"done":false}"#,
            r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"total_duration":9}"#,
        ];
        let mut shown = String::new();
        for l in lines {
            shown.push_str(&a.feed(l).unwrap());
        }
        assert!(a.is_done());
        assert_eq!(shown, "Hello");
        let r = a.finish().unwrap();
        assert_eq!(r.content, "Hello");
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].arguments, json!({"a": 1}));
        assert_eq!(r.total_duration_ns, Some(9));
    }

    #[test]
    fn error_lines_are_detected() {
        let e =
            parse_stream_line(r#"{"error":"model runner has unexpectedly stopped"}"#).unwrap_err();
        assert_eq!(
            e,
            OllamaError::Stream("model runner has unexpectedly stopped".into())
        );
        let mut a = StreamAssembler::default();
        a.feed(r#"{"message":{"role":"assistant","content":"x"},"done":false}"#)
            .unwrap();
        assert!(a.feed(r#"{"error":"boom"}"#).is_err());
        assert_eq!(parse_stream_line("   ").unwrap(), StreamLine::Blank);
    }

    #[test]
    fn a_stream_without_done_is_an_error() {
        let mut a = StreamAssembler::default();
        a.feed(r#"{"message":{"role":"assistant","content":"x"},"done":false}"#)
            .unwrap();
        assert!(matches!(a.finish(), Err(OllamaError::Stream(_))));
    }

    #[test]
    fn parses_embeddings_tags_version() {
        let v = parse_embed_reply(r#"{"model":"e","embeddings":[[0.5,1],[0,-1.5]]}"#, 2).unwrap();
        assert_eq!(v, vec![vec![0.5, 1.0], vec![0.0, -1.5]]);
        assert!(parse_embed_reply(r#"{"embeddings":[[1]]}"#, 2).is_err());
        assert!(parse_embed_reply(r#"{"embedding":[1]}"#, 1).is_err());
        let t = parse_tags(
            r#"{"models":[{"name":"gemma4:e2b","model":"gemma4:e2b","size":1},{"model":"x:1"},{"size":2}]}"#,
        )
        .unwrap();
        assert_eq!(t, vec!["gemma4:e2b".to_string(), "x:1".to_string()]);
        assert_eq!(parse_version(r#"{"version":"0.12.3"}"#).unwrap(), "0.12.3");
        assert!(parse_version("{}").is_err());
    }

    #[test]
    fn error_bodies_and_tags() {
        assert_eq!(
            error_message(&json!({"error": "model 'x' not found"})).as_deref(),
            Some("model 'x' not found")
        );
        assert_eq!(error_message(&json!({"message": {}})), None);
        assert_eq!(with_tag("llama3"), "llama3:latest");
        assert_eq!(with_tag("llama3:8b"), "llama3:8b");
        assert_eq!(with_tag("reg:5000/ns/m"), "reg:5000/ns/m:latest");
        assert_eq!(excerpt(&"é".repeat(300)).chars().count(), 201);
    }
}
