//! The agent's settings (`smollama.toml`): the `Settings` types, their lookup, and the
//! one declaration per key that drives everything else.
//!
//! Each `[section]` has its own file (`node.rs` ... `pipeline.rs`) holding its struct and
//! its key table: every key's [`Spec`](crate::config::spec::Spec) (type, range, default
//! as TOML text, doc, hint) beside a small setter and shower. From those tables:
//! `Settings::defaults` (the declared defaults), `file.rs` (the file, parsed once with
//! spans: every error with its line, all of them at once), `env.rs`
//! (`SMOLLAMA_<SECTION>_<KEY>`), and `render.rs` (`smollama config check`, `smollama config
//! default` = `config/smollama.toml`, and the key table of `docs/configuration.md`).
//!
//! Adding a key: a field in the section's struct, its "unset" value in
//! `Settings::unset`, and a `Key` in the section's table (declaration, setter, shower);
//! then `BLESS=1 cargo test --test config_docs` rewrites `config/smollama.toml` and
//! `docs/configuration.md`, and the declaration tests below check the rest.

mod agent;
mod discovery;
mod env;
mod file;
mod gpio;
mod hardware;
mod http;
mod key;
mod llm;
mod log;
mod memory;
mod mqtt;
mod node;
mod ollama;
mod openclaw;
mod pipeline;
mod plugins;
pub mod render;
mod store;
mod sync;

use std::path::{Path, PathBuf};

pub use agent::{AgentSettings, DEFAULT_SYSTEM_PROMPT, FallbackMode};
pub use discovery::DiscoverySettings;
pub use gpio::{GpioBackendChoice, GpioSettings, PinConfig, PinMode, Pull};
pub use hardware::{BusChoice, HardwareSettings};
pub use http::HttpSettings;
pub use llm::{Backend, LlmSettings, Structured};
pub use log::{LogFormat, LogSettings};
pub use memory::MemorySettings;
pub use mqtt::{MqttSettings, Secret};
pub use node::NodeSettings;
pub use ollama::{OllamaSettings, valid_keep_alive};
pub use openclaw::OpenclawSettings;
pub use pipeline::PipelineSettings;
pub use plugins::PluginsSettings;
pub use store::StoreSettings;
pub use sync::SyncSettings;

use super::error::{ConfigError, ConfigErrors};
use crate::graph::Micros;
/// Spanned TOML as plain values, for plugin manifests (read the same way as settings).
pub(crate) use key::plain;
use key::{Place, Section};

/// Every section, in the order of the default file and the docs.
pub(crate) const SECTIONS: &[Section] = &[
    node::SECTION,
    store::SECTION,
    http::SECTION,
    log::SECTION,
    mqtt::SECTION,
    ollama::SECTION,
    llm::SECTION,
    agent::SECTION,
    memory::SECTION,
    sync::SECTION,
    openclaw::SECTION,
    discovery::SECTION,
    gpio::SECTION,
    hardware::SECTION,
    pipeline::SECTION,
    plugins::SECTION,
];

/// The effective settings: declared defaults, then the file, then the environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The file these settings came from; `None` for built-in defaults.
    pub file: Option<PathBuf>,
    /// Where each key that is not at its default was set, so an error about its value can
    /// say what to change (see [`Settings::origin`]).
    pub origins: Vec<(String, Origin)>,
    pub node: NodeSettings,
    pub store: StoreSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub mqtt: MqttSettings,
    pub ollama: OllamaSettings,
    pub llm: LlmSettings,
    pub agent: AgentSettings,
    pub memory: MemorySettings,
    pub sync: SyncSettings,
    pub openclaw: OpenclawSettings,
    pub discovery: DiscoverySettings,
    pub gpio: GpioSettings,
    pub hardware: HardwareSettings,
    pub pipeline: PipelineSettings,
    pub plugins: PluginsSettings,
}

