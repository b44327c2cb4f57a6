//! `[pipeline]`: which pipeline files make the graph.

use std::path::PathBuf;

use super::key::{Key, Section, list, problem_hint};
use crate::config::expect::Want;
use crate::config::spec::Spec;

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineSettings {
    /// Pipeline files to run together. Empty: the built-in default pipeline.
    pub files: Vec<PathBuf>,
}

pub(crate) const SECTION: Section = Section {
    name: "pipeline",
    doc: "",
    keys: &[Key::new(
        Spec {
            default: "[]",
            doc: "Pipeline files to run together as one graph (names unique across files, `from` may name a node in another file). Empty: the built-in default pipeline (pipelines/default.toml). In the environment: comma-separated.",
            ..Spec::new("files", Want::TextList)
        },
        |s, v, place| {
            let mut files = Vec::new();
            for f in v.list()? {
                if f.trim().is_empty() {
                    return Err(problem_hint(
                        "an empty pipeline file name",
                        "remove the empty entry; an empty list runs the built-in default pipeline",
                    ));
                }
                let p = place.resolve(f);
                if files.contains(&p) {
                    return Err(problem_hint(
                        format!("pipeline file {} is listed twice", p.display()),
                        "list each file once",
                    ));
                }
                files.push(p);
            }
            s.pipeline.files = files;
            Ok(())
        },
        |s| {
            let shown: Vec<String> = s
                .pipeline
                .files
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            list(&shown)
        },
    )],
};
