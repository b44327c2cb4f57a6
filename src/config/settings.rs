//! The agent's settings (`smollama.toml`): types, defaults, lookup, environment overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::error::{self, ConfigError, ConfigErrors};
use super::expect::Want;
use super::suggest;
use crate::graph::Micros;

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
    pub agent: AgentSettings,
    pub memory: MemorySettings,
    pub gpio: GpioSettings,
    pub pipeline: PipelineSettings,
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
    /// The command line (the files given to `smollama pipeline check`).
    CommandLine,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeSettings {
    /// Node name, used in topics and status. Default `smollama-node` (as the original).
    pub name: String,
    /// Where the store lives. Default: `$STATE_DIRECTORY` under systemd, else
    /// `$XDG_DATA_HOME/smollama`, else `~/.local/share/smollama`; empty when none of these
    /// is set (commands that need it then refuse, naming the setting; see `data_dir.rs`).
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
    /// Connections served at once; past it the longest-idle one is closed, or, when none
    /// is idle, the new one gets a 503. Default 64.
    pub max_connections: u32,
    /// A connection waiting for a request (new or kept alive) closes after this. Default 30 s.
    pub idle_timeout: Micros,
    /// A request's head and body must arrive within this of its first byte, and its
    /// response be taken within it (slow clients are closed). Default 10 s.
    pub request_timeout: Micros,
    /// Longest request line (method, path, query, version) in KiB; past it 414. Default 8.
    pub max_request_line_kb: u32,
    /// Largest header block in KiB; past it 431. Default 16.
    pub max_header_kb: u32,
    /// Most header fields in one request; past it 431. Default 64.
    pub max_headers: u32,
    /// Largest request body in KiB; past it 413. Default 64.
    pub max_body_kb: u32,
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

/// A secret (password, token) that never shows up in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MqttSettings {
    /// Broker host name or address. Empty: MQTT is off (mqtt sinks and sources are skipped
    /// with one log line).
    pub broker: Option<String>,
    pub port: u16,
    /// Default `smollama-<node name>`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub keepalive: Micros,
    /// Start a clean session on every connect (default). False asks the broker to keep
    /// subscriptions and QoS 1 messages for us while we are away.
    pub clean_session: bool,
    /// Topic prefix for everything this node publishes. Default `smollama/<node name>`.
    pub topic_prefix: Option<String>,
    /// Prefix for everything but the batches (status, state, answers, observations, GPIO
    /// commands), e.g. to keep them off a Python master's `smollama/#`. Default: the
    /// topic prefix.
    pub state_prefix: Option<String>,
    /// Reconnect backoff: first delay, doubling (with jitter) up to the maximum.
    pub reconnect_min: Micros,
    pub reconnect_max: Micros,
    /// Bounds of the QoS 1 outbox in the store; beyond them the oldest message is dropped
    /// (and counted).
    pub outbox_max_messages: u64,
    pub outbox_max_mb: u64,
    /// Largest MQTT payload accepted or sent, KiB. The node declares a maximum packet size
    /// above it (see `edges::mqtt::connection::max_packet_size`).
    pub max_payload_kb: u64,
    /// Sources learned from other nodes' messages, at most, in total and per sending node
    /// (bare topics count as one node, `mqtt`). New names past either are refused, counted.
    pub max_remote_sources: u32,
    pub max_sources_per_node: u32,
    /// A remote reading's `ts` older than this, or more than `max_clock_ahead` ahead of
    /// this node's clock, is replaced by the arrival time (counted).
    pub max_reading_age: Micros,
    pub max_clock_ahead: Micros,
    /// QoS 1 messages handed to the client before their acknowledgements come back.
    pub inflight: u16,
    /// Messages kept per topic for the agent's `get_recent_messages` tool.
    pub recent_per_topic: usize,
    /// Home Assistant MQTT discovery (on by default when a broker is configured).
    pub discovery: bool,
    pub discovery_prefix: String,
    /// CA certificate for TLS (needs the `mqtt-tls` build feature).
    pub ca_file: Option<PathBuf>,
}

