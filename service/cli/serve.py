"""``run`` and ``demo``: the daemon, on the configured watchlist or on a simulated platform.

The work lives in serving.py, imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from service.cli.common import add_config_option

DEMO_DB = "sqlite:///flockwatch-demo.db"


def register(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run", help="run the daemon: poll the watchlist, store samples, serve /metrics"
    )
    add_config_option(run)
    run.add_argument("--listen", metavar="HOST:PORT", help="address for /metrics, /healthz, /readyz")
    add_web_config_option(run)
    run.set_defaults(handler=cmd_run)

    demo = subparsers.add_parser("demo", help="live demo: the daemon watching a built-in simulated platform")
    demo.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:9808")
    demo.add_argument("--db", metavar="URL", help=f"database URL (default: a fresh {DEMO_DB})")
    demo.add_argument(
        "--speed",
        type=float,
        default=3600.0,
        help="simulated seconds per real second (default 3600: an hour a second)",
    )
    demo.add_argument(
        "--poll-every", default="1s", help="real time between polls of each account (default 1s)"
    )
    add_web_config_option(demo)
    demo.set_defaults(handler=cmd_demo)


def add_web_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="TLS and basic auth for the endpoints, in the Prometheus exporter-toolkit format "
        "(default: the configuration's http.web_config_file)",
    )


def cmd_run(args: argparse.Namespace) -> int:
    from service.cli.serving import run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from service.cli.serving import demo

    return demo(args)
