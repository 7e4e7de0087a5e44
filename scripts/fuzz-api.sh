#!/usr/bin/env bash
# API fuzzing: schemathesis generates requests from /openapi.json (valid and invalid) and checks
# every response: no 5xx, every response conforms to the documented schema, status codes and
# content types are documented, unsupported methods get 405 with Allow.
#
#   bash scripts/fuzz-api.sh [path/to/llm-observability]    (default: target/debug/...)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/llm-observability}
VENV=.venv-fuzz

if ! "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
  echo "creating $VENV with schemathesis"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'schemathesis>=4,<5'
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
APP_HOST=127.0.0.1 APP_PORT="$port" METRICS_HOST=127.0.0.1 METRICS_PORT=0 \
  LLM_PROVIDER=simulated SIMULATED_LATENCY_MS=0 OTEL_SDK_DISABLED=true RUST_LOG=warn \
  ADMIN_API_KEY=fuzz-admin-key \
  "$BIN" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done

"$VENV/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks all --max-examples 100 --seed 1 --no-color \
  -H "Authorization: Bearer fuzz-admin-key"
