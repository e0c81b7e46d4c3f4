"""The root Dockerfile: multi-stage, a --locked release build of rrlb-bin, a non-root USER, an exec-form
HEALTHCHECK with `rrlb --healthcheck`, EXPOSE 8080 9901, pinned base images; .dockerignore keeps target/ and
.git out of the context.

Usage: python3 scripts/checks/dockerfile.py  (from the repository root). Prints each problem; exits 1 if any.
"""
import re
import sys


def check(text, ignore):
    errors = []
    if len(re.findall(r"(?im)^FROM\s", text)) < 2:
        errors.append("not multi-stage")
    if not re.search(r"cargo build --release --locked -p rrlb-bin", text):
        errors.append("missing `cargo build --release --locked -p rrlb-bin`")
    if not re.search(r"(?im)^USER\s+(?!root\b|0\b)\S+", text):
        errors.append("no non-root USER")
    if not re.search(r'(?im)^\s*CMD \["/usr/local/bin/rrlb", "--healthcheck"\]', text):
        errors.append("no exec-form HEALTHCHECK with rrlb --healthcheck")
    if not re.search(r"(?im)^EXPOSE\s+8080\s+9901", text):
        errors.append("EXPOSE 8080 9901 missing")
    for img in re.findall(r"(?im)^FROM\s+(\S+)", text):
        if ":" not in img.split("/")[-1] and "$" not in img and not re.match(r"^[a-z]+$", img):
            errors.append(f"unpinned base image {img}")
    for needed in ("target", ".git"):
        if not any(p.strip("*/") == needed for p in ignore):
            errors.append(f".dockerignore does not exclude {needed}")
    return errors


def main():
    with open("Dockerfile") as f:
        text = f.read()
    with open(".dockerignore") as f:
        ignore = f.read().split()
    errors = check(text, ignore)
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