impl MqttSettings {
    pub fn defaults() -> MqttSettings {
        MqttSettings {
            broker: None,
            port: 1883,
            client_id: None,
            username: None,
            password: None,
            keepalive: 60_000_000,
            clean_session: true,
            topic_prefix: None,
            state_prefix: None,
            reconnect_min: 1_000_000,
            reconnect_max: 60_000_000,
            outbox_max_messages: 100_000,
            outbox_max_mb: 16,
            max_payload_kb: 256,
            max_remote_sources: 5000,
            max_sources_per_node: 1000,
            max_reading_age: 30 * 86_400_000_000,
            max_clock_ahead: 300_000_000,
            inflight: 64,
            recent_per_topic: 100,
            discovery: true,
            discovery_prefix: "homeassistant".into(),
            ca_file: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OllamaSettings {
    /// Empty: no LLM; questions are answered with an error (`skip`) or queued.
    pub host: String,
    pub port: u16,
    pub model: String,
    /// As written in the config; validated to be a number of seconds (negative: keep the
    /// model loaded forever) or a duration with a unit ("5m"). Sent as a number or string.
    pub keep_alive: String,
    pub connect_timeout: Micros,
    pub read_timeout: Micros,
    pub total_timeout: Micros,
    /// Attempts after the first on connection errors and 5xx, with capped backoff.
    pub retries: u32,
}

impl OllamaSettings {
    pub fn base_url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemorySettings {
    /// The Ollama embedding model (on the [ollama] server). Without embeddings, recall
    /// falls back to word matching (BM25), so it always answers.
    pub embedding_model: String,
    /// A new memory at least this similar to an active one reinforces it instead.
    pub reinforce_similarity: f64,
    /// The observation loop: the LLM looks at what the sensors did and writes
    /// observations, sooner (`observe_min`) while a source is volatile, rarely
    /// (`observe_max`) when all is calm.
    pub observe: bool,
    pub observe_min: Micros,
    pub observe_max: Micros,
    /// Observations older than this are deleted (summaries kept).
    pub observation_max_age: Micros,
    /// A new observation at least this similar to one stored within `merge_window`
    /// merges into it (newer time, higher confidence) instead of being stored twice.
    pub merge_similarity: f64,
    pub merge_window: Micros,
    /// Compaction: when MemAvailable falls below this many MB, the `compact_batch`
    /// oldest observations (not summaries; at least 5) are summarised by the LLM into one
    /// `summary` observation and removed. 0 turns it off.
    pub compact_below_mb: u64,
    pub compact_batch: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackMode {
    /// Keep questions (bounded, in the store) and answer them in order once Ollama is back.
    Queue,
    /// Answer at once with an error payload.
    Skip,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgentSettings {
    /// Answer questions at all (needs MQTT for questions over MQTT; `smollama ask` works
    /// regardless).
    pub enabled: bool,
    pub system_prompt: String,
    pub max_tool_iterations: u32,
    /// Topics whose messages are questions. Default `<prefix>/ask` and `smollama/broadcast`.
    pub ask_topics: Vec<String>,
    /// Where answers go when a question names no reply topic. Default `<prefix>/answers`.
    pub answer_topic: Option<String>,
    pub fallback_mode: FallbackMode,
    /// Most questions kept while Ollama is away; beyond it the oldest is dropped (counted).
    pub queue_max: u32,
    /// Most questions answered per topic per minute (stops two nodes chattering forever).
    pub rate_per_minute: u32,
}

pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a home automation assistant running on a Raspberry Pi. You can read GPIO sensors and communicate with other nodes via MQTT.";

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
            origins: Vec::new(),
            node: NodeSettings {
                name: "smollama-node".into(),
                data_dir: default_data_dir(),
            },
            store: StoreSettings { map_size_mb: 256 },
            http: HttpSettings {
                bind: "127.0.0.1:8080".parse().unwrap(),
                token: None,
                enabled: true,
                max_connections: 64,
                idle_timeout: 30_000_000,
                request_timeout: 10_000_000,
                max_request_line_kb: 8,
                max_header_kb: 16,
                max_headers: 64,
                max_body_kb: 64,
            },
            log: LogSettings { level: None },
            mqtt: MqttSettings::defaults(),
            ollama: OllamaSettings {
                host: "localhost".into(),
                port: 11434,
                model: "gemma4:e2b".into(),
                keep_alive: "-1".into(),
                connect_timeout: 5_000_000,
                read_timeout: 120_000_000,
                total_timeout: 300_000_000,
                retries: 3,
            },
            memory: MemorySettings {
                embedding_model: "all-minilm:l6-v2".into(),
                reinforce_similarity: 0.9,
                observe: true,
                observe_min: 300_000_000,
                observe_max: 3_600_000_000,
                observation_max_age: 3 * 86_400_000_000,
                merge_similarity: 0.95,
                merge_window: 3_600_000_000,
                compact_below_mb: 200,
                compact_batch: 20,
            },
            agent: AgentSettings {
                enabled: true,
                system_prompt: DEFAULT_SYSTEM_PROMPT.into(),
                max_tool_iterations: 10,
                ask_topics: Vec::new(),
                answer_topic: None,
                fallback_mode: FallbackMode::Queue,
                queue_max: 100,
                rate_per_minute: 10,
            },
            gpio: GpioSettings {
                backend: GpioBackendChoice::Auto,
                pins: Vec::new(),
                simulate: false,
            },
            pipeline: PipelineSettings { files: Vec::new() },
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
        let var = format!(
            "{ENV_PREFIX}{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        );
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
        let mut settings = Settings::defaults();
        settings.file = Some(path.to_path_buf());
        apply_file(&mut settings, path, text)?;
        Ok(settings)
    }
}

/// The system-wide settings file, used when neither `--config` nor `$SMOLLAMA_CONFIG` is set.
pub const SYSTEM_CONFIG: &str = "/etc/smollama/smollama.toml";
/// Names a settings file; not an override.
pub const CONFIG_ENV: &str = "SMOLLAMA_CONFIG";
const ENV_PREFIX: &str = "SMOLLAMA_";

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
    let mut settings = match &file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                ConfigError::new(
                    p.display().to_string(),
                    None,
                    format!("cannot read config file: {e}"),
                )
            })?;
            Settings::parse(p, &text)?
        }
        None => Settings::defaults(),
    };
    apply_env(&mut settings, env)?;
    Ok(settings)
}

// ---------------------------------------------------------------------------------------
// Raw file layout. Every field optional; spans kept for semantic errors.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    node: Option<RawNode>,
    store: Option<RawStore>,
    http: Option<toml::Table>,
    log: Option<RawLog>,
    mqtt: Option<toml::Table>,
    ollama: Option<toml::Table>,
    agent: Option<toml::Table>,
    memory: Option<toml::Table>,
    gpio: Option<RawGpio>,
    pipeline: Option<RawPipeline>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    map_size_mb: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGpio {
    backend: Option<Spanned<String>>,
    simulate: Option<Spanned<bool>>,
    pins: Option<Vec<Spanned<RawPin>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    pin: Spanned<i64>,
    name: Spanned<String>,
    mode: Option<Spanned<String>>,
    pull: Option<Spanned<String>>,
    initial: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    files: Option<Vec<Spanned<String>>>,
}

/// Valid keys per section, for hints (and the environment variable names).
const SECTIONS: &[(&str, &[&str])] = &[
    ("node", &["name", "data_dir"]),
    ("store", &["map_size_mb"]),
    ("http", HTTP_KEYS),
    ("log", &["level"]),
    ("mqtt", MQTT_KEYS),
    ("ollama", OLLAMA_KEYS),
    ("agent", AGENT_KEYS),
    (
        "memory",
        &[
            "embedding_model",
            "reinforce_similarity",
            "observe",
            "observe_min",
            "observe_max",
            "observation_max_age",
            "merge_similarity",
            "merge_window",
            "compact_below_mb",
            "compact_batch",
        ],
    ),
    ("gpio", &["backend", "simulate", "pins"]),
    ("pipeline", &["files"]),
];
const HTTP_KEYS: &[&str] = &[
    "enabled",
    "bind",
    "token",
    "max_connections",
    "idle_timeout",
    "request_timeout",
    "max_request_line_kb",
    "max_header_kb",
    "max_headers",
    "max_body_kb",
];
const PIN_KEYS: &[&str] = &["pin", "name", "mode", "pull", "initial"];
const MQTT_KEYS: &[&str] = &[
    "broker",
    "port",
    "client_id",
    "username",
    "password",
    "keepalive",
    "clean_session",
    "topic_prefix",
    "state_prefix",
    "reconnect_min",
    "reconnect_max",
    "outbox_max_messages",
    "outbox_max_mb",
    "max_payload_kb",
    "max_remote_sources",
    "max_sources_per_node",
    "max_reading_age",
    "max_clock_ahead",
    "inflight",
    "recent_per_topic",
    "discovery",
    "discovery_prefix",
    "ca_file",
];

