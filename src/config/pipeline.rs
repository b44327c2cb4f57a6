//! Pipeline files: sources, stages and sinks wired by name, validated before anything runs.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use toml::{Spanned, Value};

use super::duration::{format_duration, parse_duration};
use super::error::{ConfigError, ConfigErrors, line_of};
use super::expect::{Want, found, mismatch};
use super::settings::Settings;
use super::suggest;
use crate::graph::{Micros, ValueKind};
use crate::sinks::mqtt_params::{MqttFormat, MqttSinkParams};
use crate::sources::system::Metric;
use crate::stages::PerSource;
use crate::stages::adaptive::AdaptiveParams;
use crate::stages::filter::{FilterParams, OutOfRange};
use crate::stages::retention::{RetentionParams, RollupLevel};

/// The pipeline `smollama` runs when none is configured; shipped inside the binary.
pub const DEFAULT_PIPELINE: &str = include_str!("../../pipelines/default.toml");
pub const DEFAULT_PIPELINE_NAME: &str = "built-in pipelines/default.toml";

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineSpec {
    pub sources: Vec<SourceSpec>,
    pub stages: Vec<StageSpec>,
    pub sinks: Vec<SinkSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    pub name: String,
    pub kind: SourceKind,
    /// Starting sampling interval.
    pub every: Micros,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    System {
        metrics: Vec<Metric>,
    },
    /// Pins (BCM numbers) from `[gpio]` in the settings; empty = every configured pin.
    Gpio {
        pins: Vec<u8>,
    },
    /// Readings from other nodes and devices over MQTT (event-driven).
    Mqtt {
        /// Subscription filters.
        topics: Vec<String>,
        /// JSON pointer to the value in JSON object payloads (e.g. `/temperature`).
        pointer: Option<String>,
        /// Unit for readings whose payload carries none.
        unit: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct StageSpec {
    pub name: String,
    pub from: Vec<String>,
    pub kind: StageKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StageKind {
    Filter(FilterParams),
    Adaptive(AdaptiveParams),
    Retention(RetentionParams),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SinkSpec {
    pub name: String,
    pub from: Vec<String>,
    pub kind: SinkKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SinkKind {
    /// The LMDB store; its inbound edge is lossless.
    Store,
    /// Every item as one info log line (for trying a pipeline out).
    Log,
    /// Publish to the MQTT broker (skipped, with one log line, when none is configured).
    Mqtt(MqttSinkParams),
    /// Hand the adaptive stage's volatile/calm events to the observation loop, so the LLM
    /// looks sooner when the world is changing.
    Observer,
}

impl PipelineSpec {
    /// Load and validate the pipeline the settings name (the built-in default when none).
    /// Several files are merged into one graph: names are unique across them and `from`
    /// may name a node in another file.
    pub fn load(settings: &Settings) -> Result<PipelineSpec, ConfigErrors> {
        if settings.pipeline.files.is_empty() {
            return PipelineSpec::parse(DEFAULT_PIPELINE_NAME, DEFAULT_PIPELINE, settings);
        }
        let mut texts = Vec::new();
        let mut errors = Vec::new();
        for path in &settings.pipeline.files {
            match std::fs::read_to_string(path) {
                Ok(t) => texts.push((path.display().to_string(), t)),
                Err(e) => errors.push(
                    ConfigError::new(
                        path.display().to_string(),
                        None,
                        format!("cannot read pipeline file {}: {e}", path.display()),
                    )
                    .with_hint(source_of_files_hint(settings)),
                ),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        parse_many(&texts, settings)
    }

    /// Parse and validate one pipeline text; `file` names it in errors.
    pub fn parse(
        file: &str,
        text: &str,
        settings: &Settings,
    ) -> Result<PipelineSpec, ConfigErrors> {
        parse_many(&[(file.to_string(), text.to_string())], settings)
    }

    /// The source ids (full names) and kinds a source spec produces, for validation.
    pub fn produced(source: &SourceSpec, settings: &Settings) -> Vec<(String, ValueKind)> {
        match &source.kind {
            SourceKind::System { metrics } => metrics
                .iter()
                .map(|m| (format!("system:{}", m.id()), m.kind()))
                .collect(),
            SourceKind::Gpio { pins } => settings
                .gpio
                .pins
                .iter()
                .filter(|p| pins.is_empty() || pins.contains(&p.pin))
                .map(|p| (format!("gpio:{}", p.pin), ValueKind::Bool))
                .collect(),
            // Known only at run time: whatever other nodes publish.
            SourceKind::Mqtt { .. } => Vec::new(),
        }
    }
}

/// Where the list of pipeline files came from, for "cannot read" errors.
fn source_of_files_hint(settings: &Settings) -> String {
    use super::settings::Origin;
    match settings.origin("pipeline", "files") {
        Origin::File { path, line } => format!(
            "pipeline files come from [pipeline] files in {}:{line} (relative paths are relative to that file's directory)",
            path.display()
        ),
        Origin::Env(var) => {
            format!("pipeline files come from {var} (relative to the working directory)")
        }
        Origin::CommandLine => "check the path given on the command line".into(),
        Origin::Default => "pipeline files come from [pipeline] files".into(),
    }
}

// ---------------------------------------------------------------------------------------
// Raw layout: arrays of tables whose keys and values keep their spans.

type RawTable = BTreeMap<Spanned<String>, Spanned<Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    #[serde(default)]
    source: Vec<Spanned<RawTable>>,
    #[serde(default)]
    stage: Vec<Spanned<RawTable>>,
    #[serde(default)]
    sink: Vec<Spanned<RawTable>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Source,
    Stage,
    Sink,
}

impl Section {
    fn as_str(self) -> &'static str {
        match self {
            Section::Source => "source",
            Section::Stage => "stage",
            Section::Sink => "sink",
        }
    }

    fn kinds(self) -> &'static [&'static str] {
        match self {
            Section::Source => &["system", "gpio", "mqtt"],
            Section::Stage => &["filter", "adaptive", "retention"],
            Section::Sink => &["store", "log", "mqtt", "observer"],
        }
    }
}

const FILTER_KEYS: &[&str] = &[
    "deadband",
    "deadband_pct",
    "range",
    "out_of_range",
    "debounce",
    "min_interval",
    "heartbeat",
];
const ADAPTIVE_KEYS: &[&str] = &[
    "window",
    "min",
    "max",
    "hysteresis",
    "volatile_cv",
    "calm_cv",
    "max_step",
];
const RETENTION_KEYS: &[&str] = &["raw_for", "rollups", "prune_every", "prune_batch"];
const SYSTEM_KEYS: &[&str] = &["every", "metrics"];
const GPIO_KEYS: &[&str] = &["every", "pins"];
const MQTT_SOURCE_KEYS: &[&str] = &["topics", "pointer", "unit"];
const MQTT_SINK_KEYS: &[&str] = &[
    "format",
    "topic",
    "qos",
    "retain",
    "batch_every",
    "batch_max",
];
const MAX_ROLLUP_LEVELS: usize = 8;
const MIN_EVERY: Micros = 100_000;

fn kind_keys(section: Section, kind: &str) -> &'static [&'static str] {
    match (section, kind) {
        (Section::Source, "system") => SYSTEM_KEYS,
        (Section::Source, "gpio") => GPIO_KEYS,
        (Section::Source, "mqtt") => MQTT_SOURCE_KEYS,
        (Section::Sink, "mqtt") => MQTT_SINK_KEYS,
        (Section::Stage, "filter") => FILTER_KEYS,
        (Section::Stage, "adaptive") => ADAPTIVE_KEYS,
        (Section::Stage, "retention") => RETENTION_KEYS,
        _ => &[],
    }
}

struct Param {
    key: String,
    line: usize,
    value: Value,
}

/// One `[[source]]`, `[[stage]]` or `[[sink]]`, before validation.
struct Node {
    file: usize,
    line: usize,
    section: Section,
    name: Option<String>,
    kind: Option<String>,
    /// `from` names with their lines; `None` when the key is absent.
    from: Option<Vec<(String, usize)>>,
    /// `from` was present but not a list of strings (already reported).
    from_invalid: bool,
    params: Vec<Param>,
}

impl Node {
    fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{} '{n}'", self.section.as_str()),
            None => format!("[[{}]]", self.section.as_str()),
        }
    }
}

/// Collected errors; files by index.
struct Errs<'a> {
    files: &'a [(String, String)],
    list: Vec<ConfigError>,
}

