//! Errors through the real binary say what to change: the setting or variable, and the
//! value it had; nothing is created before them. And the CLI's own slips: a mistyped
//! command, `-h`, a mistyped variable, log levels in capitals, a bad RUST_LOG.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A config with only the given `[node]` lines and mock GPIO (no pins, no pipeline).
fn config_with(dir: &Path, node: &str, extra: &str) -> PathBuf {
    let cfg = dir.join("smollama.toml");
    std::fs::write(
        &cfg,
        format!(
            "[node]\n{node}\n\n[http]\nbind = \"127.0.0.1:{}\"\n\n[gpio]\nbackend = \"mock\"\n\n{extra}\n",
            free_port()
        ),
    )
    .unwrap();
    cfg
}

/// Run with the variables the default data directory comes from unset, in `cwd`.
fn run_without_home(args: &[&str], cwd: &Path) -> (i32, String, String) {
    run_cli_within(
        20,
        args,
        &[],
        &[
            "HOME",
            "XDG_DATA_HOME",
            "STATE_DIRECTORY",
            "SMOLLAMA_NODE_DATA_DIR",
        ],
        Some(cwd),
    )
}

#[test]
fn home_unset_is_refused_naming_the_setting_and_nothing_is_created() {
    let dir = TempDir::new("nohome");
    let cwd = dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    // A settings file without data_dir: the default would be derived from HOME.
    let cfg = config_with(dir.path(), "name = \"n\"", "");
    let c = cfg.to_str().unwrap();
    let mut commands: Vec<Vec<&str>> = vec![vec!["--config", c, "run"]];
    if cfg!(feature = "agent") {
        commands.push(vec!["--config", c, "memory", "export"]);
    }
    for args in commands {
        let (code, _, err) = run_without_home(&args, &cwd);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("[node] data_dir"), "{err}");
        assert!(err.contains("SMOLLAMA_NODE_DATA_DIR"), "{err}");
        assert!(err.contains("HOME"), "{err}");
        assert!(
            err.contains(&format!("{}", cfg.display())),
            "names the file to edit: {err}"
        );
    }
    // Nothing landed in the working directory (it used to be ./smollama-data).
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
    // A command that needs no data directory still works.
    let (code, out, err) = run_without_home(&["--config", c, "pipeline", "check"], &cwd);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok:"), "{out}");
}

#[test]
fn a_missing_parent_is_named_and_not_created() {
    let dir = TempDir::new("parent");
    let target = dir.path().join("usb/smollama");
    let cfg = config_with(
        dir.path(),
        &format!("data_dir = \"{}\"", target.display()),
        "",
    );
    let (code, _, err) = run_cli_within(
        20,
        &["--config", cfg.to_str().unwrap(), "run"],
        &[],
        &[],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("data_dir \"{}\"", target.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "its parent {} does not exist",
            dir.path().join("usb").display()
        )),
        "{err}"
    );
    // Line 2 of the file holds data_dir; the hint names it there.
    assert!(err.contains(&format!("{}:2:", cfg.display())), "{err}");
    assert!(
        err.contains(&format!("[node] data_dir in {}:2", cfg.display())),
        "{err}"
    );
    assert!(!dir.path().join("usb").exists());

    // From the environment, the variable is what to change.
    let (code, _, err) = run_cli_within(
        20,
        &["--config", cfg.to_str().unwrap(), "run"],
        &[("SMOLLAMA_NODE_DATA_DIR", target.to_str().unwrap())],
        &[],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("environment variable SMOLLAMA_NODE_DATA_DIR"),
        "{err}"
    );
    assert!(err.contains("set SMOLLAMA_NODE_DATA_DIR to"), "{err}");
}

/// A directory nobody (root included) may write: a read-only tmpfs as root (if `mount`
/// works here), else an immutable directory (`chattr +i`), else mode 0555 for others.
/// Undone on drop.
struct ReadOnlyDir {
    path: PathBuf,
    undo: Option<Vec<&'static str>>,
    /// What the error says about it.
    expect: &'static str,
}

impl ReadOnlyDir {
    fn new(path: PathBuf) -> Option<ReadOnlyDir> {
        std::fs::create_dir_all(&path).unwrap();
        let ok = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
        if unsafe { libc::geteuid() } != 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o555)).unwrap();
            return Some(ReadOnlyDir {
                path,
                undo: None,
                expect: "permission denied",
            });
        }
        if ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
            .arg(&path))
        {
            return Some(ReadOnlyDir {
                path,
                undo: Some(vec!["umount"]),
                expect: "is on a read-only filesystem",
            });
        }
        if ok(Command::new("chattr").arg("+i").arg(&path)) {
            return Some(ReadOnlyDir {
                path,
                undo: Some(vec!["chattr", "-i"]),
                expect: "permission denied",
            });
        }
        None
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        if let Some(undo) = &self.undo {
            let _ = Command::new(undo[0])
                .args(&undo[1..])
                .arg(&self.path)
                .status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o755));
        }
    }
}

