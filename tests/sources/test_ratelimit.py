"""Rate-limit headers in every dialect the platforms speak, and the gate that obeys them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from service.clock import ManualClock
from service.sources.base import SourceError
from service.sources.platform import declaration
from service.sources.ratelimit import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    RateGate,
    parse_reset,
    parse_retry_after,
    read_budget,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1767614460", datetime(2026, 1, 5, 12, 1, tzinfo=UTC)),  # X, GitHub, Twitch: Unix seconds
        ("60", NOW + timedelta(seconds=60)),  # IETF draft: delta seconds
        ("2026-01-05T12:05:00.019685Z", datetime(2026, 1, 5, 12, 5, 0, 19685, tzinfo=UTC)),  # Mastodon
        ("Mon, 05 Jan 2026 12:10:00 GMT", datetime(2026, 1, 5, 12, 10, tzinfo=UTC)),  # HTTP date
        ("soon", None),
        ("-5", None),
        ("", None),
    ],
)
def test_reset_headers_in_every_dialect(value: str, expected: datetime | None) -> None:
    assert parse_reset(value, NOW) == expected


NONSENSE = [
    "²",
    "١٢٣",
    "1e400",
    "nan",
    "inf",
    "9" * 400,
    "Thu, 01 Jan 99999 00:00:00 GMT",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "12\x0034",
    " ",
]


@pytest.mark.parametrize("value", NONSENSE)
def test_a_header_that_says_nonsense_is_ignored(value: str) -> None:
    assert parse_reset(value, NOW) is None
    assert parse_retry_after(value, NOW) is None
    budget = read_budget({"x-rate-limit-remaining": value, "x-rate-limit-limit": value}, NOW)
    assert (budget.limit, budget.remaining) == (None, None)


@pytest.mark.parametrize("value", NONSENSE[:5])
def test_a_gate_told_nonsense_keeps_working(value: str) -> None:
    gate, clock = _gate()
    names = ("x-rate-limit-remaining", "x-rate-limit-reset", "x-rate-limit-limit", "retry-after")
    gate.observe(_response(200, dict.fromkeys(names, value)))
    gate.check()
    gate.observe(_response(429, dict.fromkeys(names, value)))  # a 429 naming no usable time waits a minute
    clock.advance(timedelta(seconds=60))
    gate.check()


def test_retry_after_is_seconds_or_a_date() -> None:
    assert parse_retry_after("120", NOW) == NOW + timedelta(seconds=120)
    assert parse_retry_after("Mon, 05 Jan 2026 12:10:00 GMT", NOW) == datetime(2026, 1, 5, 12, 10, tzinfo=UTC)
    assert parse_retry_after("later", NOW) is None


@pytest.mark.parametrize("prefix", ["x-rate-limit-", "X-RateLimit-", "RateLimit-"])
def test_budget_is_read_from_each_prefix(prefix: str) -> None:
    headers = httpx.Headers({f"{prefix}Limit": "300", f"{prefix}Remaining": "12", f"{prefix}Reset": "30"})
    budget = read_budget(headers, NOW)
    assert (budget.limit, budget.remaining, budget.reset_at) == (300, 12, NOW + timedelta(seconds=30))


def _gate() -> tuple[RateGate, ManualClock]:
    clock = ManualClock(NOW)
    return RateGate("x", clock, rng=random.Random(3), prefixes=declaration("x").rate_headers), clock


def _response(status: int, headers: dict[str, str]) -> httpx.Response:
    raw = [(name.encode(), value.encode()) for name, value in headers.items()]  # as sent: UTF-8 and all
    return httpx.Response(status, headers=raw, request=httpx.Request("GET", "http://test/"))


def test_a_spent_budget_closes_the_gate_until_its_reset() -> None:
    gate, clock = _gate()
    reset = int((NOW + timedelta(minutes=3)).timestamp())
    gate.observe(_response(200, {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}))

    with pytest.raises(SourceError) as refused:
        gate.check()
    assert refused.value.kind == "rate_limited"
    assert refused.value.retry_at == NOW + timedelta(minutes=3)
    clock.advance(timedelta(minutes=3))
    gate.check()


def test_a_429_without_headers_waits_a_minute() -> None:
    gate, clock = _gate()
    gate.observe(_response(429, {}))
    with pytest.raises(SourceError):
        gate.check()
    clock.advance(timedelta(seconds=60))
    gate.check()


def test_retry_after_on_a_403_closes_the_gate() -> None:
    gate, clock = _gate()
    gate.observe(_response(403, {"retry-after": "300"}))
    clock.advance(timedelta(seconds=299))
    with pytest.raises(SourceError):
        gate.check()


def test_the_x_daily_window_counts_when_it_is_the_one_spent() -> None:
    gate, _ = _gate()
    daily = int((NOW + timedelta(hours=5)).timestamp())
    gate.observe(
        _response(
            429,
            {
                "x-rate-limit-remaining": "10",
                "x-app-limit-24hour-remaining": "0",
                "x-app-limit-24hour-reset": str(daily),
            },
        )
    )
    assert gate.blocked_until == NOW + timedelta(hours=5)


def test_backoff_grows_with_jitter_up_to_a_cap_and_resets_on_success() -> None:
    gate, clock = _gate()
    delays = [gate.back_off() - NOW for _ in range(12)]
    assert BACKOFF_BASE / 2 <= delays[0] <= BACKOFF_BASE
    assert delays[3] > delays[0]
    assert all(d <= BACKOFF_CAP for d in delays)
    assert len({round(d.total_seconds()) for d in delays[-4:]}) > 1, "capped delays still jitter"
    gate.succeeded()
    clock.advance(BACKOFF_CAP)
    assert gate.back_off() - clock.now() <= BACKOFF_BASE


def test_a_later_block_is_not_shortened_by_an_earlier_one() -> None:
    gate, _ = _gate()
    gate.block(NOW + timedelta(hours=1))
    gate.block(NOW + timedelta(minutes=1))
    assert gate.blocked_until == NOW + timedelta(hours=1)
