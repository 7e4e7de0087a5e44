#!/usr/bin/env python3
"""Summarises `perf script` output of the gateway by component (standard library only).

    perf script -i perf.data -F comm,tid,ip,sym,dso | profile_report.py [--freq HZ] [--requests N]

Each sample is attributed to the first component found walking its stack from the leaf
towards the root; allocator and libc frames are skipped, so malloc called from the OTLP
exporter counts as OTLP exporter (as far as frame pointers allow: glibc has none, so a
sample whose leaf is inside malloc often loses its caller and lands in "allocator").
With --freq and --requests, shares are also given in µs of CPU per request.
"""

import argparse
import collections
import re
import sys

COMPONENTS = [
    ("kernel: TCP send (writev; loopback delivery to the peer included)",
     r"^__GI___writev$|^__libc_write$|^__send|^sendto$|^__libc_sendmsg"),
    ("kernel: TCP receive (recv/read)", r"^__libc_recv|^recv$|^__GI___libc_read|^__libc_read|^read$"),
    ("kernel: epoll / futex / thread park and wake-up",
     r"epoll_wait|^syscall$|futex|sched_yield|__lll_lock_wait|pthread_cond"),
    ("kernel: accept / connect / close / other", r"^accept|^__libc_connect|^__close|^close$|^socket$|setsockopt|getsockopt|^shutdown$"),
    ("OTLP exporter: SpanData -> protobuf (our encoder; opentelemetry-proto/prost for gRPC)",
     r"llm_observability::telemetry::otlp|opentelemetry_proto|^prost::|<prost::"),
    ("reqwest (provider calls: request building, redirect and retry layers)", r"reqwest::"),
    ("OTLP exporter: gzip", r"flate2|miniz"),
    ("BatchSpanProcessor (queue, worker thread)", r"BatchSpanProcessor|batch_span_processor|std::sync::mpmc"),
    ("tracing-opentelemetry layer (span builders, attributes, events)", r"tracing_opentelemetry"),
    ("opentelemetry SDK (span end, ids, W3C propagation)", r"opentelemetry_sdk|opentelemetry::|opentelemetry_http"),
    ("tracing / tracing-subscriber (dispatch, registry, filters, fmt)",
     r"tracing_subscriber|sharded_slab|tracing_core|tracing::"),
    ("prometheus metrics", r"prometheus::"),
    ("url parse + IDNA", r"url::|idna::"),
    ("serde_json (request/response bodies)", r"serde_json|serde_core|serde::"),
    ("hyper-util client (provider calls under reqwest, and the OTLP POSTs)",
     r"hyper_util::client|hyper_rustls|hyper::client|dispatch::Client|role::Client"),
    ("hyper HTTP/1 server (parse, encode)", r"hyper::|hyper_util::server|httparse|^http::|<http::"),
    ("axum (router, extractors, middleware glue)", r"axum::|axum_core::|tower::|tower_http::|matchit"),
    ("llm_observability (own code, inlined callees included)", r"llm_observability::"),
    ("tokio (scheduler, timers, I/O driver)", r"tokio::|mio::"),
]
ALLOC = re.compile(r"^(malloc|_int_malloc|_int_free|cfree|free|realloc|_int_realloc|calloc|"
                   r"malloc_consolidate|unlink_chunk|__rustc::__rust_|__rdl_|arena_get2|tcache)")


def read_stacks(lines):
    stacks, cur, comm = [], [], None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if cur:
                stacks.append((comm, cur))
            cur = []
            continue
        if not line.startswith((" ", "\t")):
            comm = line.split()[0] if line.split() else "?"
            continue
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            kernel = "kernel.kallsyms" in parts[1]
            sym = re.sub(r"\+0x[0-9a-f]+$", "", parts[1].rsplit(" (", 1)[0])
            cur.append((kernel, sym))
    if cur:
        stacks.append((comm, cur))
    return stacks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--freq", type=float, help="perf sampling frequency (Hz)")
    ap.add_argument("--requests", type=int, help="requests served while sampling")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    stacks = read_stacks(sys.stdin)
    n = len(stacks)
    if not n:
        print("no samples")
        return 1
    per_req = None
    if args.freq and args.requests:
        per_req = n / args.freq / args.requests * 1e6
        print(f"{n} samples = {n / args.freq:.2f} CPU-s for {args.requests:,} requests: "
              f"{per_req:.1f} µs of CPU per request (perf's own sampling cost is charged to the "
              "process: compare shares, not this total, with bench/run.sh's figures)")
    else:
        print(f"{n} samples")
    threads = collections.Counter(c for c, _ in stacks)
    print("by thread: " + ", ".join(f"{k} {v * 100 / n:.1f}%" for k, v in threads.most_common(6)))
    rx = [(name, re.compile(p)) for name, p in COMPONENTS]
    counts, alloc, leaves = collections.Counter(), collections.Counter(), collections.Counter()
    for comm, frames in stacks:
        leaf_kernel, leaf = frames[0]
        leaves[("[k] " if leaf_kernel else "") + leaf] += 1
        category = None
        for kernel, sym in frames:
            if kernel:
                continue
            for name, r in rx:
                if r.search(sym):
                    category = name
                    break
            if category:
                break
        if category is None:
            if ALLOC.match(leaf):
                category = "allocator (caller lost: glibc has no frame pointers)"
            elif leaf_kernel:
                category = "kernel: other (page faults, interrupts, ...)"
            else:
                category = "other: " + leaf[:60]
        counts[category] += 1
        if ALLOC.match(leaf):
            alloc[category] += 1
    print()
    print("| component | share | " + ("µs/request | " if per_req else "") + "of which in malloc/free |")
    print("|---|--:|" + ("--:|" if per_req else "") + "--:|")
    for name, c in counts.most_common(args.top):
        us = f" {c / n * per_req:.1f} |" if per_req else ""
        print(f"| {name} | {c * 100 / n:.1f}% |{us} {alloc[name] * 100 / n:.1f}% |")
    print()
    print("hottest leaf functions (self time):")
    for sym, c in leaves.most_common(15):
        print(f"  {c * 100 / n:5.1f}%  {sym[:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
