"""The ``flockwatch`` command. Each command group lives in its own module with a ``register`` function.

Exit codes: 0 done; 1 the command did its work and found something wrong (e.g. ``watch remove`` of an
account that was not watched), or flockwatch itself failed unexpectedly (a bug: a short message, and the
traceback with ``--debug``); 2 bad input or an unusable setup (configuration, files, database), said in a
message without a traceback; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from service import __version__
from service.cli import admin, detect, serve, spool, status, watch
from service.cli.common import CommandError, describe_os_error, fail

COMMAND_MODULES: tuple[ModuleType, ...] = (serve, admin, watch, status, detect, spool)
EXIT_BUG = 1
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flockwatch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"flockwatch {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=os.environ.get("FLOCKWATCH_DEBUG", "") not in ("", "0"),
        help="show the traceback of an unexpected error (also FLOCKWATCH_DEBUG=1)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CommandError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("flockwatch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except OSError as exc:  # a file, folder, socket or permission the setup gets wrong
        return fail(describe_os_error(exc))
    except Exception as exc:
        return _unexpected(exc, args.debug)


def _unexpected(exc: Exception, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc)
    text = str(exc).strip().splitlines()
    print(
        f"flockwatch: unexpected error: {type(exc).__name__}"
        + (f": {text[0][:200]}" if text else "")
        + (
            ""
            if debug
            else "\nthis is a bug: run the command again with --debug for the traceback, and report it"
        ),
        file=sys.stderr,
    )
    return EXIT_BUG
