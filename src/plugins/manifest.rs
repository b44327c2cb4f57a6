//! Plugin manifests: `[plugins] dir` holds one `*.toml` file per external plugin. Each is
//! read with spans (like the settings file), so every problem names its file and line with
//! a hint in plain words, all problems of a file at once. The one external kind today is
//! a tool run as a program (`kind = "tool"`, `type = "exec"`); other types (exec sources)
//! would be new arms of [`Manifest::plugin`]'s parse.
//!
//! Discovery never fails the node: a missing directory means no external plugins, and an
//! invalid manifest is reported (`plugins check`, `plugins list`, a warning at start) and
//! skipped while the rest runs.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::duration::parse_duration;
use crate::config::error::{ConfigError, Lines, line_of};
use crate::config::expect::{Want, mismatch};
use crate::config::settings::plain;
use crate::config::suggest;
use crate::graph::Micros;

/// The keys a manifest may hold.
const KEYS: &[&str] = &[
    "kind",
    "type",
    "name",
    "version",
    "description",
    "parameters",
    "command",
    "timeout",
    "max_output_kb",
    "writes",
];

/// Longest an exec tool may be given to run (a question waits for it).
const MAX_TIMEOUT: Micros = 600_000_000;
/// Largest output cap, in KiB: the result goes into the model's context.
const MAX_OUTPUT_KB: i64 = 16 * 1024;

/// A tool run as a program, as its manifest declares it: checked, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecSpec {
    pub name: String,
    pub description: String,
    /// The arguments' JSON schema (an object schema).
    pub parameters: Json,
    /// The program (an absolute path that exists) and its arguments; no shell.
    pub command: Vec<String>,
    pub timeout: Micros,
    /// The timeout as written ("10s"), for the error the model gets.
    pub timeout_text: String,
    /// Most bytes of stdout read; more is an error.
    pub max_output: usize,
    /// Whether it changes the world: runs only for questions from trusted origins.
    pub writes: bool,
}

/// One manifest file as discovered: what it declares, or why it cannot be used.
#[derive(Debug)]
pub struct Manifest {
    pub path: PathBuf,
    /// The declared name (the file's stem when it has none).
    pub name: String,
    /// The declared version ("" when not given).
    pub version: String,
    /// The declared description ("" when not given).
    pub doc: String,
    pub plugin: Result<ExecSpec, Vec<ConfigError>>,
}

impl Manifest {
    /// "ok", or "invalid: <the first problem>", as `plugins list` shows it.
    pub fn status(&self) -> String {
        match &self.plugin {
            Ok(_) => "ok".into(),
            Err(errors) => match errors.first() {
                Some(e) => match e.line {
                    Some(l) => format!("invalid: line {l}: {}", e.message),
                    None => format!("invalid: {}", e.message),
                },
                None => "invalid".into(),
            },
        }
    }
}

/// Every `*.toml` in `dir`, in name order, each read and checked; tool names must not
/// clash with `taken` (the built-in tools) or an earlier manifest's. A missing directory
/// is no plugins; one that cannot be read is an error.
pub fn discover(dir: &Path, taken: &[&str]) -> Result<Vec<Manifest>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError::new(
                dir.display().to_string(),
                None,
                format!("cannot read: {e}"),
            )
            .with_hint("check the directory's permissions, or set [plugins] dir"));
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    let mut out: Vec<Manifest> = Vec::new();
    for path in files {
        let mut m = read(&path);
        if let Ok(spec) = &m.plugin {
            let clash = if taken.contains(&spec.name.as_str()) {
                Some("a built-in tool".to_string())
            } else {
                out.iter()
                    .find(|o| o.plugin.is_ok() && o.name == spec.name)
                    .map(|o| format!("the plugin in {}", o.path.display()))
            };
            if let Some(other) = clash {
                let line = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.find("name").map(|p| line_of(&t, p)));
                m.plugin = Err(vec![
                    ConfigError::new(
                        path.display().to_string(),
                        line,
                        format!("the tool name '{}' is already taken by {other}", spec.name),
                    )
                    .with_hint("give this tool another name"),
                ]);
            }
        }
        out.push(m);
    }
    Ok(out)
}

