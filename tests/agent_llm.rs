//! The agent end to end: questions over a real broker (Debian's mosquitto), the real
//! binary, and a scripted stand-in for Ollama (`common/fake_ollama.rs`: a real LLM with
//! weights cannot run here; the stand-in checks every request against the Ollama API's
//! shapes and answers from a script).

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::time::Duration;

use common::broker::{Broker, Subscriber};
use common::*;
use fake_ollama::{FakeOllama, Step};
use serde_json::{Value, json};

const MODEL: &str = "gemma4:e2b";

/// System readings into the store; no mqtt sinks (questions and answers only).
const PIPELINE: &str = UPTIME_PIPELINE;

fn settings(broker: u16, ollama: u16, extra_agent: &str) -> String {
    format!(
        "[mqtt]\nbroker = \"127.0.0.1\"\nport = {broker}\nreconnect_min = \"200ms\"\n\n\
         [ollama]\nhost = \"127.0.0.1\"\nport = {ollama}\nmodel = \"{MODEL}\"\nretries = 0\nconnect_timeout = \"1s\"\n\n\
         [agent]\n{extra_agent}\n"
    )
}

/// A config with only `[ollama]` pointing at the stand-in (for CLI runs and HTTP).
fn ollama_only_config(dir: &std::path::Path, port: u16, ollama: &FakeOllama) -> std::path::PathBuf {
    write_config_extra(
        dir,
        port,
        PIPELINE,
        &format!(
            "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n",
            ollama.port()
        ),
    )
}

fn llm_status(agent: &Agent) -> Value {
    get(&agent.url("/api/status")).unwrap().1["connections"]["ollama"].clone()
}

#[test]
fn a_question_over_mqtt_runs_tools_and_the_answer_is_published() {
    let dir = TempDir::new("agent-e2e");
    let broker = Broker::start(dir.path());
    let ollama = FakeOllama::start(&[MODEL]);
    // Round 1: read a source. Round 2: publish a note. Round 3: answer.
    ollama.push(Step::ToolCalls(vec![(
        "read_source".into(),
        json!({"source_id": "system:uptime"}),
    )]));
    ollama.push(Step::ToolCalls(vec![(
        "publish".into(),
        json!({"topic": "notes", "message": "uptime checked"}),
    )]));
    ollama.push(Step::Text("The node has been up for a while.".into()));
    let sub = Subscriber::new(
        broker.port,
        "asker",
        &["replies/#", "smollama/test-node/notes"],
    );
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PIPELINE,
        &settings(broker.port, ollama.port(), ""),
    );
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "mqtt connected", || {
        (get(&agent.url("/api/status")).ok()?.1["connections"]["mqtt"]["state"] == "connected")
            .then_some(())
    });
    eventually(10, "a reading", || {
        (get(&agent.url("/api/readings/system:uptime")).ok()?.0 == 200).then_some(())
    });

    sub.publish(
        "smollama/test-node/ask",
        br#"{"id": "q1", "question": "How long has the node been up?", "reply_to": "replies/me"}"#,
        false,
    );
    let answer = eventually(15, "the answer", || sub.on("replies/me").pop());
    assert_eq!(answer["id"], "q1");
    assert_eq!(answer["answer"], "The node has been up for a while.");
    assert_eq!(answer["tools_used"], json!(["read_source", "publish"]));
    assert_eq!(answer["rounds"], 3);
    assert_eq!(answer["node"], "test-node");
    // The model's publish went out under the node's prefix.
    let note = eventually(5, "the note", || sub.raw("smollama/test-node/notes").pop());
    assert_eq!(note, b"uptime checked");

    // What the model saw: the tools, the tool results with tool_name, keep_alive as a number.
    let chats = ollama.bodies("/api/chat");
    assert_eq!(chats.len(), 3);
    assert_eq!(chats[0]["keep_alive"], -1);
    let tool_names: Vec<&str> = chats[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    for t in [
        "read_source",
        "list_sources",
        "get_reading_history",
        "publish",
        "write_gpio",
    ] {
        assert!(tool_names.contains(&t), "{t} not offered: {tool_names:?}");
    }
    let second = chats[1]["messages"].as_array().unwrap();
    let tool_msg = second
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("a tool message");
    assert_eq!(tool_msg["tool_name"], "read_source");
    let result: Value = serde_json::from_str(tool_msg["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["source_id"], "system:uptime");
    assert!(result["value"].is_number(), "{result}");

    // Answers, status and readings topics never trigger the agent.
    for t in [
        "smollama/test-node/answers",
        "smollama/other/status",
        "smollama/other/readings",
    ] {
        sub.publish(t, b"what about this?", false);
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        ollama.bodies("/api/chat").len(),
        3,
        "a guarded topic reached the model"
    );
    let st = llm_status(&agent);
    assert_eq!(st["answered"], 1, "{st}");
    assert_eq!(st["state"], "reachable");
}

#[test]
fn questions_wait_for_ollama_across_a_restart_and_are_answered_in_order() {
    let dir = TempDir::new("agent-queue");
    let broker = Broker::start(dir.path());
    let mut ollama = FakeOllama::start(&[MODEL]);
    ollama.stop(); // Ollama is away
    let sub = Subscriber::new(broker.port, "asker-q", &["smollama/test-node/answers"]);
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PIPELINE,
        &settings(broker.port, ollama.port(), "fallback_mode = \"queue\""),
    );
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "mqtt connected", || {
        (get(&agent.url("/api/status")).ok()?.1["connections"]["mqtt"]["state"] == "connected")
            .then_some(())
    });
    sub.publish(
        "smollama/test-node/ask",
        br#"{"id": "q2", "question": "first?"}"#,
        false,
    );
    sub.publish(
        "smollama/test-node/ask",
        br#"{"id": "q3", "question": "second?"}"#,
        false,
    );
    eventually(15, "two queued", || {
        (llm_status(&agent)["queued"] == 2).then_some(())
    });
    assert_eq!(llm_status(&agent)["state"], "unreachable");

    // Restart smollama while Ollama is still away: the queue is in the store.
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
    let agent = Agent::start(&cfg, port, &[]);
    eventually(5, "queue restored", || {
        (llm_status(&agent)["queued"] == 2).then_some(())
    });

    ollama.push(Step::Text("answer one".into()));
    ollama.push(Step::Text("answer two".into()));
    ollama.restart();
    let answers = eventually(90, "both answers", || {
        let a = sub.on("smollama/test-node/answers");
        (a.len() >= 2).then_some(a)
    });
    assert_eq!(answers[0]["id"], "q2");
    assert_eq!(answers[0]["answer"], "answer one");
    assert_eq!(answers[1]["id"], "q3");
    assert_eq!(answers[1]["answer"], "answer two");
    assert_eq!(llm_status(&agent)["queued"], 0);
}

