"""The Grafana dashboard and the Prometheus alert rules use only the metric names documented in docs/operations.md, and cover them all: every
metric has a dashboard panel, and every one but those in NO_ALERT an alert rule. The dashboard has a uid and a
title, and its panels use the provisioned Prometheus datasource.

Usage: python3 scripts/checks/monitoring.py  (from the repository root). Prints each problem; exits 1 if any.
"""
import json
import re
import sys

import yaml

SPEC = {"rrlb_requests_total", "rrlb_request_duration_seconds", "rrlb_backend_healthy",
        "rrlb_circuit_state", "rrlb_in_flight", "rrlb_retries_total", "rrlb_rejected_total",
        "rrlb_build_info", "rrlb_config_reloads_total", "rrlb_config_last_reload_success_timestamp_seconds",
        "rrlb_connections", "rrlb_upstream_errors_total", "rrlb_health_checks_total"}
# Shown on the dashboard, and not alerted on: a gauge of work in progress, the version, connection counts, health
# checks (their result is rrlb_backend_healthy, which is alerted on) and the time of the last good reload (named
# in RrlbConfigReloadFailed's description; the alert itself counts refused reloads).
NO_ALERT = {"rrlb_in_flight", "rrlb_build_info", "rrlb_connections", "rrlb_health_checks_total",
            "rrlb_config_last_reload_success_timestamp_seconds"}
ALLOWED = SPEC | {"rrlb_request_duration_seconds_" + s for s in ("bucket", "sum", "count")}
DASHBOARD = "monitoring/grafana/dashboards/rrlb.json"
DATASOURCES = "monitoring/grafana/provisioning/datasources/prometheus.yml"
ALERTS = "monitoring/prometheus/alerts.yml"


def base(m):
    """A histogram series' metric name (`_bucket`, `_sum`, `_count` removed)."""
    return re.sub(r"_(bucket|sum|count)$", "", m) if m.startswith("rrlb_request_duration_seconds") else m


def queries(panels):
    """(panel title, expression) of every target, nested rows included."""
    for p in panels:
        for t in p.get("targets", []):
            yield p.get("title"), t.get("expr", "")
        yield from queries(p.get("panels", []))


def check_dashboard(dash, ds_uid, errors):
    exprs = list(queries(dash.get("panels", [])))
    if not dash.get("uid") or not dash.get("title"):
        errors.append("dashboard needs uid and title")
    for p in dash["panels"]:
        if (p.get("datasource") or {}).get("uid") not in (ds_uid, None):
            errors.append(f"panel {p.get('title')}: unknown datasource uid")
    used = set()
    for title, e in exprs:
        for m in re.findall(r"\brrlb_[a-z_]+", e):
            if m not in ALLOWED:
                errors.append(f"dashboard panel {title!r}: unknown metric {m}")
            used.add(base(m))
    for m in sorted(SPEC - used):
        errors.append(f"dashboard: no panel shows {m}")
    return len(exprs)


def check_rules(rules, errors):
    used = set()
    for g in rules["groups"]:
        for r in g["rules"]:
            for m in re.findall(r"\brrlb_[a-z_]+", r["expr"]):
                if m not in ALLOWED:
                    errors.append(f"alert {r.get('alert')}: unknown metric {m}")
                used.add(base(m))
    for m in sorted(SPEC - used - NO_ALERT):
        errors.append(f"alerts: no rule uses {m}")


def main():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    with open(DATASOURCES) as f:
        ds_uid = yaml.safe_load(f)["datasources"][0]["uid"]
    with open(ALERTS) as f:
        rules = yaml.safe_load(f)
    errors = []
    n = check_dashboard(dash, ds_uid, errors)
    check_rules(rules, errors)
    for e in errors:
        print(e)
    print(f"{n} dashboard queries checked")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
