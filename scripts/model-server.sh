#!/usr/bin/env bash
# A real OpenAI-compatible model server for the tests (docs/llm.md, ARCHITECTURE.md):
# llama-cpp-python's server on 127.0.0.1 with a tiny random-weight llama GGUF written at
# start. Its answers are gibberish but deterministic at temperature 0; forced tool calls
# and JSON-schema answers have real structure.
#
# Usage:
#   scripts/model-server.sh install            build the venv (once; reused after)
#   scripts/model-server.sh serve PORT [DIR]   write DIR/tiny.gguf, serve it on PORT,
#                                              print "model-server ready <port>" when it answers
#
# The venv lives in $SMOLLAMA_LLAMA_CACHE (default /var/cache/smollama-ci/llama). A cold
# cache costs one source build of llama-cpp-python (~7 min on 2 cores); concurrent callers
# wait on a lock instead of building twice. `serve` execs the server, so the caller's child
# pid is the server's and killing it stops everything.
set -euo pipefail

LLAMA_VERSION=0.3.36
GGUF_VERSION=0.19.0
CACHE=${SMOLLAMA_LLAMA_CACHE:-/var/cache/smollama-ci/llama}
VENV=$CACHE/venv
SDIST=$CACHE/llama_cpp_python-$LLAMA_VERSION.tar.gz
VOCAB=$CACHE/ggml-vocab-llama-spm.gguf

install() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  if [ -f "$VENV/.ready-$LLAMA_VERSION" ] && [ -f "$VOCAB" ]; then
    exec 9>&- # unlock: a server started after this must not hold the lock
    return 0
  fi
  echo "model-server: building llama-cpp-python $LLAMA_VERSION into $VENV (cold cache, ~7 min)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >&2
  if [ ! -f "$SDIST" ]; then
    "$VENV/bin/pip" download -q --no-deps --no-binary llama-cpp-python -d "$CACHE" "llama-cpp-python==$LLAMA_VERSION" >&2
  fi
  # The sdist vendors llama.cpp with its vocab-only GGUFs: the tokenizer the tiny model uses.
  tar -xzf "$SDIST" -C "$CACHE" --strip-components=4 --wildcards \
    "*/vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    nice -n 10 "$VENV/bin/pip" install -q "llama-cpp-python[server] @ file://$SDIST" "gguf==$GGUF_VERSION" >&2
  touch "$VENV/.ready-$LLAMA_VERSION"
  exec 9>&-
  echo "model-server: built" >&2
}

# A llama-architecture GGUF with random f32 weights (seed 42; norms 1; output tied to
# token_embd): n_vocab 32000, n_embd 64, 2 blocks, 4 heads, ffn 128, ctx 2048, about
# 9 MB, with the tokenizer of llama.cpp's vocab-only ggml-vocab-llama-spm.gguf and a
# minimal chat template.
write_tiny_gguf() {
  "$VENV/bin/python" - "$VOCAB" "$1" <<'PY'
import sys
import numpy as np
import gguf

vocab_path, out = sys.argv[1], sys.argv[2]
r = gguf.GGUFReader(vocab_path)
f = r.fields
tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode("utf-8", "replace") for i in f["tokenizer.ggml.tokens"].data]
scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
n_vocab, n_embd, n_layer, n_head, n_ff, n_ctx = len(tokens), 64, 2, 4, 128, 2048

w = gguf.GGUFWriter(out, "llama")
w.add_name("smollama-tiny-random")
w.add_context_length(n_ctx)
w.add_embedding_length(n_embd)
w.add_block_count(n_layer)
w.add_feed_forward_length(n_ff)
w.add_head_count(n_head)
w.add_head_count_kv(n_head)
w.add_rope_dimension_count(n_embd // n_head)
w.add_layer_norm_rms_eps(1e-5)
w.add_file_type(0)
# Mean pooling: /v1/embeddings gives one vector per text (else one per token).
w.add_pooling_type(gguf.PoolingType.MEAN)
w.add_tokenizer_model("llama")
if "tokenizer.ggml.pre" in f:
    w.add_tokenizer_pre(bytes(f["tokenizer.ggml.pre"].parts[-1]).decode())
w.add_token_list(tokens)
w.add_token_scores(scores)
w.add_token_types(types)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_unk_token_id(0)
w.add_chat_template(
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] or '' }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
rng = np.random.default_rng(42)
def rand(*shape):
    return (rng.standard_normal(shape) * 0.02).astype(np.float32)
w.add_tensor("token_embd.weight", rand(n_vocab, n_embd))
for i in range(n_layer):
    p = f"blk.{i}."
    w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, np.float32))
    for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
        w.add_tensor(p + t + ".weight", rand(n_embd, n_embd))
    w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, np.float32))
    w.add_tensor(p + "ffn_gate.weight", rand(n_ff, n_embd))
    w.add_tensor(p + "ffn_up.weight", rand(n_ff, n_embd))
    w.add_tensor(p + "ffn_down.weight", rand(n_embd, n_ff))
w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
PY
}

serve() {
  local port=${1:?usage: model-server.sh serve PORT [DIR]}
  local dir=${2:-$(mktemp -d)}
  install
  mkdir -p "$dir"
  write_tiny_gguf "$dir/tiny.gguf" >&2
  # Announce readiness from a watcher so the server itself can be exec'd.
  (
    for _ in $(seq 1 600); do
      if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/v1/models', timeout=1)" 2>/dev/null; then
        echo "model-server ready $port"
        exit 0
      fi
      sleep 0.1
    done
    echo "model-server: not ready after 60 s" >&2
  ) &
  exec "$VENV/bin/python" -m llama_cpp.server --model "$dir/tiny.gguf" --model_alias tiny \
    --host 127.0.0.1 --port "$port" --n_ctx 2048 --n_threads 1 --embedding true --verbose false
}

case ${1:-} in
  install) install ;;
  serve) shift; serve "$@" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
