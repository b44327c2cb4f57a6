//! Reading a request within bounds, without I/O (the server feeds the bytes): an
//! incremental scan that finds the end of the head and refuses it as soon as a bound is
//! passed, httparse for the head itself, the query string, and short echoes of what a
//! client sent.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;

use serde_json::json;

use super::response::{Reply, err};
use super::stats::HttpStats;
use crate::config::settings::HttpSettings;

/// The bounds on one request, from `[http]`. The server never holds more than
/// `max_line + max_header` bytes of a head, nor more than `max_body` of a body.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub max_line: usize,
    pub max_header: usize,
    pub max_headers: usize,
    pub max_body: usize,
}

impl Limits {
    pub(crate) fn from_settings(h: &HttpSettings) -> Limits {
        Limits {
            max_line: h.max_request_line_kb as usize * 1024,
            max_header: h.max_header_kb as usize * 1024,
            max_headers: h.max_headers as usize,
            max_body: h.max_body_kb as usize * 1024,
        }
    }

    /// The most bytes of a head read before the scan decides: the request line (with a
    /// CR) and the header block.
    pub(crate) fn max_head_bytes(&self) -> usize {
        self.max_line + 1 + self.max_header
    }
}

/// Request methods this server tells apart; anything else is `Other` (answered 404 or 405).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Other,
}

impl Method {
    fn parse(m: &str) -> Method {
        match m {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other => "this method",
        }
    }
}

/// Why a request is refused before any handler sees it. Each has its status code, a
/// message naming the setting to change, and its counter in `HttpStats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 414: the request line is past `max_request_line_kb`.
    LineTooLong,
    /// 431: the header block is past `max_header_kb`.
    HeadersTooLarge,
    /// 431: more than `max_headers` header fields.
    TooManyHeaders,
    /// 413: the declared body is past `max_body_kb`.
    BodyTooLarge,
    /// 411: a transfer-coded (chunked) body; only Content-Length bodies are read.
    Chunked,
    /// 400: not an HTTP/1.x request head.
    Malformed(&'static str),
    /// 408: head and body did not arrive within `request_timeout`.
    Timeout,
}

impl Refusal {
    pub(crate) fn reply(self, limits: &Limits) -> Reply {
        let kib = |b: usize| b / 1024;
        match self {
            Refusal::LineTooLong => err(
                414,
                format!(
                    "request line longer than {} KiB ([http] max_request_line_kb)",
                    kib(limits.max_line)
                ),
            ),
            Refusal::HeadersTooLarge => err(
                431,
                format!(
                    "request headers larger than {} KiB ([http] max_header_kb)",
                    kib(limits.max_header)
                ),
            ),
            Refusal::TooManyHeaders => err(
                431,
                format!(
                    "more than {} request headers ([http] max_headers)",
                    limits.max_headers
                ),
            ),
            Refusal::BodyTooLarge => err(
                413,
                format!(
                    "request body larger than {} KiB ([http] max_body_kb)",
                    kib(limits.max_body)
                ),
            ),
            Refusal::Chunked => err(
                411,
                "chunked request bodies are not supported: send the body with a Content-Length",
            ),
            Refusal::Malformed(why) => err(400, format!("not an HTTP/1.1 request: {why}")),
            Refusal::Timeout => err(
                408,
                "the request did not arrive in time ([http] request_timeout)",
            ),
        }
    }

    pub(crate) fn counter(self, stats: &HttpStats) -> &AtomicU64 {
        match self {
            Refusal::LineTooLong => &stats.request_line_too_long,
            Refusal::HeadersTooLarge => &stats.headers_too_large,
            Refusal::TooManyHeaders => &stats.too_many_headers,
            Refusal::BodyTooLarge => &stats.body_too_large,
            Refusal::Chunked => &stats.chunked_body,
            Refusal::Malformed(_) => &stats.malformed,
            Refusal::Timeout => &stats.request_timeouts,
        }
    }
}

