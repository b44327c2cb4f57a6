//! Answers: what a handler returns (`Reply`, a status and a JSON body) and the bytes
//! that go on the wire (`Response`), written in one piece so that no part of a response
//! waits for an ACK.

use std::borrow::Cow;

use serde_json::{Value as Json, json};

use crate::clock::{civil_from_days, now_us};
use crate::graph::Micros;

/// A handler's answer: status code, JSON body, and for 405 the methods the path allows;
/// or, for the few endpoints whose clients want another format (`/metrics`), a text
/// body with its content type instead of the JSON.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub code: u16,
    pub body: Json,
    /// The `Allow` header (405 only).
    pub allow: Option<String>,
    /// A body in another format, sent instead of `body`: (content type, text).
    pub raw: Option<(&'static str, String)>,
    /// A `Set-Cookie` header (the dashboard's login and logout). Boxed: a `Reply` is
    /// returned as an `Err` in many places, and stays under clippy's 128 bytes.
    pub set_cookie: Option<Box<str>>,
}

/// 200 with a text body of `content_type`.
pub(crate) fn text(content_type: &'static str, text: String) -> Reply {
    Reply {
        code: 200,
        body: Json::Null,
        allow: None,
        raw: Some((content_type, text)),
        set_cookie: None,
    }
}

pub(crate) fn ok(body: Json) -> Reply {
    Reply {
        code: 200,
        body,
        allow: None,
        raw: None,
        set_cookie: None,
    }
}

pub(crate) fn err(code: u16, msg: impl Into<String>) -> Reply {
    Reply {
        code,
        body: json!({ "error": msg.into() }),
        allow: None,
        raw: None,
        set_cookie: None,
    }
}

impl Reply {
    /// Serialise the body (on whichever thread ran the handler).
    pub(crate) fn into_response(self) -> Response {
        let mut headers = Vec::new();
        if let Some(allow) = self.allow {
            headers.push(("Allow", allow));
        }
        if self.code == 503 {
            headers.push(("Retry-After", "1".to_string()));
        }
        if let Some(cookie) = self.set_cookie {
            headers.push(("Set-Cookie", cookie.into()));
            headers.push(("Cache-Control", "no-store".to_string()));
        }
        let (content_type, body) = match self.raw {
            Some((t, text)) => (t, text.into_bytes()),
            None => ("application/json", self.body.to_string().into_bytes()),
        };
        Response {
            code: self.code,
            content_type,
            body: Cow::Owned(body),
            headers,
            close: false,
        }
    }
}

/// A response ready to encode. `close` asks the server to close the connection after it
/// (set for refusals, where the rest of the request is not read). The body is borrowed
/// for assets compiled into the binary, owned otherwise.
#[derive(Debug)]
pub(crate) struct Response {
    pub code: u16,
    pub content_type: &'static str,
    pub body: Cow<'static, [u8]>,
    pub headers: Vec<(&'static str, String)>,
    pub close: bool,
}

/// Sent before reading a body whose client asked `Expect: 100-continue`.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Response {
    /// Status line, headers and (unless `head_only`, for HEAD) the body, in one buffer.
    /// `Content-Length` is the body's length either way, as HEAD requires; a 304 has
    /// none (RFC 9110 allows only the length the 200 would have had).
    pub(crate) fn encode(&self, head_only: bool, close: bool) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::with_capacity(160 + if head_only { 0 } else { self.body.len() });
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\n",
            self.code,
            reason(self.code),
            http_date(now_us()),
            self.content_type,
        );
        if self.code != 304 {
            let _ = write!(out, "Content-Length: {}\r\n", self.body.len());
        }
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The reason phrase of every status code this server sends.
pub(crate) fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// IMF-fixdate (RFC 9110), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, for the `Date` header.
pub(crate) fn http_date(ts: Micros) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ts.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[m as usize - 1],
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_imf_fixdate() {
        assert_eq!(
            http_date(784_111_777_000_000),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn head_has_the_get_headers_and_no_body() {
        let mut r = err(405, "no").into_response();
        r.headers.push(("Allow", "GET, HEAD".into()));
        let get = String::from_utf8(r.encode(false, false)).unwrap();
        let head = String::from_utf8(r.encode(true, true)).unwrap();
        assert!(
            get.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{get}"
        );
        assert!(get.ends_with("\r\n\r\n{\"error\":\"no\"}"), "{get}");
        assert!(head.contains("Content-Length: 14\r\n"), "{head}");
        assert!(head.contains("Allow: GET, HEAD\r\n"));
        assert!(head.ends_with("Connection: close\r\n\r\n"), "{head}");
        let not_modified = Response {
            code: 304,
            content_type: "text/html",
            body: Cow::Borrowed(&[]),
            headers: vec![("ETag", "\"x\"".into())],
            close: false,
        };
        let head = String::from_utf8(not_modified.encode(false, false)).unwrap();
        assert!(!head.contains("Content-Length"), "{head}");
        assert!(head.ends_with("ETag: \"x\"\r\n\r\n"), "{head}");
        for code in [
            200, 304, 400, 401, 403, 404, 405, 408, 409, 411, 413, 414, 431, 500, 503,
        ] {
            assert!(!reason(code).is_empty(), "{code}");
        }
    }
}
