//! The agent: the tool loop against the local LLM, and the tools it may call.
//! (In progress: the tools and the Ollama client exist; the loop over MQTT is next.)

pub mod tool_loop;
pub mod tools;
pub mod worker;
