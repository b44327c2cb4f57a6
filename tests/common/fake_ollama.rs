//! A scripted stand-in for an Ollama server, for tests.
//!
//! It stands in for `ollama serve` (the HTTP API on port 11434) with a model loaded: a
//! real LLM with weights cannot run here. It speaks the same protocol: `POST /api/chat`
//! (whole replies, or NDJSON streams when `stream` is true or absent, as Ollama's default
//! is), `POST /api/embed`, `GET /api/tags`, `GET /api/version`, with Ollama's error
//! bodies `{"error":"..."}`. What the model "says" comes from a script of [`Step`]s, one
//! per chat request, in order.
//!
//! It checks every request against the API's shapes and answers 400 as the real server
//! does when one is wrong (model present; message roles; `tool_name` on tool messages;
//! `tool_calls` as `[{function:{name, arguments:{...}}}]`; tools as
//! `[{type:"function", function:{name, description, parameters}}]`; `keep_alive` a number
//! or a duration string with a unit — a bare numeric string such as `"-1"` is rejected
//! as Ollama rejects it; `format` `"json"` or a schema object). It is stricter than the
//! real server in one way: an unknown top-level key is a 400 too, so typos show up.
//! A chat or embed for a model not in its list answers 404 `model '<m>' not found`.
//! Embeddings are deterministic: 384 dimensions (another per model with
//! `set_embed_dim`) from hashed character trigrams, normalised, so similar texts get
//! similar vectors.
//!
//! It is a small HTTP/1.1 server on std (one request per connection, `Connection:
//! close`), so [`FakeOllama::stop`] really closes everything, in-flight answers
//! included, like a crashed server; [`FakeOllama::restart`] listens again on the same
//! port.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

/// Embedding dimension of the fake.
pub const EMBED_DIM: usize = 384;

/// What the fake answers to the next chat request.
#[derive(Clone, Debug)]
pub enum Step {
    /// A plain answer (one fragment then `done` if the request streams).
    Text(String),
    /// Tool calls: (name, arguments object).
    ToolCalls(Vec<(String, Value)>),
    /// An error status with this body (e.g. `{"error":"..."}`).
    Status(u16, String),
    /// Waits, then does the inner step (for timeouts).
    Delay(Duration, Box<Step>),
    /// A streamed answer in these pieces (joined if the request does not stream).
    StreamText(Vec<String>),
    /// These pieces, then an `{"error": ...}` line with status 200 (a model crash
    /// mid-answer).
    StreamErrorAfter(Vec<String>, String),
}

struct Shared {
    script: Mutex<VecDeque<Step>>,
    requests: Mutex<Vec<(String, Value)>>,
    models: Mutex<Vec<String>>,
    /// Embedding dimension per model (else `EMBED_DIM`).
    embed_dims: Mutex<Vec<(String, usize)>>,
    /// Open connections (by number), shut when the server stops; each leaves the list
    /// when it is answered, so a long run does not keep a descriptor per request.
    conns: Mutex<Vec<(u64, TcpStream)>>,
    next_conn: AtomicU64,
    /// Pause after each line of a streamed answer, in µs (a model writing tokens).
    stream_pause_us: AtomicU64,
}

struct Running {
    stop: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

pub struct FakeOllama {
    port: u16,
    shared: Arc<Shared>,
    running: Option<Running>,
}

impl FakeOllama {
    /// Starts on 127.0.0.1 on a free port, with these models installed.
    pub fn start(models: &[&str]) -> FakeOllama {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake ollama");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            models: Mutex::new(models.iter().map(|m| m.to_string()).collect()),
            embed_dims: Mutex::new(Vec::new()),
            conns: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(0),
            stream_pause_us: AtomicU64::new(2_000),
        });
        let mut f = FakeOllama {
            port,
            shared,
            running: None,
        };
        f.run(listener);
        f
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queues the answer to a later chat request.
    pub fn push(&self, step: Step) {
        self.shared.script.lock().unwrap().push_back(step);
    }

