#!/usr/bin/env bash
# Checks the observability stack's files without a Docker engine:
#
#   bash scripts/check-stack.sh                          # from the repository root
#   bash scripts/check-stack.sh --metrics-file m.txt     # also check names against a real scrape
#                                                        # (curl -s localhost:8001/metrics > m.txt)
#
# Installs what it needs if missing (Debian's prometheus for promtool, Debian's docker-compose
# 1.29, and check-jsonschema + PyYAML in a venv at .venv-stack), then runs every check, prints
# each command, and exits non-zero if any failed. The images themselves (collector, Jaeger,
# Grafana) cannot be installed here; their configs are checked structurally by check_stack.py.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

METRICS_FILE=scripts/testdata/sample-metrics.txt
EXTRA_ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --metrics-file) METRICS_FILE="$2"; shift 2 ;;
        --allow-missing) EXTRA_ARGS+=(--allow-missing "$2"); shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

VENV=.venv-stack
CHECK_JSONSCHEMA_VERSION=0.39.0   # pinned: its vendored compose-spec schema changes between releases

# ---------------------------------------------------------------------------------- installs
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_packages=()
command -v promtool >/dev/null || apt_packages+=(prometheus)
command -v docker-compose >/dev/null || apt_packages+=(docker-compose)
if [[ ${#apt_packages[@]} -gt 0 ]]; then
    echo "-- installing ${apt_packages[*]} (apt)"
    # --no-install-recommends: without it `prometheus` drags in ~37 packages.
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

if ! "$VENV/bin/python" -c 'import yaml' 2>/dev/null || [[ ! -x "$VENV/bin/check-jsonschema" ]]; then
    echo "-- installing check-jsonschema and PyYAML into $VENV (pip)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" "pyyaml>=6"
fi

# ------------------------------------------------------------------------------------ checks
passed=0
failed=()

step() {  # step DESCRIPTION COMMAND...: run, report, keep going
    local what="$1"; shift
    echo
    echo "== $what"
    echo "\$ $*"
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "FAILED: $what"
        failed+=("$what")
    fi
}

# docker-compose 1.29 predates env_file's long syntax (`path:` + `required: false`, Compose
# v2.24), which the stack uses so that .env is optional. Rather than drop that, feed 1.29 a copy
# with such entries rewritten to the short form (pointing at an empty file); everything else it
# checks (undefined services in depends_on, undeclared named volumes, port and key syntax) is
# checked on the real content. check_stack.py checks those references independently as well.
compose_config_1_29() {
    local empty rc=0
    empty=$(mktemp)
    echo "docker-compose -f <docker-compose.yml, env_file rewritten> --project-directory . config -q"
    "$VENV/bin/python" - "$empty" <<'PY' | docker-compose -f - --project-directory . config -q || rc=$?
import sys, yaml
empty = sys.argv[1]
doc = yaml.safe_load(open("docker-compose.yml"))
for svc in (doc.get("services") or {}).values():
    entries = svc.get("env_file")
    if entries is None:
        continue
    entries = [entries] if isinstance(entries, (str, dict)) else entries
    svc["env_file"] = [
        (empty if not e.get("required", True) else e["path"]) if isinstance(e, dict) else e
        for e in entries
    ]
yaml.safe_dump(doc, sys.stdout, sort_keys=False)
PY
    rm -f "$empty"
    [[ $rc -eq 0 ]] && echo "docker-compose $(docker-compose version --short): configuration is valid"
    return "$rc"
}

# The checker must notice a family missing from a scrape: drop one family from the sample and
# expect check_stack.py to fail.
missing_family_is_caught() {
    local scrape rc=0
    scrape=$(mktemp)
    grep -v '^\(# \(HELP\|TYPE\) \)\?llm_gateway_overhead_seconds' scripts/testdata/sample-metrics.txt > "$scrape"
    "$VENV/bin/python" scripts/check_stack.py --metrics-file "$scrape" >/dev/null || rc=$?
    rm -f "$scrape"
    if [[ $rc -eq 1 ]]; then
        echo "check_stack.py failed as expected (exit 1) without llm_gateway_overhead_seconds"
        return 0
    fi
    echo "check_stack.py exited $rc on a scrape missing llm_gateway_overhead_seconds; expected 1"
    return 1
}

metrics_lint() {
    # promtool reads the classic text format only; exit 3 means lint findings (e.g. naming).
    echo "promtool check metrics < $METRICS_FILE"
    promtool check metrics < "$METRICS_FILE" && echo "no lint findings"
}

step "Prometheus config is valid" promtool check config prometheus.yml
step "alert rules are valid" promtool check rules alerts/*.yml
step "alert rules unit tests pass" promtool test rules alerts/tests/*.yml
step "compose file matches the Compose Specification schema" \
    "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
step "docker-compose 1.29 accepts the compose file" compose_config_1_29
step "metrics scrape $METRICS_FILE passes promtool's lint" metrics_lint
step "stack consistency, dashboard model, PromQL syntax, metric names" \
    "$VENV/bin/python" scripts/check_stack.py --metrics-file "$METRICS_FILE" ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}
step "check_stack.py fails when a metric family is missing" missing_family_is_caught

echo
echo "check-stack: $passed passed, ${#failed[@]} failed"
for f in ${failed[@]+"${failed[@]}"}; do
    echo "  - $f"
done
[[ ${#failed[@]} -eq 0 ]]
