"""The fault suite's hostile answers: one account's answer is poisoned; every other account's samples must
all be stored, the daemon must stay up, the fault must show in its metrics, and the account must recover.

The real daemon process, a real PostgreSQL, the ledger platform on a real socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from tests.fakes.ledger import PLATFORM, LedgerPlatform, account_id
from tests.faults.harness import DaemonProcess, daemon_config, referee

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HANDLES = [f"user{i}@fake.example" for i in range(60)]
VICTIM = HANDLES[7]
Fault = Callable[[web.Request], object]


def _answer(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def _entity(acct: str, account: str = account_id(VICTIM), followers: int = 5) -> dict[str, object]:
    return {
        "id": account,
        "acct": acct,
        "followers_count": followers,
        "following_count": 1,
        "statuses_count": 2,
    }


async def _trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for byte in json.dumps(_entity(VICTIM)).encode():
        await response.write(bytes([byte]))
        await asyncio.sleep(1.0)
    return response


# Answers that are not a valid observation (the victim's polls fail while the fault lasts, and count errors)...
BROKEN: dict[str, Fault] = {
    "a 300-character handle": lambda _r: _answer(_entity("user7@" + "h" * 300)),
    "a NUL in the error text": lambda _r: _answer({"error": "refused\x00because"}, status=403),
    "a lone surrogate in the handle": lambda _r: _answer(_entity("user7@fake\udc80.example")),
    "deeply nested JSON": lambda _r: web.Response(text="[" * 200_000, content_type="application/json"),
    "an account id ending in a newline": lambda _r: _answer(_entity(VICTIM, account_id(VICTIM) + "\n")),
    "an answer trickling one byte a second": _trickle,
}
# ... and answers whose counts are valid around something to ignore (they are stored; the ledger has them).
VALID: dict[str, Fault] = {
    "a rate-limit header '²'": lambda request: _answer(
        _entity(VICTIM, followers=request.app[PLATFORM].record(VICTIM)),
        headers={"X-RateLimit-Remaining": "²"},
    ),
}
FAULTS = {**BROKEN, **VALID}


@pytest.fixture
async def platform() -> AsyncIterator[LedgerPlatform]:
    fake = LedgerPlatform(HANDLES)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_one_poisoned_answer_stays_one_account_s_problem(
    fault: str, tmp_path: Path, pg_url: str, platform: LedgerPlatform
) -> None:
    """Fails on a daemon that lets one answer stop its group, kill its writer or poison its database."""
    daemon = DaemonProcess(tmp_path, "daemon", daemon_config(pg_url, platform, tmp_path, HANDLES))
    daemon.start()
    await daemon.metrics_url()
    await asyncio.sleep(2)
    before = _answers(platform)
    platform.faults[VICTIM.lower()] = FAULTS[fault]
    await asyncio.sleep(6)
    errors = await daemon.metric("flockwatch_poll_errors_total")
    during = {h: n - before.get(h, 0) for h, n in _answers(platform).items()}
    platform.faults.clear()
    victim_answers = len(platform.ledger.by_handle().get(VICTIM, []))
    await asyncio.sleep(4)
    code = await daemon.terminate()

    tally = referee(f"one answer with {fault} (PostgreSQL)", platform, pg_url)
    tally.daemon_up = code == 0
    tally.shown_in_metrics = f"flockwatch_poll_errors_total {errors:g}"
    tally.write()
    tally.assert_nothing_lost()
    assert code == 0, daemon.tail()
    assert errors > 0 if fault in BROKEN else during.get(VICTIM, 0) > 0
    # polled again after the fault, and (nothing lost) stored
    assert len(platform.ledger.by_handle().get(VICTIM, [])) > victim_answers
    # the others never stopped: several polls each while the fault lasted (a request may take up to poll.timeout)
    assert min(during.get(h, 0) for h in HANDLES if h != VICTIM) >= 2, sorted(
        during.items(), key=lambda kv: kv[1]
    )[:8]


def _answers(platform: LedgerPlatform) -> dict[str, int]:
    return {handle: len(answers) for handle, answers in platform.ledger.by_handle().items()}