/// Finds the end of a request head as its bytes arrive, looking at each byte once, and
/// refuses it as soon as the request line, the header block or the number of header
/// lines passes its bound, so a head is never buffered past `Limits::max_head_bytes`.
/// Empty lines before the request line (allowed by RFC 9112) count toward the line.
#[derive(Debug, Default)]
pub(crate) struct HeadScan {
    /// Bytes looked at so far.
    pos: usize,
    /// Start of the line being scanned.
    line_start: usize,
    /// End of the request line (just past its `\n`), once seen.
    line_end: Option<usize>,
    /// Header lines seen.
    fields: usize,
}

impl HeadScan {
    /// Scan what `buf` holds now (it only ever grows between calls): `Some(n)` when the
    /// head is `buf[..n]`, `None` when more bytes are needed.
    pub(crate) fn scan(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, Refusal> {
        while let Some(nl) = buf[self.pos..].iter().position(|&b| b == b'\n') {
            let end = self.pos + nl + 1;
            let line = trim_eol(&buf[self.line_start..end]);
            self.pos = end;
            self.line_start = end;
            match self.line_end {
                None if line.is_empty() => {} // a blank line before the request line
                None => {
                    if trim_eol(&buf[..end]).len() > limits.max_line {
                        return Err(Refusal::LineTooLong);
                    }
                    self.line_end = Some(end);
                }
                Some(le) => {
                    if end - le > limits.max_header {
                        return Err(Refusal::HeadersTooLarge);
                    }
                    if line.is_empty() {
                        return Ok(Some(end));
                    }
                    self.fields += 1;
                    if self.fields > limits.max_headers {
                        return Err(Refusal::TooManyHeaders);
                    }
                }
            }
        }
        self.pos = buf.len();
        match self.line_end {
            // One more byte may still be the CR of a line of exactly `max_line`.
            None if buf.len() > limits.max_line + 1 => Err(Refusal::LineTooLong),
            Some(le) if buf.len() - le > limits.max_header => Err(Refusal::HeadersTooLarge),
            _ => Ok(None),
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A request head, parsed and checked; its body is read next (`content_length` bytes).
#[derive(Debug)]
pub(crate) struct Request {
    pub method: Method,
    /// The path as sent (still percent-encoded), without the query.
    pub path: String,
    /// The raw query string (after `?`), empty when none.
    pub query: String,
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    pub content_length: usize,
    /// `Expect: 100-continue`: the client waits for a go-ahead before sending the body.
    pub expect_continue: bool,
    pub auth: Option<String>,
    /// The dashboard's session cookie (`session::COOKIE`), if sent.
    pub session: Option<String>,
    /// `X-CSRF-Token`, as sent.
    pub csrf: Option<String>,
    /// The headers some handlers read (assets, event streams).
    pub conditions: Conditions,
}

/// The request headers that assets and event streams read, each bounded by
/// `max_header_kb` like every header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Conditions {
    /// `Accept-Encoding` names gzip (and not with `q=0`).
    pub accept_gzip: bool,
    /// `If-None-Match`, as sent.
    pub if_none_match: Option<String>,
    /// `Last-Event-ID`, as sent (an event stream resumes after it).
    pub last_event_id: Option<String>,
}

/// Whether an `Accept-Encoding` value accepts gzip: `gzip` or `*` listed, not with `q=0`.
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|part| {
        let mut it = part.split(';').map(str::trim);
        let coding = it.next().unwrap_or("");
        let refused = it.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// Parse a complete head (as `HeadScan` delimited it) and check what it declares.
pub(crate) fn parse_head(head: &[u8], limits: &Limits) -> Result<Request, Refusal> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(Refusal::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooManyHeaders),
        Err(httparse::Error::HeaderName) => return Err(Refusal::Malformed("invalid header name")),
        Err(httparse::Error::HeaderValue) => {
            return Err(Refusal::Malformed("invalid header value"));
        }
        Err(httparse::Error::Version) => return Err(Refusal::Malformed("invalid HTTP version")),
        Err(_) => return Err(Refusal::Malformed("invalid request line")),
    }
    let method = Method::parse(req.method.unwrap_or(""));
    let target = req.path.unwrap_or("/");
    let http11 = req.version == Some(1);
    let mut keep_alive = http11;
    let mut content_length: Option<u64> = None;
    let mut expect_continue = false;
    let mut auth = None;
    let mut session = None;
    let mut csrf = None;
    let mut conditions = Conditions::default();
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<u64>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(Refusal::Malformed("Content-Length is not a number"))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(Refusal::Malformed("two different Content-Length headers"));
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Refusal::Chunked);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if h.name.eq_ignore_ascii_case("authorization") {
            auth = Some(value.to_string());
        } else if h.name.eq_ignore_ascii_case("cookie") {
            if let Some(v) = super::session::cookie_value(value) {
                session = Some(v.to_string());
            }
        } else if h.name.eq_ignore_ascii_case(super::session::CSRF_HEADER) {
            csrf = Some(value.to_string());
        } else if h.name.eq_ignore_ascii_case("accept-encoding") {
            conditions.accept_gzip |= accepts_gzip(value);
        } else if h.name.eq_ignore_ascii_case("if-none-match") {
            conditions.if_none_match = Some(value.to_string());
        } else if h.name.eq_ignore_ascii_case("last-event-id") {
            conditions.last_event_id = Some(value.to_string());
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > limits.max_body as u64 {
        return Err(Refusal::BodyTooLarge);
    }
    // Absolute form (`GET http://host/path`), as a proxy would send it: keep the path.
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        keep_alive,
        content_length: content_length as usize,
        expect_continue,
        auth,
        session,
        csrf,
        conditions,
    })
}

