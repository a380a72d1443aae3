"""Debian's Prometheus scrapes the demo over TLS with basic auth, configured as the shipped scrape job is.

The demo runs with a web configuration file (the test CA's server certificate, one bcrypt user). Prometheus gets
two copies of the ``flockwatch`` job of deploy/prometheus/prometheus.yml, its CA and password files pointed at the
test's: one with the right password must be up, one with a wrong password down.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.observability.certs import PASSWORD, make_certs, password_hash
from tests.observability.support import ROOT, free_port, load_yaml, require_tool

pytestmark = pytest.mark.slow


def scrape_job(name: str, target: str, ca: Path, password_file: Path) -> dict[str, Any]:
    shipped = next(
        j
        for j in load_yaml(ROOT / "deploy/prometheus/prometheus.yml")["scrape_configs"]
        if j["job_name"] == "flockwatch"
    )
    job = copy.deepcopy(shipped)
    assert job["scheme"] == "https" and job["basic_auth"]["username"] == "prometheus"
    job.update(job_name=name, static_configs=[{"targets": [target]}], scrape_interval="1s")
    job["tls_config"]["ca_file"] = str(ca)
    job["basic_auth"]["password_file"] = str(password_file)
    return job


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prometheus = require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("tls-loop")
    certs = make_certs(tmp)
    web = {"tls_server_config": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)}}
    web["basic_auth_users"] = {"prometheus": password_hash()}  # type: ignore[dict-item]
    (tmp / "web.yml").write_text(yaml.safe_dump(web), encoding="utf-8")
    (tmp / "right").write_text(PASSWORD + "\n", encoding="utf-8")
    (tmp / "wrong").write_text("not-" + PASSWORD, encoding="utf-8")
    metrics, port = free_port(), free_port()
    target = f"127.0.0.1:{metrics}"
    jobs = [
        scrape_job("right", target, certs.ca, tmp / "right"),
        scrape_job("wrong", target, certs.ca, tmp / "wrong"),
    ]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({"scrape_configs": jobs}), encoding="utf-8")
    demo = [
        sys.executable,
        "-m",
        "service",
        "demo",
        "--listen",
        target,
        "--db",
        f"sqlite:///{tmp / 'demo.db'}",
    ]
    processes = [
        subprocess.Popen(
            [*demo, "--web.config.file", str(tmp / "web.yml")],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def up_of(prometheus_url: str, job: str) -> float | None:
    try:
        response = httpx.get(
            f"{prometheus_url}/api/v1/query", params={"query": f'up{{job="{job}"}}'}, timeout=5
        )
    except httpx.HTTPError:
        return None
    result = response.json()["data"]["result"] if response.status_code == 200 else []
    return float(result[0]["value"][1]) if result else None


@pytest.mark.parametrize(("job", "expected"), [("right", 1.0), ("wrong", 0.0)])
def test_prometheus_scrapes_over_tls_with_basic_auth(prometheus_url: str, job: str, expected: float) -> None:
    deadline = time.monotonic() + 60
    value = None
    while time.monotonic() < deadline:
        value = up_of(prometheus_url, job)
        if value == expected and (expected == 0.0 or up_of(prometheus_url, "right") == 1.0):
            return
        time.sleep(0.5)
    pytest.fail(f"up{{job={job!r}}} is {value}, expected {expected}")
