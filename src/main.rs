//! The `smollama` command line: parse, load config, hand over.
// Without the agent feature `ask` and `memory` still parse, to say they are not built in,
// so their arguments go unread.
#![cfg_attr(not(feature = "agent"), allow(dead_code))]

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;

use smollama::config::{ConfigErrors, PipelineSpec, Settings, suggest};
use smollama::data_dir::{DataDir, Lock, LockError};
use smollama::logging;

#[derive(FromArgs)]
/// smollama: a small always-on edge agent for Raspberry Pis. With no subcommand it runs
/// the agent (what the systemd unit starts).
#[argh(help_triggers("-h", "--help", "help"))]
struct Cli {
    /// config file (default: $SMOLLAMA_CONFIG, then /etc/smollama/smollama.toml, then
    /// built-in defaults)
    #[argh(option)]
    config: Option<PathBuf>,

    /// log level: error, warn, info, debug or trace (overrides RUST_LOG and the config)
    #[argh(option)]
    log_level: Option<String>,

    /// log line format: auto, text, journald or json (overrides [log] format)
    #[argh(option)]
    log_format: Option<String>,

    /// print the version and exit
    #[argh(switch, short = 'V')]
    version: bool,

    #[argh(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Run(RunCmd),
    Status(StatusCmd),
    Nodes(NodesCmd),
    Pipeline(PipelineCmd),
    Plugins(PluginsCmd),
    Ask(AskCmd),
    Memory(MemoryCmd),
    Config(ConfigCmd),
}

