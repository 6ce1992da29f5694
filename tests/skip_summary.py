"""The end-of-run summary of tests that did not run for lack of a system tool, grouped by the one
command that enables them (skip reasons name it: "... (make browser installs it)")."""

from __future__ import annotations

import re
from collections import defaultdict

ENABLED_BY = re.compile(r"\bmake ([a-z][\w-]*)")
AS_ROOT = frozenset({"browser", "ops-tools"})  # apt-get installs: root, or sudo


def summary(reasons: list[str]) -> list[str]:
    """Lines for the skipped tests' reasons: one per enabling command, with what is missing."""
    groups: dict[str, list[str]] = defaultdict(list)
    for reason in reasons:
        found = ENABLED_BY.search(reason)
        if found:
            groups[found.group(1)].append(reason.removeprefix("Skipped: "))
    lines = []
    for target, grouped in sorted(groups.items()):
        missing = sorted({reason.split(" (")[0].strip() for reason in grouped})
        how = f"sudo make {target}" if target in AS_ROOT else f"make {target}"
        count = f"{len(grouped)} test{'s' if len(grouped) > 1 else ''}"
        lines.append(f"{count} not run: {'; '.join(missing)}. Enable: {how}, then make test")
    return lines
