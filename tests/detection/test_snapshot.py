"""Detector state as data: an engine restored from snapshots carries on exactly as the original would."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zlib
from datetime import timedelta
from pathlib import Path

import pytest

from service.accounts import AccountRef
from service.detection import snapshot as snapshot_format
from service.detection.engine import DetectionEngine, SnapshotError

from .helpers import START, organic_gains, run, series
from .snapshot_check import check

ROOT = Path(__file__).resolve().parents[2]
REF = AccountRef("x", "snapshotted")


def _fed(gains: list[int], every: timedelta = timedelta(days=1)) -> DetectionEngine:
    engine = DetectionEngine()
    run(series(str(REF), gains, every=every), engine)
    return engine


def _drip_in_progress() -> DetectionEngine:
    """An account with an open regular_growth detection and a following count."""
    return _fed(organic_gains(30, 20, seed=4) + [700] * 6)


@pytest.mark.parametrize("seed", [11, 12])
def test_a_chain_of_restored_engines_reports_exactly_what_one_engine_reports(seed: int) -> None:
    result = check(seed)

    assert result["restores"] > 100 and result["samples"] > 50_000
    assert result["differences"] == 0


@pytest.mark.parametrize("seed", [11, 13])
def test_an_engine_that_keeps_accounts_as_bytes_reports_exactly_what_a_live_one_reports(seed: int) -> None:
    # The daemon's engine holds each account as its snapshot between samples: every detection, score,
    # explanation and snapshot is the same as an engine holding live detectors.
    live, compact = check(seed), check(seed, compact=True)

    assert compact["samples"] > 50_000
    assert compact["differences"] == 0
    assert compact["digest"] == live["digest"]


def test_interpreted_modules_restore_exactly_and_write_the_same_bytes(interpreted_service: Path) -> None:
    # The compiled engine's snapshots and the interpreted engine's hold the same fields, sample for sample.
    command = [sys.executable, "-m", "tests.detection.snapshot_check", "11"]
    environment = {**os.environ, "PYTHONPATH": f"{interpreted_service}{os.pathsep}{ROOT}"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment, cwd=ROOT)
    interpreted = json.loads(done.stdout)

    assert interpreted["differences"] == 0
    assert interpreted["digest"] == check(11)["digest"]


def test_a_restored_account_keeps_its_open_detection_and_its_key() -> None:
    engine = _drip_in_progress()
    restored = DetectionEngine()
    restored.restore(REF, engine.snapshot(REF) or b"")

    assert [d.public() | {"key": d.key} for d in restored.active()] == [
        d.public() | {"key": d.key} for d in engine.active()
    ]
    assert restored.last_at(REF) == engine.last_at(REF) == (START + timedelta(days=36)).timestamp()
    assert restored.scores_of(REF) == engine.scores_of(REF)


def test_an_account_the_engine_does_not_hold_has_no_snapshot() -> None:
    engine = DetectionEngine()

    assert engine.snapshot(REF) is None and engine.last_at(REF) is None


def test_a_snapshot_is_compact() -> None:
    daily = _fed(organic_gains(120, 300, seed=5))
    quarter = _fed(organic_gains(30 * 96, 3, seed=6), every=timedelta(minutes=15))

    assert len(daily.snapshot(REF) or b"") < 1_000
    assert len(quarter.snapshot(REF) or b"") < 2_000


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[:4] + bytes([b[4] + 1]) + b[5:], id="another format version"),
        pytest.param(lambda b: b[:40] + bytes([b[40] ^ 0x10]) + b[41:], id="a flipped bit"),
        pytest.param(lambda b: b[:-9], id="truncated"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b"FWDS" + bytes(200), id="zeros"),
    ],
)
def test_a_damaged_or_foreign_snapshot_is_refused_and_changes_nothing(damage: object) -> None:
    engine = _drip_in_progress()
    blob = engine.snapshot(REF) or b""
    before = engine.snapshot(REF)

    with pytest.raises(SnapshotError):
        engine.restore(REF, damage(blob))  # type: ignore[operator]
    assert engine.snapshot(REF) == before
    assert issubclass(SnapshotError, ValueError)


def test_a_snapshot_restored_under_another_account_is_refused() -> None:
    blob = _drip_in_progress().snapshot(REF) or b""

    with pytest.raises(SnapshotError, match="not of x:other"):
        DetectionEngine().restore(AccountRef("x", "other"), blob)


def test_a_damaged_platform_snapshot_is_refused() -> None:
    blob = _drip_in_progress().platform_snapshot()

    with pytest.raises(SnapshotError):
        DetectionEngine().restore_platforms(blob[:-5])


# The layout of format SNAPSHOT_VERSION, pinned: if this fails, a component's saved fields changed. Bump
# SNAPSHOT_VERSION in service/detection/snapshot.py (older snapshots must be refused, not misread), then
# put the new digest here. (The digest is of this history's fields, so a change of what a detector computes
# moves it too: the tenth pass carried the account's relative spread to a crowd's pace, which changed the
# two variances of the burst detector's saved crowd-pace process and nothing else; same fields, same
# format: a format-4 snapshot of the previous release is read as written, its crowd pace judged with the
# carried spread from the next period on.)
LAYOUT = (4, "c753e89daf28350c03cdb52c67cd3b52198d47a0759552f01e707aaf4125bd31")


def test_the_snapshot_layout_changes_only_with_the_format_version() -> None:
    # The fields, not their compressed form: another zlib may compress the same fields differently.
    engine = _drip_in_progress()
    fields = [zlib.decompress(blob[5:]) for blob in (engine.snapshot(REF) or b"", engine.platform_snapshot())]
    digest = hashlib.sha256(b"".join(fields)).hexdigest()

    assert (snapshot_format.SNAPSHOT_VERSION, digest) == LAYOUT
