//! `[llm]`: which model server the agent asks (Ollama or any OpenAI-compatible one),
//! the OpenAI backend's address, key and timeouts, and the sampling settings both
//! backends send. Ollama's own address and timeouts stay in `[ollama]`.

use std::path::PathBuf;

use super::key::{Key, Section, duration, number, path, problem_hint, quoted};
use super::mqtt::Secret;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::Micros;

/// Which protocol the model server speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// Ollama's `/api/*` (`[ollama]`).
    #[default]
    Ollama,
    /// OpenAI's `/v1/*`: llama-server, llama-cpp-python, LM Studio, vLLM, ...
    OpenAi,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Ollama => "ollama",
            Backend::OpenAi => "openai",
        }
    }
}

/// How an OpenAI-compatible server is asked for a structured (JSON schema) answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Structured {
    /// `{"type":"json_schema","json_schema":{name, schema, strict}}`: OpenAI,
    /// llama.cpp's llama-server, LM Studio, vLLM.
    #[default]
    JsonSchema,
    /// `{"type":"json_object","schema":...}`: llama-cpp-python's server.
    JsonObject,
    /// Not asked for: the prompt asks for JSON and the answer is parsed leniently.
    Off,
}

impl Structured {
    pub fn as_str(self) -> &'static str {
        match self {
            Structured::JsonSchema => "json_schema",
            Structured::JsonObject => "json_object",
            Structured::Off => "off",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LlmSettings {
    pub backend: Backend,
    /// The OpenAI-compatible server, up to and including `/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<Secret>,
    pub api_key_file: Option<PathBuf>,
    pub structured_output: Structured,
    pub connect_timeout: Micros,
    pub read_timeout: Micros,
    pub total_timeout: Micros,
    pub retries: u32,
    /// `auto`, `none`, `required` or a tool's name.
    pub tool_choice: String,
    pub temperature: Option<f64>,
    pub seed: Option<i64>,
    pub num_ctx: Option<u32>,
    pub max_tokens: Option<u32>,
}

impl LlmSettings {
    /// The API key: `api_key` (from the file or `SMOLLAMA_LLM_API_KEY`), else the first
    /// line of `api_key_file`. An unreadable key file is logged by its path only.
    pub fn api_key(&self) -> Option<Secret> {
        if let Some(k) = &self.api_key {
            return Some(k.clone());
        }
        let p = self.api_key_file.as_ref()?;
        match std::fs::read_to_string(p) {
            Ok(t) => {
                let k = t.lines().next().unwrap_or("").trim().to_string();
                (!k.is_empty()).then_some(Secret(k))
            }
            Err(e) => {
                log::warn!("llm: cannot read api_key_file {}: {e}", p.display());
                None
            }
        }
    }
}

fn opt_number<T: ToString>(v: Option<T>) -> Option<String> {
    v.and_then(|n| number(n))
}

pub(crate) const SECTION: Section = Section {
    name: "llm",
    doc: "Which model server answers: Ollama ([ollama] says where) or any OpenAI-compatible server (llama.cpp's llama-server, llama-cpp-python, LM Studio, vLLM; base_url below). The sampling settings go to either. See docs/llm.md.",
    keys: &[
        Key {
            choices: &["ollama", "openai"],
            ..Key::new(
                Spec {
                    default: "\"ollama\"",
                    doc: "ollama: the Ollama API at [ollama] host:port; openai: the OpenAI /v1 API at base_url.",
                    ..Spec::new("backend", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    s.llm.backend = match v.trim() {
                        "ollama" => Backend::Ollama,
                        "openai" => Backend::OpenAi,
                        _ => {
                            return Err(problem_hint(
                                format!("unknown backend '{v}'"),
                                "ollama (the default), or openai for llama-server, llama-cpp-python, LM Studio and other OpenAI-compatible servers",
                            ));
                        }
                    };
                    Ok(())
                },
                |s| quoted(s.llm.backend.as_str()),
            )
        },
        Key::new(
            Spec {
                default: "\"http://localhost:8080/v1\"",
                doc: "The OpenAI-compatible server, up to and including /v1 (llama-server: http://host:8080/v1, LM Studio: http://host:1234/v1).",
                ..Spec::new("base_url", Want::Text)
            },
            |s, v, _| {
                let v = v.text()?;
                let t = v.trim().trim_end_matches('/');
                if !(t.starts_with("http://") || t.starts_with("https://")) {
                    return Err(problem_hint(
                        format!("base_url = '{v}' is not an http:// URL"),
                        "e.g. base_url = \"http://192.168.1.20:8080/v1\"",
                    ));
                }
                if t.starts_with("https://") {
                    return Err(problem_hint(
                        "base_url is https://, and this smollama speaks plain HTTP to model servers",
                        "use the server's http:// address on the LAN, or a local TLS-terminating proxy",
                    ));
                }
                s.llm.base_url = t.to_string();
                Ok(())
            },
            |s| quoted(&s.llm.base_url),
        ),
        Key::new(
            Spec {
                default: "\"\"",
                doc: "The OpenAI backend's chat model, as GET /v1/models lists it (required with backend = \"openai\"). Embeddings use [memory] embedding_model on the same server.",
                ..Spec::new("model", Want::Text)
            },
            |s, v, _| {
                s.llm.model = v.text()?.trim().to_string();
                Ok(())
            },
            |s| quoted(&s.llm.model),
        ),
        Key {
            example: "\"...\"",
            secret: true,
            ..Key::new(
                Spec {
                    doc: "API key sent as a bearer token (never logged, shown as *** by `smollama config check`); or set SMOLLAMA_LLM_API_KEY, or api_key_file.",
                    ..Spec::new("api_key", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    s.llm.api_key = (!v.is_empty()).then_some(Secret(v));
                    Ok(())
                },
                |s| s.llm.api_key.as_ref().and_then(|p| quoted(&p.0)),
            )
        },
        Key {
            example: "\"/etc/smollama/llm.key\"",
            ..Key::new(
                Spec {
                    doc: "A file whose first line is the API key (read when the client starts; api_key wins when both are set).",
                    ..Spec::new("api_key_file", Want::Text)
                },
                |s, v, place| {
                    let v = v.text()?;
                    s.llm.api_key_file = (!v.is_empty()).then(|| place.resolve(v));
                    Ok(())
                },
                |s| s.llm.api_key_file.as_deref().and_then(path),
            )
        },
        Key {
            choices: &["json_schema", "json_object", "off"],
            ..Key::new(
                Spec {
                    default: "\"json_schema\"",
                    doc: "How the observation loop asks an OpenAI-compatible server for schema-shaped JSON: json_schema (OpenAI, llama-server, LM Studio, vLLM), json_object (llama-cpp-python), off (the answer's JSON is parsed leniently).",
                    ..Spec::new("structured_output", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    s.llm.structured_output = match v.trim() {
                        "json_schema" => Structured::JsonSchema,
                        "json_object" => Structured::JsonObject,
                        "off" => Structured::Off,
                        _ => {
                            return Err(problem_hint(
                                format!("unknown structured_output '{v}'"),
                                "json_schema, json_object (llama-cpp-python) or off",
                            ));
                        }
                    };
                    Ok(())
                },
                |s| quoted(s.llm.structured_output.as_str()),
            )
        },
        Key::new(
            Spec {
                range: Some((0.1, 600.0)),
                default: "\"5s\"",
                doc: "OpenAI backend: longest wait for the connection to the server.",
                ..Spec::new("connect_timeout", Want::Duration)
            },
            |s, v, _| {
                s.llm.connect_timeout = v.dur()?;
                Ok(())
            },
            |s| duration(s.llm.connect_timeout),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 3600.0)),
                default: "\"120s\"",
                doc: "OpenAI backend: longest wait for the next bytes of an answer.",
                ..Spec::new("read_timeout", Want::Duration)
            },
            |s, v, _| {
                s.llm.read_timeout = v.dur()?;
                Ok(())
            },
            |s| duration(s.llm.read_timeout),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 7200.0)),
                default: "\"300s\"",
                doc: "OpenAI backend: longest a whole call may take, retries included.",
                ..Spec::new("total_timeout", Want::Duration)
            },
            |s, v, _| {
                s.llm.total_timeout = v.dur()?;
                Ok(())
            },
            |s| duration(s.llm.total_timeout),
        ),
        Key::new(
            Spec {
                range: Some((0.0, 20.0)),
                default: "3",
                doc: "OpenAI backend: retries on connection errors, 429 and 5xx, with capped exponential backoff.",
                hint: "e.g. 3",
                ..Spec::new("retries", Want::WholeNumber)
            },
            |s, v, _| {
                s.llm.retries = v.int()? as u32;
                Ok(())
            },
            |s| number(s.llm.retries),
        ),
        Key::new(
            Spec {
                default: "\"auto\"",
                doc: "Which tool the model must call first: auto (it decides), none (no tools offered), required (some tool), or a tool's name. A forced choice holds until a tool has answered, then the model may answer. Ollama has no tool_choice: none sends no tools, a name sends only that tool.",
                ..Spec::new("tool_choice", Want::Text)
            },
            |s, v, _| {
                let v = v.text()?;
                let t = v.trim();
                if t.is_empty() || t.contains(char::is_whitespace) {
                    return Err(problem_hint(
                        format!("tool_choice = '{v}' is not auto, none, required or a tool name"),
                        "e.g. tool_choice = \"auto\" or tool_choice = \"read_sensor\"",
                    ));
                }
                s.llm.tool_choice = t.to_string();
                Ok(())
            },
            |s| quoted(&s.llm.tool_choice),
        ),
        Key {
            example: "0",
            ..Key::new(
                Spec {
                    range: Some((0.0, 2.0)),
                    doc: "Sampling temperature; unset: the server's default. 0 makes a small model deterministic (with seed).",
                    ..Spec::new("temperature", Want::Number)
                },
                |s, v, _| {
                    s.llm.temperature = Some(v.num()?);
                    Ok(())
                },
                |s| opt_number(s.llm.temperature),
            )
        },
        Key {
            example: "42",
            ..Key::new(
                Spec {
                    range: Some((0.0, 4_294_967_295.0)),
                    doc: "Sampling seed; unset: the server's default.",
                    ..Spec::new("seed", Want::WholeNumber)
                },
                |s, v, _| {
                    s.llm.seed = Some(v.int()?);
                    Ok(())
                },
                |s| opt_number(s.llm.seed),
            )
        },
        Key {
            example: "2048",
            ..Key::new(
                Spec {
                    range: Some((128.0, 1_048_576.0)),
                    doc: "Context window in tokens (Ollama's num_ctx; an OpenAI-compatible server fixes its own at start, e.g. llama-server -c); unset: the server's default.",
                    ..Spec::new("num_ctx", Want::WholeNumber)
                },
                |s, v, _| {
                    s.llm.num_ctx = Some(v.int()? as u32);
                    Ok(())
                },
                |s| opt_number(s.llm.num_ctx),
            )
        },
        Key {
            example: "256",
            ..Key::new(
                Spec {
                    range: Some((1.0, 1_048_576.0)),
                    doc: "Most tokens per answer (OpenAI max_tokens, Ollama num_predict); unset: the server's default.",
                    ..Spec::new("max_tokens", Want::WholeNumber)
                },
                |s, v, _| {
                    s.llm.max_tokens = Some(v.int()? as u32);
                    Ok(())
                },
                |s| opt_number(s.llm.max_tokens),
            )
        },
    ],
};
