#!/usr/bin/env bash
# Profiles the gateway (full telemetry) under load, to find what to optimise.
#
#   bench/profile.sh [--callgrind] [--concurrency N | --rate R] [--seconds S] [--requests N] [--no-otel]
#                    [--log F[,FMT]] [--config FILE] [--model M] [--path P] [--body FILE]
#
#   default      perf (cpu-clock sampling, frame-pointer call graphs) while examples/loadgen.rs
#                drives --concurrency 32 (default) or --rate R for --seconds (default 8);
#                prints CPU µs per request by component (bench/profile_report.py)
#   --callgrind  valgrind's callgrind instead (instruction counts; deterministic, ~50x slower):
#                --requests (default 3000) at concurrency 4 after 300 warm-up requests
#   --no-otel    OTEL_SDK_DISABLED=true (to see what telemetry costs, by difference)
#   --log FILTER[,FORMAT]  RUST_LOG (default warn) and LOG_FORMAT, e.g. --log info,json: what
#                the request log lines cost (they go to the gateway's log file)
#   --config FILE --model M  GATEWAY_CONFIG=FILE (`@UPSTREAM@` and `@UPSTREAM_ROOT@` replaced
#                by the fake's base URL and root, as in bench/compare.sh) and the model the
#                requests name, e.g. --config bench/routed.toml --model bench
#   --path P --body FILE  the endpoint (default /api/chat) and a JSON body file whose `@MODEL@`
#                is replaced by --model (default llama-3.1-8b-instant), e.g. --config
#                bench/apis.toml --path /v1/messages --body bench/bodies/messages.json. Without
#                --body: /api/chat's prompt body, or bench/bodies/chat.json for another path
#
# Builds a separate profiling binary (release + line tables + frame pointers) in
# target/profiling (or $PROFILE_TARGET_DIR) so the normal release build is untouched. Output: bench/results/profile-<stamp>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MODE=perf LOAD=(--concurrency 32) SECS=8 REQUESTS=3000 OTEL=1 LOG=warn,pretty CONFIG="" MODEL=""
URL_PATH=/api/chat BODY_FILE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --callgrind) MODE=callgrind ;;
        --concurrency) LOAD=(--concurrency "${2:?}"); shift ;;
        --rate) LOAD=(--rate "${2:?}"); shift ;;
        --seconds) SECS=${2:?}; shift ;;
        --requests) REQUESTS=${2:?}; shift ;;
        --no-otel) OTEL=0 ;;
        --config) CONFIG=$(realpath "${2:?}"); shift ;;
        --model) MODEL=${2:?}; shift ;;
        --path) URL_PATH=${2:?}; shift ;;
        --body) BODY_FILE=$(realpath "${2:?}"); shift ;;
        --log) LOG=${2:?}; [[ $LOG == *,* ]] || LOG="$LOG,pretty"; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
log() { printf '[profile %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

OUT="$ROOT/bench/results/profile-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
PIDS=()
cleanup() {
    local rc=$? p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

if [ "$MODE" = perf ]; then
    if ! command -v perf >/dev/null; then
        log "installing linux-perf"
        apt-get install -y --no-install-recommends linux-perf >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends linux-perf >/dev/null 2>&1; } || true
    fi
    if ! perf record -q -e cpu-clock -o /dev/null -- true >/dev/null 2>&1; then
        log "perf cannot sample here; falling back to callgrind"
        MODE=callgrind
    fi
fi
if [ "$MODE" = callgrind ] && ! command -v valgrind >/dev/null; then
    apt-get install -y --no-install-recommends valgrind >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends valgrind >/dev/null 2>&1; }
fi

TARGET=${PROFILE_TARGET_DIR:-$ROOT/target/profiling}
log "building the profiling binary (release + line tables + frame pointers) in $TARGET"
CARGO_TARGET_DIR="$TARGET" CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    RUSTFLAGS="${RUSTFLAGS:-} -C force-frame-pointers=yes" \
    cargo build --release --bin llm-observability --examples 2>&1 | tail -n 2 >&2
GATEWAY="$TARGET/release/llm-observability"
FAKE="$TARGET/release/examples/fake_upstream"
LOADGEN="$TARGET/release/examples/loadgen"

start_fake() { # name: starts a fake_upstream, sets FAKE_PORT (no subshell: PIDS must see it)
    "$FAKE" --port 0 >"$OUT/$1.log" 2>&1 &
    PIDS+=($!)
    local deadline=$((SECONDS + 10))
    FAKE_PORT=""
    while [ -z "$FAKE_PORT" ] && [ $SECONDS -lt $deadline ]; do
        FAKE_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$OUT/$1.log" 2>/dev/null || true)
        [ -n "$FAKE_PORT" ] || sleep 0.05
    done
    [ -n "$FAKE_PORT" ] || { echo "$1 did not start" >&2; exit 1; }
}
start_fake upstream
UP_PORT=$FAKE_PORT
start_fake otlp
OTLP_PORT=$FAKE_PORT
GW_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
M_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GW_ENV=(APP_HOST=127.0.0.1 APP_PORT="$GW_PORT" METRICS_HOST=127.0.0.1 METRICS_PORT="$M_PORT"
    GROQ_API_KEY=gsk_bench ANTHROPIC_API_KEY=sk-ant-bench
    GROQ_BASE_URL="http://127.0.0.1:$UP_PORT/openai/v1" LLM_MAX_RETRIES=0
    RUST_LOG="${LOG%%,*}" LOG_FORMAT="${LOG#*,}")
