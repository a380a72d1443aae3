"""The ``flockwatch`` command. Each command group lives in its own module with a ``register`` function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from service import __version__
from service.cli import admin, detect, serve
from service.cli.common import CommandError, fail

# Exit codes: 0 done, 1 the work found a problem (e.g. an account that was not watched), 2 bad input or setup.
COMMAND_MODULES: tuple[ModuleType, ...] = (serve, admin, detect)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flockwatch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"flockwatch {__version__}")
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
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