#[test]
fn a_read_only_directory_is_named_with_the_setting() {
    let dir = TempDir::new("readonly");
    let Some(ro) = ReadOnlyDir::new(dir.path().join("ro")) else {
        eprintln!(
            "skipped: as root, neither a read-only mount nor chattr +i works here, and mode 0555 does not stop root"
        );
        return;
    };
    // The directory itself read-only, and a directory to be created inside it.
    for target in [ro.path.clone(), ro.path.join("data")] {
        let cfg = config_with(
            dir.path(),
            &format!("data_dir = \"{}\"", target.display()),
            "",
        );
        let (code, _, err) = run_cli_within(
            20,
            &["--config", cfg.to_str().unwrap(), "run"],
            &[],
            &[],
            None,
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(ro.expect), "{err}");
        assert!(
            err.contains(&format!("data_dir \"{}\"", target.display())),
            "{err}"
        );
        assert!(
            err.contains(&format!("set [node] data_dir in {}:2", cfg.display())),
            "{err}"
        );
        assert!(!ro.path.join("smollama.lock").exists());
    }
}

#[test]
fn rppal_off_a_pi_names_the_backend_setting() {
    let on_pi = std::fs::read_to_string("/proc/device-tree/model")
        .is_ok_and(|m| m.contains("Raspberry Pi"));
    if on_pi {
        eprintln!("skipped: this is a Raspberry Pi");
        return;
    }
    let dir = TempDir::new("rppal");
    let cfg = config_with(
        dir.path(),
        &format!("data_dir = \"{}\"", dir.path().join("data").display()),
        "",
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("backend = \"mock\"", "backend = \"rppal\"");
    std::fs::write(&cfg, text).unwrap();
    let (code, _, err) = run_cli_within(
        20,
        &["--config", cfg.to_str().unwrap(), "run"],
        &[],
        &[],
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[gpio] backend = \"rppal\""), "{err}");
    assert!(err.contains("SMOLLAMA_GPIO_BACKEND"), "{err}");
    assert!(err.contains("backend = \"mock\""), "{err}");
    // GPIO fails before the store is created.
    assert!(!dir.path().join("data/store").exists());
}

