//! The GPIO device examples under `pipelines/examples/` are valid pipelines: each passes
//! `smollama pipeline check` (the validation `run` does) with a mock-GPIO config.

mod common;

use common::*;

fn check(example: &str) {
    let dir = TempDir::new("examples-gpio");
    let cfg = dir.path().join("smollama.toml");
    std::fs::write(
        &cfg,
        format!(
            "[node]\ndata_dir = \"{}\"\n\n[gpio]\nbackend = \"mock\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let file = format!(
        "{}/pipelines/examples/{example}",
        env!("CARGO_MANIFEST_DIR")
    );
    let (code, out, err) = run_cli(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "pipeline",
            "check",
            &file,
        ],
        &[],
    );
    assert_eq!(code, 0, "{example}:\n{out}\n{err}");
    assert!(out.starts_with("ok: "), "{out}");
}

#[test]
fn hcsr04_example_is_valid() {
    check("hcsr04.toml");
}

#[test]
fn led_example_is_valid() {
    check("led.toml");
}

#[test]
fn seven_segment_example_is_valid() {
    check("seven_segment.toml");
}
