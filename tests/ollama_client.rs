//! The Ollama client against the scripted stand-in server (`common/fake_ollama.rs`).

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::time::{Duration, Instant};

use fake_ollama::{EMBED_DIM, FakeOllama, Step, cosine};
use serde_json::{Value, json};
use smollama::edges::ollama::{
    ChatReply, KeepAlive, Message, Ollama, OllamaConfig, OllamaError, ToolCall,
};

const MODEL: &str = "gemma4:e2b";

fn cfg(url: &str) -> OllamaConfig {
    OllamaConfig {
        base_url: url.to_string(),
        model: MODEL.into(),
        keep_alive: KeepAlive::Seconds(-1),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(10),
        total_timeout: Duration::from_secs(30),
        retries: 2,
        backoff_min: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
    }
}

fn client(fake: &FakeOllama) -> Ollama {
    Ollama::new(cfg(&fake.url()))
}

fn tools() -> Value {
    json!([{
        "type": "function",
        "function": {
            "name": "set_pin",
            "description": "Switch an output pin",
            "parameters": {
                "type": "object",
                "properties": {"pin": {"type": "integer"}, "on": {"type": "boolean"}},
                "required": ["pin", "on"]
            }
        }
    }])
}

fn ask(q: &str) -> Vec<Message> {
    vec![
        Message::system("You run on a Raspberry Pi."),
        Message::user(q),
    ]
}

#[test]
fn plain_answer() {
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::Text("It is 21 °C.".into()));
    let r = client(&fake)
        .chat(&ask("temperature?"), &json!([]), None)
        .unwrap();
    assert_eq!(r.content, "It is 21 °C.");
    assert!(r.tool_calls.is_empty());
    assert!(r.total_duration_ns.is_some());
    let bodies = fake.bodies("/api/chat");
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["stream"], false);
    assert!(bodies[0].get("tools").is_none(), "empty tools are left out");
}

#[test]
fn tool_call_reply_has_object_arguments() {
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::ToolCalls(vec![(
        "set_pin".into(),
        json!({"pin": 17, "on": true}),
    )]));
    let r = client(&fake).chat(&ask("fan on"), &tools(), None).unwrap();
    assert_eq!(
        r.tool_calls,
        vec![ToolCall {
            name: "set_pin".into(),
            arguments: json!({"pin": 17, "on": true})
        }]
    );
    assert!(r.tool_calls[0].arguments.is_object());
}

#[test]
fn request_carries_keep_alive_number_tools_and_a_full_tool_round() {
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::Text("Done: the fan is on.".into()));
    let call = ToolCall {
        name: "set_pin".into(),
        arguments: json!({"pin": 17, "on": true}),
    };
    let mut history = ask("fan on");
    history.push(Message::assistant("", vec![call]));
    history.push(Message::tool("set_pin", r#"{"ok":true}"#));
    let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}}});
    let r = client(&fake)
        .chat(&history, &tools(), Some(&schema))
        .unwrap();
    assert_eq!(r.content, "Done: the fan is on.");

    let b = &fake.bodies("/api/chat")[0];
    assert_eq!(b["model"], MODEL);
    assert!(b["keep_alive"].is_number(), "{}", b["keep_alive"]);
    assert_eq!(b["keep_alive"], json!(-1));
    assert_eq!(b["tools"], tools());
    assert_eq!(b["format"], schema);
    assert_eq!(
        b["messages"][2],
        json!({"role": "assistant", "content": "",
               "tool_calls": [{"function": {"name": "set_pin", "arguments": {"pin": 17, "on": true}}}]})
    );
    assert_eq!(
        b["messages"][3],
        json!({"role": "tool", "content": "{\"ok\":true}", "tool_name": "set_pin"})
    );
}

#[test]
fn format_json_and_duration_keep_alive_are_accepted() {
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::Text("{\"a\":1}".into()));
    let mut c = cfg(&fake.url());
    c.keep_alive = KeepAlive::parse("5m").unwrap();
    let r = Ollama::new(c)
        .chat(&ask("json please"), &json!([]), Some(&json!("json")))
        .unwrap();
    assert_eq!(r.content, "{\"a\":1}");
    let b = &fake.bodies("/api/chat")[0];
    assert_eq!(b["keep_alive"], "5m");
    assert_eq!(b["format"], "json");
}

