"""The inner loop of ``import``'s analyst (analyst.py), compiled with the engine: each row of the file, in
time order, through the detectors and into its account's hourly and daily rollup bucket.

A bucket holds what rollups.py's statement gives it: the first and last sample's time and count, the
lowest and highest count, how many samples, and the last following and posts counts that were not null
(-1: none yet). An hour is folded row by row; a day from its hours as each closes (the same values: the
first of the first hour, the last of the last, the lowest of the lows...). A closed bucket goes to its
spill; memory holds one open bucket of each size per account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from service.accounts import AccountRef
from service.detection.base import Detection
from service.detection.csvinput import Row
from service.detection.engine import DetectionEngine

HOUR_US: Final = 3_600_000_000
DAY_US: Final = 24 * HOUR_US

# bucket start, first_at, first, last_at, last, lowest, highest, samples, following, posts (epoch µs)
Bucket = list[int]
Spill = Callable[[str, Bucket], None]


class Buckets:
    """Every account's open hour and day; a closed one is handed to ``hourly`` or ``daily``."""

    def __init__(self, hourly: Spill, daily: Spill) -> None:
        self._hours: dict[str, Bucket] = {}
        self._days: dict[str, Bucket] = {}
        self._hourly = hourly
        self._daily = daily

    def add(self, name: str, at: int, followers: int, following: int, posts: int) -> None:
        """The account's next row (times of one account in order; a repeated time is the database's
        duplicate, which keeps the first). ``following``/``posts`` -1 when the row has none."""
        hour = self._hours.get(name)
        start = at - at % HOUR_US
        if hour is None or hour[0] != start:
            if hour is not None:
                self._close_hour(name, hour)
            self._hours[name] = [
                start,
                at,
                followers,
                at,
                followers,
                followers,
                followers,
                1,
                following,
                posts,
            ]
            return
        if at == hour[3]:
            return
        hour[3] = at
        hour[4] = followers
        if followers < hour[5]:
            hour[5] = followers
        elif followers > hour[6]:
            hour[6] = followers
        hour[7] += 1
        if following >= 0:
            hour[8] = following
        if posts >= 0:
            hour[9] = posts

    def close(self) -> None:
        """Hand over the buckets still open (at the end of the file)."""
        for name, hour in self._hours.items():
            self._close_hour(name, hour)
        self._hours.clear()
        for name, day in self._days.items():
            self._daily(name, day)
        self._days.clear()

    def _close_hour(self, name: str, hour: Bucket) -> None:
        self._hourly(name, hour)
        day = self._days.get(name)
        start = hour[0] - hour[0] % DAY_US
        if day is None or day[0] != start:
            if day is not None:
                self._daily(name, day)
            day = self._days[name] = hour.copy()
            day[0] = start
            return
        day[3] = hour[3]
        day[4] = hour[4]
        day[5] = min(day[5], hour[5])
        day[6] = max(day[6], hour[6])
        day[7] += hour[7]
        if hour[8] >= 0:
            day[8] = hour[8]
        if hour[9] >= 0:
            day[9] = hour[9]


class Reading:
    """The rows of one file through one engine and its buckets, chunk by chunk; ``in_order`` turns False
    (and stays) at the first row whose time is before the row before it, whatever the accounts."""

    def __init__(self, engine: DetectionEngine, buckets: Buckets, accounts: dict[str, AccountRef]) -> None:
        self.engine = engine
        self.buckets = buckets
        self.accounts = accounts  # platform:handle -> account, as the stream fills it
        self.changed: dict[str, Detection] = {}  # the latest version of each detection
        self.in_order = True
        self._newest = -(2**62)

    def read(self, rows: list[Row]) -> None:
        if not self.in_order:
            return
        engine, add, accounts, changed = self.engine, self.buckets.add, self.accounts, self.changed
        newest = self._newest
        for name, at, followers, following, posts in rows:
            if at < newest:
                self.in_order = False
                return
            newest = at
            add(name, at, followers, -1 if following is None else following, -1 if posts is None else posts)
            for detection in engine.observe_values(accounts[name], at / 1e6, followers, following, 1):
                changed[detection.key] = detection
        self._newest = newest
