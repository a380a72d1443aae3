"""Bulk loading for ``flockwatch import``: samples streamed into the caller's transaction, and read back in
time slices for detection.

Samples arrive as plain tuples ``(platform:handle, epoch microseconds, followers, following, posts)``,
their accounts named in the database by their keys in the file (``RowStream.keys``). SQLite takes them
with one INSERT over a JSON array per chunk; PostgreSQL takes them with COPY into a temporary staging
table, moved into ``samples`` by one INSERT ... SELECT ... ON CONFLICT DO NOTHING every ``FLUSH_ROWS``
rows. Either way a sample already stored (same account and time) is kept as it was, and everything
happens in the transaction of the connection given: the caller commits or rolls back the whole file.

Into a samples table that holds fewer rows than the file brings (a first bulk load), the secondary
structures of ``samples`` are set aside for the load and rebuilt at its end, in the same transaction:
the time index (both databases) and, on PostgreSQL, the foreign key to ``accounts``, whose check per row
was most of the move's time. Built once over the whole table they cost a fraction of their upkeep row by
row (1.34 million rows: 14.0 CPU-s of SQLite work down to 9.3 with the index rebuilt; PostgreSQL's moves
18.7 s down to 6.8). On PostgreSQL the primary key waits too while the loading process, which folds every
row into rollup buckets as it reads them, has met no row repeating its account's time and no account with
stored samples: a key built once took 10,000 accounts x 7 days of samples from 32 to 23 CPU-s of the
server's. Before the first row that could repeat one, the key is built over what is there, and conflicts
are handled row by row from then on. A failed import rolls the rebuild back with everything else, so the
table keeps its index and keys. While such a load runs, PostgreSQL readers of ``samples`` wait for it (the table is locked
while its key is away); SQLite readers see the table as it was, as always.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import Connection, func, select, update
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex

from service.store import changes, models

# (account as platform:handle, epoch microseconds, followers, following, posts), as the CSV reader yields it
LoadRow = tuple[str, int, int, int | None, int | None]
FLUSH_ROWS: Final = 500_000  # PostgreSQL: staged rows moved into samples per statement
_SECOND: Final = 1_000_000


class SampleLoader(ABC):
    """Adds samples inside the connection's transaction; ``added`` counts those that were new.

    ``encode`` turns rows into one payload for the database (pure, safe to run in another thread, so the
    file is read while the database works); ``load`` hands a payload to the database in one statement,
    which finds each row's account by its key in the file (``identify`` gives the ids of its accounts
    first). Keys are small integers, found through a temporary table's primary key: a join cheaper than
    by platform and handle (SQLite: 1.4 of 5.4 CPU-s per 2 million rows).
    """

    KEYS: str  # the statement creating the temporary table import_keys (key, id)

    def __init__(
        self,
        conn: Connection,
        keys: dict[str, int],
        expected_rows: int = 0,
        unique: Callable[[], bool] | None = None,
    ) -> None:
        self.conn = conn
        self.added = 0
        self.ids: dict[int, int] = {}  # an account's key in the file -> its id
        self._keys = keys  # platform:handle -> the account's key in the file (RowStream.keys)
        self._cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        # whether every row handed over so far is new to the table and named once in the file
        self._unique = unique
        self._aside = (
            SetAside(conn, models.Sample, primary=unique is not None)
            if fewer_stored(conn, models.Sample, expected_rows)
            else None
        )
        self._cursor.execute(self.KEYS)

    @abstractmethod
    def encode(self, rows: Sequence[LoadRow]) -> str: ...

    @abstractmethod
    def load(self, payload: str) -> None: ...

    def identify(self, ids: dict[int, int]) -> None:
        """The ids of accounts by their keys in the file: before a payload that names them is loaded."""
        self.ids.update(ids)
        marker = "?" if self.conn.dialect.name == "sqlite" else "%s"
        self._cursor.executemany(
            f"INSERT INTO import_keys (key, id) VALUES ({marker}, {marker})", ids.items()
        )

    def finish(self) -> int:
        """Every row handed over is in ``samples`` (their structures may still be set aside): how many
        were new."""
        return self.added

    def restore(self) -> None:
        """The samples table's structures back, if they were set aside for the load."""
        if self._aside is not None:
            self._aside.restore()
            self._aside = None


