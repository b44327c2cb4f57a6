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
    // system, pins, nodes (mqtt); filter, adaptive, retention; store, observer, mqtt batch, mqtt state
    assert_eq!(spec.sources.len(), 3);
    assert_eq!(spec.stages.len(), 3);
    assert_eq!(spec.sinks.len(), 4);
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
