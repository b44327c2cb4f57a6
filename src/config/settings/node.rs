//! `[node]`: this node's name and where its store lives.

use std::path::PathBuf;

use super::key::{Key, Section, path, problem_hint, quoted};
use crate::config::expect::Want;
use crate::config::spec::Spec;

#[derive(Clone, Debug, PartialEq)]
pub struct NodeSettings {
    /// Node name, used in topics and status. Default `smollama-node` (as the original).
    pub name: String,
    /// Where the store lives. Default: `$STATE_DIRECTORY` under systemd, else
    /// `$XDG_DATA_HOME/smollama`, else `~/.local/share/smollama`; empty when none of these
    /// is set (commands that need it then refuse, naming the setting; see `data_dir.rs`).
    pub data_dir: PathBuf,
}

/// Letters, digits, `_` and `-`: what may stand in a topic level or a file name.
pub(crate) fn valid_name_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(crate) const SECTION: Section = Section {
    name: "node",
    doc: "",
    keys: &[
        Key::new(
            Spec {
                default: "\"smollama-node\"",
                doc: "This node's name: 1-64 characters from A-Z a-z 0-9 _ - (it becomes an MQTT topic segment).",
                ..Spec::new("name", Want::Text)
            },
            |s, v, _| {
                let v = v.text()?;
                if v.is_empty() || v.chars().count() > 64 || !valid_name_chars(&v) {
                    return Err(problem_hint(
                        format!("node name '{v}' is not valid"),
                        "use 1 to 64 characters from A-Z a-z 0-9 _ - (the name becomes an MQTT topic segment), e.g. \"greenhouse-pi\"",
                    ));
                }
                s.node.name = v;
                Ok(())
            },
            |s| quoted(&s.node.name),
        ),
        Key {
            example: "\"/var/lib/smollama\"",
            ..Key::new(
                Spec {
                    doc: "Where the store (LMDB) lives. Default: $STATE_DIRECTORY under systemd, else $XDG_DATA_HOME/smollama, else ~/.local/share/smollama; with none of these variables set, set it here (commands that need it refuse otherwise). A directory set here is created if missing, but not its parent (a path on a disk that is not mounted is refused, not created on the SD card). One agent per directory: `smollama run` locks <data_dir>/smollama.lock while it runs. Under the systemd unit only /var/lib/smollama is writable.",
                    hint: "leave it out for the default, or give a directory such as \"/var/lib/smollama\"",
                    ..Spec::new("data_dir", Want::Text)
                },
                |s, v, place| {
                    let v = v.text()?;
                    if v.is_empty() {
                        return Err(problem_hint(
                            "data_dir is empty",
                            "leave it out for the default, or give a directory such as \"/var/lib/smollama\"",
                        ));
                    }
                    s.node.data_dir = place.resolve(v);
                    Ok(())
                },
                |s| {
                    if s.node.data_dir.as_os_str().is_empty() {
                        None
                    } else {
                        path(&s.node.data_dir)
                    }
                },
            )
        },
    ],
};
