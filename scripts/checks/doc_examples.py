"""Every public type and trait of a library crate has a doc example.

Reads the rustdoc JSON of each crate (`cargo +nightly rustdoc -p CRATE --all-features -- -Z unstable-options
--output-format json`), walks the items reachable from the crate root through public modules and re-exports,
and reports each struct, enum, union, trait and type alias whose documentation has no code block.

Usage: python3 scripts/checks/doc_examples.py target/doc/rrlb_core.json ...  Exits 1 if any is missing.
"""
import json
import sys

KINDS = ("struct", "enum", "union", "trait", "type_alias")


def missing_examples(doc):
    index = doc["index"]
    seen = set()
    total = 0
    missing = []

    def walk(item_id, path):
        nonlocal total
        if item_id is None or item_id in seen:
            return
        seen.add(item_id)
        item = index.get(str(item_id))
        if item is None:  # an item of another crate
            return
        kind, inner = next(iter(item["inner"].items()))
        if kind == "module":
            for child in inner["items"]:
                walk(child, path + [item["name"]])
        elif kind == "use":
            walk(inner.get("id"), path)
        elif kind in KINDS and item.get("visibility") == "public":
            total += 1
            if "```" not in (item.get("docs") or ""):
                missing.append("::".join(path + [item["name"]]) + " (" + kind + ")")

    walk(doc["root"], [])
    return total, missing


def main(paths):
    failed = False
    for path in paths:
        with open(path) as f:
            total, missing = missing_examples(json.load(f))
        print(f"{path}: {total} public types and traits, {total - len(missing)} with a doc example")
        for name in missing:
            print(f"  no example: {name}")
        failed = failed or bool(missing) or total == 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