impl Errs<'_> {
    fn push(
        &mut self,
        file: usize,
        line: Option<usize>,
        msg: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut e = ConfigError::new(&self.files[file].0, line, msg);
        e.hint = hint;
        self.list.push(e);
    }
}

/// A problem with a value: message and optional hint.
type Problem = (String, Option<String>);

/// What was written, in plain words (`the text "x"`, `the number 5`).
fn describe(v: &Value) -> String {
    found(v)
}

fn as_num(v: &Value) -> Result<f64, Problem> {
    match v {
        Value::Integer(i) => Ok(*i as f64),
        Value::Float(f) if f.is_finite() => Ok(*f),
        Value::Float(_) => Err(("expected a finite number".into(), None)),
        other => Err(mismatch(Want::Number, other)),
    }
}

fn as_int(v: &Value) -> Result<i64, Problem> {
    match v {
        Value::Integer(i) => Ok(*i),
        other => Err(mismatch(Want::WholeNumber, other)),
    }
}

fn as_dur(v: &Value) -> Result<Micros, Problem> {
    match v {
        Value::String(s) => parse_duration(s).map_err(|e| (e, None)),
        other => Err(mismatch(Want::Duration, other)),
    }
}

fn positive_dur(v: &Value) -> Result<Micros, Problem> {
    let d = as_dur(v)?;
    if d <= 0 {
        return Err((
            "a duration of zero is not allowed here".into(),
            Some("leave the parameter out to turn it off".into()),
        ));
    }
    Ok(d)
}

fn non_negative(v: &Value) -> Result<f64, Problem> {
    let n = as_num(v)?;
    if n < 0.0 {
        return Err((format!("{n} is negative; it must be 0 or more"), None));
    }
    Ok(n)
}

fn positive(v: &Value) -> Result<f64, Problem> {
    let n = as_num(v)?;
    if n <= 0.0 {
        return Err((format!("{n} must be greater than 0"), None));
    }
    Ok(n)
}

fn range_pair(v: &Value) -> Result<(f64, f64), Problem> {
    let hint = Some("write [min, max], e.g. [-40.0, 125.0]".to_string());
    let Value::Array(a) = v else {
        return Err((format!("expected [min, max], found {}", describe(v)), hint));
    };
    if a.len() != 2 {
        return Err((
            format!("expected [min, max], found {} values", a.len()),
            hint,
        ));
    }
    let (lo, hi) = (as_num(&a[0])?, as_num(&a[1])?);
    if lo >= hi {
        return Err((
            format!("range [{lo}, {hi}] is empty: min must be less than max"),
            None,
        ));
    }
    Ok((lo, hi))
}

/// Which sources a per-source parameter applies to.
#[derive(Clone, Copy)]
enum Applies {
    Numeric,
    Boolean,
    Any,
}

impl Applies {
    fn ok(self, k: ValueKind) -> bool {
        match self {
            Applies::Numeric => k == ValueKind::Number,
            Applies::Boolean => k == ValueKind::Bool,
            Applies::Any => true,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Applies::Numeric => "numeric",
            Applies::Boolean => "boolean",
            Applies::Any => "any",
        }
    }
}

fn kind_phrase(k: ValueKind) -> &'static str {
    match k {
        ValueKind::Number => "a number",
        ValueKind::Bool => "a boolean",
        ValueKind::Text => "text",
    }
}

/// What reaches a stage: full source ids with kinds, and whether a gpio source does (its
/// pins may be configured later, so it counts as boolean even with none configured).
#[derive(Default, Clone)]
struct Reach {
    ids: Vec<(String, ValueKind)>,
    gpio: bool,
    /// An mqtt source reaches: its source ids and kinds are known only at run time, so
    /// per-source keys and kinds cannot be checked against it.
    remote: bool,
}

impl Reach {
    fn has(&self, a: Applies) -> bool {
        match a {
            _ if self.remote => true,
            Applies::Boolean if self.gpio => true,
            _ => self.ids.iter().any(|(_, k)| a.ok(*k)),
        }
    }

