#!/usr/bin/env python3
"""monitoring/dashboard.json: it parses, it has the datasource and instance
variables, every panel but a row has targets, and every target's expr is
non-empty and valid PromQL once the Grafana variables are replaced (promtool
checks them as recording rules).

    check_dashboard.py PROMTOOL DASHBOARD WORK_DIR
"""
import json
import os
import subprocess
import sys

SUBSTITUTIONS = {"$instance": "pve01:8000", "$__rate_interval": "2m", "$__range": "6h",
                 "$__interval": "30s"}


def panels_of(panels):
    for p in panels:
        yield p
        yield from panels_of(p.get("panels", []))


def main():
    promtool, path, work = sys.argv[1:4]
    with open(path, encoding="utf-8") as f:
        dashboard = json.load(f)
    errors = []
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        errors.append("no datasource variable")
    instance = variables.get("instance", {})
    if "label_values(proxmox_host_agent_build_info, instance)" not in str(instance.get("query")):
        errors.append("the instance variable is not label_values(proxmox_host_agent_build_info, "
                      "instance)")
    rules = []
    panels = list(panels_of(dashboard.get("panels", [])))
    if not panels:
        errors.append("no panels")
    for p in panels:
        if p.get("type") == "row":
            continue
        title = p.get("title", "(untitled)")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"{title}: the panel's datasource is not ${{datasource}}")
        targets = p.get("targets", [])
        if not targets:
            errors.append(f"{title}: no targets")
        for t in targets:
            expr = t.get("expr", "").strip()
            if not expr:
                errors.append(f"{title}: target {t.get('refId')} has no expr")
                continue
            for var, value in SUBSTITUTIONS.items():
                expr = expr.replace(var, value)
            if "$" in expr:
                errors.append(f"{title}: unknown variable in {expr}")
                continue
            rules.append({"record": f"dashboard:panel_{p.get('id')}_{t.get('refId')}",
                          "expr": expr})
    if rules:
        os.makedirs(work, exist_ok=True)
        rule_file = os.path.join(work, "dashboard_exprs.rules.json")
        with open(rule_file, "w", encoding="utf-8") as f:
            json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, indent=1)
        r = subprocess.run([promtool, "check", "rules", rule_file], capture_output=True,
                           text=True, check=False)
        if r.returncode != 0:
            errors.append("promtool check rules of the exprs failed:\n" + r.stdout + r.stderr)
    for e in errors:
        print(e, file=sys.stderr)
    print(f"{len(panels)} panels, {len(rules)} exprs checked")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
