#!/usr/bin/env python3
"""Static checks of the observability stack's files, for machines without a Docker engine.

    python3 scripts/check_stack.py                          # structure, consistency, PromQL syntax
    python3 scripts/check_stack.py --metrics-file m.txt     # ...and every metric used exists in m.txt

The stack (docker-compose.yml, otel-collector-config.yml, prometheus.yml, alerts/, grafana/) is
glued together by names and ports: a service renamed in one file and not in another gives a
dashboard with no data, or traces that go nowhere, and nothing fails loudly. This script checks
that glue: every host:port one component uses points at a compose service that serves it, every
panel and rule uses PromQL that parses (via `promtool check rules`) and metric names from the
service's contract (README, "Metrics"), and, given a saved scrape of the running service's
/metrics, that every metric family the dashboard and alerts need is really exported. The
`replicas` profile (three gateways sharing budgets through Redis behind nginx, scraped through
prometheus-replicas.yml) is checked the same way: its services, its nginx config
(deploy/nginx-replicas.conf) and its Prometheus config against prometheus.yml.

Needs Python 3.10+, PyYAML, and `promtool` on PATH (scripts/check-stack.sh installs them).
Exit status: 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parent.parent

COMPOSE = "docker-compose.yml"
COLLECTOR = "otel-collector-config.yml"
PROMETHEUS = "prometheus.yml"
DOCKERFILE = "Dockerfile"
DASHBOARD_DIR = "grafana/dashboards"
DATASOURCES = "grafana/provisioning/datasources/datasources.yml"
DASHBOARD_PROVIDERS = "grafana/provisioning/dashboards/dashboards.yml"
# The `replicas` profile (docs/STACK.md, "Three replicas sharing budgets").
PROMETHEUS_REPLICAS = "prometheus-replicas.yml"
NGINX_REPLICAS = "deploy/nginx-replicas.conf"
REPLICAS_PROFILE = "replicas"
GATEWAY_REPLICAS = ("gateway-1", "gateway-2", "gateway-3")
LOAD_BALANCER = "gateway-lb"
EXPECTED_REPLICA_SERVICES = {"redis", LOAD_BALANCER, *GATEWAY_REPLICAS}
EXPECTED_REPLICAS_HOST_PORTS = {8080}
# The gateway's MAX_BODY_BYTES default: the balancer must let such a body through.
GATEWAY_MAX_BODY_BYTES = 1 << 20
# Open-source nginx has `server ... resolve` in an upstream from this version on.
NGINX_RESOLVE_SINCE = (1, 27, 3)

SERVICE_NAME = "llm-observability-api"
EXPECTED_SERVICES = {"api", "otel-collector", "jaeger", "prometheus", "grafana"}
EXPECTED_HOST_PORTS = {8000, 8001, 4317, 4318, 16686, 9090, 3000}

# The service's metric contract (README, "Metrics"), as family names in the text format.
CONTRACT_FAMILIES = {
    "llm_requests_total": "counter",
    "llm_tokens_total": "counter",
    "llm_cost_usd_total": "counter",
    "llm_errors_total": "counter",
    "llm_requests_in_flight": "gauge",
    "gen_ai_client_operation_duration_seconds": "histogram",
    "gen_ai_client_token_usage": "histogram",
    "gen_ai_client_operation_time_to_first_chunk_seconds": "histogram",
    "http_server_request_duration_seconds": "histogram",
    "llm_gateway_overhead_seconds": "histogram",
    "llm_provider_ratelimit_remaining": "gauge",
    # Model routing: a route's targets, its fallbacks and their circuit breakers.
    "llm_route_attempts_total": "counter",
    "llm_fallbacks_total": "counter",
    "llm_route_target_state": "gauge",
    # The response cache: lookups by result, what hits saved, lookup latency, the in-process
    # backend's size.
    "llm_cache_requests_total": "counter",
    "llm_cache_saved_tokens_total": "counter",
    "llm_cache_saved_cost_usd_total": "counter",
    "llm_cache_lookup_duration_seconds": "histogram",
    "llm_cache_write_errors_total": "counter",
    "llm_cache_entries": "gauge",
    "llm_cache_bytes": "gauge",
    # Virtual keys: spend per key, budgets per key or team and period as the shared ledger
    # (Redis) last told each replica, requests refused before any upstream call, and the
    # ledger's own failures and the spend kept locally while it was unreachable.
    "llm_spend_usd_total": "counter",
    "llm_budget_remaining_usd": "gauge",
    "llm_budget_usd": "gauge",
    "llm_key_rejections_total": "counter",
    "llm_ledger_errors_total": "counter",
    "llm_ledger_pending_usd": "gauge",
    # Experiments: calls by prompt version (x-llmobs-prompt) and by variant of a weighted route,
    # and feedback (POST /v1/feedback) by evaluation name and label.
    "llm_prompt_requests_total": "counter",
    "llm_prompt_tokens_total": "counter",
    "llm_prompt_cost_usd_total": "counter",
    "llm_prompt_duration_seconds": "histogram",
    "llm_variant_requests_total": "counter",
    "llm_variant_tokens_total": "counter",
    "llm_variant_cost_usd_total": "counter",
    "llm_variant_duration_seconds": "histogram",
    "llm_prompt_feedback_score": "histogram",
    "llm_variant_feedback_score": "histogram",
    "llm_feedback_total": "counter",
    "llm_feedback_score": "histogram",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
}
# Families the overview dashboard must chart (one panel topic each in the issue).
DASHBOARD_MUST_USE = set(CONTRACT_FAMILIES) - {
    "gen_ai_client_token_usage",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
}
# Series that come from Prometheus itself or from the collector, not from the service.
IGNORED_NAMES = {"up", "ALERTS", "ALERTS_FOR_STATE"}
IGNORED_PREFIXES = ("traces_span_metrics", "otelcol_", "scrape_", "prometheus_")

# Concrete values for Grafana's template variables, so dashboard PromQL can be parsed.
GRAFANA_SUBSTITUTIONS = {
    "__rate_interval": "1m",
    "__interval": "30s",
    "__interval_ms": "30000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "provider": "groq",
    "model": "llama-3.1-8b-instant",
}

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan", "atan2",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


class Report:
    """Collects results so one run shows every problem, not just the first.

    Prints each section with its count of passed checks and every failure; --verbose also
    prints each passed check.
    """

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.failures: list[str] = []
        self.passed = 0
        self._section_passed = 0
        self._section_open = False

    def _close_section(self) -> None:
        if self._section_open and not self.verbose:
            print(f"  ok    {self._section_passed} checks passed")
        self._section_passed = 0

    def section(self, title: str) -> None:
        self._close_section()
        self._section_open = True
        print(f"== {title}")

    def done(self) -> None:
        self._close_section()
        self._section_open = False

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            self._section_passed += 1
            if self.verbose:
                print(f"  ok    {what}")
        else:
            msg = f"{what}: {detail}" if detail else what
            self.failures.append(msg)
            print(f"  FAIL  {msg}")
        return ok


# ------------------------------------------------------------------------------------- helpers

def load_yaml(path: Path):
    with path.open() as f:
        return yaml.safe_load(f)


def host_port(s: str) -> tuple[str, int | None]:
    """'api:8001' or 'http://prometheus:9090' -> ('api', 8001)."""
    if "://" in s:
        u = urlparse(s)
        return u.hostname or "", u.port
    host, _, port = s.rpartition(":")
    if not host:
        return s, None
    return host, int(port) if port.isdigit() else None


def interpolate(s: str) -> str:
    """Compose's `${VAR:-default}` and `${VAR-default}` as their default, `${VAR}` as empty:
    the value `docker compose` uses when the variable is unset."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", s)


