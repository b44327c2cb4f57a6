//! `[agent]`: answering questions with the tool loop.

use super::key::{Key, Section, list, number, problem_hint, quoted};
use crate::config::expect::Want;
use crate::config::spec::Spec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackMode {
    /// Keep questions (bounded, in the store) and answer them in order once Ollama is back.
    Queue,
    /// Answer at once with an error payload.
    Skip,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgentSettings {
    /// Answer questions at all (needs MQTT for questions over MQTT; `smollama ask` works
    /// regardless).
    pub enabled: bool,
    pub system_prompt: String,
    pub max_tool_iterations: u32,
    /// Topics whose messages are questions. Default `<prefix>/ask` and `smollama/broadcast`.
    pub ask_topics: Vec<String>,
    /// Where answers go when a question names no reply topic. Default `<prefix>/answers`.
    pub answer_topic: Option<String>,
    pub fallback_mode: FallbackMode,
    /// Most questions kept while Ollama is away; beyond it the oldest is dropped (counted).
    pub queue_max: u32,
    /// Most bytes of question text waiting for the agent (in its channel, and kept while
    /// the model server is away), whatever their number.
    pub queue_kb: u32,
    /// Most questions answered per topic per minute (stops two nodes chattering forever).
    pub rate_per_minute: u32,
    /// Questions over MQTT may run write tools (`writes = true` exec tools); off by
    /// default, since anyone on the broker can ask.
    pub trust_mqtt: bool,
}

// One text for the constant and the declared default (TOML text, in quotes).
macro_rules! default_prompt {
    () => {
        "You are a home automation assistant running on a Raspberry Pi. You can read GPIO sensors and communicate with other nodes via MQTT."
    };
}
pub const DEFAULT_SYSTEM_PROMPT: &str = default_prompt!();

pub(crate) const SECTION: Section = Section {
    name: "agent",
    doc: "",
    keys: &[
        Key::new(
            Spec {
                default: "true",
                doc: "Answer questions that arrive on ask_topics (over MQTT) or POST /api/ask with a tool loop.",
                ..Spec::new("enabled", Want::Bool)
            },
            |s, v, _| {
                s.agent.enabled = v.bool()?;
                Ok(())
            },
            |s| number(s.agent.enabled),
        ),
        Key::new(
            Spec {
                default: concat!("\"", default_prompt!(), "\""),
                doc: "The system prompt of every question.",
                ..Spec::new("system_prompt", Want::Text)
            },
            |s, v, _| {
                s.agent.system_prompt = v.text()?;
                Ok(())
            },
            |s| quoted(&s.agent.system_prompt),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 50.0)),
                default: "10",
                doc: "Model rounds per question.",
                hint: "model rounds per question, e.g. 10",
                ..Spec::new("max_tool_iterations", Want::WholeNumber)
            },
            |s, v, _| {
                s.agent.max_tool_iterations = v.int()? as u32;
                Ok(())
            },
            |s| number(s.agent.max_tool_iterations),
        ),
        Key {
            example: "[\"smollama/greenhouse/ask\", \"smollama/broadcast\"]",
            ..Key::new(
                Spec {
                    doc: "Topics (filters) whose messages are questions. Default: [\"smollama/<node>/ask\", \"smollama/broadcast\"]. In the environment: comma-separated.",
                    ..Spec::new("ask_topics", Want::TextList)
                },
                |s, v, _| {
                    let v = v.list()?;
                    for t in &v {
                        crate::edges::mqtt::topic::validate_filter(t).map_err(|e| {
                            problem_hint(
                                format!("ask_topics: '{t}': {e}"),
                                "e.g. [\"smollama/kitchen/ask\", \"smollama/broadcast\"]",
                            )
                        })?;
                    }
                    s.agent.ask_topics = v;
                    Ok(())
                },
                |s| list(&s.ask_topics()),
            )
        },
        Key {
            example: "\"smollama/greenhouse/answers\"",
            ..Key::new(
                Spec {
                    doc: "Where answers go unless the question names a reply topic. Default: <[mqtt] state_prefix>/answers, which is smollama/<node>/answers unless state_prefix is set.",
                    ..Spec::new("answer_topic", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    crate::edges::mqtt::topic::validate_topic(&v, 65_535).map_err(|e| {
                        problem_hint(
                            format!("answer_topic: {e}"),
                            "one topic without wildcards, e.g. \"smollama/greenhouse/answers\"",
                        )
                    })?;
                    s.agent.answer_topic = Some(v);
                    Ok(())
                },
                |s| quoted(&s.answer_topic()),
            )
        },
        Key {
            choices: &["queue", "skip"],
            ..Key::new(
                Spec {
                    default: "\"queue\"",
                    doc: "While Ollama is away: \"queue\" keeps questions (at most queue_max, oldest dropped) and answers them in order once it is back; \"skip\" answers at once with an error. (HTTP questions always get the error at once: their asker is waiting on the connection.)",
                    ..Spec::new("fallback_mode", Want::Text)
                },
                |s, v, _| {
                    let v = v.text()?;
                    s.agent.fallback_mode = match v.as_str() {
                        "queue" => FallbackMode::Queue,
                        "skip" => FallbackMode::Skip,
                        _ => {
                            return Err(problem_hint(
                                format!("unknown fallback_mode '{v}'"),
                                "queue: keep questions until Ollama is back; skip: answer with an error at once",
                            ));
                        }
                    };
                    Ok(())
                },
                |s| {
                    quoted(match s.agent.fallback_mode {
                        FallbackMode::Queue => "queue",
                        FallbackMode::Skip => "skip",
                    })
                },
            )
        },
        Key::new(
            Spec {
                range: Some((1.0, 100_000.0)),
                default: "100",
                doc: "Most questions kept while Ollama is away; beyond it the oldest is dropped (counted).",
                hint: "e.g. 100",
                ..Spec::new("queue_max", Want::WholeNumber)
            },
            |s, v, _| {
                s.agent.queue_max = v.int()? as u32;
                Ok(())
            },
            |s| number(s.agent.queue_max),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 1_048_576.0)),
                default: "1024",
                doc: "Most KiB of question text waiting for the agent (arrived and not yet taken up, and kept while the model server is away); past it a new question is refused as busy (counted), or the oldest kept one is dropped (counted). One question larger than this may still wait alone.",
                hint: "KiB, e.g. 1024",
                ..Spec::new("queue_kb", Want::WholeNumber)
            },
            |s, v, _| {
                s.agent.queue_kb = v.int()? as u32;
                Ok(())
            },
            |s| number(s.agent.queue_kb),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 10_000.0)),
                default: "10",
                doc: "Questions answered per topic per minute (POST /api/ask counts as one topic); more are dropped (and counted).",
                hint: "questions per topic per minute, e.g. 10",
                ..Spec::new("rate_per_minute", Want::WholeNumber)
            },
            |s, v, _| {
                s.agent.rate_per_minute = v.int()? as u32;
                Ok(())
            },
            |s| number(s.agent.rate_per_minute),
        ),
        Key::new(
            Spec {
                default: "false",
                doc: "Let questions that arrive over MQTT run write tools (exec tools declared with writes = true). POST /api/ask (it carries the bearer token) and smollama ask (a local operator) are trusted; MQTT questions are not unless this is true, since anyone who can publish on the broker can ask.",
                ..Spec::new("trust_mqtt", Want::Bool)
            },
            |s, v, _| {
                s.agent.trust_mqtt = v.bool()?;
                Ok(())
            },
            |s| number(s.agent.trust_mqtt),
        ),
    ],
};
