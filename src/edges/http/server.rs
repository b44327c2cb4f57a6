//! The server on the `http` thread: one smol `LocalExecutor` accepts connections, reads
//! each request within its bounds and timeouts, answers health itself, and hands every
//! other request to a worker lane.
//!
//! What it guarantees:
//! - at most `max_connections` connections; at the cap the longest-idle one (waiting for
//!   a request) is closed to make room, and when none is idle the newcomer gets a 503
//!   at once (nothing awaited, nothing registered);
//! - a head is never buffered past `max_request_line_kb + max_header_kb`, a body never
//!   past `max_body_kb` (refused from its declared length, before it is read);
//! - a connection waiting for a request closes after `idle_timeout`; a request whose
//!   head and body have not arrived within `request_timeout` of its first byte gets 408,
//!   and a response not taken within it closes the connection;
//! - Nagle is off, and each response goes out in one write;
//! - after a refusal the connection reads (and drops) what the client still sends for a
//!   moment before closing, so the client sees the answer rather than a reset;
//! - an event stream leaves the connection table when it starts (it is neither idle nor
//!   counted against `max_connections`) and counts against `max_streams` instead, so
//!   streams never take the room of ordinary requests; at that cap a new stream gets a
//!   503. The idle timeout does not apply to it; each write must be taken within
//!   `request_timeout` (else it closes: the browser reconnects and resumes), and its
//!   socket's send buffer is kept small (`STREAM_SNDBUF`), so a client that stops
//!   reading holds little in the kernel and soon falls behind the ring instead; one
//!   that vanished from the network is closed by the kernel once what was sent stays
//!   unacknowledged for `request_timeout` (`TCP_USER_TIMEOUT`).

use std::cell::{Cell, RefCell};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, LocalExecutor, Timer};

use super::HttpView;
use super::assets;
use super::health;
use super::request::Call;
use super::request::{self, HeadScan, Limits, Method, Refusal, Request, short};
use super::response::{CONTINUE, Response, err};
use super::routes::{self, Blocking, Handler};
use super::stats::HttpStats;
use super::stream::{self, StreamBody};
use super::workers::{Job, Lanes};

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 8 * 1024;
/// After a refusal: how long, and how much, the client's remaining input is drained.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;
/// A failing `accept` (out of file descriptors) is retried after this, logged at most
/// once per `ACCEPT_LOG_EVERY`.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);
/// Connections accepted before the other tasks get a turn.
const ACCEPT_BATCH: usize = 16;
/// A stream socket's send buffer (the kernel doubles it): what a stalled client can
/// hold of its stream in the kernel before it starts to fall behind the ring.
const STREAM_SNDBUF: libc::c_int = 16 * 1024;
/// A stream's write buffer above this capacity (after a long answer) is let go.
const STREAM_BUF_KEEP: usize = 64 * 1024;

/// One open connection, as the admission check sees it.
struct Conn {
    id: u64,
    stream: Rc<Async<TcpStream>>,
    /// Since when it waits for a request; `None` while a request is in progress.
    idle_since: Option<Instant>,
}

/// The server's state, view by its tasks on the `http` thread.
struct Server {
    view: Arc<HttpView>,
    lanes: Lanes,
    limits: Limits,
    max_connections: usize,
    max_streams: usize,
    /// Streams open now.
    streams: Cell<usize>,
    idle_timeout: Duration,
    request_timeout: Duration,
    conns: RefCell<Vec<Conn>>,
    next_id: Cell<u64>,
    pinger: health::Pinger,
}

/// Run until `stop` closes; then every connection is dropped (closed) with the executor.
pub(crate) fn run(
    listener: Async<TcpListener>,
    view: Arc<HttpView>,
    lanes: Lanes,
    stop: async_channel::Receiver<()>,
) {
    let h = &view.settings.http;
    let micros = |us: i64| Duration::from_micros(us.max(0) as u64);
    let server = Rc::new(Server {
        limits: Limits::from_settings(h),
        max_connections: h.max_connections.max(1) as usize,
        max_streams: h.max_streams.max(1) as usize,
        streams: Cell::new(0),
        idle_timeout: micros(h.idle_timeout),
        request_timeout: micros(h.request_timeout),
        view: view.clone(),
        lanes,
        conns: RefCell::new(Vec::new()),
        next_id: Cell::new(0),
        pinger: health::Pinger::default(),
    });
    let ex = LocalExecutor::new();
    smol::block_on(ex.run(smol::future::or(
        async {
            let _ = stop.recv().await;
        },
        accept_loop(&ex, &listener, server),
    )));
}