#[test]
fn questions_kept_while_the_server_is_away_are_bounded_in_bytes() {
    let dir = TempDir::new("agent-queue-kb");
    let broker = Broker::start(dir.path());
    let mut ollama = FakeOllama::start(&[MODEL]);
    ollama.stop(); // the model server is away: questions are kept
    let sub = Subscriber::new(broker.port, "asker-kb", &["smollama/test-node/answers"]);
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PIPELINE,
        &settings(
            broker.port,
            ollama.port(),
            "fallback_mode = \"queue\"\nqueue_max = 100\nqueue_kb = 1",
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    wait_mqtt_connected(&agent);
    // Three questions of ~600 bytes: 1 KiB holds one of them, so the count bound (100)
    // never bites and the byte bound drops the oldest two.
    for n in 1..=3 {
        let q = format!(
            r#"{{"id": "kb{n}", "question": "{n}: {}?"}}"#,
            "x".repeat(600)
        );
        sub.publish("smollama/test-node/ask", q.as_bytes(), false);
        let want = n - 1;
        eventually(15, "the question taken up", || {
            (llm_status(&agent)["queue_dropped"].as_u64()?
                + llm_status(&agent)["queued"].as_u64()?
                == want + 1)
                .then_some(())
        });
    }
    let st = llm_status(&agent);
    assert_eq!(st["queued"], 1, "{st}");
    assert_eq!(st["queue_dropped"], 2, "{st}");
    assert!(
        agent.log().contains("queue_kb"),
        "the drop names the setting: {}",
        agent.log()
    );
    // Back: the one kept, the newest, is answered.
    ollama.push(Step::Text("kept".into()));
    ollama.restart();
    let answers = eventually(60, "the answer", || {
        let a = sub.on("smollama/test-node/answers");
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(
        answers[0]["id"], "kb3",
        "the dropped ones are not answered first"
    );
}

#[test]
fn skip_mode_answers_with_an_error_at_once() {
    let dir = TempDir::new("agent-skip");
    let broker = Broker::start(dir.path());
    let mut ollama = FakeOllama::start(&[MODEL]);
    ollama.stop();
    let sub = Subscriber::new(broker.port, "asker-s", &["smollama/test-node/answers"]);
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PIPELINE,
        &settings(broker.port, ollama.port(), "fallback_mode = \"skip\""),
    );
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "mqtt connected", || {
        (get(&agent.url("/api/status")).ok()?.1["connections"]["mqtt"]["state"] == "connected")
            .then_some(())
    });
    sub.publish("smollama/test-node/ask", b"is anyone there?", false);
    let a = eventually(15, "an error answer", || {
        sub.on("smollama/test-node/answers").pop()
    });
    assert_eq!(a["question"], "is anyone there?");
    assert!(a["error"].as_str().unwrap().len() > 5, "{a}");
    assert!(a["answer"].is_null());
    assert_eq!(llm_status(&agent)["failed"], 1);
}

/// A second origin: a question over HTTP (no broker at all) is answered in the response,
/// through the same intake and tool loop as MQTT questions.
#[test]
fn a_question_over_http_is_answered_in_the_response() {
    let dir = TempDir::new("agent-http-ask");
    let mut ollama = FakeOllama::start(&[MODEL]);
    let port = free_port();
    let cfg = ollama_only_config(dir.path(), port, &ollama);
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "a reading", || {
        (get(&agent.url("/api/readings/system:uptime")).ok()?.0 == 200).then_some(())
    });
    let url = agent.url("/api/ask");
    let question = r#"{"id": "h1", "question": "How long has the node been up?"}"#;
    // It can run write tools, so it needs the token.
    assert_eq!(post_auth(&url, question, None, 10).0, 401);
    assert_eq!(post_auth(&url, question, Some("wrong"), 10).0, 401);
    assert_eq!(
        ollama.bodies("/api/chat").len(),
        0,
        "refused before the model"
    );

    ollama.push(Step::ToolCalls(vec![(
        "read_source".into(),
        json!({"source_id": "system:uptime"}),
    )]));
    ollama.push(Step::Text("Up for a while.".into()));
    let (code, a) = post_auth(&url, question, Some(TOKEN), 20);
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["id"], "h1");
    assert_eq!(a["answer"], "Up for a while.");
    assert_eq!(a["tools_used"], json!(["read_source"]));
    // Plain text works too, with an id made up by the node.
    ollama.push(Step::Text("Yes.".into()));
    let (code, a) = post_auth(&url, "anyone there?", Some(TOKEN), 20);
    assert_eq!((code, a["answer"].as_str()), (200, Some("Yes.")), "{a}");
    assert!(a["id"].as_str().unwrap().starts_with("test-node-"), "{a}");
    assert_eq!(post_auth(&url, "   ", Some(TOKEN), 10).0, 400);

    // An answer slower than the request's timeout_s: 504 with the id, and the agent
    // carries on with the next question.
    ollama.push(Step::Delay(
        Duration::from_secs(3),
        Box::new(Step::Text("late".into())),
    ));
    let (code, a) = post_auth(
        &url,
        r#"{"id": "slow", "question": "q", "timeout_s": 1}"#,
        Some(TOKEN),
        10,
    );
    assert_eq!((code, a["id"].as_str()), (504, Some("slow")), "{a}");

    // With the model server away, an HTTP asker is not queued (it could not wait for
    // the answer): it gets the error at once, although fallback_mode is "queue".
    eventually(10, "the slow answer done", || {
        (ollama.steps_left() == 0 && llm_status(&agent)["answered"] == 3).then_some(())
    });
    ollama.stop();
    let (code, a) = post_auth(&url, r#"{"question": "still there?"}"#, Some(TOKEN), 20);
    assert_eq!(code, 503, "{a}");
    assert!(a["error"].as_str().unwrap().len() > 5, "{a}");
    let (_, status) = get(&agent.url("/api/status")).unwrap();
    assert_eq!(status["connections"]["ollama"]["queued"], 0, "{status}");
    let asked = &status["connections"]["http"]["ask"];
    assert_eq!(asked["questions"], 4, "{status}");
    assert_eq!(asked["ignored"], 1, "{status}");
}

