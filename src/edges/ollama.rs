//! The Ollama HTTP API client (ureq): chat with tools, embeddings, model list, version.
