//! Plugin manifests in `[plugins] dir`: `smollama plugins check` reports every problem
//! with its file, line and a hint (exit 2), and `smollama plugins list` shows a discovered
//! tool with the file that declares it, beside the built-in kinds.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// An executable script in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn check(dir: &Path) -> (i32, String, String) {
    run_cli(
        &["plugins", "check"],
        &[("SMOLLAMA_PLUGINS_DIR", dir.to_str().unwrap())],
    )
}

fn good_manifest(prog: &Path) -> String {
    format!(
        r#"kind = "tool"
type = "exec"
name = "disk_free"
version = "1.2.0"
description = "Free space on a mounted file system, in MiB."
command = ["{}", "--json"]
timeout = "5s"

[parameters]
type = "object"
required = ["path"]

[parameters.properties.path]
type = "string"
description = "A mount point such as /"
"#,
        prog.display()
    )
}

#[test]
fn plugins_check_accepts_good_manifests_and_a_missing_directory() {
    let dir = TempDir::new("plugins-good");
    let prog = script(dir.path(), "df.sh", "#!/bin/sh\necho '{}'\n");
    let plugins = dir.path().join("plugins.d");
    let (code, out, err) = check(&plugins);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no plugin manifests"), "{out}");

    std::fs::create_dir(&plugins).unwrap();
    std::fs::write(plugins.join("df.toml"), good_manifest(&prog)).unwrap();
    std::fs::write(plugins.join("README"), "not a manifest").unwrap();
    let (code, out, err) = check(&plugins);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("df.toml: tool disk_free"), "{out}");
    assert!(out.contains("1 of 1 plugin manifests"), "{out}");
}

#[test]
fn plugins_check_reports_every_problem_with_file_line_and_hint() {
    let dir = TempDir::new("plugins-bad");
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).unwrap();
    let prog = script(dir.path(), "ok.sh", "#!/bin/sh\necho '{}'\n");
    std::fs::write(plugins.join("a-good.toml"), good_manifest(&prog)).unwrap();
    // Several problems in one file: a bad type, an unknown key, a bad duration.
    std::fs::write(
        plugins.join("b-several.toml"),
        format!(
            "kind = \"tool\"\ntype = \"exec\"\nname = \"several\"\ndescription = \"d\"\ncommand = [\"{}\"]\nmax_output_kb = \"64\"\ntimout = \"5s\"\nwrites = 1\n",
            prog.display()
        ),
    )
    .unwrap();
    std::fs::write(
        plugins.join("c-nocommand.toml"),
        "kind = \"tool\"\ntype = \"exec\"\nname = \"nocommand\"\ndescription = \"d\"\n",
    )
    .unwrap();
    std::fs::write(
        plugins.join("d-missing.toml"),
        "kind = \"tool\"\ntype = \"exec\"\nname = \"missing\"\ndescription = \"d\"\n\ncommand = [\"/opt/nowhere/prog\"]\n",
    )
    .unwrap();
    let (code, out, err) = check(&plugins);
    assert_eq!(code, 2, "{out}{err}");
    let f = |name: &str| plugins.join(name).display().to_string();
    for (at, words, hint) in [
        (
            format!(
                "{}:6: max_output_kb: expected a whole number",
                f("b-several.toml")
            ),
            "found the text \"64\"",
            "write the number without quotes: 64",
        ),
        (
            format!("{}:7: unknown key `timout`", f("b-several.toml")),
            "",
            "did you mean 'timeout'?",
        ),
        (
            format!("{}:8: writes: expected true or false", f("b-several.toml")),
            "",
            "write true or false, not a number",
        ),
        (
            format!("{}:1: `command` is missing", f("c-nocommand.toml")),
            "",
            "command = [",
        ),
        (
            format!(
                "{}:6: command: /opt/nowhere/prog does not exist",
                f("d-missing.toml")
            ),
            "",
            "check the path",
        ),
    ] {
        let line = err
            .lines()
            .position(|l| l.contains(&at))
            .unwrap_or_else(|| panic!("no '{at}' in:\n{err}"));
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines[line].contains(words), "{}", lines[line]);
        assert!(
            lines[line + 1].contains("hint:") && lines[line + 1].contains(hint),
            "{at}: {}",
            lines[line + 1]
        );
    }
    assert!(err.contains("a-good.toml: tool disk_free"), "{err}");
    assert!(err.contains("1 of 4 plugin manifests"), "{err}");
}

#[test]
fn plugins_list_shows_a_discovered_tool_with_its_file() {
    let dir = TempDir::new("plugins-list");
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).unwrap();
    let prog = script(dir.path(), "df.sh", "#!/bin/sh\necho '{}'\n");
    std::fs::write(plugins.join("df.toml"), good_manifest(&prog)).unwrap();
    std::fs::write(
        plugins.join("broken.toml"),
        "kind = \"tool\"\ntype = \"exec\"\nname = \"broken\"\ndescription = \"d\"\ncommand = \"/bin/true\"\n",
    )
    .unwrap();
    let env = [("SMOLLAMA_PLUGINS_DIR", plugins.to_str().unwrap())];
    let (code, out, err) = run_cli(&["plugins", "list", "--json"], &env);
    assert_eq!(code, 0, "{err}");
    let all: Vec<Value> = serde_json::from_str(&out).unwrap();
    let t = all
        .iter()
        .find(|k| k["name"] == "disk_free")
        .expect("the manifest's tool is listed");
    assert_eq!(t["role"], "tool");
    assert_eq!(t["version"], "1.2.0");
    assert_eq!(t["status"], "ok");
    assert_eq!(t["declared"], plugins.join("df.toml").display().to_string());
    assert_eq!(t["params"][0]["name"], "path");
    assert_eq!(t["params"][0]["default"], "(required)");
    let b = all.iter().find(|k| k["name"] == "broken").unwrap();
    assert!(
        b["status"]
            .as_str()
            .unwrap()
            .starts_with("invalid: line 5: command: expected a list of texts"),
        "{b}"
    );
    let system = all.iter().find(|k| k["name"] == "system").unwrap();
    assert_eq!(
        (system["status"].as_str(), system["declared"].as_str()),
        (Some("built in"), None)
    );

    let (code, text, _) = run_cli(&["plugins", "list"], &env);
    assert_eq!(code, 0);
    let at = text
        .lines()
        .position(|l| {
            l.starts_with("tool   disk_free") && l.contains("1.2.0") && l.contains(" ok ")
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        text.lines().nth(at + 1).unwrap().trim(),
        format!("declared in {}", plugins.join("df.toml").display())
    );
}
