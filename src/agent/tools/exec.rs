//! Tools run as programs, declared by plugin manifests (`plugins::manifest`,
//! `docs/plugins.md`). A call runs the program without a shell: the arguments (already
//! checked against the manifest's schema by the registry) as one JSON object on its
//! stdin, its stdout one JSON value (the result). Bounded every way: killed (with
//! everything it started) at the timeout, refused past `max_output_kb` (never read
//! further), stderr kept as a short tail and logged at warn with the tool's name.

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{Tool, ToolContext, ToolRegistry, ToolStats};
use crate::config::Settings;
use crate::plugins::manifest::{self, ExecSpec};

/// How often a call in progress looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// Bytes of stderr kept (the last ones): enough for an error message.
const STDERR_TAIL: usize = 4096;
/// Of which the model is shown at most this many.
const STDERR_FOR_MODEL: usize = 500;

/// One exec tool, as its manifest declares it.
pub struct ExecTool {
    spec: ExecSpec,
    // The trait hands out `&'static str`; manifests are read once at start, so leaking
    // their two texts is bounded.
    name: &'static str,
    description: &'static str,
}

impl ExecTool {
    pub fn new(spec: ExecSpec) -> ExecTool {
        ExecTool {
            name: Box::leak(spec.name.clone().into_boxed_str()),
            description: Box::leak(spec.description.clone().into_boxed_str()),
            spec,
        }
    }
}

impl Tool for ExecTool {
    fn name(&self) -> &'static str {
        self.name
    }
    fn description(&self) -> &'static str {
        self.description
    }
    fn parameters(&self) -> Json {
        self.spec.parameters.clone()
    }
    fn writes(&self) -> bool {
        self.spec.writes
    }
    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let t0 = Instant::now();
        let stats = &ctx.stats;
        ToolStats::hit(&stats.exec_calls);
        let result = run(&self.spec, args, stats, &ctx.stopping);
        if result.is_err() {
            ToolStats::hit(&stats.exec_failed);
        }
        let ms = t0.elapsed().as_millis();
        match &result {
            Ok(_) => log::info!(
                tool = self.name, ms = ms as u64, ok = true;
                "agent: exec tool {} ok in {ms} ms", self.name
            ),
            Err(e) => log::info!(
                tool = self.name, ms = ms as u64, ok = false;
                "agent: exec tool {} failed in {ms} ms: {e}", self.name
            ),
        }
        result
    }
}

/// Add the exec tools of `[plugins] dir`'s valid manifests; invalid ones are logged as
/// warnings (file and line) and skipped.
pub fn register_manifests(tools: &mut ToolRegistry, settings: &Settings) {
    let manifests = match manifest::of(settings) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("plugins: {e}; no external tools");
            return;
        }
    };
    for m in manifests {
        match m.plugin {
            Ok(spec) => {
                log::info!(
                    "plugins: exec tool {} from {}{}",
                    spec.name,
                    m.path.display(),
                    if spec.writes { " (writes)" } else { "" }
                );
                tools.register(Box::new(ExecTool::new(spec)));
            }
            Err(errors) => {
                for e in errors {
                    log::warn!(
                        "plugins: {}:{}: {} (this manifest is skipped; see smollama plugins check)",
                        e.file,
                        e.line.unwrap_or(1),
                        e.message
                    );
                }
            }
        }
    }
}

/// What the reader threads report.
enum Event {
    /// All of stdout (at most the cap), or `None`: more than the cap.
    Stdout(Option<Vec<u8>>),
    /// The last bytes of stderr.
    Stderr(Vec<u8>),
}

