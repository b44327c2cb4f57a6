//! The generated documents stay equal to their generator: `docs/configuration.md` (the
//! key table), `config/smollama.toml` (the documented default file) and `docs/kinds.md`
//! (every built-in kind with its parameters, from the kind descriptors). After changing a
//! key's or a kind's declaration, rewrite them with `BLESS=1 cargo test --test config_docs`.

use std::path::Path;

use smollama::config::settings::render;

fn check_generated(rel: &str, generated: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != generated {
        let first = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or("(length differs)".to_string(), |i| {
                format!("line {}", i + 1)
            });
        panic!(
            "{rel} is not what the key declarations generate (first difference: {first}); \
             rewrite it with `BLESS=1 cargo test --test config_docs`"
        );
    }
}

#[test]
fn configuration_md_is_the_generated_key_table() {
    check_generated("docs/configuration.md", &render::key_table());
}

#[test]
fn shipped_config_is_the_generated_default_file() {
    check_generated("config/smollama.toml", &render::default_file());
}

/// `docs/kinds.md` is what `smollama plugins list` prints for the default build, with no
/// manifests. Builds with other features list other kinds, so only the default build
/// checks it.
#[test]
fn kinds_md_is_the_generated_kind_list() {
    if !cfg!(feature = "agent") || !cfg!(feature = "rpi") || cfg!(feature = "test-kinds") {
        return;
    }
    let doc = format!(
        "# Kinds\n\n\
         Every source, stage, sink and tool kind of the default build, with the parameters\n\
         each takes, as `smollama plugins list` prints them (generated from the kind\n\
         descriptors; `tests/config_docs.rs` checks it). How to use the outside-data kinds\n\
         and write new ones: [plugins.md](plugins.md).\n\n```text\n{}```\n",
        smollama::plugins::list::text(&[])
    );
    check_generated("docs/kinds.md", &doc);
}

#[test]
fn key_table_names_every_key_with_its_env_variable() {
    let table = render::key_table();
    // A few keys of different kinds, each with its type, default, range and variable.
    for row in [
        "| store | `map_size_mb` | whole number | `256` | 1 to 65536 | `SMOLLAMA_STORE_MAP_SIZE_MB` |",
        "| http | `idle_timeout` | duration | `\"30s\"` | 100ms to 1h | `SMOLLAMA_HTTP_IDLE_TIMEOUT` |",
        "| gpio | `backend` | `\"auto\"` \\| `\"mock\"` \\| `\"rppal\"` | `\"auto\"` |  | `SMOLLAMA_GPIO_BACKEND` |",
        "| gpio | `pins` | list of tables | `[]` |  | `SMOLLAMA_GPIO_PINS` |",
        "| memory | `merge_similarity` | number | `0.95` | 0 to 1 | `SMOLLAMA_MEMORY_MERGE_SIMILARITY` |",
    ] {
        assert!(table.contains(row), "missing row start: {row}\n{table}");
    }
}
