"""Freed memory goes back to the system: what keeps a daemon's RSS near what it holds after start-up and renders."""

from __future__ import annotations

import sys
import threading

import pytest

from service.memory import give_back


def _rss_mib() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * 4096 >> 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and glibc's malloc")
def test_memory_freed_in_a_worker_thread_is_given_back() -> None:
    # 200 MB built and freed in a thread (as a /metrics render does) with one piece kept at the top of the
    # heap: without malloc_trim the process keeps all of it.
    seen: dict[str, int] = {}

    def render() -> None:
        pieces = [bytes(2000) for _ in range(100_000)]
        kept = pieces[-1]
        del pieces
        seen["before"] = _rss_mib()
        seen["trimmed"] = give_back()
        seen["after"] = _rss_mib()
        assert kept

    worker = threading.Thread(target=render)
    worker.start()
    worker.join()
    assert seen["trimmed"]
    assert seen["before"] - seen["after"] > 100
