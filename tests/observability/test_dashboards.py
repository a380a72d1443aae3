"""The Grafana dashboards: generated from grafana/generate.py, valid for Grafana 11.6, and their queries parse."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.observability.support import (
    CONTRACT_METRICS,
    ROOT,
    dashboards,
    load_generator,
    prometheus_queries,
    require_tool,
    run_tool,
    shared_path,
    substitute,
)

BOARDS = dashboards()
PANEL_PLUGINS = {
    "timeseries",
    "stat",
    "table",
    "barchart",
    "bargauge",
    "gauge",
    "piechart",
    "statetimeline",
    "text",
}
# The 11.6 AnnotationQuery schema models only the built-in Grafana annotation; a Prometheus annotation query also
# carries these fields (Grafana's PromQuery annotation options). They are allowed here and nowhere else.
PROMETHEUS_ANNOTATION_FIELDS = {
    "step": {"type": "string"},
    "titleFormat": {"type": "string"},
    "textFormat": {"type": "string"},
    "tagKeys": {"type": "string"},
    "useValueForTime": {"type": "boolean"},
}


def schema(name: str) -> dict[str, Any]:
    return json.loads(
        shared_path("schemas", "grafana-11.6", f"{name}.jsonschema.json").read_text(encoding="utf-8")
    )


def validate(instance: object, document: dict[str, Any], definition: str | None = None) -> None:
    root = dict(document)
    if definition:
        root["$ref"] = f"#/definitions/{definition}"
    jsonschema.Draft7Validator(root).validate(instance)


def test_committed_files_match_the_generator() -> None:
    generator = load_generator()
    for path, text in generator.render().items():
        assert Path(path).read_text(encoding="utf-8") == text, (
            f"{path} is stale: run python grafana/generate.py"
        )


def test_stable_uids() -> None:
    assert {board["uid"] for board in BOARDS.values()} == {
        "flockwatch-overview",
        "flockwatch-account",
        "flockwatch-service",
    }


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_matches_the_grafana_schema(name: str) -> None:
    document = copy.deepcopy(schema("dashboard"))
    document["definitions"]["AnnotationQuery"]["properties"].update(PROMETHEUS_ANNOTATION_FIELDS)
    validate(BOARDS[name], document)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panel_options_match_their_plugin_schema(name: str) -> None:
    prometheus = schema("prometheus")
    for panel in BOARDS[name]["panels"]:
        assert panel["type"] in PANEL_PLUGINS, f"{panel['title']}: no schema for panel type {panel['type']}"
        plugin = schema(panel["type"])
        validate(panel["options"], plugin, "Options")
        custom = panel["fieldConfig"]["defaults"].get("custom")
        if "FieldConfig" in plugin["definitions"]:
            validate(custom or {}, plugin, "FieldConfig")
        else:
            assert custom is None, f"{panel['title']}: {panel['type']} has no custom field config"
        for target in panel["targets"]:
            if target["datasource"]["type"] == "prometheus":
                validate(target, prometheus)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panels_are_laid_out_without_overlap(name: str) -> None:
    taken: dict[tuple[int, int], str] = {}
    ids = [panel["id"] for panel in BOARDS[name]["panels"]]
    assert len(ids) == len(set(ids))
    for panel in BOARDS[name]["panels"]:
        assert panel["targets"], f"{panel['title']} has no query"
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_account_dashboard_has_what_the_issue_asks() -> None:
    board = BOARDS["account.json"]
    variables = [variable["name"] for variable in board["templating"]["list"]]
    assert variables == ["datasource", "platform", "account", "noun", "title_noun"]
    titles = {panel["title"]: panel for panel in board["panels"]}
    assert titles["Gain per hour"]["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars"
    assert titles["Gain per day"]["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars"
    assert {"$title_noun", "Following", "Posts", "Daily gain and expected band"} <= set(titles)
    assert titles["$title_noun"]["targets"][0]["legendFormat"] == "$noun"
    annotation = board["annotations"]["list"][1]
    assert "flockwatch_detection_info" in annotation["expr"] and annotation["textFormat"] == "{{summary}}"


NOUN_TEST = """
rule_files: []
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: flockwatch_followers{platform="github", account="octo-org/hello"}
    values: 40x5
  - series: flockwatch_followers{platform="github", account="torvalds"}
    values: 200000x5
  promql_expr_test:
