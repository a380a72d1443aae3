"""The simulated platform's HTTP server, on loopback, on a given clock: the Mastodon account lookup API for
accounts (``user@host``) and GitHub's REST repository API for repositories (``owner/name``), so the demo
needs no token and no network.

Faults can be set per account for tests: ``not_found``, ``server_error``, ``slow`` (answers after
``slow_seconds``), ``invalid_json``, ``suspended`` (a repository: blocked, HTTP 451).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from aiohttp import web

from service.clock import Clock
from service.simulator.scenarios import Scenario

RATE_LIMIT = 300
RATE_WINDOW = timedelta(minutes=5)
FAULTS = ("not_found", "server_error", "slow", "invalid_json", "suspended")


class SimulatedPlatform:
    def __init__(
        self, scenarios: Sequence[Scenario], clock: Clock, started_at: datetime | None = None
    ) -> None:
        self.scenarios = {s.handle.lower(): s for s in scenarios}
        self.clock = clock
        self.started_at = started_at or clock.now()
        self.faults: dict[str, str] = {}
        self.slow_seconds = 5.0
        self.requests: list[tuple[datetime, str]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    def set_fault(self, handle: str, fault: str | None) -> None:
        if fault is None:
            self.faults.pop(handle.lower(), None)
        elif fault in FAULTS:
            self.faults[handle.lower()] = fault
        else:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def days(self) -> float:
        return (self.clock.now() - self.started_at).total_seconds() / 86400

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/accounts/lookup", self._lookup)
        app.router.add_get("/api/v1/accounts/{id}", self._by_id)
        app.router.add_get("/repos/{owner}/{name}", self._repository)
        app.router.add_get("/repositories/{id}", self._repository_by_id)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _lookup(self, request: web.Request) -> web.StreamResponse:
        acct = request.query.get("acct", "").lstrip("@").lower()
        self.requests.append((self.clock.now(), acct))
        return await self._answer(self.scenarios.get(acct))

    async def _by_id(self, request: web.Request) -> web.StreamResponse:
        wanted = request.match_info["id"]
        scenario = next((s for s in self.scenarios.values() if account_id(s.handle) == wanted), None)
        self.requests.append((self.clock.now(), wanted))
        return await self._answer(scenario)

    async def _repository(self, request: web.Request) -> web.StreamResponse:
        wanted = f"{request.match_info['owner']}/{request.match_info['name']}".lower()
        self.requests.append((self.clock.now(), wanted))
        return await self._answer(self.scenarios.get(wanted), self.repository_entity)

    async def _repository_by_id(self, request: web.Request) -> web.StreamResponse:
        wanted = request.match_info["id"]
        scenario = next((s for s in self.scenarios.values() if account_id(s.handle) == wanted), None)
        self.requests.append((self.clock.now(), wanted))
        return await self._answer(scenario, self.repository_entity)

    async def _answer(
        self, scenario: Scenario | None, entity: Callable[[Scenario], dict[str, object]] | None = None
    ) -> web.StreamResponse:
        fault = self.faults.get(scenario.handle.lower()) if scenario else None
        if scenario is None or fault == "not_found":
            return self._json({"error": "Record not found", "message": "Not Found"}, status=404)
        if fault == "server_error":
            return self._json({"error": "We're sorry, but something went wrong on our end."}, status=503)
        if fault == "invalid_json":
            return web.Response(text='{"id": "1", "followers_count": ', content_type="application/json")
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)
        if entity is not None:
            if fault == "suspended":
                return self._json({"message": "Repository access blocked", "block": {"reason": "dmca"}}, 451)
            return self._json(entity(scenario))
        return self._json(self.account_entity(scenario, suspended=fault == "suspended"))

    def repository_entity(self, scenario: Scenario) -> dict[str, object]:
        """A repository as GitHub's REST API gives it: stars, watchers (subscribers) and forks."""
        days = self.days()
        stars = scenario.followers(days)
        return {
            "id": int(account_id(scenario.handle)),
            "name": scenario.handle.partition("/")[2],
            "full_name": scenario.handle,
            "description": scenario.description,
            "stargazers_count": stars,
            "watchers_count": stars,  # GitHub's historical name for the star count
            "subscribers_count": scenario.following_count(days),
            "forks_count": scenario.posts(days),
        }

    def account_entity(self, scenario: Scenario, *, suspended: bool = False) -> dict[str, object]:
        days = self.days()
        username = scenario.handle.split("@")[0]
        entity: dict[str, object] = {
            "id": account_id(scenario.handle),
            "username": username,
            "acct": scenario.handle,
            "display_name": username.title(),
            "locked": False,
            "bot": False,
            "created_at": "2021-03-01T00:00:00.000Z",
            "note": f"<p>{scenario.description}</p>",
            "url": f"https://{scenario.handle.split('@')[1]}/@{username}",
            "followers_count": scenario.followers(days),
            "following_count": scenario.following_count(days),
            "statuses_count": scenario.posts(days),
            "emojis": [],
            "fields": [],
        }
        if suspended:
            entity.update(
                {"suspended": True, "followers_count": 0, "following_count": 0, "statuses_count": 0}
            )
        return entity

    def _json(self, body: object, status: int = 200) -> web.Response:
        reset = (self.clock.now() + RATE_WINDOW).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        headers = {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(RATE_LIMIT - 1),
            "X-RateLimit-Reset": reset,
        }
        return web.Response(
            status=status, text=json.dumps(body), content_type="application/json", headers=headers
        )


def account_id(handle: str) -> str:
    """A stable numeric id, as Mastodon gives (a string of digits)."""
    return str(int(hashlib.sha256(handle.lower().encode()).hexdigest()[:12], 16))
