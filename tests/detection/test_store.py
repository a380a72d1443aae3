"""Import, the recorder and the detections listing, on SQLite and PostgreSQL; the Prometheus collector."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.cli import main
from service.detection.engine import DetectionEngine
from service.detection.metrics import DetectionCollector, ScoreExposition
from service.store import models
from service.store.database import open_engine

from .helpers import START, organic_gains, series
from .test_backtest_cli import history_rows, write_csv


def counts(url: str) -> tuple[int, int, int]:
    engine = open_engine(url)
    with Session(engine) as session:
        result = tuple(
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (models.Account, models.Sample, models.Detection)
        )
    engine.dispose()
    return result  # type: ignore[return-value]


def test_import_is_idempotent(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "h.csv", history_rows())

    assert main(["import", str(path), "--db", database_url]) == 0
    first = counts(database_url)
    assert main(["import", str(path), "--db", database_url]) == 0

    assert counts(database_url) == first
    accounts, samples, detections = first
    assert (accounts, samples) == (2, 120) and detections >= 1
    err = capsys.readouterr().err
    assert "stored 120 new samples" in err and "stored 0 new samples (120 were already there)" in err
    assert "importing [" in err


def test_detections_lists_what_import_found(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["import", str(write_csv(tmp_path / "h.csv", history_rows())), "--db", database_url])
    capsys.readouterr()

    assert main(["detections", "x:bought", "--db", database_url, "--format", "jsonl"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {d["account"] for d in listed} == {"x:bought"}
    assert any(d["kind"] == "regular_growth" and d["ended_at"] for d in listed)

    assert main(["detections", "--active", "--db", database_url]) == 0
    assert "regular_growth" not in capsys.readouterr().out  # it ended


def test_detections_rejects_a_bad_account(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["detections", "nowhere", "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 2


def test_collector_exports_scores_and_active_detections() -> None:
    engine = DetectionEngine()
    for sample in series("mastodon:Gargron@mastodon.social", organic_gains(30, 20) + [768] * 8):
        engine.observe(sample)
    registry = CollectorRegistry()
    DetectionCollector(engine, registry)

    labels = {"platform": "mastodon", "account": "Gargron@mastodon.social"}
    scores = {
        sample.labels["detector"]: sample.value
        for family in text_string_to_metric_families(ScoreExposition(engine).render().decode())
        for sample in family.samples
        if sample.labels["account"] == labels["account"]
    }
    assert scores["regular_growth"] >= 0.8 and scores["churn"] == 0.0
    assert (
        registry.get_sample_value(
            "flockwatch_detections_active",
            {"platform": "mastodon", "kind": "regular_growth", "severity": "critical"},
        )
        == 1.0
    )
    started = registry.get_sample_value(
        "flockwatch_detection_started_timestamp_seconds", {**labels, "kind": "regular_growth"}
    )
    assert started == (START + timedelta(days=30)).timestamp()
    info = [s for m in registry.collect() for s in m.samples if s.name == "flockwatch_detection_info"]
    assert [s.labels["kind"] for s in info].count("regular_growth") == 1
    assert info[0].labels["summary"].startswith("gained +768/day")


def test_collector_is_not_on_the_global_registry() -> None:
    from prometheus_client import REGISTRY

    DetectionCollector(DetectionEngine(), CollectorRegistry())
    assert REGISTRY.get_sample_value("flockwatch_detections_active") is None


def test_import_links_explained_drops_to_the_platform_event(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = []
    for i in range(5):
        daily = organic_gains(40, 80 + 20 * i, seed=20 + i)
        daily[30] -= 1000 + 100 * i
        for s in series(f"mastodon:user{i}@example.social", daily, first=20_000):
            rows.append((s.observed_at.strftime("%Y-%m-%dT%H:%M:%SZ"), str(s.account), s.followers))
    assert main(["import", str(write_csv(tmp_path / "purge.csv", rows)), "--db", database_url]) == 0

    engine = open_engine(database_url)
    with Session(engine) as session:
        event = session.scalars(
            select(models.Detection).where(models.Detection.kind == "platform_event")
        ).one()
        drops = session.scalars(select(models.Detection).where(models.Detection.kind == "drop")).all()
    engine.dispose()
    assert event.account == "mastodon:*" and event.account_id is None
    assert len(drops) == 5 and {d.explained_by for d in drops} == {event.id}
    assert all(d.severity == "info" and d.account_id is not None for d in drops)


def test_database_url_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("FLOCKWATCH_DATABASE__URL", url)

    assert main(["import", str(write_csv(tmp_path / "h.csv", history_rows()))]) == 0
    assert counts(url)[1] == 120
