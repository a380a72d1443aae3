"""Two `flockwatch run` replicas on one PostgreSQL database share the watchlist; one is killed with SIGKILL.

Every account must keep getting samples (the survivor takes the dead replica's shards over), and no account
may be polled twice within an interval, before or after the kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from tests.fakes.ledger import LedgerPlatform

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ACCOUNTS = [f"user{i}@fake.example" for i in range(120)]
INTERVAL = 2.0


@pytest.fixture
async def platform() -> AsyncIterator[LedgerPlatform]:
    fake = LedgerPlatform(ACCOUNTS)
    await fake.start()
    yield fake
    await fake.stop()


def _config(tmp_path: Path, name: str, pg_url: str, platform: LedgerPlatform) -> Path:
    config = {
        "database": {"url": pg_url},
        "http": {"listen": "127.0.0.1:0"},
        "poll": {"interval": f"{INTERVAL}s", "jitter": "0s", "timeout": "2s"},
        "spool": {"path": str(tmp_path / f"spool-{name}.db")},
        "cluster": {"heartbeat": "0.5s", "name": name},
        "state": {"checkpoint": "3s"},
        "log": {"level": "info"},
        "platforms": {
            "mastodon": {"base_url": platform.base_url, "rate_limit": {"requests": 1_000_000, "window": "1m"}}
        },
        "watchlist": [f"mastodon:{handle}" for handle in ACCOUNTS],
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "service", "run", "--config", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _shards(pg_url: str) -> dict[str, int]:
    """Shards each live replica says it holds ({} before the replicas created the tables)."""
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name, shards FROM replicas")).all()
    except ProgrammingError:
        return {}
    finally:
        engine.dispose()
    return {name: shards for name, shards in rows}


def _samples(pg_url: str) -> dict[str, list[tuple[float, int]]]:
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.handle, extract(epoch FROM s.observed_at), s.followers "
                "FROM samples s JOIN accounts a ON a.id = s.account_id ORDER BY s.observed_at"
            )
        ).all()
    engine.dispose()
    found: dict[str, list[tuple[float, int]]] = {}
    for handle, at, followers in rows:
        found.setdefault(handle, []).append((float(at), followers))
    return found


async def _wait_for(check: object, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {within} s")


async def test_a_killed_replica_s_accounts_are_taken_over_and_none_is_polled_twice(
    tmp_path: Path, pg_url: str, platform: LedgerPlatform
) -> None:
    a = _start(_config(tmp_path, "a", pg_url, platform), tmp_path / "a.log")
    b = _start(_config(tmp_path, "b", pg_url, platform), tmp_path / "b.log")
    try:
        await _wait_for(lambda: sorted(_shards(pg_url).values()) == [32, 32], within=40)
        await asyncio.sleep(4 * INTERVAL)
        a.send_signal(signal.SIGKILL)
        a.wait()
        killed_at = time.time()
        await _wait_for(lambda: _shards(pg_url).get("b") == 64, within=20)
        await asyncio.sleep(4 * INTERVAL)
        taken_over_by = time.time()
    finally:
        for process in (a, b):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (a, b):
            await asyncio.wait_for(asyncio.to_thread(process.wait), 60)
    log_b = (tmp_path / "b.log").read_text()
    assert b.returncode == 0, log_b[-3000:]

    samples = _samples(pg_url)
    assert set(samples) == set(ACCOUNTS)
    late = [
        h for h, rows in samples.items() if not any(killed_at + 2 < at <= taken_over_by for at, _ in rows)
    ]
    assert late == [], f"{len(late)} accounts got no sample after the kill"
    # one poll per interval: two samples of an account much closer than the interval are a double poll
    doubled = [
        (h, round(later - earlier, 2))
        for h, rows in samples.items()
        for (earlier, _), (later, _) in pairwise(rows)
        if later - earlier < INTERVAL / 2
    ]
    assert doubled == []
    stored = [followers for rows in samples.values() for _, followers in rows]
    assert len(stored) == len(set(stored))  # no answer stored twice
    assert set(stored) <= platform.ledger.counts()  # nothing made up
