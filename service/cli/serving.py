"""What ``run`` and ``demo`` do: start the daemon (and for the demo, the simulated platform) until a signal.

Kept apart from the command grammar in serve.py, so that other commands do not import the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, disable_created_metrics
from sqlalchemy.engine import make_url

from service import logs
from service.cli.common import CommandError, load_config
from service.cli.serve import DEMO_DB
from service.clock import Clock, SystemClock
from service.config import Config, parse_listen
from service.daemon import Daemon
from service.demo import demo_config, demo_platform
from service.durations import parse_duration
from service.simulator.server import SimulatedPlatform
from service.store.database import DatabaseError
from service.webconfig import WebConfigError, load_web_config


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    if args.listen:
        _check_listen(args.listen)
        config = _with_http(config, listen=args.listen)
    if args.web_config_file:
        config = _with_http(config, web_config_file=_web_config_file(args.web_config_file))
    logs.configure(config.log.level, config.log.format)
    return asyncio.run(_serve(config, SystemClock()))


def demo(args: argparse.Namespace) -> int:
    _check_listen(args.listen)
    if args.speed <= 0:
        raise CommandError("--speed must be above zero")
    web_config = _web_config_file(args.web_config_file) if args.web_config_file else None
    db_url = args.db or _fresh_demo_database()
    logs.configure("info")
    return asyncio.run(_serve_demo(db_url, args.listen, args.speed, _poll_every(args.poll_every), web_config))


async def _serve_demo(
    db_url: str, listen: str, speed: float, poll_every: timedelta, web_config: Path | None = None
) -> int:
    platform = demo_platform(speed)
    await platform.start()
    try:
        config = _with_http(demo_config(platform, db_url, listen, poll_every), web_config_file=web_config)
        return await _serve(config, platform.clock, demo=platform, speed=speed)
    finally:
        await platform.stop()


async def _serve(
    config: Config, clock: Clock, demo: SimulatedPlatform | None = None, speed: float = 1.0
) -> int:
    disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        daemon = Daemon(config, clock=clock, registry=CollectorRegistry())
    except WebConfigError as exc:  # the file changed since it was checked
        raise CommandError(_describe_web_config_error(exc)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await daemon.start()
    except (DatabaseError, OSError) as exc:
        await daemon.stop()
        raise CommandError(str(exc)) from None
    _announce(daemon, demo, speed)
    await stop.wait()
    print("stopping: finishing polls and writing samples...", file=sys.stderr, flush=True)
    await daemon.stop()
    return 0


def _announce(daemon: Daemon, demo: SimulatedPlatform | None, speed: float) -> None:
    db = daemon.config.database.url
    lines = [f"metrics:   {daemon.metrics_url}", f"database:  {_describe_db(db)}"]
    if demo is not None:
        lines.insert(0, f"flockwatch demo: {len(demo.scenarios)} simulated accounts on {demo.base_url}")
        lines.insert(1, f"time:      simulated time runs {speed:g}x faster than real time")
        lines.append(f"status:    FLOCKWATCH_DATABASE__URL={db} flockwatch status")
    lines.append("stop:      Ctrl-C")
    print("\n".join(lines), file=sys.stderr, flush=True)


def _describe_db(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return f"{Path(parsed.database).resolve()} (SQLite)"
    return parsed.render_as_string(hide_password=True)


def _fresh_demo_database() -> str:
    path = Path(make_url(DEMO_DB).database or "flockwatch-demo.db")
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    return DEMO_DB


def _with_http(config: Config, **settings: object) -> Config:
    return config.model_copy(update={"http": config.http.model_copy(update=settings)})


def _web_config_file(text: str) -> Path:
    """The ``--web.config.file`` path, once the file and the certificates it names have been checked."""
    try:
        load_web_config(text)
    except WebConfigError as exc:
        raise CommandError(_describe_web_config_error(exc)) from None
    return Path(text)


def _describe_web_config_error(exc: WebConfigError) -> str:
    count = len(exc.problems)
    lines = [f"web configuration {exc.path} is not valid ({count} problem{'s' if count > 1 else ''}):"]
    return "\n".join([*lines, *(f"  {problem}" for problem in exc.problems)])


def _check_listen(listen: str) -> None:
    try:
        parse_listen(listen)
    except ValueError as exc:
        raise CommandError(f"--listen: {exc}") from None


def _poll_every(text: str) -> timedelta:
    try:
        every = parse_duration(text)
    except ValueError as exc:
        raise CommandError(f"--poll-every: {exc}") from None
    if every <= timedelta(0):
        raise CommandError("--poll-every must be longer than zero")
    return every
