//! setup-pi.sh laid down into a scratch root (no real system touched).

mod common;

use std::process::Command;

use common::*;

fn setup(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/setup-pi.sh"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lays_down_the_files_keeps_an_edited_config_and_is_idempotent() {
    let dir = TempDir::new("setup-pi");
    let root = dir.path().join("root");
    let r = root.to_str().unwrap();
    // --dry-run changes nothing.
    let (code, out, err) = setup(&["--root", r, "--dry-run", "--yes", BIN]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would install"), "{out}");
    assert_no_past_tense(&out);
    assert!(!root.join("usr/bin/smollama").exists());

    let (code, out, err) = setup(&["--root", r, "--yes", BIN]);
    assert_eq!(code, 0, "{err}");
    for f in [
        "usr/bin/smollama",
        "etc/smollama/smollama.toml",
        "etc/systemd/system/smollama.service",
        "etc/systemd/journald.conf.d/smollama.conf",
    ] {
        assert!(root.join(f).exists(), "{f} missing; output:\n{out}");
    }
    assert!(
        out.contains("user smollama"),
        "the user step is announced: {out}"
    );
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/smollama.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    let journald =
        std::fs::read_to_string(root.join("etc/systemd/journald.conf.d/smollama.conf")).unwrap();
    assert!(journald.contains("SystemMaxUse="));

    // An edited config survives a second run, which changes nothing.
    let conf = root.join("etc/smollama/smollama.toml");
    std::fs::write(&conf, "[node]\nname = \"edited\"\n").unwrap();
    let (code, out, _) = setup(&["--root", r, "--yes", BIN]);
    assert_eq!(code, 0);
    assert!(
        !out.contains("installed:"),
        "second run changed something:\n{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "[node]\nname = \"edited\"\n"
    );

    // The installed config is valid for the installed binary.
    std::fs::remove_file(&conf).unwrap();
    let (code, _, _) = setup(&["--root", r, "--yes", BIN]);
    assert_eq!(code, 0);
    let (code, out, err) = run_cli(
        &["--config", conf.to_str().unwrap(), "pipeline", "check"],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");

    // --uninstall --dry-run says what it would remove, and removes nothing.
    let (code, out, err) = setup(&["--root", r, "--yes", "--uninstall", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("would remove: ") && out.contains("usr/bin/smollama"),
        "{out}"
    );
    assert_no_past_tense(&out);
    assert!(root.join("usr/bin/smollama").exists());

    // --uninstall removes the service files, keeps config.
    let (code, _, err) = setup(&["--root", r, "--yes", "--uninstall"]);
    assert_eq!(code, 0, "{err}");
    assert!(!root.join("usr/bin/smollama").exists());
    assert!(!root.join("etc/systemd/system/smollama.service").exists());
    assert!(conf.exists());
}

/// A dry run reports what it would do; no line says a change happened.
fn assert_no_past_tense(out: &str) {
    for l in out.lines() {
        for word in ["created", "installed", "removed", "changed", "done"] {
            assert!(!l.starts_with(word), "a dry run said '{l}':\n{out}");
        }
        assert!(!l.contains("smollama removed"), "{out}");
    }
}

#[test]
fn a_dry_run_on_the_live_system_says_would_and_changes_nothing() {
    // Without --root: the real /, so run it unprivileged (as nobody when the tests run as
    // root): a dry run that tried to change anything would fail instead of changing it.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/setup-pi.sh");
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "bash"]);
        c
    } else {
        Command::new("bash")
    };
    let out = cmd
        .arg(script)
        .args(["--dry-run", "--force", BIN])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_no_past_tense(&stdout);
    let user_exists = Command::new("id")
        .arg("smollama")
        .output()
        .unwrap()
        .status
        .success();
    if !user_exists {
        assert!(
            stdout.contains("would run: useradd") && stdout.contains("would create: user smollama"),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("would run: systemctl enable smollama.service"),
        "{stdout}"
    );
    assert!(stdout.ends_with("dry run: nothing changed\n"), "{stdout}");
}

#[test]
fn refuses_a_non_pi_without_force_and_passes_shellcheck() {
    if !std::path::Path::new("/proc/device-tree/model").exists() {
        let (code, _, err) = setup(&["--dry-run"]);
        assert_eq!(code, 1);
        assert!(err.contains("--force"), "{err}");
    }
    let (code, out, _) = setup(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--dry-run") && out.contains("--uninstall"));
    // shellcheck is installed by ./scripts/test and .ci/run.
    let sc = Command::new("shellcheck")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/setup-pi.sh"))
        .output()
        .expect("shellcheck (apt-get install shellcheck)");
    assert!(
        sc.status.success(),
        "{}",
        String::from_utf8_lossy(&sc.stdout)
    );
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    // ExecStart must name an existing binary for verify: point it at the one just built.
    let dir = TempDir::new("unit-verify");
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/smollama.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/smollama "));
    let local = unit.replace("ExecStart=/usr/bin/smollama ", &format!("ExecStart={BIN} "));
    let path = dir.path().join("smollama.service");
    std::fs::write(&path, local).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// setup-pi.sh enables in config.txt what the pipeline's hardware needs (as `smollama
/// pipeline needs` says), nothing for a pipeline without hardware, and nothing twice.
#[test]
fn enables_only_the_interfaces_the_pipeline_uses() {
    let dir = TempDir::new("setup-pi-needs");
    let root = dir.path().join("root");
    let r = root.to_str().unwrap();
    let boot = root.join("boot/firmware/config.txt");
    std::fs::create_dir_all(boot.parent().unwrap()).unwrap();
    std::fs::write(&boot, "# the Pi's own lines\narm_64bit=1\n").unwrap();

    // The default config: no hardware, config.txt untouched.
    let (code, out, err) = setup(&["--root", r, "--yes", BIN]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("none enabled"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&boot).unwrap(),
        "# the Pi's own lines\narm_64bit=1\n"
    );

    // A pipeline with a BME280 (I2C) and DS18B20s on GPIO 17 (1-wire).
    let pipeline = dir.path().join("hw.toml");
    std::fs::write(
        &pipeline,
        r#"
[[source]]
name = "room"
kind = "bme280"

[[source]]
name = "probes"
kind = "ds18b20"
pin = 17

[[sink]]
name = "store"
kind = "store"
from = ["room", "probes"]
"#,
    )
    .unwrap();
    let conf = root.join("etc/smollama/smollama.toml");
    std::fs::write(
        &conf,
        format!("[pipeline]\nfiles = [\"{}\"]\n", pipeline.display()),
    )
    .unwrap();
    let (code, out, err) = setup(&["--root", r, "--yes", "--dry-run", BIN]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("would add: dtparam=i2c_arm=on"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&boot).unwrap(),
        "# the Pi's own lines\narm_64bit=1\n",
        "a dry run changes nothing"
    );
    let (code, out, err) = setup(&["--root", r, "--yes", BIN]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&boot).unwrap();
    assert_eq!(
        text,
        "# the Pi's own lines\narm_64bit=1\ndtparam=i2c_arm=on\ndtoverlay=w1-gpio,gpiopin=17\n"
    );
    assert!(!text.contains("spi"), "SPI is not used: {text}");
    let modules = std::fs::read_to_string(root.join("etc/modules")).unwrap();
    assert_eq!(modules, "i2c-dev\n");
    assert!(out.contains("reboot"), "{out}");

    // Again: nothing added twice, no reboot asked for.
    let (code, out, _) = setup(&["--root", r, "--yes", BIN]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&boot).unwrap(), text);
    assert!(out.contains("unchanged: dtparam=i2c_arm=on"), "{out}");
    assert!(!out.contains("reboot for"), "{out}");
}
