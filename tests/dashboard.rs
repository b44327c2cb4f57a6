//! The dashboard as a person uses it: the real binary with a mock GPIO and a scripted
//! stand-in for Ollama (`common/fake_ollama.rs`: a real model cannot run here), and a
//! real browser (Debian's `chromium`, headless) driven over the DevTools protocol by
//! `tests/dashboard.py` (Python's standard library only: the CDP client is
//! `scripts/dashboard-check.py`'s, so the suite needs no WebSocket crate and the script
//! stays usable by hand). Screenshots of every page go to `target/screenshots/`.
//!
//! And the login's rules over plain HTTP: the cookie's attributes, a write with the
//! cookie but no CSRF token refused, the bearer token still working for API clients.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use fake_ollama::{FakeOllama, Step};
use serde_json::Value;

const MODEL: &str = "gemma4:e2b";
const OBSERVATION: &str = r#"{"kind": "observation", "text": "Uptime climbs steadily since the boot", "type": "pattern", "confidence": 0.8, "related_sources": ["system:uptime"]}
"#;

/// The test pipeline with an events sink, so readings reach open pages live, and
/// rollups every second beyond an hour of raw readings, so a 24 h chart has its
/// min–max band within seconds.
fn pipeline() -> String {
    let raw = "raw_for = \"1d\"\nrollups = [{ every = \"1m\", keep = \"30d\" }]";
    assert!(FAST_PIPELINE.contains(raw));
    let p = FAST_PIPELINE.replace(
        raw,
        "raw_for = \"1h\"\nrollups = [{ every = \"1s\", keep = \"30d\" }]",
    );
    format!("{p}\n[[sink]]\nname = \"live\"\nkind = \"events\"\nfrom = [\"quiet\"]\n")
}

fn start(tag: &str, ollama: &FakeOllama) -> (TempDir, Agent) {
    let dir = TempDir::new(tag);
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        &pipeline(),
        &format!(
            "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n",
            ollama.port()
        ),
    );
    // An observation about the source (as the observation loop would store one), for
    // the chart's markers and the observations page.
    let notes = dir.path().join("notes.jsonl");
    std::fs::write(&notes, OBSERVATION).unwrap();
    let (code, out, err) = run_cli(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "memory",
            "import",
            notes.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "a reading of system:uptime", || {
        (get(&agent.url("/api/readings/system:uptime")).ok()?.0 == 200).then_some(())
    });
    (dir, agent)
}

/// A request with these headers; (status, Set-Cookie, JSON body).
fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Option<String>, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = agent
        .run(req.body(body.to_string()).unwrap())
        .expect("a response");
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.body_mut().read_to_string().unwrap();
    (
        r.status().as_u16(),
        cookie,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[test]
fn the_login_sets_a_strict_httponly_cookie_and_writes_need_its_csrf_token() {
    let ollama = FakeOllama::start(&[MODEL]);
    let (_dir, agent) = start("dash-login", &ollama);
    let gpio = agent.url("/api/gpio/22");
    let on = r#"{"value": true}"#;

    let (code, _, _) = call(
        "POST",
        &agent.url("/api/login"),
        &[],
        r#"{"token": "wrong"}"#,
    );
    assert_eq!(code, 401, "a wrong token logs nobody in");
    let (code, cookie, body) = call(
        "POST",
        &agent.url("/api/login"),
        &[],
        &format!(r#"{{"token": "{TOKEN}"}}"#),
    );
    assert_eq!(code, 200, "{body}");
    let cookie = cookie.expect("Set-Cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    assert_eq!(session.len(), "smollama_session=".len() + 64, "{session}");
    let csrf = body["csrf"].as_str().unwrap().to_string();

    // Without the cookie (and no bearer token): 401. With it but without the CSRF
    // token, or with another: 403. With both: done.
    assert_eq!(call("PUT", &gpio, &[], on).0, 401);
    assert_eq!(call("PUT", &gpio, &[("Cookie", &session)], on).0, 403);
    assert_eq!(
        call(
            "PUT",
            &gpio,
            &[("Cookie", &session), ("X-CSRF-Token", "forged")],
            on
        )
        .0,
        403
    );
    let (code, _, body) = call(
        "PUT",
        &gpio,
        &[("Cookie", &session), ("X-CSRF-Token", &csrf)],
        on,
    );
    assert_eq!((code, &body["value"]), (200, &Value::Bool(true)), "{body}");
    let (_, _, s) = call(
        "GET",
        &agent.url("/api/session"),
        &[("Cookie", &session)],
        "",
    );
    assert_eq!(
        (&s["logged_in"], s["csrf"].as_str()),
        (&Value::Bool(true), Some(csrf.as_str()))
    );

    // Logging out needs the CSRF token too, clears the cookie, and ends the session.
    assert_eq!(
        call(
            "POST",
            &agent.url("/api/logout"),
            &[("Cookie", &session)],
            ""
        )
        .0,
        403
    );
    let (code, cleared, _) = call(
        "POST",
        &agent.url("/api/logout"),
        &[("Cookie", &session), ("X-CSRF-Token", &csrf)],
        "",
    );
    assert_eq!(code, 200);
    assert!(cleared.unwrap().contains("Max-Age=0"));
    assert_eq!(
        call(
            "PUT",
            &gpio,
            &[("Cookie", &session), ("X-CSRF-Token", &csrf)],
            on
        )
        .0,
        401,
        "the session is gone"
    );

    // API clients keep the bearer token.
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        call(
            "PUT",
            &gpio,
            &[("Authorization", &bearer)],
            r#"{"value": false}"#
        )
        .0,
        200
    );
    let (_, st) = get(&agent.url("/api/status")).unwrap();
    let sessions = &st["connections"]["http"]["sessions"];
    assert_eq!(
        (
            &sessions["logins"],
            &sessions["logins_refused"],
            &sessions["open"]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(0)),
        "{sessions}"
    );
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let chromium = Command::new("chromium").arg("--version").output();
    assert!(
        chromium.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs Debian's chromium (apt-get install -y chromium; scripts/test installs it as root): {chromium:?}"
    );
    let ollama = FakeOllama::start(&[MODEL]);
    let answer = "The fan is off.";
    ollama.push(Step::Text(answer.into()));
    let (_dir, agent) = start("dash-browser", &ollama);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../screenshots");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--url", &agent.url("")])
        .args(["--token", TOKEN, "--pin-in", "17", "--pin-out", "22"])
        .args(["--source", "system:uptime", "--answer", answer])
        .args(["--agent-pid", &agent.child.id().to_string()])
        .arg("--shots")
        .arg(&shots)
        .output()
        .expect("run python3 tests/dashboard.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser checks failed:\n{stdout}\n{stderr}\nagent log:\n{}",
        agent.log()
    );
}
