#!/usr/bin/env bash
# Benchmark: the gateway's overhead against direct calls and against LiteLLM (issue 7), and its
# CPU per request against nginx's in one run (issue 18's goal section).
#
#   bench/run.sh [--quick] [--goal-only] [--goal-rounds N] [--no-litellm] [--no-nginx] [--soak N]
#                [--duration S] [--log F[,FMT]] [--write]
#
#   --quick       ~1 minute: 2 s runs, no LiteLLM, no nginx, no goal section, no soak (CI runs
#                 this; no timing asserted)
#   --goal-only   only the goal section: no (a)-(e), LiteLLM or nginx reference suite, and no
#                 soak unless --soak N is given
#   --goal-rounds N  rounds of the goal section (default 3): every variant once per round,
#                 round-robin, so the machine's drift hits all alike; the median is reported
#   --no-litellm  skip the LiteLLM proxy comparison (d)
#   --no-nginx    skip the reference suite: nginx-light as a plain reverse proxy (no telemetry);
#                 the goal section still runs its own nginx
#   --soak N      requests in the memory soak (default 1000000; 0 skips it; --quick implies 0,
#                 --goal-only too unless given); its gateway runs the goal's features configuration
#   --duration S  seconds per measured run (default 10; --quick: 2)
#   --log F[,FMT] the gateway's RUST_LOG and LOG_FORMAT in (a)-(e) (default warn,pretty: no
#                 per-request line); e.g. --log info,json to include the request log lines (to a
#                 file). The goal section and the soak always run info,pretty, the default
#   --write       replace the results section of BENCHMARKS.md with this run's tables
#
# The goal section (issue 18), all against the same fake upstream with the OTLP receiver live:
# CPU µs per request at concurrency 32 of nginx (goal-nginx), examples/floor_proxy.rs (axum +
# reqwest relaying one endpoint, no telemetry: the stack's floor, goal-floor; and with --bare,
# hyper alone: goal-bare), the gateway in
# its default configuration (goal-default: a log line per request, every span exported) on
# /api/chat and /v1/chat/completions, the same with the features on (goal-features:
# bench/goal.toml's two-target route and virtual key with budgets, the in-memory response cache
# missed by every request), and with the key's ledger in a throwaway redis-server
# (goal-features-redis); each as a ratio of nginx's. Plus p50 at concurrency 1 against direct.
#
# Everything runs on 127.0.0.1: a release build of the gateway, a fake Groq upstream and an
# OTLP receiver (both examples/fake_upstream.rs, separate processes), wrk for fixed
# concurrency and examples/loadgen.rs for fixed rates (open loop, latency from each request's
# scheduled time), SSE time to first chunk and the soak. Every process started here is
# stopped on exit. Results: bench/results/<timestamp>.md (+ raw data in bench/results/<timestamp>/).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ARGS=("$@")

QUICK=0 LITELLM=1 NGINX=1 WRITE=0 SOAK=1000000 SOAK_GIVEN=0 DURATION="" GW_LOG=warn,pretty
GOAL=1 GOAL_ONLY=0 GOAL_ROUNDS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --goal-only) GOAL_ONLY=1 ;;
        --goal-rounds) GOAL_ROUNDS=${2:?--goal-rounds needs a number}; shift ;;
        --no-litellm) LITELLM=0 ;;
        --no-nginx) NGINX=0 ;;
        --write) WRITE=1 ;;
        --soak) SOAK=${2:?--soak needs a number}; SOAK_GIVEN=1; shift ;;
        --duration) DURATION=${2:?--duration needs seconds}; shift ;;
        --log) GW_LOG=${2:?--log needs a filter}; [[ $GW_LOG == *,* ]] || GW_LOG="$GW_LOG,pretty"; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ $GOAL_ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--goal-rounds: not a positive number: $GOAL_ROUNDS" >&2; exit 2; }
[[ $SOAK =~ ^[0-9]+$ ]] || { echo "--soak: not a number: $SOAK" >&2; exit 2; }
if [ "$GOAL_ONLY" = 1 ]; then
    # Only the goal section (and the soak when asked for): the rest of a full run is skipped.
    LITELLM=0 NGINX=0 GOAL=1
    [ "$SOAK_GIVEN" = 1 ] || SOAK=0
fi
if [ "$QUICK" = 1 ]; then
    LITELLM=0 NGINX=0 SOAK=0
    [ "$GOAL_ONLY" = 1 ] || GOAL=0
    DURATION=${DURATION:-2}
    WARMUP=0.5 SOAK_EVERY=1
else
    DURATION=${DURATION:-10}
    WARMUP=1 SOAK_EVERY=5
fi
LITELLM_VERSION=1.106.12
LITELLM_VENV="$ROOT/bench/.venv-litellm"
CONCURRENCIES=(1 32 256)
RATES=(1000 5000)
SSE_RATE=100
MODEL=llama-3.1-8b-instant

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS_DIR="$ROOT/bench/results"
RAW="$RESULTS_DIR/$STAMP"
REPORT="$RESULTS_DIR/$STAMP.md"
mkdir -p "$RAW"
JSONL="$RAW/results.jsonl"
: > "$JSONL"

