//! Reading a settings file: parsed once with spans (`toml::de::DeTable`), so every
//! error names the exact line of its key, and checked against the key tables; every
//! problem in the file is reported, not only the first.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::gpio::{self, PIN_KEYS, RawPin};
use super::key::{self, Place, Section};
use super::{Origin, SECTIONS, Settings};
use crate::config::error::{ConfigError, ConfigErrors, Lines};
use crate::config::expect::{Want, mismatch};
use crate::config::spec::Spec;
use crate::config::suggest;

/// Apply the file's keys over `settings` (which holds the defaults).
pub(crate) fn apply(settings: &mut Settings, path: &Path, text: &str) -> Result<(), ConfigErrors> {
    let mut reader = Reader {
        file: path.display().to_string(),
        path,
        lines: Lines::new(text),
        errors: Vec::new(),
    };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // What the parser recovered is a guess; checking its keys would add noise.
        for e in &syntax {
            let line = e.span().map(|r| reader.lines.line(r.start));
            reader.errors.push(
                ConfigError::new(&reader.file, line, e.message().trim()).with_hint(
                    "sections are [name] lines, keys are `key = value`, text goes in quotes",
                ),
            );
        }
        return Err(ConfigErrors(reader.errors));
    }
    let base = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    let place = Place { base };
    for (name, value) in doc.get_ref() {
        reader.section(settings, &place, name.get_ref(), name.span(), value);
    }
    let mut errors = reader.errors;
    if errors.is_empty() {
        Ok(())
    } else {
        errors.sort_by_key(|e| e.line);
        Err(ConfigErrors(errors))
    }
}

struct Reader<'a> {
    file: String,
    path: &'a Path,
    lines: Lines,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        self.lines.line(span.start)
    }

    fn error(&mut self, span: Range<usize>, message: String, hint: Option<String>) {
        let mut e = ConfigError::new(&self.file, Some(self.line(span)), message);
        e.hint = hint;
        self.errors.push(e);
    }

    fn section(
        &mut self,
        settings: &mut Settings,
        place: &Place,
        name: &str,
        span: Range<usize>,
        value: &toml::Spanned<DeValue>,
    ) {
        let Some(section) = SECTIONS.iter().find(|s| s.name == name) else {
            // A key above every section is usually one that lost its [section] line.
            let home: Vec<&str> = SECTIONS
                .iter()
                .filter(|s| s.key(name).is_some())
                .map(|s| s.name)
                .collect();
            let (message, hint) = match (value.get_ref(), home.first()) {
                (DeValue::Table(_), _) | (_, None) => (
                    format!("unknown section [{name}]"),
                    suggest::hint(name, "sections", &section_names()),
                ),
                (_, Some(s)) => (
                    format!("`{name}` is outside any section"),
                    format!("put it under [{s}]"),
                ),
            };
            self.error(span, message, Some(hint));
            return;
        };
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                span,
                format!("{name} is a section, not a value"),
                Some(format!(
                    "write [{name}] on its own line and its keys below it"
                )),
            );
            return;
        };
        for (key, value) in table {
            self.key(settings, place, section, key.get_ref(), key.span(), value);
        }
    }

    fn key(
        &mut self,
        settings: &mut Settings,
        place: &Place,
        section: &Section,
        name: &str,
        span: Range<usize>,
        value: &toml::Spanned<DeValue>,
    ) {
        let Some(k) = section.key(name) else {
            self.error(
                span,
                format!("unknown key `{name}` in [{}]", section.name),
                Some(suggest::hint(name, "keys here", &section.key_names())),
            );
            return;
        };
        let line = self.line(span.clone());
        let result = if k.spec.want == Want::Tables {
            self.pins(settings, &k.spec, value.get_ref())
        } else {
            key::from_file(k, value.get_ref()).and_then(|v| (k.set)(settings, v, place))
        };
        match result {
            Ok(()) => settings.set_origin(
                section.name,
                name,
                Origin::File {
                    path: self.path.to_path_buf(),
                    line,
                },
            ),
            // An empty message: already reported, each problem at its own line.
            Err((message, _)) if message.is_empty() => {}
            Err((message, hint)) => self.error(span, message, hint),
        }
    }

    /// `[[gpio.pins]]`: each table's keys checked against `PIN_KEYS`, then each pin
    /// against the ones before it. Errors about one pin are reported here (at their own
    /// lines); the `Err` is only for `pins` not being tables at all.
    fn pins(
        &mut self,
        settings: &mut Settings,
        spec: &Spec,
        value: &DeValue,
    ) -> Result<(), key::Problem> {
        let not_tables = || {
            let (m, h) = mismatch(spec.want, &key::plain(value));
            (
                format!("{}: {m}", spec.name),
                Some(h.unwrap_or_else(|| {
                    "write each pin as its own [[gpio.pins]] table (see config/smollama.toml)"
                        .into()
                })),
            )
        };
        let DeValue::Array(items) = value else {
            return Err(not_tables());
        };
        let mut pins = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            let DeValue::Table(table) = item.get_ref() else {
                return Err(not_tables());
            };
            let mut raw = RawPin {
                at: Some(self.line(item.span())),
                pin: None,
                name: None,
                mode: None,
                pull: None,
                initial: None,
            };
            let mut pin_ok = true;
            for (k, v) in table {
                let (name, span) = (k.get_ref(), k.span());
                let Some(spec) = PIN_KEYS.iter().find(|s| s.name == name.as_ref()) else {
                    let names: Vec<&str> = PIN_KEYS.iter().map(|s| s.name).collect();
                    self.error(
                        span,
                        format!("unknown key `{name}` in [[gpio.pins]]"),
                        Some(suggest::hint(name, "keys here", &names)),
                    );
                    pin_ok = false;
                    continue;
                };
                // The pin number's range has its own message (below), naming BCM numbers.
                let unranged = Spec {
                    range: None,
                    ..*spec
                };
                let at = Some(self.line(span.clone()));
                match key::typed(&unranged, false, v.get_ref()) {
                    Ok(key::Val::Int(i)) => raw.pin = Some((i, at)),
                    Ok(key::Val::Bool(b)) => raw.initial = Some((b, at)),
                    Ok(key::Val::Text(t)) => {
                        let slot = match spec.name {
                            "name" => &mut raw.name,
                            "mode" => &mut raw.mode,
                            _ => &mut raw.pull,
                        };
                        *slot = Some((t, at));
                    }
                    Ok(_) => {}
                    Err((m, h)) => {
                        self.error(span, m, h);
                        pin_ok = false;
                    }
                }
            }
            if !pin_ok {
                ok = false;
                continue;
            }
            match gpio::pin(raw, &pins) {
                Ok(p) => pins.push(p),
                Err((at, m, h)) => {
                    let mut e = ConfigError::new(&self.file, at, m);
                    e.hint = Some(h);
                    self.errors.push(e);
                    ok = false;
                }
            }
        }
        settings.gpio.pins = pins;
        if ok {
            Ok(())
        } else {
            Err((String::new(), None))
        }
    }
}

pub(crate) fn section_names() -> Vec<&'static str> {
    SECTIONS.iter().map(|s| s.name).collect()
}
