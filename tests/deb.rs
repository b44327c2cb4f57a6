//! The `cargo deb` metadata agrees with the unit and the files in the repository, checked
//! without building a package (that takes minutes; docs/raspberry-pi.md shows how).

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn deb_metadata() -> toml::Table {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

/// (source, destination) of every asset; a destination ending in `/` takes the source's
/// file name, as cargo-deb does.
fn assets(deb: &toml::Table) -> Vec<(String, String)> {
    deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            let src = a[0].as_str().unwrap().to_string();
            let mut dest = format!("/{}", a[1].as_str().unwrap().trim_start_matches('/'));
            if dest.ends_with('/') {
                dest.push_str(Path::new(&src).file_name().unwrap().to_str().unwrap());
            }
            (src, dest)
        })
        .collect()
}

fn unit() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("systemd/smollama.service")).unwrap()
}

fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key}= in the unit"))
}

#[test]
fn every_asset_exists_and_the_unit_runs_what_the_package_installs() {
    let deb = deb_metadata();
    let assets = assets(&deb);
    for (src, _) in &assets {
        if let Some(bin) = src.strip_prefix("target/release/") {
            // Built by `cargo deb`; it must be this package's binary.
            assert_eq!(bin, env!("CARGO_PKG_NAME"));
        } else {
            assert!(Path::new(ROOT).join(src).is_file(), "asset {src} missing");
        }
    }
    let unit = unit();
    let exec = unit_value(&unit, "ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    let binary = assets
        .iter()
        .find(|(src, _)| src.starts_with("target/release/"))
        .map(|(_, dest)| dest.as_str());
    assert_eq!(
        Some(words[0]),
        binary,
        "ExecStart runs what the package installs"
    );

    // The config the unit names is installed from config/smollama.toml, as a conffile.
    let config = words
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1])
        .expect("ExecStart names --config");
    assert!(
        assets
            .iter()
            .any(|(src, dest)| src == "config/smollama.toml" && dest == config),
        "config/smollama.toml is installed at {config}"
    );
    let conf_files: Vec<&str> = deb["conf-files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        conf_files.contains(&config),
        "{config} is a conffile: {conf_files:?}"
    );
}

#[test]
fn the_unit_and_maintainer_scripts_are_where_cargo_deb_looks() {
    let deb = deb_metadata();
    let units = deb["systemd-units"]["unit-scripts"].as_str().unwrap();
    let name = format!("{}.service", env!("CARGO_PKG_NAME"));
    assert!(Path::new(ROOT).join(units).join(&name).is_file());

    // cargo-deb inserts its systemd snippets at #DEBHELPER#; scripts without it are refused.
    let dir = Path::new(ROOT).join(deb["maintainer-scripts"].as_str().unwrap());
    let postinst = std::fs::read_to_string(dir.join("postinst")).unwrap();
    let postrm = std::fs::read_to_string(dir.join("postrm")).unwrap();
    for (name, text) in [("postinst", &postinst), ("postrm", &postrm)] {
        assert!(text.contains("#DEBHELPER#"), "{name} lacks #DEBHELPER#");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join(name)).unwrap().permissions(),
        );
        assert!(mode & 0o111 != 0, "{name} is not executable");
    }
    // postinst creates the user the unit runs as, before the snippet that starts it, and
    // lets that group read the config.
    let unit = unit();
    let user = unit_value(&unit, "User");
    let group = unit_value(&unit, "Group");
    let created = postinst
        .find("adduser --system")
        .expect("postinst creates a system user");
    assert!(created < postinst.find("#DEBHELPER#").unwrap());
    assert!(postinst.contains(&format!("getent passwd {user}")));
    assert!(postinst.contains(&format!("--add root {group} 0640")));
    // Data goes only on purge.
    let purge = postrm.find("\"$1\" = purge").expect("postrm handles purge");
    assert!(postrm.find("rm -rf /var/lib/smollama").unwrap() > purge);
}

#[test]
fn maintainer_scripts_pass_shellcheck() {
    // shellcheck is installed by ./scripts/test and .ci/run.
    let out = Command::new("shellcheck")
        .arg(Path::new(ROOT).join("debian/postinst"))
        .arg(Path::new(ROOT).join("debian/postrm"))
        .arg(Path::new(ROOT).join("scripts/release-sizes.sh"))
        .output()
        .expect("shellcheck (apt-get install shellcheck)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
