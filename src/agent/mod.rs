//! The agent: its intake (questions from any edge), the tool loop against the local LLM,
//! the tools it may call, and the `llm` thread that runs questions and the memory work
//! one at a time.

pub mod intake;
pub mod memory_work;
pub mod tool_loop;
pub mod tools;
pub mod worker;