const OLLAMA_KEYS: &[&str] = &[
    "host",
    "port",
    "model",
    "keep_alive",
    "connect_timeout",
    "read_timeout",
    "total_timeout",
    "retries",
];
const AGENT_KEYS: &[&str] = &[
    "enabled",
    "system_prompt",
    "max_tool_iterations",
    "ask_topics",
    "answer_topic",
    "fallback_mode",
    "queue_max",
    "rate_per_minute",
];

/// The type a setting takes (for the environment, where everything is a string).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Int,
    Bool,
    List,
}

fn key_type(section: &str, key: &str) -> Ty {
    match (section, key) {
        ("store", "map_size_mb") => Ty::Int,
        (
            "http",
            "max_connections"
            | "max_request_line_kb"
            | "max_header_kb"
            | "max_headers"
            | "max_body_kb",
        ) => Ty::Int,
        ("http", "enabled") | ("gpio", "simulate") => Ty::Bool,
        ("mqtt", "clean_session" | "discovery") => Ty::Bool,
        ("agent", "enabled") | ("memory", "observe") => Ty::Bool,
        ("ollama", "port" | "retries") => Ty::Int,
        ("agent", "max_tool_iterations" | "queue_max" | "rate_per_minute") => Ty::Int,
        ("agent", "ask_topics") => Ty::List,
        ("memory", "compact_below_mb" | "compact_batch") => Ty::Int,
        (
            "mqtt",
            "port"
            | "outbox_max_messages"
            | "outbox_max_mb"
            | "max_payload_kb"
            | "max_remote_sources"
            | "max_sources_per_node"
            | "inflight"
            | "recent_per_topic",
        ) => Ty::Int,
        ("pipeline", "files") => Ty::List,
        _ => Ty::Str,
    }
}

/// What a key takes, for type errors in plain words.
fn want(section: &str, key: &str) -> Want {
    match key_type(section, key) {
        Ty::Int => Want::WholeNumber,
        Ty::Bool => Want::Bool,
        Ty::List => Want::TextList,
        Ty::Str => match (section, key) {
            ("memory", "reinforce_similarity" | "merge_similarity") => Want::Number,
            ("mqtt", "keepalive" | "reconnect_min" | "reconnect_max")
            | ("ollama", "connect_timeout" | "read_timeout" | "total_timeout")
            | ("memory", "observe_min" | "observe_max" | "observation_max_age" | "merge_window") => {
                Want::Duration
            }
            _ => Want::Text,
        },
    }
}

