//! Reading a node's parameters: the context a kind's `parse` gets (`Reader`), what
//! reaches a stage (`Reach`, for per-source type checks) and the value checks kinds share
//! (numbers, durations, ranges), all with messages in plain words.

use toml::Value;

use super::{Flow, Kind};
use crate::config::Settings;
use crate::config::duration::parse_duration;
use crate::config::expect::{Want, found, mismatch};
use crate::config::suggest;
use crate::graph::{Micros, ValueKind};
use crate::stages::PerSource;

/// A problem with a value: message and optional hint.
pub type Problem = (String, Option<String>);

/// One parameter as written: key, the line of the key, the value.
#[derive(Clone, Debug)]
pub struct RawParam {
    pub key: String,
    pub line: usize,
    pub value: Value,
}

/// What reaches a stage: full source ids with kinds, and whether sources whose ids are
/// known only later do (gpio: boolean; mqtt: anything).
#[derive(Default, Clone, Debug)]
pub struct Reach {
    pub ids: Vec<(String, ValueKind)>,
    /// A source of boolean readings reaches whose pins may be configured later, so it
    /// counts as boolean even with none configured.
    pub open_bool: bool,
    /// A source reaches whose ids and kinds are known only at run time, so per-source
    /// keys and kinds cannot be checked against it.
    pub remote: bool,
}

impl Reach {
    pub fn has(&self, a: Flow) -> bool {
        match a {
            _ if self.remote => true,
            Flow::Bool if self.open_bool => true,
            _ => self.ids.iter().any(|(_, k)| a.admits(*k)),
        }
    }

    pub fn list(&self) -> String {
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

/// A board interface a node needs enabled (in `config.txt`), so `setup-pi.sh` enables
/// only what the pipeline uses: `smollama pipeline needs` prints one line each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// The I2C bus on header pins 3/5 (`dtparam=i2c_arm=on`, and the `i2c-dev` module).
    I2c,
    /// SPI0 (`dtparam=spi=on`).
    Spi,
    /// The kernel's 1-wire master on a pin (`dtoverlay=w1-gpio,gpiopin=N`).
    OneWire { pin: u8 },
    /// The kernel's DHT11/DHT22 driver on a pin (`dtoverlay=dht11,gpiopin=N`).
    Dht { pin: u8 },
}

impl Need {
    /// The line `smollama pipeline needs` prints: `i2c`, `spi`, or the `config.txt`
    /// overlay line.
    pub fn line(&self) -> String {
        match self {
            Need::I2c => "i2c".into(),
            Need::Spi => "spi".into(),
            Need::OneWire { pin } => format!("dtoverlay=w1-gpio,gpiopin={pin}"),
            Need::Dht { pin } => format!("dtoverlay=dht11,gpiopin={pin}"),
        }
    }
}

/// What a kind's `parse` works with: its node's parameters (only keys the kind declares;
/// the loader reports the others), the graph around it and the settings. Problems are
/// collected, not returned, so one pass reports every error of the node.
pub struct Reader<'a> {
    pub name: &'a str,
    pub kind: &'static Kind,
    /// The line of the node's `[[...]]` header, for problems about the node as a whole.
    pub line: usize,
    pub params: &'a [RawParam],
    pub reach: &'a Reach,
    pub settings: &'a Settings,
    /// (line, message, hint).
    pub problems: Vec<(usize, String, Option<String>)>,
    /// The board interfaces this node needs (`need`).
    pub needs: Vec<Need>,
}

