//! The `openclaw` thread: connect, handshake, then serve the gateway's invokes until the
//! connection ends; reconnect with capped backoff. One thread, one socket: after the
//! handshake the socket is non-blocking and the thread sleeps in `poll(2)` on it and on
//! its stop pipe, until a frame arrives, a deadline (tick watchdog, request timeouts)
//! comes, a command finishes on the `openclaw-cmd` thread (`worker.rs`: commands never
//! run on this one, so ticks are read while a slow one runs), or, while the agent is
//! answering a question, a short turn to collect it.

use std::io::{ErrorKind, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use super::Parts;
use super::alerts::Outgoing;
use super::backoff::Backoff;
use super::commands::{self, InvokeError, Invoked};
use super::frame::{self, GatewayError, Incoming};
use super::handshake::{self, Challenge, NodeInfo};
use super::identity::DeviceFile;
use super::requests::Requests;
use super::stats::{OpenclawStats, hit};
use super::watchdog::TickWatchdog;
use super::worker::{Job, Worker};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// The gateway's pre-auth challenge must come within this (the reference: 15 s).
const CHALLENGE_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that cannot go out within this ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a question waiting for the agent's answer is looked at.
const ANSWER_POLL: Duration = Duration::from_millis(50);
/// A gateway close while pending tells the operator something; its code and reason
/// are kept short in status.
const MAX_REASON: usize = 200;
/// Results remembered by the invoke's idempotency key, so an invoke the gateway sends
/// again (a retry) is answered again without running twice (a GPIO write, say).
const REMEMBERED: usize = 32;

/// Why a session ended.
enum End {
    Stop,
    Lost(String),
}

/// A question to the agent from an invoke, waiting for its answer.
struct Asked {
    id: String,
    node_id: String,
    /// Its idempotency key: the answer is remembered under it.
    key: String,
    answer: async_channel::Receiver<Json>,
    deadline: Instant,
}

/// The `openclaw` thread's state: its identity file, counters and stop pipe live across
/// sessions; everything of one connection (socket, watchdog, requests, waiting
/// questions) lives in `serve` and goes with it.
pub(crate) struct Client {
    pub parts: Parts,
    /// The gateway's address: `[openclaw] url`, or its beacon's when that is empty.
    pub url: String,
    pub stats: Arc<OpenclawStats>,
    pub device: DeviceFile,
    pub stop: UnixStream,
    /// Rung when `notify_human` queued an alert (non-blocking).
    pub bell: UnixStream,
    pub started: Instant,
    /// The last results by idempotency key, newest last (at most `REMEMBERED`).
    pub recent: std::collections::VecDeque<(String, Result<Json, InvokeError>)>,
    /// Runs the commands off this thread.
    pub worker: Worker,
    /// Counts connections, so a command finished after its connection ended is not
    /// answered on the next one.
    pub session: u64,
}

impl Client {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The thread's body: sessions until stopped.
    pub(crate) fn run(mut self) {
        let s = &self.parts.settings;
        let mut backoff = Backoff::new(
            Duration::from_micros(s.reconnect_min.max(1) as u64),
            Duration::from_micros(s.reconnect_max.max(1) as u64),
        );
        loop {
            hit(&self.stats.connect_attempts);
            let end = self.session(&mut backoff);
            self.stats.connected.store(false, Ordering::Relaxed);
            match end {
                End::Stop => return,
                End::Lost(why) => {
                    let wait = backoff.fail();
                    log::warn!(
                        "openclaw: {why}; reconnecting in {:.1}s",
                        wait.as_secs_f64()
                    );
                    self.stats.set_error(&why);
                    if self.sleep(wait) {
                        return;
                    }
                }
            }
        }
    }

    /// Sleep `d` unless told to stop (true).
    fn sleep(&self, d: Duration) -> bool {
        let mut fds = [libc::pollfd {
            fd: self.stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        poll(&mut fds, Some(d));
        fds[0].revents != 0
    }

    /// The token to present: the device token the gateway issued, else the shared one.
    fn token(&self) -> Result<(String, bool), String> {
        if let Some(t) = &self.device.device_token {
            return Ok((t.clone(), true));
        }
        let s = &self.parts.settings;
        if let Some(t) = &s.token {
            return Ok((t.0.clone(), false));
        }
        if let Some(p) = &s.token_file {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read [openclaw] token_file {}: {e}", p.display()))?;
            return Ok((text.lines().next().unwrap_or("").trim().to_string(), false));
        }
        Ok((String::new(), false))
    }

    fn session(&mut self, backoff: &mut Backoff) -> End {
        if self.parts.settings.url.is_empty() {
            // No url: the gateway's mDNS beacon gives it, looked for again after each
            // lost connection (the gateway may have moved).
            self.stats.looking.store(true, Ordering::Relaxed);
            let found = super::discover::look(|d| self.sleep(d), &self.url);
            self.stats.looking.store(false, Ordering::Relaxed);
            let Some(b) = found else { return End::Stop };
            self.stats.set_url(&b.url);
            *self.stats.gateway.lock().unwrap_or_else(|p| p.into_inner()) = b.display_name;
            self.url = b.url;
        }
        let mut ws = match self.open() {
            Ok(ws) => ws,
            Err(e) => {
                self.stats.pairing_required.store(false, Ordering::Relaxed);
                return End::Lost(e);
            }
        };
        let hello = match self.handshake(&mut ws) {
            Ok(h) => h,
            Err(e) => {
                let _ = ws.close(None);
                let _ = ws.flush();
                return End::Lost(e);
            }
        };
        backoff.reset();
        self.serve(ws, hello)
    }

    fn open(&self) -> Result<Ws, String> {
        let url = &self.url;
        let (host, port) = host_port(url)?;
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} has no address"))?;
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        tcp.set_read_timeout(Some(CHALLENGE_TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(WRITE_TIMEOUT)))
            .map_err(|e| format!("socket: {e}"))?;
        let max = self.parts.settings.max_frame_kb as usize * 1024;
        let config = WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        #[cfg(feature = "openclaw-tls")]
        let ws = tungstenite::client_tls_with_config(url.as_str(), tcp, Some(config), None)
            .map_err(|e| e.to_string());
        #[cfg(not(feature = "openclaw-tls"))]
        let ws = tungstenite::client::client_with_config(
            url.as_str(),
            MaybeTlsStream::Plain(tcp),
            Some(config),
        )
        .map_err(|e| e.to_string());
        let (ws, _) = ws.map_err(|e| format!("WebSocket handshake with {url} failed: {e}"))?;
        Ok(ws)
    }

    /// Challenge, signed connect, hello-ok; the device token kept.
    fn handshake(&mut self, ws: &mut Ws) -> Result<handshake::Hello, String> {
        let challenge = loop {
            match read_text(ws, &self.stats)? {
                Incoming::Event { event, payload } if event == "connect.challenge" => {
                    break Challenge::from_payload(&payload)
                        .ok_or("the gateway's connect.challenge has no nonce or ts")?;
                }
                _ => continue,
            }
        };
        let (token, is_device_token) = self.token()?;
        let names: Vec<&str> = commands::COMMANDS.iter().map(|c| c.name).collect();
        let node = NodeInfo {
            display_name: &self.parts.node_name,
            version: env!("CARGO_PKG_VERSION"),
            caps: commands::CAPS,
            commands: &names,
        };
        let params = handshake::connect_params(&self.device.identity, &challenge, &token, &node);
        // Before hello-ok the gateway takes at most 64 KiB.
        let text = frame::request("connect", "connect", &params, 64 * 1024)
            .ok_or("the connect request is over 64 KiB")?;
        ws.send(Message::text(text))
            .map_err(|e| format!("send: {e}"))?;
        let deadline = Instant::now() + self.request_timeout();
        let result = loop {
            if Instant::now() > deadline {
                return Err("no answer to connect within [openclaw] request_timeout".into());
            }
            match read_text(ws, &self.stats)? {
                Incoming::Res { id, result } if id == "connect" => break result,
                _ => continue,
            }
        };
        let payload = result.map_err(|e| self.refused(&e, is_device_token))?;
        let hello = handshake::parse_hello(&payload)?;
        if let Err(e) = self.device.set_device_token(hello.device_token.clone()) {
            log::warn!("openclaw: {e}");
        }
        let st = &self.stats;
        st.connected.store(true, Ordering::Relaxed);
        st.paired.store(true, Ordering::Relaxed);
        st.pairing_required.store(false, Ordering::Relaxed);
        hit(&st.connects);
        *st.auth_method.lock().unwrap_or_else(|p| p.into_inner()) = hello.auth_method.clone();
        *st.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        log::info!(
            "openclaw: connected to {} as node {} (protocol {}, auth {}, tick {} s)",
            self.url,
            self.device.identity.device_id,
            hello.protocol,
            hello.auth_method,
            hello.tick_interval_ms / 1000
        );
        Ok(hello)
    }

    /// The error line for a refused connect; a refused device token is forgotten, so the
    /// next attempt presents the shared token again.
    fn refused(&mut self, e: &GatewayError, is_device_token: bool) -> String {
        let d = e.details_code.as_deref().unwrap_or("");
        // Set again below while the gateway still wants the device approved.
        self.stats.pairing_required.store(false, Ordering::Relaxed);
        if is_device_token && (d.starts_with("AUTH_") || d.starts_with("DEVICE_TOKEN")) {
            let _ = self.device.set_device_token(None);
            return format!(
                "the gateway refused this node's device token ({e}); the next attempt uses [openclaw] token"
            );
        }
        if d == "AUTH_TOKEN_MISMATCH" || d == "AUTH_TOKEN_MISSING" {
            return format!(
                "the gateway refused [openclaw] token ({e}): it must be the gateway's gateway.auth.token"
            );
        }
        if e.code == "NOT_PAIRED" || d.starts_with("PAIRING") {
            self.stats.paired.store(false, Ordering::Relaxed);
            self.stats.pairing_required.store(true, Ordering::Relaxed);
            return format!(
                "the gateway has not paired this device ({e}): approve it on the gateway with `openclaw devices list` and `openclaw devices approve <requestId>`"
            );
        }
        format!("the gateway refused the connect: {e}")
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_micros(self.parts.settings.request_timeout.max(1) as u64)
    }

    /// The connected session: invokes in, results out, until the connection ends.
    fn serve(&mut self, mut ws: Ws, hello: handshake::Hello) -> End {
        let tcp = match ws.get_ref() {
            MaybeTlsStream::Plain(s) => s,
            #[cfg(feature = "openclaw-tls")]
            MaybeTlsStream::Rustls(s) => &s.sock,
            _ => return End::Lost("unexpected stream kind".into()),
        };
        if let Err(e) = tcp.set_nonblocking(true) {
            return End::Lost(format!("socket: {e}"));
        }
        let fd = tcp.as_raw_fd();
        let mut dog = TickWatchdog::new(hello.tick_interval_ms, self.now_ms());
        let mut requests = Requests::default();
        let mut asked: Vec<Asked> = Vec::new();
        let mut alerts = Outgoing::new(Instant::now());
        let mut sending = super::events::Sending::default();
        let ask_session = super::events::ask_session(&self.device.identity.device_id);
        let max_payload = hello.max_payload;
        self.session += 1;
        loop {
            // Commands the worker finished.
            for (job, invoked) in self.worker.finished() {
                if let Some(a) = self.finished(&mut ws, &mut requests, job, invoked, max_payload) {
                    asked.push(a);
                }
            }
            // Everything the socket holds.
            loop {
                match ws.read() {
                    Ok(msg) => {
                        dog.heard(self.now_ms());
                        let Message::Text(text) = msg else {
                            if let Message::Close(c) = msg {
                                let why = c
                                    .map(|c| format!("{} {}", u16::from(c.code), short(&c.reason)));
                                return End::Lost(format!(
                                    "the gateway closed the connection ({})",
                                    why.unwrap_or_default()
                                ));
                            }
                            continue;
                        };
                        match frame::parse(&text) {
                            Ok(Incoming::Event { event, payload })
                                if event == "node.invoke.request" =>
                            {
                                self.invoke(&mut ws, &mut requests, &payload, max_payload);
                            }
                            Ok(Incoming::Event { event, payload }) if event == "chat" => {
                                sending.chat(&payload, &ask_session);
                            }
                            Ok(Incoming::Res { id, result }) => {
                                let method = requests.done(&id);
                                let ours = alerts.response(
                                    &id,
                                    result.as_ref().map_err(|e| e.to_string()),
                                    &self.parts.store,
                                    &self.stats,
                                    Instant::now(),
                                ) || sending.response(
                                    &id,
                                    result.as_ref().map_err(|e| e.to_string()),
                                    &self.stats,
                                );
                                if let (Some(method), Err(e), false) = (method, result, ours) {
                                    log::warn!("openclaw: the gateway refused our {method}: {e}");
                                }
                            }
                            Ok(_) => {}
                            Err(e) => log::debug!("openclaw: skipped a frame: {e}"),
                        }
                    }
                    Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(tungstenite::Error::Capacity(e)) => {
                        hit(&self.stats.frames_refused);
                        return End::Lost(format!(
                            "a frame from the gateway was over [openclaw] max_frame_kb ({e})"
                        ));
                    }
                    Err(e) => return End::Lost(format!("connection lost: {e}")),
                }
            }
            // Answers from the agent, and questions whose invoke has timed out.
            let now = Instant::now();
            let mut i = 0;
            while i < asked.len() {
                let a = &asked[i];
                let result = match a.answer.try_recv() {
                    Ok(body) => Some(match body.get("error").and_then(Json::as_str) {
                        Some(e) => Err(InvokeError::new(InvokeError::FAILED, e)),
                        None => Ok(body),
                    }),
                    Err(async_channel::TryRecvError::Closed) => Some(Err(InvokeError::new(
                        InvokeError::UNAVAILABLE,
                        "the agent dropped the question",
                    ))),
                    Err(async_channel::TryRecvError::Empty) if now > a.deadline => {
                        Some(Err(InvokeError::new(
                            InvokeError::UNAVAILABLE,
                            "no answer within the invoke's timeout",
                        )))
                    }
                    Err(async_channel::TryRecvError::Empty) => None,
                };
                if let Some(r) = result {
                    let a = asked.swap_remove(i);
                    self.remember(&a.key, &r);
                    self.send_result(&mut ws, &mut requests, &a.id, &a.node_id, r, max_payload);
                } else {
                    i += 1;
                }
            }
            for method in requests.expired(now) {
                hit(&self.stats.requests_timed_out);
                log::warn!(
                    "openclaw: no response to our {method} within [openclaw] request_timeout"
                );
            }
            alerts.lost(|id| requests.is_open(id), now);
            self.send_alert(&mut ws, &mut requests, &mut alerts, now, max_payload);
            sending.lost(|id| requests.is_open(id));
            sending.expire(now);
            self.send_events(
                &mut ws,
                &mut requests,
                &mut sending,
                &ask_session,
                max_payload,
            );
            let now_ms = self.now_ms();
            if dog.expired(now_ms) {
                hit(&self.stats.watchdog_closes);
                let _ = ws.close(Some(CloseFrame {
                    code: 4000.into(),
                    reason: "tick timeout".into(),
                }));
                let _ = ws.flush();
                return End::Lost(format!(
                    "nothing from the gateway for {} s (2 tick intervals)",
                    2 * hello.tick_interval_ms / 1000
                ));
            }
            let want_write = match ws.flush() {
                Ok(()) => false,
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => true,
                Err(e) => return End::Lost(format!("connection lost: {e}")),
            };
            // Sleep until the socket or the stop pipe has something, or the next deadline.
            let mut until = Duration::from_millis(dog.deadline_ms().saturating_sub(now_ms) + 1);
            if let Some(d) = requests.next_deadline() {
                until = until.min(d.saturating_duration_since(Instant::now()));
            }
            if !asked.is_empty() {
                until = until.min(ANSWER_POLL);
            }
            if let Some(d) = alerts.deadline() {
                until = until.min(d.saturating_duration_since(Instant::now()));
            }
            if let Some(d) = sending.deadline() {
                until = until.min(d.saturating_duration_since(Instant::now()));
            }
            let mut fds = [
                libc::pollfd {
                    fd,
                    events: libc::POLLIN | if want_write { libc::POLLOUT } else { 0 },
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stop.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.bell.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.worker.bell_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            poll(&mut fds, Some(until));
            if fds[2].revents != 0 {
                let mut b = [0u8; 64];
                while matches!((&self.bell).read(&mut b), Ok(n) if n > 0) {}
                alerts.rang();
            }
            if fds[1].revents != 0 {
                let mut b = [0u8; 8];
                let _ = (&self.stop).read(&mut b);
                let _ = ws.close(None);
                let _ = ws.flush();
                return End::Stop;
            }
        }
    }

    /// One `node.invoke.request`: handed to the worker (answered when it finished), or
    /// answered at once (a repeat, bad params, too many waiting).
    fn invoke(&mut self, ws: &mut Ws, requests: &mut Requests, p: &Json, max_payload: usize) {
        hit(&self.stats.invokes);
        // The gateway forwards invokes only for an approved command surface.
        self.stats.approved.store(true, Ordering::Relaxed);
        let id = p["id"].as_str().unwrap_or("").to_string();
        let node_id = p["nodeId"].as_str().unwrap_or("").to_string();
        let command = p["command"].as_str().unwrap_or("");
        let key = p["idempotencyKey"].as_str().unwrap_or("");
        if let Some((_, r)) = self
            .recent
            .iter()
            .find(|(k, _)| !key.is_empty() && k == key)
        {
            log::debug!("openclaw: {command} again with the same idempotency key; not run twice");
            let r = r.clone();
            self.send_result(ws, requests, &id, &node_id, r, max_payload);
            return;
        }
        let params = match p.get("paramsJSON").and_then(Json::as_str) {
            Some(text) => serde_json::from_str(text),
            None => Ok(p.get("params").cloned().unwrap_or(json!({}))),
        };
        let params = match params {
            Ok(params) => params,
            Err(e) => {
                let e = InvokeError::new(
                    InvokeError::INVALID_PARAMS,
                    format!("paramsJSON is not JSON: {e}"),
                );
                self.send_result(ws, requests, &id, &node_id, Err(e), max_payload);
                return;
            }
        };
        let job = Job {
            session: self.session,
            id,
            node_id,
            command: command.to_string(),
            params,
            key: key.to_string(),
            timeout_ms: p["timeoutMs"].as_u64().unwrap_or(30_000),
        };
        if let Some(job) = self.worker.submit(job) {
            hit(&self.stats.commands_refused);
            let e = InvokeError::new(
                InvokeError::UNAVAILABLE,
                format!(
                    "{} commands are already waiting ([openclaw] max_queued_commands)",
                    self.parts.settings.max_queued_commands
                ),
            );
            self.send_result(ws, requests, &job.id, &job.node_id, Err(e), max_payload);
        }
    }

    /// A command the worker finished: its result sent (or a question waiting for the
    /// agent's answer).
    fn finished(
        &mut self,
        ws: &mut Ws,
        requests: &mut Requests,
        job: Job,
        invoked: Invoked,
        max_payload: usize,
    ) -> Option<Asked> {
        let result = match invoked {
            Invoked::Done(r) => r,
            Invoked::Later(answer) => {
                return (job.session == self.session).then(|| Asked {
                    id: job.id,
                    node_id: job.node_id,
                    key: job.key,
                    answer,
                    deadline: Instant::now() + Duration::from_millis(job.timeout_ms),
                });
            }
        };
        self.remember(&job.key, &result);
        // An invoke of a connection that has ended is the gateway's no longer.
        if job.session == self.session {
            self.send_result(ws, requests, &job.id, &job.node_id, result, max_payload);
        }
        None
    }

    /// Keep a result under its idempotency key. A command that did not run
    /// (NODE_NOT_READY) may run when the gateway retries.
    fn remember(&mut self, key: &str, result: &Result<Json, InvokeError>) {
        let ran = !matches!(result, Err(e) if e.code == InvokeError::NOT_READY);
        if ran && !key.is_empty() {
            if self.recent.len() >= REMEMBERED {
                self.recent.pop_front();
            }
            self.recent.push_back((key.to_string(), result.clone()));
        }
    }

    /// The oldest queued alert, when it is its turn (one in flight at a time).
    fn send_alert(
        &self,
        ws: &mut Ws,
        requests: &mut Requests,
        alerts: &mut Outgoing,
        now: Instant,
        max_payload: usize,
    ) {
        let deadline = now + self.request_timeout();
        let Some((id, params)) = alerts.next(
            &self.parts.store,
            &self.parts.settings,
            &self.parts.node_name,
            now,
            || requests.start("node.event", deadline),
        ) else {
            return;
        };
        // The tool bounds a message well below maxPayload; a frame over it would close
        // the connection, so it is left to time out and be retried instead.
        let Some(text) = frame::request(&id, "node.event", &params, max_payload) else {
            log::warn!("openclaw: an alert is over the gateway's maxPayload; not sent");
            return;
        };
        match ws.write(Message::text(text)) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => log::warn!("openclaw: cannot send an alert: {e}"),
        }
    }

    /// Queued readings, changes and observations, while few enough are unanswered, and
    /// the question for the gateway's agent, if one waits.
    fn send_events(
        &self,
        ws: &mut Ws,
        requests: &mut Requests,
        sending: &mut super::events::Sending,
        ask_session: &str,
        max_payload: usize,
    ) {
        let deadline = Instant::now() + self.request_timeout();
        let ask_by =
            Instant::now() + Duration::from_micros(self.parts.settings.ask_timeout.max(1) as u64);
        let mut frames = sending.question(
            &self.parts.events,
            ask_session,
            ask_by,
            || requests.start("node.event", deadline),
            |id, params| frame::request(id, "node.event", params, max_payload),
        );
        while let Some(text) = sending.next(
            &self.parts.events,
            &self.stats,
            || requests.start("node.event", deadline),
            |id, params| frame::request(id, "node.event", params, max_payload),
        ) {
            frames.push(text);
        }
        for text in frames {
            match ws.write(Message::text(text)) {
                Ok(()) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => log::warn!("openclaw: cannot send an event: {e}"),
            }
        }
    }

    fn send_result(
        &self,
        ws: &mut Ws,
        requests: &mut Requests,
        id: &str,
        node_id: &str,
        result: Result<Json, InvokeError>,
        max_payload: usize,
    ) {
        let error = |e: &InvokeError| json!({"id": id, "nodeId": node_id, "ok": false, "error": {"code": e.code, "message": e.message}});
        let params = match &result {
            Ok(v) => json!({"id": id, "nodeId": node_id, "ok": true, "payload": v}),
            Err(e) => {
                hit(&self.stats.invoke_errors);
                error(e)
            }
        };
        let rid = requests.start(
            "node.invoke.result",
            Instant::now() + self.request_timeout(),
        );
        let text = frame::request(&rid, "node.invoke.result", &params, max_payload).or_else(|| {
            hit(&self.stats.results_too_large);
            hit(&self.stats.invoke_errors);
            let e = InvokeError::new(
                InvokeError::TOO_LARGE,
                format!("the result is over the gateway's maxPayload ({max_payload} bytes)"),
            );
            frame::request(&rid, "node.invoke.result", &error(&e), max_payload)
        });
        if let Some(text) = text {
            // Queued when the socket is full; the loop flushes it.
            match ws.write(Message::text(text)) {
                Ok(()) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => log::warn!("openclaw: cannot send an invoke result: {e}"),
            }
        }
    }
}

/// The next text frame during the (blocking) handshake.
fn read_text(ws: &mut Ws, stats: &OpenclawStats) -> Result<Incoming, String> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return frame::parse(&t),
            Ok(Message::Close(c)) => {
                return Err(format!(
                    "the gateway closed the connection during the handshake ({})",
                    c.map(|c| format!("{} {}", u16::from(c.code), short(&c.reason)))
                        .unwrap_or_default()
                ));
            }
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                return Err("the gateway sent no connect.challenge within 15 s".into());
            }
            Err(tungstenite::Error::Capacity(e)) => {
                hit(&stats.frames_refused);
                return Err(format!(
                    "a frame from the gateway was over [openclaw] max_frame_kb ({e})"
                ));
            }
            Err(e) => return Err(format!("connection lost during the handshake: {e}")),
        }
    }
}