#[test]
fn ask_and_status_from_the_command_line() {
    let dir = TempDir::new("agent-cli");
    let ollama = FakeOllama::start(&[MODEL, "all-minilm:l6-v2"]);
    let port = free_port();
    let cfg = ollama_only_config(dir.path(), port, &ollama);
    let c = cfg.to_str().unwrap();
    ollama.push(Step::ToolCalls(vec![("list_sources".into(), json!({}))]));
    ollama.push(Step::Text("I see the system sources.".into()));
    let (code, out, err) = run_cli(&["--config", c, "ask", "what sources do you have?"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "I see the system sources.");
    assert!(err.contains("list_sources"), "{err}");

    // status: reachable, version, model present (exact name and tag).
    let (code, out, _) = run_cli(&["--config", c, "status", "--json"], &[]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ollama"]["reachable"], true, "{v}");
    assert_eq!(v["ollama"]["model_present"], true);
    // A model with another tag is not "present" (the original's substring test said yes).
    ollama.set_models(&["gemma4:e4b"]);
    let (_, out, _) = run_cli(&["--config", c, "status"], &[]);
    assert!(
        out.contains("MISSING") && out.contains("ollama pull gemma4:e2b"),
        "{out}"
    );
    // ask with the model missing: a clear error naming the fix, exit 1.
    let (code, _, err) = run_cli(&["--config", c, "ask", "hello?"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("ollama pull gemma4:e2b"), "{err}");
}

#[test]
fn status_of_a_live_agent_has_one_ollama_line() {
    // The agent has not asked Ollama yet, while Ollama answers this command: one line
    // says both (there were two: "reachable" and "not contacted yet").
    let dir = TempDir::new("status-ollama");
    let ollama = FakeOllama::start(&[MODEL]);
    let port = free_port();
    let cfg = ollama_only_config(dir.path(), port, &ollama);
    let _agent = Agent::start(&cfg, port, &[]);
    let (code, out, err) = run_cli(&["--config", cfg.to_str().unwrap(), "status"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("agent: running for"), "a live report: {out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("ollama:")).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("reachable (version") && lines[0].contains("; the agent: "),
        "{out}"
    );
}

#[test]
fn remember_then_recall_by_meaning_through_the_embedding_model() {
    let dir = TempDir::new("agent-memory");
    let ollama = FakeOllama::start(&[MODEL, "all-minilm:l6-v2"]);
    let port = free_port();
    let cfg = ollama_only_config(dir.path(), port, &ollama);
    let c = cfg.to_str().unwrap();
    ollama.push(Step::ToolCalls(vec![(
        "remember".into(),
        json!({"fact": "The greenhouse fan is on pin 22"}),
    )]));
    ollama.push(Step::Text("Noted.".into()));
    let (code, _, err) = run_cli(&["--config", c, "ask", "remember where the fan is"], &[]);
    assert_eq!(code, 0, "{err}");
    // The same fact again reinforces it instead of adding a duplicate.
    ollama.push(Step::ToolCalls(vec![(
        "remember".into(),
        json!({"fact": "The greenhouse fan is on pin 22"}),
    )]));
    ollama.push(Step::Text("Noted again.".into()));
    run_cli(&["--config", c, "ask", "remember it again"], &[]);
    ollama.push(Step::ToolCalls(vec![(
        "recall".into(),
        json!({"query": "greenhouse fan pin"}),
    )]));
    ollama.push(Step::Text("Pin 22.".into()));
    let (code, out, err) = run_cli(&["--config", c, "ask", "which pin is the fan on?"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "Pin 22.");
    // Embeddings came from the embedding model; the recall result reached the model.
    let embeds = ollama.bodies("/api/embed");
    assert!(embeds.len() >= 3, "{embeds:?}");
    assert!(embeds.iter().all(|b| b["model"] == "all-minilm:l6-v2"));
    let chats = ollama.bodies("/api/chat");
    let last = chats.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .clone();
    let tool = last
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_name"] == "recall")
        .unwrap();
    let result: Value = serde_json::from_str(tool["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        result["memories"][0]["fact"], "The greenhouse fan is on pin 22",
        "{result}"
    );
    assert_eq!(
        result["memories"][0]["times_confirmed"], 2,
        "reinforced, not duplicated: {result}"
    );
    assert_eq!(result["memories"].as_array().unwrap().len(), 1);
}

#[test]
fn memory_export_wipe_import_round_trip_and_recall_from_the_command_line() {
    let dir = TempDir::new("memory-cli");
    let ollama = FakeOllama::start(&[MODEL, "all-minilm:l6-v2"]);
    let port = free_port();
    let cfg = ollama_only_config(dir.path(), port, &ollama);
    let c = cfg.to_str().unwrap();
    ollama.push(Step::ToolCalls(vec![
        ("observe".into(), json!({"observation": "Greenhouse humidity peaks at dawn", "observation_type": "pattern"})),
        ("observe".into(), json!({"observation": "CPU load spiked during the backup", "observation_type": "anomaly"})),
        ("remember".into(), json!({"fact": "The greenhouse fan is on pin 22", "confidence": 0.9})),
        ("remember".into(), json!({"fact": "Backups run at 03:00"})),
    ]));
    ollama.push(Step::Text("ok".into()));
    let (code, _, err) = run_cli(&["--config", c, "ask", "note these"], &[]);
    assert_eq!(code, 0, "{err}");

    let export = dir.path().join("memory.jsonl");
    let (code, _, err) = run_cli(
        &["--config", c, "memory", "export", export.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("exported 2 observations and 2 memories"),
        "{err}"
    );
    let original = std::fs::read_to_string(&export).unwrap();
    assert_eq!(original.lines().count(), 4);

    // Wipe the store, then import: everything comes back.
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let (code, out, err) = run_cli(
        &["--config", c, "memory", "import", export.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("imported 2 observations and 2 memories; 0 duplicates"),
        "{out}"
    );
    let again = dir.path().join("again.jsonl");
    run_cli(
        &["--config", c, "memory", "export", again.to_str().unwrap()],
        &[],
    );
    let strip = |text: &str| -> Vec<Value> {
        let mut v: Vec<Value> = text
            .lines()
            .map(|l| {
                let mut j: Value = serde_json::from_str(l).unwrap();
                j.as_object_mut().unwrap().remove("id");
                j
            })
            .collect();
        v.sort_by_key(|j| j.to_string());
        v
    };
    assert_eq!(
        strip(&original),
        strip(&std::fs::read_to_string(&again).unwrap())
    );

    // Importing again adds nothing; a corrupted line is reported by its number.
    let mut text = std::fs::read_to_string(&export).unwrap();
    text.insert_str(0, "{\"kind\": \"observation\", \"text\": \n");
    std::fs::write(&export, text).unwrap();
    let (code, out, err) = run_cli(
        &["--config", c, "memory", "import", export.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("imported 0 observations and 0 memories; 4 duplicates skipped; 1 bad lines"),
        "{out}"
    );
    assert!(err.contains("memory.jsonl:1:"), "{err}");

    // Recall from the shell ranks the matching items first.
    let (code, out, _) = run_cli(&["--config", c, "memory", "recall", "greenhouse fan"], &[]);
    assert_eq!(code, 0);
    let first_memory = out.lines().find(|l| l.contains("memory:")).unwrap();
    assert!(
        first_memory.contains("greenhouse fan is on pin 22"),
        "{out}"
    );
}

#[test]
fn hand_written_lines_without_id_or_time_import_once() {
    let dir = TempDir::new("memory-hand");
    let ollama = FakeOllama::start(&[MODEL, "all-minilm:l6-v2"]);
    let port = free_port();
    let cfg = ollama_only_config(dir.path(), port, &ollama);
    let c = cfg.to_str().unwrap();
    let file = dir.path().join("notes.jsonl");
    std::fs::write(
        &file,
        r#"{"kind": "observation", "text": "The fan runs every afternoon", "type": "pattern", "confidence": 0.8}
{"kind": "memory", "fact": "The greenhouse fan is on pin 22", "confidence": 0.9}
{"kind": "memory", "fact": "", "confidence": 0.9}
"#,
    )
    .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let import = || {
        run_cli(
            &["--config", c, "memory", "import", file.to_str().unwrap()],
            &[],
        )
    };
    let (code, out, err) = import();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("imported 1 observations and 1 memories; 0 duplicates skipped; 1 bad lines"),
        "{out}{err}"
    );
    assert!(
        err.contains("notes.jsonl:3: skipped: `fact` is empty"),
        "{err}"
    );
    // The same file again: nothing new, though the lines carry no time to compare.
    let (code, out, err) = import();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("imported 0 observations and 0 memories; 2 duplicates skipped"),
        "{out}{err}"
    );
    // A line without a time happened at the import.
    let (_, out, _) = run_cli(&["--config", c, "memory", "export"], &[]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0]["ts_us"].as_i64().unwrap() >= before, "{out}");
    assert!(
        lines[1]["first_seen_us"].as_i64().unwrap() >= before,
        "{out}"
    );
}

#[test]
fn memory_over_http() {
    let dir = TempDir::new("memory-http");
    let ollama = FakeOllama::start(&[MODEL, "all-minilm:l6-v2"]);
    let port = free_port();
    let cfg = ollama_only_config(dir.path(), port, &ollama);
    let c = cfg.to_str().unwrap();
    ollama.push(Step::ToolCalls(vec![
        ("observe".into(), json!({"observation": "Greenhouse humidity peaks at dawn", "observation_type": "pattern", "related_sources": ["mqtt:greenhouse/humidity"]})),
        ("observe".into(), json!({"observation": "CPU load spiked during the backup", "observation_type": "anomaly"})),
        ("remember".into(), json!({"fact": "The greenhouse fan is on pin 22"})),
    ]));
    ollama.push(Step::Text("ok".into()));
    let (code, _, err) = run_cli(&["--config", c, "ask", "note these"], &[]);
    assert_eq!(code, 0, "{err}");
    let agent = Agent::start(&cfg, port, &[]);

    let (code, o) = get(&agent.url("/api/observations")).unwrap();
    assert_eq!(code, 200);
    assert_eq!(o["count"], 2);
    assert_eq!(
        o["observations"][0]["text"], "CPU load spiked during the backup",
        "newest first"
    );
    let (_, o) = get(&agent.url("/api/observations?type=pattern")).unwrap();
    assert_eq!(o["count"], 1);
    assert_eq!(
        o["observations"][0]["related_sources"],
        json!(["mqtt:greenhouse/humidity"])
    );
    let (_, o) = get(&agent.url("/api/observations?query=backup%20load&hours=1")).unwrap();
    assert_eq!(
        o["observations"][0]["text"], "CPU load spiked during the backup",
        "{o}"
    );
    assert!(o["observations"][0]["similarity"].is_number());
    let (_, m) = get(&agent.url("/api/memories")).unwrap();
    assert_eq!(m["memories"][0]["text"], "The greenhouse fan is on pin 22");

    let r = common::post(
        &agent.url("/api/memory/recall"),
        r#"{"query": "greenhouse fan", "limit": 3}"#,
    );
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(
        r.1["mode"], "vector",
        "the embedding model answered: {}",
        r.1
    );
    assert_eq!(
        r.1["memories"][0]["text"],
        "The greenhouse fan is on pin 22"
    );

    let (_, s) = get(&agent.url("/api/stats")).unwrap();
    assert_eq!(s["observations_count"], 2);
    assert_eq!(s["observations_by_type"]["anomaly"], 1);
    assert_eq!(s["memories_count"], 1);
    assert_eq!(s["vector_dimension"], 384);
    assert_eq!(s["vector_search_enabled"], true);

    // Bad requests get a JSON reason.
    assert_eq!(
        get(&agent.url("/api/observations?type=weird")).unwrap().0,
        400
    );
    assert_eq!(get(&agent.url("/api/memories?limit=0")).unwrap().0, 400);
    assert_eq!(
        common::post(&agent.url("/api/memory/recall"), "not json").0,
        400
    );
    assert_eq!(
        common::post(&agent.url("/api/memory/recall"), r#"{"limit": 2}"#).0,
        400
    );
}

#[test]
fn the_observation_loop_looks_at_statistics_and_publishes_what_it_noticed() {
    let dir = TempDir::new("observe");
    let broker = Broker::start(dir.path());
    let ollama = FakeOllama::start(&[MODEL, "all-minilm:l6-v2"]);
    ollama.push(Step::Text(
        r#"```json
{"observations": [{"text": "Uptime grows steadily", "type": "pattern", "confidence": 0.9, "related_sources": ["system:uptime"]}],
 "memories": [{"fact": "This node reports uptime", "confidence": 0.7}]}
```"#
            .into(),
    ));
    let sub = Subscriber::new(
        broker.port,
        "observer-sub",
        &["smollama/test-node/observations"],
    );
    let port = free_port();
    let extra = format!(
        "{}\n[memory]\nobserve_min = \"200ms\"\nobserve_max = \"1s\"\n",
        settings(broker.port, ollama.port(), "")
    );
    let cfg = write_config_extra(dir.path(), port, PIPELINE, &extra);
    let agent = Agent::start(&cfg, port, &["--log-level", "debug"]);
    let published = eventually(15, "an observation over MQTT", || {
        sub.on("smollama/test-node/observations").pop()
    });
    // The schedule says when it looks next: at start, and again after each look.
    eventually(10, "the next observation time logged twice", || {
        let log = agent.log();
        let next: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("DEBUG memory: next observation at "))
            .collect();
        (next.len() >= 2).then_some(())
    });
    assert_eq!(published["text"], "Uptime grows steadily");
    assert_eq!(published["type"], "pattern");
    let (_, o) = get(&agent.url("/api/observations")).unwrap();
    assert_eq!(o["observations"][0]["text"], "Uptime grows steadily");
    let (_, m) = get(&agent.url("/api/memories")).unwrap();
    assert_eq!(m["memories"][0]["text"], "This node reports uptime");
    // The model got statistics, not raw rows, and the structured-output schema.
    let chat = ollama.bodies("/api/chat").into_iter().next().unwrap();
    assert!(chat["format"].is_object(), "{chat}");
    let prompt = chat["messages"][1]["content"].as_str().unwrap();
    assert!(
        prompt.contains("system:uptime:") && prompt.contains("readings, min="),
        "{prompt}"
    );
}

/// JSON lines of observations, an hour apart, oldest first, the newest an hour ago.
fn observation_lines(texts: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let hour = 3_600_000_000i64;
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"kind": "observation", "id": i + 1, "text": t, "type": "pattern",
                   "confidence": 0.7, "related_sources": [format!("gpio:pin{i}")],
                   "node": "test-node", "ts_us": now - (texts.len() - i) as i64 * hour})
            .to_string()
                + "\n"
        })
        .collect()
}

/// `smollama memory import` of `OLD_TEXTS`; returns what it printed.
fn import_old_texts(dir: &std::path::Path, config: &str) -> String {
    let file = dir.join("old.jsonl");
    std::fs::write(&file, observation_lines(&OLD_TEXTS)).unwrap();
    let (code, out, err) = run_cli(
        &[
            "--config",
            config,
            "memory",
            "import",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    out
}

const OLD_TEXTS: [&str; 8] = [
    "The garage door opened at night",
    "CPU temperature rose during the backup",
    "Kitchen humidity is stable around 45 percent",
    "Hallway motion every morning at seven",
    "Fridge compressor cycles every 40 minutes",
    "Network latency spikes during the backup",
    "Greenhouse humidity peaks at dawn",
    "The fan on pin 22 runs every afternoon",
];

#[test]
fn compaction_fires_when_memory_is_below_the_threshold() {
    let dir = TempDir::new("compaction");
    let ollama = FakeOllama::start(&[MODEL, "all-minilm:l6-v2"]);
    let port = free_port();
    // The threshold is far above this machine's free memory, so it must fire.
    let cfg = write_config_extra(
        dir.path(),
        port,
        PIPELINE,
        &format!(
            "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n\n\
             [memory]\nobserve_min = \"300ms\"\nobserve_max = \"1s\"\n\
             compact_below_mb = 1000000000\ncompact_batch = 6\n",
            ollama.port()
        ),
    );
    let c = cfg.to_str().unwrap();
    let out = import_old_texts(dir.path(), c);
    assert!(out.contains("imported 8 observations"), "{out}");
    // First the summary (a plain answer), then the observation run's answer.
    let summary = "Doors, humidity and backups followed their usual routine.";
    ollama.push(Step::Text(summary.into()));
    ollama.push(Step::Text(
        r#"{"observations": [{"text": "Uptime grows steadily", "type": "status"}], "memories": []}"#
            .into(),
    ));
    let agent = Agent::start(&cfg, port, &[]);
    let s = eventually(15, "a summary observation", || {
        let (_, o) = get(&agent.url("/api/observations?type=summary")).ok()?;
        (o["count"] == 1).then_some(o)
    });
    let stored = &s["observations"][0];
    assert_eq!(stored["text"], summary);
    assert_eq!(stored["confidence"], 0.9);
    // Its sources are those of the six it replaced.
    assert_eq!(
        stored["related_sources"].as_array().unwrap().len(),
        6,
        "{s}"
    );
    // The six oldest are gone, the two newest stay.
    let (_, all) = get(&agent.url("/api/observations?limit=50")).unwrap();
    let texts: Vec<&str> = all["observations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["text"].as_str().unwrap())
        .collect();
    for old in &OLD_TEXTS[..6] {
        assert!(!texts.contains(old), "{old} should be compacted: {texts:?}");
    }
    for kept in &OLD_TEXTS[6..] {
        assert!(texts.contains(kept), "{kept} should stay: {texts:?}");
    }
    // The model was asked with the original's compaction prompt, oldest first.
    let chats = ollama.bodies("/api/chat");
    let prompt = chats[0]["messages"][1]["content"].as_str().unwrap();
    let line = |n: usize| {
        prompt
            .lines()
            .find(|l| l.starts_with(&format!("{n}. [")))
            .unwrap_or_default()
    };
    assert!(
        line(1).ends_with("] The garage door opened at night"),
        "{prompt}"
    );
    assert!(
        line(6).ends_with("] Network latency spikes during the backup"),
        "{prompt}"
    );
    assert!(!prompt.contains("Greenhouse"), "{prompt}");
    assert!(prompt.trim_end().ends_with("Summary:"));
    // Later runs do not compact again: fewer than 5 observations are left to compact.
    eventually(15, "more observation runs", || {
        (ollama.bodies("/api/chat").len() >= 4).then_some(())
    });
    let (_, s) = get(&agent.url("/api/observations?type=summary")).unwrap();
    assert_eq!(s["count"], 1);
    let compactions = ollama
        .bodies("/api/chat")
        .iter()
        .filter(|b| {
            b["messages"][1]["content"]
                .as_str()
                .is_some_and(|p| p.ends_with("Summary:"))
        })
        .count();
    assert_eq!(compactions, 1);
}

#[test]
fn a_new_embedding_model_re_embeds_in_the_background_and_recall_keeps_answering() {
    let dir = TempDir::new("reembed");
    let ollama = FakeOllama::start(&[MODEL, "all-minilm:l6-v2", "nomic-embed-text:v1.5"]);
    ollama.set_embed_dim("nomic-embed-text:v1.5", 96);
    let port = free_port();
    let config = |embedding_model: &str| {
        write_config_extra(
            dir.path(),
            port,
            PIPELINE,
            &format!(
                "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n\n\
                 [memory]\nobserve = false\nembedding_model = \"{embedding_model}\"\n",
                ollama.port()
            ),
        )
    };
    let cfg = config("all-minilm:l6-v2");
    let c = cfg.to_str().unwrap();
    let out = import_old_texts(dir.path(), c);
    assert!(out.contains("; 8 embedded"), "{out}");
    // Embedded in batches, not one request per text.
    assert_eq!(ollama.bodies("/api/embed").len(), 1);

    // The agent starts with another model of another dimension.
    let cfg = config("nomic-embed-text:v1.5");
    let agent = Agent::start(&cfg, port, &[]);
    let stats = eventually(15, "vectors of the new model", || {
        let (_, s) = get(&agent.url("/api/stats")).ok()?;
        (s["vector_dimension"] == 96 && s["vectors"] == 8).then_some(s)
    });
    assert_eq!(stats["observations_count"], 8, "nothing lost: {stats}");
    assert!(
        agent
            .log()
            .contains("the embedding model is now nomic-embed-text:v1.5"),
        "{}",
        agent.log()
    );
    let r = common::post(
        &agent.url("/api/memory/recall"),
        r#"{"query": "fridge compressor cycles", "limit": 2}"#,
    );
    assert_eq!(r.1["mode"], "vector", "{}", r.1);
    assert_eq!(
        r.1["observations"][0]["text"], "Fridge compressor cycles every 40 minutes",
        "{}",
        r.1
    );
    // The embedding model goes away: recall still answers, by words.
    ollama.set_models(&[MODEL]);
    let r = common::post(
        &agent.url("/api/memory/recall"),
        r#"{"query": "fridge compressor cycles", "limit": 2}"#,
    );
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["mode"], "lexical", "{}", r.1);
    assert_eq!(
        r.1["observations"][0]["text"], "Fridge compressor cycles every 40 minutes",
        "{}",
        r.1
    );
    drop(agent);

    // Back to the first model, from the command line.
    ollama.set_models(&[MODEL, "all-minilm:l6-v2"]);
    let cfg = config("all-minilm:l6-v2");
    let (code, out, err) = run_cli(
        &["--config", cfg.to_str().unwrap(), "memory", "reembed"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "re-embedded 8 observations and memories with all-minilm:l6-v2 (dimension 384)"
        ),
        "{out}"
    );
}