/// Where a setting's value came from, so an error can name what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Not set: the built-in default (some are derived from the environment, e.g. `$HOME`).
    Default,
    /// A line of the settings file.
    File { path: PathBuf, line: usize },
    /// A `SMOLLAMA_*` environment variable.
    Env(String),
    /// The command line (`run --host/--port`, the files given to `smollama pipeline check`).
    CommandLine,
}

impl Settings {
    /// Built-in defaults: every key's declared default, the data directory resolved from
    /// the environment.
    pub fn defaults() -> Settings {
        let mut s = Settings::unset();
        let place = Place { base: None };
        for section in SECTIONS {
            for k in section.keys.iter().filter(|k| !k.spec.default.is_empty()) {
                if k.spec.want == super::expect::Want::Tables {
                    continue; // pins: none by default
                }
                // The declarations are static and checked by `every_default_sets`.
                let v = toml::de::DeValue::parse(k.spec.default)
                    .map_err(|e| (e.to_string(), None))
                    .and_then(|v| key::from_file(k, v.get_ref()))
                    .and_then(|v| (k.set)(&mut s, v, &place));
                if let Err((m, _)) = v {
                    panic!(
                        "[{}] {}: bad declared default: {m}",
                        section.name, k.spec.name
                    );
                }
            }
        }
        s
    }

    #[cfg(test)]
    fn defaults_with_file(path: &str) -> Settings {
        Settings {
            file: Some(PathBuf::from(path)),
            ..Settings::defaults()
        }
    }

    /// Every field before the declared defaults are applied: what a key without a
    /// default means (unset, empty, derived).
    fn unset() -> Settings {
        Settings {
            file: None,
            origins: Vec::new(),
            node: NodeSettings {
                name: String::new(),
                data_dir: default_data_dir(),
            },
            store: StoreSettings {
                map_size_mb: 0,
                head_rows: 0,
                fold_every: 0,
            },
            http: HttpSettings {
                bind: http::UNSET_BIND,
                token: None,
                enabled: false,
                max_connections: 0,
                idle_timeout: 0,
                request_timeout: 0,
                max_request_line_kb: 0,
                max_header_kb: 0,
                max_headers: 0,
                max_body_kb: 0,
                max_streams: 0,
                events_buffer: 0,
                events_buffer_kb: 0,
                events_keepalive: 0,
                max_sessions: 0,
                session_ttl: 0,
            },
            log: LogSettings {
                level: None,
                format: LogFormat::Auto,
            },
            mqtt: MqttSettings {
                broker: None,
                port: 0,
                client_id: None,
                username: None,
                password: None,
                keepalive: 0,
                clean_session: false,
                topic_prefix: None,
                state_prefix: None,
                reconnect_min: 0,
                reconnect_max: 0,
                outbox_max_messages: 0,
                outbox_max_mb: 0,
                max_payload_kb: 0,
                max_remote_sources: 0,
                max_sources_per_node: 0,
                max_reading_age: 0,
                max_clock_ahead: 0,
                inflight: 0,
                recent_per_topic: 0,
                recent_max_kb: 0,
                publish_queue_kb: 0,
                client_queue_kb: 0,
                discovery: false,
                discovery_prefix: String::new(),
                ca_file: None,
            },
            ollama: OllamaSettings {
                host: String::new(),
                port: 0,
                model: String::new(),
                keep_alive: String::new(),
                connect_timeout: 0,
                read_timeout: 0,
                total_timeout: 0,
                retries: 0,
            },
            llm: LlmSettings {
                backend: Backend::Ollama,
                base_url: String::new(),
                model: String::new(),
                api_key: None,
                api_key_file: None,
                structured_output: Structured::JsonSchema,
                connect_timeout: 0,
                read_timeout: 0,
                total_timeout: 0,
                retries: 0,
                tool_choice: String::new(),
                temperature: None,
                seed: None,
                num_ctx: None,
                max_tokens: None,
            },
            agent: AgentSettings {
                enabled: false,
                system_prompt: String::new(),
                max_tool_iterations: 0,
                ask_topics: Vec::new(),
                answer_topic: None,
                fallback_mode: FallbackMode::Queue,
                queue_max: 0,
                queue_kb: 0,
                rate_per_minute: 0,
                trust_mqtt: false,
            },
            memory: MemorySettings {
                embedding_model: String::new(),
                reinforce_similarity: 0.0,
                observe: false,
                observe_min: 0,
                observe_max: 0,
                observation_max_age: 0,
                merge_similarity: 0.0,
                merge_window: 0,
                compact_below_mb: 0,
                compact_batch: 0,
            },
            sync: SyncSettings {
                enabled: false,
                retention: 0,
                max_log_mb: 0,
                max_remote_items: 0,
                batch: 0,
                publish_interval: 0,
                catchup_interval: 0,
                max_push_kb: 0,
                peers: Vec::new(),
                peer_token: None,
                interval: 0,
                retry_max_attempts: 0,
            },
            openclaw: OpenclawSettings {
                enabled: false,
                url: String::new(),
                token: None,
                token_file: None,
                reconnect_min: 0,
                reconnect_max: 0,
                request_timeout: 0,
                max_frame_kb: 0,
                max_queued_commands: 0,
                alert_queue_max: 0,
                alert_queue_kb: 0,
                event_queue_max: 0,
                send_observations: false,
                ask_timeout: 0,
                notify_channel: String::new(),
                notify_to: String::new(),
            },
            discovery: DiscoverySettings {
                enabled: false,
                announce: false,
                browse: false,
                service_type: String::new(),
                cache_ttl: 0,
                stale_after: 0,
                offline_after: 0,
                max_nodes: 0,
            },
            gpio: GpioSettings {
                backend: GpioBackendChoice::Auto,
                pins: Vec::new(),
                simulate: false,
            },
            hardware: HardwareSettings {
                backend: BusChoice::Auto,
                mock_scene: PathBuf::new(),
            },
            pipeline: PipelineSettings { files: Vec::new() },
            plugins: PluginsSettings {
                dir: PathBuf::new(),
            },
        }
    }

