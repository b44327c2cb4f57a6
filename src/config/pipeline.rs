//! Pipeline files: sources, stages and sinks wired by name, validated before anything runs.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use toml::{Spanned, Value};

use super::duration::format_duration;
use super::error::{ConfigError, ConfigErrors, Lines, line_of};
use super::expect::Want;
use super::settings::Settings;
use super::suggest;
use crate::graph::{Micros, ValueKind};
use crate::plugins::params::{RawParam, Reach, Reader, describe, positive_dur};
use crate::plugins::{Flow, Kind, Make, ParamsBox, Role, params_of, registry};
use crate::stages::retention_policy::RetentionParams;

/// The pipeline `smollama` runs when none is configured; shipped inside the binary.
pub const DEFAULT_PIPELINE: &str = include_str!("../../pipelines/default.toml");
pub const DEFAULT_PIPELINE_NAME: &str = "built-in pipelines/default.toml";

/// A validated pipeline: every node names its kind (from `plugins::registry`) and holds
/// the parameters that kind parsed.
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    pub sources: Vec<SourceSpec>,
    pub stages: Vec<StageSpec>,
    pub sinks: Vec<SinkSpec>,
    /// The board interfaces its nodes need enabled, sorted, each once.
    pub needs: Vec<crate::plugins::params::Need>,
}

#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub name: String,
    pub kind: &'static Kind,
    /// Starting sampling interval (0 for event-driven kinds, which take no `every`).
    pub every: Micros,
    pub params: ParamsBox,
}

#[derive(Clone, Debug)]
pub struct StageSpec {
    pub name: String,
    pub from: Vec<String>,
    pub kind: &'static Kind,
    pub params: ParamsBox,
}

#[derive(Clone, Debug)]
pub struct SinkSpec {
    pub name: String,
    pub from: Vec<String>,
    pub kind: &'static Kind,
    pub params: ParamsBox,
}

impl StageSpec {
    /// This stage's parameters, if its kind's are of type `T`.
    pub fn params<T: 'static>(&self) -> Option<&T> {
        params_of(&self.params)
    }
}

impl SinkSpec {
    /// This sink's parameters, if its kind's are of type `T`.
    pub fn params<T: 'static>(&self) -> Option<&T> {
        params_of(&self.params)
    }
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
        produces(source, settings).ids
    }

    /// The retention windows of the first retention stage (for history queries).
    pub fn retention(&self) -> Option<RetentionParams> {
        self.stages
            .iter()
            .find_map(|s| s.params::<RetentionParams>())
            .cloned()
    }
}

fn produces(source: &SourceSpec, settings: &Settings) -> crate::plugins::Produced {
    match source.kind.make {
        Make::Source { produces, .. } => produces(source, settings),
        _ => crate::plugins::Produced::default(),
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

/// Sampling faster than this is refused.
const MIN_EVERY: Micros = 100_000;

/// The kinds of `role`, for hints.
fn kinds_of(role: Role) -> Vec<&'static str> {
    registry::names(role)
}

/// One `[[source]]`, `[[stage]]` or `[[sink]]`, before validation.
struct Node {
    file: usize,
    line: usize,
    section: Role,
    name: Option<String>,
    kind: Option<&'static Kind>,
    /// `from` names with their lines; `None` when the key is absent.
    from: Option<Vec<(String, usize)>>,
    /// `from` was present but not a list of strings (already reported).
    from_invalid: bool,
    params: Vec<RawParam>,
}

impl Node {
    fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{} '{n}'", self.section.as_str()),
            None => format!("[[{}]]", self.section.as_str()),
        }
    }
}

/// What validation collects beside the spec: errors (files by index), and the board
/// interfaces the nodes' kinds said they need.
struct Errs<'a> {
    files: &'a [(String, String)],
    list: Vec<ConfigError>,
    needs: Vec<crate::plugins::params::Need>,
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

