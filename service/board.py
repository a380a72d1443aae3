"""The daemon's in-memory picture of every watched account: what ``/metrics`` and health are built from.

Per account it keeps the latest sample, the state, and a thinned trail of follower counts for the
1 h / 24 h / 7 d changes: one point an hour for the last 26 hours, one every three hours before that, back
to a little over a week, in two arrays of machine numbers (about 1 KB an account). Its size is bounded by
the watchlist, never by how long the daemon runs. ``dump``/``load`` carry a trail across restarts.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from service.accounts import AccountRef
from service.samples import AccountState, Sample

CHANGE_WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
REACH = timedelta(days=7, hours=4)  # how far back the trail keeps points (one older point stays besides)
_KEEP = REACH.total_seconds()
_FINE = 26 * 3600.0  # hourly points this far back, three-hourly before
_FORMAT = 1


@dataclass(slots=True)
class AccountView:
    ref: AccountRef
    state: AccountState = AccountState.PENDING
    last_error: str | None = None
    last_polled_at: datetime | None = None
    latest: Sample | None = None
    times: array[float] = field(default_factory=lambda: array("d"))  # epoch seconds, oldest first
    counts: array[int] = field(default_factory=lambda: array("q"))

    def add(self, sample: Sample) -> None:
        if self.latest is not None and sample.observed_at <= self.latest.observed_at:
            return
        self.latest = sample
        self._extend(sample.observed_at.timestamp(), sample.followers)

    def _extend(self, at: float, followers: int) -> None:
        times, counts = self.times, self.counts
        # The newest point moves forward within its hour; a new hour starts a new point.
        if len(times) > 1 and at // 3600 == times[-1] // 3600:
            times[-1], counts[-1] = at, followers
        else:
            times.append(at)
            counts.append(followers)
        self._thin(at)

    def _thin(self, now: float) -> None:
        times, counts = self.times, self.counts
        drop = bisect_right(times, now - _KEEP)
        if drop > 1:  # keep one point older than the longest window
            del times[: drop - 1]
            del counts[: drop - 1]
        coarse = bisect_right(times, now - _FINE)
        i = 1
        while i < coarse:  # before the last 26 hours, at most one point per three hours
            if times[i] // 10_800 == times[i - 1] // 10_800:
                del times[i - 1]
                del counts[i - 1]
                coarse -= 1
            else:
                i += 1

    def change(self, window: timedelta) -> int | None:
        """Followers gained over ``window`` before the latest sample, None without history that old."""
        return self.changes_over({"": window})[""]

    def changes(self) -> dict[str, int | None]:
        return self.changes_over(CHANGE_WINDOWS)

    def changes_over(self, windows: dict[str, timedelta]) -> dict[str, int | None]:
        latest = self.latest
        if latest is None:
            return dict.fromkeys(windows)
        times, counts = self._trail()
        end = latest.observed_at.timestamp()
        found: dict[str, int | None] = {}
        for name, window in windows.items():
            older = bisect_right(times, end - window.total_seconds())
            found[name] = latest.followers - counts[older - 1] if older else None
        return found

    def _trail(self) -> tuple[array[float], array[int]]:
        """Copies of the two arrays that match: /metrics reads them from another thread while the event loop
        may be adding a point to them."""
        for _ in range(10):
            times, counts = self.times[:], self.counts[:]
            if len(times) == len(counts):
                return times, counts
        return array("d"), array("q")

    def dump(self) -> bytes:
        """The trail, for the next start."""
        n = len(self.times)
        return struct.pack(f"<BI{n}d{n}q", _FORMAT, n, *self.times, *self.counts)

    def load(self, blob: bytes) -> None:
        """Take a dumped trail back; a blob of another format is ignored (the trail then starts afresh)."""
        if len(blob) < 5 or blob[0] != _FORMAT:
            return
        (n,) = struct.unpack_from("<I", blob, 1)
        if len(blob) != 5 + 16 * n:
            return
        values = struct.unpack_from(f"<{n}d{n}q", blob, 5)
        self.times = array("d", values[:n])
        self.counts = array("q", values[n:])


class Board:
    def __init__(self) -> None:
        self._views: dict[AccountRef, AccountView] = {}

    def keep_only(self, refs: set[AccountRef]) -> None:
        """Follow the watchlist: new accounts appear, unwatched ones disappear from metrics."""
        for ref in set(self._views) - refs:
            del self._views[ref]
        for ref in refs - set(self._views):
            self._views[ref] = AccountView(ref)

    def add(self, refs: set[AccountRef]) -> None:
        for ref in refs - self._views.keys():
            self._views[ref] = AccountView(ref)

    def remove(self, refs: set[AccountRef]) -> None:
        for ref in refs:
            self._views.pop(ref, None)

    def view(self, ref: AccountRef) -> AccountView:
        return self._views.setdefault(ref, AccountView(ref))

    def find(self, ref: AccountRef) -> AccountView | None:
        return self._views.get(ref)

    def views(self) -> list[AccountView]:
        return list(self._views.values())

    def record_sample(self, sample: Sample) -> None:
        view = self._views.get(sample.account)
        if view is not None:
            view.add(sample)

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