#[test]
fn a_bare_numeric_keep_alive_string_is_a_400_not_retried() {
    // What the original client sent ("-1" as a string): Ollama rejects it.
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::Text("never".into()));
    let mut c = cfg(&fake.url());
    c.keep_alive = KeepAlive::Duration("-1".into());
    let e = Ollama::new(c)
        .chat(&ask("hi"), &json!([]), None)
        .unwrap_err();
    match &e {
        OllamaError::Http { status, message } => {
            assert_eq!(*status, 400);
            assert!(message.contains("missing unit"), "{message}");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    assert!(!e.is_retryable());
    assert_eq!(fake.bodies("/api/chat").len(), 1);
    assert!(KeepAlive::parse("-1").unwrap() == KeepAlive::Seconds(-1));
}

#[test]
fn missing_model_is_model_not_found_and_not_retried() {
    let fake = FakeOllama::start(&["gemma4:e4b"]);
    let e = client(&fake)
        .chat(&ask("hi"), &json!([]), None)
        .unwrap_err();
    assert_eq!(
        e,
        OllamaError::ModelNotFound {
            model: MODEL.into(),
            server: fake.url()
        }
    );
    assert!(e.to_string().contains("ollama pull gemma4:e2b"), "{e}");
    assert_eq!(fake.requests().len(), 1, "a 404 is not retried");
}

#[test]
fn a_500_then_success_is_retried() {
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::Status(
        500,
        r#"{"error":"llama runner process has terminated"}"#.into(),
    ));
    fake.push(Step::Text("second time lucky".into()));
    let r = client(&fake).chat(&ask("hi"), &json!([]), None).unwrap();
    assert_eq!(r.content, "second time lucky");
    assert_eq!(fake.bodies("/api/chat").len(), 2);
}

#[test]
fn retries_run_out_on_a_full_queue() {
    let fake = FakeOllama::start(&[MODEL]);
    for _ in 0..3 {
        fake.push(Step::Status(
            503,
            r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#
                .into(),
        ));
    }
    fake.push(Step::Text("not reached".into()));
    let e = client(&fake)
        .chat(&ask("hi"), &json!([]), None)
        .unwrap_err();
    match &e {
        OllamaError::Http {
            status: 503,
            message,
        } => assert!(message.contains("server busy")),
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(fake.bodies("/api/chat").len(), 3, "1 try + 2 retries");
    assert_eq!(fake.steps_left(), 1);
}

#[test]
fn a_slow_answer_past_read_timeout_is_a_timeout() {
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::Delay(
        Duration::from_secs(5),
        Box::new(Step::Text("too late".into())),
    ));
    let mut c = cfg(&fake.url());
    c.read_timeout = Duration::from_millis(300);
    c.retries = 0;
    let t0 = Instant::now();
    let e = Ollama::new(c)
        .chat(&ask("hi"), &json!([]), None)
        .unwrap_err();
    assert!(matches!(e, OllamaError::Timeout(_)), "{e:?}");
    assert!(e.is_retryable());
    assert!(t0.elapsed() < Duration::from_secs(4), "the timeout fired");
}

#[test]
fn a_timeout_then_an_answer_is_retried() {
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::Delay(
        Duration::from_secs(5),
        Box::new(Step::Text("too late".into())),
    ));
    fake.push(Step::Text("on time".into()));
    let mut c = cfg(&fake.url());
    c.read_timeout = Duration::from_millis(300);
    let r = Ollama::new(c).chat(&ask("hi"), &json!([]), None).unwrap();
    assert_eq!(r.content, "on time");
    assert_eq!(fake.bodies("/api/chat").len(), 2);
}

#[test]
fn streaming_text_is_concatenated() {
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::StreamText(vec![
        "The ".into(),
        "fan ".into(),
        "is on.".into(),
    ]));
    let mut pieces = Vec::new();
    let r = client(&fake)
        .chat_stream(&ask("fan?"), &tools(), &mut |t| pieces.push(t.to_string()))
        .unwrap();
    assert_eq!(pieces, ["The ", "fan ", "is on."]);
    assert_eq!(r.content, "The fan is on.");
    assert!(r.total_duration_ns.is_some());
    let b = &fake.bodies("/api/chat")[0];
    assert_eq!(b["stream"], true);
    assert_eq!(b["tools"], tools());
}

#[test]
fn streamed_tool_calls_are_collected() {
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::ToolCalls(vec![(
        "set_pin".into(),
        json!({"pin": 4, "on": false}),
    )]));
    let r = client(&fake)
        .chat_stream(&ask("fan off"), &tools(), &mut |_| {})
        .unwrap();
    assert_eq!(
        r,
        ChatReply {
            content: String::new(),
            tool_calls: vec![ToolCall {
                name: "set_pin".into(),
                arguments: json!({"pin": 4, "on": false})
            }],
            total_duration_ns: r.total_duration_ns,
        }
    );
}

#[test]
fn an_error_line_mid_stream_is_a_stream_error_not_retried() {
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::StreamErrorAfter(
        vec!["Half an ".into(), "answer".into()],
        "model runner has unexpectedly stopped".into(),
    ));
    fake.push(Step::Text("not reached".into()));
    let mut shown = String::new();
    let e = client(&fake)
        .chat_stream(&ask("hi"), &json!([]), &mut |t| shown.push_str(t))
        .unwrap_err();
    assert_eq!(
        e,
        OllamaError::Stream("model runner has unexpectedly stopped".into())
    );
    assert_eq!(shown, "Half an answer");
    assert_eq!(fake.bodies("/api/chat").len(), 1);
}