    fn list(&self) -> String {
        if self.ids.is_empty() {
            return "none".into();
        }
        self.ids
            .iter()
            .map(|(id, k)| format!("{id} ({})", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

struct StageCtx<'a> {
    name: &'a str,
    reach: &'a Reach,
    settings: &'a Settings,
}

impl StageCtx<'_> {
    /// Parse a per-source parameter: a single value for every source, or a table from
    /// source ids to values. Checks the keys and the kinds of the sources they name.
    fn per_source<T>(
        &self,
        p: &Param,
        applies: Applies,
        one: impl Fn(&Value) -> Result<T, Problem>,
    ) -> Result<PerSource<T>, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut out = PerSource {
            default: None,
            rules: Vec::new(),
        };
        let wrap = |(m, h): Problem| (format!("{}: {m}", p.key), h);
        if let Value::Table(t) = &p.value {
            for (k, v) in t {
                let matched: Vec<&(String, ValueKind)> = self
                    .reach
                    .ids
                    .iter()
                    .filter(|(id, _)| id == k || id.split_once(':').is_some_and(|(_, l)| l == k))
                    .collect();
                if matched.is_empty() && !self.reach.remote {
                    problems.push(self.no_such_source(k));
                    continue;
                }
                if let Some((id, kind)) = matched.iter().find(|(_, kind)| !applies.ok(*kind)) {
                    problems.push((
                        format!(
                            "{} applies to {} sources; {id} is {}",
                            p.key,
                            applies.what(),
                            kind_phrase(*kind)
                        ),
                        Some(format!("remove the '{k}' entry from {}", p.key)),
                    ));
                    continue;
                }
                match one(v) {
                    Ok(v) => out.rules.push((k.clone(), v)),
                    Err(e) => problems.push(wrap(e)),
                }
            }
        } else {
            if !self.reach.has(applies) {
                let what = match applies {
                    Applies::Numeric => "numeric",
                    _ => "boolean",
                };
                problems.push((
                    format!(
                        "{} applies to {what} sources, and no {what} source reaches stage '{}' (sources here: {})",
                        p.key,
                        self.name,
                        self.reach.list()
                    ),
                    Some(format!("remove {} from this stage", p.key)),
                ));
            }
            match one(&p.value) {
                Ok(v) => out.default = Some(v),
                Err(e) => problems.push(wrap(e)),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    fn no_such_source(&self, k: &str) -> Problem {
        let mut names: Vec<String> = Vec::new();
        for (id, _) in &self.reach.ids {
            names.push(id.clone());
            if let Some((_, l)) = id.split_once(':') {
                names.push(l.to_string());
            }
        }
        let here: Vec<&str> = self.reach.ids.iter().map(|(id, _)| id.as_str()).collect();
        let mut hint = match suggest::closest(k, &names) {
            Some(c) => format!("did you mean '{c}'? "),
            None => String::new(),
        };
        if let Some(pin) = self.settings.gpio.pins.iter().find(|pin| pin.name == k) {
            hint = format!(
                "pin '{k}' is BCM {0}; key it by number, \"{0}\" or \"gpio:{0}\", and make sure a gpio source reaches this stage. ",
                pin.pin
            );
        }
        hint.push_str("keys are full ids (system:cpu_temp, gpio:17) or local ids (cpu_temp, 17)");
        (
            format!(
                "no source reaching stage '{}' is called '{k}'; sources here: {}",
                self.name,
                if here.is_empty() {
                    "none".into()
                } else {
                    here.join(", ")
                }
            ),
            Some(hint),
        )
    }
}

fn parse_many(
    files: &[(String, String)],
    settings: &Settings,
) -> Result<PipelineSpec, ConfigErrors> {
    let mut errs = Errs {
        files,
        list: Vec::new(),
    };
    let mut nodes: Vec<Node> = Vec::new();
    let mut unparsed = false;
    for (fi, (_, text)) in files.iter().enumerate() {
        let raw: RawPipeline = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let line = e.span().map(|r| line_of(text, r.start));
                let mut msg = e.message().trim().to_string();
                let hint = if let Some((unknown, _)) = super::settings::parse_unknown_field(&msg) {
                    msg = format!("unknown table `{unknown}`");
                    Some(match suggest::closest(&unknown, ["source", "stage", "sink"]) {
                        Some(c) => format!(
                            "did you mean [[{c}]]? a pipeline file holds only [[source]], [[stage]] and [[sink]] tables"
                        ),
                        None => "a pipeline file holds only [[source]], [[stage]] and [[sink]] tables".into(),
                    })
                } else if msg.contains("invalid type") {
                    Some("write each node as an array-of-tables entry: [[source]], [[stage]] or [[sink]]".into())
                } else {
                    None
                };
                errs.push(fi, line, msg, hint);
                unparsed = true;
                continue;
            }
        };
        for (section, tables) in [
            (Section::Source, raw.source),
            (Section::Stage, raw.stage),
            (Section::Sink, raw.sink),
        ] {
            for t in tables {
                nodes.push(read_node(fi, text, section, t, &mut errs));
            }
        }
    }
    // Graph checks across files only make sense when every file parsed.
    if unparsed {
        return Err(ConfigErrors(errs.list));
    }
    let spec = validate(&nodes, settings, &mut errs);
    if errs.list.is_empty() {
        Ok(spec)
    } else {
        // Report in reading order: file by file, line by line (file-wide errors last).
        let order = |f: &str| files.iter().position(|(n, _)| n == f).unwrap_or(usize::MAX);
        errs.list
            .sort_by_key(|e| (order(&e.file), e.line.unwrap_or(usize::MAX)));
        Err(ConfigErrors(errs.list))
    }
}

fn read_node(
    fi: usize,
    text: &str,
    section: Section,
    t: Spanned<RawTable>,
    errs: &mut Errs,
) -> Node {
    let line = line_of(text, t.span().start);
    let mut node = Node {
        file: fi,
        line,
        section,
        name: None,
        kind: None,
        from: None,
        from_invalid: false,
        params: Vec::new(),
    };
    let mut name_seen = false;
    let mut kind_seen = false;
    for (k, v) in t.into_inner() {
        let key_line = line_of(text, k.span().start);
        let key = k.into_inner();
        let value_line = line_of(text, v.span().start);
        let value = v.into_inner();
        match key.as_str() {
            "name" => {
                name_seen = true;
                match value {
                    Value::String(s) if valid_name(&s) => node.name = Some(s),
                    Value::String(s) => errs.push(
                        fi,
                        Some(value_line),
                        format!("name '{s}' is not valid"),
                        Some("use a non-empty name from A-Z a-z 0-9 _ -, e.g. \"quiet\"".into()),
                    ),
                    other => errs.push(
                        fi,
                        Some(value_line),
                        format!(
                            "name: expected {}, found {}",
                            Want::Text.phrase(),
                            describe(&other)
                        ),
                        Some("write e.g. name = \"quiet\"".into()),
                    ),
                }
            }
            "kind" => {
                kind_seen = true;
                let kinds = section.kinds();
                match value {
                    Value::String(s) if kinds.contains(&s.as_str()) => node.kind = Some(s),
                    Value::String(s) => {
                        let what = format!("{} kinds", section.as_str());
                        errs.push(
                            fi,
                            Some(value_line),
                            format!("unknown {} kind '{s}'", section.as_str()),
                            Some(suggest::hint(&s, &what, kinds)),
                        )
                    }
                    other => errs.push(
                        fi,
                        Some(value_line),
                        format!(
                            "kind: expected {}, found {}",
                            Want::Text.phrase(),
                            describe(&other)
                        ),
                        Some(format!("one of: {}", kinds.join(", "))),
                    ),
                }
            }
            "from" => match value {
                _ if section == Section::Source => {
                    node.from = Some(vec![(String::new(), value_line)])
                }
                Value::Array(a) => {
                    let mut names = Vec::new();
                    for v in a {
                        match v {
                            Value::String(s) => names.push((s, value_line)),
                            other => {
                                node.from_invalid = true;
                                errs.push(
                                    fi,
                                    Some(value_line),
                                    format!(
                                        "from: expected names in quotes, found {}",
                                        describe(&other)
                                    ),
                                    Some("write e.g. from = [\"system\"]".into()),
                                )
                            }
                        }
                    }
                    node.from = Some(names);
                }
                Value::String(s) => {
                    node.from_invalid = true;
                    errs.push(
                        fi,
                        Some(value_line),
                        format!(
                            "from: expected a list of names, found {}",
                            describe(&Value::String(s.clone()))
                        ),
                        Some(format!("write from = [\"{s}\"]")),
                    )
                }
                other => {
                    node.from_invalid = true;
                    errs.push(
                        fi,
                        Some(value_line),
                        format!("from: expected a list of names, found {}", describe(&other)),
                        Some("write e.g. from = [\"system\"]".into()),
                    )
                }
            },
            _ => node.params.push(Param {
                key,
                line: key_line,
                value,
            }),
        }
    }
    if !name_seen {
        errs.push(
            fi,
            Some(line),
            format!("this [[{}]] has no name", section.as_str()),
            Some("add name = \"...\"; other nodes refer to it by name in `from`".into()),
        );
    }
    if !kind_seen {
        errs.push(
            fi,
            Some(line),
            format!("{} has no kind", node.label()),
            Some(format!("add kind = one of: {}", section.kinds().join(", "))),
        );
    }
    node
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn validate(nodes: &[Node], settings: &Settings, errs: &mut Errs) -> PipelineSpec {
    let files = errs.files;
    let at = |n: &Node| format!("{}:{}", files[n.file].0, n.line);

    // Names: unique across every file.
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let Some(name) = &n.name else { continue };
        if let Some(&first) = by_name.get(name.as_str()) {
            errs.push(
                n.file,
                Some(n.line),
                format!("the name '{name}' is used twice"),
                Some(format!(
                    "{} at {} already has it; names are unique across sources, stages, sinks and files",
                    nodes[first].label(),
                    at(&nodes[first])
                )),
            );
        } else {
            by_name.insert(name, i);
        }
    }
    let all_names: Vec<&str> = {
        let mut v: Vec<&str> = by_name.keys().copied().collect();
        v.sort();
        v
    };

    // Edges. inputs[i]: nodes feeding node i; consumers[i]: nodes reading node i.
    let mut inputs: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    // With a broken edge somewhere, "goes nowhere" would mostly repeat that error.
    let mut broken_edges = false;
    for (i, n) in nodes.iter().enumerate() {
        if n.from_invalid {
            broken_edges = true;
            continue;
        }
        match (&n.from, n.section) {
            (Some(f), Section::Source) => {
                let line = f.first().map_or(n.line, |(_, l)| *l);
                errs.push(
                    n.file,
                    Some(line),
                    format!("{} has `from`, but sources read sensors, not other nodes", n.label()),
                    Some("remove `from`; to process a source's readings, name it in a stage's `from`".into()),
                );
                continue;
            }
            (None, Section::Source) => continue,
            (None, _) => {
                broken_edges = true;
                errs.push(
                    n.file,
                    Some(n.line),
                    format!("{} has no `from`", n.label()),
                    Some("add from = [\"...\"] naming the sources or stages it reads".into()),
                );
                continue;
            }
            (Some(f), _) if f.is_empty() => {
                broken_edges = true;
                let example = nodes
                    .iter()
                    .filter(|m| m.section != Section::Sink && m.name != n.name)
                    .find_map(|m| m.name.as_deref())
                    .unwrap_or("system");
                errs.push(
                    n.file,
                    Some(n.line),
                    format!("{} has an empty `from`, so nothing reaches it", n.label()),
                    Some(format!("name what it reads, e.g. from = [\"{example}\"]")),
                );
                continue;
            }
            _ => {}
        }
        let mut seen = HashSet::new();
        for (name, line) in n.from.as_deref().unwrap_or(&[]) {
            if !seen.insert(name.as_str()) {
                errs.push(
                    n.file,
                    Some(*line),
                    format!("'{name}' is listed twice in the `from` of {}", n.label()),
                    None,
                );
                continue;
            }
            let Some(&j) = by_name.get(name.as_str()) else {
                broken_edges = true;
                let mut hint = match suggest::closest(name, &all_names) {
                    Some(c) => format!("did you mean '{c}'? "),
                    None => String::new(),
                };
                hint.push_str(&format!("nodes: {}", all_names.join(", ")));
                errs.push(
                    n.file,
                    Some(*line),
                    format!(
                        "{} reads from '{name}', but no source or stage has that name",
                        n.label()
                    ),
                    Some(hint),
                );
                continue;
            };
            if nodes[j].section == Section::Sink {
                broken_edges = true;
                errs.push(
                    n.file,
                    Some(*line),
                    format!(
                        "{} reads from sink '{name}', but sinks have no output",
                        n.label()
                    ),
                    Some(format!("read from what feeds '{name}' instead")),
                );
                continue;
            }
            inputs[i].push(j);
            consumers[j].push(i);
        }
    }

    // Cycles, named in data-flow order.
    let cyclic = report_cycles(nodes, &consumers, errs);

    // Sources.
    let mut sources = Vec::new();
    let mut source_of: HashMap<usize, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.section != Section::Source {
            continue;
        }
        if let (Some(name), Some(kind)) = (&n.name, &n.kind)
            && let Some(spec) = build_source(n, name, kind, settings, errs)
        {
            source_of.insert(i, sources.len());
            sources.push(spec);
        }
    }

    // What reaches each node.
    let mut reach: Vec<Option<Reach>> = vec![None; nodes.len()];
    for i in 0..nodes.len() {
        compute_reach(
            i,
            nodes,
            &inputs,
            &sources,
            &source_of,
            settings,
            &mut reach,
            &mut vec![false; nodes.len()],
        );
    }

    // Stages and sinks.
    let mut stages = Vec::new();
    let mut sinks = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let (Some(name), Some(kind)) = (&n.name, &n.kind) else {
            continue;
        };
        let from: Vec<String> = n
            .from
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|(s, _)| s.clone())
            .collect();
        match n.section {
            Section::Source => {}
            Section::Stage => {
                let r = reach[i].clone().unwrap_or_default();
                let ctx = StageCtx {
                    name,
                    reach: &r,
                    settings,
                };
                // Type checks are meaningless inside a cycle (already reported).
                if let Some(kind) = build_stage(n, kind, &ctx, cyclic.contains(&i), errs) {
                    stages.push(StageSpec {
                        name: name.clone(),
                        from,
                        kind,
                    });
                }
            }
            Section::Sink => {
                let kind = match kind.as_str() {
                    "store" | "log" | "observer" => {
                        for p in &n.params {
                            errs.push(
                                n.file,
                                Some(p.line),
                                format!("unknown parameter '{}' for a {kind} sink", p.key),
                                Some(
                                    "store, log and observer sinks take only name, kind and from"
                                        .into(),
                                ),
                            );
                        }
                        match kind.as_str() {
                            "store" => SinkKind::Store,
                            "observer" => SinkKind::Observer,
                            _ => SinkKind::Log,
                        }
                    }
                    _ => match build_mqtt_sink(n, name, errs) {
                        Some(p) => SinkKind::Mqtt(p),
                        None => continue,
                    },
                };
                sinks.push(SinkSpec {
                    name: name.clone(),
                    from,
                    kind,
                });
            }
        }
    }

    // Every pipeline needs an exit, and every output must go somewhere.
    if !nodes.iter().any(|n| n.section == Section::Sink) {
        let last = nodes
            .iter()
            .rev()
            .find(|n| n.name.is_some() && n.section != Section::Sink);
        errs.push(
            last.map_or(0, |n| n.file),
            None,
            "no [[sink]]: nothing leaves this pipeline".to_string(),
            Some(format!(
                "add [[sink]] name = \"store\", kind = \"store\", from = [\"{}\"]",
                last.and_then(|n| n.name.as_deref()).unwrap_or("...")
            )),
        );
    } else if !broken_edges {
        for (i, n) in nodes.iter().enumerate() {
            if n.section == Section::Sink || !consumers[i].is_empty() {
                continue;
            }
            let Some(name) = &n.name else { continue };
            if by_name.get(name.as_str()) != Some(&i) {
                continue; // a duplicate, already reported
            }
            errs.push(
                n.file,
                Some(n.line),
                format!("the output of {} goes nowhere: no stage or sink reads from it", n.label()),
                Some(format!(
                    "add \"{name}\" to the `from` of a stage or sink (e.g. the store), or remove this {}; data must not silently vanish",
                    n.section.as_str()
                )),
            );
        }
    }

    PipelineSpec {
        sources,
        stages,
        sinks,
    }
}