/// A close reason from the gateway cut to `MAX_REASON` bytes (at a character boundary).
fn short(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// `poll(2)`, retried on EINTR; `None` waits forever.
fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) {
    let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
    loop {
        // SAFETY: `fds` is a valid slice of pollfd for the call's duration.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n >= 0 || std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
            return;
        }
    }
}

/// Host and port of a `ws://` / `wss://` url (ports 80 and 443 by default).
fn host_port(url: &str) -> Result<(String, u16), String> {
    let (rest, default) = if let Some(r) = url.strip_prefix("ws://") {
        (r, 80)
    } else if let Some(r) = url.strip_prefix("wss://") {
        if !cfg!(feature = "openclaw-tls") {
            return Err("wss:// needs a build with the openclaw-tls feature".into());
        }
        (r, 443)
    } else {
        return Err(format!("{url} is not a ws:// or wss:// address"));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, tail) = v6.split_once(']').ok_or("unclosed [ in the url")?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port in {url}"))?,
            None => default,
        };
        return Ok((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Ok((
            h.to_string(),
            p.parse().map_err(|_| format!("bad port in {url}"))?,
        )),
        None => Ok((authority.to_string(), default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_REASON);
        let cut = short(&long);
        assert!(cut.len() <= MAX_REASON && cut.chars().all(|c| c == 'é'));
        assert_eq!(short("bye"), "bye");
    }

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(
            host_port("ws://127.0.0.1:18789").unwrap(),
            ("127.0.0.1".into(), 18789)
        );
        assert_eq!(
            host_port("ws://gw.local/x").unwrap(),
            ("gw.local".into(), 80)
        );
        assert_eq!(host_port("ws://[::1]:9").unwrap(), ("::1".into(), 9));
        assert!(host_port("http://x").is_err());
        assert!(host_port("ws://x:notaport").is_err());
    }
}
