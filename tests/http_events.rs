//! `GET /api/events` (Server-Sent Events) through the real binary: readings arrive as
//! events with increasing ids, a GPIO input set through the API shows up within a
//! second, a reconnect with `Last-Event-ID` resumes without a gap or a duplicate, 50
//! clients at once all get events while `/api/health` stays fast and no thread is added,
//! a client that stops reading costs no memory past the ring and its losses are counted,
//! a quiet stream outlives the idle timeout on keep-alives; the agent's answers and
//! memories and the MQTT connection's state are events too.
//!
//! Latency bounds are generous (as in `http_limits.rs`): a loaded CI machine must not
//! fail them by chance; figures are printed (`--nocapture`).

mod common;
#[cfg(feature = "agent")]
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::time::{Duration, Instant};

use common::raw_http::{Said, SseClient, request, small_window_socket};
use common::*;

/// `FAST_PIPELINE` with the events sink on the filter, as the default pipeline has it.
fn pipeline() -> String {
    format!("{FAST_PIPELINE}\n[[sink]]\nname = \"live\"\nkind = \"events\"\nfrom = [\"quiet\"]\n")
}

/// One at a time: the figures mean something only when the tests do not compete.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn start(tag: &str, http: &str, pipe: &str) -> (TempDir, Agent) {
    let dir = TempDir::new(tag);
    let port = free_port();
    let cfg = write_config_http(dir.path(), port, pipe, http, "");
    let agent = Agent::start(&cfg, port, &[]);
    (dir, agent)
}

fn events_status(agent: &Agent) -> serde_json::Value {
    let (_, s) = get(&agent.url("/api/status")).unwrap();
    s["connections"]["http"].clone()
}

