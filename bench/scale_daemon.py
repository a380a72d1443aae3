"""The processes the scale benchmark runs and watches: the fake platform, the real daemon, and a sampler of
the daemon's CPU time and memory read from /proc (its own process: every thread, nothing of the fake's).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.fake_platform import TOKEN

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_EVERY = 0.2  # seconds between two readings of /proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory(pid: int) -> tuple[int, int]:
    """(resident bytes now, peak resident bytes so far) of the process."""
    now = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return now, peak


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class Watch:
    """Readings of one process every ``SAMPLE_EVERY`` seconds, in a thread: (time.time(), CPU s, RSS)."""

    pid: int
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Watch:
        threading.Thread(target=self._run, daemon=True, name="watch").start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                cpu, (rss, peak) = cpu_seconds(self.pid), memory(self.pid)
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                return  # the process is gone (or going)
            self.times.append(time.time())
            self.cpu.append(cpu)
            self.rss.append(rss)
            self.peak = max(self.peak, peak)
            self._stop.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self._stop.set()

    def cpu_at(self, when: float) -> float:
        """CPU seconds at ``when`` (the first reading at or after it)."""
        i = min(bisect_left(self.times, when), len(self.times) - 1)
        return self.cpu[i]

    def cpu_between(self, start: float, end: float) -> float:
        return self.cpu_at(end) - self.cpu_at(start)

    def rss_peak_between(self, start: float, end: float) -> int:
        """The highest RSS read from ``start`` to ``end`` (readings every SAMPLE_EVERY seconds)."""
        return max((r for t, r in zip(self.times, self.rss, strict=True) if start <= t <= end), default=0)

    def rss_at(self, when: float) -> int:
        return self.rss[min(bisect_left(self.times, when), len(self.rss) - 1)]


class FakePlatform:
    """``python -m bench.fake_platform`` in a process of its own."""

    def __init__(self, folder: Path, accounts: int, epoch: float, days: float) -> None:
        port_file = folder / "fake.port"
        port_file.unlink(missing_ok=True)
        command = [sys.executable, "-m", "bench.fake_platform", "--accounts", str(accounts)]
        command += ["--epoch", str(epoch), "--days", str(days), "--port-file", str(port_file)]
        self.process = subprocess.Popen(command, cwd=ROOT)
        self.port = _wait_for_port(port_file, self.process)
        self.url = f"http://127.0.0.1:{self.port}"
        self._seen = 0

    def requests(self) -> list[tuple[float, float, int]]:
        """Lookups answered since the last call: (received, answered, users)."""
        with urllib.request.urlopen(f"{self.url}/_bench/requests?after={self._seen}", timeout=30) as answer:
            body = json.load(answer)
        self._seen = body["next"]
        return [(r[0], r[1], r[2]) for r in body["requests"]]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _wait_for_port(port_file: Path, process: subprocess.Popen[bytes], patience: float = 120) -> int:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the fake platform exited with {process.returncode}")
        text = port_file.read_text() if port_file.exists() else ""
        if text.strip():
            return int(text)
        time.sleep(0.1)
    raise RuntimeError("the fake platform did not start")


def daemon_config(folder: Path, url: str, fake: FakePlatform, interval: float, listen: str) -> Path:
    """The daemon's configuration: the fake as X (its budget raised: the benchmark measures flockwatch, not
    X's limit), the watchlist already in the database, everything else the shipped defaults."""
    config = {
        "database": {"url": url},
        "http": {"listen": listen},
        "poll": {"interval": f"{interval:g}s", "jitter": "0s"},
        "log": {"level": "info", "format": "json"},
        "spool": {"path": str(folder / "spool.db")},
        "platforms": {
            "x": {
                "base_url": fake.url,
                "bearer_token": TOKEN,
                "rate_limit": {"requests": 1_000_000, "window": "15m"},
            }
        },
    }
    path = folder / "flockwatch.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@dataclass
class Stopped:
    code: int
    seconds: float  # from SIGTERM to exit
    cpu: float  # CPU seconds spent stopping
    total_cpu: float  # CPU seconds of the whole run


class Daemon:
    """``python -m service run`` as a process of its own; its log (JSON lines) in ``log``."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self.started = time.time()
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=out,
                cwd=ROOT,
            )
        self.pid = self.process.pid
        self.watch = Watch(self.pid).start()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, patience: float = 120) -> Stopped:
        """SIGTERM, then wait for the exit; the CPU figures come from the kernel's account of the child."""
        before = cpu_seconds(self.pid)
        asked = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.process.returncode = os.waitstatus_to_exitcode(status)
                self.watch.stop()
                total = usage.ru_utime + usage.ru_stime
                return Stopped(self.process.returncode, time.monotonic() - asked, total - before, total)
            time.sleep(0.05)
        self.process.kill()
        self.process.wait()
        raise RuntimeError(f"the daemon did not stop within {patience:g} s of SIGTERM")

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait()
        self.watch.stop()

    def events(self, message: str) -> list[dict[str, Any]]:
        """Log events with this message."""
        found = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if message in line:
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found


@dataclass(frozen=True)
class Fetched:
    status: int
    seconds: float
    size: int  # bytes on the wire
    page: bytes


def fetch(url: str, gzipped: bool = False, timeout: float = 60) -> Fetched:
    """One plain HTTP GET, timed from the request to the last byte (as a scraper sees it)."""
    headers = {"Accept-Encoding": "gzip"} if gzipped else {}
    request = urllib.request.Request(url, headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body, status, encoding = answer.read(), answer.status, answer.headers.get("Content-Encoding")
    except urllib.error.HTTPError as exc:
        body, status, encoding = exc.read(), exc.code, None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return Fetched(0, time.perf_counter() - started, 0, b"")
    seconds = time.perf_counter() - started
    page = gzip.decompress(body) if encoding == "gzip" else body
    return Fetched(status, seconds, len(body), page)
