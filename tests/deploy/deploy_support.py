"""Helpers for the deployment tests: repository paths, the exported metric names, promtool, PromQL names."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = ROOT / "helm-chart"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "llm-router.json"

# Labels Prometheus itself attaches to every scraped series, and the histogram bucket label.
TARGET_LABELS = {"instance", "job"}


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    labels: frozenset[str]

    def series_names(self) -> dict[str, frozenset[str]]:
        """The series names Prometheus stores for this family, each with its label names."""
        if self.type == "counter":
            return {self.name + "_total": self.labels, self.name + "_created": self.labels}
        if self.type == "histogram":
            return {self.name + "_bucket": self.labels | {"le"}, self.name + "_sum": self.labels,
                    self.name + "_count": self.labels, self.name + "_created": self.labels}
        return {self.name: self.labels}


def metric_families() -> list[Family]:
    """Every metric gateway/metrics.py defines, read from the module (nothing listed by hand)."""
    from prometheus_client.metrics import MetricWrapperBase

    import gateway.metrics as metrics

    out = []
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            for fam in obj.describe():
                out.append(Family(fam.name, fam.type, frozenset(obj._labelnames)))
    return out


def exported_series() -> dict[str, frozenset[str]]:
    names: dict[str, frozenset[str]] = {"up": frozenset()}
    for fam in metric_families():
        names.update(fam.series_names())
    return names


PROMQL_FUNCS_AND_KEYWORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "histogram_quantile", "by",
    "without", "ignoring", "on", "group_left", "group_right", "and", "or", "unless", "bool",
    "absent", "label_values", "topk", "bottomk", "delta", "deriv", "offset", "clamp_min", "vector",
}


def promql_metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that name series: not functions, keywords, labels or strings."""
    no_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    no_matchers = re.sub(r"\{[^}]*\}", "{}", no_strings)           # label matchers
    no_groupings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", no_matchers)
    no_ranges = re.sub(r"\[[^\]]*\]", "[]", no_groupings)
    tokens = set(re.findall(r"(?<![\w$.])[a-zA-Z_:][\w:]*", no_ranges))
    return {t for t in tokens if t not in PROMQL_FUNCS_AND_KEYWORDS}


def promql_label_names(expr: str) -> set[str]:
    """Label names an expression matches on or groups by."""
    no_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels: set[str] = set()
    for matcher in re.findall(r"\{([^}]*)\}", no_strings):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matcher))
    for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", no_strings):
        labels |= {g.strip() for g in group.split(",") if g.strip()}
    return labels


def need_tool(name: str) -> str:
    """The path of a required binary. Missing fails the test: `make test` installs it or stops first
    (scripts/test-tools.sh), so no skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: run scripts/test-tools.sh (`make test` does), "
                    "or `apt-get install prometheus`")
    return path


def run_tool(*args: str | Path, cwd: Path | None = None, input: str | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, input=input, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{out}"
    return out


COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def dockerignore_includes(rel_path: str, patterns: list[str]) -> bool:
    """Whether Docker sends ``rel_path`` in the build context, by .dockerignore's rules: each
    pattern is matched against the path and each of its parent folders; the last match wins."""
    parts = rel_path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = "".join(
            "(.*/)?" if tok == "**/" else ".*" if tok == "**" else "[^/]*" if tok == "*"
            else "[^/]" if tok == "?" else re.escape(tok)
            for tok in re.findall(r"\*\*/|\*\*|\*|\?|[^*?]+", pattern))
        if any(re.fullmatch(regex, c) for c in candidates):
            included = negate
    return included


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that rejects duplicate mapping keys (Kubernetes' strict decoding does too)."""


def _construct_mapping(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dup = sorted({str(k) for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"duplicate keys {dup} at {node.start_mark}")
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_all_strict(text: str) -> list[dict]:
    return [doc for doc in yaml.load_all(text, Loader=_UniqueKeyLoader) if doc]


def parse_cli(args: list[str]) -> dict:
    """Parse an ``llm-router`` command line with the real CLI (nothing runs): its options by name.
    Catches a deployment that passes an option the command does not have or in a form it rejects."""
    from typer.main import get_command

    from gateway.cli import app

    group = get_command(app)
    assert args and args[0] in group.commands, f"no `llm-router {args[:1]}` command"
    return group.commands[args[0]].make_context(args[0], list(args[1:])).params


# Grafana's variables, replaced by values Grafana could substitute, so Prometheus can run a query.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "5m", "$instance": ".*"}


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL as Grafana sends it) for every panel target and query variable."""
    import json

    dash = json.loads(DASHBOARD.read_text())
    raw = [(p["title"], t["expr"]) for p in dash["panels"] if p["type"] != "row" for t in p["targets"]]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["query"]["query"])
            assert m, var["query"]
            raw.append((f"${var['name']}", m.group(1)))
    out = []
    for title, expr in raw:
        for var, value in GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"{title}: unknown Grafana variable in {expr}"
        out.append((title, expr))
    return out
