//! `[store]`: the LMDB store's size.

use super::key::{Key, Section, number, problem_hint};
use crate::config::expect::Want;
use crate::config::spec::Spec;

#[derive(Clone, Debug, PartialEq)]
pub struct StoreSettings {
    /// LMDB map size in MiB (the most the store may grow to). Default 256.
    pub map_size_mb: u64,
}

pub(crate) const SECTION: Section = Section {
    name: "store",
    doc: "",
    keys: &[Key::new(
        Spec {
            range: Some((1.0, 65536.0)),
            default: "256",
            doc: "Most the store may grow to, in MiB (at most 2048 on 32-bit systems).",
            hint: "MiB; the default 256 holds months of readings",
            ..Spec::new("map_size_mb", Want::WholeNumber)
        },
        |s, v, _| {
            let v = v.int()?;
            if cfg!(target_pointer_width = "32") && v > 2048 {
                return Err(problem_hint(
                    format!("map_size_mb = {v} is too large for this 32-bit system"),
                    "a 32-bit process cannot map more than about 2 GiB; use 2048 or less",
                ));
            }
            s.store.map_size_mb = v as u64;
            Ok(())
        },
        |s| number(s.store.map_size_mb),
    )],
};