fn report_cycles(nodes: &[Node], consumers: &[Vec<usize>], errs: &mut Errs) -> HashSet<usize> {
    // 0 = unvisited, 1 = on the stack, 2 = done.
    fn dfs(
        i: usize,
        consumers: &[Vec<usize>],
        color: &mut [u8],
        path: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        color[i] = 1;
        path.push(i);
        for &j in &consumers[i] {
            if color[j] == 1 {
                let pos = path.iter().position(|&p| p == j).unwrap_or(0);
                cycles.push(path[pos..].to_vec());
            } else if color[j] == 0 {
                dfs(j, consumers, color, path, cycles);
            }
        }
        path.pop();
        color[i] = 2;
    }
    let mut color = vec![0u8; nodes.len()];
    let mut cycles = Vec::new();
    for i in 0..nodes.len() {
        if color[i] == 0 {
            dfs(i, consumers, &mut color, &mut Vec::new(), &mut cycles);
        }
    }
    let mut in_cycle = HashSet::new();
    for c in cycles {
        in_cycle.extend(c.iter().copied());
        let mut names: Vec<&str> = c
            .iter()
            .map(|&i| nodes[i].name.as_deref().unwrap_or("?"))
            .collect();
        names.push(names[0]);
        let closing = &nodes[*c.last().unwrap_or(&0)];
        errs.push(
            closing.file,
            Some(closing.line),
            format!("cycle: {}", names.join(" -> ")),
            Some("readings would loop forever; remove one of these names from a `from`".into()),
        );
    }
    in_cycle
}

