"""A fake Mastodon instance whose every answer is unique and written down: the fault suite's referee.

Each successful lookup answers a follower count no other answer carries (a global counter) and records
(handle, count, when it was sent). Comparing the database with the ledger then says, sample by sample,
what was stored, lost, stored twice or made up. Faults are set per handle.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

FIRST_COUNT = 1_000_000
PLATFORM: web.AppKey[LedgerPlatform] = web.AppKey("platform")


@dataclass
class Answer:
    handle: str
    followers: int
    sent_at: float  # time.monotonic()


@dataclass
class Ledger:
    answers: list[Answer] = field(default_factory=list)

    def counts(self) -> set[int]:
        return {a.followers for a in self.answers}

    def by_handle(self) -> dict[str, list[Answer]]:
        found: dict[str, list[Answer]] = {}
        for answer in self.answers:
            found.setdefault(answer.handle, []).append(answer)
        return found


class LedgerPlatform:
    """Speaks ``/api/v1/accounts/lookup?acct=`` and ``/api/v1/accounts/{id}`` like Mastodon."""

    def __init__(self, handles: list[str]) -> None:
        self.handles = {h.lower(): h for h in handles}
        self.ledger = Ledger()
        self.faults: dict[str, Callable[[web.Request], object]] = {}
        self.delay = 0.0
        self._counter = itertools.count(FIRST_COUNT)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app[PLATFORM] = self
        app.router.add_get("/api/v1/accounts/lookup", self._lookup)
        app.router.add_get("/api/v1/accounts/{id}", self._by_id)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _lookup(self, request: web.Request) -> web.StreamResponse:
        acct = request.query.get("acct", "").lstrip("@").lower()
        handle = self.handles.get(acct) or self.handles.get(f"{acct}@{self._domain()}")
        return await self._answer(request, handle)

    async def _by_id(self, request: web.Request) -> web.StreamResponse:
        wanted = request.match_info["id"]
        handle = next((h for h in self.handles.values() if account_id(h) == wanted), None)
        return await self._answer(request, handle)

    def _domain(self) -> str:
        first = next(iter(self.handles.values()), "a@b")
        return first.partition("@")[2].lower()

    async def _answer(self, request: web.Request, handle: str | None) -> web.StreamResponse:
        if handle is None:
            return web.json_response({"error": "Record not found"}, status=404)
        fault = self.faults.get(handle.lower())
        if fault is not None:
            made = fault(request)
            if asyncio.iscoroutine(made):
                made = await made
            if isinstance(made, web.StreamResponse):
                return made
        if self.delay:
            await asyncio.sleep(self.delay)
        followers = self.record(handle)
        body = {
            "id": account_id(handle),
            "username": handle.partition("@")[0],
            "acct": handle,
            "followers_count": followers,
            "following_count": 10,
            "statuses_count": 20,
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    def record(self, handle: str) -> int:
        """A fresh count for ``handle``, written in the ledger as sent (faults use it for answers that are
        still valid observations)."""
        followers = next(self._counter)
        self.ledger.answers.append(Answer(handle, followers, time.monotonic()))
        return followers


def account_id(handle: str) -> str:
    return str(int(hashlib.sha256(handle.lower().encode()).hexdigest()[:12], 16))