/// A scalar setting value, from the file or from the environment.
enum Val {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

/// A problem with one value: message and optional hint.
type Problem = (String, Option<String>);

fn problem(msg: impl Into<String>) -> Problem {
    (msg.into(), None)
}

fn problem_hint(msg: impl Into<String>, hint: impl Into<String>) -> Problem {
    (msg.into(), Some(hint.into()))
}

fn valid_name_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Validate and store one scalar setting. `base` anchors relative paths (the config file's
/// directory; `None` for the environment).
fn set_key(
    s: &mut Settings,
    section: &str,
    key: &str,
    val: Val,
    base: Option<&Path>,
) -> Result<(), Problem> {
    let resolve = |p: String| -> PathBuf {
        let p = PathBuf::from(p);
        match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p,
        }
    };
    match (section, key, val) {
        ("node", "name", Val::Str(v)) => {
            if v.is_empty() || v.chars().count() > 64 || !valid_name_chars(&v) {
                return Err(problem_hint(
                    format!("node name '{v}' is not valid"),
                    "use 1 to 64 characters from A-Z a-z 0-9 _ - (the name becomes an MQTT topic segment), e.g. \"greenhouse-pi\"",
                ));
            }
            s.node.name = v;
        }
        ("node", "data_dir", Val::Str(v)) => {
            if v.is_empty() {
                return Err(problem_hint(
                    "data_dir is empty",
                    "leave it out for the default, or give a directory such as \"/var/lib/smollama\"",
                ));
            }
            s.node.data_dir = resolve(v);
        }
        ("store", "map_size_mb", Val::Int(v)) => {
            if !(1..=65536).contains(&v) {
                return Err(problem_hint(
                    format!("map_size_mb = {v} is out of range"),
                    "use 1 to 65536 (MiB); the default 256 holds months of readings",
                ));
            }
            if cfg!(target_pointer_width = "32") && v > 2048 {
                return Err(problem_hint(
                    format!("map_size_mb = {v} is too large for this 32-bit system"),
                    "a 32-bit process cannot map more than about 2 GiB; use 2048 or less",
                ));
            }
            s.store.map_size_mb = v as u64;
        }
        ("http", key, val) => set_http(&mut s.http, key, val)?,
        ("log", "level", Val::Str(v)) => {
            const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
            let l = v.to_ascii_lowercase();
            if !LEVELS.contains(&l.as_str()) {
                return Err(problem_hint(
                    format!("unknown log level '{v}'"),
                    suggest::hint(&l, "levels", &LEVELS),
                ));
            }
            s.log.level = Some(l);
        }
        ("gpio", "backend", Val::Str(v)) => {
            s.gpio.backend = match v.as_str() {
                "auto" => GpioBackendChoice::Auto,
                "mock" => GpioBackendChoice::Mock,
                "rppal" => GpioBackendChoice::Rppal,
                _ => {
                    return Err(problem_hint(
                        format!("unknown gpio backend '{v}'"),
                        suggest::hint(&v, "backends", &["auto", "mock", "rppal"]),
                    ));
                }
            }
        }
        ("gpio", "simulate", Val::Bool(v)) => s.gpio.simulate = v,
        ("mqtt", key, val) => set_mqtt(&mut s.mqtt, key, val, &resolve)?,
        ("ollama", key, val) => set_ollama(&mut s.ollama, key, val)?,
        ("agent", key, val) => set_agent(&mut s.agent, key, val)?,
        ("memory", "embedding_model", Val::Str(v)) => {
            if v.trim().is_empty() {
                return Err(problem_hint(
                    "embedding_model is empty",
                    "e.g. \"all-minilm:l6-v2\"",
                ));
            }
            s.memory.embedding_model = v.trim().to_string();
        }
        ("memory", "observe", Val::Bool(v)) => s.memory.observe = v,
        ("memory", "observe_min", Val::Str(v)) => {
            s.memory.observe_min = duration_in("observe_min", &v, 100_000, 86_400_000_000)?
        }
        ("memory", "observe_max", Val::Str(v)) => {
            s.memory.observe_max = duration_in("observe_max", &v, 100_000, 7 * 86_400_000_000)?
        }
        ("memory", "observation_max_age", Val::Str(v)) => {
            s.memory.observation_max_age =
                duration_in("observation_max_age", &v, 60_000_000, 3650 * 86_400_000_000)?
        }
        ("memory", "reinforce_similarity", Val::Str(v)) => {
            s.memory.reinforce_similarity = similarity_in(
                "reinforce_similarity",
                &v,
                "the original reinforced above 0.9",
            )?
        }
        ("memory", "merge_similarity", Val::Str(v)) => {
            s.memory.merge_similarity = similarity_in("merge_similarity", &v, "e.g. 0.95")?
        }
        ("memory", "merge_window", Val::Str(v)) => {
            s.memory.merge_window = duration_in("merge_window", &v, 0, 30 * 86_400_000_000)?
        }
        ("memory", "compact_below_mb", Val::Int(v)) => {
            s.memory.compact_below_mb = int_in(
                "compact_below_mb",
                v,
                0,
                1 << 30,
                "e.g. 200, or 0 for never",
            )? as u64
        }
        ("memory", "compact_batch", Val::Int(v)) => {
            s.memory.compact_batch = int_in("compact_batch", v, 5, 10_000, "e.g. 20")? as u32
        }
        ("pipeline", "files", Val::List(v)) => {
            let mut files = Vec::new();
            for f in v {
                if f.trim().is_empty() {
                    return Err(problem("an empty pipeline file name"));
                }
                let p = resolve(f);
                if files.contains(&p) {
                    return Err(problem(format!(
                        "pipeline file {} is listed twice",
                        p.display()
                    )));
                }
                files.push(p);
            }
            s.pipeline.files = files;
        }
        (sec, key, _) => {
            return Err(problem(format!(
                "internal: no setting {sec}.{key} of this type"
            )));
        }
    }
    Ok(())
}

fn int_in(key: &str, v: i64, lo: i64, hi: i64, hint: &str) -> Result<i64, Problem> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(problem_hint(
            format!("{key} = {v} is out of range ({lo} to {hi})"),
            hint,
        ))
    }
}

/// A cosine similarity threshold, 0 to 1.
fn similarity_in(key: &str, v: &str, hint: &str) -> Result<f64, Problem> {
    match v.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(problem_hint(
            format!("{key} = {v} is not a number from 0 to 1"),
            hint.to_string(),
        )),
    }
}

fn duration_in(key: &str, v: &str, lo: Micros, hi: Micros) -> Result<Micros, Problem> {
    let d = super::duration::parse_duration(v).map_err(|e| problem(format!("{key}: {e}")))?;
    if d < lo || d > hi {
        return Err(problem_hint(
            format!("{key} = \"{v}\" is out of range"),
            format!(
                "use {} to {}",
                super::duration::format_duration(lo),
                super::duration::format_duration(hi)
            ),
        ));
    }
    Ok(d)
}

/// `keep_alive` as Ollama accepts it: a number of seconds (negative keeps the model
/// loaded) or a duration with a unit. The original's default, the string "-1", is
/// rejected by Ollama; here "-1" means the number -1.
pub fn valid_keep_alive(v: &str) -> bool {
    let v = v.trim();
    if v.parse::<i64>().is_ok() {
        return true;
    }
    let body = v.strip_prefix('-').unwrap_or(v);
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(split);
    !num.is_empty()
        && num.parse::<f64>().is_ok()
        && ["ns", "us", "µs", "ms", "s", "m", "h"].contains(&unit)
}

fn set_http(h: &mut HttpSettings, key: &str, val: Val) -> Result<(), Problem> {
    let kb = |key: &str, v: i64, hi: i64, hint: &str| int_in(key, v, 1, hi, hint).map(|v| v as u32);
    match (key, val) {
        ("enabled", Val::Bool(v)) => h.enabled = v,
        ("bind", Val::Str(v)) => {
            h.bind = v.parse().map_err(|_| {
            problem_hint(
                format!("bind = '{v}' is not an address and port"),
                "write IP:PORT, e.g. \"127.0.0.1:8080\" (this machine only) or \"0.0.0.0:8080\" (every interface)",
            )
        })?;
        }
        ("token", Val::Str(v)) => {
            if v.is_empty() {
                h.token = None;
            } else if v.chars().count() < 16 || v.trim() != v {
                return Err(problem_hint(
                    "http token is too short (at least 16 characters, no surrounding spaces)",
                    "generate one with `openssl rand -hex 16`, or leave token empty to turn off endpoints that change things",
                ));
            } else {
                h.token = Some(v);
            }
        }
        ("max_connections", Val::Int(v)) => {
            h.max_connections = int_in(
                "max_connections",
                v,
                1,
                10_000,
                "connections served at once, e.g. 64 (each costs a few KiB while it reads a request)",
            )? as u32
        }
        ("idle_timeout", Val::Str(v)) => {
            h.idle_timeout = duration_in("idle_timeout", &v, 100_000, 3_600_000_000)?
        }
        ("request_timeout", Val::Str(v)) => {
            h.request_timeout = duration_in("request_timeout", &v, 100_000, 600_000_000)?
        }
        ("max_request_line_kb", Val::Int(v)) => {
            h.max_request_line_kb = kb("max_request_line_kb", v, 1024, "KiB, e.g. 8")?
        }
        ("max_header_kb", Val::Int(v)) => {
            h.max_header_kb = kb("max_header_kb", v, 1024, "KiB, e.g. 16")?
        }
        ("max_headers", Val::Int(v)) => {
            h.max_headers = int_in("max_headers", v, 1, 1000, "header fields, e.g. 64")? as u32
        }
        ("max_body_kb", Val::Int(v)) => {
            h.max_body_kb = kb("max_body_kb", v, 16 * 1024, "KiB, e.g. 64")?
        }
        (key, _) => {
            return Err(problem(format!(
                "internal: no http setting {key} of this type"
            )));
        }
    }
    Ok(())
}

