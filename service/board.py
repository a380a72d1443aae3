"""The daemon's in-memory picture of every watched account: what ``/metrics`` and health are built from.

Per account it keeps the latest sample, the state, and an hourly-thinned week of follower counts for the
1 h / 24 h / 7 d changes. Its size is bounded by the watchlist, never by how long the daemon runs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from service.accounts import AccountRef
from service.samples import AccountState, Sample

CHANGE_WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
_KEEP = timedelta(days=7, hours=2)


@dataclass
class AccountView:
    ref: AccountRef
    state: AccountState = AccountState.PENDING
    last_error: str | None = None
    last_polled_at: datetime | None = None
    latest: Sample | None = None
    # (observed_at, followers), at most one point per hour except the newest few minutes
    trail: deque[tuple[datetime, int]] = field(default_factory=deque)

    def add(self, sample: Sample) -> None:
        if self.latest is not None and sample.observed_at <= self.latest.observed_at:
            return
        self.latest = sample
        point = (sample.observed_at, sample.followers)
        if self.trail and _same_hour(self.trail[-1][0], sample.observed_at) and len(self.trail) > 1:
            self.trail[-1] = point
        else:
            self.trail.append(point)
        while self.trail and sample.observed_at - self.trail[0][0] > _KEEP:
            self.trail.popleft()

    def change(self, window: timedelta) -> int | None:
        """Followers gained over ``window`` before the latest sample, None without history that old."""
        if self.latest is None:
            return None
        cutoff = self.latest.observed_at - window
        older = [followers for at, followers in self.trail if at <= cutoff]
        return self.latest.followers - older[-1] if older else None


def _same_hour(a: datetime, b: datetime) -> bool:
    return a.replace(minute=0, second=0, microsecond=0) == b.replace(minute=0, second=0, microsecond=0)


class Board:
    def __init__(self) -> None:
        self._views: dict[AccountRef, AccountView] = {}

    def keep_only(self, refs: set[AccountRef]) -> None:
        """Follow the watchlist: new accounts appear, unwatched ones disappear from metrics."""
        for ref in set(self._views) - refs:
            del self._views[ref]
        for ref in refs - set(self._views):
            self._views[ref] = AccountView(ref)

    def view(self, ref: AccountRef) -> AccountView:
        return self._views.setdefault(ref, AccountView(ref))

    def views(self) -> list[AccountView]:
        return list(self._views.values())

    def record_sample(self, sample: Sample) -> None:
        if sample.account in self._views:
            self._views[sample.account].add(sample)

    def record_state(
        self, ref: AccountRef, state: AccountState, error: str | None, at: datetime
    ) -> AccountState | None:
        """Set the state; returns the state before (None for an account not on the board)."""
        view = self._views.get(ref)
        if view is None:
            return None
        before = view.state
        view.state, view.last_error, view.last_polled_at = state, error, at
        return before
