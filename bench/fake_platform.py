"""A fast local stand-in for X's API v2 user lookup, for the scale benchmark (``bench/scale.py``).

It answers ``GET /2/users?ids=…`` and ``GET /2/users/by?usernames=…`` (up to 100 users a request, the
``public_metrics`` object, ``x-rate-limit-*`` headers) the way the platform documents them, for accounts
``x:s0000000`` … numbered from 0, whose ids are ``1000000000 + number``. Every count is a pure function of
the account's number and the time (``counts``): the history the benchmark loads and the answers served
later draw on the same function, so a live sample continues its account's history instead of jumping.

The accounts are drawn wide: sizes log-uniform from 10² to 10⁷, growth from a slow decline to fast
growth, weekly and daily rhythms of their own, noise; about one in fifty buys followers (a steady drip,
exactly the same every hour), one in a hundred has a burst, one in a hundred is purged. The events fall
anywhere between the start of the history and a day after it ends, so detections open and close both in
the loaded history and while the daemon polls.

It runs in a process of its own (``python -m bench.fake_platform --accounts N --epoch T --port-file F``),
so its CPU is not the daemon's. ``GET /_bench/requests?after=K`` lists the lookups answered since the K-th
as ``[received, answered, users]`` (epoch seconds): the benchmark reads poll cycles from it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aiohttp import web

HANDLE_PREFIX = "s"
FIRST_ID = 1_000_000_000
DAY = 86_400.0
PER_REQUEST = 100
TOKEN = "scale-bench-token"  # the bearer token the daemon's configuration names (not a secret)


def handle(number: int) -> str:
    return f"{HANDLE_PREFIX}{number:07d}"


def platform_id(number: int) -> str:
    return str(FIRST_ID + number)


EVENTS = ("", "drip", "burst", "purge")


@dataclass(frozen=True)
class Profiles:
    """What makes each account's counts, one array entry per account number: size, organic growth and
    rhythms, and at most one bought event. Drawn per account from its number alone, so the benchmark's
    history and the fake agree whatever the number of accounts."""

    base: np.ndarray
    gain: np.ndarray  # organic followers a day (negative: a slow decline)
    weekly: np.ndarray  # amplitude of the weekly rhythm, in followers
    daily: np.ndarray
    phase: np.ndarray
    noise: np.ndarray  # spread of the sample-to-sample noise
    following: np.ndarray
    posts_per_day: np.ndarray
    event: np.ndarray  # index in EVENTS
    event_at: np.ndarray  # epoch seconds
    event_size: np.ndarray  # drip: followers an hour (the same every hour); burst, purge: share of the size

    def __len__(self) -> int:
        return len(self.base)


def profiles(accounts: int, epoch: float, span_days: float) -> Profiles:
    """Every account's parameters: the same on every call for the same arguments."""
    drawn = [_draw(number, epoch, span_days) for number in range(accounts)]
    columns = list(zip(*drawn, strict=True)) if drawn else [()] * 11
    return Profiles(*(np.array(column, dtype=float) for column in columns))


def _draw(number: int, epoch: float, span_days: float) -> tuple[float, ...]:
    rng = random.Random(number * 7919 + 17)
    base = math.exp(rng.uniform(math.log(1e2), math.log(1e7)))
    gain = base * rng.uniform(-3e-4, 3e-3)
    roll = rng.random()
    event = 1 if roll < 0.02 else 2 if roll < 0.03 else 3 if roll < 0.04 else 0
    drip = max(round(base * rng.uniform(5e-4, 2e-3)), 1)
    return (
        base,
        gain,
        abs(gain) * rng.uniform(0, 1.5),
        abs(gain) * rng.uniform(0, 0.3),
        rng.uniform(0, 2 * math.pi),
        math.sqrt(abs(gain) / 96 + 1.0) * rng.uniform(0.5, 2.0),
        rng.randrange(0, 5000),
        rng.uniform(0, 20),
        event,
        epoch + rng.uniform(0, span_days + 1) * DAY,
        drip if event == 1 else rng.uniform(0.05, 0.3),
    )


