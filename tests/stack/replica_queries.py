"""Which queries split a per-key series by processor replica.

With several processor replicas (docs/kafka.md) a series per (service, feature) or per canary
probe comes from the key's owner, or from every replica (the judge's agreement with human
labels, read from the shared store; canaries), and moves to another replica on a take-over. A
panel or rule that reads such a series without an aggregation that drops ``instance`` shows one
line per replica: doubled, or broken in two at every take-over. :func:`split_by_replica` finds
those reads in a PromQL expression: each per-key series must sit inside an aggregation
(``max by (service, feature, ...)``, ``sum by (...)``, ``sum(...)``, ``... without (instance)``)
whose result has no ``instance`` label.
"""

from __future__ import annotations

import re

from llmpulse.processor.metrics import names as M
from tests.stack.test_metric_names import ALL_METRICS

PER_KEY_LABELS = frozenset({M.FEATURE, "probe"})
PER_KEY_SERIES: frozenset[str] = frozenset(
    series for spec in ALL_METRICS if PER_KEY_LABELS & set(spec.labels) for series in spec.series
)
"""Every exported series of a metric kept per (service, feature) or per canary probe."""

_BLANK = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|\{[^{}]*\}|\[[^\]]*\]')
_NAME = re.compile(r"(?<![A-Za-z0-9_:])[A-Za-z_:][A-Za-z0-9_:]*")
_AGGREGATION = re.compile(
    r"\b(?:sum|max|min|avg|count|group|stddev|stdvar|topk|bottomk|quantile)\s*"
    r"(?:(by|without)\s*\(([^()]*)\))?\s*$"
)


def _blank(expr: str) -> str:
    """``expr`` with strings, matcher blocks and ranges blanked out, positions kept."""
    return _BLANK.sub(lambda m: " " * len(m.group(0)), expr)


def _keeps_instance(text: str, position: int) -> bool:
    """Whether the series read at ``position`` reaches the result with its ``instance`` label:
    no enclosing aggregation, or the nearest one groups by ``instance`` (or not without it)."""
    depth = 0
    for i in range(position - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            if depth:
                depth -= 1
                continue
            found = _AGGREGATION.search(text, 0, i)
            if found is None:
                continue  # a function call or a plain group: look further out
            clause, listed = found.group(1), found.group(2) or ""
            labels = {label.strip() for label in listed.split(",")}
            if clause == "by":
                return "instance" in labels
            if clause == "without":
                return "instance" not in labels
            return False  # sum(...), max(...): every label dropped
    return True


def split_by_replica(expr: str) -> list[str]:
    """The per-key series ``expr`` reads without dropping ``instance`` (sorted, once each)."""
    text = _blank(expr)
    found = {
        match.group(0)
        for match in _NAME.finditer(text)
        if match.group(0) in PER_KEY_SERIES and _keeps_instance(text, match.start())
    }
    return sorted(found)
