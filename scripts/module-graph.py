#!/usr/bin/env python3
"""Prints the crate's module dependency graph and fails on any import cycle.

A module is a file under src/ (`src/llm/genai.rs` is `llm::genai`; `mod.rs` is its folder).
An edge A -> B is any path to B written in A: `crate::b::...`, `super::b`, `b::` from a
parent, or a name that a `mod.rs` re-exports from B (`crate::api::ApiError` is `api::error`).
Declaring a child (`mod b;`) and re-exporting it (`pub use b::X;`) are not dependencies: a
parent that only does that is a table of contents.
Run: python3 scripts/module-graph.py  (exit 1, naming the cycle or the upward edge, if any;
scripts/test.sh runs it)
"""
import re, sys, pathlib

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"

def name(path):
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        return parts[0]
    return "::".join(parts)

modules = {name(p): p.read_text() for p in SRC.rglob("*.rs")}

def strip_tests(text):
    i = text.find("#[cfg(test)]")
    return text if i < 0 else text[:i]

# what each parent module re-exports: item name -> child module
reexports = {}
for mod, text in modules.items():
    for m in re.finditer(r"pub use (\w+)::\{?([^;]*)\}?;", text):
        child = f"{mod}::{m.group(1)}" if mod not in ("lib",) else m.group(1)
        for item in re.findall(r"\b(\w+)\b", m.group(2)):
            reexports.setdefault(mod, {})[item] = child

def resolve(path):
    """A crate-absolute path -> the module that defines it, through re-exports."""
    parts = path.split("::")
    best, rest = None, []
    for i in range(1, len(parts) + 1):
        cand = "::".join(parts[:i])
        if cand in modules:
            best, rest = cand, parts[i:]
    if best is None:
        return None
    if rest and rest[0] in reexports.get(best, {}):
        return reexports[best][rest[0]]
    return best

edges = {m: set() for m in modules}
for mod, text in modules.items():
    text = strip_tests(text)
    # declarations and re-exports are a table of contents, not a dependency
    text = re.sub(r"(?m)^\s*(pub(\([^)]*\))? )?mod \w+;", "", text)
    text = re.sub(r"pub use (?!crate::|super::|self::)\w+::[^;]*;", "", text)
    parent = mod.rsplit("::", 1)[0] if "::" in mod else "lib"
    paths = []
    # `crate::a::{B, c::D}`: each item; `crate::a::b::C`: the path
    for m in re.finditer(r"crate::([\w:]*?)(\w+)::\{([^}]*)\}|crate::([\w:]+)", text):
        if m.group(4):
            paths.append(m.group(4))
        else:
            base = m.group(1) + m.group(2)
            paths += [f"{base}::{item.strip()}" for item in m.group(3).split(",") if item.strip()]
    own = "" if mod == "lib" else mod + "::"
    children = {c.rsplit("::", 1)[-1] for c in modules if c.startswith(own) and c.count("::") == own.count("::")}
    for m in re.finditer(r"(?<![\w:])(\w+)::(\{|\w)", text):
        if m.group(1) in children:
            paths.append(own + m.group(1))
    for path in paths:
        target = resolve(path)
        if target and target != mod:
            edges[mod].add(target)
    for m in re.finditer(r"super::(\{[^}]*\}|[\w:]+)", text):
        body = m.group(1)
        items = re.findall(r"\b(\w+)\b", body) if body.startswith("{") else [body.split("::")[0]]
        for item in items:
            sibling = f"{parent}::{item}" if parent != "lib" else item
            if sibling in modules:
                edges[mod].add(sibling)
            elif item in reexports.get(parent, {}):
                edges[mod].add(reexports[parent][item])
            elif parent in modules and item not in ("self",):
                edges[mod].add(parent)
    edges[mod].discard(mod)

def find_cycle():
    state, stack = {}, []
    def visit(n):
        state[n] = 1; stack.append(n)
        for t in sorted(edges.get(n, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                c = visit(t)
                if c: return c
        state[n] = 2; stack.pop()
        return None
    for n in sorted(edges):
        if n not in state:
            c = visit(n)
            if c: return c
    return None

# The layers of docs/ARCHITECTURE.md: a module may use only its own layer and those below.
LAYERS = ["config", "http_client", "telemetry", "llm", "access", "api", "server", "lib", "main"]

# Modules that share a layer: the crate root's `server`; `redis_client`, outgoing connections
# like `http_client`.
SAME_LAYER = {"server": "lib", "redis_client": "http_client"}

def layer(mod):
    top = mod.split("::")[0]
    return LAYERS.index(SAME_LAYER.get(top, top))

upward = [(m, t) for m in edges for t in edges[m] if layer(t) > layer(m)]
for mod in sorted(edges):
    print(f"{mod} -> {', '.join(sorted(edges[mod])) or '-'}")
for m, t in sorted(upward):
    print(f"UPWARD: {m} -> {t} (layers: {' <- '.join(LAYERS)})")
cycle = find_cycle()
if cycle:
    print("CYCLE: " + " -> ".join(cycle))
if cycle or upward:
    sys.exit(1)
print("no cycles; every dependency points down the layers")