#[allow(clippy::too_many_arguments)]
fn compute_reach(
    i: usize,
    nodes: &[Node],
    inputs: &[Vec<usize>],
    sources: &[SourceSpec],
    source_of: &HashMap<usize, usize>,
    settings: &Settings,
    reach: &mut Vec<Option<Reach>>,
    visiting: &mut Vec<bool>,
) -> Reach {
    if let Some(r) = &reach[i] {
        return r.clone();
    }
    if visiting[i] {
        return Reach::default();
    }
    visiting[i] = true;
    let mut r = Reach::default();
    if nodes[i].section == Section::Source {
        if let Some(&s) = source_of.get(&i) {
            r.ids = PipelineSpec::produced(&sources[s], settings);
            r.gpio = matches!(sources[s].kind, SourceKind::Gpio { .. });
            r.remote = matches!(sources[s].kind, SourceKind::Mqtt { .. });
        }
    } else {
        for &j in &inputs[i] {
            let up = compute_reach(
                j, nodes, inputs, sources, source_of, settings, reach, visiting,
            );
            r.gpio |= up.gpio;
            r.remote |= up.remote;
            for id in up.ids {
                if !r.ids.contains(&id) {
                    r.ids.push(id);
                }
            }
        }
    }
    visiting[i] = false;
    reach[i] = Some(r.clone());
    r
}

fn unknown_param(n: &Node, p: &Param, kind: &str, errs: &mut Errs) {
    let keys = kind_keys(n.section, kind);
    let other = Section::Source
        .kinds()
        .iter()
        .map(|k| (Section::Source, *k))
        .chain(Section::Stage.kinds().iter().map(|k| (Section::Stage, *k)))
        .find(|(s, k)| kind_keys(*s, k).contains(&p.key.as_str()));
    let mut all: Vec<&str> = vec!["name", "kind"];
    if n.section != Section::Source {
        all.push("from");
    }
    all.extend_from_slice(keys);
    let hint = match other {
        Some((s, k)) => format!(
            "'{}' belongs to {k} {}s; a {kind} {} takes: {}",
            p.key,
            s.as_str(),
            n.section.as_str(),
            all.join(", ")
        ),
        None => suggest::hint(
            &p.key,
            &format!("parameters of a {kind} {}", n.section.as_str()),
            &all,
        ),
    };
    errs.push(
        n.file,
        Some(p.line),
        format!(
            "unknown parameter '{}' for {} (kind {kind})",
            p.key,
            n.label()
        ),
        Some(hint),
    );
}

