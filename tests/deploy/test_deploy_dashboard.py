"""The Grafana dashboard: provisionable JSON, valid PromQL (checked by promtool), only series and
labels the gateway exports, and every metric of gateway/metrics.py on some panel."""

from __future__ import annotations

import json

import yaml

from deploy_support import (DASHBOARD, TARGET_LABELS, dashboard_queries, exported_series, metric_families,
                            need_tool, promql_label_names, promql_metric_names, run_tool)

def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def test_dashboard_is_provisionable():
    dash = dashboard()
    assert dash["uid"] == "llm-router" and dash["title"]
    assert "__inputs" not in dash, "file provisioning does not resolve import inputs"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels():
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["refId"], p["title"]


def test_panels_fit_the_grid_without_overlapping():
    cells: dict[tuple[int, int], str] = {}
    for p in dashboard()["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


def test_queries_use_only_exported_series_and_their_labels():
    series = exported_series()
    for title, expr in dashboard_queries():
        names = promql_metric_names(expr)
        assert names and names <= set(series), f"{title}: unknown series {names - set(series)}"
        allowed = set().union(*(series[n] for n in names)) | TARGET_LABELS
        assert promql_label_names(expr) <= allowed, f"{title}: {promql_label_names(expr) - allowed}"


def test_every_gateway_metric_is_on_a_panel():
    used = set().union(*(promql_metric_names(e) for _, e in dashboard_queries()))
    missing = [fam.name for fam in metric_families() if not set(fam.series_names()) & used]
    assert missing == []


def test_promtool_parses_every_query(tmp_path):
    # promtool validates a rule's expression with Prometheus's own parser; wrap each query in one
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(dashboard_queries())]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    out = run_tool(need_tool("promtool"), "check", "rules", path)
    assert f"SUCCESS: {len(dashboard_queries())} rules found" in out
