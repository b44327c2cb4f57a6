//! `[plugins]`: where external plugins are declared (one manifest per file).

use std::path::PathBuf;

use super::key::{Key, Section, path, problem_hint};
use crate::config::expect::Want;
use crate::config::spec::Spec;

#[derive(Clone, Debug, PartialEq)]
pub struct PluginsSettings {
    /// The directory of plugin manifests (`*.toml`, one plugin each). Missing: none.
    pub dir: PathBuf,
}

pub(crate) const SECTION: Section = Section {
    name: "plugins",
    doc: "",
    keys: &[Key::new(
        Spec {
            default: "\"/etc/smollama/plugins.d\"",
            doc: "Directory of plugin manifests: each *.toml file declares one external plugin (an exec tool today, see docs/plugins.md). A missing directory means no external plugins; an invalid manifest is reported (smollama plugins check) and skipped at start.",
            hint: "a directory such as \"/etc/smollama/plugins.d\"",
            ..Spec::new("dir", Want::Text)
        },
        |s, v, place| {
            let v = v.text()?;
            if v.trim().is_empty() {
                return Err(problem_hint(
                    "plugins dir is empty",
                    "leave it out for /etc/smollama/plugins.d, or give a directory",
                ));
            }
            s.plugins.dir = place.resolve(v);
            Ok(())
        },
        |s| path(&s.plugins.dir),
    )],
};