def profiles(svc: dict) -> list[str]:
    return [str(p) for p in svc.get("profiles") or []]


def env_dict(env) -> dict[str, str]:
    if env is None:
        return {}
    if isinstance(env, dict):
        return {k: "" if v is None else str(v) for k, v in env.items()}
    out = {}
    for item in env:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def depends_on(svc: dict) -> dict[str, str]:
    dep = svc.get("depends_on") or {}
    if isinstance(dep, list):
        return {name: "service_started" for name in dep}
    return {name: (cfg or {}).get("condition", "service_started") for name, cfg in dep.items()}


def port_mappings(svc: dict) -> list[tuple[int | None, int]]:
    """(host port or None, container port) for each entry of `ports`."""
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            published = p.get("published")
            out.append((int(published) if published is not None else None, int(p["target"])))
            continue
        parts = str(p).split("/")[0].split(":")
        container = int(parts[-1])
        host = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        out.append((host, container))
    return out


def mounts(svc: dict) -> list[tuple[str, str]]:
    """(source, target) for each volume entry."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), str(v["target"])))
        else:
            parts = interpolate(str(v)).split(":")
            out.append((parts[0], parts[1] if len(parts) > 1 else parts[0]))
    return out


def mount_target(svc: dict, source: str) -> str | None:
    norm = os.path.normpath(source)
    for src, dst in mounts(svc):
        if os.path.normpath(src) == norm:
            return dst
    return None


def flag_value(args: list, flag: str) -> str | None:
    """Value of --flag=value or --flag value in a command list."""
    for i, a in enumerate(args):
        a = str(a)
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
        if a == flag and i + 1 < len(args):
            return str(args[i + 1])
    return None


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def substitute_grafana_vars(expr: str) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        return GRAFANA_SUBSTITUTIONS.get(name, m.group(0))

    # $name, ${name} and ${name:format}
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (a lexer-level approximation).

    Strings, label matchers, ranges and grouping clauses are blanked out first; what remains
    that looks like an identifier and is neither a function call nor a keyword is a metric.
    """
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?[\w.]+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w:.$])([A-Za-z_:][\w:]*)", s):
        name = m.group(1)
        if s[m.end():].lstrip().startswith("("):
            continue  # function call (or aggregation without a grouping clause)
        if name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def ignored(name: str) -> bool:
    return name in IGNORED_NAMES or name.startswith(IGNORED_PREFIXES)


def family_of(name: str, families: dict[str, str]) -> str | None:
    """The family a sample name belongs to in `families` ({name: type}), if any."""
    if name in families:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and families.get(base) in ("histogram", "summary", "gaugehistogram"):
            return base
    # OpenMetrics exposition names a counter family without its _total suffix.
    if name.endswith("_total") and families.get(name[: -len("_total")]) == "counter":
        return name[: -len("_total")]
    return None


def nginx_directives(text: str) -> tuple[list[tuple[str, str]], dict[str, list[tuple[str, str]]]]:
    """(directive, arguments) outside upstream blocks, and those of each `upstream NAME { }`.

    Enough for the flat configuration in deploy/nginx-replicas.conf (no quoted `#` or `;`, no
    blocks nested inside an upstream); `nginx -t` in the image is the full check.
    """
    text = re.sub(r"#[^\n]*", "", text)
    upstreams = {}
    for m in re.finditer(r"\bupstream\s+(\S+)\s*\{([^}]*)\}", text):
        upstreams[m.group(1)] = re.findall(r"(\w+)\s*([^;{}]*);", m.group(2))
    rest = re.sub(r"\bupstream\s+\S+\s*\{[^}]*\}", " ", text)
    return re.findall(r"(\w+)\s*([^;{}]*);", rest), upstreams


def nginx_size(value: str) -> int | None:
    """nginx's size syntax (64m, 512k, 1g, bytes) in bytes."""
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", value.strip())
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


def iter_panels(panels):
    for p in panels or []:
        yield p
        yield from iter_panels(p.get("panels"))  # collapsed rows keep their panels inside


# --------------------------------------------------------------------------------------- checks

