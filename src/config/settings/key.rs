//! One settings key: its declaration ([`Spec`]) beside how a checked value is stored into
//! [`Settings`] and read back for `smollama config check`. The type and range checks are
//! done here, once, from the declaration, for the file and the environment alike; a
//! key's own setter only adds what the type cannot say (a name's characters, an
//! address's form).

use std::path::{Path, PathBuf};

use toml::de::DeValue;

use super::Settings;
use crate::config::duration::{format_duration, parse_duration};
use crate::config::expect::{Want, mismatch};
use crate::config::spec::Spec;
use crate::graph::Micros;

/// A value that has passed its key's type and range check, ready for the setter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Text(String),
    Int(i64),
    Num(f64),
    Bool(bool),
    Dur(Micros),
    List(Vec<String>),
}

/// A problem with one value: the message and, when it helps, a hint.
pub(crate) type Problem = (String, Option<String>);

pub(crate) fn problem(msg: impl Into<String>) -> Problem {
    (msg.into(), None)
}

pub(crate) fn problem_hint(msg: impl Into<String>, hint: impl Into<String>) -> Problem {
    (msg.into(), Some(hint.into()))
}

impl Val {
    // The type check ran before the setter, so a setter asking for another kind than
    // its key declares is a bug in the table; `every_default_sets` in the tests finds it.
    // (The value is not repeated: it may be a secret.)
    fn wrong(&self, what: &str) -> Problem {
        problem(format!("internal: the key table expected {what} here"))
    }
    pub(crate) fn text(self) -> Result<String, Problem> {
        match self {
            Val::Text(s) => Ok(s),
            v => Err(v.wrong("text")),
        }
    }
    pub(crate) fn int(self) -> Result<i64, Problem> {
        match self {
            Val::Int(i) => Ok(i),
            v => Err(v.wrong("a whole number")),
        }
    }
    pub(crate) fn num(self) -> Result<f64, Problem> {
        match self {
            Val::Num(x) => Ok(x),
            v => Err(v.wrong("a number")),
        }
    }
    pub(crate) fn bool(self) -> Result<bool, Problem> {
        match self {
            Val::Bool(b) => Ok(b),
            v => Err(v.wrong("true or false")),
        }
    }
    pub(crate) fn dur(self) -> Result<Micros, Problem> {
        match self {
            Val::Dur(d) => Ok(d),
            v => Err(v.wrong("a duration")),
        }
    }
    pub(crate) fn list(self) -> Result<Vec<String>, Problem> {
        match self {
            Val::List(l) => Ok(l),
            v => Err(v.wrong("a list")),
        }
    }
}

/// Where a value was written, for resolving relative paths: the settings file's
/// directory, or `None` (the environment: relative to the working directory).
pub(crate) struct Place<'a> {
    pub base: Option<&'a Path>,
}

impl Place<'_> {
    pub(crate) fn resolve(&self, p: String) -> PathBuf {
        let p = PathBuf::from(p);
        match self.base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p,
        }
    }
}

/// Stores a checked value; the error is said at the value's file line or variable.
pub(crate) type Setter = fn(&mut Settings, Val, &Place) -> Result<(), Problem>;
/// The effective value as TOML text (`"smollama-node"`, `30`, `"5m"`), `None` when unset.
pub(crate) type Shower = fn(&Settings) -> Option<String>;

/// A key of `smollama.toml`: the declaration every use reads (parsing, environment,
/// `config check`, `config default`, the docs' key table), and its setter and shower.
pub(crate) struct Key {
    pub spec: Spec,
    /// The words a text key takes (`auto`, `mock`, `rppal`), for the docs; the setter
    /// refuses the rest with its own message. Empty for free text.
    pub choices: &'static [&'static str],
    /// For a key without a default: a value to show, commented out, in the default file.
    pub example: &'static str,
    /// `config check` shows `***` instead of the value.
    pub secret: bool,
    /// A text key that also takes a bare number in the file (`keep_alive = 300`).
    pub numbers_as_text: bool,
    pub set: Setter,
    pub show: Shower,
}

impl Key {
    pub(crate) const fn new(spec: Spec, set: Setter, show: Shower) -> Key {
        Key {
            spec,
            choices: &[],
            example: "",
            secret: false,
            numbers_as_text: false,
            set,
            show,
        }
    }

