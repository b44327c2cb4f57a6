//! The dashboard's files, compiled into the binary, through the real server: `/` is the
//! page, gzip when the client accepts it and as it is when not, an ETag that answers
//! 304 on revalidation, and nothing in them that loads from outside the node.

mod common;

use common::raw_http::request;
use common::*;

fn start(tag: &str) -> (TempDir, Agent) {
    let dir = TempDir::new(tag);
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &[]);
    (dir, agent)
}

/// The bytes `gzip -d` makes of `packed` (the system's gzip, as a browser would decode).
fn gunzip(packed: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdin.take().unwrap().write_all(packed).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gzip -d failed");
    out.stdout
}

#[test]
fn the_page_is_served_gzip_when_accepted_with_an_etag_that_revalidates() {
    let (_dir, agent) = start("assets");
    let port = agent.port;
    // Without Accept-Encoding: the page as it is.
    let plain = request(port, "GET", "/", "");
    assert_eq!(plain.code, 200);
    assert_eq!(
        plain.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(plain.header("Content-Encoding"), None);
    assert_eq!(plain.header("Cache-Control"), Some("no-cache"));
    let html = String::from_utf8(plain.body.clone()).unwrap();
    assert!(
        html.contains("<main id=\"page\">")
            && html.contains("/app.js")
            && html.contains("/chart.js"),
        "{html}"
    );
    assert_eq!(request(port, "GET", "/index.html", "").body, plain.body);
    // Asked for gzip: compressed, and the same page once decoded.
    let packed = request(port, "GET", "/", "Accept-Encoding: gzip, deflate, br\r\n");
    assert_eq!(packed.code, 200);
    assert_eq!(packed.header("Content-Encoding"), Some("gzip"));
    assert_eq!(packed.header("Vary"), Some("Accept-Encoding"));
    assert!(packed.body.len() < plain.body.len());
    assert_eq!(gunzip(&packed.body), plain.body);
    // Revalidation: the ETag of each representation answers 304 with no body.
    for (enc, resp) in [("", &plain), ("Accept-Encoding: gzip\r\n", &packed)] {
        let tag = resp.header("ETag").expect("an ETag");
        assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
        let again = request(port, "GET", "/", &format!("{enc}If-None-Match: {tag}\r\n"));
        assert_eq!(again.code, 304, "{tag}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("Content-Length"), None, "a 304 has no length");
        assert_eq!(again.header("ETag"), Some(tag));
    }
    assert_ne!(plain.header("ETag"), packed.header("ETag"));
    let stale = request(port, "GET", "/", "If-None-Match: \"0000\"\r\n");
    assert_eq!(stale.code, 200);
    // HEAD: the headers, no body.
    let head = request(port, "HEAD", "/app.css", "");
    assert_eq!(head.code, 200);
    assert_eq!(head.header("Content-Type"), Some("text/css; charset=utf-8"));
    assert!(head.body.is_empty());
}

#[test]
fn the_live_view_uses_the_event_stream_and_nothing_from_outside() {
    let (_dir, agent) = start("assets-js");
    let js = request(agent.port, "GET", "/app.js", "");
    assert_eq!(js.code, 200);
    assert_eq!(
        js.header("Content-Type"),
        Some("text/javascript; charset=utf-8")
    );
    let js = String::from_utf8(js.body).unwrap();
    assert!(js.contains("new EventSource(\"/api/events\")"), "{js}");
    assert!(js.contains("/api/readings"), "the polling fallback");
    for path in ["/", "/app.js", "/chart.js", "/app.css"] {
        let body = String::from_utf8(request(agent.port, "GET", path, "").body).unwrap();
        for outside in ["http://", "https://", "//cdn", "@import", "fonts."] {
            assert!(!body.contains(outside), "{path} refers outside: {outside}");
        }
    }
    // Paths that are not assets stay 404; the API is unchanged.
    assert_eq!(request(agent.port, "GET", "/app.jsx", "").code, 404);
    assert_eq!(request(agent.port, "POST", "/", "").code, 405);
}