async fn accept_loop(ex: &LocalExecutor<'_>, listener: &Async<TcpListener>, srv: Rc<Server>) {
    let mut last_log: Option<Instant> = None;
    loop {
        if listener.readable().await.is_err() {
            Timer::after(ACCEPT_RETRY).await;
            continue;
        }
        // Take the connections waiting, a batch at a time: between batches the new
        // connections' tasks run and read what their clients sent, so a burst does not
        // evict a connection (as idle) before it had a chance to show its request.
        for _ in 0..ACCEPT_BATCH {
            match listener.get_ref().accept() {
                Ok((stream, _)) => srv.admit(ex, stream),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    if last_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                        log::warn!("http: accept failed: {e} (retrying)");
                        last_log = Some(Instant::now());
                    }
                    Timer::after(ACCEPT_RETRY).await;
                    break;
                }
            }
        }
        smol::future::yield_now().await;
    }
}

/// How a read ended.
enum Got {
    Data,
    Timeout,
    Closed,
}

/// Read at most `room` more bytes into `buf`, unless `timer` fires first.
async fn read_some(
    stream: &Async<TcpStream>,
    buf: &mut Vec<u8>,
    room: usize,
    timer: &mut Timer,
) -> Got {
    let old = buf.len();
    buf.resize(old + room.clamp(1, READ_CHUNK), 0);
    let mut reader = stream;
    let got = smol::future::or(async { Some(reader.read(&mut buf[old..]).await) }, async {
        timer.await;
        None
    })
    .await;
    let n = match got {
        Some(Ok(n)) => n,
        Some(Err(_)) => 0,
        None => {
            buf.truncate(old);
            return Got::Timeout;
        }
    };
    buf.truncate(old + n);
    if n == 0 { Got::Closed } else { Got::Data }
}

/// Write all of `bytes` unless `timer` fires first: `None` when it did, `Some(false)`
/// when the peer left.
async fn write_all(stream: &Async<TcpStream>, bytes: &[u8], timer: &mut Timer) -> Option<bool> {
    let mut writer = stream;
    smol::future::or(
        async { Some(writer.write_all(bytes).await.is_ok()) },
        async {
            timer.await;
            None
        },
    )
    .await
}

/// The connection waiting longest for a request, to close for a newcomer. One whose
/// request has arrived but not been read yet (its task has not run) is not idle.
fn idlest(conns: &mut [Conn]) -> Option<usize> {
    loop {
        let i = conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.idle_since.map(|t| (i, t)))
            .min_by_key(|&(_, t)| t)
            .map(|(i, _)| i)?;
        if !has_input(&conns[i].stream) {
            return Some(i);
        }
        conns[i].idle_since = None;
    }
}

