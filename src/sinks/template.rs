//! What a display sink shows: a line of text with readings in it, such as
//! `"CPU {system:cpu_temp|.1}C"`. A placeholder is a full source id, optionally followed
//! by `|.N` for N decimals; a source with no reading yet shows `-`. Parsed once at
//! pipeline load (errors name the template), rendered into a reused buffer.

use std::fmt::Write as _;

use crate::graph::Value;

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Value { id: String, decimals: Option<u8> },
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parse `text`: `{id}` and `{id|.N}` (N up to 6) placeholders, `{{` and `}}` for
    /// braces. An error says what is wrong and how to write it.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => inner.push(c),
                            None => {
                                return Err(format!(
                                    "template \"{text}\" has a '{{' without its '}}' (write {{{{ for a brace)"
                                ));
                            }
                        }
                    }
                    let (id, format) = match inner.split_once('|') {
                        Some((id, f)) => (id.trim(), Some(f.trim())),
                        None => (inner.trim(), None),
                    };
                    if id.is_empty() || !id.contains(':') {
                        return Err(format!(
                            "template \"{text}\": '{{{inner}}}' is not a source id; write the full id, such as {{system:cpu_temp}}"
                        ));
                    }
                    let decimals = match format {
                        None => None,
                        Some(f) => match f.strip_prefix('.').and_then(|n| n.parse::<u8>().ok()) {
                            Some(n) if n <= 6 => Some(n),
                            _ => {
                                return Err(format!(
                                    "template \"{text}\": '|{f}' is not a format; write |.N for N decimals (0 to 6), such as {{{id}|.1}}"
                                ));
                            }
                        },
                    };
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Value {
                        id: id.to_string(),
                        decimals,
                    });
                }
                '}' => {
                    return Err(format!(
                        "template \"{text}\" has a '}}' without its '{{' (write }}}} for a brace)"
                    ));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// The source ids it shows, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Value { id, .. } => Some(id.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Write the line into `out` (cleared first), taking each id's value from `value`.
    pub fn render(&self, value: impl Fn(&str) -> Option<Value>, out: &mut String) {
        out.clear();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Value { id, decimals } => match (value(id), decimals) {
                    (None, _) => out.push('-'),
                    (Some(Value::Number(x)), Some(d)) => {
                        let _ = write!(out, "{x:.*}", *d as usize);
                    }
                    (Some(Value::Number(x)), None) => {
                        let _ = write!(out, "{}", crate::graph::shown::Approx(x));
                    }
                    (Some(Value::Bool(b)), _) => out.push_str(if b { "on" } else { "off" }),
                    (Some(Value::Text(t)), _) => out.push_str(t.as_str()),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_values_with_their_format_and_a_dash_before_the_first() {
        let t = Template::parse("CPU {system:cpu_temp|.1}C {{x}} {gpio:17}").unwrap();
        assert_eq!(t.ids().collect::<Vec<_>>(), ["system:cpu_temp", "gpio:17"]);
        let mut out = String::new();
        t.render(|_| None, &mut out);
        assert_eq!(out, "CPU -C {x} -");
        t.render(
            |id| match id {
                "system:cpu_temp" => Some(Value::Number(48.25)),
                _ => Some(Value::Bool(true)),
            },
            &mut out,
        );
        assert_eq!(out, "CPU 48.2C {x} on");
        let t = Template::parse("{bme280:pressure}").unwrap();
        t.render(|_| Some(Value::Number(1013.2500001)), &mut out);
        assert_eq!(out, "1013.25");
    }

    #[test]
    fn bad_templates_say_how_to_write_them() {
        for (bad, says) in [
            ("T {system:cpu_temp", "without its '}'"),
            ("T }", "without its '{'"),
            ("{cpu_temp}", "full id"),
            ("{system:cpu_temp|%.1f}", "|.N"),
            ("{system:cpu_temp|.9}", "0 to 6"),
        ] {
            let e = Template::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
