//! install.sh, start.sh and scripts/release-tarball.sh, run for real: install.sh into a
//! scratch root (no system file touched), start.sh with the real binary, a real mosquitto
//! and the agent's HTTP status to see what it connected to.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn script(name: &str) -> String {
    format!("{REPO}/{name}")
}

/// Run a script with bash to completion: (exit code, stdout, stderr).
fn bash(path: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("bash").arg(path).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A release tarball of the binary under test, made by scripts/release-tarball.sh.
fn tarball(dir: &Path) -> PathBuf {
    let out = dir.join("dist");
    let (code, stdout, err) = bash(
        &script("scripts/release-tarball.sh"),
        &["--bin", BIN, "--out", out.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let path = PathBuf::from(stdout.trim());
    assert!(path.starts_with(&out) && path.exists(), "{stdout}");
    assert!(
        path.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&format!("smollama-{}-", env!("CARGO_PKG_VERSION"))),
        "{path:?}"
    );
    path
}

fn same_file(a: &Path, b: &Path) -> bool {
    Command::new("cmp")
        .arg("-s")
        .arg(a)
        .arg(b)
        .status()
        .unwrap()
        .success()
}

/// Every line before the summary reports a step; in a dry run none says it did one.
fn assert_dry(out: &str) {
    for l in out.lines().take_while(|l| !l.starts_with("next steps")) {
        let ok = l.is_empty()
            || ["would ", "unchanged: ", "kept: ", "skipped", "dry run: "]
                .iter()
                .any(|p| l.starts_with(p));
        assert!(ok, "a dry run said '{l}':\n{out}");
    }
    assert!(out.contains("dry run: nothing changed"), "{out}");
}

#[test]
fn install_sh_from_a_tarball_keeps_an_existing_config_and_is_idempotent() {
    let (code, out, _) = bash(&script("install.sh"), &["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--deb",
        "--tarball",
        "--prefix",
        "--root",
        "--config-dir",
        "--with-mosquitto",
        "--yes",
        "--dry-run",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}:\n{out}");
    }

    let dir = TempDir::new("install-tarball");
    let tar = tarball(dir.path());
    let listing = Command::new("tar").arg("-tzf").arg(&tar).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for f in [
        "/bin/smollama",
        "/config/smollama.toml",
        "/systemd/smollama.service",
        "/install.sh",
        "/start.sh",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(f)), "{f}:\n{listing}");
    }
    let root = dir.path().join("root");
    let r = root.to_str().unwrap();
    let t = tar.to_str().unwrap();

    // --dry-run says "would" and changes nothing.
    let (code, out, err) = bash(
        &script("install.sh"),
        &["--root", r, "--tarball", t, "--yes", "--dry-run"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("would install: ") && out.contains("usr/bin/smollama"),
        "{out}"
    );
    assert_dry(&out);
    assert!(!root.exists(), "a dry run created {root:?}");

    let (code, out, err) = bash(
        &script("install.sh"),
        &["--root", r, "--tarball", t, "--yes"],
    );
    assert_eq!(code, 0, "{err}");
    let bin = root.join("usr/bin/smollama");
    let conf = root.join("etc/smollama/smollama.toml");
    assert!(same_file(&bin, Path::new(BIN)), "{out}");
    assert!(
        same_file(&conf, &Path::new(REPO).join("config/smollama.toml")),
        "{out}"
    );
    assert!(
        out.contains("next steps") && out.contains("setup-pi.sh") && out.contains("start.sh"),
        "the summary points at the service and the workstation scripts:\n{out}"
    );
    assert!(
        out.contains("skipped: mosquitto"),
        "--yes installs no broker: {out}"
    );
    // The installed binary runs the installed config.
    let (code, _, err) = run_cli(
        &["--config", conf.to_str().unwrap(), "pipeline", "check"],
        &[],
    );
    assert_eq!(code, 0, "{err}");

    // An edited config survives; a second run changes nothing.
    std::fs::write(&conf, "[node]\nname = \"edited\"\n").unwrap();
    let (code, out, err) = bash(
        &script("install.sh"),
        &["--root", r, "--tarball", t, "--yes"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("installed:"),
        "second run changed something:\n{out}"
    );
    assert!(
        out.contains("kept: ") && out.contains("nothing changed"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "[node]\nname = \"edited\"\n"
    );

    // --prefix and --config-dir move the files.
    let (code, out, err) = bash(
        &script("install.sh"),
        &[
            "--root",
            r,
            "--tarball",
            t,
            "--yes",
            "--prefix",
            "/opt/smollama",
            "--config-dir",
            "/etc/other",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(root.join("opt/smollama/bin/smollama").exists(), "{out}");
    assert!(root.join("etc/other/smollama.toml").exists(), "{out}");
}

#[test]
fn install_sh_from_a_deb_and_without_any_source() {
    let dir = TempDir::new("install-deb");
    if Command::new("dpkg-deb").arg("--version").output().is_ok() {
        // A minimal package with the binary and config where the real one has them.
        let pkg = dir.path().join("pkg");
        std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(pkg.join("usr/bin")).unwrap();
        std::fs::create_dir_all(pkg.join("etc/smollama")).unwrap();
        std::fs::copy(BIN, pkg.join("usr/bin/smollama")).unwrap();
        std::fs::copy(
            Path::new(REPO).join("config/smollama.toml"),
            pkg.join("etc/smollama/smollama.toml"),
        )
        .unwrap();
        std::fs::write(
            pkg.join("DEBIAN/control"),
            "Package: smollama\nVersion: 0.0.1-test\nArchitecture: all\n\
             Maintainer: test <test@localhost>\nDescription: test package\n",
        )
        .unwrap();
        let deb = dir.path().join("smollama_0.0.1-test_all.deb");
        let st = Command::new("dpkg-deb")
            .args(["-Znone", "--build"])
            .arg(&pkg)
            .arg(&deb)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        // An existing config under the root is not replaced by the package's.
        let root = dir.path().join("root");
        let conf = root.join("etc/smollama/smollama.toml");
        std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
        std::fs::write(&conf, "[node]\nname = \"mine\"\n").unwrap();
        let r = root.to_str().unwrap();
        let d = deb.to_str().unwrap();
        let (code, out, err) = bash(&script("install.sh"), &["--root", r, "--deb", d, "--yes"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            same_file(&root.join("usr/bin/smollama"), Path::new(BIN)),
            "{out}"
        );
        assert!(out.contains("kept: "), "{out}");
        assert_eq!(
            std::fs::read_to_string(&conf).unwrap(),
            "[node]\nname = \"mine\"\n"
        );
        let (_, out, _) = bash(&script("install.sh"), &["--root", r, "--deb", d, "--yes"]);
        assert!(out.contains("nothing changed"), "{out}");
    }

    // Alone in a directory, with nothing to install from: it says what to get.
    let lonely = dir.path().join("lonely");
    std::fs::create_dir_all(&lonely).unwrap();
    std::fs::copy(script("install.sh"), lonely.join("install.sh")).unwrap();
    let root = dir.path().join("root2");
    let (code, out, err) = bash(
        lonely.join("install.sh").to_str().unwrap(),
        &["--root", root.to_str().unwrap(), "--yes"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("rustup.rs") && err.contains("--tarball") && err.contains("--deb"),
        "{err}"
    );
    assert!(!root.exists());
}

/// start.sh running in its own process group; killed with it on drop.
struct Started {
    child: Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Started {
    fn spawn(args: &[&str]) -> Started {
        let mut child = Command::new("bash")
            .arg(script("start.sh"))
            .args(args)
            .env_remove("SMOLLAMA_CONFIG")
            .env_remove("SMOLLAMA_MQTT_BROKER")
            .env_remove("SMOLLAMA_MQTT_PORT")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for mut pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Started { child, out }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// SIGTERM to the script only (not its group) and wait: what a supervisor does.
    fn terminate(&mut self) -> i32 {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50)); // let the readers finish
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "start.sh did not exit after SIGTERM:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The agent's MQTT state once it is connected to the broker on `port`.
fn wait_connected(started: &Started, http: u16, port: u16) {
    eventually(30, "the agent connected to the broker", || {
        let (_, s) = get(&format!("http://127.0.0.1:{http}/api/status")).ok()?;
        let m = &s["connections"]["mqtt"];
        (m["state"] == "connected" && m["broker"].to_string().contains(&port.to_string()))
            .then_some(())
    });
    let out = started.output();
    assert!(
        out.contains("smollama ") && out.contains("node test-node"),
        "smollama status ran first:\n{out}"
    );
}

#[test]
fn start_sh_starts_a_broker_runs_the_agent_and_stops_what_it_started() {
    let (code, out, _) = bash(&script("start.sh"), &["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--dry-run") && out.contains("--mqtt-port") && out.contains("--bin"));

    let dir = TempDir::new("start-own");
    let http = free_port();
    let cfg = write_config(dir.path(), http, FAST_PIPELINE);
    let c = cfg.to_str().unwrap();
    let mqtt = free_port();
    let port = mqtt.to_string();
    let common = ["--bin", BIN, "--mqtt-port", &port, "--no-ollama"];

    // --dry-run starts nothing and says what it would.
    let args: Vec<&str> = common
        .iter()
        .copied()
        .chain(["--dry-run", "--config", c])
        .collect();
    let (code, out, err) = bash(&script("start.sh"), &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("would start: ") && out.contains(&format!("127.0.0.1:{mqtt}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("would run: {BIN} run --config {c}")),
        "{out}"
    );
    assert!(
        !listening(mqtt) && !listening(http),
        "a dry run started something"
    );

    // The port is free: it starts mosquitto, runs status, then the agent on that broker.
    let args: Vec<&str> = common
        .iter()
        .copied()
        .chain(["--", "--config", c])
        .collect();
    let mut started = Started::spawn(&args);
    wait_connected(&started, http, mqtt);
    assert!(
        started
            .output()
            .contains(&format!("started: mosquitto on 127.0.0.1:{mqtt}")),
        "{}",
        started.output()
    );
    // SIGTERM: the agent drains and exits 0, then the broker it started is stopped.
    let code = started.terminate();
    let out = started.output();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("stopped after") && out.contains("stopped: mosquitto"),
        "{out}"
    );
    eventually(10, "the broker it started to be gone", || {
        (!listening(mqtt)).then_some(())
    });
    assert!(!listening(http));
}

#[test]
fn start_sh_leaves_a_broker_it_did_not_start_alone() {
    let dir = TempDir::new("start-other");
    let broker = Broker::start(dir.path());
    let http = free_port();
    let cfg = write_config(dir.path(), http, FAST_PIPELINE);
    let port = broker.port.to_string();
    let mut started = Started::spawn(&[
        "--bin",
        BIN,
        "--mqtt-port",
        &port,
        "--no-ollama",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    wait_connected(&started, http, broker.port);
    let code = started.terminate();
    let out = started.output();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(left alone)"), "{out}");
    assert!(!out.contains("stopped: mosquitto"), "{out}");
    assert!(
        listening(broker.port),
        "the broker it found was stopped:\n{out}"
    );
}

#[test]
fn the_scripts_pass_shellcheck() {
    // shellcheck is installed by ./scripts/test.
    let sc = Command::new("shellcheck")
        .args([
            script("install.sh"),
            script("start.sh"),
            script("scripts/release-tarball.sh"),
        ])
        .output()
        .expect("shellcheck (apt-get install shellcheck)");
    assert!(
        sc.status.success(),
        "{}",
        String::from_utf8_lossy(&sc.stdout)
    );
}