fn set_ollama(o: &mut OllamaSettings, key: &str, val: Val) -> Result<(), Problem> {
    match (key, val) {
        ("host", Val::Str(v)) => {
            if v.contains("://") || v.contains('/') {
                return Err(problem_hint(
                    format!("host = '{v}' should be a host name or address only"),
                    "write e.g. host = \"192.168.1.20\" and the port in port = 11434",
                ));
            }
            o.host = v.trim().to_string();
        }
        ("port", Val::Int(v)) => {
            o.port = int_in("port", v, 1, 65535, "Ollama listens on 11434")? as u16
        }
        ("model", Val::Str(v)) => {
            if v.trim().is_empty() {
                return Err(problem_hint(
                    "model is empty",
                    "e.g. model = \"gemma4:e2b\"",
                ));
            }
            o.model = v.trim().to_string();
        }
        ("keep_alive", Val::Str(v)) => {
            if !valid_keep_alive(&v) {
                return Err(problem_hint(
                    format!("keep_alive = \"{v}\" is not something Ollama accepts"),
                    "a number of seconds (-1 keeps the model loaded) or a duration with a unit, e.g. \"5m\" or \"1h\"",
                ));
            }
            o.keep_alive = v.trim().to_string();
        }
        ("connect_timeout", Val::Str(v)) => {
            o.connect_timeout = duration_in("connect_timeout", &v, 100_000, 600_000_000)?
        }
        ("read_timeout", Val::Str(v)) => {
            o.read_timeout = duration_in("read_timeout", &v, 1_000_000, 3_600_000_000)?
        }
        ("total_timeout", Val::Str(v)) => {
            o.total_timeout = duration_in("total_timeout", &v, 1_000_000, 7_200_000_000)?
        }
        ("retries", Val::Int(v)) => o.retries = int_in("retries", v, 0, 20, "e.g. 3")? as u32,
        (key, _) => {
            return Err(problem(format!(
                "internal: no ollama setting {key} of this type"
            )));
        }
    }
    Ok(())
}

fn set_agent(a: &mut AgentSettings, key: &str, val: Val) -> Result<(), Problem> {
    match (key, val) {
        ("enabled", Val::Bool(v)) => a.enabled = v,
        ("system_prompt", Val::Str(v)) => a.system_prompt = v,
        ("max_tool_iterations", Val::Int(v)) => {
            a.max_tool_iterations = int_in(
                "max_tool_iterations",
                v,
                1,
                50,
                "model rounds per question, e.g. 10",
            )? as u32
        }
        ("ask_topics", Val::List(v)) => {
            for t in &v {
                crate::edges::mqtt::topic::validate_filter(t).map_err(|e| {
                    problem_hint(
                        format!("ask_topics: '{t}': {e}"),
                        "e.g. [\"smollama/kitchen/ask\", \"smollama/broadcast\"]",
                    )
                })?;
            }
            a.ask_topics = v;
        }
        ("answer_topic", Val::Str(v)) => {
            crate::edges::mqtt::topic::validate_topic(&v, 65_535)
                .map_err(|e| problem(format!("answer_topic: {e}")))?;
            a.answer_topic = Some(v);
        }
        ("fallback_mode", Val::Str(v)) => {
            a.fallback_mode = match v.as_str() {
                "queue" => FallbackMode::Queue,
                "skip" => FallbackMode::Skip,
                _ => {
                    return Err(problem_hint(
                        format!("unknown fallback_mode '{v}'"),
                        "queue: keep questions until Ollama is back; skip: answer with an error at once",
                    ));
                }
            }
        }
        ("queue_max", Val::Int(v)) => {
            a.queue_max = int_in("queue_max", v, 1, 100_000, "e.g. 100")? as u32
        }
        ("rate_per_minute", Val::Int(v)) => {
            a.rate_per_minute = int_in(
                "rate_per_minute",
                v,
                1,
                10_000,
                "questions per topic per minute, e.g. 10",
            )? as u32
        }
        (key, _) => {
            return Err(problem(format!(
                "internal: no agent setting {key} of this type"
            )));
        }
    }
    Ok(())
}

