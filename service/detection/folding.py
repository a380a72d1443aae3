"""The inner loop of ``import``'s analyst (analyst.py), compiled with the engine: each row of the file, in
time order, through the detectors and into its account's hourly and daily rollup bucket.

A bucket holds what rollups.py's statement gives it: the first and last sample's time and count, the
lowest and highest count, how many samples, and the last following and posts counts that were not null.
An hour is folded row by row; a day from its hours as each closes (the same values: the first of the
first hour, the last of the last, the lowest of the lows...). A closed bucket is written to its spill as
a line of COPY's text format (service/store/buckets.py loads them); memory holds one open bucket of each
size per account.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from service.accounts import AccountRef
from service.detection.base import Detection
from service.detection.csvinput import Row
from service.detection.engine import DetectionEngine

HOUR_US: Final = 3_600_000_000
DAY_US: Final = 24 * HOUR_US

Write = Callable[[str], object]  # a spill file's write


class Bucket:
    """One account's hour or day so far (times in epoch microseconds; following/posts -1: none yet)."""

    def __init__(self, start: int, at: int, followers: int, following: int, posts: int) -> None:
        self.start = start
        self.first_at = at
        self.first = followers
        self.last_at = at
        self.last = followers
        self.low = followers
        self.high = followers
        self.samples = 1
        self.following = following
        self.posts = posts

    def add(self, at: int, followers: int, following: int, posts: int) -> bool:
        """The account's next row into the bucket: False (and nothing changed) when it repeats a time."""
        if at == self.last_at:
            return False  # the database keeps the first of two samples of one time
        self.last_at = at
        self.last = followers
        if followers < self.low:
            self.low = followers
        elif followers > self.high:
            self.high = followers
        self.samples += 1
        if following >= 0:
            self.following = following
        if posts >= 0:
            self.posts = posts
        return True

    def merge(self, hour: Bucket) -> None:
        """A later hour of this day."""
        self.last_at = hour.last_at
        self.last = hour.last
        self.low = min(self.low, hour.low)
        self.high = max(self.high, hour.high)
        self.samples += hour.samples
        if hour.following >= 0:
            self.following = hour.following
        if hour.posts >= 0:
            self.posts = hour.posts

    def day(self) -> Bucket:
        """A day that begins with this hour."""
        day = Bucket(self.start - self.start % DAY_US, self.first_at, self.first, -1, -1)
        day.merge(self)
        day.samples = self.samples
        return day

    def line(self, account: str) -> str:
        """A line of COPY's text format: the account's fields, then the bucket's (\\N: none)."""
        following = "\\N" if self.following < 0 else str(self.following)
        posts = "\\N" if self.posts < 0 else str(self.posts)
        return (
            f"{account}\t{self.start}\t{self.first_at}\t{self.first}\t{self.last_at}\t{self.last}\t"
            f"{self.low}\t{self.high}\t{self.samples}\t{following}\t{posts}\n"
        )


class OutOfOrder(ValueError):
    """Rows handed to ``Buckets.fold`` that go back in time."""


class Buckets:
    """Every account's open hour and day; a closed one becomes a line of ``hourly`` or ``daily``.
    ``fields`` gives an account's first field of the line (its key in the file), once each."""

    def __init__(self, hourly: Write, daily: Write, fields: Callable[[str], str]) -> None:
        self._hours: dict[str, Bucket] = {}
        self._days: dict[str, Bucket] = {}
        self._fields: dict[str, str] = {}
        self._hourly = hourly
        self._daily = daily
        self._fields_of = fields
        self._newest = -(2**62)  # the newest row folded (``fold``)
        self.repeats = 0  # rows that repeated their account's time (the database keeps the first)

    def add(self, name: str, at: int, followers: int, following: int, posts: int) -> None:
        """The account's next row (times of one account in order). ``following``/``posts`` -1: none."""
        hour = self._hours.get(name)
        start = at - at % HOUR_US
        if hour is None or hour.start != start:
            if hour is not None:
                self._close_hour(name, hour)
            self._hours[name] = Bucket(start, at, followers, following, posts)
        elif not hour.add(at, followers, following, posts):
            self.repeats += 1

    def fold(self, rows: list[Row]) -> None:
        """Rows in time order, as ``add`` takes them; raises ``OutOfOrder`` at a row older than the one
        before it, whatever the accounts (what is folded then is of no use)."""
        newest = self._newest
        for name, at, followers, following, posts in rows:
            if at < newest:
                raise OutOfOrder(f"a row of {at} after one of {newest}")
            newest = at
            self.add(
                name, at, followers, -1 if following is None else following, -1 if posts is None else posts
            )
        self._newest = newest

    def close(self) -> None:
        """Hand over the buckets still open (at the end of the file)."""
        for name, hour in self._hours.items():
            self._close_hour(name, hour)
        self._hours.clear()
        for name, day in self._days.items():
            self._daily(day.line(self._account(name)))
        self._days.clear()

    def _close_hour(self, name: str, hour: Bucket) -> None:
        account = self._account(name)
        self._hourly(hour.line(account))
        day = self._days.get(name)
        if day is not None and day.start == hour.start - hour.start % DAY_US:
            day.merge(hour)
            return
        if day is not None:
            self._daily(day.line(account))
        self._days[name] = hour.day()

    def _account(self, name: str) -> str:
        fields = self._fields.get(name)
        if fields is None:
            fields = self._fields[name] = self._fields_of(name)
        return fields


class Reading:
    """The rows of one file through one engine and its buckets, chunk by chunk; ``in_order`` turns False
    (and stays) at the first row whose time is before the row before it, whatever the accounts."""

    def __init__(
        self, engine: DetectionEngine, buckets: Buckets | None, accounts: dict[str, AccountRef]
    ) -> None:
        self.engine = engine
        self.buckets = buckets  # None: the rows are folded elsewhere (by the loading process)
        self.accounts = accounts  # platform:handle -> account, as the stream fills it
        self.changed: dict[str, Detection] = {}  # the latest version of each detection
        # when each was first detected: stored rows keep their first detected_at (the daemon writes every
        # version, and the upsert leaves it), while ``changed`` keeps only the latest version
        self.first_detected: dict[str, datetime] = {}
        self.rows = 0  # rows read
        self.in_order = True
        self._newest = -(2**62)

    def read(self, rows: list[Row]) -> None:
        if not self.in_order:
            return
        if self.buckets is not None:
            try:
                self.buckets.fold(rows)
            except OutOfOrder:
                self.in_order = False
                return
        engine, accounts, changed, first = self.engine, self.accounts, self.changed, self.first_detected
        newest = self._newest
        self.rows += len(rows)
        for name, at, followers, following, _ in rows:
            if at < newest:
                self.in_order = False
                return
            newest = at
            for detection in engine.observe_values(accounts[name], at / 1e6, followers, following, 1):
                changed[detection.key] = detection
                if detection.key not in first:
                    first[detection.key] = detection.detected_at
        self._newest = newest