    /// The prefix of every topic this node publishes (`smollama/<node>` by default).
    pub fn mqtt_prefix(&self) -> String {
        self.mqtt
            .topic_prefix
            .clone()
            .unwrap_or_else(|| format!("smollama/{}", self.node.name))
    }

    /// The prefix of everything but the batches: `[mqtt] state_prefix`, else the topic
    /// prefix.
    pub fn mqtt_state_prefix(&self) -> String {
        self.mqtt
            .state_prefix
            .clone()
            .unwrap_or_else(|| self.mqtt_prefix())
    }

    /// Topics whose messages are questions for the agent.
    pub fn ask_topics(&self) -> Vec<String> {
        if self.agent.ask_topics.is_empty() {
            vec![
                format!("{}/ask", self.mqtt_prefix()),
                "smollama/broadcast".into(),
            ]
        } else {
            self.agent.ask_topics.clone()
        }
    }

    /// Where answers go when the question names no reply topic.
    pub fn answer_topic(&self) -> String {
        self.agent
            .answer_topic
            .clone()
            .unwrap_or_else(|| format!("{}/answers", self.mqtt_state_prefix()))
    }

    /// Where `[section] key` was set: the file and line, the environment variable, the
    /// command line, or nowhere (the default).
    pub fn origin(&self, section: &str, key: &str) -> Origin {
        let name = format!("{section}.{key}");
        self.origins
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map_or(Origin::Default, |(_, o)| o.clone())
    }

    /// Record where `[section] key` was set (the last record wins).
    pub fn set_origin(&mut self, section: &str, key: &str, origin: Origin) {
        self.origins.push((format!("{section}.{key}"), origin));
    }

