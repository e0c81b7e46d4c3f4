"""compose.yaml: every service is built from a context with a Dockerfile (or runs a pinned image), has
deploy.resources limits, a healthcheck and a restart policy; rrlb depends on each echo service with
condition service_healthy, publishes its admin port on loopback only and is given an admin token.

Usage: python3 scripts/checks/compose.py  (from the repository root). Prints each problem; exits 1 if any.
"""
import os
import sys

import yaml

ECHOES = ["echo-go", "echo-node", "echo-java", "echo-rs"]


def check(doc):
    errors = []
    if "version" in doc:
        errors.append("top-level 'version' key is obsolete in the compose spec")
    services = doc.get("services", {})
    for name in ["rrlb"] + ECHOES:
        if name not in services:
            errors.append(f"service {name} missing")
    for name, svc in services.items():
        build = svc.get("build")
        if build is not None:
            if isinstance(build, str):
                build = {"context": build}
            ctx = build.get("context", ".")
            dockerfile = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
            if not os.path.isdir(ctx):
                errors.append(f"{name}: build context {ctx}/ does not exist")
            elif not os.path.isfile(dockerfile):
                errors.append(f"{name}: {dockerfile} does not exist")
        else:
            image = svc.get("image", "")
            tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
            if not image or tag in ("", "latest"):
                errors.append(f"{name}: no build and no pinned image tag ({image!r})")
        limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        if not limits.get("cpus") or not limits.get("memory"):
            errors.append(f"{name}: deploy.resources.limits needs cpus and memory")
        hc = svc.get("healthcheck") or {}
        if not hc.get("test") or hc.get("disable"):
            errors.append(f"{name}: no healthcheck")
        if not svc.get("restart"):
            errors.append(f"{name}: no restart policy")
    rrlb = services.get("rrlb", {})
    deps = rrlb.get("depends_on") or {}
    for e in ECHOES:
        if not isinstance(deps, dict) or (deps.get(e) or {}).get("condition") != "service_healthy":
            errors.append(f"rrlb: depends_on {e} with condition service_healthy missing")
    ports = rrlb.get("ports") or []
    if not any(str(p).startswith("127.0.0.1:9901:") for p in ports):
        errors.append("rrlb: admin port must be published as 127.0.0.1:9901:9901")
    if any(str(p).split(":")[-2:] == ["9901", "9901"] and not str(p).startswith("127.0.0.1:") for p in ports):
        errors.append("rrlb: admin port published on a non-loopback address")
    env = rrlb.get("environment") or {}
    if "RRLB_ADMIN_TOKEN" not in env:
        errors.append("rrlb: RRLB_ADMIN_TOKEN must be set (admin listens on 0.0.0.0 in the container)")
    return errors


def main():
    with open("compose.yaml") as f:
        errors = check(yaml.safe_load(f))
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
