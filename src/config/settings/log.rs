//! `[log]`: the log level when neither `--log-level` nor `RUST_LOG` says, and the line
//! format when `--log-format` does not.

use super::key::{Key, Section, problem_hint, quoted, quoted_opt};
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::config::suggest;

#[derive(Clone, Debug, PartialEq)]
pub struct LogSettings {
    /// `error|warn|info|debug|trace`; the `--log-level` flag wins, then `RUST_LOG`, then this.
    pub level: Option<String>,
    /// How each line is written; the `--log-format` flag wins.
    pub format: LogFormat,
}

/// How a log line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `journald` under systemd (`JOURNAL_STREAM` set), else `text`.
    Auto,
    /// `2026-12-01T12:00:00.000000Z INFO  message`.
    Text,
    /// `<6>message`: the syslog priority journald reads, no timestamp (journald has one).
    Journald,
    /// One JSON object per line: `ts`, `level`, `target`, `msg`, and `fields`.
    Json,
}

impl LogFormat {
    pub const NAMES: &'static [&'static str] = &["auto", "text", "journald", "json"];

    pub fn parse(v: &str) -> Option<LogFormat> {
        Some(match v.to_ascii_lowercase().as_str() {
            "auto" => LogFormat::Auto,
            "text" => LogFormat::Text,
            "journald" => LogFormat::Journald,
            "json" => LogFormat::Json,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Text => "text",
            LogFormat::Journald => "journald",
            LogFormat::Json => "json",
        }
    }
}

const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

pub(crate) const SECTION: Section = Section {
    name: "log",
    doc: "",
    keys: &[
        Key {
            choices: LEVELS,
            example: "\"info\"",
            ..Key::new(
                Spec {
                    doc: "error, warn, info, debug or trace (any case). The --log-level flag wins, then RUST_LOG, then this; unset (the default), it is info.",
                    ..Spec::new("level", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    let l = v.to_ascii_lowercase();
                    if !LEVELS.contains(&l.as_str()) {
                        return Err(problem_hint(
                            format!("unknown log level '{v}'"),
                            suggest::hint(&l, "levels", LEVELS),
                        ));
                    }
                    s.log.level = Some(l);
                    Ok(())
                },
                |s| quoted_opt(&s.log.level),
            )
        },
        Key {
            choices: LogFormat::NAMES,
            ..Key::new(
                Spec {
                    default: "\"auto\"",
                    doc: "How lines are written: \"auto\" (journald under systemd, else text), \"text\" (timestamp, level, message), \"journald\" (a syslog priority prefix, so journalctl -p works), \"json\" (one object per line: ts, level, target, msg, fields; for log shippers). The --log-format flag wins.",
                    ..Spec::new("format", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    s.log.format = LogFormat::parse(&v).ok_or_else(|| {
                        problem_hint(
                            format!("unknown log format '{v}'"),
                            suggest::hint(&v.to_ascii_lowercase(), "formats", LogFormat::NAMES),
                        )
                    })?;
                    Ok(())
                },
                |s| quoted(s.log.format.as_str()),
            )
        },
    ],
};
