//! The config error corpus: every file under `tests/fixtures/*/bad/` must fail with the
//! message (and line) its header promises; every file under `good/` must validate.
//!
//! Header lines: `# expect: <substring of an error's message or hint>` and, optionally,
//! `# line: <N>`; a file may have several such pairs, and must report each. An empty expectation only demands a clean error (no panic) with a line.

use std::path::{Path, PathBuf};

use smollama::config::settings::{PinConfig, PinMode, Pull};
use smollama::config::{ConfigErrors, PipelineSpec, Settings};

fn fixtures(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

struct Expect {
    message: String,
    line: Option<usize>,
}

/// The header's expectations: each `# expect:` with the `# line:` after it, if any. A
/// file with several must report every one of them.
fn expectation(text: &str, path: &Path) -> Vec<Expect> {
    let mut all: Vec<Expect> = Vec::new();
    for l in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(m) = l.strip_prefix("# expect:") {
            all.push(Expect {
                message: m.trim().to_string(),
                line: None,
            });
        } else if let Some(n) = l.strip_prefix("# line:") {
            let last = all
                .last_mut()
                .unwrap_or_else(|| panic!("{}: `# line:` before `# expect:`", path.display()));
            last.line = Some(n.trim().parse().expect("line number"));
        }
    }
    assert!(
        !all.is_empty(),
        "{} has no `# expect:` line",
        path.display()
    );
    all
}

/// Settings the pipeline corpus is checked against: two pins configured.
fn pin_settings() -> Settings {
    let mut s = Settings::defaults();
    s.gpio.pins = vec![
        PinConfig {
            pin: 17,
            name: "motion".into(),
            mode: PinMode::Input,
            pull: Pull::Down,
            initial: false,
        },
        PinConfig {
            pin: 27,
            name: "led".into(),
            mode: PinMode::Output,
            pull: Pull::Off,
            initial: false,
        },
    ];
    s
}

fn check_failure(
    path: &Path,
    result: Result<impl std::fmt::Debug, ConfigErrors>,
    expects: &[Expect],
    file: &str,
) {
    let errs = match result {
        Ok(v) => panic!(
            "{} should fail with '{}' but loaded: {v:?}",
            path.display(),
            expects[0].message
        ),
        Err(e) => e,
    };
    assert!(!errs.0.is_empty(), "{}: empty error list", path.display());
    for expect in expects {
        let found = errs.0.iter().any(|e| {
            let text = format!("{} {}", e.message, e.hint.as_deref().unwrap_or(""));
            text.contains(&expect.message) && (expect.line.is_none() || e.line == expect.line)
        });
        assert!(
            found,
            "{}: expected an error containing '{}' at line {:?}, got:\n{errs}",
            path.display(),
            expect.message,
            expect.line
        );
    }
    for e in &errs.0 {
        assert!(
            e.file.ends_with(file),
            "{}: error names file {} not {file}",
            path.display(),
            e.file
        );
    }
}

#[test]
fn bad_pipelines_fail_with_their_message_and_line() {
    let settings = pin_settings();
    let files = toml_files(&fixtures("pipelines/bad"));
    assert!(files.len() >= 20, "corpus has only {} files", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = expectation(&text, &path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let result = PipelineSpec::parse(&name, &text, &settings);
        check_failure(&path, result, &expect, &name);
    }
}

#[test]
fn good_pipelines_validate() {
    let settings = pin_settings();
    let files = toml_files(&fixtures("pipelines/good"));
    assert!(files.len() >= 3);
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        if let Err(e) = PipelineSpec::parse(&name, &text, &settings) {
            panic!("{name} should validate:\n{e}");
        }
    }
}

#[test]
fn multi_file_pipeline_validates_with_edges_across_files() {
    let mut settings = pin_settings();
    settings.pipeline.files = toml_files(&fixtures("pipelines/good/multi"));
    assert_eq!(settings.pipeline.files.len(), 2);
    let spec = PipelineSpec::load(&settings).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.sources.len(), 2);
    assert_eq!(spec.stages.len(), 1);
    assert_eq!(spec.stages[0].from, vec!["system", "pins"]);
    assert_eq!(spec.sinks.len(), 1);
}

