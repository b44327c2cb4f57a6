//! Raw HTTP/1.1 over a socket, for tests that must see exactly what the server sends
//! (headers, encodings, 304s) and for Server-Sent Events, which ureq cannot stream.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A response read off a raw socket.
#[derive(Debug)]
pub struct Resp {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read a response head from `s` (bytes past it stay in `buf`).
fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, Vec<(String, String)>)> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let mut lines = head.split("\r\n");
    let code = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((code, headers))
}

/// One request on a fresh connection (`extra`: header lines, each ending in `\r\n`);
/// the body is read by its Content-Length (none for HEAD and 304).
pub fn request(port: u16, method: &str, target: &str, extra: &str) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let (code, headers) = read_head(&mut s, &mut buf).expect("a response head");
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let len = if method == "HEAD" || code == 304 {
        0
    } else {
        len
    };
    while buf.len() < len {
        let mut chunk = [0u8; 16384];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.truncate(len);
    Resp {
        code,
        headers,
        body: buf,
    }
}

/// One Server-Sent Event as the client parsed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

/// What the stream said: an event or a comment (`: keep-alive`, `: lost N events`).
#[derive(Clone, Debug, PartialEq)]
pub enum Said {
    Event(Event),
    Comment(String),
}

/// An open `GET /api/events` connection, parsed as an EventSource would.
pub struct SseClient {
    pub s: TcpStream,
    pub code: u16,
    pub headers: Vec<(String, String)>,
    buf: Vec<u8>,
}

impl SseClient {
    /// Open `target` (e.g. `/api/events`) with `extra` header lines.
    pub fn open(port: u16, target: &str, extra: &str) -> SseClient {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        SseClient::open_on(s, target, extra)
    }

    /// The same on a socket the test made (e.g. with a tiny receive buffer).
    pub fn open_on(mut s: TcpStream, target: &str, extra: &str) -> SseClient {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n{extra}\r\n"
        )
        .unwrap();
        let mut buf = Vec::new();
        let (code, headers) = read_head(&mut s, &mut buf).expect("a response head");
        SseClient {
            s,
            code,
            headers,
            buf,
        }
    }

    pub fn header_is(&self, name: &str, value: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(name) && v == value)
    }

    /// The next event or comment within `within`; `None` at a timeout or when closed.
    pub fn next(&mut self, within: Duration) -> Option<Said> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                let mut ev = Event {
                    id: None,
                    event: "message".into(),
                    data: String::new(),
                };
                let mut comment = None;
                let mut any = false;
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        comment.get_or_insert(c.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = Some(v.parse().unwrap());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev.event = v.to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        ev.data.push_str(v);
                        any = true;
                    }
                }
                if any {
                    return Some(Said::Event(ev));
                }
                if let Some(c) = comment {
                    return Some(Said::Comment(c));
                }
                continue; // `retry:` alone
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 16384];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// The next event (skipping comments and the stream's opening `hello`) within
    /// `within`.
    pub fn next_event(&mut self, within: Duration) -> Option<Event> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.next(left)? {
                Said::Event(e) if e.event == "hello" && e.id.is_none() => {}
                Said::Event(e) => return Some(e),
                Said::Comment(_) => {}
            }
        }
    }

    /// Events until one satisfies `want` (returned with all before it), within `within`.
    pub fn until(
        &mut self,
        within: Duration,
        mut want: impl FnMut(&Event) -> bool,
    ) -> Option<Vec<Event>> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let e = self.next_event(left)?;
            let done = want(&e);
            seen.push(e);
            if done {
                return Some(seen);
            }
        }
    }
}

/// A connected socket whose receive buffer is `bytes` (set before connecting, so the
/// window the server sees is small from the start): a client that reads slowly.
pub fn small_window_socket(port: u16, bytes: i32) -> TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns until it hands it
    // to TcpStream; the pointers are to locals of the right size.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect");
        TcpStream::from_raw_fd(fd)
    }
}
