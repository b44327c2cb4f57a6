//! The I2C device examples under `pipelines/examples/` (bme280, lcd1602) pass
//! `smollama pipeline check` as shipped: what a user copies must be valid. (Only these
//! files: the other examples have their own test.)

mod common;

use common::run_cli;

#[test]
fn the_i2c_examples_pass_pipeline_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/examples");
    for name in ["bme280.toml", "lcd1602.toml"] {
        let path = dir.join(name);
        assert!(path.exists(), "{} is missing", path.display());
        let (code, out, err) = run_cli(&["pipeline", "check", path.to_str().unwrap()], &[]);
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert!(out.starts_with("ok: "), "{name}: {out}");
    }
}
