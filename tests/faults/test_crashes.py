"""The fault suite's data-path cases, with the real daemon process, a real PostgreSQL and the ledger platform:
SIGKILL at random moments, PostgreSQL stopped (with a SIGKILL in the middle), a long outage's backlog.

Short forms for CI; ``python -m tests.faults.report --long`` runs the long ones the issue names.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes.ledger import LedgerPlatform
from tests.faults.harness import DaemonProcess, daemon_config, referee
from tests.faults.postgres import PrivatePostgres, available

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LONG = os.environ.get("FLOCKWATCH_FAULTS_LONG") == "1"
HANDLES = [f"user{i}@fake.example" for i in range(200)]


@pytest.fixture
async def platform() -> AsyncIterator[LedgerPlatform]:
    fake = LedgerPlatform(HANDLES)
    fake.delay = 0.002  # answers take a moment: kills land mid-poll
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    problem = available()
    if problem:
        from tests.conftest import IN_CI

        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    server = PrivatePostgres()
    server.create()
    yield server
    server.destroy()


async def test_sigkill_at_random_moments_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, pg_url: str, platform: LedgerPlatform
) -> None:
    daemon = DaemonProcess(tmp_path, "daemon", daemon_config(pg_url, platform, tmp_path, HANDLES))
    rng = random.Random(20261130)
    kills = []
    for _ in range(5 if LONG else 3):
        daemon.start()
        await daemon.metrics_url()
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        kills.append(daemon.kill())
    daemon.start()
    await daemon.metrics_url()
    await asyncio.sleep(3)
    code = await daemon.terminate()

    tally = referee(f"SIGKILL mid-poll, {len(kills)} times (PostgreSQL)", platform, pg_url, kills)
    tally.daemon_up = code == 0
    tally.shown_in_metrics = "the spool replays at start (log: writing what the spool kept)"
    tally.write()
    tally.assert_nothing_lost()
    assert code == 0, daemon.tail()
    assert tally.stored > len(HANDLES)


async def test_postgres_stopped_with_a_sigkill_in_the_middle_loses_nothing(
    tmp_path: Path, private_pg: PrivatePostgres, platform: LedgerPlatform
) -> None:
    outage = 60.0 if LONG else 16.0
    daemon = DaemonProcess(tmp_path, "daemon", daemon_config(private_pg.url, platform, tmp_path, HANDLES))
    daemon.start()
    await daemon.metrics_url()
    await asyncio.sleep(2)
    private_pg.stop()
    await asyncio.sleep(outage / 2)
    database_up = await daemon.metric("flockwatch_database_up")
    buffered = await daemon.metric("flockwatch_samples_buffered")
    kill = daemon.kill()
    daemon.start()  # waits for the database, the spool on disk
    await asyncio.sleep(outage / 2)
    private_pg.start()
    await daemon.metrics_url()
    await _until_written(daemon)
    code = await daemon.terminate()

    tally = referee(
        f"PostgreSQL stopped {outage:g} s, SIGKILL in the middle", platform, private_pg.url, [kill]
    )
    tally.daemon_up = code == 0
    tally.shown_in_metrics = (
        f"flockwatch_database_up {database_up:g}, flockwatch_samples_buffered {buffered:g}"
    )
    tally.write()
    tally.assert_nothing_lost()
    assert database_up == 0 and buffered > 0
    assert code == 0, daemon.tail()


async def test_a_long_outage_s_backlog_goes_back_in_bounded_chunks(
    tmp_path: Path, private_pg: PrivatePostgres, platform: LedgerPlatform
) -> None:
    handles = [f"user{i}@fake.example" for i in range(500)]
    platform.handles = {h.lower(): h for h in handles}
    outage = 120.0 if LONG else 20.0
    config = daemon_config(private_pg.url, platform, tmp_path, handles, poll={"interval": "2s"})
    daemon = DaemonProcess(tmp_path, "daemon", config)
    daemon.start()
    await daemon.metrics_url()
    await asyncio.sleep(2)
    private_pg.stop()
    await asyncio.sleep(outage)
    buffered = await daemon.metric("flockwatch_samples_buffered")
    private_pg.start()
    await _until_written(daemon)
    writes = await daemon.metric("flockwatch_database_write_duration_seconds_count")
    code = await daemon.terminate()

    tally = referee(f"PostgreSQL down {outage:g} s, 500 accounts every 2 s", platform, private_pg.url)
    tally.daemon_up = code == 0
    tally.shown_in_metrics = (
        f"flockwatch_samples_buffered peaked at {buffered:g}; {writes:g} write transactions"
    )
    tally.write()
    tally.assert_nothing_lost()
    assert buffered > 1_000 and writes > 2  # the backlog went back in several bounded transactions


async def _until_written(daemon: DaemonProcess, within: float = 120.0) -> None:
    for _ in range(int(within / 0.5)):
        if (
            await daemon.metric("flockwatch_samples_buffered") == 0
            and await daemon.metric("flockwatch_database_up") == 1
        ):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the spool was not written within {within} s:\n{daemon.tail()}")