class StackChecker:
    def __init__(self, report: Report) -> None:
        self.r = report
        self.docs: dict[str, object] = {}
        self.compose: dict = {}
        self.services: dict = {}
        self.collector: dict = {}
        self.prom: dict = {}
        self.prom_replicas: dict = {}
        self.alert_files: list[Path] = []
        self.dashboards: dict[str, dict] = {}
        self.datasource_types: dict[str, str] = {}
        # (where, expr) pairs for the PromQL syntax check and the metric-name checks.
        self.dashboard_exprs: list[tuple[str, str]] = []
        self.alert_exprs: list[tuple[str, str]] = []

    # -- parsing
    def parse_all(self) -> bool:
        self.r.section("every stack file parses")
        yaml_files = [COMPOSE, COLLECTOR, PROMETHEUS, PROMETHEUS_REPLICAS]
        yaml_files += sorted(glob.glob("alerts/**/*.yml", root_dir=ROOT, recursive=True))
        yaml_files += sorted(glob.glob("grafana/provisioning/**/*.yml", root_dir=ROOT, recursive=True))
        json_files = sorted(glob.glob(f"{DASHBOARD_DIR}/*.json", root_dir=ROOT))
        all_ok = True
        for rel in yaml_files:
            try:
                self.docs[rel] = load_yaml(ROOT / rel)
                ok = isinstance(self.docs[rel], dict)
                all_ok &= self.r.check(ok, f"YAML {rel}", "" if ok else "top level is not a mapping")
            except (OSError, yaml.YAMLError) as e:
                all_ok &= self.r.check(False, f"YAML {rel}", str(e).replace("\n", " "))
        for rel in json_files:
            try:
                self.dashboards[rel] = json.loads((ROOT / rel).read_text())
                self.r.check(True, f"JSON {rel}")
            except (OSError, ValueError) as e:
                all_ok &= self.r.check(False, f"JSON {rel}", str(e))
        all_ok &= self.r.check(bool(json_files), "at least one dashboard in grafana/dashboards")
        if not all_ok:
            return False
        self.compose = self.docs[COMPOSE]
        self.services = self.compose.get("services") or {}
        self.collector = self.docs[COLLECTOR]
        self.prom = self.docs[PROMETHEUS]
        self.prom_replicas = self.docs[PROMETHEUS_REPLICAS]
        return True

    # -- docker-compose.yml
    def check_compose(self) -> None:
        r, services = self.r, self.services
        r.section(f"{COMPOSE}: services, images, dependencies, volumes, ports")
        r.check("version" not in self.compose, "no obsolete top-level `version:` key")
        missing = EXPECTED_SERVICES - set(services)
        r.check(not missing, "services api, otel-collector, jaeger, prometheus, grafana defined",
                f"missing {sorted(missing)}")

        for name, svc in services.items():
            if "build" in svc:
                build = svc["build"] if isinstance(svc["build"], dict) else {"context": svc["build"]}
                dockerfile = ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
                r.check(dockerfile.is_file(), f"{name}: builds from {dockerfile.relative_to(ROOT)}",
                        "file not found")
                continue
            image = str(svc.get("image", ""))
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            r.check(bool(tag) and tag != "latest", f"{name}: image {image} is pinned to a version",
                    "no tag or :latest")

        declared_volumes = set((self.compose.get("volumes") or {}).keys())
        for name, svc in services.items():
            for dep, condition in depends_on(svc).items():
                r.check(dep in services, f"{name}: depends_on {dep} is a service", "no such service")
                r.check(condition in ("service_started", "service_healthy",
                                      "service_completed_successfully"),
                        f"{name}: depends_on {dep} condition {condition} is valid")
                if condition == "service_healthy" and dep in services:
                    r.check(self.has_healthcheck(dep), f"{name}: waits for {dep} to be healthy, "
                            f"and {dep} has a health check", "it has none, so this would never start")
            for src, dst in mounts(svc):
                if src.startswith((".", "/")):
                    r.check((ROOT / src).exists(), f"{name}: bind mount {src} -> {dst} exists",
                            "source path missing")
                else:
                    r.check(src in declared_volumes, f"{name}: named volume {src} is declared",
                            "not under top-level volumes:")
        for vol in sorted(declared_volumes):
            used = any(src == vol for svc in services.values() for src, _ in mounts(svc))
            r.check(used, f"named volume {vol} is used by a service")
        for want in ("prometheus", "grafana"):
            named = [s for s, _ in mounts(services.get(want, {})) if s in declared_volumes]
            r.check(bool(named), f"{want}: keeps its data in a named volume")

        # Profiles: the default stack (`docker compose up`) is the services without one; the
        # `replicas` profile's run alongside them, so host ports must not clash across the two.
        for name in sorted(EXPECTED_SERVICES & set(services)):
            r.check(not profiles(services[name]), f"{name}: in the default profile (no `profiles:`)",
                    f"profiles {profiles(services[name])}")
        in_profile = {name for name, svc in services.items() if profiles(svc)}
        for name in sorted(in_profile):
            r.check(profiles(services[name]) == [REPLICAS_PROFILE],
                    f"{name}: profiles [{REPLICAS_PROFILE}]", f"got {profiles(services[name])}")
        r.check(in_profile == EXPECTED_REPLICA_SERVICES,
                f"profile {REPLICAS_PROFILE} has {sorted(EXPECTED_REPLICA_SERVICES)}", f"got {sorted(in_profile)}")
        for name, svc in services.items():
            if profiles(svc):
                continue
            later = [dep for dep in depends_on(svc) if dep in in_profile]
            r.check(not later, f"{name}: depends on no service of a profile", f"{later}")

        published: dict[int, str] = {}
        for name, svc in services.items():
            for host, _ in port_mappings(svc):
                if host is None:
                    continue
                r.check(host not in published, f"host port {host} published once",
                        f"by {published.get(host)} and {name}")
                published[host] = name
        default_ports = {h for h, name in published.items() if not profiles(services[name])}
        replica_ports = {h for h, name in published.items() if profiles(services[name])}
        r.check(default_ports == EXPECTED_HOST_PORTS,
                f"default profile's published host ports are {sorted(EXPECTED_HOST_PORTS)}",
                f"got {sorted(default_ports)}")
        r.check(replica_ports == EXPECTED_REPLICAS_HOST_PORTS,
                f"profile {REPLICAS_PROFILE} publishes host ports {sorted(EXPECTED_REPLICAS_HOST_PORTS)}",
                f"got {sorted(replica_ports)}")
        r.check(published.get(4317) == "otel-collector" and published.get(4318) == "otel-collector",
                "the collector owns OTLP ports 4317/4318 on the host (jaeger's stay internal)")

        api = services.get("api", {})
        env = env_dict(api.get("environment"))
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
        host, port = host_port(endpoint)
        r.check(host == "otel-collector" and port == 4318,
                "api: OTEL_EXPORTER_OTLP_ENDPOINT is http://otel-collector:4318", f"got {endpoint!r}")
        r.check(env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "http/protobuf",
                "api: OTLP protocol is http/protobuf (matches port 4318)")
        for var in ("APP_HOST", "METRICS_HOST"):
            r.check(env.get(var) == "0.0.0.0", f"api: {var}=0.0.0.0", f"got {env.get(var)!r}")
        env_files = api.get("env_file") or []
        env_files = [env_files] if isinstance(env_files, (str, dict)) else env_files
        paths = [e["path"] if isinstance(e, dict) else e for e in env_files]
        r.check(".env" in [os.path.normpath(p) for p in paths], "api: reads env_file .env")
        container_ports = {c for _, c in port_mappings(api)}
        for var, default in (("APP_PORT", 8000), ("METRICS_PORT", 8001)):
            value = int(env.get(var, default))
            r.check(value in container_ports, f"api: {var}={value} is published", f"{sorted(container_ports)}")

    def has_healthcheck(self, service: str) -> bool:
        svc = self.services[service]
        hc = svc.get("healthcheck")
        if hc is not None:
            return not hc.get("disable", False) and hc.get("test") not in (["NONE"], "NONE")
        if "build" in svc:
            return any(i == "HEALTHCHECK" and not a.upper().startswith("NONE")
                       for i, a in dockerfile_instructions(ROOT / DOCKERFILE))
        return False

    def container_ports(self, service: str) -> set[int]:
        ports = {c for _, c in port_mappings(self.services.get(service, {}))}
        ports |= {int(p) for p in self.services.get(service, {}).get("expose") or []}
        return ports

    # -- the replicas profile
    def check_replicas(self) -> None:
        r, services = self.r, self.services
        r.section(f"profile {REPLICAS_PROFILE}: redis, {', '.join(GATEWAY_REPLICAS)}, {LOAD_BALANCER} "
                  f"({NGINX_REPLICAS})")
        api = services.get("api", {})
        api_env = env_dict(api.get("environment"))
        redis = services.get("redis")
        replica_envs = {}
        for name in GATEWAY_REPLICAS:
            svc = services.get(name)
            if not r.check(svc is not None, f"{name} is defined"):
                continue
            r.check(svc.get("build") == api.get("build") and svc.get("image") == api.get("image"),
                    f"{name}: the api's build and image", f"build {svc.get('build')!r}, image {svc.get('image')!r}")
            env = env_dict(svc.get("environment"))
            replica_envs[name] = env
            for var in ("APP_HOST", "APP_PORT", "METRICS_HOST", "METRICS_PORT",
                        "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"):
                r.check(env.get(var) == api_env.get(var), f"{name}: {var} as the api's",
                        f"{env.get(var)!r}, api {api_env.get(var)!r}")
            env_files = svc.get("env_file") or []
            env_files = [env_files] if isinstance(env_files, (str, dict)) else env_files
            paths = [e["path"] if isinstance(e, dict) else e for e in env_files]
            r.check(".env" in [os.path.normpath(p) for p in paths], f"{name}: reads env_file .env (provider keys)")
            url = env.get("REDIS_URL", "")
            host, port = host_port(url)
            r.check(urlparse(url).scheme == "redis" and host == "redis" and (port or 6379) == 6379,
                    f"{name}: REDIS_URL is the redis service (redis://redis:6379)", f"got {url!r}")
            r.check(depends_on(svc).get("redis") == "service_healthy", f"{name}: waits for redis to be healthy")
            config = env.get("GATEWAY_CONFIG", "")
            sources = [src for src, dst in mounts(svc) if dst == config]
            r.check(bool(config) and bool(sources) and (ROOT / sources[0]).is_file(),
                    f"{name}: GATEWAY_CONFIG {config} is a mounted file of the repository",
                    f"mounted from {sources}")
            r.check(not [h for h, _ in port_mappings(svc) if h is not None],
                    f"{name}: publishes no host port (clients go through {LOAD_BALANCER})")
            exposed = {int(p) for p in svc.get("expose") or []} | {c for _, c in port_mappings(svc)}
            for var in ("APP_PORT", "METRICS_PORT"):
                r.check(int(env.get(var, 0) or 0) in exposed, f"{name}: {var} is exposed", f"{sorted(exposed)}")
        # One configuration for all: only what tells them apart may differ.
        def same(env: dict) -> dict:
            return {k: v for k, v in env.items() if k != "OTEL_RESOURCE_ATTRIBUTES"}
        first = next(iter(replica_envs.values()), {})
        r.check(all(same(e) == same(first) for e in replica_envs.values()),
                "the replicas' environments differ only in OTEL_RESOURCE_ATTRIBUTES")
        r.check(len({tuple(mounts(services[n])) for n in replica_envs}) == 1, "the replicas mount the same files")

        if r.check(redis is not None, "redis is defined"):
            image = str(redis.get("image", ""))
            r.check(image.startswith("redis:"), "redis: a redis image", image)
            command = [str(a) for a in redis.get("command") or []]
            r.check(flag_value(command, "--appendonly") == "yes",
                    "redis: append-only persistence (the ledger survives a restart)", f"command {command}")
            r.check(any(src in (self.compose.get("volumes") or {}) and dst == "/data" for src, dst in mounts(redis)),
                    "redis: keeps /data in a named volume")
            r.check(self.has_healthcheck("redis"), "redis: has a health check (the replicas wait for it)")
            r.check(not port_mappings(redis), "redis: publishes no port (only the gateways use it)")

        lb = services.get(LOAD_BALANCER)
        if not r.check(lb is not None, f"{LOAD_BALANCER} is defined"):
            return
        target = mount_target(lb, f"./{NGINX_REPLICAS}")
        r.check(target == "/etc/nginx/conf.d/default.conf",
                f"{LOAD_BALANCER}: mounts {NGINX_REPLICAS} at /etc/nginx/conf.d/default.conf", f"got {target!r}")
        r.check(self.has_healthcheck(LOAD_BALANCER), f"{LOAD_BALANCER}: has a health check")
        for dep in GATEWAY_REPLICAS:
            r.check(dep in depends_on(lb), f"{LOAD_BALANCER}: starts after {dep}")
        conf_path = ROOT / NGINX_REPLICAS
        if not r.check(conf_path.is_file(), f"{NGINX_REPLICAS} exists"):
            return
        directives, upstreams = nginx_directives(conf_path.read_text())
        named: dict[str, list[str]] = {}
        for name, args in directives:
            named.setdefault(name, []).append(" ".join(args.split()))
        passes = [a for a in named.get("proxy_pass", [])]
        r.check(len(passes) == 1 and passes[0].startswith("http://"), "one proxy_pass, over http", f"{passes}")
        upstream = passes[0][len("http://"):].rstrip("/") if passes else ""
        r.check(upstream in upstreams, f"proxy_pass names an upstream block ({upstream})", f"upstreams {sorted(upstreams)}")
        servers = [args.split() for d, args in upstreams.get(upstream, []) if d == "server"]
        app_ports = {name: int(env.get("APP_PORT", 8000)) for name, env in replica_envs.items()}
        want = {f"{name}:{port}" for name, port in app_ports.items()}
        got = {s[0] for s in servers if s}
        r.check(got == want, f"upstream {upstream} is the replicas' API ports {sorted(want)}", f"got {sorted(got)}")
        upstream_names = {d for d, _ in upstreams.get(upstream, [])}
        r.check("keepalive" in upstream_names, f"upstream {upstream} keeps connections open (keepalive)")
        if any("resolve" in s[1:] for s in servers):
            r.check("zone" in upstream_names, f"upstream {upstream}: `resolve` has the shared-memory zone it needs")
            r.check("resolver" in named or "resolver" in upstream_names, "`resolve` has a resolver (Docker's DNS)")
            image = str(lb.get("image", ""))
            m = re.match(r"nginx:(\d+)\.(\d+)\.(\d+)", image)
            r.check(bool(m) and tuple(map(int, m.groups())) >= NGINX_RESOLVE_SINCE,
                    f"{LOAD_BALANCER}: image {image} has `server ... resolve` (nginx 1.27.3+)")
        for directive, value in (("proxy_http_version", "1.1"), ("proxy_set_header", 'Connection ""'),
                                 ("proxy_buffering", "off")):
            r.check(value in named.get(directive, []), f"{directive} {value}",
                    f"got {named.get(directive)}")
        size = nginx_size((named.get("client_max_body_size") or ["1m"])[-1])
        limits = [int(env.get("MAX_BODY_BYTES", GATEWAY_MAX_BODY_BYTES)) for env in replica_envs.values()]
        r.check(size is not None and (size == 0 or size >= max(limits or [GATEWAY_MAX_BODY_BYTES])),
                "client_max_body_size lets through every body the gateway accepts (MAX_BODY_BYTES)",
                f"{size} bytes < {max(limits or [GATEWAY_MAX_BODY_BYTES])}")
        listens = {int(a.split()[0].rsplit(":", 1)[-1]) for a in named.get("listen", []) if a.split()[0].rsplit(":", 1)[-1].isdigit()}
        published = {c for h, c in port_mappings(lb) if h is not None}
        r.check(bool(listens) and listens <= published, f"{LOAD_BALANCER}: nginx listens on the published port",
                f"listen {sorted(listens)}, published {sorted(published)}")

    # -- Dockerfile
    def check_dockerfile(self) -> None:
        r = self.r
        r.section(f"{DOCKERFILE} and .dockerignore")
        ins = dockerfile_instructions(ROOT / DOCKERFILE)
        froms = [(i, a) for i, a in ins if i == "FROM"]
        r.check(len(froms) >= 2, "multi-stage build")
        r.check(any(a.startswith("rust:") for _, a in froms), "builds in a rust image")
        r.check(froms[-1][1].split()[0] == "debian:bookworm-slim", "runtime stage is debian:bookworm-slim",
                froms[-1][1])
        last = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
        final = ins[last:]
        users = [a for i, a in final if i == "USER"]
        r.check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), "runtime runs as a non-root USER")
        hc = [a for i, a in final if i == "HEALTHCHECK"]
        r.check(bool(hc) and "/healthz" in hc[-1], "HEALTHCHECK probes /healthz")
        exposed = {p for i, a in final if i == "EXPOSE" for p in a.split()}
        r.check({"8000", "8001"} <= exposed, "EXPOSE 8000 8001", f"got {sorted(exposed)}")
        r.check(any(i == "RUN" and "cargo build --release --locked" in a for i, a in ins),
                "compiles with cargo build --release --locked")
        ignore = (ROOT / ".dockerignore").read_text().split() if (ROOT / ".dockerignore").exists() else []
        for entry in ("target/", ".git/", ".env"):
            r.check(entry in ignore, f".dockerignore excludes {entry}")

    # -- otel-collector-config.yml
    def check_collector(self) -> None:
        r, c = self.r, self.collector
        r.section(f"{COLLECTOR}: receivers, pipelines, exporters")
        protocols = (((c.get("receivers") or {}).get("otlp") or {}).get("protocols") or {})
        for proto, port in (("grpc", 4317), ("http", 4318)):
            ep = str((protocols.get(proto) or {}).get("endpoint", ""))
            r.check(ep == f"0.0.0.0:{port}", f"OTLP {proto} receiver listens on 0.0.0.0:{port}", f"got {ep!r}")

        service = c.get("service") or {}
        pipelines = service.get("pipelines") or {}
        receivers = set(c.get("receivers") or {}) | set(c.get("connectors") or {})
        exporters = set(c.get("exporters") or {}) | set(c.get("connectors") or {})
        processors = set(c.get("processors") or {})
        for pname, p in pipelines.items():
            for kind, defined in (("receivers", receivers), ("processors", processors),
                                  ("exporters", exporters)):
                undefined = [x for x in p.get(kind) or [] if x not in defined]
                r.check(not undefined, f"pipeline {pname}: every {kind[:-1]} is defined", f"{undefined}")
            procs = p.get("processors") or []
            r.check(procs[:1] == ["memory_limiter"], f"pipeline {pname}: memory_limiter comes first")
            r.check("batch" in procs, f"pipeline {pname}: batches")
        for ext in service.get("extensions") or []:
            r.check(ext in (c.get("extensions") or {}), f"extension {ext} is defined")
        r.check("health_check" in (service.get("extensions") or []), "health_check extension enabled")

        # Traces go to Jaeger over OTLP/gRPC.
        trace_exporters = [e for name, p in pipelines.items() if name.split("/")[0] == "traces"
                           for e in p.get("exporters") or []]
        jaeger_exp = [e for e in trace_exporters if e.split("/")[0] == "otlp"
                      and host_port(str(c["exporters"][e].get("endpoint", "")))[0] == "jaeger"]
        r.check(bool(jaeger_exp), "a traces pipeline exports over OTLP to jaeger")
        for e in jaeger_exp:
            cfg = c["exporters"][e]
            host, port = host_port(str(cfg.get("endpoint")))
            r.check(host in self.services and port == 4317, f"exporter {e}: {host}:{port} is the jaeger "
                    "service's OTLP gRPC port")
            r.check(((cfg.get("tls") or {}).get("insecure")) is True, f"exporter {e}: tls.insecure inside the network")

        # spanmetrics: fed by traces, feeding a prometheus exporter.
        r.check("spanmetrics" in trace_exporters, "spanmetrics connector receives the traces")
        metric_pipes = [p for name, p in pipelines.items()
                        if name.split("/")[0] == "metrics" and "spanmetrics" in (p.get("receivers") or [])]
        prom_exporters = [e for p in metric_pipes for e in p.get("exporters") or [] if e.split("/")[0] == "prometheus"]
        r.check(bool(prom_exporters), "spanmetrics feed a prometheus exporter")
        self.spanmetrics_port = None
        for e in prom_exporters:
            host, port = host_port(str(c["exporters"][e].get("endpoint", "")))
            r.check(host == "0.0.0.0", f"exporter {e} listens on 0.0.0.0", f"got {host!r}")
            self.spanmetrics_port = port

        # The collector's own metrics.
        metrics_cfg = ((service.get("telemetry") or {}).get("metrics") or {})
        self.selfmetrics_port = None
        for reader in metrics_cfg.get("readers") or []:
            prom = (((reader.get("pull") or {}).get("exporter") or {}).get("prometheus") or {})
            if prom:
                self.selfmetrics_port = prom.get("port")
                r.check(prom.get("host") == "0.0.0.0", "own metrics listen on 0.0.0.0")
        if "address" in metrics_cfg:
            host, self.selfmetrics_port = host_port(str(metrics_cfg["address"]))
        r.check(self.selfmetrics_port is not None, "the collector exposes its own metrics",
                "service.telemetry.metrics has no pull reader")

        svc = self.services.get("otel-collector", {})
        target = mount_target(svc, f"./{COLLECTOR}")
        config_arg = flag_value(svc.get("command") or [], "--config")
        r.check(target is not None and config_arg == target,
                f"compose mounts {COLLECTOR} where --config points", f"mount {target!r}, --config {config_arg!r}")

    # -- prometheus.yml and alerts
    def check_prometheus(self) -> None:
        r, p = self.r, self.prom
        r.section(f"{PROMETHEUS}: scrape targets and rule files")
        jobs = {j["job_name"]: j for j in p.get("scrape_configs") or []}
        api_env = env_dict(self.services.get("api", {}).get("environment"))
        expected = {
            "llm-api": ("api", int(api_env.get("METRICS_PORT", 8001))),
            "otel-collector": ("otel-collector", self.selfmetrics_port),
            "otel-collector-spanmetrics": ("otel-collector", self.spanmetrics_port),
        }
        for job, (host, port) in expected.items():
            targets = [t for sc in (jobs.get(job) or {}).get("static_configs") or [] for t in sc.get("targets") or []]
            r.check(f"{host}:{port}" in targets, f"job {job} scrapes {host}:{port}", f"targets {targets}")
        r.check((jobs.get("llm-api") or {}).get("metrics_path", "/metrics") == "/metrics",
                "job llm-api scrapes /metrics")
        r.check("prometheus" in jobs, "Prometheus scrapes itself")
        for job, j in jobs.items():
            for sc in j.get("static_configs") or []:
                for t in sc.get("targets") or []:
                    host, _ = host_port(t)
                    # Only the default stack's: a profile's service, absent there, would be down.
                    r.check((host in self.services and not profiles(self.services[host])) or host == "localhost",
                            f"job {job}: target {t} is a compose service of the default profile (or localhost)")

        rule_globs = p.get("rule_files") or []
        matched = sorted({f for g in rule_globs for f in glob.glob(g, root_dir=ROOT)})
        r.check(bool(matched), f"rule_files {rule_globs} match rule files", "nothing matched")
        r.check(not any("/tests/" in f"/{m}" for m in matched), "rule_files do not load the unit tests")
        self.alert_files = [ROOT / m for m in matched]

        svc = self.services.get("prometheus", {})
        cmd = svc.get("command") or []
        config_file = flag_value(cmd, "--config.file")
        cfg_target = mount_target(svc, f"./{PROMETHEUS}")
        r.check(config_file is not None and config_file == cfg_target,
                f"compose mounts {PROMETHEUS} where --config.file points", f"{cfg_target!r} vs {config_file!r}")
        if cfg_target:
            # Relative rule_files resolve against the config file's directory, in the container too.
            for g in rule_globs:
                rule_dir = os.path.dirname(g)
                want = os.path.join(os.path.dirname(cfg_target), rule_dir)
                r.check(mount_target(svc, f"./{rule_dir}") == want,
                        f"compose mounts ./{rule_dir} at {want} for rule_files {g}")
        r.check("--web.enable-lifecycle" in [str(a) for a in cmd], "prometheus runs with --web.enable-lifecycle")
        raw_mounts = [str(v) for v in svc.get("volumes") or [] if isinstance(v, str)]
        r.check(any(v.startswith("./${PROMETHEUS_CONFIG:-prometheus.yml}:") for v in raw_mounts),
                f"compose mounts ./${{PROMETHEUS_CONFIG:-prometheus.yml}}: PROMETHEUS_CONFIG={PROMETHEUS_REPLICAS} "
                "selects the replicas' config", f"{raw_mounts}")

    def check_prometheus_replicas(self) -> None:
        """prometheus-replicas.yml: prometheus.yml with the replicas in job llm-api."""
        r = self.r
        r.section(f"{PROMETHEUS_REPLICAS}: {PROMETHEUS} plus the replicas in job llm-api")
        r.check(os.path.dirname(PROMETHEUS_REPLICAS) == os.path.dirname(PROMETHEUS),
                f"{PROMETHEUS_REPLICAS} sits beside {PROMETHEUS} (its relative rule_files resolve alike)")

        def without_api_targets(doc: dict) -> dict:
            doc = json.loads(json.dumps(doc))
            for job in doc.get("scrape_configs") or []:
                if job.get("job_name") == "llm-api":
                    for sc in job.get("static_configs") or []:
                        sc.pop("targets", None)
            return doc

        r.check(without_api_targets(self.prom_replicas) == without_api_targets(self.prom),
                f"{PROMETHEUS_REPLICAS} equals {PROMETHEUS} but for job llm-api's targets",
                "keep the two in step")
        jobs = {j["job_name"]: j for j in self.prom_replicas.get("scrape_configs") or []}
        targets = [t for sc in (jobs.get("llm-api") or {}).get("static_configs") or [] for t in sc.get("targets") or []]
        want = set()
        for name in ("api", *GATEWAY_REPLICAS):
            env = env_dict(self.services.get(name, {}).get("environment"))
            want.add(f"{name}:{int(env.get('METRICS_PORT', 8001))}")
        r.check(set(targets) == want and len(targets) == len(want),
                f"job llm-api scrapes {sorted(want)}", f"targets {targets}")
        for job, j in jobs.items():
            for sc in j.get("static_configs") or []:
                for t in sc.get("targets") or []:
                    host, _ = host_port(t)
                    r.check(host in self.services or host == "localhost",
                            f"{PROMETHEUS_REPLICAS}: job {job}: target {t} is a compose service (or localhost)")
        promtool = shutil.which("promtool")
        if r.check(promtool is not None, "promtool is on PATH", "install Debian's `prometheus` package"):
            res = subprocess.run([promtool, "check", "config", PROMETHEUS_REPLICAS], capture_output=True, text=True)
            r.check(res.returncode == 0, f"promtool check config {PROMETHEUS_REPLICAS}",
                    (res.stdout + res.stderr).strip())

    def check_alerts(self) -> None:
        r = self.r
        r.section("alerts: labels, annotations, unit-test coverage")
        alert_names = []
        for path in self.alert_files:
            doc = load_yaml(path)
            for group in doc.get("groups") or []:
                for rule in group.get("rules") or []:
                    where = f"{path.relative_to(ROOT)}:{rule.get('alert') or rule.get('record')}"
                    self.alert_exprs.append((where, str(rule.get("expr", ""))))
                    if "alert" not in rule:
                        continue
                    name = rule["alert"]
                    alert_names.append(name)
                    sev = (rule.get("labels") or {}).get("severity")
                    ann = rule.get("annotations") or {}
                    r.check(sev in ("critical", "warning", "info"), f"{name}: severity label", f"got {sev!r}")
                    for key in ("summary", "description", "runbook"):
                        r.check(bool(str(ann.get(key, "")).strip()), f"{name}: {key} annotation")
        r.check(len(alert_names) == len(set(alert_names)), "alert names are unique")

        fires, quiet = set(), set()
        for path in sorted((ROOT / "alerts" / "tests").glob("*.yml")):
            for test in load_yaml(path).get("tests") or []:
                for art in test.get("alert_rule_test") or []:
                    (fires if art.get("exp_alerts") else quiet).add(art.get("alertname"))
        for name in alert_names:
            r.check(name in fires and name in quiet,
                    f"{name}: unit tests show it firing and staying quiet",
                    f"firing case: {name in fires}, quiet case: {name in quiet}")

    # -- grafana
    def check_grafana(self) -> None:
        r = self.r
        r.section("grafana: data sources, dashboard provider, dashboard model")
        svc = self.services.get("grafana", {})
        r.check(mount_target(svc, "./grafana/provisioning") == "/etc/grafana/provisioning",
                "compose mounts ./grafana/provisioning at /etc/grafana/provisioning")
        env = env_dict(svc.get("environment"))
        r.check(bool(env.get("GF_SECURITY_ADMIN_USER")) and bool(env.get("GF_SECURITY_ADMIN_PASSWORD")),
                "admin user and password set")

        datasources = self.docs[DATASOURCES].get("datasources") or []
        uids = [d.get("uid") for d in datasources]
        r.check(len(uids) == len(set(uids)) and None not in uids, "every data source has a unique uid")
        r.check(sum(1 for d in datasources if d.get("isDefault")) == 1, "exactly one default data source")
        self.datasource_types = {d["uid"]: d["type"] for d in datasources if d.get("uid")}
        for want_uid, want_type in (("prometheus", "prometheus"), ("jaeger", "jaeger")):
            r.check(self.datasource_types.get(want_uid) == want_type, f"data source uid {want_uid} of type {want_type}")
        for d in datasources:
            host, port = host_port(str(d.get("url", "")))
            r.check(host in self.services and port in self.container_ports(host),
                    f"data source {d.get('name')}: {d.get('url')} is a compose service's port",
                    f"ports of {host}: {sorted(self.container_ports(host)) if host in self.services else 'no such service'}")

        dash_target = mount_target(svc, f"./{DASHBOARD_DIR}")
        providers = self.docs[DASHBOARD_PROVIDERS].get("providers") or []
        paths = [(pr.get("options") or {}).get("path") for pr in providers]
        r.check(dash_target is not None and dash_target in paths,
                f"dashboard provider reads the directory ./{DASHBOARD_DIR} is mounted at", f"{dash_target!r} vs {paths}")
        home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "")
        home_ok = bool(dash_target) and os.path.dirname(home) == dash_target and \
            (ROOT / DASHBOARD_DIR / os.path.basename(home)).is_file()
        r.check(home_ok, "home dashboard path names a mounted dashboard file", f"got {home!r}")
        if home_ok:
            home_uid = json.loads((ROOT / DASHBOARD_DIR / os.path.basename(home)).read_text()).get("uid")
            r.check(home_uid == "llm-overview", "home dashboard is llm-overview", f"uid {home_uid!r}")

        seen_uids = set()
        for rel, dash in self.dashboards.items():
            self.check_dashboard(rel, dash)
            r.check(dash.get("uid") not in seen_uids, f"{rel}: uid unique among dashboards")
            seen_uids.add(dash.get("uid"))

    def check_dashboard(self, rel: str, d: dict) -> None:
        r = self.r
        r.check(isinstance(d.get("schemaVersion"), int) and d["schemaVersion"] >= 36,
                f"{rel}: schemaVersion >= 36", f"got {d.get('schemaVersion')!r}")
        r.check(bool(d.get("uid")) and bool(d.get("title")), f"{rel}: has uid and title")
        if os.path.basename(rel) == "llm-overview.json":
            r.check(d.get("uid") == "llm-overview" and d.get("title") == "LLM overview",
                    f"{rel}: uid llm-overview, title \"LLM overview\"")

        variables = {v.get("name"): v for v in (d.get("templating") or {}).get("list") or []}
        for name, v in variables.items():
            ds = v.get("datasource") or {}
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else str(q or "")
            if v.get("type") == "query":
                r.check(ds.get("uid") in self.datasource_types, f"{rel}: variable ${name} uses a provisioned data source")
                m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q)
                r.check(bool(m), f"{rel}: variable ${name} is a label_values() query", q)
                if m:
                    self.dashboard_exprs.append((f"{rel}: variable ${name}", m.group(1)))

        panels = list(iter_panels(d.get("panels")))
        r.check(bool(panels), f"{rel}: has panels")
        ids = [p.get("id") for p in panels]
        r.check(len(ids) == len(set(ids)) and None not in ids, f"{rel}: panel ids unique")
        all_exprs = []
        for p in panels:
            title = p.get("title", "?")
            where = f"{rel}: panel {p.get('id')} \"{title}\""
            if p.get("type") == "row":
                continue
            grid = p.get("gridPos") or {}
            r.check(all(k in grid for k in "xywh") and grid.get("x", 0) + grid.get("w", 0) <= 24,
                    f"{where}: gridPos within 24 columns")
            ds = p.get("datasource") or {}
            ok = isinstance(ds, dict) and self.datasource_types.get(ds.get("uid")) == ds.get("type")
            r.check(ok, f"{where}: datasource is a provisioned uid of the right type", f"got {ds!r}")
            targets = p.get("targets") or []
            r.check(bool(targets), f"{where}: has queries")
            for t in targets:
                tds = t.get("datasource") or ds
                ttype = self.datasource_types.get(tds.get("uid")) if isinstance(tds, dict) else None
                r.check(ttype is not None, f"{where} {t.get('refId')}: target datasource is provisioned")
                if ttype == "prometheus":
                    expr = str(t.get("expr", "")).strip()
                    if r.check(bool(expr), f"{where} {t.get('refId')}: has a PromQL expr"):
                        self.dashboard_exprs.append((f"{where} {t.get('refId')}", expr))
                        all_exprs.append(expr)
        if os.path.basename(rel) == "llm-overview.json":
            self.check_overview(rel, d, variables, panels, all_exprs)

    def check_overview(self, rel: str, d: dict, variables: dict, panels: list, all_exprs: list) -> None:
        """What the issue asks of the overview dashboard in particular."""
        r = self.r
        for name in ("provider", "model"):
            r.check(name in variables, f"{rel}: template variable ${name}")
            r.check(any(re.search(rf"\$\{{?{name}\b", e) for e in all_exprs),
                    f"{rel}: ${name} is used in the panel queries")
        used = {n for e in all_exprs for n in metric_names(substitute_grafana_vars(e))}
        used_families = {family_of(n, CONTRACT_FAMILIES) for n in used}
        missing = sorted(DASHBOARD_MUST_USE - used_families)
        r.check(not missing, f"{rel}: charts every gateway metric family", f"no panel uses {missing}")

        links = [lk.get("url", "") for lk in d.get("links") or []]
        links += [lk.get("url", "") for p in panels for lk in p.get("links") or []]
        jaeger_links = [u for u in links if urlparse(u).port == 16686 and f"service={SERVICE_NAME}" in u]
        r.check(bool(jaeger_links), f"{rel}: links to the service's traces in Jaeger (service={SERVICE_NAME})")
        r.check(16686 in {h for h, _ in port_mappings(self.services.get("jaeger", {}))},
                "the Jaeger UI port the links use is published")

    # -- PromQL
    def check_promql(self) -> None:
        r = self.r
        r.section("PromQL: every dashboard and alert expression parses (promtool check rules)")
        exprs = [(w, substitute_grafana_vars(e)) for w, e in self.dashboard_exprs] + self.alert_exprs
        leftovers = [(w, e) for w, e in exprs if "$" in re.sub(r"\{\{.*?\}\}", "", e)]
        r.check(not leftovers, "no unsubstituted template variables", f"{leftovers}")
        promtool = shutil.which("promtool")
        if not r.check(promtool is not None, "promtool is on PATH", "install Debian's `prometheus` package"):
            return
        rules, index = [], {}
        for i, (where, expr) in enumerate(exprs):
            record = f"check:expr_{i}"
            index[record] = where
            rules.append({"record": record, "expr": expr})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "stack-exprs.rules.yml"
            path.write_text(yaml.safe_dump({"groups": [{"name": "stack-exprs", "rules": rules}]}, sort_keys=False))
            res = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
        out = (res.stdout + res.stderr).strip()
        detail = out
        for record, where in index.items():  # name the panel, not the generated record
            detail = re.sub(rf"\b{re.escape(record)}\b", lambda m, w=where: f"{m.group(0)} ({w})", detail)  # not expr_5 in expr_55
        r.check(res.returncode == 0, f"{len(exprs)} expressions parse", detail)

    # -- metric names
    def check_metric_names(self, metrics_file: str | None, allow_missing: set[str]) -> None:
        r = self.r
        r.section("metric names: dashboard and alerts use the service's contract")
        used: dict[str, set[str]] = {}
        for where, expr in self.dashboard_exprs + self.alert_exprs:
            for name in metric_names(substitute_grafana_vars(expr)):
                if not ignored(name):
                    used.setdefault(name, set()).add(where)
        for name in sorted(used):
            r.check(family_of(name, CONTRACT_FAMILIES) is not None, f"{name} is in the metric contract",
                    f"unknown metric, used by {sorted(used[name])[:3]}")
        if not metrics_file:
            return
        r.section(f"metric names: every family used is exported in {metrics_file}")
        families = {}
        for line in Path(metrics_file).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "#" and parts[1] == "TYPE":
                families[parts[2]] = parts[3]
        r.check(bool(families), f"{metrics_file} has # TYPE lines")
        for name in sorted(used):
            if name in allow_missing or family_of(name, {n: "histogram" for n in allow_missing}):
                print(f"  skip  {name} (--allow-missing)")
                continue
            fam = family_of(name, families)
            r.check(fam is not None, f"{name} exported" + (f" (family {fam})" if fam and fam != name else ""),
                    "no such family in the scrape")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--metrics-file", help="a saved scrape of the service's /metrics to check metric names against")
    ap.add_argument("--allow-missing", action="append", default=[], metavar="FAMILY",
                    help="a metric family that may be absent from --metrics-file (e.g. one only "
                         "streaming calls produce); repeatable")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every passed check too")
    args = ap.parse_args()

    report = Report(args.verbose)
    checker = StackChecker(report)
    if checker.parse_all():
        checker.check_compose()
        checker.check_replicas()
        checker.check_dockerfile()
        checker.check_collector()
        checker.check_prometheus()
        checker.check_prometheus_replicas()
        checker.check_alerts()
        checker.check_grafana()
        checker.check_promql()
        checker.check_metric_names(args.metrics_file, set(args.allow_missing))

    report.done()
    print(f"check_stack: {report.passed} passed, {len(report.failures)} failed")
    for f in report.failures:
        print(f"  - {f}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
