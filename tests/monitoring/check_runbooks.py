#!/usr/bin/env python3
"""monitoring/alerts.yml and the runbook: every alert rule has a
`runbook_url` annotation `docs/operating.md#<anchor>`, the anchor is a
heading of docs/operating.md (GitHub's slug rules) whose text is the
rule's name, and every alert heading of the runbook names a rule, so
neither can be renamed or dropped without the other.

    check_runbooks.py ALERTS_YML OPERATING_MD
"""
import re
import sys

RUNBOOK = "docs/operating.md"


def rules(path):
    """[(alert, runbook_url or None)] in file order."""
    found = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*- alert: (\S+)\s*$", line)
            if m:
                found.append([m.group(1), None])
                continue
            m = re.match(r"\s*runbook_url: \"([^\"]*)\"\s*$", line)
            if m and found:
                found[-1][1] = m.group(1)
    return found


def slug(text):
    """GitHub's heading anchor: lower case, punctuation but - and _ dropped,
    spaces to -."""
    text = re.sub(r"[`*]", "", text.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(path):
    """{anchor: (level, text)} of the headings outside code fences."""
    found, seen, fence = {}, {}, False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fence = not fence
                continue
            m = None if fence else re.match(r"(#{1,6}) (.+?)\s*$", line)
            if m:
                base = slug(m.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found[base if n == 0 else f"{base}-{n}"] = (len(m.group(1)), m.group(2))
    return found


def main():
    alerts_path, runbook_path = sys.argv[1:3]
    errors = []
    found = rules(alerts_path)
    if not found:
        errors.append(f"{alerts_path}: no alert rules found")
    anchors = headings(runbook_path)
    names = {alert for alert, _ in found}
    for alert, url in found:
        if url is None:
            errors.append(f"{alert}: no runbook_url annotation")
            continue
        doc, _, anchor = url.partition("#")
        if doc != RUNBOOK or not anchor:
            errors.append(f"{alert}: runbook_url {url!r} is not {RUNBOOK}#<anchor>")
        elif anchor not in anchors:
            errors.append(f"{alert}: runbook_url {url!r}: no such heading in {RUNBOOK}")
        elif anchors[anchor][1] != alert:
            errors.append(f"{alert}: runbook_url {url!r} is the section {anchors[anchor][1]!r}")
    for _, (level, text) in anchors.items():
        if text.startswith("ProxmoxHostAgent") and text not in names:
            errors.append(f"{RUNBOOK}: section {text!r} names no alert rule of {alerts_path}")
    for e in errors:
        print(e, file=sys.stderr)
    if not errors:
        print(f"{len(found)} alert rules, each with its section in {RUNBOOK}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