/// The manifests of `[plugins] dir`, checked against this build's tools.
pub fn of(settings: &crate::config::Settings) -> Result<Vec<Manifest>, ConfigError> {
    discover(
        &settings.plugins.dir,
        &super::registry::names(super::Role::Tool),
    )
}

/// `smollama plugins check`: one line per valid manifest, every error of the invalid ones
/// (`error: file:line: message` and a hint); whether all were valid.
pub fn check(settings: &crate::config::Settings) -> (String, bool) {
    let dir = settings.plugins.dir.display();
    let manifests = match of(settings) {
        Ok(m) => m,
        Err(e) => return (format!("error: {e}\n"), false),
    };
    if manifests.is_empty() {
        return (format!("ok: no plugin manifests in {dir}\n"), true);
    }
    let mut out = String::new();
    let mut bad = 0;
    for m in &manifests {
        match &m.plugin {
            Ok(spec) => out.push_str(&format!(
                "ok: {}: tool {}{}\n",
                m.path.display(),
                spec.name,
                if spec.writes { " (writes)" } else { "" }
            )),
            Err(errors) => {
                bad += 1;
                out.push_str(&format!(
                    "{}\n",
                    crate::config::error::ConfigErrors(errors.clone())
                ));
            }
        }
    }
    out.push_str(&format!(
        "{} of {} plugin manifests in {dir} are valid{}\n",
        manifests.len() - bad,
        manifests.len(),
        if bad > 0 {
            "; invalid ones are skipped at start"
        } else {
            ""
        }
    ));
    (out, bad == 0)
}

/// Read and check one manifest file.
pub fn read(path: &Path) -> Manifest {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Manifest {
                path: path.to_path_buf(),
                name: stem_of(path),
                version: String::new(),
                doc: String::new(),
                plugin: Err(vec![ConfigError::new(
                    path.display().to_string(),
                    None,
                    format!("cannot read: {e}"),
                )]),
            };
        }
    };
    parse(path, &text)
}

/// Check one manifest's text, read from `path`.
pub(crate) fn parse(path: &Path, text: &str) -> Manifest {
    let mut r = Reader {
        file: path.display().to_string(),
        lines: Lines::new(text),
        errors: Vec::new(),
    };
    // One parse for the checks and the names (it was four: one per name read).
    let (doc, syntax) = DeTable::parse_recoverable(text);
    let table = if syntax.is_empty() {
        Some(doc.get_ref())
    } else {
        r.syntax_errors(&syntax);
        None
    };
    let parsed = table.and_then(|t| r.manifest(t));
    let peek = |key| table.and_then(|t| peek_text(t, key));
    let name = peek("name").unwrap_or_else(|| stem_of(path));
    let version = peek("version").unwrap_or_default();
    let doc = peek("description").unwrap_or_default();
    let mut errors = r.errors;
    errors.sort_by_key(|e| e.line);
    Manifest {
        path: path.to_path_buf(),
        name,
        version,
        doc,
        plugin: match parsed {
            Some(spec) if errors.is_empty() => Ok(spec),
            _ => Err(errors),
        },
    }
}

/// The file's name without `.toml`: the plugin's name until its manifest gives one.
fn stem_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A top-level text value of a manifest that parsed, for naming the plugin even when it
/// is invalid.
fn peek_text(table: &DeTable<'_>, key: &str) -> Option<String> {
    match table.get(key)?.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        _ => None,
    }
}

struct Reader {
    file: String,
    lines: Lines,
    errors: Vec<ConfigError>,
}

impl Reader {
    fn error(&mut self, span: Range<usize>, message: String, hint: Option<String>) {
        let mut e = ConfigError::new(&self.file, Some(self.lines.line(span.start)), message);
        e.hint = hint;
        self.errors.push(e);
    }

    fn syntax_errors(&mut self, syntax: &[toml::de::Error]) {
        for e in syntax {
            let line = e.span().map(|r| self.lines.line(r.start));
            self.errors.push(
                ConfigError::new(&self.file, line, e.message().trim())
                    .with_hint("keys are `key = value`, text goes in quotes"),
            );
        }
    }

