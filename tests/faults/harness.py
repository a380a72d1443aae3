"""The fault suite's tools: the real daemon as a process, and the referee that matches the database
against the ledger of every answer the fake platform sent.

Each case ends with a ``Tally``: samples expected (answers the daemon received), stored, lost, stored twice
and made up, whether the daemon stayed up, and whether the fault showed in its metrics. With
``FLOCKWATCH_FAULT_REPORT`` set to a file, each tally is appended to it as a JSON line
(``python -m tests.faults.report`` runs the suite and writes docs/reliability.md from them).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import create_engine, text

from tests.fakes.ledger import LedgerPlatform

# seconds: an answer sent this shortly before a SIGKILL may not have been read yet; one sent after it (a
# request already queued at the server) never was
IN_FLIGHT = 1.0


@dataclass
class Tally:
    case: str
    expected: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    invented: int = 0
    in_flight: int = 0  # sent just before a SIGKILL and not stored: never read by the daemon, not lost
    daemon_up: bool = True
    shown_in_metrics: str = ""
    notes: list[str] = field(default_factory=list)

    def write(self) -> None:
        target = os.environ.get("FLOCKWATCH_FAULT_REPORT")
        if target:
            with open(target, "a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(self)) + "\n")

    def assert_nothing_lost(self) -> None:
        assert (self.lost, self.duplicated, self.invented) == (0, 0, 0), self


def stored_counts(db_url: str) -> list[tuple[str, int]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT a.handle, s.followers FROM samples s JOIN accounts a ON a.id = s.account_id")
            ).all()
    finally:
        engine.dispose()
    return [(handle, followers) for handle, followers in rows]


def referee(case: str, platform: LedgerPlatform, db_url: str, kills: list[float] = ()) -> Tally:  # type: ignore[assignment]
    """Match the database against the ledger; answers sent just before a kill count as in flight."""
    stored = stored_counts(db_url)
    tally = Tally(case, stored=len(stored))
    seen = Counter(followers for _, followers in stored)
    tally.duplicated = sum(n - 1 for n in seen.values() if n > 1)
    sent = {a.followers: a for a in platform.ledger.answers}
    tally.invented = sum(1 for followers in seen if followers not in sent)
    for followers, answer in sent.items():
        if followers in seen:
            tally.expected += 1
        elif any(abs(kill - answer.sent_at) <= IN_FLIGHT for kill in kills):
            tally.in_flight += 1
        else:
            tally.expected += 1
            tally.lost += 1
            if len(tally.notes) < 5:
                since = [round(answer.sent_at - kill, 2) for kill in kills]
                tally.notes.append(f"lost {answer.handle} {followers} (sent at kill{since})")
    return tally


class DaemonProcess:
    """`python -m service run` with a configuration file, its output in a log file."""

    def __init__(self, folder: Path, name: str, config: dict[str, Any]) -> None:
        self.config_path = folder / f"{name}.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0  # where this run's lines begin in the log

    def start(self) -> None:
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "run", "--config", str(self.config_path)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    async def metrics_url(self, within: float = 60.0) -> str:
        """The /metrics address the daemon logged when it started (waits for the start)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = re.findall(
                r"metrics=(http://\S+/metrics)", self.log.read_text(errors="replace")[self._offset :]
            )
            if found:
                return found[-1]
            self._check_alive()
            await asyncio.sleep(0.1)
        raise AssertionError(f"the daemon did not start within {within} s:\n{self.tail()}")

    async def metric(self, name: str, labels: str = "") -> float:
        """The sum of a metric's series (whose label text contains ``labels``)."""
        async with httpx.AsyncClient() as client:
            page = (await client.get(await self.metrics_url(), timeout=10)).text
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in page.splitlines()
            if line.startswith(name) and (line[len(name)] in "{ ") and labels in line
        ]
        return sum(values)

    def kill(self) -> float:
        """SIGKILL; returns when it happened (time.monotonic())."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        self.process.wait()
        return killed

    async def terminate(self, within: float = 60.0) -> int:
        """SIGTERM and wait for the exit, the event loop (and the fake platform on it) still serving."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(asyncio.to_thread(self.process.wait), within)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the daemon exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def daemon_config(
    db_url: str, platform: LedgerPlatform, folder: Path, handles: list[str], **extra: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "database": {"url": db_url, "start_timeout": "2m"},
        "http": {"listen": "127.0.0.1:0"},
        "poll": {"interval": "1s", "jitter": "0s", "timeout": "2s"},
        "spool": {"path": str(folder / "spool.db")},
        "state": {"checkpoint": "2s"},
        "shutdown": {"timeout": "20s"},
        "platforms": {
            "mastodon": {"base_url": platform.base_url, "rate_limit": {"requests": 1_000_000, "window": "1m"}}
        },
        "watchlist": [f"mastodon:{handle}" for handle in handles],
    }
    for key, value in extra.items():
        config[key] = {**config.get(key, {}), **value}
    return config