if [ "$OTEL" = 1 ]; then
    GW_ENV+=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_TRACES_SAMPLER=always_on)
else
    GW_ENV+=(OTEL_SDK_DISABLED=true)
fi
if [ -n "$CONFIG" ]; then
    sed -e "s|@UPSTREAM_ROOT@|http://127.0.0.1:$UP_PORT|g" \
        -e "s|@UPSTREAM@|http://127.0.0.1:$UP_PORT/openai/v1|g" "$CONFIG" >"$OUT/gateway.toml"
    GW_ENV+=(GATEWAY_CONFIG="$OUT/gateway.toml")
fi
URL="http://127.0.0.1:$GW_PORT$URL_PATH"
if [ -n "$BODY_FILE" ]; then
    BODY=$(<"$BODY_FILE")
    BODY=${BODY//@MODEL@/${MODEL:-llama-3.1-8b-instant}}
elif [ "$URL_PATH" = /api/chat ]; then
    BODY='{"prompt":"Explain observability in 3 sentences","max_tokens":100,"temperature":0.7'${MODEL:+',"model":"'$MODEL'"'}'}'
else
    BODY=$(<"$ROOT/bench/bodies/chat.json")
    BODY=${BODY//@MODEL@/${MODEL:-llama-3.1-8b-instant}}
fi
log "POST $URL_PATH $BODY"
wait_ready() {
    local deadline=$((SECONDS + 60))
    until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$GW_PORT/healthz" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { cat "$OUT/gateway.log" >&2; exit 1; }
        sleep 0.2
    done
}

if [ "$MODE" = perf ]; then
    (cd "$OUT" && exec env -i PATH="$PATH" "${GW_ENV[@]}" "$GATEWAY") >"$OUT/gateway.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_ready
    "$LOADGEN" --url "$URL" --body "$BODY" --concurrency 32 --duration 1 >/dev/null
    FREQ=1999
    log "perf record on pid $GW_PID while loadgen runs ${LOAD[*]} for $SECS s"
    perf record -q -e cpu-clock -F "$FREQ" --call-graph fp -p "$GW_PID" -o "$OUT/perf.data" \
        -- sleep "$((SECS + 1))" 2>"$OUT/perf.log" &
    PERF_PID=$!
    sleep 0.5
    "$LOADGEN" --url "$URL" --body "$BODY" "${LOAD[@]}" --duration "$SECS" >"$OUT/loadgen.json"
    wait "$PERF_PID" || true
    cat "$OUT/loadgen.json" >&2
    REQS=$(sed -n 's/.*"completed_total":\([0-9]*\).*/\1/p' "$OUT/loadgen.json")
    perf script -i "$OUT/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null >"$OUT/perf.txt"
    python3 "$ROOT/bench/profile_report.py" --freq "$FREQ" --requests "$REQS" <"$OUT/perf.txt" | tee "$OUT/summary.md"
    log "raw: $OUT/perf.data (perf report -i $OUT/perf.data --no-children)"
else
    (cd "$OUT" && exec env -i PATH="$PATH" "${GW_ENV[@]}" OTEL_BSP_SCHEDULE_DELAY=200 \
        valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" "$GATEWAY") >"$OUT/gateway.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_ready
    "$LOADGEN" --url "$URL" --body "$BODY" --concurrency 4 --requests 300 --timeout 60 >/dev/null
    callgrind_control -z "$GW_PID" >/dev/null 2>&1
    log "callgrind: $REQUESTS requests at concurrency 4"
    "$LOADGEN" --url "$URL" --body "$BODY" --concurrency 4 --requests "$REQUESTS" --timeout 60 >"$OUT/loadgen.json"
    sleep 1 # let the batch processor export this window's spans
    callgrind_control -d "$GW_PID" >/dev/null 2>&1
    sleep 1
    DUMP=$(ls -t "$OUT"/callgrind.out.* | head -1)
    TOTAL=$(callgrind_annotate "$DUMP" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
    {
        echo "instructions (user space) per request: $((TOTAL / REQUESTS)) (POST $URL_PATH)"
        echo "loadgen: $(tr -d '\n' <"$OUT/loadgen.json" | cut -c1-300)"
        echo
        echo "inclusive, top entries (callgrind_annotate --inclusive=yes $DUMP):"
        # Recursive futures show up above 100%: skip those lines.
        callgrind_annotate --inclusive=yes --threshold=100 "$DUMP" 2>/dev/null | grep -E '^ *[0-9,]+ \(' |
            grep -vE '\((1[0-9]{2}|[2-9][0-9]{2}|[0-9]{4,})\.[0-9]+%\)' |
            sed -E 's#\[/[^]]*\]##; s#/root/.cargo/registry/src/[^/]*/##; s#/rustc/[0-9a-f]*/##' | cut -c1-200 | head -80 || true  # head closes the pipe early
    } | tee "$OUT/summary.txt"
fi
