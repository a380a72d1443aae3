"""A real Prometheus and Alertmanager in the loop with the demo daemon.

The demo (``python -m service demo``, simulated time 14400x faster) is scraped every second by Debian's Prometheus
loaded with the project's rule file, which sends alerts to a real Alertmanager configured like
``deploy/alertmanager/alertmanager.yml`` — the same routes, with the webhook URLs pointed at a receiver served by this
test and ``group_wait``/``group_interval`` shortened to one second. Checks: the target is up, ``promtool check metrics``
finds nothing on the live page, every dashboard query (variables substituted) returns data, and the founding case's
alert fires in Prometheus and reaches the webhook through the critical-detections route.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import pytest
import yaml

from tests.observability.support import (
    ALERTMANAGER_CONFIG,
    ROOT,
    RULES,
    dashboards,
    free_port,
    prometheus_queries,
    require_tool,
    run_tool,
    sql_panel_queries,
    substitute,
)

pytestmark = pytest.mark.slow

FOUNDING_ACCOUNT = "founding@demo.example"
VARIABLES = {
    "datasource": "flockwatch-prometheus",
    "platform": "mastodon",
    "account": FOUNDING_ACCOUNT,
    "subject": "[^/]+",
    "noun": "followers",
    "title_noun": "Followers",
}
SPEED = 14400  # four simulated hours a second: a week of history in 42 s
T = TypeVar("T")


@dataclass
class Webhook:
    """An HTTP receiver for Alertmanager's webhook notifications."""

    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Stack:
    metrics_url: str
    prometheus_url: str
    alertmanager_url: str
    database: Path
    webhook: Webhook
    started: float
    logs: dict[str, Path]

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
        assert response.status_code == 200, f"{expr}: {response.text}"
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def log_tails(self) -> str:
        return "\n".join(
            f"--- {name} log (last lines) ---\n"
            + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
            for name, path in self.logs.items()
        )


def wait_for(what: str, check: Callable[[], T | None], stack: Stack | None, timeout: float) -> T:
    """Poll ``check`` until it returns something, or fail naming ``what`` and showing the logs."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f}s waiting for {what}\n{stack.log_tails() if stack else ''}"
            )
        time.sleep(0.5)


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """The example configuration with each receiver's URL pointed at the test webhook, and short group waits."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = f"{webhook_url}/{receiver['name']}"
    config["route"].update(group_wait="1s", group_interval="1s")
    return config


def prometheus_config(metrics_port: int, alertmanager_port: int) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {"job_name": "flockwatch", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
        ],
    }