fn build_source(
    n: &Node,
    name: &str,
    kind: &str,
    settings: &Settings,
    errs: &mut Errs,
) -> Option<SourceSpec> {
    let mut every = super::settings::DEFAULT_EVERY;
    let mut metrics: Option<Vec<Metric>> = None;
    let mut pins: Vec<u8> = Vec::new();
    let mut topics: Vec<String> = Vec::new();
    let mut pointer: Option<String> = None;
    let mut unit: Option<String> = None;
    let before = errs.list.len();
    for p in &n.params {
        let err = |errs: &mut Errs, (m, h): Problem| {
            errs.push(
                n.file,
                Some(p.line),
                format!("{} of source '{name}': {m}", p.key),
                h,
            )
        };
        match (kind, p.key.as_str()) {
            (_, "every") => match positive_dur(&p.value) {
                Ok(d) if d < MIN_EVERY => err(
                    errs,
                    (
                        format!("{} is too fast", format_duration(d)),
                        Some("sample at most every 100ms; a Pi has better things to do".into()),
                    ),
                ),
                Ok(d) => every = d,
                Err(e) => err(errs, e),
            },
            ("system", "metrics") => {
                let ids: Vec<&str> = Metric::ALL.iter().map(|m| m.id()).collect();
                let Value::Array(a) = &p.value else {
                    err(
                        errs,
                        (
                            format!(
                                "expected a list of metric names such as [\"cpu_temp\"], found {}",
                                describe(&p.value)
                            ),
                            Some(match &p.value {
                                Value::String(one) => format!(
                                    "write it as a list: metrics = [\"{one}\"]; valid metrics: {}",
                                    ids.join(", ")
                                ),
                                _ => format!("valid metrics: {}", ids.join(", ")),
                            }),
                        ),
                    );
                    continue;
                };
                if a.is_empty() {
                    err(
                        errs,
                        (
                            "an empty list selects no metric".into(),
                            Some("leave metrics out to read every metric".into()),
                        ),
                    );
                    continue;
                }
                let mut ms = Vec::new();
                for v in a {
                    match v {
                        Value::String(s) => match Metric::from_id(s) {
                            Some(m) if ms.contains(&m) => {
                                err(errs, (format!("'{s}' is listed twice"), None))
                            }
                            Some(m) => ms.push(m),
                            None => err(
                                errs,
                                (
                                    format!("unknown metric '{s}'"),
                                    Some(suggest::hint(s, "metrics", &ids)),
                                ),
                            ),
                        },
                        other => err(
                            errs,
                            (
                                format!("expected a metric name in quotes, found {}", describe(other)),
                                None,
                            ),
                        ),
                    }
                }
                metrics = Some(ms);
            }
            ("gpio", "pins") => {
                let configured: Vec<String> = settings
                    .gpio
                    .pins
                    .iter()
                    .map(|p| format!("{} ({})", p.pin, p.name))
                    .collect();
                let Value::Array(a) = &p.value else {
                    err(
                        errs,
                        (
                            format!(
                                "expected a list of BCM pin numbers such as [17, 27], found {}",
                                describe(&p.value)
                            ),
                            Some("write e.g. pins = [17, 27]".into()),
                        ),
                    );
                    continue;
                };
                for v in a {
                    let pin = match v {
                        Value::Integer(i) => *i,
                        Value::String(s) => {
                            let hint = match settings.gpio.pins.iter().find(|p| &p.name == s) {
                                Some(p) => format!("write its BCM number: {}", p.pin),
                                None => "write BCM numbers, e.g. pins = [17]".into(),
                            };
                            err(
                                errs,
                                (
                                    format!("expected a pin number such as 17, found {}", describe(v)),
                                    Some(hint),
                                ),
                            );
                            continue;
                        }
                        other => {
                            err(
                                errs,
                                (
                                    format!("expected a pin number such as 17, found {}", describe(other)),
                                    None,
                                ),
                            );
                            continue;
                        }
                    };
                    match settings.gpio.pins.iter().find(|c| i64::from(c.pin) == pin) {
                        Some(c) if pins.contains(&c.pin) => {
                            err(errs, (format!("pin {pin} is listed twice"), None))
                        }
                        Some(c) => pins.push(c.pin),
                        None => err(
                            errs,
                            (
                                format!("pin {pin} is not configured in [gpio]"),
                                Some(if configured.is_empty() {
                                    "no pins are configured; add [[gpio.pins]] with pin and name to smollama.toml".into()
                                } else {
                                    format!(
                                        "configured pins: {}; add [[gpio.pins]] to smollama.toml for others",
                                        configured.join(", ")
                                    )
                                }),
                            ),
                        ),
                    }
                }
            }
            ("mqtt", "topics") => match &p.value {
                Value::Array(a) if !a.is_empty() => {
                    for v in a {
                        match v {
                            Value::String(f) => match crate::edges::mqtt::topic::validate_filter(f) {
                                Ok(()) => topics.push(f.clone()),
                                Err(e) => err(
                                    errs,
                                    (
                                        format!("'{f}': {e}"),
                                        Some("filters use + for one level and # for the rest, e.g. \"smollama/+/readings\"".into()),
                                    ),
                                ),
                            },
                            other => err(
                                errs,
                                (format!("expected a topic filter in quotes, found {}", describe(other)), None),
                            ),
                        }
                    }
                }
                other => err(
                    errs,
                    (
                        format!("expected a non-empty list of topic filters, found {}", describe(other)),
                        Some("write e.g. topics = [\"smollama/+/readings\", \"sensors/#\"]".into()),
                    ),
                ),
            },
            ("mqtt", "pointer") => match &p.value {
                Value::String(s) if s.starts_with('/') => pointer = Some(s.clone()),
                other => err(
                    errs,
                    (
                        format!("expected a JSON pointer in quotes starting with /, found {}", describe(other)),
                        Some("e.g. pointer = \"/temperature\" picks the temperature field of a JSON object".into()),
                    ),
                ),
            },
            ("mqtt", "unit") => match &p.value {
                Value::String(s) => unit = Some(s.clone()),
                other => err(errs, mismatch(Want::Text, other)),
            },
            _ => unknown_param(n, p, kind, errs),
        }
    }
    if kind == "mqtt" && topics.is_empty() && errs.list.len() == before {
        errs.push(
            n.file,
            Some(n.line),
            format!("mqtt source '{name}' has no topics"),
            Some(
                "add topics = [\"smollama/+/readings\"] (or the topics your devices publish)"
                    .into(),
            ),
        );
    }
    if errs.list.len() > before {
        return None;
    }
    if kind == "mqtt" {
        return Some(SourceSpec {
            name: name.to_string(),
            every: 0,
            kind: SourceKind::Mqtt {
                topics,
                pointer,
                unit,
            },
        });
    }
    Some(SourceSpec {
        name: name.to_string(),
        every,
        kind: if kind == "system" {
            SourceKind::System {
                metrics: metrics.unwrap_or_else(|| Metric::ALL.to_vec()),
            }
        } else {
            SourceKind::Gpio { pins }
        },
    })
}