fn set_mqtt(
    m: &mut MqttSettings,
    key: &str,
    val: Val,
    resolve: &dyn Fn(String) -> PathBuf,
) -> Result<(), Problem> {
    let non_empty = |v: String| if v.is_empty() { None } else { Some(v) };
    match (key, val) {
        ("broker", Val::Str(v)) => {
            if v.contains("://") || v.contains('/') {
                return Err(problem_hint(
                    format!("broker = '{v}' should be a host name or address only"),
                    "write e.g. broker = \"192.168.1.10\" and the port in port = 1883",
                ));
            }
            m.broker = non_empty(v.trim().to_string());
        }
        ("port", Val::Int(v)) => {
            m.port = int_in(
                "port",
                v,
                1,
                65535,
                "the MQTT port, usually 1883 (8883 with TLS)",
            )? as u16
        }
        ("client_id", Val::Str(v)) => {
            if v.chars().count() > 64 || v.contains(['+', '#', '/']) {
                return Err(problem_hint(
                    format!("client_id '{v}' is not valid"),
                    "use up to 64 characters without + # /, or leave it out for smollama-<node>",
                ));
            }
            m.client_id = non_empty(v);
        }
        ("username", Val::Str(v)) => m.username = non_empty(v),
        ("password", Val::Str(v)) => m.password = non_empty(v).map(Secret),
        ("keepalive", Val::Str(v)) => {
            m.keepalive = duration_in("keepalive", &v, 5_000_000, 3_600_000_000)?
        }
        ("clean_session", Val::Bool(v)) => m.clean_session = v,
        ("topic_prefix", Val::Str(v)) => {
            let v = v.trim_end_matches('/').to_string();
            if v.is_empty() || v.contains(['+', '#']) || v.starts_with('/') {
                return Err(problem_hint(
                    format!("topic_prefix '{v}' is not a valid topic prefix"),
                    "use levels without wildcards, e.g. \"smollama/greenhouse\" (the default is smollama/<node>)",
                ));
            }
            m.topic_prefix = Some(v);
        }
        ("state_prefix", Val::Str(v)) => {
            let v = v.trim_end_matches('/').to_string();
            if v.contains(['+', '#']) || v.starts_with('/') || v.starts_with('$') {
                return Err(problem_hint(
                    format!("state_prefix '{v}' is not a valid topic prefix"),
                    "use levels without wildcards outside smollama/, e.g. \"nodes/greenhouse\"; leave it out to use topic_prefix",
                ));
            }
            m.state_prefix = non_empty(v);
        }
        ("reconnect_min", Val::Str(v)) => {
            m.reconnect_min = duration_in("reconnect_min", &v, 100_000, 600_000_000)?
        }
        ("reconnect_max", Val::Str(v)) => {
            m.reconnect_max = duration_in("reconnect_max", &v, 100_000, 3_600_000_000)?
        }
        ("outbox_max_messages", Val::Int(v)) => {
            m.outbox_max_messages = int_in(
                "outbox_max_messages",
                v,
                1,
                100_000_000,
                "how many QoS 1 messages may wait for the broker",
            )? as u64
        }
        ("outbox_max_mb", Val::Int(v)) => {
            m.outbox_max_mb = int_in(
                "outbox_max_mb",
                v,
                1,
                4096,
                "MiB of QoS 1 messages that may wait for the broker; keep it well under [store] map_size_mb",
            )? as u64
        }
        ("max_payload_kb", Val::Int(v)) => {
            m.max_payload_kb = int_in(
                "max_payload_kb",
                v,
                1,
                262_144,
                "the largest payload in KiB, e.g. 256",
            )? as u64
        }
        ("max_remote_sources", Val::Int(v)) => {
            m.max_remote_sources = int_in(
                "max_remote_sources",
                v,
                0,
                1_000_000,
                "sources learned from other nodes, in total, e.g. 5000 (each costs about 0.5 KiB)",
            )? as u32
        }
        ("max_sources_per_node", Val::Int(v)) => {
            m.max_sources_per_node = int_in(
                "max_sources_per_node",
                v,
                0,
                1_000_000,
                "sources learned from one other node, e.g. 1000",
            )? as u32
        }
        ("max_reading_age", Val::Str(v)) => {
            m.max_reading_age =
                duration_in("max_reading_age", &v, 60_000_000, 3650 * 86_400_000_000)?
        }
        ("max_clock_ahead", Val::Str(v)) => {
            m.max_clock_ahead = duration_in("max_clock_ahead", &v, 1_000_000, 86_400_000_000)?
        }
        ("inflight", Val::Int(v)) => {
            m.inflight = int_in("inflight", v, 1, 1000, "QoS 1 messages in flight, e.g. 64")? as u16
        }
        ("recent_per_topic", Val::Int(v)) => {
            m.recent_per_topic = int_in(
                "recent_per_topic",
                v,
                0,
                10_000,
                "messages kept per topic for the agent, e.g. 100",
            )? as usize
        }
        ("discovery", Val::Bool(v)) => m.discovery = v,
        ("discovery_prefix", Val::Str(v)) => {
            if v.is_empty() || v.contains(['+', '#']) {
                return Err(problem_hint(
                    format!("discovery_prefix '{v}' is not valid"),
                    "Home Assistant's default is \"homeassistant\"",
                ));
            }
            m.discovery_prefix = v;
        }
        ("ca_file", Val::Str(v)) => {
            if !cfg!(feature = "mqtt-tls") && !v.is_empty() {
                return Err(problem_hint(
                    "ca_file is set but this smollama was built without TLS",
                    "rebuild with `cargo build --release --features mqtt-tls`, or use a broker on the LAN without TLS",
                ));
            }
            m.ca_file = non_empty(v).map(resolve);
        }
        (key, _) => {
            return Err(problem(format!(
                "internal: no mqtt setting {key} of this type"
            )));
        }
    }
    if m.reconnect_min > m.reconnect_max {
        return Err(problem_hint(
            "reconnect_min is longer than reconnect_max",
            "e.g. reconnect_min = \"1s\", reconnect_max = \"60s\"",
        ));
    }
    Ok(())
}