# ---------------------------------------------------------------- process bookkeeping
PIDS=()      # processes we started, stopped in reverse order on exit
GROUPS_=()   # process groups we started with setsid (LiteLLM and its workers)
cleanup() {
    local rc=$?
    set +e
    for ((i = ${#GROUPS_[@]} - 1; i >= 0; i--)); do
        kill -TERM -- "-${GROUPS_[i]}" 2>/dev/null
    done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[i]}" 2>/dev/null
    done
    local deadline=$((SECONDS + 5))
    for pid in "${PIDS[@]}" "${GROUPS_[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    for g in "${GROUPS_[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
    wait 2>/dev/null
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() { # stop tracking a pid we stopped ourselves
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

stop_pid() { # SIGTERM, wait up to $2 s (default 15), then SIGKILL
    local pid=$1 limit=${2:-15} deadline
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + limit))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

stop_group() { # SIGTERM a process group we made with setsid, wait up to $2 s, then SIGKILL it
    local pgid=$1 limit=${2:-15} deadline keep=() g
    kill -TERM -- "-$pgid" 2>/dev/null || true
    deadline=$((SECONDS + limit))
    while kill -0 -- "-$pgid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    wait "$pgid" 2>/dev/null || true
    for g in "${GROUPS_[@]}"; do [ "$g" = "$pgid" ] || keep+=("$g"); done
    GROUPS_=("${keep[@]}")
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # url, seconds, pid to watch: until the URL answers 2xx
    local url=$1 limit=$2 pid=$3 deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------- /proc accounting
CLK_TCK=$(getconf CLK_TCK)
tree_pids() { # a pid and all its descendants
    local p=$1 c
    echo "$p"
    for c in $(pgrep -P "$p" 2>/dev/null || true); do tree_pids "$c"; done
}
cpu_ticks() { # utime+stime (fields 14 and 15 of /proc/PID/stat) summed over the process tree
    local total=0 p t
    for p in $(tree_pids "$1"); do
        # Drop "pid (comm) " first: comm may contain spaces; field 14 is then the 12th.
        t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
status_kb() { # VmHWM or VmRSS in kB, summed over the process tree
    local total=0 p v
    for p in $(tree_pids "$1"); do
        v=$(awk -v k="$2:" '$1 == k {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

reset_hwm() { # start a new VmHWM period (writing 5 to clear_refs resets the peak RSS)
    local p
    for p in $(tree_pids "$1"); do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done
}

# ---------------------------------------------------------------- tools
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"

apt_install() { # install Debian packages, running apt-get update only if the first try fails
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "$@" >"$RAW/apt.log" 2>&1 && return 0
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update >>"$RAW/apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "$@" >>"$RAW/apt.log" 2>&1
}
WRK=1
if ! command -v wrk >/dev/null; then
    log "installing wrk (Debian package)"
    apt_install wrk || { log "wrk could not be installed (see $RAW/apt.log): fixed-concurrency runs use examples/loadgen.rs instead"; WRK=0; }
fi

log "building (release): gateway and examples"
cargo build --release --bin llm-observability --examples 2>&1 | tail -n 3 >&2
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GATEWAY="$TARGET_DIR/release/llm-observability"
FAKE="$TARGET_DIR/release/examples/fake_upstream"
LOADGEN="$TARGET_DIR/release/examples/loadgen"
FLOOR="$TARGET_DIR/release/examples/floor_proxy"
for b in "$GATEWAY" "$FAKE" "$LOADGEN" "$FLOOR"; do [ -x "$b" ] || die "missing $b after the build"; done

# Nothing here may go through a proxy.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

# ---------------------------------------------------------------- servers
listening_port() { # name: the port its log's `listening on 127.0.0.1:PORT` line names (10 s at most)
    local deadline=$((SECONDS + 10)) port=""
    while [ -z "$port" ] && [ $SECONDS -lt $deadline ]; do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$RAW/$1.log" 2>/dev/null || true)
        [ -n "$port" ] || sleep 0.05
    done
    [ -n "$port" ] || { cat "$RAW/$1.log" >&2; die "$1 did not start"; }
    echo "$port"
}

start_fake() { # name, extra args...: starts a fake_upstream, sets FAKE_PID and FAKE_PORT
    local name=$1; shift
    "$FAKE" --port 0 "$@" >"$RAW/$name.log" 2>&1 &
    FAKE_PID=$!
    PIDS+=("$FAKE_PID")
    FAKE_PORT=$(listening_port "$name")
}

start_fake upstream --workers 1 --chunks 20 --chunk-delay-ms 10
UP_PID=$FAKE_PID UP_PORT=$FAKE_PORT
start_fake otlp-receiver --workers 1
OTLP_PID=$FAKE_PID OTLP_PORT=$FAKE_PORT
UP="http://127.0.0.1:$UP_PORT"
log "fake Groq upstream on :$UP_PORT (pid $UP_PID), OTLP receiver on :$OTLP_PORT (pid $OTLP_PID)"

stat_field() { # JSON field of a fake_upstream's /stats
    curl -fsS --max-time 5 "http://127.0.0.1:$1/stats" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}

start_gateway() { # name, extra env...: sets GW_PID, GW_PORT and GW_METRICS_PORT
    local name=$1; shift
    GW_PORT=$(free_port)
    local metrics_port
    metrics_port=$(free_port)
    GW_METRICS_PORT=$metrics_port
    # A clean environment, and a working directory without a .env for dotenvy to pick up.
    (cd "$RAW" && exec env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
        APP_HOST=127.0.0.1 APP_PORT="$GW_PORT" METRICS_HOST=127.0.0.1 METRICS_PORT="$metrics_port" \
        GROQ_API_KEY=gsk_bench GROQ_BASE_URL="$UP/openai/v1" LLM_MAX_RETRIES=0 \
        RUST_LOG="${GW_LOG%%,*}" LOG_FORMAT="${GW_LOG#*,}" SHUTDOWN_GRACE_SECS=2 "$@" "$GATEWAY") >"$RAW/$name.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_http "http://127.0.0.1:$GW_PORT/healthz" 20 "$GW_PID" ||
        { cat "$RAW/$name.log" >&2; die "gateway $name did not start"; }
    log "gateway $name on :$GW_PORT (pid $GW_PID, metrics :$metrics_port)"
}

# ---------------------------------------------------------------- request bodies
CHAT_BODY='{"prompt":"Explain observability in 3 sentences","max_tokens":100,"temperature":0.7}'
OPENAI_BODY='{"model":"'$MODEL'","messages":[{"role":"user","content":"Explain observability in 3 sentences"}],"max_tokens":100,"temperature":0.7,"stream":false}'
STREAM_BODY='{"model":"'$MODEL'","messages":[{"role":"user","content":"hi"}],"stream":true}'

write_lua() { # file, body, extra header lines...: a wrk script that POSTs and prints JSON
    local file=$1 body=$2; shift 2
    {
        echo 'wrk.method = "POST"'
        echo 'wrk.headers["Content-Type"] = "application/json"'
        local h
        for h in "$@"; do echo "wrk.headers[\"${h%%:*}\"] = \"${h#*: }\""; done
        if [[ $body == *@N@* ]]; then
            # `@N@` becomes a number unique to each request (a response cache miss every time):
            # a prefix unique to this script (one per measured run), wrk's thread, a counter.
            cat <<LUA
local body = [==[$body]==]
local prefix, n = "$(date +%s%N)", 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
request = function()
    n = n + 1
    return wrk.format(nil, nil, nil, (body:gsub("@N@", prefix .. "-" .. (tid or 0) .. "-" .. n)))
end
LUA
        else
            echo "wrk.body = [==[$body]==]"
        fi
        cat <<'LUA'
function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local p = function(q) return latency:percentile(q) / 1000 end
  io.write(string.format(
    '{"mode":"concurrency","tool":"wrk","duration_s":%.3f,"sent":%d,"ok":%d,"errors":%d,' ..
    '"errors_by_kind":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"completed_total":%d,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,' ..
    '"max_ms":%.3f,"mean_ms":%.3f}\n',
    secs, summary.requests, summary.requests - e.status,
    e.connect + e.read + e.write + e.status + e.timeout,
    e.connect, e.read, e.write, e.status, e.timeout,
    summary.requests, summary.requests / secs, p(50), p(90), p(99), p(99.9),
    latency.max / 1000, latency.mean / 1000))
end
LUA
    } >"$file"
}

# ---------------------------------------------------------------- one measurement
# measure VARIANT LOAD PID URL BODY [HEADER]: LOAD is cN (closed loop), rN (open loop at N/s)
# or sseN (open loop SSE at N/s). Appends one JSON line to results.jsonl. `@N@` in BODY is
# replaced by a number unique to each request. The goal section sets, as locals that measure
# sees (bash's dynamic scope): MEASURE_NAME, the stem of the run's files (default VARIANT, whose
# runs it repeats); MEASURE_TAGS, more JSON fields of the line (`,"goal":true,...`, which
# report.py groups by); MEASURE_SIDE_PID, a helper process whose CPU is recorded beside
# (side_cpu_ticks: the redis-server a gateway uses).
measure() {
    local variant=$1 load=$2 pid=$3 url=$4 body=$5 header=${6:-}
    local name=${MEASURE_NAME:-$variant} tags=${MEASURE_TAGS:-} side=${MEASURE_SIDE_PID:-}
    local out="$RAW/$name-$load.out" before after hwm rss result side_before=0 side_json=""
    local hargs=()
    [ -n "$header" ] && hargs=(--header "$header")
    [ "$load" = soak ] || reset_hwm "$pid"
    [ -z "$side" ] || side_before=$(cpu_ticks "$side")
    before=$(cpu_ticks "$pid")
    case "$load" in
        c*)
            local c=${load#c}
            if [ "$WRK" = 1 ]; then
                local lua="$RAW/$name.lua"
                if [ -n "$header" ]; then write_lua "$lua" "$body" "$header"; else write_lua "$lua" "$body"; fi
                wrk -t1 -c"$c" -d"${DURATION}s" --timeout 30s -s "$lua" "$url" >"$out" 2>&1 || true
            else
                "$LOADGEN" --url "$url" --body "$body" "${hargs[@]}" --concurrency "$c" \
                    --duration "$DURATION" --timeout 30 >"$out" 2>&1 || true
            fi ;;
        r*)
            "$LOADGEN" --url "$url" --body "$body" "${hargs[@]}" --rate "${load#r}" \
                --duration "$DURATION" --warmup "$WARMUP" --timeout 10 >"$out" 2>&1 || true ;;
        sse*)
            "$LOADGEN" --url "$url" --body "$body" "${hargs[@]}" --rate "${load#sse}" --sse \
                --duration "$DURATION" --warmup "$WARMUP" --timeout 10 >"$out" 2>&1 || true ;;
        soak)
            "$LOADGEN" --url "$url" --body "$body" "${hargs[@]}" --concurrency 32 \
                --requests "$SOAK" --timeout 30 >"$out" 2>&1 || true ;;
    esac
    after=$(cpu_ticks "$pid")
    [ -z "$side" ] || side_json=",\"side_cpu_ticks\":$(($(cpu_ticks "$side") - side_before))"
    hwm=$(status_kb "$pid" VmHWM)
    rss=$(status_kb "$pid" VmRSS)
    result=$(grep -m1 '^{' "$out" || true)
    if [ -z "$result" ]; then
        log "  $variant $load: no result (see $out)"
        result='null'
    fi
    printf '{"variant":"%s","load":"%s"%s,"cpu_ticks":%s%s,"clk_tck":%s,"hwm_kb":%s,"rss_kb":%s,"result":%s}\n' \
        "$variant" "$load" "$tags" "$((after - before))" "$side_json" "$CLK_TCK" "${hwm:-0}" "${rss:-0}" \
        "$result" >>"$JSONL"
    python3 "$ROOT/bench/report.py" line "$JSONL" >&2 || true
}

warm_up() { # url body [header]: short closed-loop burst, not recorded
    local hargs=()
    [ -n "${3:-}" ] && hargs=(--header "$3")
    "$LOADGEN" --url "$1" --body "$2" "${hargs[@]}" --concurrency 32 --duration "$WARMUP" \
        --timeout 30 >/dev/null 2>&1 || true
}

run_suite() { # variant pid url body [header]
    local variant=$1 pid=$2 url=$3 body=$4 header=${5:-} c r
    log "== $variant: warm-up, then ${DURATION} s per run"
    warm_up "$url" "$body" "$header"
    for c in "${CONCURRENCIES[@]}"; do measure "$variant" "c$c" "$pid" "$url" "$body" "$header"; done
    for r in "${RATES[@]}"; do measure "$variant" "r$r" "$pid" "$url" "$body" "$header"; done
}

# ---------------------------------------------------------------- (a) direct
[ "$GOAL_ONLY" = 1 ] || run_suite direct "$UP_PID" "$UP/openai/v1/chat/completions" "$OPENAI_BODY"

# ---------------------------------------------------------------- OTLP accounting
# OTLP accounting per gateway process: what the receiver got between its start and its exit
# (SIGTERM flushes the span queue), against the upstream calls it made.
otlp_mark() {
    NOT_THROUGH_GATEWAY=0 # upstream calls in the window made directly (the direct SSE row)
    OTLP_MARK=("$(stat_field "$OTLP_PORT" otlp_requests)" "$(stat_field "$OTLP_PORT" otlp_bytes)"
        "$(stat_field "$OTLP_PORT" otlp_spans)" "$(stat_field "$UP_PORT" chat_requests)")
}
span_outcome() { # metrics port, outcome: the gateway's own llm_gateway_spans_total count
    curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" |
        sed -n "s/^llm_gateway_spans_total{outcome=\"$2\"} \([0-9]*\).*/\1/p" | grep . || echo 0
}
GW_SPANS='"gateway_spans_dropped":null,"gateway_spans_failed":null'
gateway_span_outcomes() { # metrics port: sets GW_SPANS, read just before the gateway stops
    GW_SPANS="\"gateway_spans_dropped\":$(span_outcome "$1" dropped),\"gateway_spans_failed\":$(span_outcome "$1" failed)"
}
otlp_since_mark() { # prints a JSON object
    printf '{%s,"gateway_upstream_calls":%s,"otlp_requests":%s,"otlp_bytes":%s,"otlp_spans":%s,"otlp_unparsed":%s}' \
        "$GW_SPANS" \
        "$(($(stat_field "$UP_PORT" chat_requests) - OTLP_MARK[3] - NOT_THROUGH_GATEWAY))" \
        "$(($(stat_field "$OTLP_PORT" otlp_requests) - OTLP_MARK[0]))" \
        "$(($(stat_field "$OTLP_PORT" otlp_bytes) - OTLP_MARK[1]))" \
        "$(($(stat_field "$OTLP_PORT" otlp_spans) - OTLP_MARK[2]))" \
        "$(stat_field "$OTLP_PORT" otlp_unparsed)"
}
FULL_ENV=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_TRACES_SAMPLER=always_on)

# ---------------------------------------------------------------- the goal's configurations (issue 18)
# The service's default configuration: a log line per request (RUST_LOG=info, pretty, written to
# the gateway's log file) and every span exported to the live receiver. These come after
# start_gateway's own RUST_LOG and LOG_FORMAT (--log), and env keeps the last of each.
DEFAULT_ENV=(RUST_LOG=info LOG_FORMAT=pretty "${FULL_ENV[@]}")
# This stage's features on top: bench/goal.toml (model "bench" → a route with two targets; the
# virtual key sk-bench with a team and budgets, its ledger in process) and the response cache in
# memory, missed by every request (a unique body each, `@N@`). CACHE_BACKEND=memory keeps the
# cache in process when REDIS_URL is added (goal-features-redis): there only the key's ledger
# moves to Redis (REDIS_URL alone would move the cache too).
sed "s|@UPSTREAM@|$UP/openai/v1|g" "$ROOT/bench/goal.toml" >"$RAW/goal.toml"
FEATURES_ENV=("${DEFAULT_ENV[@]}" GATEWAY_CONFIG="$RAW/goal.toml" CACHE_ENABLED=true CACHE_BACKEND=memory)
KEY_AUTH="Authorization: Bearer sk-bench"
GOAL_CHAT_BODY='{"prompt":"Explain observability in 3 sentences (@N@)","model":"bench","max_tokens":100,"temperature":0.7}'
GOAL_OPENAI_BODY='{"model":"bench","messages":[{"role":"user","content":"Explain observability in 3 sentences (@N@)"}],"max_tokens":100,"temperature":0.7,"stream":false}'

probe() { # name url body [header] [miss]: the request once with curl; a 200 (and with `miss`,
    # a response cache miss), or exit printing the answer: a run of errors measures the wrong thing
    local name=$1 url=$2 body=${3//@N@/probe-$(date +%s%N)} header=${4:-} miss=${5:-} status hargs=()
    [ -n "$header" ] && hargs=(-H "$header")
    status=$(curl -sS -o "$RAW/probe-$name.body" -D "$RAW/probe-$name.headers" -w '%{http_code}' \
        --max-time 30 -H 'content-type: application/json' "${hargs[@]}" --data-binary "$body" "$url" || true)
    if [ "$status" != 200 ]; then
        log "$name: POST $url answered ${status:-nothing}:"
        head -c 2000 "$RAW/probe-$name.body" >&2 2>/dev/null; echo >&2
        die "$name does not answer its request with 200 (raw data in $RAW)"
    fi
    if [ "$miss" = miss ] && ! grep -qi '^x-llmobs-cache: miss' "$RAW/probe-$name.headers"; then
        die "$name: the probe was not a response cache miss ($(grep -i '^x-llmobs-cache' "$RAW/probe-$name.headers" || echo 'no x-llmobs-cache header'))"
    fi
}

gateway_counters() { # metrics port: the gateway's own counts as JSON, read just before it stops
    local text
    text=$(curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics") || { echo null; return 0; }
    python3 -c '
import json, re, sys
out = {"requests": 0, "cache": {}, "ledger_errors": 0, "spans_dropped": 0, "spans_failed": 0}
for line in sys.stdin:
    m = re.match(r"(\w+)(?:\{([^}]*)\})? (\S+)", line)
    if not m or line.startswith("#"):
        continue
    name, labels = m.group(1), dict(re.findall(r"(\w+)=\"([^\"]*)\"", m.group(2) or ""))
    value = lambda: int(float(m.group(3)))
    if name == "llm_cache_requests_total":
        result = labels.get("result", "?")
        out["cache"][result] = out["cache"].get(result, 0) + value()
    elif name == "http_server_request_duration_seconds_count" and labels.get("http_route", "").startswith(("/api/", "/v1/")):
        out["requests"] += value()
    elif name == "llm_ledger_errors_total":
        out["ledger_errors"] += value()
    elif name == "llm_gateway_spans_total" and labels.get("outcome") in ("dropped", "failed"):
        out["spans_" + labels["outcome"]] += value()
print(json.dumps(out))' <<<"$text" || echo null
}

request_log_lines() { # gateway log file: its per-request lines ("request completed")
    local n
    n=$(grep -c 'request completed' "$1" 2>/dev/null) || true
    echo "${n:-0}"
}
trim_log() { # gateway log file: keep its first and last 100 lines (the soak writes a million)
    local f=$1 n
    n=$(wc -l <"$f")
    [ "$n" -gt 1000 ] || return 0
    { head -n 100 "$f"; echo "[bench/run.sh: $((n - 200)) lines left out]"; tail -n 100 "$f"; } >"$f.trim"
    mv "$f.trim" "$f"
}

# ---------------------------------------------------------------- (b) gateway, full telemetry
OTLP_FULL=null
if [ "$GOAL_ONLY" = 0 ]; then
    otlp_mark
    start_gateway gateway-full "${FULL_ENV[@]}"
    FULL_PID=$GW_PID FULL_PORT=$GW_PORT FULL_METRICS_PORT=$GW_METRICS_PORT
    run_suite gateway-full "$FULL_PID" "http://127.0.0.1:$FULL_PORT/api/chat" "$CHAT_BODY"

    # ------------------------------------------------------------ (e) streaming
    STREAM_STATUS=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
        -H 'content-type: application/json' -d "$STREAM_BODY" \
        "http://127.0.0.1:$FULL_PORT/v1/chat/completions" || echo 000)
    if [ "$STREAM_STATUS" = 404 ]; then
        echo "streaming: skipped (endpoint not available)"
        echo '{"streaming":"skipped (endpoint not available)"}' >"$RAW/streaming.json"
    else
        log "== streaming (first probe answered $STREAM_STATUS): time to first chunk at $SSE_RATE streams/s"
        direct_before=$(stat_field "$UP_PORT" chat_requests)
        measure direct "sse$SSE_RATE" "$UP_PID" "$UP/openai/v1/chat/completions" "$STREAM_BODY"
        NOT_THROUGH_GATEWAY=$(($(stat_field "$UP_PORT" chat_requests) - direct_before))
        measure gateway-full "sse$SSE_RATE" "$FULL_PID" "http://127.0.0.1:$FULL_PORT/v1/chat/completions" "$STREAM_BODY"
    fi
    gateway_span_outcomes "$FULL_METRICS_PORT"
    stop_pid "$FULL_PID" 20
    sleep 0.2
    OTLP_FULL=$(otlp_since_mark)
    log "OTLP receiver, gateway-full: $OTLP_FULL"
fi

# ---------------------------------------------------------------- soak (fresh gateway, the goal's features)
# Issue 18's soak: memory flat and RSS < 50 MB with this stage's features on, so the soak's
# gateway is goal-features' configuration (route, key, in-memory cache missed every time, log
# line on, full telemetry), driven by loadgen with a unique body per request.
OTLP_SOAK=null
if [ "$SOAK" -gt 0 ]; then
    otlp_mark
    start_gateway gateway-soak "${FEATURES_ENV[@]}"
    SOAK_PID=$GW_PID
    SOAK_URL="http://127.0.0.1:$GW_PORT/api/chat"
    probe gateway-soak "$SOAK_URL" "$GOAL_CHAT_BODY" "$KEY_AUTH" miss
    log "== soak: $SOAK requests at concurrency 32 through a fresh gateway with the goal's features, RSS every ${SOAK_EVERY} s"
    soak_tsv="$RAW/soak.tsv"
    printf 'elapsed_s\tupstream_requests\trss_kb\thwm_kb\n' >"$soak_tsv"
    soak_base=$(stat_field "$UP_PORT" chat_requests)
    (
        set +e
        t0=$SECONDS
        while kill -0 "$SOAK_PID" 2>/dev/null; do
            n=$(stat_field "$UP_PORT" chat_requests)
            printf '%s\t%s\t%s\t%s\n' "$((SECONDS - t0))" "$((${n:-0} - soak_base))" \
                "$(status_kb "$SOAK_PID" VmRSS)" "$(status_kb "$SOAK_PID" VmHWM)" >>"$soak_tsv"
            sleep "$SOAK_EVERY"
        done
    ) &
    SAMPLER_PID=$!
    PIDS+=("$SAMPLER_PID")
    measure gateway-features soak "$SOAK_PID" "$SOAK_URL" "$GOAL_CHAT_BODY" "$KEY_AUTH"
    stop_pid "$SAMPLER_PID" 2
    printf '%s\t%s\t%s\t%s\n' end "$(($(stat_field "$UP_PORT" chat_requests) - soak_base))" \
        "$(status_kb "$SOAK_PID" VmRSS)" "$(status_kb "$SOAK_PID" VmHWM)" >>"$soak_tsv"
    gateway_span_outcomes "$GW_METRICS_PORT"
    soak_counters=$(gateway_counters "$GW_METRICS_PORT")
    stop_pid "$SOAK_PID" 20
    printf '{"config":"features","endpoint":"/api/chat","counters":%s,"log_lines":%s}\n' \
        "$soak_counters" "$(request_log_lines "$RAW/gateway-soak.log")" >"$RAW/soak.json"
    trim_log "$RAW/gateway-soak.log"
    sleep 0.2
    OTLP_SOAK=$(otlp_since_mark)
    log "OTLP receiver, soak: $OTLP_SOAK"
fi
echo "{\"gateway_full\":$OTLP_FULL,\"soak\":$OTLP_SOAK}" >"$RAW/otlp.json"

# ---------------------------------------------------------------- (c) gateway, OTEL_SDK_DISABLED
if [ "$GOAL_ONLY" = 0 ]; then
    otlp_mark
    start_gateway gateway-nootel OTEL_SDK_DISABLED=true
    NOOTEL_PID=$GW_PID
    run_suite gateway-nootel "$NOOTEL_PID" "http://127.0.0.1:$GW_PORT/api/chat" "$CHAT_BODY"
    GW_SPANS='"gateway_spans_dropped":null,"gateway_spans_failed":null'
    stop_pid "$NOOTEL_PID" 20
    echo "{\"gateway_nootel\":$(otlp_since_mark)}" >"$RAW/otlp-disabled.json"
fi

# ---------------------------------------------------------------- (d) LiteLLM proxy
if [ "$LITELLM" = 1 ]; then
    installed=$("$LITELLM_VENV/bin/python" -c \
        'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null || true)
    if [ ! -x "$LITELLM_VENV/bin/litellm" ] || [ "$installed" != "$LITELLM_VERSION" ]; then
        log "installing litellm[proxy]==$LITELLM_VERSION into $LITELLM_VENV (several minutes)"
        { python3 -m venv "$LITELLM_VENV" &&
            timeout 1200 "$LITELLM_VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"; } \
            >"$RAW/litellm-install.log" 2>&1 || log "litellm install failed (see $RAW/litellm-install.log)"
    fi
    if [ -x "$LITELLM_VENV/bin/litellm" ]; then
        LL_PORT=$(free_port)
        cat >"$RAW/litellm.yaml" <<EOF
model_list:
  - model_name: $MODEL
    litellm_params:
      model: groq/$MODEL
      api_base: $UP/openai/v1
      api_key: gsk_bench
litellm_settings:
  telemetry: false
  drop_params: true
general_settings:
  master_key: sk-bench
EOF
        (cd "$RAW" && exec setsid env LITELLM_MASTER_KEY=sk-bench LITELLM_LOCAL_MODEL_COST_MAP=True \
            LITELLM_LOG=ERROR TIMEOUT_WORKER_HEALTHCHECK=300 \
            "$LITELLM_VENV/bin/litellm" --config "$RAW/litellm.yaml" --host 127.0.0.1 \
            --port "$LL_PORT" --num_workers 1) >"$RAW/litellm.log" 2>&1 &
        LL_PID=$!
        GROUPS_+=("$LL_PID")
        if wait_http "http://127.0.0.1:$LL_PORT/health/liveliness" 180 "$LL_PID"; then
            log "LiteLLM $LITELLM_VERSION on :$LL_PORT (pid $LL_PID)"
            LL_URL="http://127.0.0.1:$LL_PORT/v1/chat/completions"
            LL_AUTH="Authorization: Bearer sk-bench"
            probe=$(curl -s -w ' %{http_code}' --max-time 30 -H 'content-type: application/json' \
                -H "$LL_AUTH" -d "$OPENAI_BODY" "$LL_URL" || true)
            echo "$probe" >"$RAW/litellm-probe.txt"
            if [ "${probe##* }" = 200 ]; then
                log "== litellm: warm-up, then ${DURATION} s per run (fixed concurrency only: it cannot sustain 1,000 req/s here)"
                warm_up "$LL_URL" "$OPENAI_BODY" "$LL_AUTH"
                for c in "${CONCURRENCIES[@]}"; do
                    measure litellm "c$c" "$LL_PID" "$LL_URL" "$OPENAI_BODY" "$LL_AUTH"
                done
            else
                log "litellm: skipped (probe request failed: ${probe:0:300})"
            fi
        else
            log "litellm: skipped (did not become ready; see $RAW/litellm.log)"
        fi
        stop_group "$LL_PID" 15
    fi
else
    log "litellm: skipped (--quick, --goal-only or --no-litellm)"
fi

# ---------------------------------------------------------------- reverse proxies and Redis
start_nginx() { # name: nginx-light as a plain reverse proxy of the fake upstream (keep-alive
    # upstream, no access log, no telemetry; config and logs in $RAW/NAME/); sets NG_PID and
    # NG_PORT, or logs why not and fails
    local name=$1 dir="$RAW/$1"
    command -v nginx >/dev/null || { log "installing nginx-light (Debian package)"; apt_install nginx-light || true; }
    command -v nginx >/dev/null || { log "$name: skipped (nginx not installable; see $RAW/apt.log)"; return 1; }
    NG_PORT=$(free_port)
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
worker_processes auto;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    upstream fake { server 127.0.0.1:$UP_PORT; keepalive 512; }
    server {
        listen 127.0.0.1:$NG_PORT;
        location / {
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    nginx -p "$dir/" -c "$dir/nginx.conf" -g 'daemon off;' >"$RAW/$name.log" 2>&1 &
    NG_PID=$!
    PIDS+=("$NG_PID")
    if ! wait_http "http://127.0.0.1:$NG_PORT/stats" 10 "$NG_PID"; then
        log "$name: skipped (did not start; see $RAW/$name.log)"
        stop_pid "$NG_PID" 10
        return 1
    fi
    log "$name: nginx reverse proxy on :$NG_PORT (pid $NG_PID)"
}

start_floor() { # name, extra args: examples/floor_proxy.rs relaying to the fake upstream: sets FLOOR_PID and FLOOR_PORT
    local name=$1; shift
    "$FLOOR" --port 0 --upstream "$UP" "$@" >"$RAW/$name.log" 2>&1 &
    FLOOR_PID=$!
    PIDS+=("$FLOOR_PID")
    FLOOR_PORT=$(listening_port "$name")
    log "$name: floor_proxy $* on :$FLOOR_PORT (pid $FLOOR_PID)"
}

REDIS_SKIPPED="" REDIS_URL=""
start_redis() { # a throwaway redis-server (Debian's, no persistence) on a free port: sets
    # REDIS_PID and REDIS_URL, or sets REDIS_SKIPPED (why not) and fails
    command -v redis-server >/dev/null || { log "installing redis-server (Debian package)"; apt_install redis-server || true; }
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        REDIS_SKIPPED="redis-server is missing and could not be installed (see $RAW/apt.log)"
        return 1
    fi
    local port deadline=$((SECONDS + 10))
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$RAW" \
        >"$RAW/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    until redis-cli -p "$port" ping >/dev/null 2>&1; do
        if ! kill -0 "$REDIS_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            REDIS_SKIPPED="redis-server did not start (see $RAW/redis.log)"
            stop_pid "$REDIS_PID" 2
            return 1
        fi
        sleep 0.05
    done
    REDIS_PORT=$port REDIS_URL="redis://127.0.0.1:$port"
    log "redis-server $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') on :$port (pid $REDIS_PID)"
}

# ---------------------------------------------------------------- reference: nginx reverse proxy
# What a minimal C reverse proxy (no telemetry at all) achieves on the same machine: a floor for
# what any gateway can reach here, and a check on whether a target is reachable at all.
if [ "$NGINX" = 1 ]; then
    if start_nginx nginx; then
        run_suite nginx-proxy "$NG_PID" "http://127.0.0.1:$NG_PORT/openai/v1/chat/completions" "$OPENAI_BODY"
        stop_pid "$NG_PID" 10
    fi
fi

# ---------------------------------------------------------------- goal (issue 18)
# The gateway's CPU per request against nginx's, default and with this stage's features, in one
# run: every process stays up for the whole section and the variants take turns (round-robin,
# GOAL_ROUNDS rounds of DURATION s at concurrency 32, then the latency runs at concurrency 1), so
# the shared machine's drift hits all of them alike; report.py takes each row's median.
# The rows, by index: what measure needs, and which loads they are measured at.
G_NAME=() G_VARIANT=() G_ENDPOINT=() G_PID=() G_URL=() G_BODY=() G_HEADER=() G_SIDE=() G_MISS=()
G_C32=() G_C1=()
goal_row() { # loads (c32, c1 or c32+c1), variant, endpoint, pid, base URL, body, [header], [side pid]
    local i=${#G_NAME[@]} miss=""
    [[ $2 == goal-features* ]] && miss=miss
    G_NAME+=("$2${3//\//-}") G_VARIANT+=("$2") G_ENDPOINT+=("$3") G_PID+=("$4") G_URL+=("$5$3")
    G_BODY+=("$6") G_HEADER+=("${7:-}") G_SIDE+=("${8:-}") G_MISS+=("$miss")
    if [[ $1 == *c32* ]]; then G_C32+=("$i"); fi
    if [[ $1 == c1 || $1 == *+c1 ]]; then G_C1+=("$i"); fi
}
goal_measure() { # index, round, load: one measured run of a row, tagged for report.py
    local i=$1 round=$2 load=$3
    local MEASURE_NAME="${G_NAME[i]}-r$round" MEASURE_SIDE_PID=${G_SIDE[i]}
    local MEASURE_TAGS=",\"goal\":true,\"endpoint\":\"${G_ENDPOINT[i]}\",\"round\":$round"
    measure "${G_VARIANT[i]}" "$load" "${G_PID[i]}" "${G_URL[i]}" "${G_BODY[i]}" "${G_HEADER[i]}"
}

run_goal() {
    local i round gw k stopped=()
    local gw_names=() gw_pids=() gw_metrics=() nginx=false redis=null
    log "== goal (issue 18): CPU per request against nginx, $GOAL_ROUNDS round(s) of ${DURATION} s at concurrency 32, round-robin"
    if start_nginx goal-nginx; then
        nginx=true
        goal_row c32 goal-nginx /openai/v1/chat/completions "$NG_PID" "http://127.0.0.1:$NG_PORT" "$OPENAI_BODY"
        stopped+=("$NG_PID")
    fi
    start_floor goal-floor
    goal_row c32 goal-floor /v1/chat/completions "$FLOOR_PID" "http://127.0.0.1:$FLOOR_PORT" "$OPENAI_BODY"
    start_floor goal-bare --bare
    goal_row c32 goal-bare /v1/chat/completions "$FLOOR_PID" "http://127.0.0.1:$FLOOR_PORT" "$OPENAI_BODY"
    stopped+=("$FLOOR_PID")
    # The baseline of the p50 overhead at concurrency 1: the fake upstream itself.
    goal_row c1 goal-direct /openai/v1/chat/completions "$UP_PID" "$UP" "$OPENAI_BODY"

    start_gateway goal-default "${DEFAULT_ENV[@]}"
    gw_names+=(goal-default) gw_pids+=("$GW_PID") gw_metrics+=("$GW_METRICS_PORT")
    gw="http://127.0.0.1:$GW_PORT"
    goal_row c32+c1 goal-default /api/chat "$GW_PID" "$gw" "$CHAT_BODY"
    goal_row c32+c1 goal-default /v1/chat/completions "$GW_PID" "$gw" "$OPENAI_BODY"

    start_gateway goal-features "${FEATURES_ENV[@]}"
    gw_names+=(goal-features) gw_pids+=("$GW_PID") gw_metrics+=("$GW_METRICS_PORT")
    gw="http://127.0.0.1:$GW_PORT"
    goal_row c32 goal-features /api/chat "$GW_PID" "$gw" "$GOAL_CHAT_BODY" "$KEY_AUTH"
    goal_row c32+c1 goal-features /v1/chat/completions "$GW_PID" "$gw" "$GOAL_OPENAI_BODY" "$KEY_AUTH"

    if start_redis; then
        start_gateway goal-features-redis "${FEATURES_ENV[@]}" REDIS_URL="$REDIS_URL"
        gw_names+=(goal-features-redis) gw_pids+=("$GW_PID") gw_metrics+=("$GW_METRICS_PORT")
        gw="http://127.0.0.1:$GW_PORT"
        goal_row c32 goal-features-redis /api/chat "$GW_PID" "$gw" "$GOAL_CHAT_BODY" "$KEY_AUTH" "$REDIS_PID"
        goal_row c32 goal-features-redis /v1/chat/completions "$GW_PID" "$gw" "$GOAL_OPENAI_BODY" "$KEY_AUTH" "$REDIS_PID"
    else
        log "goal-features-redis: skipped ($REDIS_SKIPPED)"
    fi

    for i in "${!G_NAME[@]}"; do
        probe "${G_NAME[i]}" "${G_URL[i]}" "${G_BODY[i]}" "${G_HEADER[i]}" "${G_MISS[i]}"
    done
    log "goal: every row answered its probe with 200; warm-up, then the rounds"
    for i in "${G_C32[@]}"; do warm_up "${G_URL[i]}" "${G_BODY[i]}" "${G_HEADER[i]}"; done
    for round in $(seq "$GOAL_ROUNDS"); do
        log "-- goal round $round of $GOAL_ROUNDS"
        for i in "${G_C32[@]}"; do goal_measure "$i" "$round" c32; done
        for i in "${G_C1[@]}"; do goal_measure "$i" "$round" c1; done
    done

    # What the gateways did (cache lookups, ledger errors, spans dropped, request log lines) and
    # what Redis holds: evidence that each ran the configuration its row is named after.
    local gateways=""
    for k in "${!gw_names[@]}"; do
        gateways+="${gateways:+,}\"${gw_names[k]}\":{\"counters\":$(gateway_counters "${gw_metrics[k]}")"
        stop_pid "${gw_pids[k]}" 20
        gateways+=",\"log_lines\":$(request_log_lines "$RAW/${gw_names[k]}.log")}"
        trim_log "$RAW/${gw_names[k]}.log"
    done
    if [ -n "${REDIS_URL:-}" ]; then
        redis=$(printf '{"version":"%s","keys":%s,"cache":"memory"}' \
            "$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')" \
            "$(redis-cli -p "$REDIS_PORT" dbsize 2>/dev/null || echo null)")
        stopped+=("$REDIS_PID")
    else
        redis=$(printf '{"skipped":"%s"}' "$REDIS_SKIPPED")
    fi
    for i in "${stopped[@]}"; do stop_pid "$i" 10; done
    printf '{"rounds":%s,"duration_s":%s,"nginx":%s,"gateways":{%s},"redis":%s}\n' \
        "$GOAL_ROUNDS" "$DURATION" "$nginx" "$gateways" "$redis" >"$RAW/goal.json"
}
[ "$GOAL" = 0 ] || run_goal

# ---------------------------------------------------------------- report
META="$RAW/meta.json"
python3 - "$META" <<EOF
import json, os, platform, subprocess, sys
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception: return ""
model = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
mem_kb = int(sh("awk '/MemTotal/ {print \$2}' /proc/meminfo") or 0)
json.dump({
    "stamp": "$STAMP", "quick": $QUICK == 1, "duration_s": float("$DURATION"), "soak": int("$SOAK"),
    "command": "bench/run.sh" + "".join(" " + a for a in """${ARGS[*]:-}""".split()),
    "commit": sh("git rev-parse --short HEAD") or "unknown",
    "dirty": bool(sh("git status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock")),
    "nproc": sh("nproc"), "cpu": model, "mem_gb": round(mem_kb / 1048576, 1),
    "kernel": platform.release(), "rustc": sh("rustc --version"),
    "wrk": $WRK == 1, "wrk_version": sh("wrk -v 2>&1 | head -1"),
    "litellm": "$LITELLM_VERSION" if $LITELLM == 1 else None,
    "nginx": sh("nginx -v 2>&1") if $NGINX == 1 or $GOAL == 1 else None,
    "goal": $GOAL == 1, "goal_only": $GOAL_ONLY == 1, "goal_rounds": $GOAL_ROUNDS,
    "loadavg": "$LOADAVG",
}, open(sys.argv[1], "w"))
EOF
python3 "$ROOT/bench/report.py" markdown "$RAW" >"$REPORT"
cat "$REPORT"
log "report: $REPORT (raw data in $RAW)"
if [ "$WRITE" = 1 ]; then
    python3 "$ROOT/bench/report.py" write "$REPORT" "$ROOT/BENCHMARKS.md"
    log "BENCHMARKS.md updated"
fi
