//! Config errors that point at the spot: `file:line: message` plus a hint.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `environment` / `built-in default pipeline`) the error is in.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigError {
    pub fn new(file: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.into(),
            line,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message)?,
            None => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Validation reports every problem it finds, not only the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// 1-based line number of byte offset `pos` in `text`.
pub fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Where the lines of one text break, found once, so that the line of each key, value and
/// error of a file is a binary search: guarantees `lines.line(pos) == line_of(text, pos)`.
/// Counting the newlines before every key from the start made reading a file quadratic in
/// its size (most of a fuzz run's time on the settings file).
pub(crate) struct Lines {
    /// The byte offset of every `\n`, ascending.
    breaks: Vec<usize>,
}

impl Lines {
    pub(crate) fn new(text: &str) -> Lines {
        let breaks = text
            .bytes()
            .enumerate()
            .filter_map(|(i, b)| (b == b'\n').then_some(i))
            .collect();
        Lines { breaks }
    }

    /// 1-based line number of byte offset `pos`.
    pub(crate) fn line(&self, pos: usize) -> usize {
        self.breaks.partition_point(|&at| at < pos) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_index_agrees_with_counting_at_every_offset() {
        for text in [
            "",
            "a",
            "\n",
            "a = 1\n",
            "\n\n[x]\r\nk = 2\n\nz",
            "é\nü = \"ß\"\n",
        ] {
            let lines = Lines::new(text);
            for pos in 0..=text.len() + 2 {
                assert_eq!(lines.line(pos), line_of(text, pos), "{text:?} at {pos}");
            }
        }
    }
}
