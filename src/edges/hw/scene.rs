//! What the mock devices sense: `[hardware] mock_scene`, a small TOML file re-read when it
//! changes, so a test (or a demo) can warm the room, move an obstacle or unplug a sensor
//! while the agent runs.
//!
//! ```toml
//! temperature = 21.5        # °C, every mock sensor unless its own table says otherwise
//! humidity = 45.0           # %RH
//! pressure = 1013.25        # hPa
//! distance = 0.42           # metres, to the HC-SR04's obstacle
//! absent = ["i2c-1:0x76"]   # devices that stop answering (NACK, no echo)
//! timeout = ["spi-0.0"]     # devices whose transactions hang until the bus times out
//! ["i2c-1:0x77"]            # one device's own values
//! temperature = 30.0
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One reading of the scene file. `Default` is the empty scene: every model's defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SceneData {
    values: HashMap<String, f64>,
    devices: HashMap<String, HashMap<String, f64>>,
    absent: Vec<String>,
    timeout: Vec<String>,
}

impl SceneData {
    /// `key` for `device`: its own table first, then the top level.
    pub fn value(&self, device: &str, key: &str) -> Option<f64> {
        self.devices
            .get(device)
            .and_then(|t| t.get(key))
            .or_else(|| self.values.get(key))
            .copied()
    }

    /// The same with the model's default.
    pub fn value_or(&self, device: &str, key: &str, default: f64) -> f64 {
        self.value(device, key).unwrap_or(default)
    }

    /// Whether `device` (`i2c-1:0x76`, `spi-0.0`, `gpio-23`) is unplugged in the scene.
    pub fn absent(&self, device: &str) -> bool {
        self.absent.iter().any(|d| d == device)
    }

    pub fn times_out(&self, device: &str) -> bool {
        self.timeout.iter().any(|d| d == device)
    }

    /// Parse a scene file's text; an error says what is wrong in plain words.
    pub fn parse(text: &str) -> Result<SceneData, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let mut scene = SceneData::default();
        for (k, v) in table {
            match (k.as_str(), v) {
                ("absent" | "timeout", toml::Value::Array(items)) => {
                    let mut names = Vec::new();
                    for item in items {
                        match item {
                            toml::Value::String(s) => names.push(s),
                            other => {
                                return Err(format!(
                                    "{k}: expected device names such as \"i2c-1:0x76\", found {other}"
                                ));
                            }
                        }
                    }
                    if k == "absent" {
                        scene.absent = names;
                    } else {
                        scene.timeout = names;
                    }
                }
                (_, toml::Value::Table(t)) => {
                    let mut own = HashMap::new();
                    for (key, v) in t {
                        own.insert(
                            key.clone(),
                            number(&v).ok_or_else(|| {
                                format!("[\"{k}\"] {key}: expected a number, found {v}")
                            })?,
                        );
                    }
                    scene.devices.insert(k, own);
                }
                (_, v) => {
                    let n =
                        number(&v).ok_or_else(|| format!("{k}: expected a number, found {v}"))?;
                    scene.values.insert(k, n);
                }
            }
        }
        Ok(scene)
    }
}

fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Float(f) => Some(*f),
        toml::Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// The scene file, cached: `current` re-reads it only when its modification time or size
/// changed (one `stat` per mock transaction). A file that does not parse is logged once
/// and the last good scene stays.
pub struct Scene {
    path: Option<PathBuf>,
    cache: Mutex<Cached>,
}

struct Cached {
    stamp: Option<(SystemTime, u64)>,
    data: Arc<SceneData>,
}

impl Scene {
    /// The scene of `path`; an empty path is the empty scene.
    pub fn new(path: &Path) -> Scene {
        Scene {
            path: (!path.as_os_str().is_empty()).then(|| path.to_path_buf()),
            cache: Mutex::new(Cached {
                stamp: None,
                data: Arc::new(SceneData::default()),
            }),
        }
    }

    /// The scene as the file says now.
    pub fn current(&self) -> Arc<SceneData> {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let Some(path) = &self.path else {
            return c.data.clone();
        };
        let stamp = std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp != c.stamp {
            c.stamp = stamp;
            match std::fs::read_to_string(path) {
                Ok(text) => match SceneData::parse(&text) {
                    Ok(data) => c.data = Arc::new(data),
                    Err(e) => log::warn!(
                        "hardware: mock scene {}: {e}; keeping the previous scene",
                        path.display()
                    ),
                },
                // A scene removed is the empty scene again.
                Err(_) => c.data = Arc::new(SceneData::default()),
            }
        }
        c.data.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tables_override_the_top_level() {
        let s = SceneData::parse(
            "temperature = 21.5\nabsent = [\"i2c-1:0x76\"]\n[\"i2c-1:0x77\"]\ntemperature = 30\n",
        )
        .unwrap();
        assert_eq!(s.value("i2c-1:0x76", "temperature"), Some(21.5));
        assert_eq!(s.value("i2c-1:0x77", "temperature"), Some(30.0));
        assert_eq!(s.value("i2c-1:0x77", "humidity"), None);
        assert!(s.absent("i2c-1:0x76") && !s.absent("i2c-1:0x77"));
        assert!(SceneData::parse("temperature = \"warm\"").is_err());
        assert!(SceneData::parse("absent = [1]").is_err());
    }

    #[test]
    fn the_file_is_reread_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("smollama-scene-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scene.toml");
        std::fs::write(&path, "distance = 1.0\n").unwrap();
        let scene = Scene::new(&path);
        assert_eq!(scene.current().value("x", "distance"), Some(1.0));
        std::fs::write(&path, "distance = 0.25\nabsent = [\"x\"]\n").unwrap();
        assert_eq!(scene.current().value("x", "distance"), Some(0.25));
        assert!(scene.current().absent("x"));
        // Garbage keeps the last good scene.
        std::fs::write(&path, "distance = = =\n").unwrap();
        assert_eq!(scene.current().value("x", "distance"), Some(0.25));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(scene.current().value("x", "distance"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
