"""The scale benchmark's harness, end to end at its smallest size, so that it cannot rot: history loaded, the
real daemon started on it (warm, then cold), cycles followed, /metrics scraped, commands timed, sizes read,
and the report written."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench import scale
from tests.conftest import PG_URL, postgres_or_skip

ACCOUNTS = 300
CYCLES = 2  # one without scrapes, one with


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        postgres_or_skip()
    return str(request.param)


def test_the_benchmark_measures_the_daemon_and_writes_its_report(tmp_path: Path, database: str) -> None:
    prefix = f"fw_scale_test_{uuid.uuid4().hex[:10]}"
    code = scale.main(
        [
            *("--sizes", str(ACCOUNTS), "--databases", database, "--days", "1", "--interval", "4"),
            *("--cycles", "1", "--scrape-cycles", "1", "--warm-repeats", "0", "--quiet", "1"),
            *("--cli-repeats", "1", "--data", str(tmp_path / "data"), "--results", str(tmp_path)),
            *("--report", str(tmp_path / "report.md"), "--pg-admin", PG_URL, "--pg-prefix", prefix),
        ]
    )

    assert code == 0
    result = json.loads((tmp_path / f"scale-{ACCOUNTS}-{database}.json").read_text())
    warm, cold = result["runs"]
    assert warm["loaded"]["restored"] == ACCOUNTS  # the loaded history's states were found
    assert cold["loaded"]["rebuilt"] == ACCOUNTS and cold["loaded"]["samples_replayed"] > ACCOUNTS
    for run in (warm, cold):
        assert 0 < run["ready"] < 120 and run["stop"]["code"] == 0
        assert run["stop"]["states_saved"] == ACCOUNTS
        assert all(c["users"] == ACCOUNTS and c["stored"] is not None for c in run["cycles"])
    assert len(warm["cycles"]) == CYCLES and all(c["cpu"] is not None for c in warm["cycles"])
    assert any(s["status"] == 200 and s["page"] > 0 for s in warm["scrapes"])
    assert [c["lines"] for c in result["cli"]["status --limit 0"]] == [
        ACCOUNTS + 1
    ]  # a header, every account
    assert all(c["code"] == 0 and c["lines"] > 1 for c in result["cli"]["status"])  # its first page
    samples = result["size"]["rows"]["samples"]
    assert samples >= result["loaded"]["samples"] + (CYCLES + 1) * ACCOUNTS
    assert result["size"]["bytes"]["samples"] > 0
    report = (tmp_path / "report.md").read_text()
    assert f"{ACCOUNTS} on {'SQLite' if database == 'sqlite' else 'PostgreSQL'}" in report
    if database == "postgresql":
        assert _left_databases(prefix) == []  # dropped afterwards


def _left_databases(prefix: str) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(make_url(PG_URL))
    with engine.connect() as conn:
        names = conn.scalars(
            text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": f"{prefix}%"}
        )
        found = list(names)
    engine.dispose()
    return found