/// Turn a toml deserialisation error into a `ConfigError` with a line and plain words:
/// type errors say what the key takes, unknown keys name their table and the valid keys.
fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map(|r| error::line_of(text, r.start));
    let msg = e.message().trim().to_string();
    if let Some((m, hint)) = super::expect::from_toml_type_error(&msg, text, e.span()) {
        return ConfigError::new(file, line, m).with_hint(
            hint.unwrap_or_else(|| "see config/smollama.toml for every key with an example".into()),
        );
    }
    if let Some((unknown, expected)) = parse_unknown_field(&msg) {
        let refs: Vec<&str> = expected.iter().map(String::as_str).collect();
        let top_level = refs.contains(&"node") && refs.contains(&"pipeline");
        let (what, message) = if top_level {
            ("sections", format!("unknown section [{unknown}]"))
        } else {
            let table = if refs == PIN_KEYS {
                "[[gpio.pins]]".to_string()
            } else {
                table_header_before(text, e.span().map_or(0, |r| r.start))
            };
            ("keys here", format!("unknown key `{unknown}` in {table}"))
        };
        let hint = if expected.is_empty() {
            "this table takes no keys".to_string()
        } else {
            suggest::hint(&unknown, what, &refs)
        };
        return ConfigError::new(file, line, message).with_hint(hint);
    }
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        return ConfigError::new(
            file,
            line,
            format!("a [[gpio.pins]] entry has no `{field}`"),
        )
        .with_hint(format!(
            "each [[gpio.pins]] needs at least `pin` and `name`; keys: {}",
            PIN_KEYS.join(", ")
        ));
    }
    let mut err = ConfigError::new(file, line, msg.clone());
    if msg.starts_with("invalid type") {
        err = err.with_hint(
            "text goes in quotes; numbers, true and false do not (see config/smollama.toml)",
        );
    }
    err
}

/// The `[table]` header that `pos` lies under, for naming it in errors.
fn table_header_before(text: &str, pos: usize) -> String {
    text[..pos.min(text.len())]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map_or("the top of the file".to_string(), |l| {
            l.split('#').next().unwrap_or(l).trim().to_string()
        })
}

/// Parse serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`", or
/// "there are no fields").
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

