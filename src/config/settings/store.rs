//! `[store]`: the LMDB store's size, and when new readings are folded into the
//! per-source table.

use super::key::{Key, Section, duration, number, problem_hint};
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::Micros;

#[derive(Clone, Debug, PartialEq)]
pub struct StoreSettings {
    /// LMDB map size in MiB (the most the store may grow to). Default 256.
    pub map_size_mb: u64,
    /// Fold the head once it holds this many readings. Default 32768.
    pub head_rows: u64,
    /// Fold the head this long after the last fold, if it holds any. Default 5 min.
    pub fold_every: Micros,
}

pub(crate) const SECTION: Section = Section {
    name: "store",
    doc: "",
    keys: &[
        Key::new(
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
        ),
        Key::new(
            Spec {
                range: Some((256.0, 1_048_576.0)),
                default: "32768",
                doc: "New readings go to a small time-ordered table (the head), so a commit \
                      writes a few pages however many sources it holds; once the head holds \
                      this many readings they are folded into the per-source table. Larger: \
                      fewer flash writes, slower history queries (each scans the head).",
                hint: "readings; about 32 bytes each on disk",
                ..Spec::new("head_rows", Want::WholeNumber)
            },
            |s, v, _| {
                s.store.head_rows = v.int()? as u64;
                Ok(())
            },
            |s| number(s.store.head_rows),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 86400.0)),
                default: "\"5m\"",
                doc: "Fold the head this long after the last fold even if it holds fewer \
                      than head_rows readings (checked when readings are written).",
                ..Spec::new("fold_every", Want::Duration)
            },
            |s, v, _| {
                s.store.fold_every = v.dur()?;
                Ok(())
            },
            |s| duration(s.store.fold_every),
        ),
    ],
};
