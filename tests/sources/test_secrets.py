"""A credential never shows up in logs, metrics, exceptions or the database, whatever goes wrong."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from service.sources.base import AccountProblem, SourceError
from service.sources.ratelimit import BACKOFF_CAP
from tests.fakes.server import Fault
from tests.sources.daemon import deployed

SECRET = "s3cr3t-Tok3n-7Q9xZpL2"
FAULTS = [
    Fault.UNAUTHORIZED,
    Fault.SERVER_ERROR,
    Fault.SLOW,
    Fault.TRUNCATED,
    Fault.RATE_LIMIT,
    Fault.INVALID_JSON,
    Fault.ECHO_CREDENTIAL,
    None,
]


@pytest.mark.parametrize("platform", ["x", "youtube", "twitch", "github", "github-repositories", "mastodon"])
async def test_the_credential_appears_nowhere(
    platform: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with deployed(platform, tmp_path, secret=SECRET) as d:
            alice = d.world.fake.add("alice", 100)
            d.watch(alice)
            for fault in FAULTS:
                if fault is not None:
                    d.world.fake.fail_next(fault)
                await d.poll(after=BACKOFF_CAP)
                d.world.fake.fail_next(*([fault] if fault else []))
                d.world.clock.advance(BACKOFF_CAP * 2)
                seen.extend(_describe(await d.world.fetch(d.world.fake.target(alice))))
            assert any(
                r.headers.get("Authorization", r.headers.get("X-Goog-Api-Key", "")).endswith(SECRET)
                for r in d.world.fake.requests
            ), "the credential was never sent: the test proves nothing"
            seen.append(d.dump())
            seen.append(generate_latest(d.world.registry).decode())
    seen.append(caplog.text)
    seen.extend(
        "".join(traceback.format_exception(r.exc_info[1]))
        for r in caplog.records
        if r.exc_info and r.exc_info[1]
    )
    leaks = [text for text in seen if SECRET in text]
    assert not leaks, f"the credential leaked into: {leaks[0][:300]}"


def _describe(answer: object) -> list[str]:
    """Everything a caller could print about an answer, chained causes included."""
    if isinstance(answer, SourceError):
        return [str(answer), repr(answer), "".join(traceback.format_exception(answer))]
    assert isinstance(answer, dict)
    return [repr(result) for result in answer.values() if isinstance(result, AccountProblem)]
