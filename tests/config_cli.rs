//! `smollama config check` and `smollama config default`, run as the real binary: the
//! effective settings with where each value came from (secrets hidden), every error of
//! a broken file at once with exit 2, and the default file equal to the shipped one.

mod common;

use common::{TempDir, run_cli};

/// `key = value`, or `# key = example` for a key unset by default.
fn is_key_line(l: &str) -> bool {
    let l = l.strip_prefix("# ").unwrap_or(l);
    l.split_once(" = ").is_some_and(|(k, _)| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    })
}

fn lines_with<'a>(out: &'a str, start: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(start)).collect()
}

#[test]
fn config_default_prints_the_shipped_file_byte_for_byte() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/smollama.toml"))
            .unwrap();
    let (code, out, err) = run_cli(&["config", "default"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out == shipped,
        "`smollama config default` differs from config/smollama.toml; rewrite it with \
         `smollama config default > config/smollama.toml` (or BLESS=1 cargo test --test config_docs)"
    );
    // It does not depend on (or fail with) the configured file.
    let dir = TempDir::new("cfg-default");
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[store]\nmap_size_mb = \"big\"\n").unwrap();
    let (code, out2, _) = run_cli(
        &["--config", broken.to_str().unwrap(), "config", "default"],
        &[],
    );
    assert_eq!((code, out2 == shipped), (0, true));
}

#[test]
fn config_check_shows_every_value_and_its_origin_without_secrets() {
    let dir = TempDir::new("cfg-check");
    let cfg = dir.path().join("smollama.toml");
    std::fs::write(
        &cfg,
        "[node]\nname = \"greenhouse\"\n\n[http]\ntoken = \"file-token-0123456789\"\n\n[mqtt]\nbroker = \"192.168.1.10\"\npassword = \"file-password\"\nkeepalive = \"2m\"\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let (code, out, err) = run_cli(
        &["--config", c, "config", "check"],
        &[
            ("SMOLLAMA_MQTT_PORT", "1884"),
            (
                "SMOLLAMA_GPIO_PINS",
                "17:motion:input,27:led:output:initial=true",
            ),
            ("SMOLLAMA_MEMORY_MERGE_SIMILARITY", "0.8"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let at = |line: usize| format!("# {c}:{line}");
    let name = lines_with(&out, "name = \"greenhouse\"");
    assert!(name.len() == 1 && name[0].ends_with(&at(2)), "{out}");
    let keepalive = lines_with(&out, "keepalive = \"2m\"");
    assert!(keepalive[0].ends_with(&at(10)), "{out}");
    let port = lines_with(&out, "port = 1884");
    assert!(port[0].ends_with("# env SMOLLAMA_MQTT_PORT"), "{out}");
    let sim = lines_with(&out, "merge_similarity = 0.8");
    assert!(
        sim[0].ends_with("# env SMOLLAMA_MEMORY_MERGE_SIMILARITY"),
        "{out}"
    );
    let map = lines_with(&out, "map_size_mb = 256");
    assert!(map[0].ends_with("# default"), "{out}");
    // Derived defaults show what they derive to.
    assert!(out.contains("client_id = \"smollama-greenhouse\""), "{out}");
    let pins = lines_with(&out, "pins = [");
    assert!(
        pins[0].contains("{ pin = 17, name = \"motion\", mode = \"input\"")
            && pins[0].contains(
                "{ pin = 27, name = \"led\", mode = \"output\", pull = \"down\", initial = true }"
            )
            && pins[0].ends_with("# env SMOLLAMA_GPIO_PINS"),
        "{out}"
    );
    // Secrets: set, so shown as ***, never as themselves.
    assert!(
        lines_with(&out, "token = \"***\"")[0].ends_with(&at(5)),
        "{out}"
    );
    assert!(
        lines_with(&out, "password = \"***\"")[0].ends_with(&at(9)),
        "{out}"
    );
    for secret in ["file-token-0123456789", "file-password"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown:\n{out}{err}"
        );
    }
    // Every key of the shipped file appears once per section.
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/smollama.toml"))
            .unwrap();
    let keys = shipped.lines().filter(|l| is_key_line(l)).count();
    let shown = out.lines().filter(|l| is_key_line(l)).count();
    // The five [[gpio.pins]] example keys are one `pins` line in the check.
    assert_eq!(shown, keys - 5 + 1, "{out}");
}

#[test]
fn config_check_reports_every_error_of_a_file_at_once_and_exits_2() {
    let dir = TempDir::new("cfg-bad");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[node]\nname = \"my pi\"\n\n[http]\nmax_body_kb = 0\nenabled = \"yes\"\n\n[mqtt]\nkeepalive = 60\nbrokr = \"x\"\n\n[memory]\nmerge_similarity = 1.5\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let (code, out, err) = run_cli(&["--config", c, "config", "check"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    for (line, words) in [
        (2, "node name 'my pi' is not valid"),
        (5, "max_body_kb = 0 is out of range (1 to 16384)"),
        (6, "enabled: expected true or false, found the text \"yes\""),
        (
            9,
            "keepalive: expected a duration such as \"5m\", found the number 60",
        ),
        (10, "unknown key `brokr` in [mqtt]"),
        (13, "merge_similarity = 1.5 is out of range (0 to 1)"),
    ] {
        assert!(
            err.contains(&format!("error: {c}:{line}: {words}")),
            "no '{words}' at line {line}:\n{err}"
        );
    }
    assert_eq!(err.matches("error: ").count(), 6, "{err}");
    assert_eq!(
        err.matches("  hint: ").count(),
        6,
        "every error has a hint:\n{err}"
    );
}

#[test]
fn a_mistyped_config_subcommand_gets_the_closest() {
    let (code, _, err) = run_cli(&["config", "chek"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean 'check'?"), "{err}");
}
