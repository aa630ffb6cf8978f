"""What streamrec exports, and which metric names a PromQL expression uses: for the deploy/ checks."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

#: Series Prometheus makes itself for every target.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}

#: Sample-name suffixes by metric type (counters' family names come without ``_total``).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}

_KEYWORDS = {"and", "or", "unless", "bool", "inf", "nan"}


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name ``registry`` can expose, whether or not it has samples yet."""
    names = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def documented_name(name: str, kind: str) -> str:
    """How the README's metrics table names a family: as queried (``_total``, ``_info``)."""
    return {"counter": f"{name}_total", "info": f"{name}_info"}.get(kind, name)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects.

    >>> sorted(metric_names('sum by (le) (rate(a_bucket{x="y"}[5m])) / on() b offset 5m > 0.5 and c'))
    ['a_bucket', 'b', 'c']
    """
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\boffset\s+-?\w+", "", text)
    text = re.sub(r"\$\w+", "", text)  # dashboard variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, is_call = match.group(1), match.group(2)
        if not is_call and name.lower() not in _KEYWORDS:
            names.add(name)
    return names
