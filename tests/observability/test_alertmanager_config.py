"""The example Alertmanager configuration: amtool accepts it and it routes as documented."""

from __future__ import annotations

import pytest

from tests.observability.support import ALERTMANAGER_CONFIG, alert_rules, require_tool, run_tool


def test_amtool_check_config() -> None:
    amtool = require_tool("amtool")
    result = run_tool(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            ["category=detection", "severity=critical", "alertname=FlockwatchRegularGrowth"],
            "flockwatch-detections-critical",
        ),
        (
            ["category=detection", "severity=warning", "alertname=FlockwatchBoughtBurst"],
            "flockwatch-detections",
        ),
        (
            ["category=detection", "severity=info", "alertname=FlockwatchPlatformEvent"],
            "flockwatch-detections",
        ),
        (["category=service", "severity=critical", "alertname=FlockwatchDaemonDown"], "flockwatch-service"),
        (["category=service", "severity=warning", "alertname=FlockwatchRateLimited"], "flockwatch-service"),
        (["alertname=SomethingElse"], "flockwatch-default"),
    ],
)
def test_routes(labels: list[str], receiver: str) -> None:
    amtool = require_tool("amtool")
    result = run_tool(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


def test_every_rule_category_has_a_route() -> None:
    amtool = require_tool("amtool")
    for rule in alert_rules():
        severity = rule["labels"]["severity"].replace("{{ $labels.severity }}", "critical")
        result = run_tool(
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"alertname={rule['alert']}",
            f"category={rule['labels']['category']}",
            f"severity={severity}",
        )
        assert result.stdout.strip() != "flockwatch-default", (
            f"{rule['alert']} falls through to the default route"
        )