impl<'a> Reader<'a> {
    fn role(&self) -> &'static str {
        self.kind.role.as_str()
    }

    /// Say that this node needs `need` enabled on the board (an I2C sensor: `Need::I2c`).
    pub fn need(&mut self, need: Need) {
        if !self.needs.contains(&need) {
            self.needs.push(need);
        }
    }

    /// The parameters given, in file order.
    pub fn params(&self) -> &'a [RawParam] {
        self.params
    }

    pub fn get(&self, key: &str) -> Option<&'a RawParam> {
        self.params.iter().find(|p| p.key == key)
    }

    /// "`key` of stage 'quiet': message".
    pub fn bad(&mut self, p: &RawParam, (m, h): Problem) {
        let msg = format!("{} of {} '{}': {m}", p.key, self.role(), self.name);
        self.problems.push((p.line, msg, h));
    }

    /// A problem about the node, said as is.
    pub fn bad_at(&mut self, line: usize, msg: String, hint: Option<String>) {
        self.problems.push((line, msg, hint));
    }

    /// Whether no problem was found so far.
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Parse a per-source parameter: a single value for every source, or a table from
    /// source ids to values. Checks the keys and, with the kind's declaration of what the
    /// parameter applies to, the kinds of the sources they name. `None` after a problem.
    pub fn per_source<T>(
        &mut self,
        p: &RawParam,
        one: impl Fn(&Value) -> Result<T, Problem>,
    ) -> Option<PerSource<T>> {
        let applies = self.kind.param(&p.key).map_or(Flow::Any, |d| d.applies);
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
                if let Some((id, kind)) = matched.iter().find(|(_, kind)| !applies.admits(*kind)) {
                    problems.push((
                        format!(
                            "{} applies to {} sources; {id} is {}",
                            p.key,
                            applies.adjective(),
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
                    Flow::Number => "numeric",
                    _ => "boolean",
                };
                problems.push((
                    format!(
                        "{} applies to {what} sources, and no {what} source reaches {} '{}' (sources here: {})",
                        p.key,
                        self.role(),
                        self.name,
                        self.reach.list()
                    ),
                    Some(format!("remove {} from this {}", p.key, self.role())),
                ));
            }
            match one(&p.value) {
                Ok(v) => out.default = Some(v),
                Err(e) => problems.push(wrap(e)),
            }
        }
        if problems.is_empty() {
            return Some(out);
        }
        for (m, h) in problems {
            let msg = format!("{} '{}': {m}", self.role(), self.name);
            self.problems.push((p.line, msg, h));
        }
        None
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
                "no source reaching {} '{}' is called '{k}'; sources here: {}",
                self.role(),
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

fn kind_phrase(k: ValueKind) -> &'static str {
    match k {
        ValueKind::Number => "a number",
        ValueKind::Bool => "a boolean",
        ValueKind::Text => "text",
    }
}

/// What was written, in plain words (`the text "x"`, `the number 5`).
pub fn describe(v: &Value) -> String {
    found(v)
}

pub fn as_num(v: &Value) -> Result<f64, Problem> {
    match v {
        Value::Integer(i) => Ok(*i as f64),
        Value::Float(f) if f.is_finite() => Ok(*f),
        Value::Float(_) => Err(("expected a finite number".into(), None)),
        other => Err(mismatch(Want::Number, other)),
    }
}

pub fn as_int(v: &Value) -> Result<i64, Problem> {
    match v {
        Value::Integer(i) => Ok(*i),
        other => Err(mismatch(Want::WholeNumber, other)),
    }
}

pub fn as_dur(v: &Value) -> Result<Micros, Problem> {
    match v {
        Value::String(s) => parse_duration(s).map_err(|e| (e, None)),
        other => Err(mismatch(Want::Duration, other)),
    }
}

pub fn positive_dur(v: &Value) -> Result<Micros, Problem> {
    let d = as_dur(v)?;
    if d <= 0 {
        return Err((
            "a duration of zero is not allowed here".into(),
            Some("leave the parameter out to turn it off".into()),
        ));
    }
    Ok(d)
}

pub fn non_negative(v: &Value) -> Result<f64, Problem> {
    let n = as_num(v)?;
    if n < 0.0 {
        return Err((format!("{n} is negative; it must be 0 or more"), None));
    }
    Ok(n)
}

pub fn positive(v: &Value) -> Result<f64, Problem> {
    let n = as_num(v)?;
    if n <= 0.0 {
        return Err((format!("{n} must be greater than 0"), None));
    }
    Ok(n)
}

/// A text value, or the plain-words mismatch.
pub fn as_text(v: &Value) -> Result<&str, Problem> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(mismatch(Want::Text, other)),
    }
}

/// A whole number within the parameter's declared range, or "N is out of range" with
/// the spec's hint.
pub fn int_in(v: &Value, spec: &crate::config::spec::Spec) -> Result<i64, Problem> {
    let i = as_int(v)?;
    match spec.range {
        Some((lo, hi)) if (i as f64) < lo || (i as f64) > hi => Err((
            format!("{i} is out of range"),
            (!spec.hint.is_empty()).then(|| spec.hint.to_string()),
        )),
        _ => Ok(i),
    }
}

pub fn range_pair(v: &Value) -> Result<(f64, f64), Problem> {
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

/// A BCM pin number (0 to 27) for a device's own line, refused when `[gpio] pins` has it
/// (those are shared with the API and the agent; a device owns its pins alone).
pub fn device_pin(v: &Value, settings: &Settings) -> Result<u8, Problem> {
    let i = as_int(v)?;
    if !(0..=27).contains(&i) {
        return Err((
            format!("{i} is not a GPIO pin"),
            Some(
                "use a BCM number from 0 to 27 (BCM numbering, not the physical header position)"
                    .into(),
            ),
        ));
    }
    let pin = i as u8;
    if let Some(c) = settings.gpio.pins.iter().find(|c| c.pin == pin) {
        return Err((
            format!("pin {pin} is one of [gpio] pins ('{}')", c.name),
            Some("a device owns its pins: remove it from [[gpio.pins]] or wire the device to another pin".into()),
        ));
    }
    Ok(pin)
}
