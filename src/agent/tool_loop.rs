//! The tool loop: ask the model, run the tools it calls, give it the results, until it
//! answers in text or the round limit is reached.

use serde_json::Value as Json;

use super::tools::ToolContext;
use super::tools::registry::ToolRegistry;
use crate::edges::llm::{ChatReply, Llm, LlmError, Message};

/// The model behind the loop (the configured backend, [`Llm`], in the agent; a script in
/// tests).
pub trait ChatModel {
    fn chat(&self, messages: &[Message], tools: &Json) -> Result<ChatReply, LlmError>;
    /// The same, passing the text to `on_text` piece by piece as it arrives. A model
    /// that cannot stream passes it whole once it has it.
    fn chat_streamed(
        &self,
        messages: &[Message],
        tools: &Json,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ChatReply, LlmError> {
        let reply = self.chat(messages, tools)?;
        if !reply.content.is_empty() {
            on_text(&reply.content);
        }
        Ok(reply)
    }
}

impl ChatModel for Llm {
    fn chat(&self, messages: &[Message], tools: &Json) -> Result<ChatReply, LlmError> {
        Llm::chat(self, messages, tools, None)
    }

    fn chat_streamed(
        &self,
        messages: &[Message],
        tools: &Json,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ChatReply, LlmError> {
        Llm::chat_stream(self, messages, tools, on_text)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The final text; `None` when the round limit was reached first.
    pub answer: Option<String>,
    /// Tool names in the order they were called.
    pub tools_used: Vec<String>,
    /// Model calls made.
    pub rounds: u32,
    /// Time spent waiting for the model (the rest of the loop's time is the agent's own).
    pub model_us: u64,
}

/// Run one question through the loop.
pub fn run(
    model: &dyn ChatModel,
    tools: &ToolRegistry,
    ctx: &ToolContext,
    system_prompt: &str,
    question: &str,
    max_rounds: u32,
) -> Result<Outcome, LlmError> {
    run_with(model, tools, ctx, system_prompt, question, max_rounds, None)
}

/// The same, with the model's text passed to `on_text` as it arrives (the dashboard's
/// ask box shows the answer growing).
pub fn run_streamed(
    model: &dyn ChatModel,
    tools: &ToolRegistry,
    ctx: &ToolContext,
    system_prompt: &str,
    question: &str,
    max_rounds: u32,
    on_text: &mut dyn FnMut(&str),
) -> Result<Outcome, LlmError> {
    run_with(
        model,
        tools,
        ctx,
        system_prompt,
        question,
        max_rounds,
        Some(on_text),
    )
}

fn run_with(
    model: &dyn ChatModel,
    tools: &ToolRegistry,
    ctx: &ToolContext,
    system_prompt: &str,
    question: &str,
    max_rounds: u32,
    mut on_text: Option<&mut dyn FnMut(&str)>,
) -> Result<Outcome, LlmError> {
    let schema = tools.ollama_tools();
    let mut messages = vec![Message::system(system_prompt), Message::user(question)];
    let mut out = Outcome::default();
    for _ in 0..max_rounds.max(1) {
        let t0 = std::time::Instant::now();
        let reply = match on_text.as_deref_mut() {
            Some(f) => model.chat_streamed(&messages, schema, f)?,
            None => model.chat(&messages, schema)?,
        };
        out.model_us += t0.elapsed().as_micros() as u64;
        out.rounds += 1;
        if reply.tool_calls.is_empty() {
            out.answer = Some(reply.content);
            return Ok(out);
        }
        messages.push(Message::assistant(&reply.content, reply.tool_calls.clone()));
        for call in reply.tool_calls {
            let result = tools.execute(&call.name, &call.arguments, ctx);
            log::debug!("agent: tool {} {} -> {}", call.name, call.arguments, result);
            out.tools_used.push(call.name.clone());
            messages.push(Message::tool(&call.name, result.to_string()));
        }
    }
    log::warn!(
        "agent: no answer after {} model rounds (max_tool_iterations)",
        out.rounds
    );
    Ok(out)
}