    /// Sets the pause after each line of a streamed answer (2 ms unless set: the
    /// pieces arrive apart, as a model's do); zero for a model that answers instantly.
    pub fn set_stream_pause(&self, pause: Duration) {
        self.shared
            .stream_pause_us
            .store(pause.as_micros() as u64, Ordering::Relaxed);
    }

    /// Replaces the installed models.
    pub fn set_models(&self, models: &[&str]) {
        *self.shared.models.lock().unwrap() = models.iter().map(|m| m.to_string()).collect();
    }

    /// Makes `model` embed with `dim` dimensions (a model with another dimension).
    pub fn set_embed_dim(&self, model: &str, dim: usize) {
        self.shared
            .embed_dims
            .lock()
            .unwrap()
            .push((with_tag(model), dim));
    }

    /// Every request so far, in order: (path, JSON body; `Null` for a GET, a string
    /// for a body that was not JSON).
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The bodies of the requests to `path`.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b)
            .collect()
    }

    /// Steps not used yet.
    pub fn steps_left(&self) -> usize {
        self.shared.script.lock().unwrap().len()
    }

    /// Stops listening and cuts every open connection (as a crashed server would).
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop.store(true, Ordering::SeqCst);
            // The accept loop blocks (no polling, no added latency): wake it.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            let _ = r.accept.join();
        }
        for (_, c) in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port, script and records kept.
    pub fn restart(&mut self) {
        if self.running.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("fake ollama: cannot listen on {} again: {e}", self.port),
            }
        };
        self.run(listener);
    }

    fn run(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, shared) = (stop.clone(), self.shared.clone());
        let accept = std::thread::Builder::new()
            .name("fake-ollama".into())
            .spawn(move || {
                loop {
                    let accepted = listener.accept();
                    if stop2.load(Ordering::SeqCst) {
                        return; // the listener closes when this thread ends
                    }
                    match accepted {
                        Ok((stream, _)) => {
                            let n = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                            if let Ok(c) = stream.try_clone() {
                                shared.conns.lock().unwrap().push((n, c));
                            }
                            let shared = shared.clone();
                            std::thread::spawn(move || {
                                serve(stream, &shared);
                                shared.conns.lock().unwrap().retain(|(m, _)| *m != n);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
            .unwrap();
        self.running = Some(Running { stop, accept });
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------- HTTP

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut w = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(stream);
    let Some((method, path, body)) = read_request(&mut r) else {
        return;
    };
    let parsed = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&String::from_utf8_lossy(&body))
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    shared
        .requests
        .lock()
        .unwrap()
        .push((path.clone(), parsed.clone()));
    let answer = route(&method, &path, &parsed, shared);
    let pause = Duration::from_micros(shared.stream_pause_us.load(Ordering::Relaxed));
    answer.write(&mut w, pause);
    let _ = w.flush();
    let _ = w.shutdown(Shutdown::Both);
}

fn read_request(r: &mut impl BufRead) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?;
    let path = target.split('?').next().unwrap_or(target).to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

enum Answer {
    Whole(u16, &'static str, String),
    Stream { lines: Vec<String> },
    Later(Duration, Box<Answer>),
}

impl Answer {
    fn json(status: u16, v: Value) -> Answer {
        Answer::Whole(status, "application/json; charset=utf-8", v.to_string())
    }
    fn error(status: u16, msg: &str) -> Answer {
        Answer::json(status, json!({ "error": msg }))
    }

    fn write(self, w: &mut TcpStream, pause: Duration) {
        match self {
            Answer::Whole(status, ctype, body) => {
                let _ = write!(
                    w,
                    "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    reason(status),
                    body.len()
                );
            }
            Answer::Stream { lines } => {
                let _ = write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                );
                let _ = w.flush();
                for l in lines {
                    let chunk = format!("{l}\n");
                    if write!(w, "{:x}\r\n{chunk}\r\n", chunk.len()).is_err() {
                        return;
                    }
                    let _ = w.flush();
                    if !pause.is_zero() {
                        std::thread::sleep(pause);
                    }
                }
                let _ = write!(w, "0\r\n\r\n");
            }
            Answer::Later(d, inner) => {
                std::thread::sleep(d);
                inner.write(w, pause);
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

// ---------------------------------------------------------------- API

fn route(method: &str, path: &str, body: &Value, shared: &Shared) -> Answer {
    let want = match path {
        "/api/chat" | "/api/embed" => "POST",
        "/api/tags" | "/api/version" => "GET",
        _ => return Answer::Whole(404, "text/plain", "404 page not found".into()),
    };
    if method != want && !(want == "GET" && method == "HEAD") {
        return Answer::Whole(405, "text/plain", "405 method not allowed".into());
    }
    match path {
        "/api/version" => Answer::json(200, json!({"version": "0.12.6"})),
        "/api/tags" => {
            let models: Vec<Value> = shared
                .models
                .lock()
                .unwrap()
                .iter()
                .map(|m| {
                    json!({"name": m, "model": m, "modified_at": "2025-01-01T00:00:00Z",
                           "size": 1_000_000, "digest": format!("{:064x}", fnv(m.as_bytes())),
                           "details": {"format": "gguf", "family": "fake", "parameter_size": "1B",
                                       "quantization_level": "Q4_K_M"}})
                })
                .collect();
            Answer::json(200, json!({ "models": models }))
        }
        "/api/chat" => chat(body, shared),
        _ => embed(body, shared),
    }
}

fn check_model(body: &Value, shared: &Shared) -> Result<String, Answer> {
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(Answer::error(400, "model is required")),
    };
    let installed = shared.models.lock().unwrap();
    if !installed.iter().any(|m| with_tag(m) == with_tag(&model)) {
        return Err(Answer::error(404, &format!("model '{model}' not found")));
    }
    Ok(model)
}

fn with_tag(m: &str) -> String {
    if m.rsplit('/').next().unwrap_or(m).contains(':') {
        m.to_string()
    } else {
        format!("{m}:latest")
    }
}

fn check_keys(o: &Map<String, Value>, allowed: &[&str]) -> Result<(), Answer> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Answer::error(
            400,
            &format!("fake ollama: unknown field {k:?}"),
        )),
        None => Ok(()),
    }
}

/// As Ollama: a number (seconds) or a Go duration string, which needs a unit.
fn check_keep_alive(o: &Map<String, Value>) -> Result<(), Answer> {
    match o.get("keep_alive") {
        None | Some(Value::Null) | Some(Value::Number(_)) => Ok(()),
        Some(Value::String(s)) if is_go_duration(s) => Ok(()),
        Some(Value::String(s)) if s.parse::<f64>().is_ok() => Err(Answer::error(
            400,
            &format!("time: missing unit in duration \"{s}\""),
        )),
        Some(Value::String(s)) => Err(Answer::error(
            400,
            &format!("time: invalid duration \"{s}\""),
        )),
        Some(_) => Err(Answer::error(
            400,
            "invalid keep_alive: number or duration string",
        )),
    }
}

fn is_go_duration(s: &str) -> bool {
    let mut r = s.strip_prefix(['-', '+']).unwrap_or(s);
    if r.is_empty() {
        return false;
    }
    while !r.is_empty() {
        let n = r
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(r.len());
        if n == 0 || r[..n].matches('.').count() > 1 || &r[..n] == "." {
            return false;
        }
        r = &r[n..];
        let u = r
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(r.len());
        if !matches!(&r[..u], "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h") {
            return false;
        }
        r = &r[u..];
    }
    true
}

fn bad(msg: impl Into<String>) -> Answer {
    Answer::error(400, &msg.into())
}

fn check_chat(o: &Map<String, Value>) -> Result<(), Answer> {
    check_keys(
        o,
        &[
            "model",
            "messages",
            "tools",
            "stream",
            "format",
            "keep_alive",
            "options",
            "think",
            // Ollama's context handling (api/types.go), which OpenClaw's agent sends.
            "shift",
            "truncate",
        ],
    )?;
    check_keep_alive(o)?;
    match o.get("messages") {
        None | Some(Value::Null) => {}
        Some(Value::Array(ms)) => {
            for (i, m) in ms.iter().enumerate() {
                check_message(i, m)?;
            }
        }
        Some(_) => return Err(bad("messages must be a list")),
    }
    match o.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(ts)) => {
            for (i, t) in ts.iter().enumerate() {
                let f = t.get("function");
                let ok = t.get("type").and_then(Value::as_str) == Some("function")
                    && f.and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        .is_some_and(|n| !n.is_empty())
                    && f.and_then(|f| f.get("description"))
                        .is_some_and(Value::is_string)
                    && f.and_then(|f| f.get("parameters"))
                        .is_some_and(Value::is_object);
                if !ok {
                    return Err(bad(format!(
                        "tools[{i}] must be {{type:\"function\", function:{{name, description, parameters}}}}: {t}"
                    )));
                }
            }
        }
        Some(_) => return Err(bad("tools must be a list")),
    }
    match o.get("stream") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(_) => return Err(bad("stream must be a boolean")),
    }
    match o.get("format") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(Value::String(s)) if s == "json" => {}
        Some(f) => {
            return Err(bad(format!(
                "invalid format: {f}; use \"json\" or a JSON schema"
            )));
        }
    }
    match o.get("options") {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(bad("options must be an object")),
    }
}

fn check_message(i: usize, m: &Value) -> Result<(), Answer> {
    let Some(o) = m.as_object() else {
        return Err(bad(format!("messages[{i}] must be an object")));
    };
    check_keys(
        o,
        &[
            "role",
            "content",
            "tool_calls",
            "tool_name",
            "images",
            "thinking",
        ],
    )?;
    let role = o.get("role").and_then(Value::as_str).unwrap_or("");
    if !matches!(role, "system" | "user" | "assistant" | "tool") {
        return Err(bad(format!("messages[{i}]: invalid role {role:?}")));
    }
    if o.get("content").is_some_and(|c| !c.is_string()) {
        return Err(bad(format!("messages[{i}]: content must be a string")));
    }
    let has_tool_name = o
        .get("tool_name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if role == "tool" && !has_tool_name {
        return Err(bad(format!(
            "messages[{i}]: a tool message needs tool_name"
        )));
    }
    if let Some(calls) = o.get("tool_calls") {
        let Some(calls) = calls.as_array() else {
            return Err(bad(format!("messages[{i}]: tool_calls must be a list")));
        };
        for c in calls {
            let f = c.get("function");
            let ok = f
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
                && f.and_then(|f| f.get("arguments"))
                    .is_some_and(Value::is_object);
            if !ok {
                return Err(bad(format!(
                    "messages[{i}]: tool_calls must be [{{function:{{name, arguments:{{...}}}}}}]: {c}"
                )));
            }
        }
    }
    Ok(())
}

fn chat(body: &Value, shared: &Shared) -> Answer {
    let Some(o) = body.as_object() else {
        return bad("invalid request body: not a JSON object");
    };
    if let Err(a) = check_chat(o) {
        return a;
    }
    let model = match check_model(body, shared) {
        Ok(m) => m,
        Err(a) => return a,
    };
    let stream = o.get("stream").and_then(Value::as_bool).unwrap_or(true);
    let step = shared.script.lock().unwrap().pop_front();
    match step {
        Some(s) => answer_step(s, &model, stream),
        None => Answer::error(500, "fake ollama: no scripted step left"),
    }
}

fn now() -> &'static str {
    "2025-01-01T00:00:00.000000Z"
}

