"""Hourly and daily rollup buckets made outside the database and loaded into ``samples_hourly`` /
``samples_daily``: what ``import``'s analyst (service/detection/analyst.py) folds while it reads the
file (service/detection/folding.py), so the database need not read every sample again to roll it up.

The buckets go to a spill file as they close, a line of COPY's text format each (the account by its key in
the file, ``RowStream.keys``, times in epoch microseconds): PostgreSQL copies it into a staging table joined
to the load's table of keys (loading.py); for SQLite each line becomes the parameters of one prepared INSERT. Loaded, each bucket has the step of an
imported sample (1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection

from service.store import models
from service.store.loading import SetAside, SqliteTimes, fewer_stored, insert_plainly
from service.store.rollups import ROLLUP_VALUES, bucket_upsert

TAKE_BYTES: Final = 8 << 20  # bytes of the spill per take (SQLite: one executemany, in key order)
# PostgreSQL: staged bytes moved into the rollup table at once while the load waits for the analyst, so
# that little is left to move after it
MOVE_BYTES: Final = 48 << 20
# a spilled line after the account: the bucket, then the rollup values but the step (each import's is 1)
_COLUMNS: Final = ", ".join(("bucket", *ROLLUP_VALUES[:-1]))


class SpillMismatch(ValueError):
    """A spill that does not belong to the rows the load stored."""


class SpillLoad:
    """One spill into ``model``'s table (hourly or daily rollups) in the connection's transaction, loaded a
    part at a time while the analyst still writes it (``take``: the whole lines written so far) and the
    rest once it is done (``finish``); ``ids`` maps the accounts' keys to their ids (PostgreSQL finds them
    in the samples load's table import_keys). A bucket already there is replaced, as rollups.py's
    statement does. Into a table holding fewer rows than the spill brings so far, its secondary
    structures are set aside until ``finish``."""

    def __init__(self, conn: Connection, model: type[models.Base], path: Path, ids: dict[int, int]) -> None:
        self.conn = conn
        self.model = model
        self.path = path
        self.ids = ids
        self._table = models.table(model).name
        self._cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        self._postgres = conn.dialect.name == "postgresql"
        self._offset = 0  # bytes of the spill loaded
        self._staged = 0  # PostgreSQL: bytes copied into the staging table and not moved yet
        self._staged_ever = False  # PostgreSQL: the staging table is made
        self._staging = f"import_{self._table}"  # PostgreSQL: where the spill is copied first
        self._started = False
        self._aside: SetAside | None = None
        self._times = SqliteTimes()
        self._early: set[int] = set()  # SQLite: accounts whose buckets ``take_named`` loaded
        self._early_aside: SetAside | None = None  # the structures set aside by then

    def take(self, limit: int = TAKE_BYTES) -> bool:
        """Load up to about ``limit`` bytes of whole lines written so far; whether there were any.
        PostgreSQL moves them into the rollup table once MOVE_BYTES are staged (the rest at ``finish``)."""
        block = self._read(limit)
        if not block:
            return False
        if self._postgres:
            self._copy(block)
            if self._staged >= MOVE_BYTES:
                self._move()
        else:
            self._set_aside(len(block))
            self._insert(block.decode("ascii").splitlines(keepends=True))
        return True

    def take_named(self) -> None:
        """SQLite, between the load's chunks: the whole lines written so far whose accounts the load has
        named, up to the first it has not yet (the analyst reads ahead), so that the buckets go in while
        the other core still works instead of after the load. These are loaded outside the savepoint
        that takes the rest back: ``take_back`` deletes them. The first waits for half a ``take``'s
        bytes at least, as setting the table's structures aside is judged on it."""
        if self._postgres:
            return
        block = self._read(TAKE_BYTES, advance=False)
        if not block or (not self._started and len(block) < TAKE_BYTES // 2):
            return
        lines = block.decode("ascii").splitlines(keepends=True)
        named = next((n for n, line in enumerate(lines) if _key(line) not in self.ids), len(lines))
        if named:
            self._offset += sum(map(len, lines[:named]))
            self._set_aside(len(block))
            self._early_aside = self._aside
            self._early |= self._insert(lines[:named])

    def take_back(self) -> None:
        """The buckets ``take_named`` loaded deleted again, and the table's structures back if it had set
        them aside: for when what the analyst made does not stand (the savepoint takes back the rest). Its
        accounts were all new to the load, so they had no buckets before it."""
        early = sorted(self._early)
        table = models.table(self.model)
        for start in range(0, len(early), 500):
            self.conn.execute(table.delete().where(table.c.account_id.in_(early[start : start + 500])))
        self._early.clear()
        if self._early_aside is not None:  # (restored within the savepoint, if at all: taken back too)
            self._early_aside.restore()
            self._early_aside = self._aside = None

    def stage(self) -> None:
        """PostgreSQL: the whole lines written so far, copied into the staging table only (a no-op on
        SQLite). What the load does between its chunks, where the server would otherwise wait for the next:
        the rollups' savepoint need not have begun, as the staging table goes with the transaction."""
        if self._postgres:
            while block := self._read(TAKE_BYTES):
                self._copy(block)

    def finish(self) -> None:
        """The rest of the spill (the analyst has closed it), then the table's structures back."""
        while self.take():
            pass
        if self._staged:
            self._move()
        if self._aside is not None:
            self._aside.restore()
            self._aside = None

    def _read(self, limit: int, advance: bool = True) -> bytes:
        try:
            with self.path.open("rb") as spill:
                spill.seek(self._offset)
                block = spill.read(limit)
        except FileNotFoundError:
            return b""  # not made yet, or never: an analyst that failed early
        end = block.rfind(b"\n") + 1  # a line the analyst is still writing waits for the next take
        if advance:
            self._offset += end
        return block[:end]

    def _set_aside(self, size: int) -> None:
        """Before the first rows go into the table: its structures set aside if it holds fewer rows than
        ``size`` bytes of spill bring (a line takes more than 64 bytes)."""
        if not self._started:
            self._started = True
            if fewer_stored(self.conn, self.model, size // 64):
                # the buckets of the new accounts the analyst's findings stand for are all new (and
                # each is spilled once): none can meet another, so the primary key waits too
                self._aside = SetAside(self.conn, self.model, primary=True)

    def _copy(self, block: bytes) -> None:
        if not self._staged_ever:
            self._staged_ever = True
            numbers = ", ".join(f"{column} bigint" for column in _COLUMNS.split(", "))
            self._cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {self._staging} (key bigint, {numbers}) ON COMMIT DROP"
            )
        with self._cursor.copy(f"COPY {self._staging} (key, {_COLUMNS}) FROM STDIN") as copy:
            copy.write(block)
        self._staged += len(block)

    def _move(self) -> None:
        self._set_aside(self._staged)
        head, tail = bucket_upsert(self._table)
        micros = "timestamptz 'epoch' + b.{} * interval '1 microsecond'"
        select = (
            f"SELECT k.id, {micros.format('bucket')}, {micros.format('first_at')}, b.first_followers, "
            f"{micros.format('last_at')}, b.last_followers, b.min_followers, b.max_followers, b.samples, "
            f"b.last_following, b.last_posts, 1 FROM {self._staging} b JOIN import_keys k ON k.key = b.key"
        )
        # the buckets of new accounts (analyst.py's only case) are all new: tried plainly first
        if insert_plainly(self._cursor, head + select) is None:
            self._cursor.execute(head + select + tail)
        self._cursor.execute(f"TRUNCATE {self._staging}")
        self._staged = 0

    def _insert(self, lines: list[str]) -> set[int]:
        """The lines into the table (SQLite); the ids of their accounts."""
        head, tail = bucket_upsert(self._table)
        statement = head + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)" + tail
        ids, text = self.ids, self._times.text
        try:
            # in key order, a batch touches each account's pages once (a third faster than in file order)
            rows: list[tuple[Any, ...]] = sorted(_sqlite_row(line, ids, text) for line in lines)
        except KeyError as exc:  # a file changed meanwhile gave the analyst an account the load never saw
            raise SpillMismatch(f"the spill names an account the load did not read (key {exc})") from None
        self._cursor.executemany(statement, rows)
        return {row[0] for row in rows}


def _key(line: str) -> int:
    """The account's key in the file, of a spilled line."""
    return int(line[: line.index("\t")])


def _sqlite_row(line: str, ids: dict[int, int], text: Callable[[int], str]) -> tuple[object, ...]:
    """A spilled line as the INSERT's parameters: the account's id, times as SQLite stores them."""
    key, bucket, first_at, first, last_at, last, low, high, n, following, posts = line[:-1].split("\t")
    return (
        ids[int(key)], text(int(bucket)), text(int(first_at)), first, text(int(last_at)), last,
        low, high, n, None if following == "\\N" else following, None if posts == "\\N" else posts,
    )  # fmt: skip