fn set_motion(agent: &Agent, on: bool) {
    let (code, body) = put(
        &agent.url("/api/gpio/17"),
        &format!("{{\"value\": {on}}}"),
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn readings_arrive_as_events_with_increasing_ids_and_a_gpio_input_within_a_second() {
    let _s = serial();
    let (_dir, agent) = start("sse-readings", "", &pipeline());
    let mut c = SseClient::open(agent.port, "/api/events", "");
    assert_eq!(c.code, 200);
    assert!(
        c.header_is("Content-Type", "text/event-stream; charset=utf-8"),
        "{:?}",
        c.headers
    );
    // First a `hello` without an id (it must not move the browser's Last-Event-ID).
    match c.next(5 * SEC) {
        Some(Said::Event(e)) => {
            assert_eq!((e.event.as_str(), e.id), ("hello", None), "{e:?}");
            assert_eq!(e.json()["keepalive_ms"], 15_000);
            assert!(e.json()["newest_id"].as_u64().unwrap() > 0);
        }
        other => panic!("{other:?}"),
    }
    let mut events = Vec::new();
    while events.len() < 8 {
        events.push(c.next_event(10 * SEC).expect("reading events keep coming"));
    }
    let ids: Vec<u64> = events.iter().map(|e| e.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    for e in &events {
        assert_eq!(e.event, "reading");
        let j = e.json();
        assert!(j["source"].as_str().unwrap().starts_with("system:"), "{j}");
        assert!(j["value"].is_number() && j["timestamp"].is_string(), "{j}");
    }
    // A pin set through the API (as a sensor would) is on the stream within a second.
    for on in [true, false, true] {
        let t0 = Instant::now();
        set_motion(&agent, on);
        let got = c
            .until(5 * SEC, |e| {
                let j = e.json();
                j["source"] == "gpio:17" && j["value"] == on
            })
            .expect("the pin's reading as an event");
        let took = t0.elapsed();
        eprintln!(
            "gpio:17 = {on} on the stream after {:.1} ms",
            took.as_secs_f64() * 1e3
        );
        assert!(took < SEC, "{took:?}");
        assert!(got.windows(2).all(|w| w[1].id > w[0].id));
    }
    let h = events_status(&agent);
    assert_eq!(h["streams"]["open"], 1, "{h}");
    // The only ordinary connection open is the one asking for status.
    assert_eq!(h["open"], 1, "a stream is not an ordinary connection: {h}");
    let ev = &h["events"];
    assert_eq!(ev["clients"].as_array().unwrap().len(), 1, "{ev}");
    assert!(ev["clients"][0]["sent"].as_u64().unwrap() >= 8, "{ev}");
    assert_eq!(ev["lost"], 0, "{ev}");
    drop(c);
    eventually(5, "the stream to close", || {
        (events_status(&agent)["streams"]["open"] == 0).then_some(())
    });
}

#[test]
fn a_reconnect_with_last_event_id_gets_exactly_the_buffered_events_after_it() {
    let _s = serial();
    let (_dir, agent) = start("sse-resume", "", &pipeline());
    // A reference client that stays connected throughout.
    let mut all = SseClient::open(agent.port, "/api/events", "");
    let mut reference = Vec::new();
    let mut first = SseClient::open(agent.port, "/api/events", "");
    let mut before = Vec::new();
    while before.len() < 5 {
        before.push(first.next_event(10 * SEC).unwrap());
    }
    let last = before.last().unwrap().id.unwrap();
    drop(first);
    // Events happen while it is away (readings every 200 ms, and a pin).
    std::thread::sleep(SEC);
    set_motion(&agent, true);
    std::thread::sleep(SEC / 2);
    // Resume with the header, and with the query parameter (EventSource polyfills).
    for (target, extra) in [
        (
            "/api/events".to_string(),
            format!("Last-Event-ID: {last}\r\n"),
        ),
        (format!("/api/events?last_event_id={last}"), String::new()),
    ] {
        let mut again = SseClient::open(agent.port, &target, &extra);
        assert_eq!(again.code, 200);
        // Whatever was buffered arrives at once: read up to the pin's event from while
        // it was away, and a few after it.
        let mut resumed = again
            .until(10 * SEC, |e| {
                let j = e.json();
                j["source"] == "gpio:17" && j["value"] == true
            })
            .expect("the buffered events up to the pin's");
        for _ in 0..3 {
            resumed.push(again.next_event(10 * SEC).unwrap());
        }
        let ids: Vec<u64> = resumed.iter().map(|e| e.id.unwrap()).collect();
        assert_eq!(ids[0], last + 1, "no gap: {ids:?}");
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "no gap, no duplicate: {ids:?}"
        );
        // Exactly what the client that never left got, event for event.
        let top = *ids.last().unwrap();
        while reference
            .last()
            .is_none_or(|e: &common::raw_http::Event| e.id.unwrap() < top)
        {
            reference.push(all.next_event(10 * SEC).unwrap());
        }
        let want: Vec<_> = reference
            .iter()
            .filter(|e| (last + 1..=top).contains(&e.id.unwrap()))
            .collect();
        assert_eq!(want, resumed.iter().collect::<Vec<_>>(), "{target}");
    }
    let h = events_status(&agent);
    assert_eq!(h["events"]["lost"], 0, "{h}");
    // A malformed id is refused with a reason.
    let r = request(agent.port, "GET", "/api/events", "Last-Event-ID: soon\r\n");
    assert_eq!(r.code, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("Last-Event-ID"));
}

#[test]
fn fifty_clients_all_receive_events_while_health_stays_fast() {
    let _s = serial();
    let (_dir, agent) = start("sse-fifty", "max_streams = 64", &pipeline());
    let pid = agent.child.id();
    let threads0 = proc_status(pid, "Threads:");
    let mut clients: Vec<SseClient> = (0..50)
        .map(|_| SseClient::open(agent.port, "/api/events", ""))
        .collect();
    assert!(clients.iter().all(|c| c.code == 200));
    let mut health = Vec::new();
    let t_end = Instant::now() + 3 * SEC;
    while Instant::now() < t_end {
        let t0 = Instant::now();
        let r = request(agent.port, "GET", "/api/health", "");
        health.push((r.code, t0.elapsed()));
        std::thread::sleep(Duration::from_millis(20));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let e = c
            .next_event(10 * SEC)
            .unwrap_or_else(|| panic!("client {i} got no event"));
        assert_eq!(e.event, "reading");
    }
    assert!(health.iter().all(|(c, _)| *c == 200), "{health:?}");
    let mut t: Vec<Duration> = health.iter().map(|(_, d)| *d).collect();
    t.sort();
    let (median, worst) = (t[t.len() / 2], t[t.len() - 1]);
    eprintln!(
        "50 streams: /api/health x{}: median {:.2} ms, worst {:.2} ms",
        t.len(),
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    assert!(median < Duration::from_millis(10), "median {median:?}");
    assert!(worst < SEC, "worst {worst:?}");
    let h = events_status(&agent);
    assert_eq!(h["streams"]["open"], 50, "{h}");
    assert_eq!(
        proc_status(pid, "Threads:"),
        threads0,
        "no thread per stream"
    );
    // Every client is listed with what it was sent.
    let listed = h["events"]["clients"].as_array().unwrap();
    assert_eq!(listed.len(), 50);
    assert!(
        listed.iter().all(|c| c["sent"].as_u64().unwrap() >= 1),
        "{h}"
    );
    // Past max_streams: 503 at once, naming the setting; ordinary requests still served.
    let more: Vec<SseClient> = (0..14)
        .map(|_| SseClient::open(agent.port, "/api/events", ""))
        .collect();
    assert!(more.iter().all(|c| c.code == 200));
    let r = request(agent.port, "GET", "/api/events", "");
    assert_eq!(r.code, 503);
    assert!(String::from_utf8_lossy(&r.body).contains("max_streams"));
    assert_eq!(request(agent.port, "GET", "/api/readings", "").code, 200);
    let h = events_status(&agent);
    assert_eq!(h["streams"]["refused_at_cap"], 1, "{h}");
    drop(more);
    drop(clients);
    eventually(5, "the streams to close", || {
        (events_status(&agent)["streams"]["open"] == 0).then_some(())
    });
}

#[test]
fn a_client_that_stops_reading_costs_no_memory_past_the_ring_and_its_losses_are_counted() {
    let _s = serial();
    let (_dir, agent) = start(
        "sse-stalled",
        "events_buffer = 64\nevents_buffer_kb = 16\nrequest_timeout = \"30s\"",
        &pipeline(),
    );
    let pid = agent.child.id();
    // Warm up: a flood of pin changes with a reading client, so the allocator and the
    // ring have grown to their working size before the baseline.
    let mut reader = SseClient::open(agent.port, "/api/events", "");
    for i in 0..200 {
        set_motion(&agent, i % 2 == 0);
    }
    reader
        .until(10 * SEC, |e| e.json()["source"] == "gpio:17")
        .unwrap();
    drop(reader);
    let before = rss_kb(pid);
    // A client with a tiny window that reads its head and then nothing.
    let mut stalled = SseClient::open_on(small_window_socket(agent.port, 2048), "/api/events", "");
    assert_eq!(stalled.code, 200);
    let n = 1500;
    for i in 0..n {
        set_motion(&agent, i % 2 == 0);
    }
    let during = rss_kb(pid);
    let h = events_status(&agent);
    let ev = &h["events"];
    eprintln!("stalled client: RSS {before} -> {during} KiB; {ev}");
    assert!(
        during < before + 4 * 1024,
        "RSS {before} -> {during} KiB with a client that reads nothing"
    );
    assert!(ev["buffered"].as_u64().unwrap() <= 64, "{ev}");
    assert!(ev["buffered_bytes"].as_u64().unwrap() <= 16 * 1024, "{ev}");
    assert!(ev["evicted"].as_u64().unwrap() > 0, "{ev}");
    // It reads again: it is told what it lost, and the ids jump by that much.
    let mut last_id = None;
    let mut lost_note = None;
    let t_end = Instant::now() + 10 * SEC;
    while Instant::now() < t_end && lost_note.is_none() {
        match stalled.next(5 * SEC) {
            Some(Said::Comment(c)) if c.starts_with("lost ") => lost_note = Some(c),
            Some(Said::Event(e)) => last_id = e.id.or(last_id),
            Some(Said::Comment(_)) => {}
            None => break,
        }
    }
    let note = lost_note.expect("a `: lost N events` comment");
    let lost: u64 = note.split(' ').nth(1).unwrap().parse().unwrap();
    let next = stalled.next_event(5 * SEC).unwrap().id.unwrap();
    assert_eq!(next, last_id.unwrap() + lost + 1, "{note}");
    let h = events_status(&agent);
    let ev = &h["events"];
    assert!(ev["lost"].as_u64().unwrap() >= lost, "{ev}");
    assert!(ev["clients"][0]["lost"].as_u64().unwrap() >= lost, "{ev}");
}

#[test]
fn a_quiet_stream_outlives_the_idle_timeout_on_keep_alives() {
    let _s = serial();
    // Pins only, changes only: nothing flows unless a pin changes.
    let pipe = r#"
[[source]]
name = "pins"
kind = "gpio"
every = "60s"

[[stage]]
name = "quiet"
kind = "filter"
from = ["pins"]

[[sink]]
name = "live"
kind = "events"
from = ["quiet"]
"#;
    let (_dir, agent) = start(
        "sse-quiet",
        "idle_timeout = \"1s\"\nevents_keepalive = \"500ms\"",
        pipe,
    );
    let mut c = SseClient::open(agent.port, "/api/events", "");
    let t0 = Instant::now();
    let mut keepalives = 0;
    while t0.elapsed() < 3 * SEC {
        match c.next(2 * SEC) {
            Some(Said::Comment(k)) if k == "keep-alive" => keepalives += 1,
            Some(_) => {}
            None => panic!("the stream closed after {:?}", t0.elapsed()),
        }
    }
    assert!(keepalives >= 4, "{keepalives} keep-alives in 3 s");
    // Still live: an event arrives on it.
    set_motion(&agent, true);
    c.until(5 * SEC, |e| {
        let j = e.json();
        j["source"] == "gpio:17" && j["value"] == true
    })
    .expect("the pin's change on the stream");
    let h = events_status(&agent);
    assert_eq!(h["streams"]["open"], 1, "{h}");
    // A stream does not hold up the agent's stop: it ends, and the client sees the end.
    let (st, took, _) = agent.terminate();
    assert!(st.success(), "{st:?}");
    assert!(took < 5 * SEC, "stopping took {took:?} with a stream open");
    let mut rest = 0;
    while let Some(said) = c.next(5 * SEC) {
        rest += 1;
        assert!(rest < 100, "still streaming after the stop: {said:?}");
    }
}

#[cfg(feature = "agent")]
#[test]
fn an_answer_and_a_memory_the_agent_stores_are_events() {
    use fake_ollama::{FakeOllama, Step};
    use serde_json::json;
    let _s = serial();
    let dir = TempDir::new("sse-agent");
    let ollama = FakeOllama::start(&["gemma4:e2b"]);
    let (agent, port) = agent_asking(&dir, &ollama);
    let mut c = SseClient::open(port, "/api/events", "");
    ollama.push(Step::ToolCalls(vec![(
        "remember".into(),
        json!({"fact": "The greenhouse fan is on pin 22"}),
    )]));
    ollama.push(Step::Text("Noted.".into()));
    let (code, body) = post_auth(
        &agent.url("/api/ask"),
        r#"{"question": "remember where the fan is", "id": "q-sse"}"#,
        Some(TOKEN),
        30,
    );
    assert_eq!(code, 200, "{body}");
    let seen = c
        .until(10 * SEC, |e| e.event == "answer")
        .expect("the answer as an event");
    let answer = seen.last().unwrap().json();
    assert_eq!(
        (answer["id"].as_str(), answer["answer"].as_str()),
        (Some("q-sse"), Some("Noted."))
    );
    let memory = seen
        .iter()
        .find(|e| e.event == "memory")
        .expect("the stored memory, before the answer")
        .json();
    assert_eq!(memory["fact"], "The greenhouse fan is on pin 22");
    assert_eq!(memory["reinforced"], false);
}

/// An agent whose model is the scripted Ollama stand-in (it stands in for a model server
/// answering as scripted), with this file's pipeline; and its port.
#[cfg(feature = "agent")]
fn agent_asking(dir: &TempDir, ollama: &fake_ollama::FakeOllama) -> (Agent, u16) {
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        &pipeline(),
        &format!(
            "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"gemma4:e2b\"\nretries = 0\n",
            ollama.port()
        ),
    );
    (Agent::start(&cfg, port, &[]), port)
}

/// The answer's text arrives on the stream as the model writes it (`answer_part`, a few
/// pieces per event), then the whole `answer`; the stand-in streams NDJSON as Ollama does.
#[cfg(feature = "agent")]
#[test]
fn an_answer_streams_in_parts_before_the_whole() {
    use fake_ollama::{FakeOllama, Step};
    let _s = serial();
    let dir = TempDir::new("sse-parts");
    let ollama = FakeOllama::start(&["gemma4:e2b"]);
    let (agent, port) = agent_asking(&dir, &ollama);
    let mut c = SseClient::open(port, "/api/events", "");
    let pieces: Vec<String> = (0..10)
        .map(|i| format!("piece {i} of the answer; "))
        .collect();
    let whole: String = pieces.concat();
    ollama.push(Step::StreamText(pieces));
    let (code, body) = post_auth(
        &agent.url("/api/ask"),
        r#"{"question": "say it in pieces", "id": "q-parts"}"#,
        Some(TOKEN),
        30,
    );
    assert_eq!(code, 200, "{body}");
    let seen = c
        .until(10 * SEC, |e| e.event == "answer")
        .expect("the answer as an event");
    let parts: Vec<String> = seen
        .iter()
        .filter(|e| e.event == "answer_part")
        .map(|e| {
            let j = e.json();
            assert_eq!(j["id"], "q-parts");
            j["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(parts.len() >= 2, "the text came in parts: {parts:?}");
    assert_eq!(parts.concat(), whole, "the parts make the answer");
    assert_eq!(seen.last().unwrap().json()["answer"], whole.as_str());
    // The request to the model streamed (Ollama's NDJSON), and the HTTP answer is whole.
    assert_eq!(body["answer"], whole.as_str());
}

#[cfg(feature = "mqtt")]
#[test]
fn the_mqtt_connection_going_down_and_up_is_an_edge_event() {
    use common::broker::Broker;
    let _s = serial();
    let dir = TempDir::new("sse-mqtt");
    let mut broker = Broker::start(dir.path());
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        &pipeline(),
        &mqtt_section(broker.port, ""),
    );
    let agent = Agent::start(&cfg, port, &[]);
    let edge = |e: &common::raw_http::Event| e.event == "edge";
    // From the start of the run (`last_event_id=0`): the first connect is buffered.
    let mut c = SseClient::open(port, "/api/events?last_event_id=0", "");
    let up = c
        .until(10 * SEC, edge)
        .expect("connected")
        .pop()
        .unwrap()
        .json();
    assert_eq!(
        (up["edge"].as_str(), up["state"].as_str()),
        (Some("mqtt"), Some("connected"))
    );
    broker.stop();
    let down = c
        .until(10 * SEC, edge)
        .expect("disconnected")
        .pop()
        .unwrap()
        .json();
    assert_eq!(down["state"], "disconnected", "{down}");
    assert!(down["error"].is_string(), "{down}");
    broker.resume();
    let again = c
        .until(10 * SEC, edge)
        .expect("reconnected")
        .pop()
        .unwrap()
        .json();
    assert_eq!(again["state"], "connected");
    drop(agent);
}
