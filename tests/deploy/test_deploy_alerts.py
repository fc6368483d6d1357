"""Prometheus alert rules: promtool accepts them, every alert has unit tests that pass, and every
expression uses only series the gateway exports (gateway/metrics.py) with their own labels."""

from __future__ import annotations

import yaml

from deploy_support import (ALERTS, DEPLOY, TARGET_LABELS, exported_series, need_tool, promql_label_names,
                            promql_metric_names, run_tool)

ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules():
    out = run_tool(need_tool("promtool"), "check", "rules", ALERTS)
    assert f"SUCCESS: {len(alert_rules())} rules found" in out


def test_promtool_unit_tests_pass():
    out = run_tool(need_tool("promtool"), "test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert "SUCCESS" in out and "FAILED" not in out


def test_every_alert_is_tested_firing_and_silent():
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    assert tests["rule_files"] == [ALERTS.name]
    firing, silent = set(), set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts without a firing test"
    assert names - silent == set(), "alerts without a must-not-fire test"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_severity_and_annotations():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_alert_expressions_use_only_exported_series_and_their_labels():
    series = exported_series()
    for rule in alert_rules():
        names = promql_metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= set(series), f"{rule['alert']}: unknown series {names - set(series)}"
        allowed = set().union(*(series[n] for n in names)) | TARGET_LABELS
        assert promql_label_names(rule["expr"]) <= allowed, rule["alert"]


def test_compose_prometheus_config_is_valid_and_loads_the_alerts():
    config = DEPLOY / "prometheus" / "prometheus.yml"
    out = run_tool(need_tool("promtool"), "check", "config", config)
    assert "SUCCESS: 1 rule files found" in out
    doc = yaml.safe_load(config.read_text())
    assert doc["rule_files"] == [ALERTS.name]
    # the job name LLMRouterDown matches on
    assert "llm-router" in [job["job_name"] for job in doc["scrape_configs"]]
    assert 'up{job="llm-router"}' in ALERTS.read_text()
