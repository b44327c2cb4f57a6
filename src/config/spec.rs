//! One declaration per configurable value, shared by settings keys (`smollama.toml`) and
//! plugin parameters (pipeline files): its name, the kind of value it takes, the range it
//! must lie in, its default as written in TOML, a doc line and a hint. Parsing, environment
//! overrides, `config check`, `config default`, `pipeline check` and the generated key
//! tables in the docs all read these declarations, so a key is described in one place.

use super::expect::Want;

/// What one key or parameter accepts. `const`-constructible, so declarations are static
/// tables with no start-up cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spec {
    /// The key as written in the file (`max_payload_kb`).
    pub name: &'static str,
    /// The kind of value, as a user would say it (errors use its phrase).
    pub want: Want,
    /// Inclusive bounds for numbers (durations in seconds); `None` when any value of the
    /// kind is allowed.
    pub range: Option<(f64, f64)>,
    /// The default exactly as it would be written in TOML (`"\"5m\""`, `"30"`, `"true"`);
    /// empty when the key has no default (required, or unset unless given).
    pub default: &'static str,
    /// One line for the docs and `config default`.
    pub doc: &'static str,
    /// Said after an error about this key, in plain words; empty when the doc line says
    /// enough.
    pub hint: &'static str,
}

impl Spec {
    /// A key of this kind with no range, default, doc or hint yet; fill them in with
    /// struct update syntax: `Spec { range: Some((1.0, 64.0)), ..Spec::new("x", Want::WholeNumber) }`.
    pub const fn new(name: &'static str, want: Want) -> Spec {
        Spec {
            name,
            want,
            range: None,
            default: "",
            doc: "",
            hint: "",
        }
    }
}
