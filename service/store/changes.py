"""An account's change over 24 h and 7 d, kept on its row for ``flockwatch status`` to show and sort by.

The change over a window is the latest count minus the count at the last hourly point at or before
(latest sample - window), an hourly point being the last sample of an hour, as /metrics'
``flockwatch_followers_change`` counts it: when the hour of that cut-off holds a sample after it, the
point is the last sample before that hour, else the last sample at or before the cut-off. It is read
from the raw samples (two index probes per window), and from the hourly rollups where the raw samples
are gone (retention shorter than the window). The growth is the change as a share of that old count
(none when it was 0 or unknown).

Whoever writes an account's samples works them out again, set-based, right after its latest counts,
in the same transaction: the daemon for the accounts of each batch it stores (a backlog of older
samples counts in at once; inside a savepoint, so a failure here leaves the columns as they were and
never costs the batch its samples), ``import`` for the accounts of its file.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Float, FunctionElement, case, cast, exists, func, select, update
from sqlalchemy.ext.compiler import compiles

from service.store import models

WINDOWS: Final = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
CHUNK: Final = 5_000  # accounts per set-based statement


def _kept_values(latest_followers: Any, olds: Any) -> dict[str, Any]:
    """The change and growth columns from the latest count and the old counts of ``olds``."""
    values: dict[str, Any] = {}
    for name in WINDOWS:
        old = olds.c[f"old_{name}"]
        values[f"change_{name}"] = latest_followers - old
        values[f"growth_{name}"] = cast(latest_followers, Float) / cast(func.nullif(old, 0), Float) - 1
    return values


def old_count(account_id: Any, latest_at: Any, window: timedelta) -> Any:
    """The followers at the last hourly point at or before ``latest_at - window`` (None without one)."""
    samples = models.table(models.Sample)
    hourly = models.table(models.HourlyRollup)
    cut = Minus(latest_at, window)

    def last_sample(*conditions: Any) -> Any:
        query = select(samples.c.followers).where(samples.c.account_id == account_id, *conditions)
        return query.order_by(samples.c.observed_at.desc()).limit(1).scalar_subquery()

    later_in_hour = exists().where(
        samples.c.account_id == account_id,
        samples.c.observed_at > cut,
        samples.c.observed_at < HourOf(cut, ahead=1),
    )
    raw = case(
        (later_in_hour, last_sample(samples.c.observed_at < HourOf(cut))),
        else_=last_sample(samples.c.observed_at <= cut),
    )
    rolled = (
        select(hourly.c.last_followers)
        .where(hourly.c.account_id == account_id, hourly.c.bucket <= HourOf(cut), hourly.c.last_at <= cut)
        .order_by(hourly.c.bucket.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(raw, rolled)


def refresh(conn: Connection, account_ids: Iterable[int]) -> None:
    """Work the columns out from what is stored, for these accounts: one statement per chunk, whose old
    counts are computed once per account and window (a materialized CTE; inlined, the change and the
    growth would each probe the samples again)."""
    accounts = models.table(models.Account)
    source = accounts.alias("source")
    olds = select(
        source.c.id,
        *(
            old_count(source.c.id, source.c.latest_at, window).label(f"old_{n}")
            for n, window in WINDOWS.items()
        ),
    )
    ids = sorted(set(account_ids))
    for start in range(0, len(ids), CHUNK):
        found = (
            olds.where(source.c.id.in_(ids[start : start + CHUNK])).cte("olds").prefix_with("MATERIALIZED")
        )
        statement = update(accounts).where(accounts.c.id == found.c.id)
        conn.execute(statement.values(**_kept_values(accounts.c.latest_followers, found)).add_cte(found))


class Minus(FunctionElement[datetime]):
    """``column - window`` in the database's own date arithmetic."""

    inherit_cache = True
    type = models.UtcDateTime()

    def __init__(self, column: Any, window: timedelta) -> None:
        super().__init__(column)
        self.seconds = int(window.total_seconds())


@compiles(Minus, "postgresql")
def _minus_postgresql(element: Minus, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"({compiler.process(column, **kw)} - interval '{element.seconds} seconds')"


@compiles(Minus, "sqlite")
def _minus_sqlite(element: Minus, compiler: Any, **kw: Any) -> str:
    # SQLite keeps times as 'YYYY-MM-DD HH:MM:SS.ffffff' text: shift the seconds, keep the fraction.
    column = compiler.process(next(iter(element.clauses)), **kw)
    return f"(strftime('%Y-%m-%d %H:%M:%S', {column}, '-{element.seconds} seconds') || substr({column}, 20))"


class HourOf(FunctionElement[datetime]):
    """The start of the hour a time falls in (UTC), ``ahead`` hours later: an hourly rollup's bucket."""

    inherit_cache = True
    type = models.UtcDateTime()

    def __init__(self, column: Any, ahead: int = 0) -> None:
        super().__init__(column)
        self.ahead = ahead


@compiles(HourOf, "postgresql")
def _hour_postgresql(element: HourOf, compiler: Any, **kw: Any) -> str:
    column = compiler.process(next(iter(element.clauses)), **kw)
    hour = f"(date_trunc('hour', ({column}) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
    return f"({hour} + interval '{element.ahead} hours')" if element.ahead else hour


@compiles(HourOf, "sqlite")
def _hour_sqlite(element: HourOf, compiler: Any, **kw: Any) -> str:
    # Rollup buckets are stored as 'YYYY-MM-DD HH:00:00.000000' text, as samples' times are.
    column = compiler.process(next(iter(element.clauses)), **kw)
    shift = f", '{element.ahead * 3600:+d} seconds'" if element.ahead else ""
    return f"(strftime('%Y-%m-%d %H:00:00', {column}{shift}) || '.000000')"