fn fragment(model: &str, content: &str, calls: Option<Value>) -> Value {
    let mut msg = json!({"role": "assistant", "content": content});
    if let Some(c) = calls {
        msg["tool_calls"] = c;
    }
    json!({"model": model, "created_at": now(), "message": msg, "done": false})
}

fn final_line(model: &str, content: &str, calls: Option<Value>) -> Value {
    let mut v = fragment(model, content, calls);
    v["done"] = json!(true);
    v["done_reason"] = json!("stop");
    v["total_duration"] = json!(1_234_567_890u64);
    v["load_duration"] = json!(1_000_000u64);
    v["prompt_eval_count"] = json!(10);
    v["eval_count"] = json!(5);
    v
}

fn answer_step(step: Step, model: &str, stream: bool) -> Answer {
    let calls_json = |calls: &[(String, Value)]| {
        Value::Array(
            calls
                .iter()
                .map(|(n, a)| json!({"function": {"name": n, "arguments": a}}))
                .collect(),
        )
    };
    match step {
        Step::Delay(d, inner) => Answer::Later(d, Box::new(answer_step(*inner, model, stream))),
        Step::Status(code, body) => Answer::Whole(code, "application/json; charset=utf-8", body),
        Step::Text(t) => answer_step(Step::StreamText(vec![t]), model, stream),
        Step::StreamText(pieces) if !stream => {
            Answer::json(200, final_line(model, &pieces.concat(), None))
        }
        Step::StreamText(pieces) => {
            let mut lines: Vec<String> = pieces
                .iter()
                .map(|p| fragment(model, p, None).to_string())
                .collect();
            lines.push(final_line(model, "", None).to_string());
            Answer::Stream { lines }
        }
        Step::ToolCalls(calls) if !stream => {
            Answer::json(200, final_line(model, "", Some(calls_json(&calls))))
        }
        Step::ToolCalls(calls) => Answer::Stream {
            lines: vec![
                fragment(model, "", Some(calls_json(&calls))).to_string(),
                final_line(model, "", None).to_string(),
            ],
        },
        Step::StreamErrorAfter(pieces, err) if !stream => {
            let _ = pieces;
            Answer::error(500, &err)
        }
        Step::StreamErrorAfter(pieces, err) => {
            let mut lines: Vec<String> = pieces
                .iter()
                .map(|p| fragment(model, p, None).to_string())
                .collect();
            lines.push(json!({ "error": err }).to_string());
            Answer::Stream { lines }
        }
    }
}

