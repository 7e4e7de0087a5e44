#!/usr/bin/env bash
# CPU per request of two gateway builds, measured alternately in one run (A, B, A, B, …) so
# that both see the same machine: the before/after figure of a change.
#
#   bench/compare.sh [--rounds N] [--duration S] [--connections C] [--log FILTER,FORMAT] [--path P]
#                    [--path-a P] [--path-b P] [--body-a FILE] [--body-b FILE]
#                    [--config-a FILE] [--config-b FILE] [--model-a M] [--model-b M]
#                    [--env-a VAR=VALUE]... [--env-b VAR=VALUE]... BIN_A BIN_B
#
#   --connections C  wrk's concurrency (default 32; 1 for the latency a lone client sees)
#   --rounds N    measured runs per binary (default 5); the medians are reported, and the
#                 median of the rounds' B - A (each round runs A then B, back to back)
#   --duration S  seconds per run (default 10)
#   --log F,FMT   the gateways' RUST_LOG and LOG_FORMAT (default info,pretty: the default
#                 configuration, one log line per request, written to a file)
#   --path P      both sides' endpoint (default /v1/chat/completions; /api/chat also works)
#   --path-X P    side X's endpoint, e.g. /v1/responses, /v1/embeddings, /v1/messages
#   --body-X F    side X's request body: a JSON file (bench/bodies/), sent as its bytes less the
#                 final newline, `@MODEL@` in it replaced by side X's model, and `@N@` (if any)
#                 by a number unique to each request (bench/bodies/chat-unique.json: a response
#                 cache miss every time). Default: bench/bodies/chat.json, or
#                 bench/bodies/api-chat.json for /api/chat
#   --config-X F  run side X with GATEWAY_CONFIG=F, `@UPSTREAM@` in it replaced by the fake
#                 upstream's OpenAI-style base URL (http://127.0.0.1:PORT/openai/v1) and
#                 `@UPSTREAM_ROOT@` by its root (http://127.0.0.1:PORT, an anthropic provider's
#                 base_url) (bench/routed.toml, bench/fallback.toml, bench/apis.toml); BIN_A may
#                 equal BIN_B to compare configurations or endpoints
#   --model-X M   the model side X asks for (default llama-3.1-8b-instant): fills `@MODEL@`
#   --env-X V=X   an extra variable of side X's gateway (repeatable), e.g. CACHE_ENABLED=true;
#                 `@REDIS@` in a value is replaced by the URL of a redis-server this script
#                 starts for the run (Debian's, on a free port, no persistence)
#
# BIN_A or BIN_B may be the word `nginx`: that side is then nginx-light as a plain keep-alive
# reverse proxy of the same fake upstream, no access log, no telemetry (as bench/run.sh's
# reference row), its CPU summed over its workers; its path gets the fake's `/openai` prefix.
#
# Every request carries `Authorization: Bearer sk-bench`: ignored without gateway keys, the key
# of bench/keys.toml with them.
#
# Each run: a fresh gateway process with full telemetry to a live OTLP receiver, a 1 s
# warm-up, then wrk at concurrency 32 against a fake upstream (all on 127.0.0.1, from
# examples/fake_upstream.rs: Groq's chat completions, OpenAI's Responses and embeddings,
# Anthropic's Messages). The gateway's environment: GROQ_API_KEY=gsk_bench,
# ANTHROPIC_API_KEY=sk-ant-bench, GROQ_BASE_URL at the fake, LLM_MAX_RETRIES=0. CPU is the
# gateway's utime+stime from /proc over the measured run, divided by the requests wrk
# completed (a streamed answer counts when its body ends). Before the first round each side's
# request is sent once with curl: it must answer 200 with no error event. Needs wrk (Debian)
# and a release build of the examples: `cargo build --release --examples`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=5 DURATION=10 GW_LOG=info,pretty URL_PATH=/v1/chat/completions CONNECTIONS=32
CONFIG_A="" CONFIG_B="" MODEL_A=llama-3.1-8b-instant MODEL_B=llama-3.1-8b-instant
PATH_A="" PATH_B="" BODY_A="" BODY_B="" ENV_A=() ENV_B=()
while [ $# -gt 2 ]; do
    case "$1" in
        --path-a) PATH_A=$2; shift ;;
        --path-b) PATH_B=$2; shift ;;
        --body-a) BODY_A=$(realpath "$2"); shift ;;
        --body-b) BODY_B=$(realpath "$2"); shift ;;
        --config-a) CONFIG_A=$(realpath "$2"); shift ;;
        --config-b) CONFIG_B=$(realpath "$2"); shift ;;
        --model-a) MODEL_A=$2; shift ;;
        --model-b) MODEL_B=$2; shift ;;
        --env-a) ENV_A+=("$2"); shift ;;
        --env-b) ENV_B+=("$2"); shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --log) GW_LOG=$2; shift ;;
        --path) URL_PATH=$2; shift ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
