"""One rate gate per (platform, credential): what the platform said about our budget, and when we may ask again.

Platforms announce their limits in different dialects; each declares its header prefixes
(``Platform.rate_headers``): ``x-rate-limit-*`` (X, epoch seconds), ``x-ratelimit-*`` (GitHub epoch
seconds, Mastodon ISO 8601 with microseconds), ``ratelimit-*`` (Twitch and atproto epoch seconds, the IETF
draft delta-seconds); ``Retry-After`` (seconds or an HTTP date) is read for all. A header that says
something impossible (``²``, ``1e400``, a year 99999) is ignored, never raised. A gate refuses to send
while the platform has told us to wait (429, quota, an exhausted budget) or while it backs off after 5xx
answers and network failures.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from service.clock import Clock
from service.sources.base import SourceError

if TYPE_CHECKING:
    import httpx

HEALTHY_KEPT = 64  # recent batches remembered as answered
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(minutes=30)
DEFAULT_WAIT = timedelta(minutes=1)  # a 429 that names no reset time (GitHub's advice for secondary limits)
EPOCH_THRESHOLD = 1_000_000_000  # a reset number this large is a Unix time, a smaller one a delay in seconds
PREFIXES = ("x-rate-limit-", "x-ratelimit-", "ratelimit-")  # every dialect, for a gate told no prefixes
DIGITS = re.compile(r"[0-9]{1,15}")  # str.isdigit() accepts "²", which int() refuses
LATEST = 1e11  # a reset beyond the year 5000 is nonsense


_batches = itertools.count(1)


def next_batch() -> int:
    """A number for one ``fetch``: its own requests are not refused by a backoff one of them started."""
    return next(_batches)


class BudgetListener(Protocol):
    def budget(
        self, platform: str, remaining: int | None, reset_at: datetime | None, limit: int | None = None
    ) -> None: ...


@dataclass(frozen=True)
class Budget:
    """What one response said: requests left in the window, the window size and when it refills."""

    limit: int | None
    remaining: int | None
    reset_at: datetime | None


def read_budget(headers: Mapping[str, str], now: datetime, prefixes: Sequence[str] = PREFIXES) -> Budget:
    for prefix in prefixes:
        remaining = _int(headers.get(f"{prefix}remaining"))
        if remaining is not None:
            return Budget(
                limit=_int(headers.get(f"{prefix}limit")),
                remaining=remaining,
                reset_at=parse_reset(headers.get(f"{prefix}reset"), now),
            )
    return Budget(None, None, None)


def parse_reset(value: str | None, now: datetime) -> datetime | None:
    """A reset header in any dialect: Unix seconds, delta seconds, ISO 8601 or an HTTP date."""
    if value is None or not value.strip() or not value.isascii():
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        return _parse_date(value)
    if not 0 <= number <= LATEST:  # also false for NaN
        return None
    if number >= EPOCH_THRESHOLD:
        return datetime.fromtimestamp(number, UTC)
    return now + timedelta(seconds=number)


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """``Retry-After``: delay seconds or an HTTP date (RFC 9110), never an epoch."""
    if value is None or not value.strip() or not value.isascii():
        return None
    value = value.strip()
    if DIGITS.fullmatch(value):
        return now + timedelta(seconds=min(int(value), 7 * 86400))
    return _parse_date(value)


def _spent_until(headers: Mapping[str, str], now: datetime, prefixes: Sequence[str]) -> datetime | None:
    """The reset of whichever announced window is empty (X adds a daily app window to its 15-minute one)."""
    for prefix in prefixes:
        if _int(headers.get(f"{prefix}remaining")) == 0:
            reset_at = parse_reset(headers.get(f"{prefix}reset"), now)
            if reset_at is not None:
                return reset_at
    return None


def _parse_date(value: str) -> datetime | None:
    from email.utils import parsedate_to_datetime  # here: the email package is slow to import

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # a date at the edge of the calendar, moved by its offset
        return None


def _int(value: str | None) -> int | None:
    if value is None or not DIGITS.fullmatch(value.strip()):
        return None
    return int(value.strip())


class RateGate:
    """Whether one platform credential may send now; updated from every answer it gets."""

    def __init__(
        self,
        platform: str,
        clock: Clock,
        *,
        listener: BudgetListener | None = None,
        rng: random.Random | None = None,
        prefixes: Sequence[str] = PREFIXES,
    ) -> None:
        self.platform = platform
        self._clock = clock
        self._prefixes = (*prefixes,)
        self._listener = listener
        self._rng = rng or random.Random()
        self.budget = Budget(None, None, None)
        self.blocked_until: datetime | None = None  # the platform said to wait (429, quota, Retry-After)
        self.backoff_until: datetime | None = None  # we chose to wait (5xx, timeouts, bad credential)
        self._backoff_batch: int | None = None
        # batches with an answered request: several run at once, and each one's own failures are about its
        # accounts, not the platform
        self._healthy_batches: OrderedDict[int, None] = OrderedDict()
        self._failures = 0

    def now(self) -> datetime:
        return self._clock.now()

    def check(self, batch: int | None = None) -> None:
        """Raise ``SourceError`` instead of letting a request out too early.

        A backoff does not stop the rest of the batch that started it: one account's 5xx among forty
        per-account lookups waits for the next poll, not the other thirty-nine.
        """
        now = self._clock.now()
        if self.blocked_until is not None and now < self.blocked_until:
            raise SourceError(
                f"{self.platform}: waiting until {self.blocked_until:%H:%M:%S} UTC before the next request",
                kind="rate_limited",
                retry_at=self.blocked_until,
                deferred=True,
            )
        reset_at = self.budget.reset_at
        if self.budget.remaining == 0 and reset_at is not None and now < reset_at:
            raise SourceError(
                f"{self.platform}: the rate limit is spent until {reset_at:%H:%M:%S} UTC",
                kind="rate_limited",
                retry_at=reset_at,
                deferred=True,
            )
        backoff = self.backoff_until
        if backoff is not None and now < backoff and (batch is None or batch != self._backoff_batch):
            raise SourceError(
                f"{self.platform}: backing off after failures until {backoff:%H:%M:%S} UTC",
                kind="backoff",
                retry_at=backoff,
                deferred=True,
            )

    def observe(self, response: httpx.Response) -> None:
        """Take in the budget headers; a 429 or a ``Retry-After`` on an error closes the gate."""
        now = self._clock.now()
        self.record(read_budget(response.headers, now, self._prefixes))
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        if response.status_code == 429 or (retry_after is not None and response.status_code >= 400):
            spent = _spent_until(response.headers, now, self._prefixes)
            self.block(retry_after or spent or now + DEFAULT_WAIT)

    def record(self, budget: Budget) -> None:
        """A budget the platform reported (in headers, or in the body as GitHub's GraphQL ``rateLimit``)."""
        if budget.remaining is None:
            return
        self.budget = budget
        if self._listener is not None:
            self._listener.budget(self.platform, budget.remaining, budget.reset_at, budget.limit)

    def block(self, until: datetime) -> datetime:
        """No request before ``until`` (a 429, a spent quota); returns ``until`` for ``SourceError.retry_at``."""
        if self.blocked_until is None or until > self.blocked_until or self.blocked_until < self._clock.now():
            self.blocked_until = until
        return self.blocked_until

    def back_off(self, batch: int | None = None) -> datetime:
        """Exponential backoff with jitter after a 5xx, timeout or connection failure; one step per batch.

        No backoff when other requests of the same batch were answered: then the failure is about one
        account (a lookup that breaks on the server), and the platform must not stall for everyone.
        """
        now = self._clock.now()
        if batch is not None and batch in self._healthy_batches:
            return now
        if (
            batch is not None
            and batch == self._backoff_batch
            and self.backoff_until
            and self.backoff_until > now
        ):
            return self.backoff_until
        self._failures += 1
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(self._failures - 1, 16))
        self.backoff_until = now + ceiling * self._rng.uniform(0.5, 1.0)
        self._backoff_batch = batch
        return self.backoff_until

    def succeeded(self, batch: int | None = None) -> None:
        self._failures = 0
        if batch is not None:
            self._healthy_batches[batch] = None
            while len(self._healthy_batches) > HEALTHY_KEPT:
                self._healthy_batches.popitem(last=False)
            if batch == self._backoff_batch:
                self.backoff_until = None
