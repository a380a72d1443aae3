"""Commands that check the setup without running the daemon: check-config, db upgrade."""

from __future__ import annotations

import argparse
from typing import Any

from service.cli.common import add_config_option, add_database_options, database_url, load_config, open_store


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
    add_database_options(upgrade)
    upgrade.set_defaults(handler=cmd_db_upgrade)


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

    with open_store(database_url(args)) as store:
        print(f"database is at the newest schema (revision {revision_of(store.engine)})")
    return 0
