//! An Ollama server that misbehaves on purpose, for the fault tests: it stands in for a
//! real `ollama serve` that is overloaded, half-crashed or behind a broken proxy. It
//! answers `/api/tags` and `/api/version` as the real server does, and each `/api/chat`
//! with the next [`Fault`] of its script (a plain answer when the script is empty), over
//! raw sockets so it can stop halfway through a response.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the next chat request gets.
#[derive(Clone, Debug)]
pub enum Fault {
    /// A good answer with this text.
    Answer(String),
    /// A 200 status line and headers, then nothing (the connection held open).
    HangAfterHeaders,
    /// A 200 and headers, then a valid reply one byte a second.
    Trickle,
    /// A 200, one good stream line, then bytes that are not JSON, then the end.
    GarbageMidStream,
    /// 503 with `Retry-After: <secs>` and Ollama's error body (a model still loading).
    Unavailable { retry_after: u32 },
}

struct Shared {
    script: Mutex<VecDeque<Fault>>,
    /// When each chat request arrived.
    chats: Mutex<Vec<Instant>>,
    stop: AtomicBool,
}

pub struct FaultyLlm {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FaultyLlm {
    pub fn start() -> FaultyLlm {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            chats: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("faulty-llm".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        let s = s.clone();
                        std::thread::spawn(move || serve(stream, &s));
                    }
                }
            })
            .unwrap();
        FaultyLlm { port, shared }
    }

    pub fn push(&self, f: Fault) {
        self.shared.script.lock().unwrap().push_back(f);
    }

    /// When the chat requests so far arrived.
    pub fn chats(&self) -> Vec<Instant> {
        self.shared.chats.lock().unwrap().clone()
    }
}

impl Drop for FaultyLlm {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
    }
}

fn serve(stream: TcpStream, s: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let whole = |w: &mut TcpStream, status: &str, extra: &str, body: &str| {
        let _ = write!(
            w,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        );
    };
    match path.as_str() {
        "/api/tags" => {
            return whole(
                &mut w,
                "200 OK",
                "",
                r#"{"models":[{"name":"gemma4:e2b","model":"gemma4:e2b"}]}"#,
            );
        }
        "/api/version" => return whole(&mut w, "200 OK", "", r#"{"version":"0.12.0"}"#),
        "/api/chat" => {}
        _ => return whole(&mut w, "404 Not Found", "", r#"{"error":"not found"}"#),
    }
    s.chats.lock().unwrap().push(Instant::now());
    let fault = s
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Fault::Answer("ok".into()));
    let streamed = !String::from_utf8_lossy(&body).contains(r#""stream":false"#);
    let reply = |text: &str| {
        format!(
            r#"{{"model":"gemma4:e2b","message":{{"role":"assistant","content":{}}},"done":true}}"#,
            serde_json::Value::String(text.into())
        )
    };
    let ndjson =
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n";
    match fault {
        Fault::Answer(text) if streamed => {
            let _ = writeln!(w, "{ndjson}{}", reply(&text));
        }
        Fault::Answer(text) => whole(&mut w, "200 OK", "", &reply(&text)),
        Fault::HangAfterHeaders => {
            let _ = w.write_all(ndjson.as_bytes());
            let _ = w.flush();
            hold(s, Duration::from_secs(120));
        }
        Fault::Trickle => {
            let _ = w.write_all(ndjson.as_bytes());
            for b in format!("{}\n", reply("slowly")).bytes() {
                if s.stop.load(Ordering::SeqCst) || w.write_all(&[b]).is_err() {
                    return;
                }
                let _ = w.flush();
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Fault::GarbageMidStream => {
            let _ = write!(
                w,
                "{ndjson}{{\"message\":{{\"role\":\"assistant\",\"content\":\"The \"}},\"done\":false}}\n\0\u{1}{{{{not json at all\n"
            );
        }
        Fault::Unavailable { retry_after } => whole(
            &mut w,
            "503 Service Unavailable",
            &format!("Retry-After: {retry_after}\r\n"),
            r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#,
        ),
    }
    let _ = w.flush();
}

/// Keeps the connection open (a hung server) until `d` passes or the stand-in stops.
fn hold(s: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !s.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}
