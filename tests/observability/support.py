"""Shared helpers for the observability tests: repository paths, external tools, rule and dashboard loading."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "tests" / "data"  # copies of shared/schemas (Apache-2.0; see its README)
RULES = ROOT / "deploy/prometheus/rules/flockwatch.rules.yml"
RULE_TESTS = ROOT / "deploy/prometheus/rules/flockwatch.rules.test.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
RUNBOOKS = ROOT / "docs/runbooks.md"
DASHBOARDS = ROOT / "grafana/dashboards"
GRAFANA_ALERTING = ROOT / "grafana/provisioning/alerting"

# How a Prometheus detection alert quotes the detection's current summary (looked up by platform, account, kind).
SUMMARY_LOOKUP = (
    "{{ with printf `flockwatch_detection_info{platform=%q,account=%q,kind=%q}` $labels.platform $labels.account "
    "$labels.kind | query }}{{ (index . 0).Labels.summary }}{{ end }}"
)

DETECTION_KINDS = ("regular_growth", "burst", "drop", "rate_change", "churn", "platform_event")


def require_tool(*names: str) -> str:
    """Path of the first tool found; skip without it, except in CI (``CI=true``) where it must be installed."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    message = f"{' or '.join(names)} not found: apt-get install prometheus prometheus-alertmanager"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run this test; {message}")
    pytest.skip(message)


def run_tool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def shared_path(*parts: str) -> Path:
    return SHARED.joinpath(*parts)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def markdown_anchors(path: Path) -> set[str]:
    """GitHub-style anchors of the Markdown headings in ``path``."""
    anchors = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_generator() -> Any:
    """``grafana/generate.py`` as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("flockwatch_grafana_generate", ROOT / "grafana/generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    import json

    return {
        path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARDS.glob("*.json"))
    }


def prometheus_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) for every Prometheus query of a dashboard: panels, annotations and query variables."""
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            if "expr" in target:
                queries.append((f"{board['uid']}: {panel['title']} [{target['refId']}]", target["expr"]))
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            queries.append((f"{board['uid']}: annotation {annotation['name']}", annotation["expr"]))
    return queries


def sql_panel_queries() -> list[Any]:
    """Every PostgreSQL panel query of every dashboard, as pytest parameters named after the panel."""
    return [
        pytest.param(target["rawSql"], id=f"{board['uid']}: {panel['title']}")
        for board in dashboards().values()
        for panel in board["panels"]
        for target in panel["targets"]
        if "rawSql" in target
    ]


def substitute(expr: str, values: dict[str, str], rate_interval: str = "1m") -> str:
    """Replace Grafana's variables the way Grafana would before sending ``expr`` to Prometheus."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__interval", rate_interval)
    for name, value in sorted(values.items(), key=lambda item: -len(item[0])):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


# What the daemon, its sources and the detection engine export (the metric contract of issue 5).
CONTRACT_METRICS = {
    "flockwatch_followers",
    "flockwatch_following",
    "flockwatch_posts",
    "flockwatch_last_sample_timestamp_seconds",
    "flockwatch_last_poll_timestamp_seconds",
    "flockwatch_account_state",
    "flockwatch_accounts",
    "flockwatch_polls_total",
    "flockwatch_poll_errors_total",
    "flockwatch_poll_duration_seconds_bucket",
    "flockwatch_samples_written_total",
    "flockwatch_samples_buffered",
    "flockwatch_database_errors_total",
    "flockwatch_database_up",
    "flockwatch_database_write_duration_seconds_bucket",
    "flockwatch_build_info",
    "flockwatch_followers_change",
    "flockwatch_source_requests_total",
    "flockwatch_source_request_failures_total",
    "flockwatch_ratelimit_remaining",
    "flockwatch_ratelimit_reset_timestamp_seconds",
    "flockwatch_source_up",
    "flockwatch_poll_cycle_stretched",
    "flockwatch_anomaly_score",
    "flockwatch_detection_info",
    "flockwatch_detections_active",
    "flockwatch_detection_started_timestamp_seconds",
    "flockwatch_detection_engine_lag_seconds",
}