fn build_mqtt_sink(n: &Node, name: &str, errs: &mut Errs) -> Option<MqttSinkParams> {
    let before = errs.list.len();
    let format = match n
        .params
        .iter()
        .find(|p| p.key == "format")
        .map(|p| &p.value)
    {
        None => MqttFormat::Batch,
        Some(Value::String(f)) if f == "batch" => MqttFormat::Batch,
        Some(Value::String(f)) if f == "state" => MqttFormat::State,
        Some(other) => {
            let line = n.params.iter().find(|p| p.key == "format").map(|p| p.line);
            errs.push(
                n.file,
                line,
                format!(
                    "format of sink '{name}': expected \"batch\" or \"state\", found {}",
                    describe(other)
                ),
                Some("batch: the original's {node, timestamp, readings} message on {prefix}/readings; state: one message per reading on a per-source topic".into()),
            );
            return None;
        }
    };
    let mut out = MqttSinkParams::defaults(format);
    for p in &n.params {
        let mut err = |m: String, h: Option<String>| {
            errs.push(
                n.file,
                Some(p.line),
                format!("{} of sink '{name}': {m}", p.key),
                h,
            )
        };
        match (p.key.as_str(), &p.value) {
            ("format", _) => {}
            ("topic", Value::String(t)) => {
                let mut vars = vec![("prefix", "smollama/node"), ("node", "node")];
                if format == MqttFormat::State {
                    vars.push(("type", "system"));
                    vars.push(("id", "cpu_temp"));
                }
                match crate::edges::mqtt::topic::expand(t, &vars)
                    .and_then(|x| crate::edges::mqtt::topic::validate_topic(&x, 65_535))
                {
                    Ok(()) => out.topic = t.clone(),
                    Err(e) => err(
                        e,
                        Some(if format == MqttFormat::State {
                            "placeholders: {prefix}, {node}, {type}, {id}; no + or #".into()
                        } else {
                            "placeholders: {prefix}, {node}; no + or #".into()
                        }),
                    ),
                }
            }
            ("qos", Value::Integer(q)) if *q == 0 || *q == 1 => out.qos = *q as u8,
            ("qos", v) => err(
                format!("expected 0 or 1, found {}", describe(v)),
                Some("QoS 1 messages wait in the store's outbox until the broker has them".into()),
            ),
            ("retain", Value::Boolean(b)) => out.retain = *b,
            ("batch_every", v) if format == MqttFormat::Batch => match positive_dur(v) {
                Ok(d) => out.batch_every = d,
                Err((m, h)) => err(m, h),
            },
            ("batch_max", Value::Integer(m))
                if format == MqttFormat::Batch && (1..=10_000).contains(m) =>
            {
                out.batch_max = *m as usize
            }
            ("batch_every" | "batch_max", _) if format == MqttFormat::State => err(
                "only applies to format = \"batch\"".into(),
                Some("a state sink publishes each reading as it comes".into()),
            ),
            ("batch_max", v) => err(
                format!(
                    "expected a whole number from 1 to 10000, found {}",
                    describe(v)
                ),
                None,
            ),
            ("topic", v) => {
                let (m, h) = mismatch(Want::Text, v);
                err(m, h)
            }
            ("retain", v) => {
                let (m, h) = mismatch(Want::Bool, v);
                err(m, h)
            }
            (k, v) if MQTT_SINK_KEYS.contains(&k) => err(
                format!("unexpected {}", describe(v)),
                Some("see docs/mqtt.md for the sink's parameters".into()),
            ),
            _ => unknown_param(n, p, "mqtt", errs),
        }
    }
    (errs.list.len() == before).then_some(out)
}

