"""Docker build contexts at the repository root hold the whole cargo workspace.

For each compose service built from `.`, copies what its ignore file (Dockerfile.dockerignore, else
.dockerignore) lets into the build context to OUT_DIR/<service>, and checks that cargo can load the
workspace there.

Usage: python3 scripts/checks/contexts.py OUT_DIR  (from the repository root; needs cargo). Exits 1 on a failure.
"""
import os
import re
import shutil
import subprocess
import sys

import yaml


def rx(pattern):
    """A .dockerignore pattern as a regex over relative paths (`**`, `*`, `?`; a match covers what is below)."""
    p = pattern.strip().lstrip("/").rstrip("/")
    r, i = "", 0
    while i < len(p):
        if p.startswith("**/", i):
            r, i = r + "(?:.*/)?", i + 3
        elif p.startswith("**", i):
            r, i = r + ".*", i + 2
        elif p[i] == "*":
            r, i = r + "[^/]*", i + 1
        elif p[i] == "?":
            r, i = r + "[^/]", i + 1
        else:
            r, i = r + re.escape(p[i]), i + 1
    return re.compile(r + "(?:/.*)?$")


def patterns(path):
    rules = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                neg = line.startswith("!")
                rules.append((neg, rx(line[1:] if neg else line)))
    return rules


def ignored(rel, rules):
    hit = False
    for neg, r in rules:
        if r.match(rel):
            hit = not neg
    return hit


def copy_context(dest, rules):
    for root, dirs, files in os.walk("."):
        rel_root = os.path.relpath(root, ".")
        dirs[:] = [d for d in dirs if d not in (".git", "target")
                   and not ignored(os.path.normpath(os.path.join(rel_root, d)), rules)]
        for f in files:
            rel = os.path.normpath(os.path.join(rel_root, f))
            if not ignored(rel, rules):
                os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
                shutil.copy2(rel, os.path.join(dest, rel))


def main(out):
    with open("compose.yaml") as f:
        services = yaml.safe_load(f)["services"]
    errors = []
    for name, svc in services.items():
        b = svc.get("build")
        if not isinstance(b, dict) or b.get("context") != ".":
            continue
        dockerfile = b.get("dockerfile", "Dockerfile")
        ignore = dockerfile + ".dockerignore" if os.path.exists(dockerfile + ".dockerignore") else ".dockerignore"
        dest = os.path.join(out, name)
        copy_context(dest, patterns(ignore))
        r = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
                           cwd=dest, capture_output=True, text=True)
        if r.returncode != 0:
            errors.append(f"{name} ({ignore}): cargo cannot load the workspace from its build context:\n"
                          f"{r.stderr.strip()}")
        else:
            print(f"{name}: the context left by {ignore} loads the workspace")
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
