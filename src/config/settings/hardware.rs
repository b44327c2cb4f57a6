//! `[hardware]`: how attached devices other than `[gpio]` pins are reached (I2C and SPI
//! buses) and, off a Pi, what the mock devices sense.

use std::path::PathBuf;

use super::key::{Key, Section, path, problem_hint, quoted};
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::config::suggest;

/// Which buses the hardware kinds talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusChoice {
    /// rppal where the bus device exists (`/dev/i2c-N`, `/dev/spidevB.C`), a mock device
    /// model elsewhere (announced in the log).
    Auto,
    Mock,
    Rppal,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HardwareSettings {
    pub backend: BusChoice,
    /// A TOML file of what the mock devices sense (temperature, distance, which devices
    /// are absent), re-read when it changes. Empty path: the models' defaults.
    pub mock_scene: PathBuf,
}

const BACKENDS: &[&str] = &["auto", "mock", "rppal"];

pub(crate) const SECTION: Section = Section {
    name: "hardware",
    doc: "",
    keys: &[
        Key {
            choices: BACKENDS,
            ..Key::new(
                Spec {
                    default: "\"auto\"",
                    doc: "I2C and SPI buses for the hardware kinds (bme280, lcd1602, ...): \"auto\": the real bus where its device file exists (/dev/i2c-1 after `raspi-config nonint do_i2c 0`), else a mock device model (announced in the log); \"mock\": always the models; \"rppal\": real buses, a device's node is unavailable without one. GPIO pins follow [gpio] backend.",
                    ..Spec::new("backend", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    s.hardware.backend = match v.as_str() {
                        "auto" => BusChoice::Auto,
                        "mock" => BusChoice::Mock,
                        "rppal" => BusChoice::Rppal,
                        _ => {
                            return Err((
                                format!("unknown hardware backend '{v}'"),
                                Some(suggest::hint(&v, "backends", BACKENDS)),
                            ));
                        }
                    };
                    Ok(())
                },
                |s| {
                    quoted(match s.hardware.backend {
                        BusChoice::Auto => "auto",
                        BusChoice::Mock => "mock",
                        BusChoice::Rppal => "rppal",
                    })
                },
            )
        },
        Key::new(
            Spec {
                default: "\"\"",
                doc: "Mock devices only: a TOML file of what they sense, re-read when it changes (top-level numbers such as temperature = 21.5, humidity, pressure in hPa, distance in metres; a [\"i2c-1:0x76\"] table for one device; absent = [\"i2c-1:0x76\"] for devices that stop answering, timeout = [...] for ones that hang). Empty: each model's defaults. See docs/hardware.md.",
                hint: "a file such as \"/tmp/scene.toml\", or \"\" for none",
                ..Spec::new("mock_scene", Want::Text)
            },
            |s, v, place| {
                let v = v.text()?;
                if v.trim() != v {
                    return Err(problem_hint(
                        "hardware mock_scene has surrounding spaces",
                        "write the path without them",
                    ));
                }
                s.hardware.mock_scene = if v.is_empty() {
                    PathBuf::new()
                } else {
                    place.resolve(v)
                };
                Ok(())
            },
            |s| {
                if s.hardware.mock_scene.as_os_str().is_empty() {
                    quoted("")
                } else {
                    path(&s.hardware.mock_scene)
                }
            },
        ),
    ],
};
