#!/usr/bin/env bash
# The main job (README): set everything up, then serve a tiny Qwen3 written in MindSpore
# through patched SGLang on the CPU and ask it one chat question with the openai client.
#   bash ci/main_job.sh            env: PORT (default 30000), OUT (default ./out)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
OUT="${OUT:-$REPO/out}"
PORT="${PORT:-30000}"
mkdir -p "$OUT"
cd "$OUT"   # outside the source tree: python -m imports the installed wheel

step "making a tiny Qwen3 checkpoint (random weights; no model hub here)"
python -m mindspore_models.tools.make_tiny_checkpoint --out "$OUT/tiny-qwen3"

step "starting: python -m sglang.launch_server --model-impl mindspore --device cpu (log: $OUT/server.log)"
python -m sglang.launch_server --model-path "$OUT/tiny-qwen3" --model-impl mindspore --device cpu \
  --attention-backend torch_native --dtype float32 --host 127.0.0.1 --port "$PORT" \
  --served-model-name tiny-qwen3 > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT

for i in $(seq 1 300); do
  if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then break; fi
  if ! kill -0 $SERVER 2>/dev/null; then echo "server died:"; tail -30 "$OUT/server.log"; exit 1; fi
  sleep 1
done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { echo "server not healthy after 300 s"; tail -30 "$OUT/server.log"; exit 1; }
grep -h "MindSpore kernel" "$OUT/server.log" | sed 's/^/    /' || true

step "asking a chat question with the openai client"
python "$REPO/ci/chat_demo.py" --base-url "http://127.0.0.1:$PORT/v1"