/// How much of a client's input an error message or log line repeats.
const ECHO_CHARS: usize = 64;

/// At most `ECHO_CHARS` characters of what a client sent, for error bodies and log
/// lines (a 10 MB path must not become a 10 MB answer).
pub(crate) fn short(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(ECHO_CHARS) {
        None => Cow::Borrowed(s),
        Some((i, _)) => Cow::Owned(format!("{}… ({} bytes)", &s[..i], s.len())),
    }
}

/// Query parameters, decoded, in the order sent (the first of a repeated name counts).
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: &str) -> Query {
        Query(
            raw.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (percent_decode(k, true), percent_decode(v, true))
                })
                .collect(),
        )
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parameter `name` as text ("" when absent). (Only the agent's endpoints take text.)
    #[cfg_attr(not(feature = "agent"), allow(dead_code))]
    pub(crate) fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_string()
    }

    /// Parameter `name` as an integer in `[min, max]`, or `default` when absent.
    pub(crate) fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, Reply> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(err(
                400,
                format!(
                    "{name} must be an integer from {min} to {max}, got '{}'",
                    short(raw)
                ),
            )),
        }
    }

    /// 400 naming the valid parameters when one is not among `allowed`.
    pub(crate) fn check(&self, allowed: &[&str], path: &str) -> Result<(), Reply> {
        let Some(bad) = self.names().find(|n| !allowed.contains(n)) else {
            return Ok(());
        };
        let msg = if allowed.is_empty() {
            format!(
                "unknown query parameter '{}': {path} takes none",
                short(bad)
            )
        } else {
            format!(
                "unknown query parameter '{}' for {path}; valid: {}",
                short(bad),
                allowed.join(", ")
            )
        };
        Err(Reply {
            code: 400,
            body: json!({ "error": msg, "valid": allowed }),
            raw: None,
            allow: None,
            set_cookie: None,
        })
    }
}

