"""``status``: one line per watched account, filtered and sorted in the database (see listing.py).

A table mixing accounts and GitHub repositories heads its count column COUNT and says the noun in each
cell ("1,204 stars"); a table of one kind says FOLLOWERS or STARS in the header.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from service.accounts import count_noun
from service.cli.common import (
    add_database_options,
    add_listing_options,
    database_url,
    kind_name,
    open_store,
    platform_name,
    table,
    write_listing,
)
from service.samples import AccountState, Sample
from service.store.queries import SEVERITIES, STATUS_SORTS, StatusQuery

if TYPE_CHECKING:
    from service.store.listing import StatusLine


def register(subparsers: Any) -> None:
    status = subparsers.add_parser(
        "status",
        help="watched accounts: latest count, change over 24 h and 7 d, anomaly score, state",
        description="One line per watched account, filtered and sorted in the database. A change is "
        "the latest count minus the count at the last hourly point at or before that long ago; the "
        "score is the highest of the account's ongoing detections.",
    )
    add_database_options(status)
    status.add_argument("--platform", type=platform_name, help="only accounts of this platform")
    status.add_argument(
        "--state", type=_state, action="append", help="only accounts in this state (repeatable)"
    )
    status.add_argument("--kind", type=kind_name, help="only ongoing detections of this kind count")
    status.add_argument(
        "--severity", choices=SEVERITIES, help="only ongoing detections at least this severe count"
    )
    status.add_argument(
        "--active", action="store_true", help="only accounts with an ongoing detection (that counts)"
    )
    add_listing_options(status, STATUS_SORTS, "score")
    status.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    query = StatusQuery(
        platform=args.platform,
        states=tuple(args.state or ()),
        kind=args.kind,
        severity=args.severity,
        active=args.active,
        sort=args.sort,
        reverse=args.reverse,
        limit=args.limit or None,
    )
    with open_store(database_url(args)) as store:
        page = store.status_page(query)
    if not page.total:
        print(_nothing_watched(query), file=sys.stderr)
        return 0
    growth = args.sort.startswith("growth-")
    write_listing(
        args.format,
        [_status_record(line) for line in page.rows],
        lambda: _status_table(page.rows, growth),
        page.total - len(page.rows),
    )
    return 0


def _nothing_watched(query: StatusQuery) -> str:
    if query == StatusQuery(sort=query.sort, reverse=query.reverse, limit=query.limit):
        return "the watchlist is empty: add accounts with `flockwatch watch add platform:handle`"
    return "no watched account matches"


def _status_table(lines: Sequence[StatusLine], growth: bool) -> str:
    nouns = {count_noun(line.account.ref) for line in lines}
    mixed = len(nouns) > 1
    header = "COUNT" if mixed else next(iter(nouns)).upper()
    rows = [_status_cells(line, mixed, growth) for line in lines]
    return table(["ACCOUNT", header, "24H", "7D", "SCORE", "ONGOING", "LAST POLL (UTC)", "STATE"], rows)


def _status_cells(line: StatusLine, mixed: bool, growth: bool) -> list[str]:
    account = line.account
    state = account.state.value + (f" ({_short(account.last_error)})" if account.last_error else "")
    count = "-"
    if line.latest is not None:
        count = f"{line.latest.followers:,}" + (f" {count_noun(account.ref)}" if mixed else "")
    return [
        str(account.ref),
        count,
        _change(line.change_24h, line.latest, growth),
        _change(line.change_7d, line.latest, growth),
        f"{line.score:.2f}" if line.score is not None else "-",
        str(line.ongoing) if line.ongoing else "-",
        account.last_polled_at.strftime("%Y-%m-%d %H:%M") if account.last_polled_at else "never",
        state,
    ]


def _change(change: int | None, latest: Sample | None, growth: bool) -> str:
    if change is None or latest is None:
        return "-"
    share = _growth(change, latest.followers)
    return f"{change:+,}" + (f" ({share:+.1%})" if growth and share is not None else "")


def _growth(change: int | None, latest: int | None) -> float | None:
    """The change as a share of the count it started from; None when that was 0 or unknown."""
    if change is None or latest is None or latest - change <= 0:
        return None
    return change / (latest - change)


def _status_record(line: StatusLine) -> dict[str, object]:
    account, latest = line.account, line.latest
    count = latest.followers if latest else None
    return {
        "account": str(account.ref),
        "platform": account.ref.platform,
        "noun": count_noun(account.ref),
        "count": count,
        "change_24h": line.change_24h,
        "change_7d": line.change_7d,
        "growth_24h": _growth(line.change_24h, count),
        "growth_7d": _growth(line.change_7d, count),
        "score": line.score,
        "ongoing": line.ongoing,
        "latest_at": _iso(latest.observed_at) if latest else None,
        "last_polled_at": _iso(account.last_polled_at),
        "state": account.state.value,
        "last_error": account.last_error,
    }


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _state(text: str) -> str:
    states = [s.value for s in AccountState]
    if text not in states:
        raise argparse.ArgumentTypeError(f"unknown state {text[:40]!r} (known: {', '.join(states)})")
    return text