    /// What to change for `[section] key`, for errors: "[node] data_dir in FILE:LINE",
    /// "SMOLLAMA_NODE_DATA_DIR", or, when it is not set, "[node] data_dir (in FILE, or
    /// SMOLLAMA_NODE_DATA_DIR)".
    pub fn setting_to_change(&self, section: &str, key: &str) -> String {
        let var = key::env_name(section, key);
        match self.origin(section, key) {
            Origin::File { path, line } => {
                format!("[{section}] {key} in {}:{line}", path.display())
            }
            Origin::Env(v) => v,
            Origin::CommandLine => "the command line".into(),
            Origin::Default => match &self.file {
                Some(f) => format!("[{section}] {key} in {} (or {var})", f.display()),
                None => format!("[{section}] {key} in the settings file (or {var})"),
            },
        }
    }

    /// The MQTT client id (`smollama-<node>` by default).
    pub fn mqtt_client_id(&self) -> String {
        self.mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| format!("smollama-{}", self.node.name))
    }

    /// Find and load the settings: `--config`, then `$SMOLLAMA_CONFIG`, then
    /// `/etc/smollama/smollama.toml`, then defaults; then apply `SMOLLAMA_<SECTION>_<KEY>`
    /// environment overrides. A named file that does not exist is an error.
    pub fn load(cli_path: Option<&Path>) -> Result<Settings, ConfigErrors> {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let k = k.into_string().ok()?;
                k.starts_with(ENV_PREFIX)
                    .then(|| (k, v.to_string_lossy().into_owned()))
            })
            .collect();
        Settings::load_with_env(cli_path, &env)
    }

    /// [`Settings::load`] with the environment given explicitly (tests use this so they do
    /// not depend on, or change, the process environment). Only `SMOLLAMA_*` entries matter.
    pub fn load_with_env(
        cli_path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Settings, ConfigErrors> {
        load_from(cli_path, env, Path::new(SYSTEM_CONFIG))
    }

    /// Parse settings text (no lookup, no environment); `path` names the file in errors and
    /// anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Settings, ConfigErrors> {
        Settings::parse_over(Settings::defaults(), path, text)
    }

    /// [`Settings::parse`] over defaults built already (the fuzz target builds them once).
    pub(crate) fn parse_over(
        mut settings: Settings,
        path: &Path,
        text: &str,
    ) -> Result<Settings, ConfigErrors> {
        settings.file = Some(path.to_path_buf());
        file::apply(&mut settings, path, text)?;
        settings.check_together()?;
        Ok(settings)
    }

    /// Checks between keys, after every key is set: an error names where the first key
    /// was set (its line, or its variable).
    fn check_together(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        if self.mqtt.reconnect_min > self.mqtt.reconnect_max {
            let at = match self.origin("mqtt", "reconnect_min") {
                Origin::Default => self.origin("mqtt", "reconnect_max"),
                o => o,
            };
            errors.push(
                self.error_at(at, "reconnect_min is longer than reconnect_max")
                    .with_hint("e.g. reconnect_min = \"1s\", reconnect_max = \"60s\""),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    fn error_at(&self, at: Origin, message: &str) -> ConfigError {
        match at {
            Origin::File { path, line } => {
                ConfigError::new(path.display().to_string(), Some(line), message)
            }
            Origin::Env(var) => {
                ConfigError::new(format!("environment variable {var}"), None, message)
            }
            Origin::Default | Origin::CommandLine => {
                let file = self
                    .file
                    .as_ref()
                    .map_or("built-in defaults".to_string(), |f| f.display().to_string());
                ConfigError::new(file, None, message)
            }
        }
    }
}

/// The system-wide settings file, used when neither `--config` nor `$SMOLLAMA_CONFIG` is set.
pub const SYSTEM_CONFIG: &str = "/etc/smollama/smollama.toml";
/// Names a settings file; not an override.
pub const CONFIG_ENV: &str = "SMOLLAMA_CONFIG";
pub(crate) const ENV_PREFIX: &str = "SMOLLAMA_";

fn load_from(
    cli_path: Option<&Path>,
    env: &[(String, String)],
    system: &Path,
) -> Result<Settings, ConfigErrors> {
    let env_config = env
        .iter()
        .rev()
        .find(|(k, v)| k == CONFIG_ENV && !v.is_empty())
        .map(|(_, v)| PathBuf::from(v));
    let file = if let Some(p) = cli_path {
        if !p.exists() {
            return Err(ConfigError::new(
                p.display().to_string(),
                None,
                format!("config file {} does not exist", p.display()),
            )
            .with_hint("check the --config path, or leave it out to use $SMOLLAMA_CONFIG, /etc/smollama/smollama.toml or the built-in defaults")
            .into());
        }
        Some(p.to_path_buf())
    } else if let Some(p) = env_config {
        if !p.exists() {
            return Err(ConfigError::new(
                format!("environment variable {CONFIG_ENV}"),
                None,
                format!("config file {} does not exist", p.display()),
            )
            .with_hint(format!("fix or unset {CONFIG_ENV}"))
            .into());
        }
        Some(p)
    } else if system.exists() {
        Some(system.to_path_buf())
    } else {
        None
    };
    let mut settings = Settings::defaults();
    let mut errors = Vec::new();
    if let Some(p) = &file {
        let text = std::fs::read_to_string(p).map_err(|e| {
            ConfigError::new(
                p.display().to_string(),
                None,
                format!("cannot read config file: {e}"),
            )
        })?;
        settings.file = Some(p.clone());
        if let Err(e) = file::apply(&mut settings, p, &text) {
            errors.extend(e.0);
        }
    }
    // The environment's problems are reported with the file's, all at once.
    if let Err(e) = env::apply(&mut settings, env) {
        errors.extend(e.0);
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    settings.check_together()?;
    Ok(settings)
}

/// Parse serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`", or
/// "there are no fields"). Pipeline files still read their tables through serde.
pub(crate) fn parse_unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.split("unknown field `").nth(1)?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((name.to_string(), expected))
}

/// Data directory when none is configured; empty when none of the variables it is
/// chosen from is set (rather than a directory relative to wherever smollama started).
pub fn default_data_dir() -> PathBuf {
    default_data_dir_from().map_or_else(PathBuf::new, |(dir, _)| dir)
}

/// The environment variables the default data directory is chosen from, in order.
pub const DATA_DIR_DEFAULT_FROM: [&str; 3] = ["STATE_DIRECTORY", "XDG_DATA_HOME", "HOME"];

/// The default data directory and the variable it came from.
pub fn default_data_dir_from() -> Option<(PathBuf, &'static str)> {
    let var = |name: &str| std::env::var_os(name).filter(|d| !d.is_empty());
    if let Some(d) = var("STATE_DIRECTORY") {
        // systemd may pass several, colon-separated; the first is ours.
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        return Some((PathBuf::from(first), "STATE_DIRECTORY"));
    }
    if let Some(x) = var("XDG_DATA_HOME") {
        return Some((PathBuf::from(x).join("smollama"), "XDG_DATA_HOME"));
    }
    var("HOME").map(|h| (PathBuf::from(h).join(".local/share/smollama"), "HOME"))
}

/// Sampling interval default for sources that do not say.
pub const DEFAULT_EVERY: Micros = 10_000_000;

#[cfg(test)]
mod tests {
    #[test]
    fn keep_alive_is_checked_as_ollama_would() {
        for ok in ["-1", "0", "300", "5m", "1h", "-1m", "30s", "1.5h"] {
            assert!(super::valid_keep_alive(ok), "{ok}");
        }
        for bad in ["forever", "", "m", "5 minutes", "5d"] {
            assert!(!super::valid_keep_alive(bad), "{bad}");
        }
    }

    #[test]
    fn agent_topics_default_from_the_prefix() {
        let mut s = Settings::defaults();
        s.node.name = "kitchen".into();
        assert_eq!(
            s.ask_topics(),
            ["smollama/kitchen/ask", "smollama/broadcast"]
        );
        assert_eq!(s.answer_topic(), "smollama/kitchen/answers");
    }

    use super::key::parse_bool;
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("smollama-settings-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn env_overrides_apply_and_validate() {
        let none = Path::new("/nonexistent/smollama.toml");
        let s = load_from(
            None,
            &env(&[
                ("SMOLLAMA_NODE_NAME", "greenhouse"),
                ("SMOLLAMA_NODE_DATA_DIR", "/var/lib/x"),
                ("SMOLLAMA_STORE_MAP_SIZE_MB", "512"),
                ("SMOLLAMA_HTTP_BIND", "0.0.0.0:9000"),
                ("SMOLLAMA_HTTP_TOKEN", "0123456789abcdef"),
                ("SMOLLAMA_HTTP_ENABLED", "Off"),
                ("SMOLLAMA_LOG_LEVEL", "DEBUG"),
                ("SMOLLAMA_GPIO_BACKEND", "mock"),
                ("SMOLLAMA_GPIO_SIMULATE", "yes"),
                ("SMOLLAMA_PIPELINE_FILES", "a.toml, b.toml"),
                ("SMOLLAMA_LOG_LEVEL_UNUSED_BUT_EMPTY", ""),
            ]),
            none,
        )
        .unwrap();
        assert_eq!(s.node.name, "greenhouse");
        assert_eq!(s.node.data_dir, PathBuf::from("/var/lib/x"));
        assert_eq!(s.store.map_size_mb, 512);
        assert_eq!(s.http.bind, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(s.http.token.as_deref(), Some("0123456789abcdef"));
        assert!(!s.http.enabled);
        assert_eq!(s.log.level.as_deref(), Some("debug"));
        assert_eq!(s.gpio.backend, GpioBackendChoice::Mock);
        assert!(s.gpio.simulate);
        assert_eq!(
            s.pipeline.files,
            vec![PathBuf::from("a.toml"), PathBuf::from("b.toml")]
        );
        assert_eq!(s.file, None);

        for v in ["true", "1", "YES", "on"] {
            assert_eq!(parse_bool(v), Some(true));
        }
        for v in ["false", "0", "No", "OFF"] {
            assert_eq!(parse_bool(v), Some(false));
        }
    }

    #[test]
    fn env_errors_name_the_variable() {
        let none = Path::new("/nonexistent/smollama.toml");
        let e = load_from(None, &env(&[("SMOLLAMA_HTTP_BIND", "nope")]), none).unwrap_err();
        assert_eq!(e.0[0].file, "environment variable SMOLLAMA_HTTP_BIND");
        assert_eq!(e.0[0].line, None);
        let e = load_from(None, &env(&[("SMOLLAMA_GPIO_SIMULATE", "maybe")]), none).unwrap_err();
        assert_eq!(e.0[0].message, "expected true or false, found \"maybe\"");
        let e = load_from(None, &env(&[("SMOLLAMA_STORE_MAP_SIZE_MB", "0")]), none).unwrap_err();
        assert!(e.0[0].message.contains("out of range"));
        let e = load_from(None, &env(&[("SMOLLAMA_HTTP_BIN", "x")]), none).unwrap_err();
        assert!(
            e.0[0]
                .message
                .contains("unknown setting variable SMOLLAMA_HTTP_BIN")
        );
        let hint = e.0[0].hint.as_deref().unwrap();
        assert!(
            hint.starts_with("did you mean SMOLLAMA_HTTP_BIND, "),
            "{hint}"
        );
        // Three names, not all of them.
        assert_eq!(hint.matches("SMOLLAMA_").count(), 4, "{hint}");
        // Several problems are all reported; empty values are ignored.
        let e = load_from(
            None,
            &env(&[
                ("SMOLLAMA_LOG_LEVEL", "loud"),
                ("SMOLLAMA_NODE_NAME", "a b"),
                ("SMOLLAMA_HTTP_BIND", ""),
            ]),
            none,
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 2);
    }

    #[test]
    fn lookup_order() {
        let dir = temp_dir("lookup");
        let cli = dir.join("cli.toml");
        let envf = dir.join("env.toml");
        let sys = dir.join("system.toml");
        std::fs::write(&cli, "[node]\nname = \"cli\"\n").unwrap();
        std::fs::write(
            &envf,
            "[node]\nname = \"env\"\n[pipeline]\nfiles = [\"p.toml\"]\n",
        )
        .unwrap();
        std::fs::write(&sys, "[node]\nname = \"system\"\n").unwrap();
        let cfg_env = env(&[("SMOLLAMA_CONFIG", envf.to_str().unwrap())]);

        let s = load_from(Some(&cli), &cfg_env, &sys).unwrap();
        assert_eq!(
            (s.node.name.as_str(), s.file.as_deref()),
            ("cli", Some(cli.as_path()))
        );
        let s = load_from(None, &cfg_env, &sys).unwrap();
        assert_eq!(s.node.name, "env");
        // Relative paths resolve against the config file's directory.
        assert_eq!(s.pipeline.files, vec![dir.join("p.toml")]);
        let s = load_from(None, &[], &sys).unwrap();
        assert_eq!(s.node.name, "system");
        let s = load_from(None, &[], &dir.join("absent.toml")).unwrap();
        assert_eq!(s.file, None);
        assert_eq!(s.node.name, "smollama-node");
        // An override beats the file.
        let s = load_from(Some(&cli), &env(&[("SMOLLAMA_NODE_NAME", "over")]), &sys).unwrap();
        assert_eq!(s.node.name, "over");

        // Named files must exist.
        let missing = dir.join("missing.toml");
        let e = load_from(Some(&missing), &[], &sys).unwrap_err();
        assert!(e.0[0].message.contains("does not exist"), "{e}");
        let e = load_from(
            None,
            &env(&[("SMOLLAMA_CONFIG", missing.to_str().unwrap())]),
            &sys,
        )
        .unwrap_err();
        assert!(e.0[0].message.contains("does not exist"), "{e}");
        assert_eq!(e.0[0].file, "environment variable SMOLLAMA_CONFIG");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn file_errors_are_all_collected() {
        let text = "[node]\nname = \"a b\"\n[store]\nmap_size_mb = 0\n[http]\nbind = \"x\"\n";
        let e = Settings::parse(Path::new("s.toml"), text).unwrap_err();
        let lines: Vec<_> = e.0.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![Some(2), Some(4), Some(6)]);
    }
}

/// The declarations against their setters and showers: a key whose setter writes another
/// field than its shower reads, or whose declared default does not survive the trip,
/// fails here.
#[cfg(test)]
mod declaration_tests {
    use super::key::{self, Key};
    use super::*;
    use crate::config::expect::Want;

    fn all_keys() -> impl Iterator<Item = (&'static str, &'static Key)> {
        SECTIONS
            .iter()
            .flat_map(|s| s.keys.iter().map(move |k| (s.name, k)))
    }

    fn value(text: &str) -> toml::de::DeValue<'_> {
        toml::de::DeValue::parse(text).unwrap().into_inner()
    }

    #[test]
    fn every_default_shows_as_declared() {
        let d = Settings::defaults();
        for (section, k) in all_keys() {
            if k.spec.default.is_empty() || k.spec.want == Want::Tables {
                continue;
            }
            let declared = key::from_file(k, &value(k.spec.default)).unwrap();
            match (k.show)(&d) {
                Some(shown) => assert_eq!(
                    key::from_file(k, &value(&shown)).unwrap(),
                    declared,
                    "[{section}] {}",
                    k.spec.name
                ),
                // Only an empty text may mean "unset" (token = "").
                None => assert_eq!(
                    declared,
                    key::Val::Text(String::new()),
                    "[{section}] {}",
                    k.spec.name
                ),
            }
        }
    }

    #[test]
    fn every_key_round_trips_through_its_shower() {
        // A value other than the default for each key, set through the file's path and
        // shown back: the shower must read what the setter wrote.
        for (section, k) in all_keys() {
            let other = match (k.spec.want, k.spec.name) {
                (Want::Tables, _) => continue,
                (_, "ca_file") if !cfg!(feature = "mqtt-tls") => continue,
                (Want::Bool, _) => (k.spec.default != "true").to_string(),
                (Want::WholeNumber, _) => {
                    let (lo, _) = k.spec.range.unwrap();
                    (lo as i64 + 1).to_string()
                }
                (Want::Number, _) => "0.5".into(),
                (Want::Duration, _) => {
                    let (lo, _) = k.spec.range.unwrap();
                    format!("\"{}ms\"", (lo * 1000.0) as i64 + 1000)
                }
                (Want::TextList, _) => "[\"x/y\"]".into(),
                (Want::Text, _) if !k.choices.is_empty() => format!("\"{}\"", k.choices[1]),
                (Want::Text, "bind") => "\"0.0.0.0:9000\"".into(),
                (Want::Text, "token") => "\"0123456789abcdef0\"".into(),
                (Want::Text, "keep_alive") => "\"5m\"".into(),
                (Want::Text, "base_url") => "\"http://h:1/v1\"".into(),
                (Want::Text, "url") => "\"ws://gateway.local:9\"".into(),
                (Want::Text, "service_type") => "\"_other._tcp\"".into(),
                (Want::Text, _) => "\"other-value\"".into(),
            };
            let text = format!("[{section}]\n{} = {other}\n", k.spec.name);
            let s = Settings::parse(Path::new("/x/s.toml"), &text)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            let shown = (k.show)(&s).unwrap_or_else(|| panic!("{text}: shows unset"));
            let back = format!("[{section}]\n{} = {shown}\n", k.spec.name);
            let s2 = Settings::parse(Path::new("/x/s.toml"), &back)
                .unwrap_or_else(|e| panic!("{back}: {e}"));
            assert_ne!(
                Settings {
                    origins: Vec::new(),
                    ..s.clone()
                },
                Settings::defaults_with_file("/x/s.toml"),
                "{text}: changed nothing"
            );
            assert_eq!(
                Settings {
                    origins: Vec::new(),
                    ..s
                },
                Settings {
                    origins: Vec::new(),
                    ..s2
                },
                "{text} shows as {shown}"
            );
        }
    }

    #[test]
    fn every_key_has_a_working_environment_variable() {
        for (section, k) in all_keys() {
            if k.spec.default.is_empty() || k.spec.want == Want::Tables {
                continue;
            }
            let var = k.env_name(section);
            // The declared default as an environment value (lists comma-separated).
            let v = match key::from_file(k, &value(k.spec.default)).unwrap() {
                key::Val::Text(t) if t.is_empty() => continue, // empty: ignored
                key::Val::Text(t) => t,
                key::Val::List(l) if l.is_empty() => continue,
                _ => k.spec.default.trim_matches('"').to_string(),
            };
            let s = Settings::load_with_env(None, &[(var.clone(), v.clone())])
                .unwrap_or_else(|e| panic!("{var}={v}: {e}"));
            assert_eq!(s.origin(section, k.spec.name), Origin::Env(var.clone()));
            assert_eq!(
                Settings {
                    origins: Vec::new(),
                    ..s
                },
                Settings::defaults(),
                "{var}={v}"
            );
        }
    }

    #[test]
    fn names_are_unique_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for (section, k) in all_keys() {
            assert!(
                seen.insert(k.env_name(section)),
                "{section}.{}",
                k.spec.name
            );
            assert!(
                !k.spec.doc.is_empty(),
                "[{section}] {} has no doc",
                k.spec.name
            );
            assert!(
                !k.spec.default.is_empty() || !k.example.is_empty(),
                "[{section}] {} has neither a default nor an example",
                k.spec.name
            );
        }
    }
}