/// Run the program once with `args` on stdin; its parsed stdout, or what went wrong.
fn run(
    spec: &ExecSpec,
    args: &Json,
    stats: &ToolStats,
    stopping: &AtomicBool,
) -> Result<Json, String> {
    let name = &spec.name;
    // Without the agent's secrets and systemd socket (`plugins::program`).
    let mut cmd = crate::plugins::program::command(&spec.command);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so the timeout kills what it started too (a script's
    // `sleep` would otherwise hold the pipes open).
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", spec.command[0]))?;
    let (tx, rx) = mpsc::channel();
    let input = args.to_string().into_bytes();
    if let Some(mut stdin) = child.stdin.take() {
        // A program that does not read its stdin must not block the call.
        io_thread(move || {
            let _ = stdin.write_all(&input);
        });
    }
    if let Some(mut out) = child.stdout.take() {
        let tx = tx.clone();
        let cap = spec.max_output;
        io_thread(move || {
            let mut buf = Vec::new();
            let read = (&mut out).take(cap as u64 + 1).read_to_end(&mut buf);
            let whole = read.is_ok() && buf.len() <= cap;
            let _ = tx.send(Event::Stdout(whole.then_some(buf)));
        });
    }
    if let Some(mut err) = child.stderr.take() {
        let tx = tx.clone();
        io_thread(move || {
            let mut tail = Vec::new();
            let mut chunk = [0u8; 1024];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            let _ = tx.send(Event::Stderr(tail));
        });
    }
    drop(tx);

    let deadline = Instant::now() + Duration::from_micros(spec.timeout as u64);
    let mut stdout = None;
    let mut stderr = None;
    let mut failure = None;
    while stdout.is_none() || stderr.is_none() {
        if stopping.load(Ordering::Relaxed) {
            failure = Some("the agent is stopping".to_string());
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        // Wakes now and then to see whether the agent is stopping.
        match rx.recv_timeout(left.min(STOP_CHECK)) {
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Ok(Event::Stdout(Some(b))) => stdout = Some(b),
            Ok(Event::Stdout(None)) => {
                ToolStats::hit(&stats.exec_over_cap);
                failure = Some(format!(
                    "its output exceeds max_output_kb ({} KiB); refused",
                    spec.max_output >> 10
                ));
                break;
            }
            Ok(Event::Stderr(t)) => stderr = Some(t),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                ToolStats::hit(&stats.exec_timed_out);
                failure = Some(format!("timed out after {}", spec.timeout_text));
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Both pipes closed: it is about to exit (or has); wait for that within the deadline.
    let status = if failure.is_none() {
        let mut poll = Duration::from_micros(100);
        loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if stopping.load(Ordering::Relaxed) => {
                    failure = Some("the agent is stopping".to_string());
                    break None;
                }
                Ok(None) if Instant::now() < deadline => {
                    // It usually exits right after closing its pipes: poll soon, then
                    // less often.
                    std::thread::sleep(poll);
                    poll = (poll * 2).min(Duration::from_millis(20));
                }
                Ok(None) => {
                    ToolStats::hit(&stats.exec_timed_out);
                    failure = Some(format!("timed out after {}", spec.timeout_text));
                    break None;
                }
                Err(e) => {
                    failure = Some(format!("cannot wait for it: {e}"));
                    break None;
                }
            }
        }
    } else {
        None
    };
    if failure.is_some() {
        kill(&mut child);
        if stderr.is_none() {
            // The readers see the end of the pipes once the group is dead.
            while let Ok(ev) = rx.recv_timeout(Duration::from_secs(1)) {
                if let Event::Stderr(t) = ev {
                    stderr = Some(t);
                    break;
                }
            }
        }
    }
    let tail = String::from_utf8_lossy(stderr.as_deref().unwrap_or_default())
        .trim()
        .to_string();
    if !tail.is_empty() {
        log::warn!("agent: exec tool {name} stderr: {tail}");
    }
    if let Some(f) = failure {
        return Err(f);
    }
    let status = status.expect("a status when nothing failed");
    if !status.success() {
        let what = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_string(),
        };
        return Err(if tail.is_empty() {
            format!("{name} {what}")
        } else {
            format!("{name} {what}: {}", last_chars(&tail, STDERR_FOR_MODEL))
        });
    }
    let out = stdout.unwrap_or_default();
    serde_json::from_slice::<Json>(&out).map_err(|e| {
        format!("{name} did not print a JSON result ({e}); its output must be one JSON value")
    })
}

/// One of a call's pipe threads: small stacks (they only copy bytes), and a spawn
/// failure only loses that pipe (the call then ends at its timeout or with an error).
fn io_thread(f: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("exec-io".into())
        .stack_size(64 << 10)
        .spawn(f);
}

/// Kill the program's whole process group, then reap it.
fn kill(child: &mut Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on our child's own process group (set at spawn); no memory is
        // touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `n` characters of `s`.
fn last_chars(s: &str, n: usize) -> &str {
    let skip = s.chars().count().saturating_sub(n);
    match s.char_indices().nth(skip) {
        Some((i, _)) => &s[i..],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::TempDir;

    fn spec(dir: &std::path::Path, body: &str) -> ExecSpec {
        spec_in(dir, "tool.sh", body)
    }

    fn spec_in(dir: &std::path::Path, file: &str, body: &str) -> ExecSpec {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(file);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        ExecSpec {
            name: "t".into(),
            description: "d".into(),
            parameters: serde_json::json!({"type": "object", "properties": {}}),
            command: vec![p.display().to_string()],
            timeout: 5_000_000,
            timeout_text: "5s".into(),
            max_output: 1024,
            writes: false,
        }
    }

    #[test]
    fn arguments_in_result_out() {
        let d = TempDir::new("exec-echo");
        let s = spec(
            &d.0,
            "#!/bin/sh\nread line\necho \"{\\\"got\\\": $line}\"\n",
        );
        let r = run(
            &s,
            &serde_json::json!({"a": 1}),
            &ToolStats::default(),
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(r, serde_json::json!({"got": {"a": 1}}));
    }

    #[test]
    fn failures_become_errors() {
        let d = TempDir::new("exec-fail");
        let s = spec(&d.0, "#!/bin/sh\necho not json\n");
        assert!(
            run(
                &s,
                &Json::Null,
                &ToolStats::default(),
                &AtomicBool::new(false)
            )
            .unwrap_err()
            .contains("did not print a JSON result")
        );
        let s = spec(&d.0, "#!/bin/sh\necho 'disk on fire' >&2\nexit 3\n");
        assert_eq!(
            run(
                &s,
                &Json::Null,
                &ToolStats::default(),
                &AtomicBool::new(false)
            )
            .unwrap_err(),
            "t exited with status 3: disk on fire"
        );
        let s = spec(&d.0, "#!/bin/sh\nhead -c 5000 /dev/zero | tr '\\0' 'x'\n");
        assert!(
            run(
                &s,
                &Json::Null,
                &ToolStats::default(),
                &AtomicBool::new(false)
            )
            .unwrap_err()
            .contains("exceeds max_output_kb (1 KiB)")
        );
        assert_eq!(last_chars("héllo", 3), "llo");
    }

    /// The cost of one call (docs/benchmarks.md): `cargo test --lib exec_call_cost --
    /// --ignored --nocapture`.
    #[test]
    #[ignore]
    fn exec_call_cost() {
        let d = TempDir::new("exec-cost");
        let mut cat = spec(&d.0, "");
        cat.command = vec!["/bin/cat".into()];
        let sh = spec_in(&d.0, "sh", "#!/bin/sh\ncat\n");
        let py = spec_in(
            &d.0,
            "py",
            "#!/usr/bin/python3\nimport json, sys\nprint(json.dumps(json.load(sys.stdin)))\n",
        );
        for (what, s, n) in [
            ("/bin/cat", &cat, 200),
            ("sh script", &sh, 200),
            ("python3 script", &py, 30),
        ] {
            let mut ms: Vec<f64> = (0..n)
                .map(|i| {
                    let t0 = Instant::now();
                    let r = run(
                        s,
                        &serde_json::json!({"i": i}),
                        &ToolStats::default(),
                        &AtomicBool::new(false),
                    )
                    .unwrap();
                    assert_eq!(r["i"], i);
                    t0.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            ms.sort_by(f64::total_cmp);
            println!(
                "{what}: {n} calls, median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
                ms[n / 2],
                ms[n * 9 / 10],
                ms[n - 1]
            );
        }
    }
}