def loader_for(
    conn: Connection, keys: dict[str, int], expected_rows: int = 0, unique: Callable[[], bool] | None = None
) -> SampleLoader:
    """The loader of the connection's database, for rows whose accounts have these keys in the file;
    ``expected_rows`` (the file's rows, estimated low) decides whether the samples table's secondary
    structures are set aside for the load. On PostgreSQL its primary key is too, while ``unique`` (asked
    before each move, about every row handed over until then) says no row can repeat another."""
    if conn.dialect.name == "postgresql":
        return PostgresLoader(conn, keys, expected_rows, unique)
    if conn.dialect.name == "sqlite":
        return SqliteLoader(conn, keys, expected_rows)
    raise ValueError(f"unsupported database: {conn.dialect.name} (use SQLite or PostgreSQL)")


class SqliteLoader(SampleLoader):
    """A chunk is one JSON array handed to one INSERT ... SELECT over ``json_each``: SQLite does the
    whole chunk in one call, without a Python round trip per row."""

    # CROSS JOIN keeps json_each the outer loop (file order: the first of two rows of one account and
    # time is kept) and finds each account by its key.
    INSERT: Final = (
        "INSERT INTO samples (account_id, observed_at, followers, following, posts, followers_step) "
        "SELECT k.id, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, 1 "
        "FROM json_each(?) AS j CROSS JOIN import_keys AS k ON k.key = j.value ->> 0 "
        "WHERE true ON CONFLICT (account_id, observed_at) DO NOTHING"
    )
    # a temporary table outlives a rolled back transaction on a pooled connection: emptied first
    KEYS = "CREATE TEMPORARY TABLE IF NOT EXISTS import_keys (key INTEGER PRIMARY KEY, id INTEGER NOT NULL)"

    def __init__(self, conn: Connection, keys: dict[str, int], expected_rows: int = 0) -> None:
        super().__init__(conn, keys, expected_rows)
        self._cursor.execute("DELETE FROM import_keys")
        # A bigger page cache for this connection only: a bulk load touches one index page per account.
        self._cursor.execute("PRAGMA cache_size = -131072")  # 128 MiB
        self._times = SqliteTimes()

    def encode(self, rows: Sequence[LoadRow]) -> str:
        # A row is a few dictionary hits and one f-string: no call of ours unless an account or a time is
        # new (a call per field cost 1.5-2.2 µs a row, most of the reader thread's time besides parsing).
        keys = self._keys
        texts, text = self._times.known, self._times.text
        return (
            "["
            + ",".join(
                [
                    f'[{keys[name]},"{texts.get(us) or text(us)}",{f},'
                    f"{_JSON_NULL if g is None else g},{_JSON_NULL if p is None else p}]"
                    for name, us, f, g, p in rows
                ]
            )
            + "]"
        )

    def load(self, payload: str) -> None:
        self._cursor.execute(self.INSERT, (payload,))
        self.added += max(self._cursor.rowcount, 0)


