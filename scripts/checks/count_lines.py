"""Plain count of Rust code lines, per file and per folder.

A line counts when, stripped of surrounding whitespace, it is not empty and does not start with `//`
(so `//`, `///` and `//!` comments, doc comments included, do not count; a line with code and a trailing
comment does). Lines of a file's trailing unit-test module do not count: from a line `#[cfg(test)]` that is
followed (after blank lines) by `mod tests {` at the start of a line, through the next line that is exactly
`}` (rustfmt closes a top-level item there). Block comments (`/* */`) and strings are not looked into.

Usage: python3 scripts/checks/count_lines.py PATH  (a `.rs` file or a folder, searched recursively).
Prints `count path` for each file, then for each folder the sum of the files beneath it, then the total.
"""
import os
import sys


def count_file(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    count = 0
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped == "#[cfg(test)]":
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and lines[j].startswith("mod tests {"):
                while j < len(lines) and lines[j] != "}":
                    j += 1
                i = j + 1
                continue
        if stripped and not stripped.startswith("//"):
            count += 1
        i += 1
    return count


def rust_files(root):
    if os.path.isfile(root):
        return [root]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "target" and not d.startswith("."))
        found.extend(os.path.join(folder, name) for name in sorted(files) if name.endswith(".rs"))
    return found


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    files = rust_files(argv[1])
    folders = {}
    total = 0
    for path in files:
        n = count_file(path)
        total += n
        print(f"{n:6} {path}")
        folder = os.path.dirname(path)
        while folder and folder.startswith(argv[1].rstrip("/")):
            folders[folder] = folders.get(folder, 0) + n
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    for folder in sorted(folders):
        print(f"{folders[folder]:6} {folder}/")
    print(f"{total:6} total")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
