"""Grafana-managed alert rules stay in step with the Prometheus detection alerts."""

from __future__ import annotations

import re
from typing import Any

from tests.observability.support import (
    ALERTMANAGER_CONFIG,
    GRAFANA_ALERTING,
    SUMMARY_LOOKUP,
    alert_rules,
    load_yaml,
)


def grafana_rules() -> dict[str, dict[str, Any]]:
    document = load_yaml(GRAFANA_ALERTING / "alert-rules.yaml")
    assert document["apiVersion"] == 1
    return {rule["title"]: rule for group in document["groups"] for rule in group["rules"]}


def as_in_grafana(text: str) -> str:
    """Grafana's templates cannot query: there the summary is a label of the alert's own series."""
    return text.replace(SUMMARY_LOOKUP, "{{ $labels.summary }}")


def test_same_detection_alerts_with_the_same_labels_and_summaries() -> None:
    prometheus = {rule["alert"]: rule for rule in alert_rules() if rule["labels"]["category"] == "detection"}
    grafana = grafana_rules()
    assert sorted(grafana) == sorted(prometheus)
    for name, rule in prometheus.items():
        twin = grafana[name]
        assert twin["labels"] == rule["labels"], name
        assert twin["annotations"] == {
            key: as_in_grafana(text) for key, text in rule["annotations"].items()
        }, name
        assert "{{ $labels.summary }}" in twin["annotations"]["summary"]
        assert twin["for"] == rule["for"], name
        query = next(item for item in twin["data"] if item["refId"] == "A")
        kind = re.search(r'kind="(\w+)"', rule["expr"]).group(1)  # type: ignore[union-attr]
        selector = f'flockwatch_detection_info{{kind="{kind}"}}'
        assert query["model"]["expr"] == rule["expr"].replace(
            f"max without (summary) ({selector})", selector
        ), name
        assert query["model"]["expr"].startswith("label_replace(label_replace(" + selector), name
        assert query["datasourceUid"] == "flockwatch-prometheus"


def test_grafana_rules_fire_on_any_returned_series_and_stay_quiet_without_data() -> None:
    for name, rule in grafana_rules().items():
        condition = next(item for item in rule["data"] if item["refId"] == rule["condition"])
        assert condition["model"]["type"] == "threshold" and condition["model"]["expression"] == "A", name
        assert condition["model"]["conditions"][0]["evaluator"] == {"type": "gt", "params": [0]}
        assert rule["noDataState"] == "OK", f"{name}: no active detection is not an error"
        assert rule["uid"].startswith("flockwatch-") and len(rule["uid"]) <= 40


def test_contact_points_and_policies_mirror_alertmanager() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    points = load_yaml(GRAFANA_ALERTING / "contact-points.yaml")["contactPoints"]
    assert {point["name"]: point["receivers"][0]["settings"]["url"] for point in points} == {
        receiver["name"]: receiver["webhook_configs"][0]["url"] for receiver in config["receivers"]
    }
    policy = load_yaml(GRAFANA_ALERTING / "notification-policies.yaml")["policies"][0]
    assert policy["receiver"] == config["route"]["receiver"]
    assert [route["receiver"] for route in policy["routes"]] == [
        route["receiver"] for route in config["route"]["routes"]
    ]