#[derive(FromArgs)]
/// show the effective settings, or the documented default settings file
#[argh(subcommand, name = "config")]
#[argh(help_triggers("-h", "--help", "help"))]
struct ConfigCmd {
    #[argh(subcommand)]
    cmd: ConfigSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum ConfigSub {
    Check(ConfigCheck),
    Default(ConfigDefault),
}

#[derive(FromArgs)]
/// print every settings key with its effective value and where it came from (default,
/// FILE:LINE or env SMOLLAMA_X; secrets as ***); exit 2 with every error when invalid
#[argh(subcommand, name = "check")]
#[argh(help_triggers("-h", "--help", "help"))]
struct ConfigCheck {}

#[derive(FromArgs)]
/// print the documented default settings file (what config/smollama.toml holds)
#[argh(subcommand, name = "default")]
#[argh(help_triggers("-h", "--help", "help"))]
struct ConfigDefault {}

#[derive(FromArgs)]
/// export, import, search or re-embed observations and memories
#[argh(subcommand, name = "memory")]
#[argh(help_triggers("-h", "--help", "help"))]
struct MemoryCmd {
    #[argh(subcommand)]
    cmd: MemorySub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum MemorySub {
    Export(MemExport),
    Import(MemImport),
    Recall(MemRecall),
    Reembed(MemReembed),
}

#[derive(FromArgs)]
/// redo every vector with [memory] embedding_model (after changing it; the running agent
/// also does this by itself, in the background)
#[argh(subcommand, name = "reembed")]
#[argh(help_triggers("-h", "--help", "help"))]
struct MemReembed {}

#[derive(FromArgs)]
/// write every observation and memory as JSON lines (to FILE, or standard output)
#[argh(subcommand, name = "export")]
#[argh(help_triggers("-h", "--help", "help"))]
struct MemExport {
    #[argh(positional)]
    file: Option<PathBuf>,
}

#[derive(FromArgs)]
/// read JSON lines back (duplicates skipped, bad lines reported by number)
#[argh(subcommand, name = "import")]
#[argh(help_triggers("-h", "--help", "help"))]
struct MemImport {
    #[argh(positional)]
    file: PathBuf,
}

#[derive(FromArgs)]
/// print observations and memories ranked by relevance to QUERY
#[argh(subcommand, name = "recall")]
#[argh(help_triggers("-h", "--help", "help"))]
struct MemRecall {
    #[argh(positional)]
    query: String,
    /// results per kind (default 5)
    #[argh(option, default = "5")]
    limit: usize,
}

#[derive(FromArgs)]
/// ask the configured model one question, with the agent's tools, and print the answer
/// (for trying a prompt or a tool; uses the store and GPIO, not MQTT)
#[argh(subcommand, name = "ask")]
#[argh(help_triggers("-h", "--help", "help"))]
struct AskCmd {
    /// the question
    #[argh(positional)]
    question: String,
}

#[derive(FromArgs)]
/// run the agent in the foreground (the default)
#[argh(subcommand, name = "run")]
#[argh(help_triggers("-h", "--help", "help"))]
struct RunCmd {
    /// listen for HTTP on this address instead of [http] bind's (e.g. 0.0.0.0)
    #[argh(option)]
    host: Option<String>,
    /// listen for HTTP on this port instead of [http] bind's
    #[argh(option)]
    port: Option<u16>,
}

#[derive(FromArgs)]
/// show a running agent's live state, or what can be checked offline
#[argh(subcommand, name = "status")]
#[argh(help_triggers("-h", "--help", "help"))]
struct StatusCmd {
    /// print one JSON object instead of text
    #[argh(switch)]
    json: bool,
}

#[derive(FromArgs)]
/// list the other nodes the running agent knows (mDNS, MQTT): role, address, last seen, health
#[argh(subcommand, name = "nodes")]
#[argh(help_triggers("-h", "--help", "help"))]
struct NodesCmd {
    /// print the agent's JSON (GET /api/nodes) instead of a table
    #[argh(switch)]
    json: bool,
}

#[derive(FromArgs)]
/// work with pipeline files
#[argh(subcommand, name = "pipeline")]
#[argh(help_triggers("-h", "--help", "help"))]
struct PipelineCmd {
    #[argh(subcommand)]
    cmd: PipelineSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum PipelineSub {
    Check(CheckCmd),
    Needs(NeedsCmd),
}

#[derive(FromArgs)]
/// print the board interfaces the pipeline needs enabled, one per line (`i2c`, `spi`,
/// or a config.txt overlay line such as dtoverlay=w1-gpio,gpiopin=4); nothing when none.
/// setup-pi.sh enables exactly these
#[argh(subcommand, name = "needs")]
#[argh(help_triggers("-h", "--help", "help"))]
struct NeedsCmd {
    /// pipeline files to read together as one graph (default: the configured ones)
    #[argh(positional)]
    files: Vec<PathBuf>,
}

#[derive(FromArgs)]
/// validate pipeline files (default: the configured ones, or the built-in default);
/// exit 0 when valid, 2 with every error (file, line, hint) when not
#[argh(subcommand, name = "check")]
#[argh(help_triggers("-h", "--help", "help"))]
struct CheckCmd {
    /// pipeline files to check together as one graph
    #[argh(positional)]
    files: Vec<PathBuf>,
}

#[derive(FromArgs)]
/// the kinds of sources, stages, sinks and tools this build knows
#[argh(subcommand, name = "plugins")]
#[argh(help_triggers("-h", "--help", "help"))]
struct PluginsCmd {
    #[argh(subcommand)]
    cmd: PluginsSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum PluginsSub {
    List(PluginsListCmd),
    Check(PluginsCheckCmd),
}

#[derive(FromArgs)]
/// check every plugin manifest in [plugins] dir; exit 2 if any is invalid
#[argh(subcommand, name = "check")]
#[argh(help_triggers("-h", "--help", "help"))]
struct PluginsCheckCmd {}

#[derive(FromArgs)]
/// list every kind: role, name, version, status and parameters
#[argh(subcommand, name = "list")]
#[argh(help_triggers("-h", "--help", "help"))]
struct PluginsListCmd {
    /// print one JSON array instead of text
    #[argh(switch)]
    json: bool,
}

fn main() -> ExitCode {
    let args = argh_glue::hoist_globals(&std::env::args().collect::<Vec<_>>());
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let cli: Cli = parse_args(&strs);
    if cli.version {
        println!(
            "smollama {} (features: {})",
            env!("CARGO_PKG_VERSION"),
            smollama::features::list()
        );
        return ExitCode::SUCCESS;
    }
    if let Some(l) = &cli.log_level
        && logging::parse_level(l).is_none()
    {
        eprintln!(
            "error: --log-level '{l}' is not one of {}",
            logging::LEVELS.join(", ")
        );
        return ExitCode::from(2);
    }
    let flag_format = match cli.log_format.as_deref() {
        None => None,
        Some(f) => match smollama::config::settings::LogFormat::parse(f) {
            Some(f) => Some(f),
            None => {
                eprintln!(
                    "error: --log-format '{f}' is not one of {}",
                    smollama::config::settings::LogFormat::NAMES.join(", ")
                );
                return ExitCode::from(2);
            }
        },
    };
    // The default file is the same whatever is configured (or broken) here.
    if let Some(Cmd::Config(ConfigCmd {
        cmd: ConfigSub::Default(_),
    })) = cli.cmd
    {
        print!("{}", smollama::config::settings::render::default_file());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => return config_failure(&e),
    };
    let format = flag_format.unwrap_or(settings.log.format);
    logging::init(
        cli.log_level.as_deref(),
        settings.log.level.as_deref(),
        format,
    );
    match cli.cmd {
        None => run(settings),
        Some(Cmd::Run(r)) => match bind_override(settings, r) {
            Ok(settings) => run(settings),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Some(Cmd::Status(s)) => status(&settings, s.json),
        Some(Cmd::Nodes(n)) => nodes(&settings, n.json),
        Some(Cmd::Pipeline(PipelineCmd {
            cmd: PipelineSub::Check(c),
        })) => pipeline_check(settings, c.files),
        Some(Cmd::Pipeline(PipelineCmd {
            cmd: PipelineSub::Needs(c),
        })) => pipeline_needs(settings, c.files),
        Some(Cmd::Plugins(PluginsCmd {
            cmd: PluginsSub::List(l),
        })) => {
            let manifests = smollama::plugins::manifest::of(&settings).unwrap_or_else(|e| {
                eprintln!("error: {e}");
                Vec::new()
            });
            if l.json {
                println!("{:#}", smollama::plugins::list::json(&manifests));
            } else {
                print!("{}", smollama::plugins::list::text(&manifests));
            }
            ExitCode::SUCCESS
        }
        Some(Cmd::Plugins(PluginsCmd {
            cmd: PluginsSub::Check(_),
        })) => {
            let (report, ok) = smollama::plugins::manifest::check(&settings);
            if ok {
                print!("{report}");
                ExitCode::SUCCESS
            } else {
                eprint!("{report}");
                ExitCode::from(2)
            }
        }
        Some(Cmd::Ask(a)) => ask(&settings, &a.question),
        Some(Cmd::Memory(m)) => memory(&settings, m.cmd),
        Some(Cmd::Config(_)) => {
            // Loading succeeded (errors exit 2 above), so the settings are valid.
            print!("{}", smollama::config::settings::render::check(&settings));
            ExitCode::SUCCESS
        }
    }
}

/// `argh` accepts global options only before the subcommand; users type them after it
/// too (`smollama run --log-level debug`), so move them to the front first.
mod argh_glue {
    /// Global options that take a value.
    const GLOBALS: [&str; 3] = ["--config", "--log-level", "--log-format"];

    pub fn hoist_globals(args: &[String]) -> Vec<String> {
        let mut front = vec![args[0].clone()];
        let mut rest = Vec::new();
        let mut i = 1;
        while i < args.len() {
            let a = &args[i];
            if let Some((flag, _)) = a.split_once('=')
                && GLOBALS.contains(&flag)
            {
                front.push(a.clone());
            } else if GLOBALS.contains(&a.as_str()) && i + 1 < args.len() {
                front.push(a.clone());
                front.push(args[i + 1].clone());
                i += 1;
            } else {
                rest.push(a.clone());
            }
            i += 1;
        }
        front.extend(rest);
        front
    }

    /// argh says only "Unrecognized argument: stauts"; for a word where a command belongs,
    /// name the closest command (`did you mean 'status'?`) or list them.
    pub fn unknown_command(args: &[&str], output: &str) -> Option<String> {
        use argh::SubCommands;
        let word = output
            .strip_prefix("Unrecognized argument: ")?
            .lines()
            .next()?
            .trim();
        if word.starts_with('-') {
            return None;
        }
        let names = |c: &[&argh::CommandInfo]| c.iter().map(|c| c.name).collect::<Vec<_>>();
        // The commands expected at the word's place: top level, or under `pipeline`,
        // `memory` or `config`.
        let mut expected = names(super::Cmd::COMMANDS);
        let mut words = args.iter().skip(1);
        while let Some(a) = words.next() {
            if *a == word {
                break;
            }
            if GLOBALS.contains(a) {
                words.next();
                continue;
            }
            if a.starts_with('-') {
                continue;
            }
            expected = match *a {
                "pipeline" => names(super::PipelineSub::COMMANDS),
                "plugins" => names(super::PluginsSub::COMMANDS),
                "memory" => names(super::MemorySub::COMMANDS),
                "config" => names(super::ConfigSub::COMMANDS),
                // After a command without subcommands the word is a stray argument.
                _ => return None,
            };
        }
        let list = expected.join(", ");
        Some(match super::suggest::closest(word, &expected) {
            Some(c) => {
                format!("error: unknown command '{word}'; did you mean '{c}'? (commands: {list})")
            }
            None => format!("error: unknown command '{word}'; commands: {list}"),
        })
    }
}

fn config_failure(e: &ConfigErrors) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(2)
}

/// The data directory, created if needed and checked writable; errors name the setting.
fn usable_data_dir(settings: &Settings) -> Result<DataDir, ExitCode> {
    DataDir::resolve(settings)
        .and_then(|d| d.prepare().map(|()| d))
        .map_err(|e| config_failure(&e.into()))
}

/// Take the data directory for a command that writes the store. `refusal` says what to do
/// when an agent holds it.
fn exclusive(dir: &DataDir, command: &str, refusal: &str) -> Result<Lock, ExitCode> {
    dir.lock(command).map_err(|e| match e {
        LockError::Held { dir, holder } => {
            if holder.command == AGENT_COMMAND {
                eprintln!(
                    "error: smollama is running ({holder}) on {}; {refusal}",
                    dir.display()
                );
            } else {
                eprintln!(
                    "error: {} is using {} ({holder}); wait for it to finish, then run this again",
                    if holder.command.is_empty() {
                        "another smollama"
                    } else {
                        &holder.command
                    },
                    dir.display()
                );
            }
            ExitCode::from(1)
        }
        LockError::Unusable(e) => config_failure(&e.into()),
    })
}

/// What the agent writes into the lock file, and what other commands look for in it.
const AGENT_COMMAND: &str = "smollama run";

fn run(settings: Settings) -> ExitCode {
    let spec = match PipelineSpec::load(&settings) {
        Ok(s) => s,
        Err(e) => return config_failure(&e),
    };
    // One store, one agent: a second agent on this directory would write every reading
    // twice. The lock is held until the process ends.
    let dir = match usable_data_dir(&settings) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let _lock = match exclusive(
        &dir,
        AGENT_COMMAND,
        "one data directory serves one agent: stop that one first (sudo systemctl stop smollama if it is the service), or give this one its own [node] data_dir",
    ) {
        Ok(l) => l,
        Err(code) => return code,
    };
    match smollama::app::run(settings, spec) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `run --host/--port`: they replace the address or port of `[http] bind` (the other
/// part stays as configured), shown as set on the command line by `config check`.
fn bind_override(mut settings: Settings, r: RunCmd) -> Result<Settings, String> {
    if r.host.is_none() && r.port.is_none() {
        return Ok(settings);
    }
    let mut bind = settings.http.bind;
    if let Some(h) = &r.host {
        let ip = h.parse::<std::net::IpAddr>().map_err(|_| {
            format!(
                "--host '{h}' is not an IP address; use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
            )
        })?;
        bind.set_ip(ip);
    }
    if let Some(p) = r.port {
        bind.set_port(p);
    }
    settings.http.bind = bind;
    settings.set_origin(
        "http",
        "bind",
        smollama::config::settings::Origin::CommandLine,
    );
    Ok(settings)
}

/// `pipeline needs`: what the pipeline's kinds need enabled on the board.
fn pipeline_needs(mut settings: Settings, files: Vec<PathBuf>) -> ExitCode {
    if !files.is_empty() {
        settings.pipeline.files = files;
    }
    match PipelineSpec::load(&settings) {
        Ok(spec) => {
            for n in &spec.needs {
                println!("{}", n.line());
            }
            ExitCode::SUCCESS
        }
        Err(e) => config_failure(&e),
    }
}

fn pipeline_check(mut settings: Settings, files: Vec<PathBuf>) -> ExitCode {
    if !files.is_empty() {
        settings.pipeline.files = files;
        settings.set_origin(
            "pipeline",
            "files",
            smollama::config::settings::Origin::CommandLine,
        );
    }
    match PipelineSpec::load(&settings) {
        Ok(spec) => {
            let what = if settings.pipeline.files.is_empty() {
                "built-in default pipeline".to_string()
            } else {
                settings
                    .pipeline
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "ok: {what}: {} sources, {} stages, {} sinks",
                spec.sources.len(),
                spec.stages.len(),
                spec.sinks.len()
            );
            if !spec.needs.is_empty() {
                let needs: Vec<String> = spec.needs.iter().map(|n| n.line()).collect();
                println!(
                    "needs on the board: {} (setup-pi.sh enables them; see docs/hardware.md)",
                    needs.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => config_failure(&e),
    }
}

/// The agent's tool context for a command run beside (or instead of) the agent.
#[cfg(feature = "agent")]
fn offline_context(settings: &Settings) -> Result<smollama::agent::tools::ToolContext, String> {
    use smollama::store::{Store, StoreOptions};
    let store = Store::open(
        &smollama::app::store_dir(settings),
        &StoreOptions {
            map_size: (settings.store.map_size_mb as usize) << 20,
        },
    )
    .map(std::sync::Arc::new)
    .map_err(|e| e.to_string())?;
    let registry = std::sync::Arc::new(smollama::graph::registry::Registry::with_local_types(
        smollama::plugins::registry::local_id_types(),
    ));
    if let Ok(saved) = store.sources() {
        registry.load(saved);
    }
    // Opened only if a tool reads or drives a pin: most commands never do.
    let gpio: std::sync::Arc<dyn smollama::edges::gpio::GpioBackend> =
        std::sync::Arc::new(smollama::edges::gpio::lazy::LazyGpio::new(&settings.gpio));
    let retention = PipelineSpec::load(settings)
        .ok()
        .and_then(|spec| spec.retention());
    // Devices belong to the running agent's pipeline: none here, so no device tools.
    let hardware = std::sync::Arc::new(smollama::edges::hw::Hardware::new(&settings.hardware));
    Ok(smollama::app::tool_context(
        settings, &store, &registry, &gpio, &hardware, retention, None,
    ))
}

#[cfg(feature = "agent")]
fn memory(settings: &Settings, cmd: MemorySub) -> ExitCode {
    use smollama::memory::cli;
    let dir = match usable_data_dir(settings) {
        Ok(d) => d,
        Err(code) => return code,
    };
    // Reading works beside a running agent (LMDB readers do not block it); import and
    // reembed write what the agent also writes, so they need the directory to themselves.
    let stop_first = "stop it first: sudo systemctl stop smollama (or end the `smollama run` in its terminal), then run this again";
    let _lock = match &cmd {
        MemorySub::Import(_) => match exclusive(&dir, "smollama memory import", stop_first) {
            Ok(l) => Some(l),
            Err(code) => return code,
        },
        MemorySub::Reembed(_) => match exclusive(
            &dir,
            "smollama memory reembed",
            &format!(
                "{stop_first} (the running agent also re-embeds by itself, in the background, after [memory] embedding_model changes)"
            ),
        ) {
            Ok(l) => Some(l),
            Err(code) => return code,
        },
        MemorySub::Export(_) | MemorySub::Recall(_) => None,
    };
    let ctx = match offline_context(settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cmd {
        MemorySub::Export(e) => {
            let written = match &e.file {
                Some(f) => std::fs::File::create(f)
                    .map_err(|err| format!("cannot write {}: {err}", f.display()))
                    .and_then(|mut file| cli::export(&ctx, &mut file)),
                None => cli::export(&ctx, &mut std::io::stdout().lock()),
            };
            written.map(|(o, m)| eprintln!("exported {o} observations and {m} memories"))
        }
        MemorySub::Import(i) => cli::import(&ctx, &i.file).map(|r| {
            for (line, why) in &r.bad_lines {
                eprintln!("{}:{line}: skipped: {why}", i.file.display());
            }
            println!(
                "imported {} observations and {} memories; {} duplicates skipped; {} bad lines skipped; {} embedded",
                r.observations,
                r.memories,
                r.duplicates,
                r.bad_lines.len(),
                r.embedded
            );
        }),
        MemorySub::Reembed(_) => cli::reembed(&ctx, true).map(|n| {
            let dim = ctx.store.memory().dimension().ok().flatten();
            println!(
                "re-embedded {n} observations and memories with {} (dimension {})",
                settings.memory.embedding_model,
                dim.map_or("none".to_string(), |d| d.to_string())
            );
        }),
        MemorySub::Recall(r) => cli::recall_text(&ctx, &r.query, r.limit).map(|t| print!("{t}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(feature = "agent")]
fn ask(settings: &Settings, question: &str) -> ExitCode {
    use smollama::agent::tool_loop;
    use smollama::agent::tools::registry::ToolRegistry;
    if let Err(code) = usable_data_dir(settings) {
        return code;
    }
    let mut ctx = match offline_context(settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    // A local operator at the command line: trusted like a request with the token.
    ctx.trusted = true;
    let llm = smollama::edges::llm::Llm::from_settings(settings);
    let t0 = std::time::Instant::now();
    match tool_loop::run(
        &llm,
        &ToolRegistry::with_plugins(settings, &ctx.hardware.devices),
        &ctx,
        &settings.agent.system_prompt,
        question,
        settings.agent.max_tool_iterations,
    ) {
        Ok(out) => {
            match &out.answer {
                Some(a) => println!("{a}"),
                None => println!("(no answer after {} model rounds)", out.rounds),
            }
            eprintln!(
                "[{} rounds, tools: {}, {:.1}s]",
                out.rounds,
                if out.tools_used.is_empty() {
                    "none".to_string()
                } else {
                    out.tools_used.join(", ")
                },
                t0.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Ask the configured model server (either backend) what `smollama status` reports
/// about it: whether it answers, its models, whether the configured model is there.
#[cfg(feature = "agent")]
fn ollama_report(settings: &Settings) -> serde_json::Value {
    use smollama::edges::llm::{Backend, Llm};
    let llm = Llm::probe_from_settings(settings);
    let backend = llm.backend().as_str();
    match llm.version() {
        Ok(v) => {
            let models = llm.models().unwrap_or_default();
            let present = llm.has_model(&models, llm.model());
            let hint: serde_json::Value = match (present, llm.backend()) {
                (true, _) => serde_json::Value::Null,
                (false, Backend::Ollama) => format!("ollama pull {}", llm.model()).into(),
                (false, Backend::OpenAi) => llm.missing_model_hint().into(),
            };
            serde_json::json!({
                "backend": backend,
                "server": llm.server(),
                "reachable": true,
                "version": v,
                "model": llm.model(),
                "model_present": present,
                "models": models,
                "hint": hint,
            })
        }
        Err(e) => serde_json::json!({
            "backend": backend,
            "server": llm.server(),
            "reachable": false,
            "model": llm.model(),
            "error": e.to_string(),
        }),
    }
}

/// The running agent's base URL, from `[http] bind` (loopback for an unspecified address).
fn agent_url(settings: &Settings) -> String {
    let host = match settings.http.bind.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        ip if ip.is_ipv6() => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", settings.http.bind.port())
}

/// `smollama nodes`: what the running agent's node directory holds (it lives in the
/// agent's memory, so there is nothing to show without one).
fn nodes(settings: &Settings, json: bool) -> ExitCode {
    let url = format!("{}/api/nodes", agent_url(settings));
    if !settings.http.enabled {
        eprintln!(
            "error: [http] enabled = false, so the running agent cannot be asked for its nodes"
        );
        return ExitCode::from(1);
    }
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(2)))
        .build()
        .new_agent();
    let answer = agent
        .get(&url)
        .call()
        .map_err(|e| e.to_string())
        .and_then(|mut r| r.body_mut().read_to_string().map_err(|e| e.to_string()))
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).map_err(|e| e.to_string()));
    match answer {
        Ok(v) if json => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print!("{}", smollama::nodes::table(&v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: no agent answered at {url} ({e}); the node list lives in the running agent: start it with `smollama run`"
            );
            ExitCode::from(1)
        }
    }
}

fn status(settings: &Settings, json: bool) -> ExitCode {
    let url = format!("{}/api/status", agent_url(settings));
    if !settings.http.enabled {
        // Nothing to ask; the offline report still finds a running agent (by its store).
        let report =
            smollama::status::offline(settings, "[http] enabled = false, so it cannot be asked");
        return print_status(settings, report, json);
    }
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(2)))
        .build()
        .new_agent();
    let live = agent
        .get(&url)
        .call()
        .map_err(|e| e.to_string())
        .and_then(|mut r| r.body_mut().read_to_string().map_err(|e| e.to_string()))
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).map_err(|e| e.to_string()));
    let report = match live {
        Ok(v) => v,
        Err(e) => {
            // Offline status reads the data directory; without one there is nothing to read.
            if let Err(e) = DataDir::resolve(settings) {
                return config_failure(&e.into());
            }
            // The offline report says whether an agent has the store open all the same.
            let why = format!("no agent answered at {url}: {e}");
            smollama::status::offline(settings, &why)
        }
    };
    print_status(settings, report, json)
}

fn print_status(settings: &Settings, mut report: serde_json::Value, json: bool) -> ExitCode {
    report["ollama"] = ollama_report(settings);
    if json {
        println!("{report}");
    } else {
        print!("{}", smollama::status::human(&report));
    }
    ExitCode::SUCCESS
}

fn parse_args(args: &[&str]) -> Cli {
    let cmd = std::path::Path::new(args[0])
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("smollama");
    match Cli::from_args(&[cmd], &args[1..]) {
        Ok(cli) => cli,
        Err(early) => {
            // --help prints to stdout and exits 0; a usage error to stderr with exit 2.
            match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    std::process::exit(0)
                }
                Err(()) => {
                    let output =
                        argh_glue::unknown_command(args, &early.output).unwrap_or(early.output);
                    eprintln!("{output}\nRun {cmd} --help for more information.");
                    std::process::exit(2)
                }
            }
        }
    }
}

// Builds without the agent feature: the commands that need it say so.
#[cfg(not(feature = "agent"))]
fn memory(_: &Settings, _: MemorySub) -> ExitCode {
    eprintln!(
        "error: {}",
        smollama::features::missing("agent", "`smollama memory`")
    );
    ExitCode::from(2)
}

#[cfg(not(feature = "agent"))]
fn ask(_: &Settings, _: &str) -> ExitCode {
    eprintln!(
        "error: {}",
        smollama::features::missing("agent", "`smollama ask`")
    );
    ExitCode::from(2)
}

/// No Ollama client in this build: status leaves the line out.
#[cfg(not(feature = "agent"))]
fn ollama_report(_: &Settings) -> serde_json::Value {
    serde_json::Value::Null
}
