//! A scripted stand-in for an OpenAI-compatible server, for the cases a real one will
//! not produce on demand: an error status (503, 429) before the answer, and a stream that
//! turns to garbage or an error event halfway. Everything else is tested against the
//! real server (llama-cpp-python, `scripts/model-server.sh`).
//!
//! It speaks just enough of `/v1`: `POST /v1/chat/completions` (whole or SSE, as the
//! request's `stream` says), `GET /v1/models`. One request per connection
//! (`Connection: close`); each chat request takes the next [`Step`] of the script, and
//! an empty script answers a plain "ok".
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// What the stand-in does with the next chat request.
#[derive(Clone, Debug)]
pub enum Step {
    /// An error status with this body.
    Status(u16, String),
    /// SSE: these text pieces, then a line that is not JSON, and no `[DONE]`.
    StreamThenGarbage(Vec<String>),
    /// SSE: these text pieces, then an error object (status 200, as servers do when the
    /// model fails mid-answer).
    StreamThenError(Vec<String>, String),
}

pub struct FakeOpenAi {
    pub port: u16,
    script: Arc<Mutex<VecDeque<Step>>>,
    bodies: Arc<Mutex<Vec<Value>>>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl FakeOpenAi {
    pub fn start() -> FakeOpenAi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (s, b, h) = (script.clone(), bodies.clone(), heads.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let (s, b, h) = (s.clone(), b.clone(), h.clone());
                std::thread::spawn(move || serve(conn, &s, &b, &h));
            }
        });
        FakeOpenAi {
            port,
            script,
            bodies,
            heads,
        }
    }

    /// The base URL, up to and including `/v1`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn push(&self, step: Step) {
        self.script.lock().unwrap().push_back(step);
    }

    /// The request heads (request line and headers) received, in order.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// The chat request bodies received, in order.
    pub fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

fn chunk(text: &str) -> String {
    let c = json!({"object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
    format!("data: {c}\n\n")
}

fn serve(
    mut conn: TcpStream,
    script: &Mutex<VecDeque<Step>>,
    bodies: &Mutex<Vec<Value>>,
    heads: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut head = String::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    heads.lock().unwrap().push(head.clone());
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let reply = |conn: &mut TcpStream, status: u16, ctype: &str, body: &str| {
        let _ = write!(
            conn,
            "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    if path == "/v1/models" {
        reply(
            &mut conn,
            200,
            "application/json",
            r#"{"object":"list","data":[{"id":"tiny","object":"model"}]}"#,
        );
        return;
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    bodies.lock().unwrap().push(req.clone());
    let stream = req["stream"] == true;
    let step = script.lock().unwrap().pop_front();
    let sse_head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    match step {
        Some(Step::Status(status, body)) => reply(&mut conn, status, "application/json", &body),
        Some(Step::StreamThenGarbage(pieces)) => {
            let _ = conn.write_all(sse_head.as_bytes());
            for p in pieces {
                let _ = conn.write_all(chunk(&p).as_bytes());
            }
            let _ = conn.write_all(b"data: {\"choices\": [garbage\n\n");
        }
        Some(Step::StreamThenError(pieces, msg)) => {
            let _ = conn.write_all(sse_head.as_bytes());
            for p in pieces {
                let _ = conn.write_all(chunk(&p).as_bytes());
            }
            let e = json!({"error": {"message": msg, "type": "server_error"}});
            let _ = conn.write_all(format!("data: {e}\n\n").as_bytes());
        }
        None if stream => {
            let _ = conn.write_all(sse_head.as_bytes());
            let _ = conn.write_all(chunk("ok").as_bytes());
            let _ = conn.write_all(b"data: [DONE]\n\n");
        }
        None => {
            let r = json!({"object": "chat.completion", "choices": [{"index": 0,
                "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]});
            reply(&mut conn, 200, "application/json", &r.to_string());
        }
    }
}
