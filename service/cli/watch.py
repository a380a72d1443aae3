"""``watch add|remove|recheck|list``: the watchlist stored in the database, edited in bulk.

Accounts come as arguments, from a file (``--file PATH``) or from stdin (``-``), one per line; blank lines
and ``#`` comments are skipped. Every line is checked before anything is written: one bad line changes
nothing, and each bad line is reported with its line number. The accounts are then written in a few bulk
statements, whatever their number.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Final

from service.accounts import AccountError, AccountRef
from service.cli.common import (
    CommandError,
    add_database_options,
    database_url,
    load_config,
    open_store,
    table,
)
from service.durations import format_duration, parse_duration

LINE_LIMIT: Final = 4096  # bytes of one line of an account list; a longer line is a bad line
SAID_LIMIT: Final = 120  # characters of a bad line quoted back
ACCOUNT_LIMIT: Final = 300  # characters: a platform name, a colon and a handle the database holds
ONE_BY_ONE: Final = 50  # up to this many accounts, each gets a line of its own in the output


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    watch = subparsers.add_parser("watch", help="edit the watchlist stored in the database")
    actions = watch.add_subparsers(dest="watch_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="start watching accounts (platform:handle)")
    add.add_argument("--interval", help="poll these accounts this often (e.g. 1h), instead of the default")
    remove = actions.add_parser("remove", help="stop watching accounts; their history is kept")
    recheck = actions.add_parser(
        "recheck", help="poll accounts put off by a permanent state (not found, suspended) at the next chance"
    )
    for parser in (add, remove, recheck):
        parser.add_argument(
            "accounts", nargs="*", metavar="ACCOUNT", help="platform:handle, or - to read them from stdin"
        )
        parser.add_argument("--file", type=Path, metavar="PATH", help="read accounts from PATH, one per line")
    listing = actions.add_parser("list", help="the accounts being watched")
    for parser, handler in (
        (add, cmd_watch_add),
        (remove, cmd_watch_remove),
        (recheck, cmd_watch_recheck),
        (listing, cmd_watch_list),
    ):
        add_database_options(parser)
        parser.set_defaults(handler=handler)


@dataclass
class AccountList:
    """Accounts read from arguments, files and stdin, in order without repeats, and every problem."""

    refs: dict[AccountRef, None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def take(self, where: str, text: str) -> None:
        text = text.strip()
        if not text or text.startswith("#"):
            return
        if len(text) > ACCOUNT_LIMIT:
            self.problems.append(f"{where}: {len(text):,} characters, longer than any account can be")
            return
        try:
            self.refs.setdefault(AccountRef.parse(text), None)
        except AccountError as exc:
            self.problems.append(f"{where}: {_shorten(str(exc))}")

    def read(self, name: str, stream: BinaryIO) -> None:
        for number, line in enumerate(_lines(stream), 1):
            if len(line) >= LINE_LIMIT and not line.endswith(b"\n"):
                self.problems.append(f"{name}:{number}: the line is longer than {LINE_LIMIT:,} bytes")
                continue
            try:
                text = line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                self.problems.append(f"{name}:{number}: the line is not UTF-8 text")
                continue
            self.take(f"{name}:{number}", text)


def read_accounts(args: argparse.Namespace) -> list[AccountRef]:
    """Every account the command was given; CommandError (nothing changed) naming every bad one."""
    found = AccountList()
    for position, text in enumerate(args.accounts, 1):
        if text == "-":
            found.read("stdin", sys.stdin.buffer)
        else:
            found.take(f"argument {position}", text)
    if args.file is not None:
        try:
            with args.file.open("rb") as stream:
                found.read(str(args.file), stream)
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    if found.problems:
        count = len(found.problems)
        raise CommandError(
            f"nothing was changed: {count:,} bad account{'s' if count > 1 else ''}:\n  "
            + "\n  ".join(found.problems)
        )
    if not found.refs:
        raise CommandError("no accounts given: name them, or give --file PATH or - (stdin)")
    return list(found.refs)


def cmd_watch_add(args: argparse.Namespace) -> int:
    refs = read_accounts(args)
    interval = _interval(args.interval)
    with open_store(database_url(args)) as store:
        added = set(store.watch_many(refs, datetime.now(UTC), interval))
    _report(refs, added, "watching", "already watched")
    return 0


def cmd_watch_remove(args: argparse.Namespace) -> int:
    return _change_watched(args, "unwatch_many", "stopped watching")


def cmd_watch_recheck(args: argparse.Namespace) -> int:
    return _change_watched(args, "recheck", "polled at the next chance")


def _change_watched(args: argparse.Namespace, change: str, did: str) -> int:
    """Apply a Store change that only concerns watched accounts; exit 1 if some were not watched."""
    refs = read_accounts(args)
    with open_store(database_url(args)) as store:
        done = set(getattr(store, change)(refs, datetime.now(UTC)))
    _report(refs, done, did, "was not watched", always_other=True)
    return 1 if len(done) < len(refs) else 0


def cmd_watch_list(args: argparse.Namespace) -> int:
    config = load_config(args)
    with open_store(database_url(args)) as store:
        watched = store.watched()
    rows = [
        [
            str(a.ref),
            a.state.value,
            format_duration(config.interval_for(a.ref, a.interval)),
            a.platform_id or "-",
        ]
        for a in watched
    ]
    print(table(["ACCOUNT", "STATE", "INTERVAL", "PLATFORM ID"], rows) if rows else "the watchlist is empty")
    return 0


def _report(
    refs: Sequence[AccountRef], done: set[AccountRef], did: str, other: str, always_other: bool = False
) -> None:
    """A line per account for a short list (and for each account ``other`` when ``always_other``); a
    count of each outcome for a long one."""
    one_by_one = len(refs) <= ONE_BY_ONE
    for ref in refs:
        if one_by_one or (always_other and ref not in done):
            print(f"{did if ref in done else other}: {ref}")
    if not one_by_one:
        print(f"{len(refs):,} accounts: {len(done):,} {did}, {len(refs) - len(done):,} {other}")


def _interval(text: str | None) -> timedelta | None:
    if not text:
        return None
    try:
        interval = parse_duration(text)
    except ValueError as exc:
        raise CommandError(f"--interval: {_shorten(str(exc))}") from None
    except OverflowError:
        raise CommandError(f"--interval: {_shorten(repr(text))} is longer than any interval can be") from None
    if interval <= timedelta(0):
        raise CommandError("--interval must be longer than zero")
    return interval


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """The stream's lines, each at most LINE_LIMIT bytes: the rest of a longer line is skipped."""
    while line := stream.readline(LINE_LIMIT):
        yield line
        if len(line) >= LINE_LIMIT and not line.endswith(b"\n"):
            while (rest := stream.readline(LINE_LIMIT)) and not rest.endswith(b"\n"):
                pass


def _shorten(text: str) -> str:
    return text if len(text) <= SAID_LIMIT else text[: SAID_LIMIT - 1] + "…"