fn apply_file(settings: &mut Settings, path: &Path, text: &str) -> Result<(), ConfigErrors> {
    let file = path.display().to_string();
    let raw: RawSettings = toml::from_str(text).map_err(|e| toml_error(&file, text, &e))?;
    let base = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    let mut errors = Vec::new();
    let mut set = |section: &str, key: &str, span: std::ops::Range<usize>, val: Val| {
        let line = error::line_of(text, span.start);
        match set_key(settings, section, key, val, base) {
            Ok(()) => settings.set_origin(
                section,
                key,
                Origin::File {
                    path: path.to_path_buf(),
                    line,
                },
            ),
            Err((msg, hint)) => {
                let mut e = ConfigError::new(&file, Some(line), msg);
                e.hint = hint;
                errors.push(e);
            }
        }
    };
    let s = |v: Spanned<String>| (v.span(), Val::Str(v.into_inner()));
    let b = |v: Spanned<bool>| (v.span(), Val::Bool(v.into_inner()));
    if let Some(n) = raw.node {
        if let Some((sp, v)) = n.name.map(s) {
            set("node", "name", sp, v);
        }
        if let Some((sp, v)) = n.data_dir.map(s) {
            set("node", "data_dir", sp, v);
        }
    }
    if let Some(st) = raw.store.and_then(|st| st.map_size_mb) {
        set("store", "map_size_mb", st.span(), Val::Int(*st.get_ref()));
    }
    if let Some((sp, v)) = raw.log.and_then(|l| l.level).map(s) {
        set("log", "level", sp, v);
    }
    let mut mqtt_errors = Vec::new();
    for (section, table) in [
        ("http", raw.http),
        ("mqtt", raw.mqtt),
        ("ollama", raw.ollama),
        ("agent", raw.agent),
        ("memory", raw.memory),
    ] {
        if let Some(table) = table {
            for (key, span, val) in read_table(section, table, text, &mut mqtt_errors, &file) {
                set(section, &key, span, val);
            }
        }
    }
    let mut pins = None;
    if let Some(g) = raw.gpio {
        if let Some((sp, v)) = g.backend.map(s) {
            set("gpio", "backend", sp, v);
        }
        if let Some((sp, v)) = g.simulate.map(b) {
            set("gpio", "simulate", sp, v);
        }
        pins = g.pins;
    }
    if let Some(files) = raw.pipeline.and_then(|p| p.files) {
        let span = files.first().map_or(0..0, |f| f.span());
        set(
            "pipeline",
            "files",
            span,
            Val::List(files.into_iter().map(|f| f.into_inner()).collect()),
        );
    }
    errors.extend(mqtt_errors);
    for raw_pin in pins.unwrap_or_default() {
        let at = |span: std::ops::Range<usize>| Some(error::line_of(text, span.start));
        match parse_pin(raw_pin.into_inner(), &settings.gpio.pins) {
            Ok(p) => settings.gpio.pins.push(p),
            Err((span, msg, hint)) => {
                let mut e = ConfigError::new(&file, at(span), msg);
                e.hint = Some(hint);
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// `[mqtt]` is read as a plain table (many keys, one shape): each key is checked against
/// `MQTT_KEYS` and its type, and located by searching the file text for its line.
fn read_table(
    section: &str,
    table: toml::Table,
    text: &str,
    errors: &mut Vec<ConfigError>,
    file: &str,
) -> Vec<(String, std::ops::Range<usize>, Val)> {
    let keys: &[&str] = SECTIONS
        .iter()
        .find(|(s, _)| *s == section)
        .map_or(&[], |(_, k)| k);
    let mut out = Vec::new();
    for (key, value) in table {
        let span = key_span(text, section, &key);
        let line = Some(error::line_of(text, span.start));
        if !keys.contains(&key.as_str()) {
            errors.push(
                ConfigError::new(file, line, format!("unknown key `{key}` in [{section}]"))
                    .with_hint(suggest::hint(&key, "keys here", keys)),
            );
            continue;
        }
        let val = match (key_type(section, &key), value) {
            (Ty::Str, toml::Value::String(v)) => Val::Str(v),
            // The float settings travel as text, like from the environment.
            (Ty::Str, toml::Value::Float(f)) if want(section, &key) == Want::Number => {
                Val::Str(f.to_string())
            }
            (Ty::Str, toml::Value::Integer(i))
                if want(section, &key) == Want::Number || key == "keep_alive" =>
            {
                Val::Str(i.to_string())
            }
            (Ty::Int, toml::Value::Integer(v)) => Val::Int(v),
            (Ty::Bool, toml::Value::Boolean(v)) => Val::Bool(v),
            (Ty::List, toml::Value::Array(a)) if a.iter().all(|v| v.is_str()) => Val::List(
                a.into_iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            ),
            (_, other) => {
                let (msg, hint) = super::expect::mismatch(want(section, &key), &other);
                errors.push(
                    ConfigError::new(file, line, format!("{key}: {msg}")).with_hint(
                        hint.unwrap_or_else(|| {
                            "see config/smollama.toml for every key with an example".into()
                        }),
                    ),
                );
                continue;
            }
        };
        out.push((key, span, val));
    }
    out
}

/// Byte span of `key = ` inside `[section]` (best effort, for error lines).
fn key_span(text: &str, section: &str, key: &str) -> std::ops::Range<usize> {
    let header = format!("[{section}]");
    let start = text.find(&header).unwrap_or(0);
    let mut pos = start;
    for line in text[start..].split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
            return pos..pos + line.len();
        }
        pos += line.len();
    }
    start..start
}

fn parse_pin(
    raw: RawPin,
    existing: &[PinConfig],
) -> Result<PinConfig, (std::ops::Range<usize>, String, String)> {
    let pin = *raw.pin.get_ref();
    if !(0..=27).contains(&pin) {
        return Err((
            raw.pin.span(),
            format!("pin {pin} is not a GPIO pin"),
            "use a BCM number from 0 to 27 (BCM numbering, not the physical header position)"
                .into(),
        ));
    }
    let pin = pin as u8;
    if let Some(other) = existing.iter().find(|p| p.pin == pin) {
        return Err((
            raw.pin.span(),
            format!("pin {pin} is configured twice"),
            format!(
                "it is already configured as '{}'; give each pin one [[gpio.pins]] entry",
                other.name
            ),
        ));
    }
    let name = raw.name.get_ref().clone();
    if name.is_empty() || !valid_name_chars(&name) {
        return Err((
            raw.name.span(),
            format!("pin name '{name}' is not valid"),
            "use a non-empty name from A-Z a-z 0-9 _ -, e.g. \"motion\"".into(),
        ));
    }
    if let Some(other) = existing.iter().find(|p| p.name == name) {
        return Err((
            raw.name.span(),
            format!("pin name '{name}' is used twice"),
            format!(
                "pin {} is already called '{name}'; names must be unique",
                other.pin
            ),
        ));
    }
    let mode = match raw.mode {
        None => PinMode::Input,
        Some(m) => match m.get_ref().as_str() {
            "input" => PinMode::Input,
            "output" => PinMode::Output,
            other => {
                return Err((
                    m.span(),
                    format!("unknown pin mode '{other}'"),
                    suggest::hint(other, "modes", &["input", "output"]),
                ));
            }
        },
    };
    let pull = match raw.pull {
        None => Pull::Down,
        Some(p) => match p.get_ref().as_str() {
            "off" => Pull::Off,
            "up" => Pull::Up,
            "down" => Pull::Down,
            other => {
                return Err((
                    p.span(),
                    format!("unknown pull '{other}'"),
                    suggest::hint(other, "pulls", &["off", "up", "down"]),
                ));
            }
        },
    };
    Ok(PinConfig {
        pin,
        name,
        mode,
        pull,
        initial: raw.initial.is_some_and(|i| *i.get_ref()),
    })
}

/// The environment variables that override settings: (variable, section, key).
fn env_keys() -> Vec<(String, &'static str, &'static str)> {
    let mut v = Vec::new();
    for (section, keys) in SECTIONS {
        for key in keys.iter().filter(|k| **k != "pins") {
            v.push((
                format!(
                    "{ENV_PREFIX}{}_{}",
                    section.to_ascii_uppercase(),
                    key.to_ascii_uppercase()
                ),
                *section,
                *key,
            ));
        }
    }
    v
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn apply_env(settings: &mut Settings, env: &[(String, String)]) -> Result<(), ConfigErrors> {
    let known = env_keys();
    let mut errors = Vec::new();
    for (var, value) in env {
        // SMOLLAMA_TEST_* are test hooks, not settings.
        if !var.starts_with(ENV_PREFIX)
            || var == CONFIG_ENV
            || var.starts_with("SMOLLAMA_TEST_")
            || value.is_empty()
        {
            continue;
        }
        let origin = format!("environment variable {var}");
        let Some((_, section, key)) = known.iter().find(|(k, _, _)| k == var) else {
            let mut names: Vec<String> = known.iter().map(|(k, _, _)| k.clone()).collect();
            names.push(CONFIG_ENV.to_string());
            // The three closest, not all of them: the list is long and the typo is near.
            let closest = suggest::by_closeness(var, &names);
            let closest: Vec<&str> = closest.iter().take(3).map(String::as_str).collect();
            errors.push(
                ConfigError::new(origin, None, format!("unknown setting variable {var}"))
                    .with_hint(format!(
                        "did you mean {}? every variable is SMOLLAMA_<SECTION>_<KEY> of a key in config/smollama.toml",
                        suggest::one_of(&closest)
                    )),
            );
            continue;
        };
        let val = match key_type(section, key) {
            Ty::Int => match value.trim().parse::<i64>() {
                Ok(n) => Val::Int(n),
                Err(_) => {
                    errors.push(
                        ConfigError::new(
                            origin,
                            None,
                            format!("expected {}, found \"{value}\"", Want::WholeNumber.phrase()),
                        )
                        .with_hint("see config/smollama.toml for the value this key takes"),
                    );
                    continue;
                }
            },
            Ty::Bool => match parse_bool(value) {
                Some(b) => Val::Bool(b),
                None => {
                    errors.push(
                        ConfigError::new(
                            origin,
                            None,
                            format!("expected {}, found \"{value}\"", Want::Bool.phrase()),
                        )
                        .with_hint("use true/false, 1/0, yes/no or on/off"),
                    );
                    continue;
                }
            },
            Ty::List => Val::List(
                value
                    .split(',')
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty())
                    .collect(),
            ),
            Ty::Str => Val::Str(value.clone()),
        };
        match set_key(settings, section, key, val, None) {
            Ok(()) => settings.set_origin(section, key, Origin::Env(var.clone())),
            Err((msg, hint)) => {
                let mut e = ConfigError::new(origin, None, msg);
                e.hint = hint;
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
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