"""


@pytest.mark.parametrize(("account", "noun"), [("octo-org/hello", "stars"), ("torvalds", "followers")])
def test_the_account_dashboard_says_stars_for_a_repository(tmp_path: Path, account: str, noun: str) -> None:
    """The hidden noun variables resolve, through PromQL on the series the dashboard already reads."""
    promtool = require_tool("promtool")
    variables = {v["name"]: v for v in BOARDS["account.json"]["templating"]["list"]}
    for name, expected in (("noun", noun), ("title_noun", noun.title())):
        variable = variables[name]
        assert variable["hide"] == 2 and re.fullmatch(r"/noun=\"\(\\w\+\)\"/", variable["regex"])
        query = re.fullmatch(r"query_result\((.*)\)", variable["query"]).group(1)  # type: ignore[union-attr]
        expr = substitute(query, {"platform": "github", "account": account})
        case = {
            "expr": expr,
            "eval_time": "2m",
            "exp_samples": [
                {
                    "labels": f'flockwatch_followers{{account="{account}", noun="{expected}", platform="github"}}',
                    "value": 40 if "/" in account else 200000,
                }
            ],
        }
        document = yaml.safe_load(NOUN_TEST)
        document["tests"][0]["promql_expr_test"] = [case]
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        result = run_tool(promtool, "test", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_overview_filters_by_kind_of_subject_without_extra_series() -> None:
    board = BOARDS["overview.json"]
    subject = next(v for v in board["templating"]["list"] if v["name"] == "subject")
    values = {option["text"]: option["value"] for option in subject["options"]}
    assert values["accounts"] == "[^/]+" and values["repositories"] == ".+/.+" and subject["allValue"] == ".*"
    filtered = [expr for _, expr in prometheus_queries(board) if 'account=~"$subject"' in expr]
    assert len(filtered) >= 7


def test_every_metric_used_is_in_the_contract() -> None:
    used = set()
    for board in BOARDS.values():
        for _, expr in prometheus_queries(board):
            used |= set(re.findall(r"\b(flockwatch_\w+)", expr))
    assert used - CONTRACT_METRICS == set()


def test_every_prometheus_query_parses(tmp_path: Path) -> None:
    """promtool parses each query (variables substituted) as a recording rule."""
    promtool = require_tool("promtool")
    values = {
        "datasource": "flockwatch-prometheus",
        "platform": "mastodon",
        "account": "someone@example.social",
        "subject": ".+/.+",
        "noun": "followers",
        "title_noun": "Followers",
    }
    rules = [
        {"record": f"check:query_{number}", "expr": substitute(expr, values)}
        for board in BOARDS.values()
        for number, (_, expr) in enumerate(prometheus_queries(board))
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}), encoding="utf-8")
    result = run_tool(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_points_at_the_dashboards_and_datasources() -> None:
    provisioning = ROOT / "grafana/provisioning"
    datasources = yaml.safe_load((provisioning / "datasources/flockwatch.yaml").read_text(encoding="utf-8"))
    uids = {source["uid"]: source["type"] for source in datasources["datasources"]}
    assert uids == {
        "flockwatch-prometheus": "prometheus",
        "flockwatch-postgres": "grafana-postgresql-datasource",
    }
    providers = yaml.safe_load((provisioning / "dashboards/flockwatch.yaml").read_text(encoding="utf-8"))
    assert providers["apiVersion"] == 1 and providers["providers"][0]["type"] == "file"
    for board in BOARDS.values():
        for panel in board["panels"]:
            for target in panel["targets"]:
                uid = target["datasource"]["uid"]
                assert uid == "${datasource}" or uid in uids, f"{panel['title']}: unknown datasource {uid}"
