#!/usr/bin/env bash
# The whole test suite, one command: ./scripts/test.sh
#
# On a fresh Debian machine (as root) it first installs what the tests need and is missing:
# Debian's `prometheus` (the real server and promtool, used by the Rust tests and the stack
# checks), `tinyproxy` (a real forward proxy for the egress tests) and `redis-server` (the
# response cache's shared backend). Then: formatting, lints, every Rust test, the
# observability-stack checks.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Debian packages the tests run for real: prometheus (server + promtool), tinyproxy (the
# forward proxy of tests/api/egress.rs), redis-server and redis-cli (the cache's Redis backend:
# tests/api/cache.rs starts its own on a free port), and Node.js with npm (the Vercel AI SDK
# check).
missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
[ -x /usr/bin/tinyproxy ] || [ -x /usr/sbin/tinyproxy ] || missing+=(tinyproxy)
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian's ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The official SDKs judge OpenAI and Anthropic compatibility (tests/api/sdk.rs runs
# tests/sdk/check_sdks.py and tests/sdk/check_apis.py).
if ! .venv-sdk/bin/python -c 'import openai, groq, anthropic' 2>/dev/null; then
  step "creating .venv-sdk with the official openai, groq and anthropic SDKs"
  python3 -m venv .venv-sdk
  .venv-sdk/bin/pip install -q 'openai>=1.66,<4' 'groq>=0.11,<2' 'anthropic>=0.40,<3'
fi

# The Vercel AI SDK (tests/api/sdk.rs runs tests/sdk/js/check_vercel.mjs): the versions of
# tests/sdk/js/package-lock.json, installed again whenever the lockfile changes.
js=tests/sdk/js
if [ ! -f $js/node_modules/.package-lock.json ] || [ $js/package-lock.json -nt $js/node_modules/.package-lock.json ]; then
  step "installing the Vercel AI SDK in $js/node_modules (npm ci)"
  npm ci --prefix $js --no-audit --no-fund --loglevel=error
fi

# A real OTLP collector hop for the gRPC export test (rotel: receives gRPC, forwards HTTP).
if ! ls .venv-rotel/lib/*/site-packages/rotel/rotel-agent >/dev/null 2>&1; then
  step "creating .venv-rotel with the rotel collector"
  python3 -m venv .venv-rotel
  .venv-rotel/bin/pip install -q 'rotel==0.0.1a15'
fi

step "module graph: no import cycles, dependencies point down the layers (docs/ARCHITECTURE.md)"
python3 scripts/module-graph.py >/dev/null || python3 scripts/module-graph.py

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test (unit + integration: fake Groq upstream, OTLP receiver, real Prometheus)"
cargo test --locked

step "API fuzzing: schemathesis against /openapi.json (no 5xx, every response as documented)"
bash scripts/fuzz-api.sh target/debug/llm-observability

step "observability stack files (compose, collector, Prometheus, alerts, Grafana)"
# Metric names used by the dashboard and alerts are checked against a real scrape that the
# Rust tests saved after exercising every kind of call.
bash scripts/check-stack.sh --metrics-file target/tmp/stack-check-metrics.txt

step "benchmark harness smoke run (bench/run.sh --quick: keeps it working; asserts no timing)"
bench/run.sh --quick
