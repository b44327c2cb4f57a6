//! `[log]`: the log level when neither `--log-level` nor `RUST_LOG` says.

use super::key::{Key, Section, problem_hint, quoted_opt};
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::config::suggest;

#[derive(Clone, Debug, PartialEq)]
pub struct LogSettings {
    /// `error|warn|info|debug|trace`; the `--log-level` flag wins, then `RUST_LOG`, then this.
    pub level: Option<String>,
}

const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

pub(crate) const SECTION: Section = Section {
    name: "log",
    doc: "",
    keys: &[Key {
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
    }],
};
