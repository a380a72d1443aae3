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
SHARED = ROOT.parent / "shared"
RULES = ROOT / "deploy/prometheus/rules/flockwatch.rules.yml"
RULE_TESTS = ROOT / "deploy/prometheus/rules/flockwatch.rules.test.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
RUNBOOKS = ROOT / "docs/runbooks.md"
DASHBOARDS = ROOT / "grafana/dashboards"
GRAFANA_ALERTING = ROOT / "grafana/provisioning/alerting"

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
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not present (the shared/ folder sits beside the project)")
    return path


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