fn parse_many(
    files: &[(String, String)],
    settings: &Settings,
) -> Result<PipelineSpec, ConfigErrors> {
    let mut errs = Errs {
        files,
        list: Vec::new(),
        needs: Vec::new(),
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
        let lines = Lines::new(text);
        for (section, tables) in [
            (Role::Source, raw.source),
            (Role::Stage, raw.stage),
            (Role::Sink, raw.sink),
        ] {
            for t in tables {
                nodes.push(read_node(fi, &lines, section, t, &mut errs));
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
    lines: &Lines,
    section: Role,
    t: Spanned<RawTable>,
    errs: &mut Errs,
) -> Node {
    let line = lines.line(t.span().start);
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
        let key_line = lines.line(k.span().start);
        let key = k.into_inner();
        let value_line = lines.line(v.span().start);
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
                let kinds = kinds_of(section);
                match value {
                    Value::String(s) if registry::find(section, &s).is_some() => {
                        node.kind = registry::find(section, &s)
                    }
                    Value::String(s) => {
                        let what = format!("{} kinds", section.as_str());
                        errs.push(
                            fi,
                            Some(value_line),
                            format!("unknown {} kind '{s}'", section.as_str()),
                            Some(suggest::hint(&s, &what, &kinds)),
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
                _ if section == Role::Source => node.from = Some(vec![(String::new(), value_line)]),
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
            _ => node.params.push(RawParam {
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
            Some(format!(
                "add kind = one of: {}",
                kinds_of(section).join(", ")
            )),
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
            (Some(f), Role::Source) => {
                let line = f.first().map_or(n.line, |(_, l)| *l);
                errs.push(
                    n.file,
                    Some(line),
                    format!("{} has `from`, but sources read sensors, not other nodes", n.label()),
                    Some("remove `from`; to process a source's readings, name it in a stage's `from`".into()),
                );
                continue;
            }
            (None, Role::Source) => continue,
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
                    .filter(|m| m.section != Role::Sink && m.name != n.name)
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
            if nodes[j].section == Role::Sink {
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
        if n.section != Role::Source {
            continue;
        }
        if let (Some(name), Some(kind)) = (&n.name, n.kind)
            && let Some((every, params)) =
                build_node(n, name, kind, &Reach::default(), settings, errs)
        {
            source_of.insert(i, sources.len());
            sources.push(SourceSpec {
                name: name.clone(),
                kind,
                every,
                params,
            });
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
    // In a cycle the reach is incomplete; check values but not source kinds.
    let loose = Reach {
        ids: Vec::new(),
        open_bool: true,
        remote: false,
    };
    for (i, n) in nodes.iter().enumerate() {
        let (Some(name), Some(kind)) = (&n.name, n.kind) else {
            continue;
        };
        if n.section == Role::Source {
            continue;
        }
        let from: Vec<String> = n
            .from
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|(s, _)| s.clone())
            .collect();
        let r = reach[i].clone().unwrap_or_default();
        // Type checks are meaningless inside a cycle (already reported).
        let r = if cyclic.contains(&i) { &loose } else { &r };
        let Some((_, params)) = build_node(n, name, kind, r, settings, errs) else {
            continue;
        };
        if n.section == Role::Stage {
            stages.push(StageSpec {
                name: name.clone(),
                from,
                kind,
                params,
            });
        } else {
            sinks.push(SinkSpec {
                name: name.clone(),
                from,
                kind,
                params,
            });
        }
    }

    // Every pipeline needs an exit, and every output must go somewhere.
    if !nodes.iter().any(|n| n.section == Role::Sink) {
        let last = nodes
            .iter()
            .rev()
            .find(|n| n.name.is_some() && n.section != Role::Sink);
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
            if n.section == Role::Sink || !consumers[i].is_empty() {
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

    let mut needs = std::mem::take(&mut errs.needs);
    needs.sort();
    PipelineSpec {
        sources,
        stages,
        sinks,
        needs,
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
    if nodes[i].section == Role::Source {
        if let Some(&s) = source_of.get(&i) {
            let produced = produces(&sources[s], settings);
            r.ids = produced.ids;
            r.open_bool = produced.open == Some(Flow::Bool);
            r.remote = produced.open == Some(Flow::Any);
        }
    } else {
        for &j in &inputs[i] {
            let up = compute_reach(
                j, nodes, inputs, sources, source_of, settings, reach, visiting,
            );
            r.open_bool |= up.open_bool;
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

fn unknown_param(n: &Node, p: &RawParam, kind: &Kind, errs: &mut Errs) {
    let role = n.section.as_str();
    let mut all: Vec<&str> = vec!["name", "kind"];
    if n.section != Role::Source {
        all.push("from");
    }
    if kind.params.is_empty() {
        errs.push(
            n.file,
            Some(p.line),
            format!("unknown parameter '{}' for a {} {role}", p.key, kind.name),
            Some(format!(
                "a {} {role} takes only {} and {}",
                kind.name,
                all[..all.len() - 1].join(", "),
                all[all.len() - 1]
            )),
        );
        return;
    }
    all.extend(kind.params.iter().map(|d| d.spec.name));
    // A parameter of another kind (a window on a filter) is a mix-up, not a typo.
    let other = registry::all()
        .filter(|k| k.role != Role::Tool && !std::ptr::eq(*k, kind))
        .find(|k| k.param(&p.key).is_some());
    let hint = match other {
        Some(k) => format!(
            "'{}' belongs to {} {}s; a {} {role} takes: {}",
            p.key,
            k.name,
            k.role.as_str(),
            kind.name,
            all.join(", ")
        ),
        None => suggest::hint(
            &p.key,
            &format!("parameters of a {} {role}", kind.name),
            &all,
        ),
    };
    errs.push(
        n.file,
        Some(p.line),
        format!(
            "unknown parameter '{}' for {} (kind {})",
            p.key,
            n.label(),
            kind.name
        ),
        Some(hint),
    );
}

/// Read a node's parameters with its kind: `every` for sources whose kind declares it,
/// unknown keys reported with the kind's list (or the kind they belong to), the rest by
/// the kind's own `parse`. `None` after any problem.
fn build_node(
    n: &Node,
    name: &str,
    kind: &'static Kind,
    reach: &Reach,
    settings: &Settings,
    errs: &mut Errs,
) -> Option<(Micros, ParamsBox)> {
    let before = errs.list.len();
    let mut every = 0;
    if kind.role == Role::Source && kind.param("every").is_some() {
        every = super::settings::DEFAULT_EVERY;
    }
    let mut known = Vec::new();
    for p in &n.params {
        if kind.param(&p.key).is_none() {
            unknown_param(n, p, kind, errs);
        } else if p.key == "every" && kind.role == Role::Source {
            match positive_dur(&p.value) {
                Ok(d) if d < MIN_EVERY => errs.push(
                    n.file,
                    Some(p.line),
                    format!(
                        "every of source '{name}': {} is too fast",
                        format_duration(d)
                    ),
                    Some("sample at most every 100ms; a Pi has better things to do".into()),
                ),
                Ok(d) => every = d,
                Err((m, h)) => errs.push(
                    n.file,
                    Some(p.line),
                    format!("every of source '{name}': {m}"),
                    h,
                ),
            }
        } else {
            known.push(p.clone());
        }
    }
    let parse = kind.parse_fn()?;
    let mut reader = Reader {
        name,
        kind,
        line: n.line,
        params: &known,
        reach,
        settings,
        problems: Vec::new(),
        needs: Vec::new(),
    };
    let params = parse(&mut reader);
    for (line, msg, hint) in reader.problems {
        errs.push(n.file, Some(line), msg, hint);
    }
    for need in reader.needs {
        if !errs.needs.contains(&need) {
            errs.needs.push(need);
        }
    }
    (errs.list.len() == before).then_some((every, params))
}
