//! The pipeline examples of the kernel-driven sensors and the contract file pass
//! `smollama pipeline check` (exactly the validation `run` does), each uses the kind it
//! documents, and a wrong parameter of each kind is named with its file, line and a hint.

mod common;

use common::*;

/// Each example, the kinds it must use and what its comments must tell a user (the
/// overlay line and the resistor; the contract's shape).
const EXAMPLES: &[(&str, &[&str], &[&str])] = &[
    (
        "dht22.toml",
        &["dht22"],
        &["dtoverlay=dht11,gpiopin=4", "10 kΩ pull-up"],
    ),
    (
        "ds18b20.toml",
        &["ds18b20"],
        &["dtoverlay=w1-gpio,gpiopin=4", "4.7 kΩ pull-up"],
    ),
    ("iio.toml", &["iio"], &["dtoverlay=i2c-sensor,bmp280"]),
    (
        "contract_file.toml",
        &["contract_file"],
        &["\"readings\": [{\"name\""],
    ),
];

fn example(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines/examples")
        .join(name)
}

#[test]
fn every_example_passes_pipeline_check_and_uses_its_kind() {
    for (file, kinds, says) in EXAMPLES {
        let path = example(file);
        let text = std::fs::read_to_string(&path).unwrap();
        for k in *kinds {
            assert!(
                text.contains(&format!("kind = \"{k}\"")),
                "{file} does not use {k}"
            );
        }
        for phrase in *says {
            assert!(text.contains(phrase), "{file} should say {phrase}");
        }
        assert!(
            text.contains("smollama pipeline check"),
            "{file}: say how to check it"
        );
        let (code, out, err) = run_cli(&["pipeline", "check", path.to_str().unwrap()], &[]);
        assert_eq!(code, 0, "{file}: {out}{err}");
        assert!(out.starts_with("ok:"), "{file}: {out}");
    }
}

#[test]
fn a_wrong_parameter_of_each_kind_is_named_with_its_line_and_a_hint() {
    let dir = TempDir::new("examples-sysfs-bad");
    let cases: &[(&str, &str, &str)] = &[
        (
            "kind = \"dht22\"\nmin_interval = \"500ms\"",
            "a DHT needs at least 1s between reads",
            "at least 1s",
        ),
        (
            "kind = \"dht11\"\npin = 40",
            "40 is out of range",
            "BCM GPIO number 0-27",
        ),
        (
            "kind = \"dht11\"\nroot = \"sys\"",
            "'sys' is not an absolute path",
            "root = \"/sys\"",
        ),
        (
            "kind = \"ds18b20\"\ndevice = \"0316a2795aff\"",
            "is not a 1-wire id",
            "ls /sys/bus/w1/devices/",
        ),
        (
            "kind = \"iio\"\ndevice = \"bmp280\"\nchannels = [\"in_pressure_raw\"]",
            "without _raw or _input",
            "write \"in_pressure\"",
        ),
        (
            "kind = \"iio\"\ndevice = \"bmp280\"\nchannels = [\"in_pressure\"]\nunits = [\"kPa\", \"x\"]",
            "2 units for 1 channels",
            "one unit per channel",
        ),
        (
            "kind = \"iio\"\nchannels = [\"in_pressure\"]",
            "has no device",
            "add device = \"bmp280\"",
        ),
        (
            "kind = \"contract_file\"\nsource_type = \"system\"",
            "built-in system source",
            "a type of its own",
        ),
        (
            "kind = \"contract_file\"\npath = \"contract.json\"",
            "neither absolute nor under ~/",
            "path =",
        ),
        (
            "kind = \"contract_file\"\nmax_kb = 0",
            "0 is out of range",
            "1-16384",
        ),
    ];
    for (i, (params, msg, hint)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(
            &path,
            format!(
                "[[source]]\nname = \"s\"\n{params}\n\n[[sink]]\nname = \"store\"\nkind = \"store\"\nfrom = [\"s\"]\n"
            ),
        )
        .unwrap();
        let (code, _, err) = run_cli(&["pipeline", "check", path.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{params}: {err}");
        // The line of the wrong key (or of the node, for a missing one).
        let line = params.lines().count() + 2;
        let want_line = if msg.starts_with("has no") { 1 } else { line };
        assert!(
            err.contains(&format!("bad{i}.toml:{want_line}:")),
            "{params}: {err}"
        );
        assert!(err.contains(msg), "{params}: {err}");
        assert!(
            err.contains("hint:") && err.contains(hint),
            "{params}: {err}"
        );
    }
}
