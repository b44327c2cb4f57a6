//! One node of a multi-node test (sync, the cluster view, bridged brokers): its own name,
//! HTTP port, pipeline, broker section, the Ollama stand-in's port and a `[sync]` fast
//! enough for a test.

use std::path::{Path, PathBuf};

use super::TOKEN;

/// The chat and embedding models the stand-in serves to every node.
pub const MODEL: &str = "gemma4:e2b";
pub const EMBED: &str = "all-minilm:l6-v2";

/// Writes `dir/pipeline.toml` and `dir/smollama.toml`; `mqtt` is a whole `[mqtt]` section
/// (or empty for none), `sync` more `[sync]` lines after `publish_interval = "200ms"`.
pub fn node_config(
    dir: &Path,
    name: &str,
    port: u16,
    pipeline: &str,
    mqtt: &str,
    ollama: u16,
    sync: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let pipe = dir.join("pipeline.toml");
    std::fs::write(&pipe, pipeline).unwrap();
    let cfg = dir.join("smollama.toml");
    std::fs::write(
        &cfg,
        format!(
            "[node]\nname = \"{name}\"\ndata_dir = \"{data}\"\n\n\
             [http]\nbind = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n\n\
             [gpio]\nbackend = \"mock\"\n\n\
             [pipeline]\nfiles = [\"{pipe}\"]\n\n\
             {mqtt}\n\
             [ollama]\nhost = \"127.0.0.1\"\nport = {ollama}\nmodel = \"{MODEL}\"\nretries = 0\nconnect_timeout = \"1s\"\n\n\
             [memory]\nembedding_model = \"{EMBED}\"\nobserve = false\n\n\
             [sync]\npublish_interval = \"200ms\"\n{sync}\n",
            data = dir.join("data").display(),
            pipe = pipe.display(),
        ),
    )
    .unwrap();
    cfg
}
