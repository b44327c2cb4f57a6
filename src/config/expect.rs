//! Type errors in plain words, shared by settings and pipeline files: what a key takes
//! ("a duration such as \"5m\"") and what was written instead ("the number 10"), never
//! the parser's vocabulary ("i64", "a sequence", "must be a string").

use toml::Value;

/// The kind of value a key takes, as a user would say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Duration,
    WholeNumber,
    Number,
    Bool,
    Text,
    TextList,
    /// A list of tables, such as `[[gpio.pins]]`.
    Tables,
}

impl Want {
    /// "a whole number such as 30": what the message says is expected.
    pub fn phrase(self) -> &'static str {
        match self {
            Want::Duration => "a duration such as \"5m\"",
            Want::WholeNumber => "a whole number such as 30",
            Want::Number => "a number such as 0.5",
            Want::Bool => "true or false",
            Want::Text => "text in quotes",
            Want::TextList => "a list of texts in quotes such as [\"a\", \"b\"]",
            Want::Tables => "a list of tables",
        }
    }
}

/// What was written, with the value when it is short: `the text "big"`, `the number 10`.
pub(crate) fn found(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() <= 40 => format!("the text \"{s}\""),
        Value::String(_) => "a long text".into(),
        Value::Integer(i) => format!("the number {i}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "a list".into(),
        Value::Table(_) => "a table".into(),
    }
}

/// "expected X, found Y", and a hint for the usual slips: quotes around a number, a
/// duration without its unit, a single name where a list belongs.
pub(crate) fn mismatch(want: Want, v: &Value) -> (String, Option<String>) {
    let msg = format!("expected {}, found {}", want.phrase(), found(v));
    let hint = match (want, v) {
        (Want::WholeNumber | Want::Number, Value::String(s)) if s.trim().parse::<f64>().is_ok() => {
            Some(format!("write the number without quotes: {}", s.trim()))
        }
        (Want::WholeNumber, Value::Float(f)) => {
            Some(format!("write a whole number, e.g. {}", f.round()))
        }
        (Want::Bool, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some("write true without quotes".into()),
            "false" | "no" | "off" | "0" => Some("write false without quotes".into()),
            _ => Some("write true or false without quotes".into()),
        },
        (Want::Bool, Value::Integer(_)) => Some("write true or false, not a number".into()),
        (Want::Duration, Value::Integer(i)) => {
            Some(format!("write it with a unit in quotes, e.g. \"{i}s\""))
        }
        (Want::Duration, Value::Float(f)) => {
            Some(format!("write it with a unit in quotes, e.g. \"{f}s\""))
        }
        (Want::Duration, _) => {
            Some("write e.g. \"500ms\", \"10s\", \"5m\", \"1h\" or \"7d\"".into())
        }
        (Want::Text, Value::Integer(_) | Value::Float(_) | Value::Boolean(_)) => {
            Some(format!("put it in quotes: \"{v}\""))
        }
        (Want::TextList, Value::String(s)) => Some(format!("write it as a list: [\"{s}\"]")),
        _ => None,
    };
    (msg, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_for_each_kind() {
        let (m, h) = mismatch(Want::Duration, &Value::Integer(10));
        assert_eq!(m, "expected a duration such as \"5m\", found the number 10");
        assert_eq!(
            h.as_deref(),
            Some("write it with a unit in quotes, e.g. \"10s\"")
        );
        let (m, h) = mismatch(Want::WholeNumber, &Value::String("30".into()));
        assert_eq!(
            m,
            "expected a whole number such as 30, found the text \"30\""
        );
        assert_eq!(h.as_deref(), Some("write the number without quotes: 30"));
        let (m, _) = mismatch(Want::Bool, &Value::String("yes".into()));
        assert_eq!(m, "expected true or false, found the text \"yes\"");
        let (m, h) = mismatch(Want::Text, &Value::Integer(5));
        assert_eq!(m, "expected text in quotes, found the number 5");
        assert_eq!(h.as_deref(), Some("put it in quotes: \"5\""));
    }
}
