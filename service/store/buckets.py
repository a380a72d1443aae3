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
from typing import Final

from sqlalchemy import Connection

from service.store import models
from service.store.loading import SetAside, SqliteTimes, fewer_stored, insert_plainly
from service.store.rollups import ROLLUP_VALUES, bucket_upsert

SQLITE_BYTES: Final = 1 << 20  # SQLite: bytes of the spill per executemany
COPY_BLOCK: Final = 1 << 20  # PostgreSQL: bytes of the spill per COPY write
# a spilled line after the account: the bucket, then the rollup values but the step (each import's is 1)
_COLUMNS: Final = ", ".join(("bucket", *ROLLUP_VALUES[:-1]))


def load_buckets(conn: Connection, model: type[models.Base], path: Path, ids: dict[int, int]) -> None:
    """The spilled buckets into ``model``'s table (hourly or daily rollups) in the connection's
    transaction, their accounts' ids by key in ``ids`` (and, on PostgreSQL, in the table import_keys of
    the samples' load); a bucket already there is replaced, as rollups.py's statement does. Into a table that
    holds fewer rows than the spill brings, its secondary structures are set aside meanwhile."""
    aside = SetAside(conn, model) if fewer_stored(conn, model, _lines(path)) else None
    if conn.dialect.name == "postgresql":
        _load_copy(conn, models.table(model).name, path)
    else:
        _load_sqlite(conn, models.table(model).name, path, ids)
    if aside is not None:
        aside.restore()


def _lines(path: Path) -> int:
    """The spill's lines, estimated low from its size (a line takes more than 64 bytes)."""
    return path.stat().st_size // 64


def _load_copy(conn: Connection, table: str, path: Path) -> None:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    numbers = ", ".join(f"{column} bigint" for column in _COLUMNS.split(", "))
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS import_buckets (key bigint, {numbers}) ON COMMIT DROP"
    )
    copy_in = f"COPY import_buckets (key, {_COLUMNS}) FROM STDIN"
    with cursor.copy(copy_in) as copy, path.open("rb") as spill:
        while block := spill.read(COPY_BLOCK):
            copy.write(block)
    head, tail = bucket_upsert(table)
    micros = "timestamptz 'epoch' + b.{} * interval '1 microsecond'"
    select = (
        f"SELECT k.id, {micros.format('bucket')}, {micros.format('first_at')}, b.first_followers, "
        f"{micros.format('last_at')}, b.last_followers, b.min_followers, b.max_followers, b.samples, "
        "b.last_following, b.last_posts, 1 FROM import_buckets b JOIN import_keys k ON k.key = b.key"
    )
    # the buckets of new accounts (analyst.py's only case) are all new: tried plainly first
    if insert_plainly(cursor, head + select) is None:
        cursor.execute(head + select + tail)
    cursor.execute("TRUNCATE import_buckets")


def _load_sqlite(conn: Connection, table: str, path: Path, ids: dict[int, int]) -> None:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    head, tail = bucket_upsert(table)
    statement = head + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)" + tail
    times = SqliteTimes()
    with path.open(encoding="utf-8") as spill:
        while lines := spill.readlines(SQLITE_BYTES):
            # in key order, a batch touches each account's pages once (a third faster than in file order)
            cursor.executemany(statement, sorted(_sqlite_row(line, ids, times.text) for line in lines))


def _sqlite_row(line: str, ids: dict[int, int], text: Callable[[int], str]) -> tuple[object, ...]:
    """A spilled line as the INSERT's parameters: the account's id, times as SQLite stores them."""
    key, bucket, first_at, first, last_at, last, low, high, n, following, posts = line[:-1].split("\t")
    return (
        ids[int(key)], text(int(bucket)), text(int(first_at)), first, text(int(last_at)), last,
        low, high, n, None if following == "\\N" else following, None if posts == "\\N" else posts,
    )  # fmt: skip