[ $# -eq 2 ] || { awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
PATH_A=${PATH_A:-$URL_PATH} PATH_B=${PATH_B:-$URL_PATH}
for body in "$BODY_A" "$BODY_B"; do
    [ -z "$body" ] || [ -f "$body" ] || { echo "no such body file: $body" >&2; exit 2; }
done
bin_path() { if [ "$1" = nginx ]; then command -v nginx >/dev/null || { echo "nginx is missing: apt-get install nginx-light" >&2; exit 1; }; echo nginx; else realpath "$1"; fi; }
BIN_A=$(bin_path "$1") BIN_B=$(bin_path "$2")
FAKE="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/fake_upstream"
[ -x "$FAKE" ] || { echo "missing $FAKE: cargo build --release --examples" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
tree_pids() { local c; echo "$1"; for c in $(pgrep -P "$1" 2>/dev/null || true); do tree_pids "$c"; done; }
cpu_ticks() { # utime+stime summed over the process tree (nginx's workers)
    local total=0 p t
    for p in $(tree_pids "$1"); do
        t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
# Processes are started in this shell (not in a command substitution's subshell), so that
# PIDS knows them and the trap stops them.
start_fake() { # variable, log file, args: starts one, sets the variable to its port
    local var=$1; shift
    "$FAKE" --port 0 "${@:2}" >"$1" 2>&1 &
    PIDS+=($!)
    local port="" deadline=$((SECONDS + 10))
    while [ -z "$port" ] && [ $SECONDS -lt $deadline ]; do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1" 2>/dev/null || true)
        [ -n "$port" ] || sleep 0.05
    done
    [ -n "$port" ] || { cat "$1" >&2; exit 1; }
    printf -v "$var" '%s' "$port"
}
start_fake UP_PORT "$WORK/upstream.log" --workers 1
start_fake OTLP_PORT "$WORK/otlp.log" --workers 1
# A Redis for the run, when a side's variables name one.
REDIS_URL=""
if [[ " ${ENV_A[*]} ${ENV_B[*]} " == *@REDIS@* ]]; then
    command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install redis-server" >&2; exit 1; }
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$WORK" >"$WORK/redis.log" 2>&1 &
    PIDS+=($!)
    until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.05; done
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
fi
ENV_A=("${ENV_A[@]//@REDIS@/$REDIS_URL}") ENV_B=("${ENV_B[@]//@REDIS@/$REDIS_URL}")

# One request script per side: that side's body file, `@MODEL@` replaced by its model.
for side in a b; do
    model=$MODEL_A path=$PATH_A body=$BODY_A
    [ "$side" = b ] && model=$MODEL_B path=$PATH_B body=$BODY_B
    if [ -z "$body" ]; then
        body="$ROOT/bench/bodies/chat.json"
        [ "$path" = /api/chat ] && body="$ROOT/bench/bodies/api-chat.json"
    fi
    BODY=$(<"$body")  # less the final newline
    BODY=${BODY//@MODEL@/$model}
    python3 -c 'import json, sys; json.loads(sys.argv[1])' "$BODY" 2>/dev/null \
        || { echo "side $side: not JSON: $BODY" >&2; exit 2; }
    [[ $BODY != *']==]'* ]] || { echo "side $side: the body may not contain ]==]" >&2; exit 2; }
    printf '%s' "$BODY" >"$WORK/body-$side.json"
    echo "${body#"$ROOT"/}" >"$WORK/body-$side.file"
    if [[ $BODY == *@N@* ]]; then
        # A number unique to each request, across wrk's runs (a random prefix per run).
        cat >"$WORK/post-$side.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
local body = [==[$BODY]==]
local prefix, n = nil, 0
request = function()
    if not prefix then
        math.randomseed(os.time() + math.floor(os.clock() * 1e6))
        prefix = tostring(math.random(1, 1e9))
    end
    n = n + 1
    return wrk.format(nil, nil, nil, (body:gsub("@N@", prefix .. "-" .. n)))
end
LUA
        BODY=${BODY//@N@/check}
        printf '%s' "$BODY" >"$WORK/body-$side.json"
    else
        cat >"$WORK/post-$side.lua" <<LUA
wrk.method = "POST"
wrk.body = [==[$BODY]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
LUA
    fi
done
# The configuration files, pointed at this run's fake upstream.
for side in a b; do
    config=$CONFIG_A; [ "$side" = b ] && config=$CONFIG_B
    [ -z "$config" ] || sed -e "s|@UPSTREAM_ROOT@|http://127.0.0.1:$UP_PORT|g" \
        -e "s|@UPSTREAM@|http://127.0.0.1:$UP_PORT/openai/v1|g" "$config" >"$WORK/gateway-$side.toml"
done

side_path() { if [ "$1" = a ]; then echo "$PATH_A"; else echo "$PATH_B"; fi; }

start_nginx() { # starts nginx as a reverse proxy of the fake upstream; sets GW_PID and GW_PORT
    GW_PORT=$(free_port)
    mkdir -p "$WORK/nginx/logs"
    cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes auto;
error_log $WORK/nginx/logs/error.log warn;
pid $WORK/nginx/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    upstream fake { server 127.0.0.1:$UP_PORT; keepalive 512; }
    server {
        listen 127.0.0.1:$GW_PORT;
        location / {
            rewrite ^/(.*)\$ /openai/\$1 break;
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /healthz { return 200; }
    }
}
NGINX
    nginx -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >"$WORK/gateway.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    local deadline=$((SECONDS + 10))
    until curl -fsS -o /dev/null "http://127.0.0.1:$GW_PORT/healthz" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { cat "$WORK/gateway.log" >&2; exit 1; }
        sleep 0.1
    done
}

start_gateway() { # binary, side (a or b): starts it, sets GW_PID and GW_PORT
    [ "$1" = nginx ] && { start_nginx; return; }
    # A free port can be taken between free_port and the gateway's bind (wrk's and the
    # gateway's own connections draw from the same range): then try other ports.
    local attempt
    for attempt in 1 2 3; do
        launch_gateway "$@" && return
        grep -q "Address already in use" "$WORK/gateway.log" || break
        echo "side $2: a port was taken before the gateway bound it; trying others" >&2
    done
    cat "$WORK/gateway.log" >&2
    exit 1
}

launch_gateway() { # binary, side: starts it on fresh ports; fails if it exits before /healthz
    local metrics config=()
    GW_PORT=$(free_port) metrics=$(free_port)
    [ -f "$WORK/gateway-$2.toml" ] && config=(GATEWAY_CONFIG="$WORK/gateway-$2.toml")
    if [ "$2" = a ]; then config+=("${ENV_A[@]}"); else config+=("${ENV_B[@]}"); fi
    # The side's own variables last: they override the defaults (e.g. --env-a RUST_LOG=warn).
    (cd "$WORK" && exec env -i PATH="$PATH" APP_HOST=127.0.0.1 APP_PORT="$GW_PORT" \
        METRICS_HOST=127.0.0.1 METRICS_PORT="$metrics" GROQ_API_KEY=gsk_bench \
        ANTHROPIC_API_KEY=sk-ant-bench \
        GROQ_BASE_URL="http://127.0.0.1:$UP_PORT/openai/v1" LLM_MAX_RETRIES=0 \
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" \
        RUST_LOG="${GW_LOG%%,*}" LOG_FORMAT="${GW_LOG#*,}" "${config[@]}" "$1") >"$WORK/gateway.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    local deadline=$((SECONDS + 20))
    until curl -fsS -o /dev/null "http://127.0.0.1:$GW_PORT/healthz" 2>/dev/null; do
        kill -0 "$GW_PID" 2>/dev/null && [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

stop_gateway() { # stops GW_PID and forgets it
    local keep=() p
    kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$GW_PID" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

check_side() { # binary, side: one request with curl; a 200 without an error event, or exit
    start_gateway "$1" "$2"
    local url="http://127.0.0.1:$GW_PORT$(side_path "$2")" status
    status=$(curl -sS -o "$WORK/answer-$2" -w '%{http_code} %{content_type}' \
        -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-bench' --data-binary "@$WORK/body-$2.json" "$url")
    stop_gateway
    if [ "${status%% *}" != 200 ] || grep -qE '^event: error|^data: \{"error"' "$WORK/answer-$2"; then
        echo "side $2: $url answered $status:" >&2; head -c 600 "$WORK/answer-$2" >&2; echo >&2
        tail -5 "$WORK/gateway.log" >&2; exit 1
    fi
    echo "side ${2^^}: POST $(side_path "$2") $(<"$WORK/body-$2.file") → $status, $(wc -c <"$WORK/answer-$2") bytes"
}

# A wrk latency figure (`812.00us`, `1.20ms`, `2.00s`) in milliseconds.
to_ms() { python3 -c "
import sys; v = sys.argv[1]
for unit, f in (('us', 1e-3), ('ms', 1.0), ('s', 1e3)):
    if v.endswith(unit): print(f'{float(v[:-len(unit)]) * f:.3f}'); break" "$1"; }

run_once() { # binary, side (a or b): prints µs of CPU per request, requests, p50 and p99 (ms)
    local before after requests url
    start_gateway "$1" "$2"
    url="http://127.0.0.1:$GW_PORT$(side_path "$2")"
    wrk -t1 -c"$CONNECTIONS" -d1s -s "$WORK/post-$2.lua" "$url" >/dev/null 2>&1
    before=$(cpu_ticks "$GW_PID")
    local out
    out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post-$2.lua" "$url")
    # Every answer must be a 200: a run of errors would measure the wrong thing.
    if grep -q "Non-2xx" <<<"$out"; then echo "side $2: non-2xx answers: $out" >&2; cat "$WORK/gateway.log" | tail -5 >&2; exit 1; fi
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    after=$(cpu_ticks "$GW_PID")
    stop_gateway
    local p50 p99
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    python3 -c "print(f'{($after - $before) / $(getconf CLK_TCK) * 1e6 / $requests:.1f} {$requests} $p50 $p99')"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

if [ "$PATH_A" = "$PATH_B" ]; then where=$PATH_A; else where="A $PATH_A, B $PATH_B"; fi
echo "concurrency $CONNECTIONS, $where, RUST_LOG/LOG_FORMAT=$GW_LOG, full telemetry, ${DURATION} s x $ROUNDS rounds"
check_side "$BIN_A" a; check_side "$BIN_B" b
for f in a b a50 b50 a99 b99; do : >"$WORK/$f"; done
for round in $(seq "$ROUNDS"); do
    run_once "$BIN_A" a >"$WORK/run"; read -r a a_req a50 a99 <"$WORK/run"
    run_once "$BIN_B" b >"$WORK/run"; read -r b b_req b50 b99 <"$WORK/run"
    echo "round $round: A $a µs/req ($a_req req, p50 $a50 ms, p99 $a99 ms)   B $b µs/req ($b_req req, p50 $b50 ms, p99 $b99 ms)"
    echo "$a" >>"$WORK/a"; echo "$b" >>"$WORK/b"
    echo "$a50" >>"$WORK/a50"; echo "$b50" >>"$WORK/b50"; echo "$a99" >>"$WORK/a99"; echo "$b99" >>"$WORK/b99"
done
echo "median CPU µs/request: A $(median <"$WORK/a")   B $(median <"$WORK/b")"
echo "median latency (ms): A p50 $(median <"$WORK/a50") p99 $(median <"$WORK/a99")   B p50 $(median <"$WORK/b50") p99 $(median <"$WORK/b99")"
echo "median of the rounds' B - A: $(paste -d' ' "$WORK/a" "$WORK/b" | awk '{printf "%.1f\n", $2 - $1}' | median) µs/request"
echo "A = $BIN_A ${CONFIG_A:+GATEWAY_CONFIG=$CONFIG_A} ${ENV_A[*]} POST $PATH_A $(<"$WORK/body-a.file") model $MODEL_A"
echo "B = $BIN_B ${CONFIG_B:+GATEWAY_CONFIG=$CONFIG_B} ${ENV_B[*]} POST $PATH_B $(<"$WORK/body-b.file") model $MODEL_B"
echo "fake upstream, requests received: $(curl -fsS "http://127.0.0.1:$UP_PORT/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(", ".join(f"{k} {v}" for k, v in s.items() if k.endswith("_requests") and not k.startswith("otlp") and v))')"