def start(args: list[str], log: Path, processes: list[tuple[subprocess.Popen[bytes], IO[bytes]]]) -> None:
    handle = log.open("wb")
    process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    processes.append((process, handle))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = require_tool("prometheus")
    alertmanager = require_tool("prometheus-alertmanager", "alertmanager")
    tmp = tmp_path_factory.mktemp("loop")
    ports = {name: free_port() for name in ("metrics", "prometheus", "alertmanager")}
    webhook = Webhook()
    webhook_url = webhook.start()
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(webhook_url)), encoding="utf-8")
    config = prometheus_config(ports["metrics"], ports["alertmanager"])
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    logs = {name: tmp / f"{name}.log" for name in ("demo", "prometheus", "alertmanager")}
    processes: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
    started = time.monotonic()
    try:
        start(
            [
                sys.executable,
                "-m",
                "service",
                "demo",
                "--listen",
                f"127.0.0.1:{ports['metrics']}",
                "--db",
                f"sqlite:///{tmp / 'demo.db'}",
                "--speed",
                str(SPEED),
            ],
            logs["demo"],
            processes,
        )
        start(
            [
                alertmanager,
                f"--config.file={tmp / 'alertmanager.yml'}",
                f"--storage.path={tmp / 'am'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                "--cluster.listen-address=",
            ],
            logs["alertmanager"],
            processes,
        )
        start(
            [
                prometheus,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
            logs["prometheus"],
            processes,
        )
        yield Stack(
            metrics_url=f"http://127.0.0.1:{ports['metrics']}/metrics",
            prometheus_url=f"http://127.0.0.1:{ports['prometheus']}",
            alertmanager_url=f"http://127.0.0.1:{ports['alertmanager']}",
            database=tmp / "demo.db",
            webhook=webhook,
            started=started,
            logs=logs,
        )
    finally:
        for process, handle in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            handle.close()
        webhook.stop()


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


def metrics_page(stack: Stack) -> str:
    def fetch() -> str | None:
        response = get(stack.metrics_url)
        return response.text if response is not None and response.status_code == 200 else None

    return wait_for("the demo's /metrics page", fetch, stack, 60)


def exported_families(stack: Stack) -> set[str]:
    return set(re.findall(r"^# TYPE (\w+) ", metrics_page(stack), flags=re.MULTILINE))


def missing_metrics(expr: str, families: set[str]) -> set[str]:
    """Metrics named in ``expr`` that this build of the daemon does not export at all."""
    names = set(re.findall(r"\b(flockwatch_\w+)", expr))
    suffixes = ("_bucket", "_count", "_sum", "_total", "_info")
    return {
        name
        for name in names
        if name not in families
        and not any(name.endswith(s) and name.removesuffix(s) in families for s in suffixes)
    }


def detection_engine_present(stack: Stack) -> bool:
    return "flockwatch_detection_info" in exported_families(stack)


def test_target_is_up(stack: Stack) -> None:
    def up() -> list[dict[str, Any]] | None:
        response = get(f"{stack.prometheus_url}/api/v1/targets")
        if response is None or response.status_code != 200:
            return None
        targets = [t for t in response.json()["data"]["activeTargets"] if t["labels"]["job"] == "flockwatch"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    wait_for("the flockwatch target to be up in Prometheus", up, stack, 60)


def test_promtool_finds_nothing_on_the_live_page(stack: Stack) -> None:
    promtool = require_tool("promtool")
    page = metrics_page(stack)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=page, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_rules_are_loaded(stack: Stack) -> None:
    def groups() -> list[str] | None:
        response = get(f"{stack.prometheus_url}/api/v1/rules")
        if response is None or response.status_code != 200:
            return None
        return [group["name"] for group in response.json()["data"]["groups"]] or None

    names = wait_for("Prometheus to load the rule file", groups, stack, 60)
    assert set(names) == {"flockwatch.recording", "flockwatch.detections", "flockwatch.service"}


PANEL_QUERIES = [
    pytest.param(expr, id=where)
    for board in dashboards().values()
    for where, expr in prometheus_queries(board)
]


@pytest.mark.parametrize("expr", PANEL_QUERIES)
def test_dashboard_query_returns_data(stack: Stack, expr: str) -> None:
    missing = missing_metrics(expr, exported_families(stack))
    if missing:
        pytest.skip(f"not exported by this build of the daemon: {', '.join(sorted(missing))}")
    query = substitute(expr, VARIABLES)
    wait_for(f"data from {query}", lambda: stack.query(query), stack, 90)


VARIABLE_QUERIES = [
    pytest.param(variable["query"], id=f"{board['uid']}: ${variable['name']}")
    for board in dashboards().values()
    for variable in board["templating"]["list"]
    if variable["type"] == "query" and variable["query"].startswith("label_values(")
]
NOUN_QUERIES = [
    pytest.param(variable, id=f"{board['uid']}: ${variable['name']}")
    for board in dashboards().values()
    for variable in board["templating"]["list"]
    if variable["type"] == "query" and variable["query"].startswith("query_result(")
]


@pytest.mark.parametrize("variable", NOUN_QUERIES)
def test_dashboard_noun_says_followers_for_the_founding_account(
    stack: Stack, variable: dict[str, Any]
) -> None:
    """``query_result(expr)`` with its regex, as Grafana resolves it: the demo's accounts count followers."""
    expr = substitute(variable["query"].removeprefix("query_result(").removesuffix(")"), VARIABLES)
    pattern = re.compile(variable["regex"].strip("/"))

    def nouns() -> set[str] | None:
        found = {
            match.group(1)
            for r in stack.query(expr)
            if (match := pattern.search(f'noun="{r["metric"].get("noun")}"'))
        }
        return found or None

    assert wait_for(f"a value for ${variable['name']}", nouns, stack, 60) == {VARIABLES[variable["name"]]}


@pytest.mark.parametrize("query", VARIABLE_QUERIES)
def test_dashboard_variable_offers_the_demo_values(stack: Stack, query: str) -> None:
    """``label_values(selector, label)`` as Grafana asks it of Prometheus: the label's values among matching series."""
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
    assert match, f"not a label_values query: {query}"
    selector, label = substitute(match.group(1), VARIABLES), match.group(2)

    def values() -> list[str] | None:
        url = f"{stack.prometheus_url}/api/v1/label/{label}/values"
        response = httpx.get(url, params={"match[]": selector}, timeout=10)
        found: list[str] = response.json()["data"] if response.status_code == 200 else []
        return found if VARIABLES[label] in found else None

    wait_for(f"{VARIABLES[label]} among the values of {query}", values, stack, 60)


SQL_QUERIES = sql_panel_queries()


@pytest.mark.parametrize("sql", SQL_QUERIES)
def test_database_panel_query_returns_rows(stack: Stack, sql: str) -> None:
    """The PostgreSQL panels' SQL, run on the demo's SQLite database (Grafana's time macro as a plain condition)."""
    if "FROM detections" in sql and not detection_engine_present(stack):
        pytest.skip("the detection engine is not part of this build of the daemon")
    query = substitute(re.sub(r"\$__timeFilter\(([\w.]+)\)", r"\1 IS NOT NULL", sql), VARIABLES)

    def rows() -> list[tuple[Any, ...]] | None:
        connection = sqlite3.connect(f"file:{stack.database}?mode=ro", uri=True)
        try:
            return connection.execute(query).fetchall() or None
        except sqlite3.OperationalError:
            return None
        finally:
            connection.close()

    wait_for(f"rows from {query}", rows, stack, 60)


def test_founding_case_alert_fires_and_reaches_the_webhook(stack: Stack) -> None:
    test_target_is_up(stack)
    if not detection_engine_present(stack):
        pytest.skip("the detection engine is not part of this build: no flockwatch_detection_info family")

    def firing() -> dict[str, Any] | None:
        response = get(f"{stack.prometheus_url}/api/v1/alerts")
        alerts = (
            response.json()["data"]["alerts"] if response is not None and response.status_code == 200 else []
        )
        return next(
            (
                a
                for a in alerts
                if a["state"] == "firing"
                and a["labels"]["alertname"] == "FlockwatchRegularGrowth"
                and a["labels"].get("account") == FOUNDING_ACCOUNT
            ),
            None,
        )

    alert = wait_for("FlockwatchRegularGrowth for the founding case to fire", firing, stack, 240)
    fired_after = time.monotonic() - stack.started
    labels = alert["labels"]
    quoted = alert["annotations"]["summary"].partition(f"mastodon:{FOUNDING_ACCOUNT} grows too regularly: ")[
        2
    ]
    assert labels["category"] == "detection" and quoted, f"the detection's summary is not quoted: {alert}"

    def delivered() -> tuple[str, dict[str, Any]] | None:
        return next(
            (
                (path, a)
                for path, body in stack.webhook.received
                for a in body["alerts"]
                if a["labels"]["alertname"] == "FlockwatchRegularGrowth"
                and a["labels"].get("account") == FOUNDING_ACCOUNT
            ),
            None,
        )

    path, notified = wait_for("the alert to reach the webhook through Alertmanager", delivered, stack, 60)
    delivered_after = time.monotonic() - stack.started
    route = run_tool(
        require_tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        *(f"{key}={value}" for key, value in labels.items() if key in {"alertname", "category", "severity"}),
    )
    assert path == f"/{route.stdout.strip()}", f"delivered to {path}, routed to {route.stdout.strip()}"
    assert notified["annotations"]["runbook_url"].endswith("#flockwatchregulargrowth")
    assert notified["annotations"]["summary"].startswith(f"mastodon:{FOUNDING_ACCOUNT} grows too regularly: ")
    print(
        f"\nfounding case: firing in Prometheus {fired_after:.0f}s after start, "
        f"at the webhook {delivered_after:.0f}s after start ({path})"
    )