class PostgresLoader(SampleLoader):
    """Chunks go by COPY into a temporary staging table; every FLUSH_ROWS rows one INSERT ... SELECT
    moves them into samples. The move is first tried without ON CONFLICT (a third cheaper, and right for
    a file that repeats nothing already stored); a conflict rolls that try back to a savepoint and redoes
    it with ON CONFLICT DO NOTHING in file order (of two rows of one account and time the first is kept),
    as every later move then is."""

    STAGING: Final = (
        "CREATE TEMPORARY TABLE IF NOT EXISTS import_staging (seq bigint, key bigint, us bigint, "
        "followers bigint, following bigint, posts bigint) ON COMMIT DROP"
    )
    MOVE: Final = (
        "INSERT INTO samples (account_id, observed_at, followers, following, posts, followers_step) "
        "SELECT k.id, timestamptz 'epoch' + s.us * interval '1 microsecond', s.followers, s.following, "
        "s.posts, 1 FROM import_staging s JOIN import_keys k ON k.key = s.key"
    )
    IN_ORDER: Final = " ORDER BY s.seq ON CONFLICT (account_id, observed_at) DO NOTHING"
    KEYS = (
        "CREATE TEMPORARY TABLE IF NOT EXISTS import_keys (key bigint PRIMARY KEY, id bigint NOT NULL) "
        "ON COMMIT DROP"
    )

    def __init__(
        self,
        conn: Connection,
        keys: dict[str, int],
        expected_rows: int = 0,
        unique: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(conn, keys, expected_rows, unique)
        self._cursor.execute(self.STAGING)
        self._staged = 0
        self._seq = 0
        self._conflicts = False  # once a move met a stored sample, every move skips them

    def encode(self, rows: Sequence[LoadRow]) -> str:
        keys, start = self._keys, self._seq
        self._seq += len(rows)
        return "".join(
            f"{start + i}\t{keys[name]}\t{us}\t{f}\t{_copy(g)}\t{_copy(p)}\n"
            for i, (name, us, f, g, p) in enumerate(rows)
        )

    def load(self, payload: str) -> None:
        copy_in = "COPY import_staging (seq, key, us, followers, following, posts) FROM STDIN"
        with self._cursor.copy(copy_in) as copy:
            copy.write(payload)
        self._staged += payload.count("\n")
        if self._staged >= FLUSH_ROWS:
            self._move()

    def finish(self) -> int:
        if self._staged:
            self._move()
        return super().finish()

    def _move(self) -> None:
        if self._aside is not None and (self._unique is None or not self._unique()):
            self._aside.restore_primary()  # a row may repeat one: the key must see it
        moved = None if self._conflicts else insert_plainly(self._cursor, self.MOVE)
        if moved is None:
            self._conflicts = True
            self._cursor.execute(self.MOVE + self.IN_ORDER)
            moved = self._cursor.rowcount
        self.added += max(moved, 0)
        self._cursor.execute("TRUNCATE import_staging")
        self._staged = 0


@contextmanager
def keys_trusted(conn: Connection) -> Iterator[None]:
    """SQLite: foreign keys not checked row by row in the transaction begun inside this block (the
    setting cannot change within one), and checked again after it on this connection. A load names each
    row's account by an id it found or created itself in that transaction (through import_keys), so the
    check, a lookup in ``accounts`` per sample and per rollup bucket, could only confirm it. Without it
    the rows of 10,000 accounts x 7 days were stored in 32-33 s instead of 38-46 s
    (tests/test_import_beside.py checks the keys after an import). PostgreSQL sets its foreign keys aside
    for a first load instead (SetAside)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
    conn.commit()  # ends the transaction SQLAlchemy began for the pragma
    try:
        yield
    finally:
        try:
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
            conn.commit()
        except Exception:  # a connection that cannot take it back goes, not back to the pool
            conn.invalidate()


def insert_plainly(cursor: Any, statement: str) -> int | None:
    """PostgreSQL: run an INSERT without ON CONFLICT (a third cheaper than with it, and right when no row
    is stored yet) to a savepoint: the rows inserted, or None (and nothing inserted) when one was."""
    from psycopg.errors import UniqueViolation

    cursor.execute("SAVEPOINT import_insert")
    try:
        cursor.execute(statement)
    except UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT import_insert")
        return None
    inserted = int(cursor.rowcount)
    cursor.execute("RELEASE SAVEPOINT import_insert")
    return inserted


def fewer_stored(conn: Connection, model: type[models.Base], expected_rows: int) -> bool:
    """Whether ``model``'s table holds fewer rows than ``expected_rows``: counts at most that many."""
    if expected_rows <= 0:
        return False
    table = models.table(model)
    some = select(table.c.account_id).limit(expected_rows).subquery()
    return int(conn.scalar(select(func.count()).select_from(some)) or 0) < expected_rows


class SetAside:
    """The secondary indexes of ``model``'s table (and on PostgreSQL its foreign keys, and its primary key
    when ``primary`` says no row loaded meanwhile can repeat one already there or in the load) dropped
    inside the caller's transaction, and built again by ``restore``: a rollback brings them back as they
    were."""

    def __init__(self, conn: Connection, model: type[models.Base], primary: bool = False) -> None:
        self.conn = conn
        table = models.table(model)
        self.indexes = sorted(table.indexes, key=lambda index: str(index.name))
        postgres = conn.dialect.name == "postgresql"
        self.keys = sorted(table.foreign_key_constraints, key=lambda k: str(k.name)) if postgres else []
        self.primary = table.primary_key if postgres and primary else None
        driver = conn.connection.driver_connection
        if conn.dialect.name == "sqlite" and not driver.in_transaction:  # type: ignore[union-attr]
            # pysqlite opens a transaction only before a write, never before DDL: open it here
            conn.exec_driver_sql("BEGIN")
        if postgres:
            conn.exec_driver_sql(_BUILD_MEMORY)
        for key in self.keys:
            conn.execute(DropConstraint(key))
        for index in self.indexes:
            conn.execute(DropIndex(index))
        if self.primary is not None:
            conn.execute(DropConstraint(self.primary))

    def restore(self) -> None:
        """Everything set aside back; an index only where it is missing (a savepoint rolled back after an
        earlier restore, while the drop stood, leaves it missing again)."""
        self.restore_primary()
        for index in self.indexes:
            self.conn.execute(CreateIndex(index, if_not_exists=True))
        for key in self.keys:
            self.conn.execute(AddConstraint(key))

    def restore_primary(self) -> None:
        """The primary key back now, if it was set aside: built by one sort, where row by row it was most
        of an insert's time (before a row that could repeat one is loaded, or at the end)."""
        if self.primary is not None:
            self.conn.execute(AddConstraint(self.primary))
            self.primary = None


# PostgreSQL: at least 256 MB to sort what the rebuilds sort, for this transaction only (the default 64 MB
# sorts tens of millions of rows in many runs on disk); a larger setting is kept
_BUILD_MEMORY: Final = (
    "SELECT set_config('maintenance_work_mem', greatest(setting::bigint, 262144)::text || 'kB', true) "
    "FROM pg_settings WHERE name = 'maintenance_work_mem'"
)
_JSON_NULL: Final = "null"


def _copy(value: int | None) -> str:
    return "\\N" if value is None else str(value)


class SqliteTimes:
    """Epoch microseconds to SQLite's stored text (``YYYY-MM-DD HH:MM:SS.ffffff``, as SQLAlchemy writes
    it). ``known`` holds the texts of the times seen (files repeat their times across accounts), and the
    text of a whole second is cached too (for times with fractions of their own); at most 100,000 each."""

    def __init__(self) -> None:
        self.known: dict[int, str] = {}
        self._seconds: dict[int, str] = {}

    def text(self, us: int) -> str:
        found = self.known.get(us)
        if found is None:
            if len(self.known) > 100_000:
                self.known.clear()
            seconds, fraction = divmod(us, _SECOND)
            found = self.known[us] = f"{self._second(seconds)}.{fraction:06d}"
        return found

    def _second(self, seconds: int) -> str:
        stamp = self._seconds.get(seconds)
        if stamp is None:
            if len(self._seconds) > 100_000:
                self._seconds.clear()
            stamp = self._seconds[seconds] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
        return stamp


def note_latest(conn: Connection, account_ids: Iterable[int]) -> None:
    """Set each account's ``latest_*`` columns from its newest stored sample, then its kept change and
    growth (changes.py): two statements per chunk."""
    accounts = models.table(models.Account)
    samples = models.table(models.Sample)

    def newest(column: Any) -> Any:
        return (
            select(column)
            .where(samples.c.account_id == accounts.c.id)
            .order_by(samples.c.observed_at.desc())
            .limit(1)
            .scalar_subquery()
        )

    values = {
        "latest_at": select(func.max(samples.c.observed_at))
        .where(samples.c.account_id == accounts.c.id)
        .scalar_subquery(),
        "latest_followers": newest(samples.c.followers),
        "latest_following": newest(samples.c.following),
        "latest_posts": newest(samples.c.posts),
    }
    ids = sorted(set(account_ids))
    for start in range(0, len(ids), 2_000):
        chunk = ids[start : start + 2_000]
        conn.execute(update(accounts).where(accounts.c.id.in_(chunk)).values(**values))
    changes.refresh(conn, ids)


# Epoch microseconds of a stored 'YYYY-MM-DD HH:MM:SS[.ffffff]': whole seconds by strftime('%s') (every
# SQLite version has it) of the text without its fraction (strftime rounds to milliseconds), then the
# fraction's digits as they are (none: 0).
_SQLITE_MICROS: Final = (
    "CAST(strftime('%s', substr(observed_at, 1, 19)) AS INTEGER) * 1000000 "
    "+ CAST(substr(observed_at, 21, 6) AS INTEGER)"
)


class SampleReader:
    """Stored samples of a set of accounts between two times, in time order, on one connection: what
    ``import`` runs the detectors over, a slice at a time."""

    def __init__(self, conn: Connection, account_ids: Iterable[int]) -> None:
        self.conn = conn
        self._cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        self._sqlite = conn.dialect.name == "sqlite"
        self._times = SqliteTimes()
        # a connection handed back to the pool keeps its temporary tables when its transaction rolled back
        self._cursor.execute("DROP TABLE IF EXISTS import_accounts")
        self._cursor.execute("CREATE TEMPORARY TABLE import_accounts (id integer PRIMARY KEY)")
        ids = [(i,) for i in sorted(set(account_ids))]
        marker = "?" if self._sqlite else "%s"
        self._cursor.executemany(f"INSERT INTO import_accounts (id) VALUES ({marker})", ids)

    def slice(self, start_us: int, end_us: int) -> list[tuple[int, int, int, int | None, int]]:
        """(account id, epoch microseconds, followers, following, step) with start <= time < end."""
        if self._sqlite:
            return self._sqlite_slice(start_us, end_us)
        self._cursor.execute(
            "SELECT account_id, (extract(epoch FROM observed_at) * 1000000)::bigint, followers, "
            "following, followers_step FROM samples "
            "WHERE observed_at >= timestamptz 'epoch' + %s * interval '1 microsecond' "
            "AND observed_at < timestamptz 'epoch' + %s * interval '1 microsecond' "
            "AND account_id IN (SELECT id FROM import_accounts) ORDER BY observed_at, account_id",
            (start_us, end_us),
        )
        return list(self._cursor.fetchall())

    def _sqlite_slice(self, start_us: int, end_us: int) -> list[tuple[int, int, int, int | None, int]]:
        # SQLite turns its stored text into microseconds itself (a third of the reading's time in Python)
        self._cursor.execute(
            f"SELECT account_id, {_SQLITE_MICROS}, followers, following, followers_step FROM samples "
            "WHERE observed_at >= ? AND observed_at < ? "
            "AND account_id IN (SELECT id FROM import_accounts) ORDER BY observed_at, account_id",
            (self._times.text(start_us), self._times.text(end_us)),
        )
        return list(self._cursor.fetchall())

    def close(self) -> None:
        self._cursor.execute("DROP TABLE IF EXISTS import_accounts")
        self._cursor.close()