/// Whether the client has sent something (or closed) already: a request that is here is
/// read at once, and its connection never counts as idle.
fn has_input(stream: &Async<TcpStream>) -> bool {
    let mut probe = [0u8; 1];
    !matches!(stream.get_ref().peek(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Removes its connection from the table when the connection's task ends.
struct Slot {
    srv: Rc<Server>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut conns = self.srv.conns.borrow_mut();
        conns.retain(|c| c.id != self.id);
        self.srv.view.stats.set_open(conns.len());
    }
}

/// What to do with a connection after a request.
enum Next {
    KeepAlive,
    Close,
}

/// What a request turned into: a response to write, or a stream to run.
enum Dispatched {
    Response(Response),
    Stream(Box<dyn StreamBody>),
}

/// Holds a stream's place under `max_streams` while it runs.
struct StreamSlot<'a> {
    srv: &'a Server,
}

impl Drop for StreamSlot<'_> {
    fn drop(&mut self) {
        let n = self.srv.streams.get() - 1;
        self.srv.streams.set(n);
        self.srv
            .stats()
            .streams_open
            .store(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Resolves when the client closes its end (or the socket fails); whatever it sends on
/// a stream's connection meanwhile is read and dropped.
async fn peer_gone(stream: &Async<TcpStream>) {
    let mut scratch = [0u8; 512];
    let mut reader = stream;
    loop {
        match reader.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

impl Server {
    fn stats(&self) -> &HttpStats {
        &self.view.stats
    }

    /// Take a new connection, or refuse it at the cap.
    fn admit(self: &Rc<Self>, ex: &LocalExecutor<'_>, stream: TcpStream) {
        HttpStats::bump(&self.stats().accepted);
        // Responses go out in one write; no point waiting for an ACK before sending.
        let _ = stream.set_nodelay(true);
        let mut conns = self.conns.borrow_mut();
        if conns.len() >= self.max_connections {
            match idlest(&mut conns) {
                Some(i) => {
                    // Its task sees end of input and ends; it is out of the count now.
                    let victim = conns.swap_remove(i);
                    let _ = victim.stream.get_ref().shutdown(Shutdown::Both);
                    HttpStats::bump(&self.stats().evicted_idle);
                }
                None => {
                    drop(conns);
                    HttpStats::bump(&self.stats().refused_at_cap);
                    refuse_at_cap(stream, self.max_connections);
                    return;
                }
            }
        }
        let stream = match Async::new(stream) {
            Ok(s) => Rc::new(s),
            Err(e) => {
                log::warn!("http: cannot register a connection: {e}");
                return;
            }
        };
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        conns.push(Conn {
            id,
            stream: stream.clone(),
            idle_since: Some(Instant::now()),
        });
        self.stats().set_open(conns.len());
        drop(conns);
        let srv = self.clone();
        ex.spawn(async move {
            let slot = Slot { srv, id };
            let mut buf = Vec::new();
            while let Next::KeepAlive = slot.srv.serve_one(&stream, &mut buf, id).await {}
        })
        .detach();
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(c) = self.conns.borrow_mut().iter_mut().find(|c| c.id == id) {
            c.idle_since = idle.then(Instant::now);
        }
    }

    /// Read one request, answer it, and say whether the connection stays open.
    async fn serve_one(&self, stream: &Async<TcpStream>, buf: &mut Vec<u8>, id: u64) -> Next {
        let limits = &self.limits;
        // Wait for a request's first byte (unless a pipelined one is already here).
        // No buffer is held meanwhile: an idle connection costs its socket and task only.
        if buf.is_empty() && !has_input(stream) {
            self.set_idle(id, true);
            let mut idle = Timer::after(self.idle_timeout);
            let ready = smol::future::or(async { Some(stream.readable().await) }, async {
                (&mut idle).await;
                None
            })
            .await;
            match ready {
                Some(Ok(())) => {}
                Some(Err(_)) => return Next::Close,
                None => {
                    HttpStats::bump(&self.stats().idle_timeouts);
                    return Next::Close;
                }
            }
        }
        // A request is coming: from now on this connection is not one to close for room.
        self.set_idle(id, false);
        let mut deadline = Timer::after(self.request_timeout);
        let mut scan = HeadScan::default();
        let head_len = loop {
            match scan.scan(buf, limits) {
                Ok(Some(n)) => break n,
                Ok(None) => {}
                Err(r) => return self.refuse(stream, r).await,
            }
            let room = limits.max_head_bytes().saturating_sub(buf.len());
            match read_some(stream, buf, room, &mut deadline).await {
                Got::Data => {}
                Got::Closed => return Next::Close,
                Got::Timeout => return self.refuse(stream, Refusal::Timeout).await,
            }
        };
        HttpStats::bump(&self.stats().requests);
        let req = match request::parse_head(&buf[..head_len], limits) {
            Ok(r) => r,
            Err(r) => return self.refuse(stream, r).await,
        };
        buf.drain(..head_len);
        let want = req.content_length;
        if want > buf.len() && req.expect_continue {
            match write_all(stream, CONTINUE, &mut deadline).await {
                Some(true) => {}
                Some(false) => return Next::Close,
                None => return self.refuse(stream, Refusal::Timeout).await,
            }
        }
        while buf.len() < want {
            let room = want - buf.len();
            match read_some(stream, buf, room, &mut deadline).await {
                Got::Data => {}
                Got::Closed => return Next::Close,
                Got::Timeout => return self.refuse(stream, Refusal::Timeout).await,
            }
        }
        let body: Vec<u8> = buf.drain(..want).collect();
        let response = match self.dispatch(&req, body).await {
            Dispatched::Response(r) => r,
            Dispatched::Stream(body) => {
                log::debug!(
                    "http {} {} -> stream",
                    req.method.as_str(),
                    short(&req.path)
                );
                // A stream reads no more requests: let the read buffer (8 KiB once a
                // head was read into it) go for as long as it runs.
                *buf = Vec::new();
                return self
                    .serve_stream(stream, id, body, req.method == Method::Head)
                    .await;
            }
        };
        log::debug!(
            "http {} {} -> {}",
            req.method.as_str(),
            short(&req.path),
            response.code
        );
        let close = !req.keep_alive || response.close;
        let bytes = response.encode(req.method == Method::Head, close);
        drop(response);
        let mut deadline = Timer::after(self.request_timeout);
        match write_all(stream, &bytes, &mut deadline).await {
            Some(true) => {}
            Some(false) => return Next::Close,
            None => {
                HttpStats::bump(&self.stats().write_timeouts);
                return Next::Close;
            }
        }
        if close {
            let _ = stream.get_ref().shutdown(Shutdown::Write);
            return Next::Close;
        }
        if buf.is_empty() {
            *buf = Vec::new();
        }
        Next::KeepAlive
    }

    /// Route the request: health, assets and streams here, the rest on a worker lane.
    async fn dispatch(&self, req: &Request, body: Vec<u8>) -> Dispatched {
        let (route, mut call) = match routes::resolve(req.method, &req.path, &req.query) {
            Ok(found) => found,
            Err(reply) => return Dispatched::Response(reply.into_response()),
        };
        call.body = body;
        call.auth = req.auth.clone();
        call.session = req.session.clone();
        call.csrf = req.csrf.clone();
        call.conditions = req.conditions.clone();
        Dispatched::Response(match route.handler {
            Handler::Health => health::health(&self.view, &self.pinger)
                .await
                .into_response(),
            #[cfg(feature = "agent")]
            Handler::Ask => super::ask::ask(&self.view, &call).await.into_response(),
            Handler::Work(f) => self.hand_off(&self.lanes.work, "http-work", f, call).await,
            Handler::Slow(f) => self.hand_off(self.lanes.slow(), "http-slow", f, call).await,
            Handler::Asset(asset) => assets::serve(asset, &call.conditions),
            Handler::Stream(open) => {
                if self.streams.get() >= self.max_streams {
                    HttpStats::bump(&self.stats().streams_refused_at_cap);
                    let mut r = err(
                        503,
                        format!(
                            "too many event streams ({} open, [http] max_streams); try again",
                            self.max_streams
                        ),
                    )
                    .into_response();
                    r.close = true;
                    r
                } else {
                    match open(&self.view, &call) {
                        Ok(body) => return Dispatched::Stream(body),
                        Err(reply) => reply.into_response(),
                    }
                }
            }
        })
    }

    /// Run an opened stream on this connection until the client leaves, a write is not
    /// taken in time, or the stream ends; then close.
    async fn serve_stream(
        &self,
        stream: &Async<TcpStream>,
        id: u64,
        mut body: Box<dyn StreamBody>,
        head_only: bool,
    ) -> Next {
        // Out of the connection table: not idle, not under max_connections.
        {
            let mut conns = self.conns.borrow_mut();
            conns.retain(|c| c.id != id);
            self.stats().set_open(conns.len());
        }
        let n = self.streams.get() + 1;
        self.streams.set(n);
        let _slot = StreamSlot { srv: self };
        self.stats()
            .streams_open
            .store(n as u64, std::sync::atomic::Ordering::Relaxed);
        HttpStats::bump(&self.stats().streams_opened);
        set_send_buffer(stream.get_ref(), STREAM_SNDBUF);
        set_user_timeout(stream.get_ref(), self.request_timeout);
        let mut deadline = Timer::after(self.request_timeout);
        let head = stream::head(body.content_type());
        if write_all(stream, &head, &mut deadline).await != Some(true) || head_only {
            let _ = stream.get_ref().shutdown(Shutdown::Write);
            return Next::Close;
        }
        let mut out = Vec::new();
        let opened = Instant::now();
        loop {
            out.clear();
            let more = smol::future::or(async { Some(body.next(&mut out).await) }, async {
                peer_gone(stream).await;
                None
            })
            .await;
            if more != Some(true) {
                break;
            }
            let mut deadline = Timer::after(self.request_timeout);
            match write_all(stream, &out, &mut deadline).await {
                Some(true) => {}
                Some(false) => break,
                None => {
                    HttpStats::bump(&self.stats().stream_write_timeouts);
                    break;
                }
            }
            if out.capacity() > STREAM_BUF_KEEP {
                out = Vec::new();
            }
        }
        log::debug!("http: a stream closed after {:?}", opened.elapsed());
        let _ = stream.get_ref().shutdown(Shutdown::Both);
        Next::Close
    }

    async fn hand_off(
        &self,
        lane: &async_channel::Sender<Job>,
        name: &str,
        handler: Blocking,
        call: Call,
    ) -> Response {
        let (tx, rx) = async_channel::bounded(1);
        let job = Job {
            handler,
            call,
            reply: tx,
        };
        match lane.try_send(job) {
            Ok(()) => {}
            Err(async_channel::TrySendError::Full(_)) => {
                HttpStats::bump(&self.stats().busy);
                let msg = format!(
                    "busy: {name} has {} requests waiting; try again",
                    lane.len()
                );
                return err(503, msg).into_response();
            }
            Err(async_channel::TrySendError::Closed(_)) => {
                return err(500, format!("{name} has stopped")).into_response();
            }
        }
        match rx.recv().await {
            Ok(r) => r,
            Err(_) => err(500, format!("{name} stopped before answering")).into_response(),
        }
    }

    /// Answer a refused request, then close (after draining what the client still sends).
    async fn refuse(&self, stream: &Async<TcpStream>, why: Refusal) -> Next {
        HttpStats::bump(why.counter(self.stats()));
        log::debug!("http: refused a request: {why:?}");
        let mut response = why.reply(&self.limits).into_response();
        response.close = true;
        let mut deadline = Timer::after(LINGER);
        if write_all(stream, &response.encode(false, true), &mut deadline).await != Some(true) {
            return Next::Close;
        }
        let _ = stream.get_ref().shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let mut drained = 0;
        while drained < LINGER_BYTES {
            sink.clear();
            match read_some(stream, &mut sink, READ_CHUNK, &mut deadline).await {
                Got::Data => drained += sink.len(),
                Got::Closed | Got::Timeout => break,
            }
        }
        Next::Close
    }
}

/// Set a socket's send buffer (`SO_SNDBUF`); a failure leaves the default.
fn set_send_buffer(stream: &TcpStream, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a socket we own, with a pointer to a local int and its size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Have the kernel close a socket whose sent data stays unacknowledged for `after`
/// (`TCP_USER_TIMEOUT`): a phone that dropped off the network without closing frees
/// its stream within a keep-alive and `after`, rather than the ~15 minutes of TCP's
/// retransmissions. A failure leaves the default.
fn set_user_timeout(stream: &TcpStream, after: Duration) {
    use std::os::fd::AsRawFd;
    let ms = after.as_millis().min(u32::MAX as u128) as libc::c_uint;
    // SAFETY: setsockopt on a socket we own, with a pointer to a local uint and its size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&ms as *const libc::c_uint).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        );
    }
}

/// The 503 for a connection past the cap: written without waiting (a fresh socket's
/// buffer takes it), after dropping whatever request already arrived, so the client
/// reads the answer rather than a reset.
fn refuse_at_cap(stream: TcpStream, cap: usize) {
    let _ = stream.set_nonblocking(true);
    let mut sink = [0u8; 2048];
    for _ in 0..8 {
        match std::io::Read::read(&mut &stream, &mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let mut response = err(
        503,
        format!("too many connections ({cap} open, [http] max_connections); try again"),
    )
    .into_response();
    response.close = true;
    let _ = std::io::Write::write_all(&mut &stream, &response.encode(false, true));
    let _ = stream.shutdown(Shutdown::Write);
}
