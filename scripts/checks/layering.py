"""The layering check: every crate's top-level modules import only modules below them.

Reads the order from docs/architecture.md: one fenced block per crate, opened with ```layering CRATE, one
layer per line, top first, the modules of a layer separated by spaces (they may not import each other). For
each crate it reads the `crate::module` paths in the code of src/ (comments and the trailing `#[cfg(test)]
mod tests` block and `tests.rs` files left out: a doc link or a test is not a dependency) and fails on

- an import that goes up, or sideways within a layer;
- a top-level module of src/ that the order does not name (a new module must be placed), or one it names
  that does not exist;
- any crate of the workspace (ordered or not) whose folder-level import graph has a cycle.

Usage: python3 scripts/checks/layering.py [ROOT]   (exit 1 on a violation, each printed with its file)
"""

import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
DOC = os.path.join(ROOT, "docs", "architecture.md")
# The crate roots: what they import is not a layer's business.
ROOTS = {"lib", "main"}


def read_order():
    """{crate: [[module, ...] per layer, top first]} from docs/architecture.md."""
    orders = {}
    crate = None
    with open(DOC, encoding="utf-8") as f:
        for line in f:
            stripped = line.strip()
            m = re.match(r"^```layering\s+(\S+)\s*$", stripped)
            if m:
                crate = m.group(1)
                orders[crate] = []
                continue
            if crate is not None:
                if stripped.startswith("```"):
                    crate = None
                elif stripped:
                    orders[crate].append(stripped.split())
    return orders


def strip_code(text):
    """The code of a file: without the trailing test module, comments and string literals' contents."""
    cut = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod tests\b", text, re.M)
    if cut:
        text = text[: cut.start()]
    out = []
    for line in text.split("\n"):
        s = line.lstrip()
        if s.startswith("//"):
            continue
        # Drop a trailing comment (good enough: `//` inside a string is rare in this code, and only hides).
        line = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)
        out.append(line.split("//")[0])
    return "\n".join(out)


def imports(src):
    """{module: {imported module: set of files}} for the top-level modules under `src`."""
    graph = {}
    modules = set()
    for dirpath, _, files in os.walk(src):
        for name in files:
            # A `tests.rs` is a test module in a file of its own (`#[cfg(test)] mod tests;`): like the trailing
            # test modules, what it imports is no dependency of the code.
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)
            top = rel.split(os.sep)[0]
            top = top[:-3] if top.endswith(".rs") else top
            if top in ROOTS:
                continue
            if rel.count(os.sep) == 0 or os.path.isdir(os.path.join(src, top)):
                modules.add(top)
            with open(path, encoding="utf-8") as f:
                code = strip_code(f.read())
            found = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", code))
            for group in re.findall(r"\bcrate::\{([^}]*)\}", code, re.S):
                found.update(re.findall(r"(?:^|[,{\s])([a-z_][a-z0-9_]*)", group))
            for target in found - {top, "self"}:
                graph.setdefault(top, {}).setdefault(target, set()).add(os.path.relpath(path, ROOT))
    return modules, graph


def cycles(modules, graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in modules:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(modules):
        if v not in index:
            visit(v)
    return out


def crates():
    """Every workspace directory with a Cargo.toml and a src/ folder."""
    for entry in sorted(os.listdir(ROOT)):
        src = os.path.join(ROOT, entry, "src")
        if os.path.isfile(os.path.join(ROOT, entry, "Cargo.toml")) and os.path.isdir(src):
            yield entry, src


def main():
    orders = read_order()
    problems = []
    checked = 0
    for crate, src in crates():
        modules, graph = imports(src)
        for comp in cycles(modules, graph):
            problems.append(f"{crate}: a folder-level import cycle: {' -> '.join(comp)}")
        order = orders.pop(crate, None)
        if order is None:
            continue
        checked += 1
        level = {}
        for i, layer in enumerate(order):
            for m in layer:
                level[m] = i
        for m in sorted(modules - set(level)):
            problems.append(f"{crate}: module `{m}` is not placed in docs/architecture.md's layering block")
        for m in sorted(set(level) - modules):
            problems.append(f"{crate}: docs/architecture.md places `{m}`, which does not exist")
        for source, targets in sorted(graph.items()):
            for target, files in sorted(targets.items()):
                if target not in modules or source not in level or target not in level:
                    continue
                if level[target] <= level[source]:
                    how = "sideways (same layer)" if level[target] == level[source] else "up"
                    problems.append(
                        f"{crate}: `{source}` imports `{target}`, {how}, in {', '.join(sorted(files))}"
                    )
    for crate in orders:
        problems.append(f"docs/architecture.md orders crate `{crate}`, which has no src/ here")
    for p in problems:
        print(f"layering: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"layering: {checked} crates follow their documented order; no folder-level cycle in any crate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