fn embed(body: &Value, shared: &Shared) -> Answer {
    let Some(o) = body.as_object() else {
        return bad("invalid request body: not a JSON object");
    };
    if let Err(a) = check_keys(
        o,
        &[
            "model",
            "input",
            "keep_alive",
            "truncate",
            "options",
            "dimensions",
        ],
    )
    .and_then(|_| check_keep_alive(o))
    {
        return a;
    }
    let inputs: Vec<String> = match o.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect(),
        None => Vec::new(),
        Some(_) => return bad("invalid input type"),
    };
    let model = match check_model(body, shared) {
        Ok(m) => m,
        Err(a) => return a,
    };
    let dim = shared
        .embed_dims
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(m, _)| *m == with_tag(&model))
        .map_or(EMBED_DIM, |(_, d)| *d);
    let embeddings: Vec<Vec<f32>> = inputs.iter().map(|t| embed_text_dim(t, dim)).collect();
    Answer::json(
        200,
        json!({"model": model, "embeddings": embeddings, "total_duration": 1_000_000u64,
               "load_duration": 1000u64, "prompt_eval_count": inputs.len()}),
    )
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The fake's embedding: hashed, signed character-trigram counts of the lowercased
/// text (padded with spaces), L2-normalised. Similar texts share trigrams, so their
/// cosine similarity is high.
pub fn embed_text(text: &str) -> Vec<f32> {
    embed_text_dim(text, EMBED_DIM)
}

/// `embed_text` with `dim` dimensions.
pub fn embed_text_dim(text: &str, dim: usize) -> Vec<f32> {
    let mut v = vec![0f32; dim];
    let chars: Vec<char> = format!("  {}  ", text.to_lowercase()).chars().collect();
    for w in chars.windows(3) {
        let s: String = w.iter().collect();
        let h = fnv(s.as_bytes());
        let i = (h % dim as u64) as usize;
        v[i] += if h >> 63 == 0 { 1.0 } else { -1.0 };
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Cosine similarity of two vectors of the same length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