/// Decode `%XX` escapes (and, in queries, `+` as a space); invalid escapes stay as they are.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// What a handler gets of the request (the route table fills it in).
#[derive(Debug, Default)]
pub(crate) struct Call {
    /// The path as sent (for messages; only the lean build's `no_agent` needs it now).
    #[cfg_attr(feature = "agent", allow(dead_code))]
    pub path: String,
    /// The `{…}` captures, in order, decoded.
    pub params: Vec<String>,
    pub query: Query,
    pub body: Vec<u8>,
    pub auth: Option<String>,
    /// The session cookie's value and `X-CSRF-Token` (`session.rs` checks them).
    pub session: Option<String>,
    pub csrf: Option<String>,
    pub conditions: Conditions,
}

impl Call {
    /// The body as text, or 400.
    pub(crate) fn body_text(&self) -> Result<&str, Reply> {
        std::str::from_utf8(&self.body).map_err(|_| err(400, "request body is not UTF-8 text"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_line: 32,
            max_header: 64,
            max_headers: 3,
            max_body: 100,
        }
    }

    /// Feed `bytes` one at a time, as the slowest client would.
    fn scan_bytewise(bytes: &[u8]) -> Result<Option<usize>, Refusal> {
        let mut scan = HeadScan::default();
        let l = limits();
        let mut last = Ok(None);
        for i in 1..=bytes.len() {
            last = scan.scan(&bytes[..i], &l);
            if !matches!(last, Ok(None)) {
                return last;
            }
        }
        last
    }

    #[test]
    fn finds_the_end_of_the_head_in_one_piece_or_byte_by_byte() {
        let head = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nBODY";
        let mut scan = HeadScan::default();
        assert_eq!(scan.scan(head, &limits()), Ok(Some(head.len() - 4)));
        assert_eq!(scan_bytewise(head), Ok(Some(head.len() - 4)));
        // Bare LF line ends and a blank line before the request line are accepted.
        let lf = b"\r\nGET / HTTP/1.1\nHost: x\n\n";
        assert_eq!(scan_bytewise(lf), Ok(Some(lf.len())));
        let req = parse_head(lf, &limits()).unwrap();
        assert_eq!((req.method, req.path.as_str()), (Method::Get, "/"));
    }

    #[test]
    fn refuses_each_bound_as_soon_as_it_is_passed() {
        let l = limits();
        // A request line of exactly the bound passes; one byte more does not, even
        // before its end arrives.
        let exact = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(32 - 14));
        assert_eq!(exact.find('\r'), Some(32));
        assert!(matches!(scan_bytewise(exact.as_bytes()), Ok(Some(_))));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(32 - 13));
        assert_eq!(scan_bytewise(long.as_bytes()), Err(Refusal::LineTooLong));
        let endless = vec![b'a'; 10_000];
        let mut scan = HeadScan::default();
        assert_eq!(scan.scan(&endless[..34], &l), Err(Refusal::LineTooLong));
        // Blank lines forever count toward the line bound too.
        assert_eq!(scan_bytewise(&[b'\n'; 100]), Err(Refusal::LineTooLong));
        // Header fields: count and size.
        let many = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n";
        assert_eq!(scan_bytewise(many), Err(Refusal::TooManyHeaders));
        let big = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "v".repeat(70));
        assert_eq!(scan_bytewise(big.as_bytes()), Err(Refusal::HeadersTooLarge));
        let mut scan = HeadScan::default();
        let partial = format!("GET / HTTP/1.1\r\nx: {}", "v".repeat(70));
        assert_eq!(
            scan.scan(partial.as_bytes(), &l),
            Err(Refusal::HeadersTooLarge)
        );
        assert!(l.max_head_bytes() >= 32 + 64);
    }

    #[test]
    fn parses_what_the_server_needs_from_the_head() {
        let l = limits();
        let head =
            b"PUT /api/gpio/22?x=1 HTTP/1.1\r\nAuthorization: Bearer t\r\ncontent-length: 12\r\n\r\n";
        let r = parse_head(head, &l).unwrap();
        assert_eq!(r.method, Method::Put);
        assert_eq!((r.path.as_str(), r.query.as_str()), ("/api/gpio/22", "x=1"));
        assert_eq!(r.content_length, 12);
        assert_eq!(r.auth.as_deref(), Some("Bearer t"));
        assert!(r.keep_alive && !r.expect_continue);

        let close = parse_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &l).unwrap();
        assert!(!close.keep_alive);
        let old = parse_head(b"GET / HTTP/1.0\r\n\r\n", &l).unwrap();
        assert!(!old.keep_alive);
        let old_ka = parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &l).unwrap();
        assert!(old_ka.keep_alive);
        let abs = parse_head(b"GET http://h:1/api/x?y HTTP/1.1\r\n\r\n", &l).unwrap();
        assert_eq!((abs.path.as_str(), abs.query.as_str()), ("/api/x", "y"));
        let cont = parse_head(
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            &l,
        )
        .unwrap();
        assert!(cont.expect_continue);

        let refused = |h: &[u8]| parse_head(h, &l).unwrap_err();
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n"),
            Refusal::BodyTooLarge
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Refusal::Chunked
        );
        assert!(matches!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"),
            Refusal::Malformed(_)
        ));
        assert!(matches!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            Refusal::Malformed(_)
        ));
        assert!(matches!(
            refused(b"GET / SPDY/3\r\n\r\n"),
            Refusal::Malformed(_)
        ));
        assert!(matches!(
            refused(b"G T / HTTP/1.1\r\n\r\n"),
            Refusal::Malformed(_)
        ));
    }

    #[test]
    fn reads_the_conditional_and_resume_headers() {
        let l = limits();
        let r = parse_head(
            b"GET / HTTP/1.1\r\nAccept-Encoding: br, gzip;q=0.8\r\nIf-None-Match: \"ab\"\r\nLast-Event-ID: 42\r\n\r\n",
            &l,
        )
        .unwrap();
        assert!(r.conditions.accept_gzip);
        assert_eq!(r.conditions.if_none_match.as_deref(), Some("\"ab\""));
        assert_eq!(r.conditions.last_event_id.as_deref(), Some("42"));
        for (value, gzip) in [
            ("gzip", true),
            ("deflate, GZIP", true),
            ("*", true),
            ("gzip;q=0", false),
            ("gzip; q=0.0", false),
            ("br", false),
            ("identity", false),
        ] {
            assert_eq!(accepts_gzip(value), gzip, "{value}");
        }
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\n\r\n", &l)
                .unwrap()
                .conditions,
            Conditions::default()
        );
    }

    #[test]
    fn echoes_only_a_short_prefix() {
        assert_eq!(short("abc"), "abc");
        let long = "é".repeat(10_000);
        let s = short(&long);
        assert!(s.chars().count() < 100, "{s}");
        assert!(s.ends_with("(20000 bytes)"), "{s}");
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(
            percent_decode("system%3Acpu_temp", false),
            "system:cpu_temp"
        );
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("50%", true), "50%");
        assert_eq!(percent_decode("%zz", true), "%zz");
        assert_eq!(percent_decode("%4", true), "%4");
    }

    #[test]
    fn query_parameters_and_their_check() {
        let q = Query::parse("minutes=5&&query=fan%20speed&flag");
        assert_eq!(q.get("query"), Some("fan speed"));
        assert_eq!(q.int("minutes", 60, 1, 10), Ok(5));
        assert_eq!(q.int("limit", 7, 1, 10), Ok(7));
        assert_eq!(q.int("minutes", 60, 6, 10).unwrap_err().code, 400);
        assert_eq!(q.names().collect::<Vec<_>>(), ["minutes", "query", "flag"]);
        let e = q.check(&["minutes", "query"], "/p").unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.body["error"].as_str().unwrap().contains("'flag'"),
            "{}",
            e.body
        );
        assert_eq!(e.body["valid"], json!(["minutes", "query"]));
        assert!(q.check(&["minutes", "query", "flag"], "/p").is_ok());
        assert!(Query::parse("").check(&[], "/p").is_ok());
    }
}
