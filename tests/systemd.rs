//! systemd `Type=notify` integration: the test owns the notify socket (as systemd would)
//! and watches what the real binary sends.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

fn messages_for(sock: &UnixDatagram, d: Duration) -> Vec<String> {
    let end = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        sock.set_read_timeout(Some((end - Instant::now()).max(Duration::from_millis(1))))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

#[test]
fn ready_status_and_watchdog_pings_from_the_event_loop() {
    let dir = TempDir::new("systemd");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start_env(
        &cfg,
        port,
        &[],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"), // pings every 100 ms
            ("SMOLLAMA_TEST_HOOKS", "1"),
        ],
    );
    // READY=1 comes first, with a status line; by then HTTP answers.
    let first = messages_for(&sock, Duration::from_millis(300));
    let ready = first
        .iter()
        .find(|m| m.contains("READY=1"))
        .expect("READY=1");
    assert!(ready.contains("STATUS="), "{ready}");
    assert_eq!(get(&agent.url("/api/health")).unwrap().0, 200);

    let msgs = messages_for(&sock, Duration::from_secs(1));
    let pings = msgs.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(pings >= 5, "{pings} pings in a second: {msgs:?}");
    // Readings start flowing, so the status line changes and is sent again.
    let statuses: Vec<&String> = first
        .iter()
        .chain(&msgs)
        .filter(|m| m.contains("STATUS="))
        .collect();
    assert!(
        statuses.iter().any(|m| m.contains("sources reporting")),
        "{statuses:?}"
    );

    // The event loop stalls: the pings stop, so systemd would restart the process.
    unsafe {
        libc::kill(agent.child.id() as i32, libc::SIGUSR1);
    }
    // Once health says the loop is stuck the stall is in effect; a ping sent before it
    // may still wait in the socket (a loaded machine delays the signal), so drain it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&agent.url("/api/health")).map(|(c, _)| c) != Ok(503) {
        assert!(
            Instant::now() < deadline,
            "health never said the loop stalled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    messages_for(&sock, Duration::from_millis(100));
    let after = messages_for(&sock, Duration::from_secs(1));
    let pings = after.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert_eq!(
        pings, 0,
        "pings went on while the loop was stalled: {after:?}"
    );
    // And health says so too.
    let (code, _) = get(&agent.url("/api/health")).unwrap();
    assert_eq!(code, 503);
}

#[test]
fn without_systemd_nothing_is_sent_and_it_runs() {
    let dir = TempDir::new("nosystemd");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &[]);
    assert_eq!(get(&agent.url("/api/health")).unwrap().0, 200);
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
}
