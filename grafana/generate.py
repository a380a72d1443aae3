"""Generate flockwatch's Grafana dashboards and Grafana-managed alert rules.

Run ``python grafana/generate.py`` after changing this file or ``deploy/prometheus/rules/flockwatch.rules.yml``;
``tests/observability`` fails while the committed files differ from what this script writes. The dashboards target
Grafana 11.6 and are validated against its JSON schemas (``shared/schemas/grafana-11.6``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy/prometheus/rules/flockwatch.rules.yml"
DASHBOARDS = ROOT / "grafana/dashboards"
ALERTMANAGER = ROOT / "deploy/alertmanager/alertmanager.yml"
ALERTING = ROOT / "grafana/provisioning/alerting"

SCHEMA_VERSION = 41
PROMETHEUS_UID = "flockwatch-prometheus"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "flockwatch-postgres"}
Json = dict[str, Any]


# Panels ------------------------------------------------------------------------------------------------------------


def target(
    expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, table: bool = False
) -> Json:
    query: Json = {
        "refId": ref,
        "expr": expr,
        "datasource": DATASOURCE,
        "editorMode": "code",
        "range": not instant,
    }
    query["instant"] = instant
    if legend:
        query["legendFormat"] = legend
    if table:
        query["format"] = "table"
    return query


def thresholds(*steps: tuple[float, str]) -> Json:
    return {"mode": "absolute", "steps": [{"value": value, "color": color} for value, color in steps]}


def field_defaults(unit: str = "short", **extra: Any) -> Json:
    return {"unit": unit, "color": {"mode": "palette-classic"}, **extra}


def panel(
    kind: str,
    title: str,
    description: str,
    grid: tuple[int, int, int, int],
    targets: list[Json],
    options: Json,
    defaults: Json,
    **extra: Any,
) -> Json:
    x, y, w, h = grid
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": extra.pop("datasource", DATASOURCE),
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "options": options,
        "fieldConfig": {"defaults": defaults, "overrides": extra.pop("overrides", [])},
        **extra,
    }


def timeseries(
    title: str,
    description: str,
    grid: tuple[int, int, int, int],
    targets: list[Json],
    *,
    unit: str = "short",
    bars: bool = False,
    stack: bool = False,
    **extra: Any,
) -> Json:
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 80 if bars else 10,
        "showPoints": "never",
        "spanNulls": True,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    options = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel(
        "timeseries", title, description, grid, targets, options, field_defaults(unit, custom=custom), **extra
    )


def stat(
    title: str,
    description: str,
    grid: tuple[int, int, int, int],
    targets: list[Json],
    *,
    unit: str = "short",
    steps: tuple[tuple[float, str], ...] = ((0, "green"),),
    **extra: Any,
) -> Json:
    options = {
        "graphMode": "area",
        "colorMode": "value",
        "justifyMode": "auto",
        "textMode": "auto",
        "wideLayout": True,
        "showPercentChange": False,
        "percentChangeColorMode": "standard",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "values": False, "fields": ""},
    }
    defaults = {"unit": unit, "color": {"mode": "thresholds"}, "thresholds": thresholds(*steps)}
    defaults.update(extra.pop("defaults", {}))
    return panel("stat", title, description, grid, targets, options, defaults, **extra)


def table(
    title: str,
    description: str,
    grid: tuple[int, int, int, int],
    targets: list[Json],
    *,
    sort_by: str,
    columns: dict[str, str],
    **extra: Any,
) -> Json:
    """An instant-query table showing ``columns`` (label -> header) in order."""
    options = {
        "frameIndex": 0,
        "showHeader": True,
        "cellHeight": "sm",
        "sortBy": [{"displayName": sort_by, "desc": True}],
    }
    defaults: Json = {"custom": {"align": "auto", "inspect": False}}
    if "account" in columns:
        defaults["links"] = [account_link()]
    organize = {
        "id": "organize",
        "options": {
            "excludeByName": {"Time": True},
            "indexByName": {name: index for index, name in enumerate(columns)},
            "renameByName": columns,
        },
    }
    keep = {"id": "filterFieldsByName", "options": {"include": {"names": list(columns)}}}
    return panel(
        "table",
        title,
        description,
        grid,
        targets,
        options,
        defaults,
        transformations=[keep, organize],
        **extra,
    )


def account_link() -> Json:
    """A data link from a table row to the Account dashboard."""
    return {
        "title": "Open the account",
        "type": "link",
        "icon": "dashboard",
        "tooltip": "Open the Account dashboard",
        "url": "/d/flockwatch-account?var-platform=${__data.fields.platform}&var-account=${__data.fields.account}"
        "&${__url_time_range}",
        "tags": [],
        "asDropdown": False,
        "targetBlank": False,
        "includeVars": False,
        "keepTime": True,
    }


def sql_target(sql: str, ref: str = "A", *, table: bool = False) -> Json:
    return {
        "refId": ref,
        "datasource": POSTGRES,
        "editorMode": "code",
        "rawQuery": True,
        "format": "table" if table else "time_series",
        "rawSql": " ".join(sql.split()),
    }


# Dashboards --------------------------------------------------------------------------------------------------------


def datasource_variable() -> Json:
    return {
        "type": "datasource",
        "name": "datasource",
        "label": "Prometheus",
        "query": "prometheus",
        "current": {"text": "Prometheus", "value": PROMETHEUS_UID},
        "hide": 0,
        "refresh": 1,
    }


def query_variable(name: str, label: str, query: str, *, multi: bool) -> Json:
    variable: Json = {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "query": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "hide": 0,
    }
    if multi:
        variable["current"] = {"text": "All", "value": "$__all"}
    return variable


def subject_variable() -> Json:
    """Accounts, repositories or both: a regex on the account label, so the filter costs no series."""
    return {
        "type": "custom",
        "name": "subject",
        "label": "Kind",
        "query": "accounts : [^/]+,repositories : .+/.+",
        "options": [
            {"text": "All", "value": "$__all", "selected": True},
            {"text": "accounts", "value": "[^/]+", "selected": False},
            {"text": "repositories", "value": ".+/.+", "selected": False},
        ],
        "current": {"text": "All", "value": "$__all"},
        "includeAll": True,
        "allValue": ".*",
        "multi": False,
        "hide": 0,
    }


def noun_variable(name: str, account: str, repository: str) -> Json:
    """What the selected subject counts, for titles and legends: stars for a GitHub repository (an account label
    with a slash, github:owner/name), followers otherwise. Hidden; derived by PromQL, no extra series."""
    series = 'flockwatch_followers{platform="$platform", account="$account"}'
    labelled = f'label_replace({series}, "noun", "{account}", "", "")'
    query = f'query_result(label_replace({labelled}, "noun", "{repository}", "account", ".+/.+"))'
    variable = query_variable(name, name, query, multi=False)
    variable.update(regex='/noun="(\\w+)"/', hide=2)
    return variable


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[Json],
    panels: list[Json],
    annotations: list[Json] | None = None,
    time_from: str = "now-7d",
) -> Json:
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    builtin = {
        "name": "Annotations & Alerts",
        "builtIn": 1,
        "type": "dashboard",
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
    }
    link = {
        "title": "flockwatch",
        "type": "dashboards",
        "icon": "external link",
        "tooltip": "Other flockwatch dashboards",
        "tags": ["flockwatch"],
        "asDropdown": True,
        "targetBlank": False,
        "includeVars": False,
        "keepTime": True,
    }
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["flockwatch"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": time_from, "to": "now"},
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [link],
        "templating": {"list": [datasource_variable(), *variables]},
        "annotations": {"list": [builtin, *(annotations or [])]},
        "panels": panels,
    }


def overview() -> Json:
    p = '{platform=~"$platform"}'
    # $subject filters by kind of subject on the account label: a GitHub repository's has a slash (owner/name).
    pa = '{platform=~"$platform", account=~"$subject"}'
    panels = [
        stat(
            "Watched accounts",
            "Accounts and repositories on the watchlist, in any state.",
            (0, 0, 4, 4),
            [target(f"count(flockwatch_account_state{pa}) or vector(0)")],
        ),
        stat(
            "Active detections",
            "Detections currently active on the selected platforms and kind of subject.",
            (4, 0, 4, 4),
            [target(f"count(flockwatch_detection_info{pa} == 1) or vector(0)")],
            steps=((0, "green"), (1, "orange")),
        ),
        stat(
            "Critical detections",
            "Active detections of critical severity.",
            (8, 0, 4, 4),
            [
                target(
                    'count(flockwatch_detection_info{platform=~"$platform", account=~"$subject", severity="critical"} == 1)'
                    " or vector(0)"
                )
            ],
            steps=((0, "green"), (1, "red")),
        ),
        stat(
            "Accounts not readable",
            "Accounts and repositories that are not found, suspended, protected or erroring.",
            (12, 0, 4, 4),
            [
                target(
                    'count(flockwatch_account_state{platform=~"$platform", account=~"$subject", '
                    'state=~"not_found|suspended|protected|erroring"}) or vector(0)'
                )
            ],
            steps=((0, "green"), (1, "orange")),
        ),
        stat(
            "Sources up",
            "Platforms whose API answered the last request, out of those in use.",
            (16, 0, 4, 4),
            [
                target(f"sum(flockwatch_source_up{p})", "up"),
                target(f"count(flockwatch_source_up{p})", "in use", "B"),
            ],
            defaults={"color": {"mode": "fixed", "fixedColor": "green"}},
        ),
        stat(
            "Oldest poll",
            "Time since the least recently polled account was polled (wall clock).",
            (20, 0, 4, 4),
            [target(f"time() - min(flockwatch_last_poll_timestamp_seconds{pa})")],
            unit="s",
            steps=((0, "green"), (3600, "orange"), (10800, "red")),
        ),
        table(
            "Active detections",
            "Every active detection with its own one-sentence summary. Click a row to open the account.",
            (0, 4, 24, 8),
            [target(f"flockwatch_detection_info{pa} == 1", instant=True, table=True)],
            sort_by="Severity",
            columns={
                "platform": "Platform",
                "account": "Account",
                "kind": "Kind",
                "severity": "Severity",
                "detector": "Detector",
                "summary": "Summary",
            },
        ),
        timeseries(
            "Active detections by kind and severity",
            "Number of active detections over time.",
            (0, 12, 12, 8),
            [
                target(
                    f"count by (kind, severity) (flockwatch_detection_info{pa} == 1)",
                    "{{kind}} ({{severity}})",
                )
            ],
            stack=True,
        ),
        table(
            "Accounts ranked by anomaly score",
            "The highest anomaly score of any detector, per account (0 to 1).",
            (12, 12, 12, 8),
            [
                target(
                    f"topk(25, max by (platform, account) (flockwatch_anomaly_score{pa}))",
                    instant=True,
                    table=True,
                )
            ],
            sort_by="Anomaly score",
            columns={"platform": "Platform", "account": "Account", "Value": "Anomaly score"},
        ),
        timeseries(
            "Accounts whose last poll failed",
            "Share of each platform's readable accounts whose last poll failed; the FlockwatchSourceFailing alert "
            "fires above 50%.",
            (0, 20, 12, 8),
            [
                target(
                    'sum by (platform) (flockwatch_accounts{platform=~"$platform", state="erroring"}) / sum by '
                    '(platform) (flockwatch_accounts{platform=~"$platform", state=~"active|erroring"})',
                    "{{platform}}",
                )
            ],
            unit="percentunit",
        ),
        timeseries(
            "Rate-limit headroom",
            "Requests left in the current rate-limit window, per platform.",
            (12, 20, 12, 8),
            [target(f"flockwatch_ratelimit_remaining{p}", "{{platform}}")],
        ),
    ]
    variables = [
        query_variable("platform", "Platform", "label_values(flockwatch_accounts, platform)", multi=True),
        subject_variable(),
    ]
    return dashboard(
        "flockwatch-overview",
        "flockwatch / Overview",
        "Watched accounts, active detections, anomaly ranking and source health.",
        variables,
        panels,
        time_from="now-24h",
    )


def account() -> Json:
    a = '{platform="$platform", account="$account"}'
    band = 'flockwatch_followers_change{platform="$platform", account="$account", window="24h"}'
    panels = [
        stat(
            "$title_noun",
            "Latest $noun count (cached from the last poll); stars for a GitHub repository.",
            (0, 0, 4, 4),
            [target(f"flockwatch_followers{a}")],
        ),
        stat(
            "Gain, last 24 h",
            "$title_noun gained over the last 24 hours of samples.",
            (4, 0, 4, 4),
            [target(band)],
        ),
        stat(
            "Gain, last 7 days",
            "$title_noun gained over the last 7 days of samples.",
            (8, 0, 4, 4),
            [target('flockwatch_followers_change{platform="$platform", account="$account", window="7d"}')],
        ),
        stat(
            "Highest anomaly score",
            "The highest score of any detector (0 to 1).",
            (12, 0, 4, 4),
            [target(f"max(flockwatch_anomaly_score{a})")],
            unit="percentunit",
            steps=((0, "green"), (0.5, "orange"), (0.8, "red")),
        ),
        stat(
            "Active detections",
            "Detections currently active on this account.",
            (16, 0, 4, 4),
            [target(f"count(flockwatch_detection_info{a} == 1) or vector(0)")],
            steps=((0, "green"), (1, "red")),
        ),
        stat(
            "Last poll",
            "Time since the account was last polled (wall clock).",
            (20, 0, 4, 4),
            [target(f"time() - flockwatch_last_poll_timestamp_seconds{a}")],
            unit="s",
            steps=((0, "green"), (3600, "orange"), (10800, "red")),
        ),
        timeseries(
            "$title_noun",
            "$title_noun count; annotations mark active detections with their summaries.",
            (0, 4, 24, 8),
            [target(f"flockwatch_followers{a}", "$noun")],
        ),
        timeseries(
            "Gain per hour",
            "$title_noun gained in the last hour, one bar per hour.",
            (0, 12, 12, 8),
            [
                target(
                    'flockwatch_followers_change{platform="$platform", account="$account", window="1h"}',
                    "gain per hour",
                )
            ],
            bars=True,
            interval="1h",
        ),
        timeseries(
            "Gain per day",
            "$title_noun gained in the last 24 hours, one bar per day.",
            (12, 12, 12, 8),
            [target(band, "gain per day")],
            bars=True,
            interval="1d",
        ),
        timeseries(
            "Daily gain and expected band",
            "The daily gain against the 7-day mean ± 2 standard deviations of the daily gain. Organic gains "
            "scatter inside a wide band; a band that collapses onto the gain line is growth too regular to "
            "be organic, and a gain far outside it is a burst or a drop.",
            (0, 20, 24, 8),
            [
                target(band, "gain per day"),
                target(
                    f"avg_over_time({band}[7d]) + 2 * stddev_over_time({band}[7d])", "expected, upper", "B"
                ),
                target(
                    f"avg_over_time({band}[7d]) - 2 * stddev_over_time({band}[7d])", "expected, lower", "C"
                ),
            ],
            overrides=[
                {
                    "matcher": {
                        "id": "byNames",
                        "options": {"mode": "include", "names": ["expected, upper", "expected, lower"]},
                    },
                    "properties": [
                        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": "gray"}},
                    ],
                }
            ],
        ),
        timeseries(
            "Anomaly score per detector",
            "Each detector's score for this account (0 to 1).",
            (0, 28, 12, 8),
            [target(f"flockwatch_anomaly_score{a}", "{{detector}}")],
            unit="percentunit",
        ),
        table(
            "Active detections",
            "The detections active on this account, with their summaries.",
            (12, 28, 12, 8),
            [target(f"flockwatch_detection_info{a} == 1", instant=True, table=True)],
            sort_by="Severity",
            columns={"kind": "Kind", "severity": "Severity", "detector": "Detector", "summary": "Summary"},
        ),
        timeseries(
            "Following",
            "Accounts this account follows; mass follow/unfollow shows as spikes.",
            (0, 36, 12, 8),
            [target(f"flockwatch_following{a}", "following")],
        ),
        timeseries(
            "Posts",
            "Posts, videos or repositories published, whichever the platform counts.",
            (12, 36, 12, 8),
            [target(f"flockwatch_posts{a}", "posts")],
        ),
    ]
    history = """
        SELECT s.observed_at AS time, s.followers AS followers, s.following AS following
        FROM samples s JOIN accounts a ON a.id = s.account_id
        WHERE a.platform = '$platform' AND a.handle = '$account' AND $__timeFilter(s.observed_at)
        ORDER BY 1"""
    detections_sql = """
        SELECT d.started_at, d.ended_at, d.kind, d.severity, d.detector, d.summary
        FROM detections d JOIN accounts a ON a.id = d.account_id
        WHERE a.platform = '$platform' AND a.handle = '$account'
        ORDER BY d.started_at DESC LIMIT 100"""
    panels += [
        timeseries(
            "$title_noun history (database)",
            "Every stored sample from the flockwatch database, for history older than Prometheus keeps.",
            (0, 44, 24, 8),
            [sql_target(history)],
            datasource=POSTGRES,
        ),
        table(
            "Detection history (database)",
            "Every detection recorded for this account, ended ones included.",
            (0, 52, 24, 8),
            [sql_target(detections_sql, table=True)],
            sort_by="Started",
            columns={
                "started_at": "Started",
                "ended_at": "Ended",
                "kind": "Kind",
                "severity": "Severity",
                "detector": "Detector",
                "summary": "Summary",
            },
            datasource=POSTGRES,
        ),
    ]
    variables = [
        query_variable("platform", "Platform", "label_values(flockwatch_followers, platform)", multi=False),
        query_variable(
            "account",
            "Account",
            'label_values(flockwatch_followers{platform="$platform"}, account)',
            multi=False,
        ),
        noun_variable("noun", "followers", "stars"),
        noun_variable("title_noun", "Followers", "Stars"),
    ]
    detections = {
        "name": "Detections",
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": "red",
        "expr": f"flockwatch_detection_info{a} == 1",
        "step": "1m",
        "titleFormat": "{{kind}} ({{severity}})",
        "textFormat": "{{summary}}",
        "tagKeys": "kind,severity,detector",
        "useValueForTime": False,
    }
    return dashboard(
        "flockwatch-account",
        "flockwatch / Account",
        "One account or repository: followers (stars), gains, expected band, detections, following and posts.",
        variables,
        panels,
        annotations=[detections],
        time_from="now-30d",
    )


UP_DOWN: Json = {"mappings": [{"type": "value", "options": {"0": {"text": "down"}, "1": {"text": "up"}}}]}


def service() -> Json:
    p = '{platform=~"$platform"}'
    rate = "[$__rate_interval]"
    panels = [
        stat(
            "Daemon",
            "Whether Prometheus can scrape the daemon.",
            (0, 0, 4, 4),
            [target('up{job="flockwatch"}')],
            steps=((0, "red"), (1, "green")),
            defaults=UP_DOWN,
        ),
        stat(
            "Database",
            "Whether the daemon can write to its database.",
            (4, 0, 4, 4),
            [target("flockwatch_database_up")],
            steps=((0, "red"), (1, "green")),
            defaults=UP_DOWN,
        ),
        stat(
            "Samples waiting",
            "Samples held in memory until the database takes them.",
            (8, 0, 4, 4),
            [target("flockwatch_samples_buffered")],
            steps=((0, "green"), (1000, "orange"), (10000, "red")),
        ),
        stat(
            "Detection engine lag",
            "How far detections are behind the newest samples.",
            (12, 0, 4, 4),
            [target("flockwatch_detection_engine_lag_seconds")],
            unit="s",
            steps=((0, "green"), (300, "orange"), (900, "red")),
        ),
        stat(
            "Scrape duration",
            "Time Prometheus takes to read /metrics.",
            (16, 0, 4, 4),
            [target('scrape_duration_seconds{job="flockwatch"}')],
            unit="s",
            steps=((0, "green"), (0.5, "orange"), (5, "red")),
        ),
        table(
            "Build",
            "The running version.",
            (20, 0, 4, 4),
            [target("flockwatch_build_info", instant=True, table=True)],
            sort_by="Version",
            columns={"instance": "Instance", "version": "Version"},
        ),
        timeseries(
            "Polls per second",
            "Poll attempts per platform.",
            (0, 4, 12, 8),
            [target(f"sum by (platform) (rate(flockwatch_polls_total{p}{rate}))", "{{platform}}")],
            unit="reqps",
        ),
        timeseries(
            "Poll errors by kind",
            "Failed polls per second by platform and kind of error.",
            (12, 4, 12, 8),
            [
                target(
                    f"sum by (platform, kind) (rate(flockwatch_poll_errors_total{p}{rate})) or 0 * sum by "
                    f"(platform) (rate(flockwatch_polls_total{p}{rate}))",
                    "{{platform}} {{kind}}",
                )
            ],
            unit="reqps",
            bars=True,
            stack=True,
        ),
        timeseries(
            "Poll latency",
            "Median and 90th percentile poll duration per platform.",
            (0, 12, 12, 8),
            [
                target(
                    f"histogram_quantile(0.5, sum by (platform, le) "
                    f"(rate(flockwatch_poll_duration_seconds_bucket{p}{rate})))",
                    "{{platform}} p50",
                ),
                target(
                    f"histogram_quantile(0.9, sum by (platform, le) "
                    f"(rate(flockwatch_poll_duration_seconds_bucket{p}{rate})))",
                    "{{platform}} p90",
                    "B",
                ),
            ],
            unit="s",
        ),
        timeseries(
            "Rate-limit headroom",
            "Requests left in the current rate-limit window.",
            (12, 12, 12, 8),
            [target(f"flockwatch_ratelimit_remaining{p}", "{{platform}} remaining")],
        ),
        timeseries(
            "Rate-limit reset",
            "Time until each platform's rate-limit window resets.",
            (0, 20, 12, 8),
            [target(f"flockwatch_ratelimit_reset_timestamp_seconds{p} - time()", "{{platform}}")],
            unit="s",
        ),
        timeseries(
            "Source requests",
            "API requests per second and failed requests per second by kind.",
            (12, 20, 12, 8),
            [
                target(
                    f"sum by (platform) (rate(flockwatch_source_requests_total{p}{rate}))",
                    "{{platform}} requests",
                ),
                target(
                    f"sum by (platform, kind) (rate(flockwatch_source_request_failures_total{p}{rate})) "
                    f"or 0 * sum by (platform) (rate(flockwatch_source_requests_total{p}{rate}))",
                    "{{platform}} failed {{kind}}",
                    "B",
                ),
            ],
            unit="reqps",
        ),
        timeseries(
            "Database write latency",
            "Median and 90th percentile time to write a batch of samples.",
            (0, 28, 12, 8),
            [
                target(
                    f"histogram_quantile(0.5, sum by (le) (rate(flockwatch_database_write_duration_seconds_bucket{rate})))",
                    "p50",
                ),
                target(
                    f"histogram_quantile(0.9, sum by (le) (rate(flockwatch_database_write_duration_seconds_bucket{rate})))",
                    "p90",
                    "B",
                ),
            ],
            unit="s",
        ),
        timeseries(
            "Database writes and errors",
            "Samples written and database errors per second.",
            (12, 28, 12, 8),
            [
                target(f"rate(flockwatch_samples_written_total{rate})", "samples written"),
                target(f"rate(flockwatch_database_errors_total{rate})", "database errors", "B"),
            ],
            unit="ops",
        ),
        timeseries(
            "Accounts by state",
            "Watched accounts per state.",
            (0, 36, 12, 8),
            [target(f"sum by (state) (flockwatch_accounts{p})", "{{state}}")],
            stack=True,
        ),
        timeseries(
            "Poll cycle stretched",
            "Whether a platform's poll cycle runs longer than its interval to stay within rate limits.",
            (12, 36, 12, 8),
            [target(f"flockwatch_poll_cycle_stretched{p}", "{{platform}}")],
        ),
    ]
    variables = [
        query_variable("platform", "Platform", "label_values(flockwatch_polls_total, platform)", multi=True)
    ]
    return dashboard(
        "flockwatch-service",
        "flockwatch / Service",
        "The daemon itself: polls, errors, rate-limit headroom, latency, database and detection engine.",
        variables,
        panels,
        time_from="now-6h",
    )


# Grafana-managed alert rules ---------------------------------------------------------------------------------------


# Prometheus alerts look the summary up with `query`, which Grafana's templates lack: there the summary is a label of
# the alert's own series, so a summary that changes while a detection is active starts a new alert instance.
SUMMARY_LOOKUP = (
    "{{ with printf `flockwatch_detection_info{platform=%q,account=%q,kind=%q}` $labels.platform $labels.account "
    "$labels.kind | query }}{{ (index . 0).Labels.summary }}{{ end }}"
)
WITHOUT_SUMMARY = re.compile(r"max without \(summary\) \((flockwatch_detection_info\{[^}]*\})\)")


def grafana_rule(rule: Json) -> Json:
    name = rule["alert"]
    uid = (
        "flockwatch-" + "".join(f"-{c.lower()}" if c.isupper() else c for c in name[len("Flockwatch") :])[1:]
    )
    return {
        "uid": uid,
        "title": name,
        "condition": "B",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": PROMETHEUS_UID,
                "model": {
                    "refId": "A",
                    "expr": WITHOUT_SUMMARY.sub(r"\1", rule["expr"]),
                    "instant": True,
                    "intervalMs": 60000,
                    "maxDataPoints": 43200,
                },
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "type": "threshold",
                    "expression": "A",
                    "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                },
            },
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": rule["for"],
        "labels": dict(rule["labels"]),
        "annotations": {
            key: text.replace(SUMMARY_LOOKUP, "{{ $labels.summary }}")
            for key, text in rule["annotations"].items()
        },
        "isPaused": False,
    }


def alerting(rules: Json) -> Json:
    detections = [
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("labels", {}).get("category") == "detection"
    ]
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": "flockwatch-detections",
                "folder": "flockwatch",
                "interval": "1m",
                "rules": [grafana_rule(rule) for rule in detections],
            }
        ],
    }


def matcher(text: str) -> list[str]:
    """``name="value"`` (or ``!=``, ``=~``, ``!~``) as a Grafana object matcher."""
    name, op, value = re.fullmatch(r'(\w+)(=~|!~|!=|=)"(.*)"', text).groups()  # type: ignore[union-attr]
    return [name, op, value]


def notification_policy(route: Json) -> Json:
    policy: Json = {"receiver": route["receiver"]}
    if "matchers" in route:
        policy["object_matchers"] = [matcher(text) for text in route["matchers"]]
    for key in ("group_by", "group_wait", "group_interval", "repeat_interval"):
        if key in route:
            policy[key] = route[key]
    if "routes" in route:
        policy["routes"] = [notification_policy(child) for child in route["routes"]]
    return policy


def notifications(config: Json) -> tuple[Json, Json]:
    """Contact points and the notification policy tree, mirroring the example Alertmanager configuration."""
    contact_points = [
        {
            "orgId": 1,
            "name": receiver["name"],
            "receivers": [
                {
                    "uid": receiver["name"],
                    "type": "webhook",
                    "settings": {"url": hook["url"], "httpMethod": "POST"},
                }
                for hook in receiver["webhook_configs"]
            ],
        }
        for receiver in config["receivers"]
    ]
    policies = [{"orgId": 1, **notification_policy(config["route"])}]
    return {"apiVersion": 1, "contactPoints": contact_points}, {"apiVersion": 1, "policies": policies}


# Output ------------------------------------------------------------------------------------------------------------


def render() -> dict[Path, str]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    contact_points, policies = notifications(yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8")))
    files = {
        DASHBOARDS / f"{board['uid'].removeprefix('flockwatch-')}.json": json.dumps(board, indent=2) + "\n"
        for board in (overview(), account(), service())
    }
    sources = {
        "alert-rules.yaml": (
            "Grafana-managed alert rules equivalent to the detection alerts in "
            "deploy/prometheus/rules/flockwatch.rules.yml.",
            alerting(rules),
        ),
        "contact-points.yaml": (
            "Webhook contact points, the same as the receivers in deploy/alertmanager/alertmanager.yml.",
            contact_points,
        ),
        "notification-policies.yaml": (
            "The notification policy tree of deploy/alertmanager/alertmanager.yml. "
            "Provisioning it replaces the organisation's whole tree.",
            policies,
        ),
    }
    for name, (what, document) in sources.items():
        header = f"# {what}\n# Generated by grafana/generate.py: do not edit.\n"
        files[ALERTING / name] = header + yaml.safe_dump(
            document, sort_keys=False, width=1000, allow_unicode=True
        )
    return files


def main(argv: list[str]) -> int:
    stale = [path for path, text in render().items() if not path.exists() or path.read_text("utf-8") != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run python grafana/generate.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in render().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
