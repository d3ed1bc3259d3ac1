"""Finds the metric names and label names a PromQL expression uses.

Small on purpose: it handles the PromQL our dashboards and rules are written in (selectors,
aggregations with by/without, functions, binary operators, ranges, Grafana $variables), enough
to check every name against the coordinator's exported families. Syntax itself is checked by
promtool.
"""

import re

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool", "inf", "nan", "atan2"}
# Labels every scraped series carries (added by Prometheus, not by the exporter).
TARGET_LABELS = {"job", "instance"}
# Series Prometheus itself produces for every target.
SYNTHETIC_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)")


def _blank_strings(expr):
    return _STRING.sub('""', expr)


def metric_names(expr):
    """Metric names in the expression, in order of appearance."""
    s = _blank_strings(expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = _GROUPING.sub(" ", s)
    names = []
    for match in _IDENT.finditer(s):
        token = match.group(0)
        before = s[match.start() - 1] if match.start() else " "
        if before.isdigit() or before in ".$":
            continue  # Part of a number (1e3) or a Grafana variable.
        if token.lower() in KEYWORDS or s[match.end():].lstrip().startswith("("):
            continue  # A keyword, or a function / aggregation call.
        names.append(token)
    return names


def selector_labels(expr):
    """(metric name, [label names]) for every `name{...}` selector."""
    s = _blank_strings(expr)
    return [(m.group(1), [name for name, _ in _MATCHER.findall(m.group(2))])
            for m in _SELECTOR.finditer(s)]


def grouping_labels(expr):
    """Label names used in by/without/on/ignoring/group_* clauses."""
    labels = set()
    for _, inner in _GROUPING.findall(_blank_strings(expr)):
        labels.update(part.strip() for part in inner.split(",") if part.strip())
    return labels


def family_of(name, histograms):
    """The family a series name belongs to: histogram series carry _bucket/_sum/_count."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[:-len(suffix)] in histograms:
            return name[:-len(suffix)]
    return name


def grafana_query_expr(query):
    """The PromQL inside a Grafana variable query such as label_values(metric{...}, label)."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", query)
    if match:
        return match.group(1)
    match = re.fullmatch(r"\s*(?:query_result|metrics)\((.*)\)\s*", query)
    return match.group(1) if match else query


def for_promtool(expr):
    """Grafana's interval variables replaced so promtool can parse the expression."""
    return re.sub(r"\$__(rate_)?interval|\$__range", "5m", expr)