def counts(p: Profiles, numbers: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(followers, following, posts) of accounts ``numbers`` at epoch seconds ``at`` (broadcast together:
    a column of numbers and a row of times give a matrix)."""
    days = at / DAY - 20_000
    followers = (
        p.base[numbers]
        + p.gain[numbers] * days
        + p.weekly[numbers] * np.sin(2 * np.pi * days / 7 + p.phase[numbers])
        + p.daily[numbers] * np.sin(2 * np.pi * days + p.phase[numbers])
        + p.noise[numbers] * _unit(numbers, at // 60)
        + _bought(p, numbers, at)
    )
    following = p.following[numbers] + np.trunc(_unit(numbers + 1_000_003, at // 3600) * 3)
    posts = np.trunc(p.posts_per_day[numbers] * np.maximum(days, 0))
    return _whole(followers), _whole(following), _whole(posts)


def _bought(p: Profiles, numbers: np.ndarray, at: np.ndarray) -> np.ndarray:
    event, since, size = p.event[numbers], at - p.event_at[numbers], p.event_size[numbers]
    started = since >= 0
    drip = size * (np.floor(since / 3600) + 1)  # the same number every hour: what no organic account does
    step = p.base[numbers] * size
    bought = np.where(event == 1, drip, np.where(event == 2, step, np.where(event == 3, -step, 0.0)))
    return np.where(started, bought, 0.0)


def _unit(key: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Uniform numbers in [-1, 1) from (key, slot): splitmix64, so they need no state."""
    with np.errstate(over="ignore"):
        z = np.asarray(key, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = z + np.asarray(slot, dtype=np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z.astype(float) / 2**63 - 1.0


def _whole(values: np.ndarray) -> np.ndarray:
    whole: np.ndarray = np.maximum(values, 0).astype(np.int64)
    return whole


class FakeX:
    """The server: profiles in memory, one JSON answer per lookup, a log of what it answered."""

    def __init__(self, accounts: int, epoch: float, span_days: float) -> None:
        self.profiles = profiles(accounts, epoch, span_days)
        self.log: list[tuple[float, float, int]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/2/users", self.by_ids)
        app.router.add_get("/2/users/by", self.by_names)
        app.router.add_get("/_bench/requests", self.requests)
        return app

    async def by_ids(self, request: web.Request) -> web.Response:
        return self._lookup(request, "ids", _number_of_id)

    async def by_names(self, request: web.Request) -> web.Response:
        return self._lookup(request, "usernames", _number_of_handle)

    def _lookup(self, request: web.Request, param: str, number_of: Callable[[str], int]) -> web.Response:
        received = time.time()
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _json({"title": "Unauthorized", "status": 401, "detail": "Unauthorized"}, 401)
        values = [v for v in request.query.get(param, "").split(",") if v][:PER_REQUEST]
        numbers = [number_of(v) for v in values]
        known = [n for n in numbers if 0 <= n < len(self.profiles)]
        followers, following, posts = counts(
            self.profiles, np.array(known, dtype=np.int64), np.array(received)
        )
        data = [
            _user(n, int(f), int(fo), int(po))
            for n, f, fo, po in zip(known, followers, following, posts, strict=True)
        ]
        errors = [
            _not_found(param, v)
            for v, n in zip(values, numbers, strict=True)
            if not 0 <= n < len(self.profiles)
        ]
        body = {"data": data, **({"errors": errors} if errors else {})}
        self.log.append((received, time.time(), len(data)))
        return _json(body, 200, _budget(received))

    async def requests(self, request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        return _json({"requests": self.log[after:], "next": len(self.log)}, 200)


def _user(number: int, followers: int, following: int, posts: int) -> dict[str, object]:
    metrics = {
        "followers_count": followers,
        "following_count": following,
        "tweet_count": posts,
        "listed_count": 1,
    }
    name = handle(number)
    return {"id": platform_id(number), "name": name, "username": name, "public_metrics": metrics}


def _number_of_id(value: str) -> int:
    return int(value) - FIRST_ID if value.isdigit() and len(value) < 20 else -1


def _number_of_handle(value: str) -> int:
    digits = value[len(HANDLE_PREFIX) :]
    return int(digits) if value[: len(HANDLE_PREFIX)].lower() == HANDLE_PREFIX and digits.isdigit() else -1


def _not_found(param: str, value: str) -> dict[str, str]:
    return {
        "value": value,
        "detail": f"Could not find user with {param}: [{value}].",
        "title": "Not Found Error",
        "resource_type": "user",
        "parameter": param,
        "resource_id": value,
        "type": "https://api.twitter.com/2/problems/resource-not-found",
    }


def _budget(now: float) -> dict[str, str]:
    """Rate-limit headers as X sends them: plenty left (the benchmark measures flockwatch, not the budget)."""
    return {
        "x-rate-limit-limit": "1000000",
        "x-rate-limit-remaining": "999999",
        "x-rate-limit-reset": str(int(now) + 900),
    }


def _json(body: object, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def serve(accounts: int, epoch: float, span_days: float, port_file: Path) -> None:
    fake = FakeX(accounts, epoch, span_days)
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    await asyncio.to_thread(port_file.write_text, str(port), encoding="utf-8")
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--epoch", type=float, required=True, help="epoch seconds the history starts at")
    parser.add_argument("--days", type=float, required=True, help="days of history")
    parser.add_argument("--port-file", type=Path, required=True, help="where to write the port it listens on")
    args = parser.parse_args()
    asyncio.run(serve(args.accounts, args.epoch, args.days, args.port_file))


if __name__ == "__main__":
    main()
