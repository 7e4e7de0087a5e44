#!/usr/bin/env bash
# CPU per request of two gateway builds, measured alternately in one run (A, B, A, B, …) so
# that both see the same machine: the before/after figure of a change.
#
#   bench/compare.sh [--rounds N] [--duration S] [--log FILTER,FORMAT] [--path P]
#                    [--config-a FILE] [--config-b FILE] [--model-a M] [--model-b M] BIN_A BIN_B
#
#   --rounds N    measured runs per binary (default 5); the median is reported
#   --duration S  seconds per run (default 10)
#   --log F,FMT   the gateways' RUST_LOG and LOG_FORMAT (default info,pretty: the default
#                 configuration, one log line per request, written to a file)
#   --path P      the endpoint (default /v1/chat/completions; /api/chat also works)
#   --config-X F  run side X with GATEWAY_CONFIG=F, `@UPSTREAM@` in it replaced by the fake
#                 upstream's base URL (bench/routed.toml, bench/fallback.toml); BIN_A may
#                 equal BIN_B to compare configurations
#   --model-X M   the model side X asks for (default llama-3.1-8b-instant)
#
# Each run: a fresh gateway process with full telemetry to a live OTLP receiver, a 1 s
# warm-up, then wrk at concurrency 32 against a fake Groq upstream (all on 127.0.0.1, from
# examples/fake_upstream.rs). CPU is the gateway's utime+stime from /proc over the measured
# run, divided by the requests wrk completed. Needs wrk (Debian) and a release build of the
# examples: `cargo build --release --examples`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=5 DURATION=10 GW_LOG=info,pretty URL_PATH=/v1/chat/completions
CONFIG_A="" CONFIG_B="" MODEL_A=llama-3.1-8b-instant MODEL_B=llama-3.1-8b-instant
while [ $# -gt 2 ]; do
    case "$1" in
        --config-a) CONFIG_A=$(realpath "$2"); shift ;;
        --config-b) CONFIG_B=$(realpath "$2"); shift ;;
        --model-a) MODEL_A=$2; shift ;;
        --model-b) MODEL_B=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --log) GW_LOG=$2; shift ;;
        --path) URL_PATH=$2; shift ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
[ $# -eq 2 ] || { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
BIN_A=$(realpath "$1") BIN_B=$(realpath "$2")
FAKE="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/fake_upstream"
[ -x "$FAKE" ] || { echo "missing $FAKE: cargo build --release --examples" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
start_fake() { # log file, args: prints the port
    "$FAKE" --port 0 "${@:2}" >"$1" 2>&1 &
    PIDS+=($!)
    local port="" deadline=$((SECONDS + 10))
    while [ -z "$port" ] && [ $SECONDS -lt $deadline ]; do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1" 2>/dev/null || true)
        [ -n "$port" ] || sleep 0.05
    done
    [ -n "$port" ] || { cat "$1" >&2; exit 1; }
    echo "$port"
}
UP_PORT=$(start_fake "$WORK/upstream.log" --workers 1)
OTLP_PORT=$(start_fake "$WORK/otlp.log" --workers 1)

# One request script per side: the body names that side's model.
for side in a b; do
    model=$MODEL_A; [ "$side" = b ] && model=$MODEL_B
    if [ "$URL_PATH" = /api/chat ]; then
        BODY='{"prompt":"Explain observability in 3 sentences","model":"'$model'","max_tokens":100,"temperature":0.7}'
    else
        BODY='{"model":"'$model'","messages":[{"role":"user","content":"Explain observability in 3 sentences"}],"max_tokens":100,"temperature":0.7}'
    fi
    cat >"$WORK/post-$side.lua" <<LUA
wrk.method = "POST"
wrk.body = [==[$BODY]==]
wrk.headers["Content-Type"] = "application/json"
LUA
done
# The configuration files, pointed at this run's fake upstream.
for side in a b; do
    config=$CONFIG_A; [ "$side" = b ] && config=$CONFIG_B
    [ -z "$config" ] || sed "s|@UPSTREAM@|http://127.0.0.1:$UP_PORT/openai/v1|g" "$config" >"$WORK/gateway-$side.toml"
done

run_once() { # binary, side (a or b): prints µs of CPU per request
    local port metrics pid before after requests config=()
    port=$(free_port) metrics=$(free_port)
    [ -f "$WORK/gateway-$2.toml" ] && config=(GATEWAY_CONFIG="$WORK/gateway-$2.toml")
    (cd "$WORK" && exec env -i PATH="$PATH" APP_HOST=127.0.0.1 APP_PORT="$port" "${config[@]}" \
        METRICS_HOST=127.0.0.1 METRICS_PORT="$metrics" GROQ_API_KEY=gsk_bench \
        GROQ_BASE_URL="http://127.0.0.1:$UP_PORT/openai/v1" LLM_MAX_RETRIES=0 \
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" \
        RUST_LOG="${GW_LOG%%,*}" LOG_FORMAT="${GW_LOG#*,}" "$1") >"$WORK/gateway.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    local deadline=$((SECONDS + 20))
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { cat "$WORK/gateway.log" >&2; exit 1; }
        sleep 0.1
    done
    wrk -t1 -c32 -d1s -s "$WORK/post-$2.lua" "http://127.0.0.1:$port$URL_PATH" >/dev/null 2>&1
    before=$(cpu_ticks "$pid")
    local out
    out=$(wrk -t1 -c32 -d"${DURATION}s" -s "$WORK/post-$2.lua" "http://127.0.0.1:$port$URL_PATH")
    # Every answer must be a 200: a run of errors would measure the wrong thing.
    if grep -q "Non-2xx" <<<"$out"; then echo "side $2: non-2xx answers: $out" >&2; cat "$WORK/gateway.log" | tail -5 >&2; exit 1; fi
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    after=$(cpu_ticks "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 -c "print(f'{($after - $before) / $(getconf CLK_TCK) * 1e6 / $requests:.1f} {$requests}')"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "concurrency 32, $URL_PATH, RUST_LOG/LOG_FORMAT=$GW_LOG, full telemetry, ${DURATION} s x $ROUNDS rounds"
: >"$WORK/a" ; : >"$WORK/b"
for round in $(seq "$ROUNDS"); do
    a=$(run_once "$BIN_A" a); b=$(run_once "$BIN_B" b)
    echo "round $round: A ${a% *} µs/req (${a#* } req)   B ${b% *} µs/req (${b#* } req)"
    echo "${a% *}" >>"$WORK/a"; echo "${b% *}" >>"$WORK/b"
done
echo "median CPU µs/request: A $(median <"$WORK/a")   B $(median <"$WORK/b")"
echo "A = $BIN_A ${CONFIG_A:+GATEWAY_CONFIG=$CONFIG_A} model $MODEL_A"
echo "B = $BIN_B ${CONFIG_B:+GATEWAY_CONFIG=$CONFIG_B} model $MODEL_B"
