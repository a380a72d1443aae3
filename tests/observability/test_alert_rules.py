"""The Prometheus rule file: promtool accepts it, its unit tests pass, and every alert follows the conventions."""

from __future__ import annotations

import re

import pytest

from tests.observability.support import (
    DETECTION_KINDS,
    RULE_TESTS,
    RULES,
    RUNBOOKS,
    SUMMARY_LOOKUP,
    alert_rules,
    load_yaml,
    markdown_anchors,
    require_tool,
    run_tool,
)

ALERTS = alert_rules()
RUNBOOK_PREFIX = "https://github.com/flockwatch/flockwatch/blob/main/docs/runbooks.md#"


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    result = run_tool(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    result = run_tool(promtool, "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_alert_follows_conventions(rule: dict[str, object]) -> None:
    name = str(rule["alert"])
    assert re.fullmatch(r"Flockwatch(?:[A-Z][a-z0-9]+)+", name), "CamelCase with the Flockwatch prefix"
    labels = rule["labels"]
    annotations = rule["annotations"]
    assert isinstance(labels, dict) and isinstance(annotations, dict)
    assert labels["category"] in {"detection", "service"}
    assert labels["severity"] in {"critical", "warning", "info", "{{ $labels.severity }}"}
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["runbook_url"] == RUNBOOK_PREFIX + name.lower()
    assert name.lower() in markdown_anchors(RUNBOOKS), f"docs/runbooks.md has no section {name}"


def test_one_alert_per_detection_kind_quoting_the_detection() -> None:
    kinds = {}
    for rule in ALERTS:
        if rule["labels"]["category"] != "detection":
            continue
        expr = str(rule["expr"])
        match = re.fullmatch(
            r'label_replace\(label_replace\(max without \(summary\) \(flockwatch_detection_info\{kind="(\w+)"\}\), '
            r'"subject", "account", "", ""\), "subject", "repository", "account", "\.\+/\.\+"\) == 1',
            expr,
        )
        assert match, f"{rule['alert']}: one alert per active detection of a kind, whatever its summary says"
        kinds[match.group(1)] = rule["alert"]
        assert SUMMARY_LOOKUP in rule["annotations"]["summary"]
        assert SUMMARY_LOOKUP in rule["annotations"]["description"]
        assert "{{ $labels.platform }}" in rule["annotations"]["summary"]
    assert sorted(kinds) == sorted(DETECTION_KINDS)


def test_service_alerts_cover_the_issue() -> None:
    names = {rule["alert"] for rule in ALERTS if rule["labels"]["category"] == "service"}
    assert {
        "FlockwatchDaemonDown",
        "FlockwatchAccountStale",
        "FlockwatchSourceFailing",
        "FlockwatchRateLimited",
        "FlockwatchQuotaExhausted",
        "FlockwatchDatabaseDown",
        "FlockwatchDatabaseErrors",
    } <= names


def test_every_alert_has_a_firing_and_a_not_firing_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in load_yaml(RULE_TESTS)["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in ALERTS}
    assert names - firing == set(), "alerts without a firing case"
    assert names - quiet == set(), "alerts without a not-firing case"


def test_every_runbook_section_belongs_to_an_alert() -> None:
    sections = {anchor for anchor in markdown_anchors(RUNBOOKS) if anchor.startswith("flockwatch")}
    assert sections == {rule["alert"].lower() for rule in ALERTS}
