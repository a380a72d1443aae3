"""Commands that inspect or change state without running the daemon: check-config, db, watch, status."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from service.accounts import AccountError, AccountRef
from service.cli.common import CommandError, add_config_option, load_config, open_store, table
from service.durations import format_duration, parse_duration

if TYPE_CHECKING:
    from service.store.repository import StatusRow


def register(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check-config", help="validate the configuration; exit 0, or 2 with every problem"
    )
    add_config_option(check)
    check.set_defaults(handler=cmd_check_config)

    db = subparsers.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser(
        "upgrade", help="apply all migrations (the daemon also does this on start)"
    )
    add_config_option(upgrade)
    upgrade.set_defaults(handler=cmd_db_upgrade)

    watch = subparsers.add_parser("watch", help="edit the watchlist stored in the database")
    actions = watch.add_subparsers(dest="watch_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="start watching accounts (platform:handle)")
    add.add_argument("accounts", nargs="+", metavar="ACCOUNT")
    add.add_argument("--interval", help="poll these accounts this often (e.g. 1h), instead of the default")
    remove = actions.add_parser("remove", help="stop watching accounts; their history is kept")
    remove.add_argument("accounts", nargs="+", metavar="ACCOUNT")
    listing = actions.add_parser("list", help="the accounts being watched")
    for parser, handler in ((add, cmd_watch_add), (remove, cmd_watch_remove), (listing, cmd_watch_list)):
        add_config_option(parser)
        parser.set_defaults(handler=handler)

    status = subparsers.add_parser(
        "status", help="each account's latest followers, 24 h and 7 d change, state"
    )
    add_config_option(status)
    status.set_defaults(handler=cmd_status)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args)
    platforms = sorted({entry.account.platform for entry in config.watchlist})
    print(
        f"configuration is valid: {len(config.watchlist)} accounts in the watchlist"
        + (f" on {', '.join(platforms)}" if platforms else "")
    )
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from service.store.database import revision_of

    with open_store(load_config(args)) as store:
        print(f"database is at the newest schema (revision {revision_of(store.engine)})")
    return 0


def _parse_accounts(texts: list[str]) -> list[AccountRef]:
    refs, problems = [], []
    for text in texts:
        try:
            refs.append(AccountRef.parse(text))
        except AccountError as exc:
            problems.append(str(exc))
    if problems:
        raise CommandError("nothing was changed:\n  " + "\n  ".join(problems))
    return refs


def cmd_watch_add(args: argparse.Namespace) -> int:
    refs = _parse_accounts(args.accounts)
    interval = None
    if args.interval:
        try:
            interval = parse_duration(args.interval)
        except ValueError as exc:
            raise CommandError(f"--interval: {exc}") from None
        if interval <= timedelta(0):
            raise CommandError("--interval must be longer than zero")
    with open_store(load_config(args)) as store:
        for ref in refs:
            added = store.watch(ref, datetime.now(UTC), interval)
            print(f"{'watching' if added else 'already watched'}: {ref}")
    return 0


def cmd_watch_remove(args: argparse.Namespace) -> int:
    refs = _parse_accounts(args.accounts)
    with open_store(load_config(args)) as store:
        missing = [ref for ref in refs if not store.unwatch(ref)]
    for ref in refs:
        print(f"{'was not watched' if ref in missing else 'stopped watching'}: {ref}")
    return 1 if missing else 0


def cmd_watch_list(args: argparse.Namespace) -> int:
    config = load_config(args)
    with open_store(config) as store:
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


def cmd_status(args: argparse.Namespace) -> int:
    with open_store(load_config(args)) as store:
        rows = [_status_cells(row) for row in store.status()]
    if not rows:
        print(
            "the watchlist is empty: add accounts with `flockwatch watch add platform:handle`",
            file=sys.stderr,
        )
        return 0
    print(table(["ACCOUNT", "FOLLOWERS", "24H", "7D", "LAST POLL (UTC)", "STATE"], rows))
    return 0


def _status_cells(row: StatusRow) -> list[str]:
    account = row.account
    state = account.state.value + (f" ({account.last_error})" if account.last_error else "")
    return [
        str(account.ref),
        f"{row.latest.followers:,}" if row.latest else "-",
        _signed(row.change_24h),
        _signed(row.change_7d),
        account.last_polled_at.strftime("%Y-%m-%d %H:%M") if account.last_polled_at else "never",
        state,
    ]


def _signed(value: int | None) -> str:
    return "-" if value is None else f"{value:+,}"