#[test]
fn a_type_error_is_in_plain_words_through_the_binary() {
    let dir = TempDir::new("types");
    let cfg = config_with(dir.path(), "", "[store]\nmap_size_mb = \"256\"\n");
    let (code, _, err) = run_cli(&["--config", cfg.to_str().unwrap(), "status"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("map_size_mb: expected a whole number such as 30, found the text \"256\""),
        "{err}"
    );
    assert!(
        err.contains("write the number without quotes: 256"),
        "{err}"
    );
    let good = config_with(dir.path(), "", "");
    let (code, _, err) = run_cli(
        &["--config", good.to_str().unwrap(), "status"],
        &[("SMOLLAMA_HTTP_ENABLED", "maybe")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("expected true or false, found \"maybe\""),
        "{err}"
    );
}

#[test]
fn log_levels_in_capitals_are_accepted_everywhere() {
    let dir = TempDir::new("levels");
    let cfg = config_with(dir.path(), "", "[log]\nlevel = \"DEBUG\"\n");
    let c = cfg.to_str().unwrap();
    let (code, _, err) = run_cli(&["--config", c, "pipeline", "check"], &[]);
    assert_eq!(code, 0, "[log] level = \"DEBUG\": {err}");
    let (code, _, err) = run_cli(
        &["pipeline", "check"],
        &[
            ("SMOLLAMA_LOG_LEVEL", "DEBUG"),
            ("HOME", dir.path().to_str().unwrap()),
        ],
    );
    assert_eq!(code, 0, "SMOLLAMA_LOG_LEVEL=DEBUG: {err}");
    let (code, _, err) = run_cli(&["--log-level", "DEBUG", "pipeline", "check"], &[]);
    assert_eq!(code, 0, "--log-level DEBUG: {err}");
    let (code, _, err) = run_cli(&["--log-level", "LOUD", "pipeline", "check"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--log-level 'LOUD' is not one of"), "{err}");

    // And the level is in effect: an agent started with DEBUG logs debug lines.
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &["--log-level", "DEBUG"]);
    eventually(10, "a debug line", || {
        agent.log().contains(" DEBUG ").then_some(())
    });
}

#[test]
fn a_bad_rust_log_is_reported_not_silently_ignored() {
    let (code, out, err) = run_cli(&["pipeline", "check"], &[("RUST_LOG", "verbose")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok:"));
    assert!(
        err.contains("RUST_LOG part 'verbose' is not a level"),
        "{err}"
    );
    let (_, _, err) = run_cli(
        &["pipeline", "check"],
        &[("RUST_LOG", "info,smollama=loud")],
    );
    assert!(err.contains("'loud' is not a level"), "{err}");
    let (_, _, err) = run_cli(&["pipeline", "check"], &[("RUST_LOG", "debgu")]);
    assert!(err.contains("did you mean 'debug'?"), "{err}");
    // A good one says nothing.
    let (_, _, err) = run_cli(
        &["pipeline", "check"],
        &[("RUST_LOG", "DEBUG,rumqttc=warn")],
    );
    assert!(!err.contains("RUST_LOG"), "{err}");
}

#[test]
fn a_mistyped_command_gets_did_you_mean() {
    let (code, _, err) = run_cli(&["stauts"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean 'status'?"), "{err}");
    let (code, _, err) = run_cli(&["memory", "exprot"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean 'export'?"), "{err}");
    let (code, _, err) = run_cli(&["pipeline", "chek", "x.toml"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean 'check'?"), "{err}");
    let (code, _, err) = run_cli(&["--log-level", "info", "xyzzy"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown command 'xyzzy'; commands: run, status"),
        "{err}"
    );
}

#[test]
fn dash_h_works_like_help_everywhere() {
    for args in [
        vec!["-h"],
        vec!["status", "-h"],
        vec!["run", "-h"],
        vec!["pipeline", "-h"],
        vec!["pipeline", "check", "-h"],
        vec!["memory", "-h"],
        vec!["memory", "import", "-h"],
        vec!["ask", "-h"],
    ] {
        let (code, out, err) = run_cli(&args, &[]);
        let mut long = args.clone();
        *long.last_mut().unwrap() = "--help";
        let (_, help, _) = run_cli(&long, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.starts_with("Usage: smollama"), "{args:?}: {out}");
        assert_eq!(out, help, "{args:?}");
    }
}

#[test]
fn a_mistyped_variable_gets_the_three_closest_names() {
    let dir = TempDir::new("envtypo");
    let (code, _, err) = run_cli(
        &["status"],
        &[
            ("SMOLLAMA_MQTT_HOTS", "broker.lan"),
            ("HOME", dir.path().to_str().unwrap()),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown setting variable SMOLLAMA_MQTT_HOTS"),
        "{err}"
    );
    let hint = err.lines().find(|l| l.contains("hint:")).unwrap();
    let names: Vec<&str> = hint
        .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
        .filter(|w| w.starts_with("SMOLLAMA_") && w.len() > "SMOLLAMA_".len())
        .collect();
    assert_eq!(names.len(), 3, "{hint}");
    assert!(names.contains(&"SMOLLAMA_MQTT_BROKER"), "{hint}");
}

#[test]
fn pipeline_check_of_a_named_file_does_not_blame_the_environment() {
    let dir = TempDir::new("checkfile");
    let missing = dir.path().join("missing.toml");
    let (code, _, err) = run_cli(&["pipeline", "check", missing.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read pipeline file"), "{err}");
    assert!(!err.contains("SMOLLAMA_PIPELINE_FILES"), "{err}");
    assert!(err.contains("the path given on the command line"), "{err}");
    // When the environment did name it, it says so.
    let (code, _, err) = run_cli(
        &["pipeline", "check"],
        &[
            ("SMOLLAMA_PIPELINE_FILES", missing.to_str().unwrap()),
            ("HOME", dir.path().to_str().unwrap()),
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("come from SMOLLAMA_PIPELINE_FILES"), "{err}");
}

#[test]
fn commands_that_do_not_touch_pins_say_nothing_about_gpio() {
    let dir = TempDir::new("nogpio");
    let cfg = config_with(
        dir.path(),
        &format!("data_dir = \"{}\"", dir.path().join("data").display()),
        "",
    );
    // auto: off a Pi, opening GPIO would log that it falls back to the mock.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("backend = \"mock\"", "backend = \"auto\"");
    std::fs::write(&cfg, text).unwrap();
    let c = cfg.to_str().unwrap();
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["--config", c, "status"],
        vec!["--config", c, "pipeline", "check"],
        vec!["--config", c, "--version"],
    ];
    if cfg!(feature = "agent") {
        commands.push(vec!["--config", c, "memory", "export"]);
        commands.push(vec!["--config", c, "memory", "recall", "fan"]);
    }
    for args in commands {
        let (code, _, err) = run_cli(&args, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!err.to_lowercase().contains("gpio"), "{args:?}: {err}");
    }
}