    fn manifest(&mut self, table: &DeTable<'_>) -> Option<ExecSpec> {
        for (key, _) in table {
            if !KEYS.contains(&key.get_ref().as_ref()) {
                let k: &str = key.get_ref();
                self.error(
                    key.span(),
                    format!("unknown key `{k}` in a plugin manifest"),
                    Some(suggest::hint(k, "keys", KEYS)),
                );
            }
        }
        let get = |k: &str| table.get(k);
        let kind = self.text_of(get("kind"), "kind");
        if let Some((kind, span)) = &kind
            && kind != "tool"
        {
            self.error(
                span.clone(),
                format!("unknown plugin kind '{kind}'"),
                Some("external plugins are tools today: write kind = \"tool\"".into()),
            );
        }
        let ty = self.text_of(get("type"), "type");
        if let Some((ty, span)) = &ty
            && ty != "exec"
        {
            self.error(
                span.clone(),
                format!("unknown tool type '{ty}'"),
                Some("a tool run as a program is type = \"exec\"".into()),
            );
        }
        let name = self.text_of(get("name"), "name");
        if let Some((n, span)) = &name {
            let ok = !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                self.error(
                    span.clone(),
                    format!("tool name '{n}' is not valid"),
                    Some("use 1 to 64 characters from a-z A-Z 0-9 _ -, e.g. \"disk_free\"".into()),
                );
            }
        }
        if let Some(v) = get("version") {
            self.text_of(Some(v), "version");
        }
        let description = self.text_of(get("description"), "description");
        let parameters = self.parameters(get("parameters"));
        let command = self.command(get("command"));
        let (timeout, timeout_text) = self.timeout(get("timeout"));
        let max_output = self.max_output(get("max_output_kb"));
        let writes = match get("writes") {
            None => false,
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => *b,
                other => {
                    let (m, h) = mismatch(Want::Bool, &plain(other));
                    self.error(v.span(), format!("writes: {m}"), h);
                    false
                }
            },
        };
        for (key, hint) in [
            ("kind", "write kind = \"tool\""),
            ("type", "write type = \"exec\""),
            (
                "name",
                "name the tool as the model will call it, e.g. name = \"disk_free\"",
            ),
            (
                "description",
                "say in one sentence what the tool does: the model reads it to decide when to call it",
            ),
            (
                "command",
                "give the program and its arguments, e.g. command = [\"/usr/local/bin/disk-free\", \"--json\"]",
            ),
        ] {
            if get(key).is_none() {
                self.errors.push(
                    ConfigError::new(&self.file, Some(1), format!("`{key}` is missing"))
                        .with_hint(hint),
                );
            }
        }
        Some(ExecSpec {
            name: name?.0,
            description: description?.0,
            parameters: parameters?,
            command: command?,
            timeout,
            timeout_text,
            max_output: max_output?,
            writes,
        })
    }

    /// A text value (with its span); a wrong type is reported.
    fn text_of(
        &mut self,
        v: Option<&Spanned<DeValue>>,
        key: &str,
    ) -> Option<(String, Range<usize>)> {
        let v = v?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            other => {
                let (m, h) = mismatch(Want::Text, &plain(other));
                self.error(v.span(), format!("{key}: {m}"), h);
                None
            }
        }
    }

    /// The JSON schema: a TOML table or a JSON string, an object schema. Absent: no
    /// arguments.
    fn parameters(&mut self, v: Option<&Spanned<DeValue>>) -> Option<Json> {
        let Some(v) = v else {
            return Some(serde_json::json!({"type": "object", "properties": {}}));
        };
        let hint = "give a JSON schema object, e.g. [parameters] type = \"object\" with [parameters.properties.path] type = \"string\", or the same as a JSON string";
        let schema = match v.get_ref() {
            DeValue::Table(_) => serde_json::to_value(plain(v.get_ref())).ok(),
            DeValue::String(s) => match serde_json::from_str::<Json>(s) {
                Ok(j) => Some(j),
                Err(e) => {
                    self.error(
                        v.span(),
                        format!("parameters: the text is not JSON ({e})"),
                        Some(hint.into()),
                    );
                    return None;
                }
            },
            other => {
                self.error(
                    v.span(),
                    format!(
                        "parameters: expected a table or a JSON string, found {}",
                        crate::config::expect::found(&plain(other))
                    ),
                    Some(hint.into()),
                );
                return None;
            }
        };
        let problem = match &schema {
            Some(Json::Object(m)) => {
                if m.get("type").is_some_and(|t| t != "object") {
                    Some("parameters: the schema's type must be \"object\"")
                } else if m.get("properties").is_some_and(|p| !p.is_object()) {
                    Some("parameters: properties must be a table of argument schemas")
                } else if m.get("required").is_some_and(|r| {
                    !r.as_array()
                        .is_some_and(|a| a.iter().all(|x| x.is_string()))
                }) {
                    Some("parameters: required must be a list of argument names")
                } else {
                    None
                }
            }
            _ => Some("parameters: expected a JSON schema object"),
        };
        if let Some(p) = problem {
            self.error(v.span(), p.into(), Some(hint.into()));
            return None;
        }
        let mut schema = schema?;
        if let Some(m) = schema.as_object_mut() {
            m.entry("type").or_insert_with(|| "object".into());
            m.entry("properties")
                .or_insert_with(|| Json::Object(Default::default()));
        }
        Some(schema)
    }

    /// The program and its arguments: a non-empty list of texts, the first an absolute
    /// path to an executable file.
    fn command(&mut self, v: Option<&Spanned<DeValue>>) -> Option<Vec<String>> {
        let v = v?;
        let example = "write e.g. command = [\"/usr/local/bin/disk-free\", \"--json\"] (no shell: each argument separate)";
        let DeValue::Array(items) = v.get_ref() else {
            let (m, h) = mismatch(Want::TextList, &plain(v.get_ref()));
            self.error(
                v.span(),
                format!("command: {m}"),
                h.or(Some(example.into())),
            );
            return None;
        };
        let mut argv = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => argv.push(s.to_string()),
                other => {
                    let (m, h) = mismatch(Want::Text, &plain(other));
                    self.error(item.span(), format!("command: {m}"), h);
                    return None;
                }
            }
        }
        let Some(prog) = argv.first() else {
            self.error(v.span(), "command is empty".into(), Some(example.into()));
            return None;
        };
        let p = Path::new(prog);
        let problem = if !p.is_absolute() {
            Some((
                format!("command: '{prog}' is not an absolute path"),
                format!(
                    "write the program's full path, e.g. \"/usr/local/bin/{prog}\" (the agent's PATH is not searched)"
                ),
            ))
        } else {
            match std::fs::metadata(p) {
                Err(_) => Some((
                    format!("command: {prog} does not exist"),
                    "check the path, or install the program first".to_string(),
                )),
                Ok(m) if !m.is_file() => Some((
                    format!("command: {prog} is not a file"),
                    "give the program itself, not its directory".to_string(),
                )),
                Ok(m) if !executable(&m) => Some((
                    format!("command: {prog} is not executable"),
                    format!("make it executable: chmod +x {prog}"),
                )),
                Ok(_) => None,
            }
        };
        if let Some((m, h)) = problem {
            self.error(v.span(), m, Some(h));
            return None;
        }
        Some(argv)
    }

    fn timeout(&mut self, v: Option<&Spanned<DeValue>>) -> (Micros, String) {
        const DEFAULT: (Micros, &str) = (10_000_000, "10s");
        let default = (DEFAULT.0, DEFAULT.1.to_string());
        let Some(v) = v else { return default };
        let DeValue::String(s) = v.get_ref() else {
            let (m, h) = mismatch(Want::Duration, &plain(v.get_ref()));
            self.error(v.span(), format!("timeout: {m}"), h);
            return default;
        };
        match parse_duration(s) {
            Ok(d) if d > 0 && d <= MAX_TIMEOUT => (d, s.trim().to_string()),
            Ok(_) => {
                self.error(
                    v.span(),
                    format!("timeout: \"{s}\" is out of range"),
                    Some("more than 0 and at most \"10m\"; the default is \"10s\"".into()),
                );
                default
            }
            Err(e) => {
                self.error(v.span(), format!("timeout: {e}"), None);
                default
            }
        }
    }

    fn max_output(&mut self, v: Option<&Spanned<DeValue>>) -> Option<usize> {
        let Some(v) = v else { return Some(64 << 10) };
        let n = match v.get_ref() {
            DeValue::Integer(_) => match plain(v.get_ref()) {
                toml::Value::Integer(n) => n,
                _ => 0,
            },
            other => {
                let (m, h) = mismatch(Want::WholeNumber, &plain(other));
                self.error(v.span(), format!("max_output_kb: {m}"), h);
                return None;
            }
        };
        if !(1..=MAX_OUTPUT_KB).contains(&n) {
            self.error(
                v.span(),
                format!("max_output_kb: {n} is out of range"),
                Some(format!(
                    "KiB of output, from 1 to {MAX_OUTPUT_KB}; the default is 64"
                )),
            );
            return None;
        }
        Some((n as usize) << 10)
    }
}