    /// The environment variable that overrides it: `SMOLLAMA_<SECTION>_<KEY>`.
    pub(crate) fn env_name(&self, section: &str) -> String {
        env_name(section, self.spec.name)
    }
}

pub(crate) fn env_name(section: &str, key: &str) -> String {
    format!(
        "SMOLLAMA_{}_{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    )
}

/// A `[section]` of the file: its doc paragraph (for the default file) and its keys.
pub(crate) struct Section {
    pub name: &'static str,
    pub doc: &'static str,
    pub keys: &'static [Key],
}

impl Section {
    pub(crate) fn key(&self, name: &str) -> Option<&'static Key> {
        self.keys.iter().find(|k| k.spec.name == name)
    }
    pub(crate) fn key_names(&self) -> Vec<&'static str> {
        self.keys.iter().map(|k| k.spec.name).collect()
    }
}

// ---------------------------------------------------------------------------------------
// Type and range checks, from the declaration.

/// A TOML value read with spans, as the plain `toml::Value` the plain-words messages
/// take (for naming what was written).
pub(crate) fn plain(v: &DeValue) -> toml::Value {
    match v {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map_or_else(|_| toml::Value::String(i.to_string()), toml::Value::Integer),
        DeValue::Float(f) => toml::Value::Float(f.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(a) => toml::Value::Array(a.iter().map(|v| plain(v.get_ref())).collect()),
        DeValue::Table(t) => toml::Value::Table(
            t.iter()
                .map(|(k, v)| (k.get_ref().to_string(), plain(v.get_ref())))
                .collect(),
        ),
    }
}

/// A file value as its key takes it, or the plain-words type error.
pub(crate) fn from_file(key: &Key, v: &DeValue) -> Result<Val, Problem> {
    typed(&key.spec, key.numbers_as_text, v)
}

/// A file value as `spec` takes it (type and range), or the plain-words error.
pub(crate) fn typed(spec: &Spec, numbers_as_text: bool, v: &DeValue) -> Result<Val, Problem> {
    let val = plain(v);
    let got = match (spec.want, &val) {
        (Want::Duration, toml::Value::String(s)) => {
            let d = parse_duration(s).map_err(|e| duration_problem(spec, e))?;
            return dur_in_range(spec, d, s);
        }
        (Want::WholeNumber, toml::Value::Integer(i)) => {
            return int_in_range(spec, *i, &i.to_string());
        }
        (Want::Number, toml::Value::Float(x)) => return num_in_range(spec, *x, &x.to_string()),
        (Want::Number, toml::Value::Integer(i)) => {
            return num_in_range(spec, *i as f64, &i.to_string());
        }
        (Want::Bool, toml::Value::Boolean(b)) => Some(Val::Bool(*b)),
        (Want::Text, toml::Value::String(s)) => Some(Val::Text(s.clone())),
        (Want::Text, toml::Value::Integer(i)) if numbers_as_text => Some(Val::Text(i.to_string())),
        (Want::TextList, toml::Value::Array(a)) if a.iter().all(toml::Value::is_str) => {
            Some(Val::List(
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            ))
        }
        _ => None,
    };
    got.ok_or_else(|| {
        let (msg, hint) = mismatch(spec.want, &val);
        (
            format!("{}: {msg}", spec.name),
            Some(hint.unwrap_or_else(|| {
                "see docs/configuration.md for every key and the value it takes".into()
            })),
        )
    })
}

/// An environment value (always text) as its key takes it: booleans also as 1/0,
/// yes/no, on/off; lists comma-separated.
pub(crate) fn from_env(key: &Key, value: &str) -> Result<Val, Problem> {
    let spec = &key.spec;
    let v = value.trim();
    let not = |hint: &str| {
        problem_hint(
            format!("expected {}, found \"{value}\"", spec.want.phrase()),
            hint,
        )
    };
    match spec.want {
        Want::Duration => {
            let d = parse_duration(v).map_err(|e| duration_problem(spec, e))?;
            dur_in_range(spec, d, v)
        }
        Want::WholeNumber => match v.parse::<i64>() {
            Ok(i) => int_in_range(spec, i, v),
            Err(_) => Err(not("write the number alone, e.g. 30")),
        },
        Want::Number => match v.parse::<f64>() {
            Ok(x) if x.is_finite() => num_in_range(spec, x, v),
            _ => Err(not("write the number alone, e.g. 0.5")),
        },
        Want::Bool => parse_bool(v)
            .map(Val::Bool)
            .ok_or_else(|| not("use true/false, 1/0, yes/no or on/off")),
        Want::Text => Ok(Val::Text(value.to_string())),
        Want::TextList => Ok(Val::List(
            value
                .split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect(),
        )),
        Want::Tables => Err(problem("internal: a list of tables has its own format")),
    }
}

pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn duration_problem(spec: &Spec, e: String) -> Problem {
    let range = range_words(spec);
    let hint = if range.is_empty() {
        "write a number and a unit: ms, s, m, h, d, w or y".to_string()
    } else {
        format!("write a number and a unit: ms, s, m, h, d, w or y; {range}")
    };
    (format!("{}: {e}", spec.name), Some(hint))
}

fn with_key_hint(spec: &Spec, first: Option<String>) -> Option<String> {
    match (first, spec.hint) {
        (Some(f), "") => Some(f),
        (Some(f), h) => Some(format!("{f}; {h}")),
        (None, "") => None,
        (None, h) => Some(h.to_string()),
    }
}

fn int_in_range(spec: &Spec, i: i64, shown: &str) -> Result<Val, Problem> {
    match spec.range {
        Some((lo, hi)) if (i as f64) < lo || (i as f64) > hi => Err((
            format!("{} = {shown} is out of range ({lo} to {hi})", spec.name),
            with_key_hint(spec, None)
                .or_else(|| Some(format!("use a whole number from {lo} to {hi}"))),
        )),
        _ => Ok(Val::Int(i)),
    }
}

fn num_in_range(spec: &Spec, x: f64, shown: &str) -> Result<Val, Problem> {
    match spec.range {
        Some((lo, hi)) if !(lo..=hi).contains(&x) => Err((
            format!("{} = {shown} is out of range ({lo} to {hi})", spec.name),
            with_key_hint(spec, None).or_else(|| Some(format!("use a number from {lo} to {hi}"))),
        )),
        _ => Ok(Val::Num(x)),
    }
}

/// Durations' bounds are declared in seconds.
pub(crate) fn seconds(s: f64) -> Micros {
    (s * 1e6).round() as Micros
}

fn dur_in_range(spec: &Spec, d: Micros, shown: &str) -> Result<Val, Problem> {
    match spec.range {
        Some((lo, hi)) if d < seconds(lo) || d > seconds(hi) => Err((
            format!("{} = \"{shown}\" is out of range", spec.name),
            with_key_hint(spec, Some(format!("use {}", range_words(spec)))),
        )),
        _ => Ok(Val::Dur(d)),
    }
}

/// "1 to 65536", "100ms to 1h": the range as the docs and hints say it.
pub(crate) fn range_words(spec: &Spec) -> String {
    match (spec.range, spec.want) {
        (None, _) => String::new(),
        (Some((lo, hi)), Want::Duration) => format!(
            "{} to {}",
            format_duration(seconds(lo)),
            format_duration(seconds(hi))
        ),
        (Some((lo, hi)), _) => format!("{lo} to {hi}"),
    }
}

// ---------------------------------------------------------------------------------------
// Showing values as TOML text, for the showers.

pub(crate) fn quoted(s: &str) -> Option<String> {
    Some(toml::Value::String(s.to_string()).to_string())
}

pub(crate) fn quoted_opt(s: &Option<String>) -> Option<String> {
    s.as_deref().and_then(quoted)
}

pub(crate) fn number(n: impl ToString) -> Option<String> {
    Some(n.to_string())
}

pub(crate) fn duration(d: Micros) -> Option<String> {
    quoted(&format_duration(d))
}

pub(crate) fn list<S: AsRef<str>>(items: &[S]) -> Option<String> {
    let quoted: Vec<String> = items.iter().filter_map(|s| quoted(s.as_ref())).collect();
    Some(format!("[{}]", quoted.join(", ")))
}

pub(crate) fn path(p: &Path) -> Option<String> {
    quoted(&p.display().to_string())
}