fn build_stage(
    n: &Node,
    kind: &str,
    ctx: &StageCtx,
    in_cycle: bool,
    errs: &mut Errs,
) -> Option<StageKind> {
    let before = errs.list.len();
    let name = ctx.name;
    let one = |errs: &mut Errs, p: &Param, (m, h): Problem| {
        errs.push(
            n.file,
            Some(p.line),
            format!("{} of stage '{name}': {m}", p.key),
            h,
        )
    };
    let many = |errs: &mut Errs, p: &Param, probs: Vec<Problem>| {
        for (m, h) in probs {
            errs.push(n.file, Some(p.line), format!("stage '{name}': {m}"), h);
        }
    };
    // In a cycle the reach is incomplete; check values but not source kinds.
    let any_reach = Reach {
        ids: Vec::new(),
        gpio: true,
        remote: false,
    };
    let loose;
    let ctx = if in_cycle {
        loose = StageCtx {
            name,
            reach: &any_reach,
            settings: ctx.settings,
        };
        &loose
    } else {
        ctx
    };
    let result = match kind {
        "filter" => {
            let mut f = FilterParams::default();
            for p in &n.params {
                macro_rules! per {
                    ($field:ident, $applies:expr, $parse:expr) => {
                        match ctx.per_source(p, $applies, $parse) {
                            Ok(v) => f.$field = v,
                            Err(e) => many(errs, p, e),
                        }
                    };
                }
                match p.key.as_str() {
                    "deadband" => per!(deadband, Applies::Numeric, non_negative),
                    "deadband_pct" => per!(deadband_pct, Applies::Numeric, non_negative),
                    "range" => per!(range, Applies::Numeric, range_pair),
                    "debounce" => per!(debounce, Applies::Boolean, positive_dur),
                    "min_interval" => per!(min_interval, Applies::Any, positive_dur),
                    "heartbeat" => per!(heartbeat, Applies::Any, positive_dur),
                    "out_of_range" => match &p.value {
                        Value::String(s) if s == "flag" => f.out_of_range = OutOfRange::Flag,
                        Value::String(s) if s == "drop" => f.out_of_range = OutOfRange::Drop,
                        Value::String(s) => one(
                            errs,
                            p,
                            (
                                format!("unknown choice '{s}'"),
                                Some(suggest::hint(s, "choices", &["flag", "drop"])),
                            ),
                        ),
                        other => one(
                            errs,
                            p,
                            (
                                format!("expected \"flag\" or \"drop\", found {}", describe(other)),
                                None,
                            ),
                        ),
                    },
                    _ => unknown_param(n, p, kind, errs),
                }
            }
            if f.out_of_range == OutOfRange::Drop
                && !f.range.is_set()
                && let Some(p) = n.params.iter().find(|p| p.key == "out_of_range")
            {
                one(
                    errs,
                    p,
                    (
                        "out_of_range = \"drop\" without a range does nothing".into(),
                        Some("add range = [min, max] (or a table per source)".into()),
                    ),
                );
            }
            StageKind::Filter(f)
        }
        "adaptive" => {
            let mut a = AdaptiveParams::default();
            let mut line_of_key = HashMap::new();
            for p in &n.params {
                line_of_key.insert(p.key.as_str(), p);
                match p.key.as_str() {
                    "window" => match as_int(&p.value) {
                        Ok(w) if (2..=1000).contains(&w) => a.window = w as usize,
                        Ok(w) => one(
                            errs,
                            p,
                            (
                                format!("{w} is out of range"),
                                Some("use 2 to 1000 readings (default 10)".into()),
                            ),
                        ),
                        Err(e) => one(errs, p, e),
                    },
                    "hysteresis" => match as_int(&p.value) {
                        Ok(h) if (1..=100).contains(&h) => a.hysteresis = h as u32,
                        Ok(h) => one(
                            errs,
                            p,
                            (
                                format!("{h} is out of range"),
                                Some("use 1 to 100 evaluations (default 3)".into()),
                            ),
                        ),
                        Err(e) => one(errs, p, e),
                    },
                    "min" | "max" => match as_dur(&p.value) {
                        Ok(d) if d < MIN_EVERY => one(
                            errs,
                            p,
                            (
                                format!("{} is too short", format_duration(d)),
                                Some("the sampling interval must be at least 100ms".into()),
                            ),
                        ),
                        Ok(d) if p.key == "min" => a.min = d,
                        Ok(d) => a.max = d,
                        Err(e) => one(errs, p, e),
                    },
                    "volatile_cv" | "calm_cv" => match non_negative(&p.value) {
                        Ok(v) if p.key == "calm_cv" => a.calm_cv = v,
                        Ok(v) => a.volatile_cv = v,
                        Err(e) => one(errs, p, e),
                    },
                    "max_step" => match ctx.per_source(p, Applies::Numeric, positive) {
                        Ok(v) => a.max_step = v,
                        Err(e) => many(errs, p, e),
                    },
                    _ => unknown_param(n, p, kind, errs),
                }
            }
            if a.min > a.max {
                let p = line_of_key.get("min").or(line_of_key.get("max"));
                errs.push(
                    n.file,
                    Some(p.map_or(n.line, |p| p.line)),
                    format!(
                        "stage '{name}': min ({}) is greater than max ({})",
                        format_duration(a.min),
                        format_duration(a.max)
                    ),
                    Some(
                        "the sampling interval moves within [min, max]; defaults are 2s and 5m"
                            .into(),
                    ),
                );
            }
            if a.calm_cv >= a.volatile_cv {
                let p = line_of_key
                    .get("calm_cv")
                    .or(line_of_key.get("volatile_cv"));
                errs.push(
                    n.file,
                    Some(p.map_or(n.line, |p| p.line)),
                    format!(
                        "stage '{name}': calm_cv ({}) must be less than volatile_cv ({})",
                        a.calm_cv, a.volatile_cv
                    ),
                    Some("defaults are calm_cv = 0.01 and volatile_cv = 0.05".into()),
                );
            }
            StageKind::Adaptive(a)
        }
        _ => {
            let mut r = RetentionParams::default();
            for p in &n.params {
                match p.key.as_str() {
                    "raw_for" => match positive_dur(&p.value) {
                        Ok(d) => r.raw_for = d,
                        Err(e) => one(errs, p, e),
                    },
                    "prune_every" => match positive_dur(&p.value) {
                        Ok(d) => r.prune_every = d,
                        Err(e) => one(errs, p, e),
                    },
                    "prune_batch" => match as_int(&p.value) {
                        Ok(b) if (1..=100_000).contains(&b) => r.prune_batch = b as u32,
                        Ok(b) => one(
                            errs,
                            p,
                            (
                                format!("{b} is out of range"),
                                Some("use 1 to 100000 rows (default 1000)".into()),
                            ),
                        ),
                        Err(e) => one(errs, p, e),
                    },
                    "rollups" => match parse_rollups(&p.value) {
                        Ok(levels) => r.rollups = levels,
                        Err(e) => one(errs, p, e),
                    },
                    _ => unknown_param(n, p, kind, errs),
                }
            }
            StageKind::Retention(r)
        }
    };
    (errs.list.len() == before).then_some(result)
}

fn parse_rollups(v: &Value) -> Result<Vec<RollupLevel>, Problem> {
    let example = "write e.g. rollups = [{ every = \"1m\", keep = \"30d\" }, { every = \"1h\", keep = \"1y\" }]";
    let Value::Array(a) = v else {
        return Err((
            format!("expected a list of levels, found {}", describe(v)),
            Some(example.into()),
        ));
    };
    if a.len() > MAX_ROLLUP_LEVELS {
        return Err((
            format!(
                "{} rollup levels; at most {MAX_ROLLUP_LEVELS} are allowed",
                a.len()
            ),
            Some("a few levels (e.g. 1m and 1h) cover years".into()),
        ));
    }
    let mut levels: Vec<RollupLevel> = Vec::new();
    for (i, item) in a.iter().enumerate() {
        let n = i + 1;
        let Value::Table(t) = item else {
            return Err((
                format!(
                    "rollup level {n}: expected a table such as {{ every = \"1m\", keep = \"30d\" }}, found {}",
                    describe(item)
                ),
                Some(example.into()),
            ));
        };
        for k in t.keys() {
            if k != "every" && k != "keep" {
                return Err((
                    format!("rollup level {n}: unknown key '{k}'"),
                    Some(suggest::hint(k, "keys", &["every", "keep"])),
                ));
            }
        }
        let get = |k: &str| -> Result<Micros, Problem> {
            let v = t.get(k).ok_or_else(|| {
                (
                    format!("rollup level {n} has no `{k}`"),
                    Some(example.to_string()),
                )
            })?;
            positive_dur(v).map_err(|(m, h)| (format!("rollup level {n}, {k}: {m}"), h))
        };
        let (every, keep) = (get("every")?, get("keep")?);
        if keep < every {
            return Err((
                format!(
                    "rollup level {n} keeps {} of {} buckets: keep must be at least every",
                    format_duration(keep),
                    format_duration(every)
                ),
                None,
            ));
        }
        if let Some(prev) = levels.last()
            && every <= prev.every
        {
            return Err((
                format!(
                    "rollup level {n} (every {}) is not coarser than level {} (every {})",
                    format_duration(every),
                    n - 1,
                    format_duration(prev.every)
                ),
                Some("list levels finest first, each with a larger `every`".into()),
            ));
        }
        levels.push(RollupLevel { every, keep });
    }
    Ok(levels)
}