#[cfg(unix)]
fn executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_: &std::fs::Metadata) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::TempDir;

    fn manifest(dir: &Path, name: &str, text: &str) -> Manifest {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        read(&p)
    }

    #[test]
    fn a_good_manifest_with_defaults_and_a_json_schema() {
        let d = TempDir::new("manifest-good");
        let m = manifest(
            &d.0,
            "t.toml",
            "kind = \"tool\"\ntype = \"exec\"\nname = \"t\"\ndescription = \"d\"\ncommand = [\"/bin/sh\", \"-c\", \"cat\"]\nparameters = '{\"properties\": {\"x\": {\"type\": \"string\"}}}'\n",
        );
        let spec = m.plugin.unwrap();
        assert_eq!(spec.timeout, 10_000_000);
        assert_eq!(spec.timeout_text, "10s");
        assert_eq!(spec.max_output, 64 << 10);
        assert!(!spec.writes);
        assert_eq!(spec.parameters["type"], "object");
        assert_eq!(spec.parameters["properties"]["x"]["type"], "string");
    }

    #[test]
    fn every_problem_with_its_line() {
        let d = TempDir::new("manifest-bad");
        let m = manifest(
            &d.0,
            "bad.toml",
            "kind = \"tool\"\ntype = \"exec\"\nname = \"bad\"\ndescription = \"d\"\ncomand = [\"/bin/true\"]\ntimeout = 5\nwrites = \"yes\"\n",
        );
        let errors = m.plugin.as_ref().unwrap_err();
        let lines: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [Some(1), Some(5), Some(6), Some(7)], "{errors:?}");
        assert_eq!(errors[0].message, "`command` is missing");
        assert!(errors[1].hint.as_deref().unwrap().contains("'command'"));
        assert!(
            m.status()
                .starts_with("invalid: line 1: `command` is missing")
        );
    }

    #[test]
    fn names_clash_with_built_ins_and_earlier_manifests() {
        let d = TempDir::new("manifest-clash");
        let body = |n: &str| {
            format!(
                "kind = \"tool\"\ntype = \"exec\"\nname = \"{n}\"\ndescription = \"d\"\ncommand = [\"/bin/true\"]\n"
            )
        };
        std::fs::write(d.0.join("a.toml"), body("mine")).unwrap();
        std::fs::write(d.0.join("b.toml"), body("mine")).unwrap();
        std::fs::write(d.0.join("c.toml"), body("publish")).unwrap();
        std::fs::write(d.0.join("notes.txt"), "not a manifest").unwrap();
        let all = discover(&d.0, &["publish"]).unwrap();
        let status: Vec<String> = all.iter().map(Manifest::status).collect();
        assert_eq!(status.len(), 3);
        assert_eq!(status[0], "ok");
        assert!(
            status[1].contains("already taken by the plugin in"),
            "{status:?}"
        );
        assert!(
            status[2].contains("already taken by a built-in tool"),
            "{status:?}"
        );
        assert!(discover(&d.0.join("none"), &[]).unwrap().is_empty());
    }
}