#[test]
fn multi_file_errors_name_the_right_file() {
    let dir = std::env::temp_dir().join(format!("smollama-cfg-multi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.toml");
    let b = dir.join("b.toml");
    std::fs::write(&a, "[[source]]\nname = \"system\"\nkind = \"system\"\n").unwrap();
    std::fs::write(
        &b,
        "[[source]]\nname = \"system\"\nkind = \"system\"\n\n[[sink]]\nname = \"store\"\nkind = \"store\"\nfrom = [\"sytem\"]\n",
    )
    .unwrap();
    let mut settings = Settings::defaults();
    settings.pipeline.files = vec![a.clone(), b.clone()];
    let errs = PipelineSpec::load(&settings).unwrap_err();
    let dup = errs
        .0
        .iter()
        .find(|e| e.message.contains("used twice"))
        .expect("duplicate");
    assert_eq!(dup.file, b.display().to_string());
    assert_eq!(dup.line, Some(1));
    let dangling = errs
        .0
        .iter()
        .find(|e| e.message.contains("'sytem'"))
        .expect("dangling");
    assert_eq!(dangling.file, b.display().to_string());
    assert_eq!(dangling.line, Some(8));
    assert!(
        dangling
            .hint
            .as_deref()
            .unwrap()
            .contains("did you mean 'system'")
    );

    // A missing file is an error naming it.
    settings.pipeline.files = vec![a, dir.join("missing.toml")];
    let errs = PipelineSpec::load(&settings).unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert!(errs.0[0].file.ends_with("missing.toml"));
    assert!(errs.0[0].message.contains("cannot read pipeline file"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn all_errors_are_reported_not_only_the_first() {
    let text = "[[source]]\nname = \"system\"\nkind = \"sytem\"\n\n[[stage]]\nname = \"quiet\"\nkind = \"filter\"\nfrom = [\"nowhere\"]\ndeadband = -1\n";
    let errs = PipelineSpec::parse("x.toml", text, &Settings::defaults()).unwrap_err();
    assert!(errs.0.len() >= 2, "{errs}");
    assert!(
        errs.0
            .iter()
            .any(|e| e.message.contains("unknown source kind"))
    );
}

#[test]
fn default_pipeline_validates() {
    let spec = PipelineSpec::load(&Settings::defaults()).unwrap_or_else(|e| panic!("{e}"));
    // system, pins, nodes (mqtt); filter, adaptive, retention; store, observer, live
    // (events), mqtt batch, mqtt state
    assert_eq!(spec.sources.len(), 3);
    assert_eq!(spec.stages.len(), 3);
    assert_eq!(spec.sinks.len(), 5);
    assert!(
        spec.sinks
            .iter()
            .any(|s| s.kind.name == "events" && s.from == ["quiet"]),
        "the dashboard's events come from the filter"
    );
    let spec = PipelineSpec::load(&pin_settings()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.stages.len(), 3);
}

#[test]
fn bad_settings_fail_with_their_message_and_line() {
    let files = toml_files(&fixtures("config/bad"));
    assert!(files.len() >= 10);
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = expectation(&text, &path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let result = Settings::load_with_env(Some(&path), &[]);
        check_failure(&path, result, &expect, &name);
    }
}

#[test]
fn example_config_loads_and_matches_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/smollama.toml");
    let s = Settings::load_with_env(Some(&path), &[]).unwrap_or_else(|e| panic!("{e}"));
    // Every value in the shipped file is the default: the `.deb` and setup-pi.sh install it,
    // so an active example entry (a pin, say) would change what a fresh install does.
    let d = Settings::defaults();
    assert_eq!(
        Settings {
            file: None,
            origins: Vec::new(),
            ..s.clone()
        },
        d
    );
    // And the pipeline it selects (the default) validates with its pins.
    PipelineSpec::load(&s).unwrap_or_else(|e| panic!("{e}"));
}

/// Type errors speak the user's words, not the parser's: every message and hint of the
/// corpus is free of Rust and serde type names.
#[test]
fn corpus_errors_are_in_plain_words() {
    // ("boolean" stays: it names a kind of source, "system:throttled is a boolean".)
    const JARGON: [&str; 11] = [
        "i64",
        "u8",
        "u16",
        "u32",
        "invalid type",
        "must be a string",
        "a string",
        "a sequence",
        "an integer",
        "field `",
        "expected `",
    ];
    let settings = pin_settings();
    let mut all = String::new();
    for path in toml_files(&fixtures("pipelines/bad")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Err(e) = PipelineSpec::parse(&name, &text, &settings) {
            all.push_str(&format!("{e}\n"));
        }
    }
    for path in toml_files(&fixtures("config/bad")) {
        if let Err(e) = Settings::load_with_env(Some(&path), &[]) {
            all.push_str(&format!("{e}\n"));
        }
    }
    for line in all.lines().filter(|l| !l.contains("syntax_error.toml")) {
        for word in JARGON {
            assert!(!line.contains(word), "'{word}' in: {line}");
        }
    }
}

/// `cargo test --test config_errors dump -- --ignored --nocapture` prints every corpus error.
#[test]
#[ignore]
fn dump() {
    let settings = pin_settings();
    for path in toml_files(&fixtures("pipelines/bad")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Err(e) = PipelineSpec::parse(&name, &text, &settings) {
            println!("{e}\n");
        }
    }
    for path in toml_files(&fixtures("config/bad")) {
        if let Err(e) = Settings::load_with_env(Some(&path), &[]) {
            println!("{e}\n");
        }
    }
}

/// One file with a mistake in a key of every kind: each is reported, at its own line, in
/// line order, and the rest of the file is still checked.
#[test]
fn every_error_in_a_settings_file_is_reported_at_its_line() {
    let text = "\
[node]
name = 5
[store]
map_size_mb = 0
[http]
enabled = \"yes\"
idle_timeout = 30
[mqtt]
port = \"1883\"
max_clock_ahead = \"2d\"
[memory]
reinforce_similarity = \"high\"
[agent]
ask_topics = \"smollama/a/ask\"
fallback_mode = \"retry\"
[gpio]
backend = \"wiringpi\"

[[gpio.pins]]
pin = 40
name = \"a\"

[[gpio.pins]]
pin = 17
name = \"b\"
mode = \"in\"
[pipeline]
files = \"a.toml\"
";
    let errs = Settings::parse(Path::new("many.toml"), text).unwrap_err();
    let got: Vec<(Option<usize>, &str)> = errs
        .0
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    let want: Vec<(Option<usize>, &str)> = vec![
        (Some(2), "name: expected text in quotes, found the number 5"),
        (Some(4), "map_size_mb = 0 is out of range (1 to 65536)"),
        (
            Some(6),
            "enabled: expected true or false, found the text \"yes\"",
        ),
        (
            Some(7),
            "idle_timeout: expected a duration such as \"5m\", found the number 30",
        ),
        (
            Some(9),
            "port: expected a whole number such as 30, found the text \"1883\"",
        ),
        (Some(10), "max_clock_ahead = \"2d\" is out of range"),
        (
            Some(12),
            "reinforce_similarity: expected a number such as 0.5, found the text \"high\"",
        ),
        (
            Some(14),
            "ask_topics: expected a list of texts in quotes such as [\"a\", \"b\"], found the text \"smollama/a/ask\"",
        ),
        (Some(15), "unknown fallback_mode 'retry'"),
        (Some(17), "unknown gpio backend 'wiringpi'"),
        (Some(20), "pin 40 is not a GPIO pin"),
        (Some(26), "unknown pin mode 'in'"),
        (
            Some(28),
            "files: expected a list of texts in quotes such as [\"a\", \"b\"], found the text \"a.toml\"",
        ),
    ];
    assert_eq!(got, want, "{errs}");
    assert!(errs.0.iter().all(|e| e.hint.is_some()), "{errs}");
}

/// Every key of every kind can be set from the environment, lists and pins included,
/// and a bad value names its variable.
#[test]
fn environment_sets_every_kind_of_key() {
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let s = Settings::load_with_env(
        None,
        &env(&[
            ("SMOLLAMA_MQTT_KEEPALIVE", "2m"),
            ("SMOLLAMA_MEMORY_MERGE_SIMILARITY", "0.8"),
            ("SMOLLAMA_AGENT_QUEUE_MAX", "7"),
            ("SMOLLAMA_MQTT_DISCOVERY", "off"),
            ("SMOLLAMA_OLLAMA_MODEL", "qwen3:1.7b"),
            ("SMOLLAMA_AGENT_ASK_TOPICS", "a/ask, b/#"),
            (
                "SMOLLAMA_GPIO_PINS",
                "17:motion:input:pull=up, 27:led:output:initial=true",
            ),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.mqtt.keepalive, 120_000_000);
    assert_eq!(s.memory.merge_similarity, 0.8);
    assert_eq!(s.agent.queue_max, 7);
    assert!(!s.mqtt.discovery);
    assert_eq!(s.ollama.model, "qwen3:1.7b");
    assert_eq!(s.agent.ask_topics, ["a/ask", "b/#"]);
    assert_eq!(
        s.gpio.pins,
        vec![
            PinConfig {
                pin: 17,
                name: "motion".into(),
                mode: PinMode::Input,
                pull: Pull::Up,
                initial: false,
            },
            PinConfig {
                pin: 27,
                name: "led".into(),
                mode: PinMode::Output,
                pull: Pull::Down,
                initial: true,
            },
        ]
    );
    for (var, value, words) in [
        (
            "SMOLLAMA_MQTT_KEEPALIVE",
            "5 minutes",
            "unknown unit 'minutes'",
        ),
        (
            "SMOLLAMA_MQTT_KEEPALIVE",
            "1s",
            "keepalive = \"1s\" is out of range",
        ),
        (
            "SMOLLAMA_MEMORY_MERGE_SIMILARITY",
            "high",
            "expected a number such as 0.5, found \"high\"",
        ),
        (
            "SMOLLAMA_MEMORY_MERGE_SIMILARITY",
            "1.5",
            "merge_similarity = 1.5 is out of range (0 to 1)",
        ),
        (
            "SMOLLAMA_AGENT_QUEUE_MAX",
            "0",
            "queue_max = 0 is out of range (1 to 100000)",
        ),
        ("SMOLLAMA_AGENT_ASK_TOPICS", "a/#/b", "ask_topics: 'a/#/b'"),
        ("SMOLLAMA_GPIO_PINS", "x:motion", "'x' is not a pin number"),
        ("SMOLLAMA_GPIO_PINS", "17", "has no name"),
        (
            "SMOLLAMA_GPIO_PINS",
            "17:a,17:b",
            "pin 17 is configured twice",
        ),
        (
            "SMOLLAMA_GPIO_PINS",
            "17:a:sideways",
            "unknown pin mode 'sideways'",
        ),
        (
            "SMOLLAMA_GPIO_PINS",
            "17:a:initial=maybe",
            "initial=maybe is not true or false",
        ),
        (
            "SMOLLAMA_MQTT_RECONNECT_MIN",
            "5m",
            "reconnect_min is longer than reconnect_max",
        ),
    ] {
        let e = Settings::load_with_env(None, &env(&[(var, value)])).unwrap_err();
        assert_eq!(e.0.len(), 1, "{var}={value}: {e}");
        assert_eq!(e.0[0].file, format!("environment variable {var}"), "{e}");
        assert!(e.0[0].message.contains(words), "{var}={value}: {e}");
    }
}

/// Every settings error of the corpus says what to do, not only what is wrong.
#[test]
fn every_settings_error_has_a_hint() {
    for path in toml_files(&fixtures("config/bad")) {
        let errs = Settings::load_with_env(Some(&path), &[]).unwrap_err();
        for e in &errs.0 {
            assert!(
                e.hint.as_deref().is_some_and(|h| !h.is_empty()),
                "{}: no hint for: {e}",
                path.display()
            );
        }
    }
}

/// The file's problems and the environment's are reported together, in one run.
#[test]
fn file_and_environment_errors_are_reported_together() {
    let dir = std::env::temp_dir().join(format!("smollama-cfg-both-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("s.toml");
    std::fs::write(&cfg, "[store]\nmap_size_mb = 0\n").unwrap();
    let env = vec![("SMOLLAMA_HTTP_BIND".to_string(), "nope".to_string())];
    let errs = Settings::load_with_env(Some(&cfg), &env).unwrap_err();
    let places: Vec<(&str, Option<usize>)> =
        errs.0.iter().map(|e| (e.file.as_str(), e.line)).collect();
    assert_eq!(
        places,
        vec![
            (cfg.to_str().unwrap(), Some(2)),
            ("environment variable SMOLLAMA_HTTP_BIND", None)
        ],
        "{errs}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