#[test]
fn a_stream_that_fails_before_any_text_is_retried() {
    let fake = FakeOllama::start(&[MODEL]);
    fake.push(Step::Status(502, r#"{"error":"bad gateway"}"#.into()));
    fake.push(Step::StreamText(vec!["ok".into()]));
    let mut shown = String::new();
    let r = client(&fake)
        .chat_stream(&ask("hi"), &json!([]), &mut |t| shown.push_str(t))
        .unwrap();
    assert_eq!((r.content.as_str(), shown.as_str()), ("ok", "ok"));
    assert_eq!(fake.bodies("/api/chat").len(), 2);
}

#[test]
fn nothing_listening_is_unreachable_quickly() {
    let port = common::free_port();
    let mut c = cfg(&format!("http://127.0.0.1:{port}"));
    c.connect_timeout = Duration::from_millis(500);
    c.retries = 1;
    let t0 = Instant::now();
    let o = Ollama::new(c);
    let e = o.chat(&ask("hi"), &json!([]), None).unwrap_err();
    assert!(matches!(e, OllamaError::Unreachable(_)), "{e:?}");
    assert!(e.is_retryable());
    assert!(matches!(o.version(), Err(OllamaError::Unreachable(_))));
    assert!(t0.elapsed() < Duration::from_secs(5), "no long wait");
}

#[test]
fn an_outage_and_recovery() {
    let mut fake = FakeOllama::start(&[MODEL]);
    let o = client(&fake);
    assert!(o.version().is_ok());
    fake.stop();
    assert!(matches!(o.version(), Err(OllamaError::Unreachable(_))));
    fake.restart();
    fake.push(Step::Text("back".into()));
    assert_eq!(
        o.chat(&ask("hi"), &json!([]), None).unwrap().content,
        "back"
    );
}

#[test]
fn embed_returns_one_vector_per_input() {
    let fake = FakeOllama::start(&[MODEL, "all-minilm"]);
    let mut c = cfg(&fake.url());
    c.model = "all-minilm".into();
    let o = Ollama::new(c);
    let texts = [
        "the greenhouse is too warm",
        "the greenhouse is very warm",
        "MQTT broker reconnected",
    ];
    let v = o.embed(&texts).unwrap();
    assert_eq!(v.len(), 3);
    assert!(v.iter().all(|e| e.len() == EMBED_DIM));
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));

    let one = o.embed(&["just one"]).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].len(), EMBED_DIM);
    assert!(o.embed(&[]).unwrap().is_empty());

    let bodies = fake.bodies("/api/embed");
    assert_eq!(
        bodies.len(),
        2,
        "one request per batch, none for an empty one"
    );
    assert_eq!(bodies[0]["input"], json!(texts));
    assert_eq!(bodies[1]["input"], "just one");
    assert_eq!(bodies[0]["keep_alive"], json!(-1));
}

#[test]
fn embed_with_a_missing_model_is_model_not_found() {
    let fake = FakeOllama::start(&[MODEL]);
    let mut c = cfg(&fake.url());
    c.model = "nomic-embed-text".into();
    let e = Ollama::new(c).embed(&["x"]).unwrap_err();
    assert!(
        matches!(e, OllamaError::ModelNotFound { ref model, .. } if model == "nomic-embed-text")
    );
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn tags_version_and_has_model() {
    let fake = FakeOllama::start(&["gemma4:e4b", "llama3:latest"]);
    let o = client(&fake);
    assert_eq!(o.version().unwrap(), "0.12.6");
    let names = o.tags().unwrap();
    assert_eq!(names, ["gemma4:e4b", "llama3:latest"]);
    assert!(!Ollama::has_model(&names, "gemma4:e2b"));
    assert!(Ollama::has_model(&names, "gemma4:e4b"));
    assert!(Ollama::has_model(&names, "llama3"));
    assert!(!Ollama::has_model(&names, "gemma4"));
    assert_eq!(o.config().model, MODEL);
}

/// The stand-in checks request shapes as the real server does (so the client's bodies
/// are checked in every test above); here it is fed bad ones directly.
#[test]
fn the_fake_rejects_malformed_requests() {
    let fake = FakeOllama::start(&[MODEL]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let post = |body: Value| -> (u16, String) {
        let mut r = agent
            .post(format!("{}/api/chat", fake.url()))
            .send_json(&body)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let base = |extra: Value| {
        let mut b = json!({"model": MODEL, "stream": false,
                           "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        json!({"model": null}),
        json!({"messages": [{"role": "robot", "content": "x"}]}),
        json!({"messages": [{"role": "tool", "content": "x"}]}),
        json!({"messages": [{"role": "assistant", "content": "",
                             "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]}),
        json!({"tools": [{"name": "f"}]}),
        json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}),
        json!({"keep_alive": "-1"}),
        json!({"keep_alive": "5 minutes"}),
        json!({"format": "yaml"}),
        json!({"keepalive": -1}),
    ];
    for extra in cases {
        let (status, body) = post(base(extra.clone()));
        assert_eq!(status, 400, "{extra}: {body}");
        assert!(body.contains("\"error\""), "{body}");
    }
    fake.push(Step::Text("fine".into()));
    assert_eq!(post(base(json!({"keep_alive": "1h30m"}))).0, 200);
    let (status, body) = post(base(json!({"model": "nope"})));
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"error":"model 'nope' not found"}"#)
    );
    assert_eq!(fake.steps_left(), 0);
}
