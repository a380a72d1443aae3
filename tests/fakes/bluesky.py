"""Bluesky AppView: ``getProfiles`` (missing actors silently left out) and ``getProfile`` error codes,
IETF ``ratelimit-*`` headers with the reset as delta-seconds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from service.config import SETTINGS, PlatformConfig
from tests.fakes.server import FakeAccount, FakePlatform

PROFILES = "/xrpc/app.bsky.actor.getProfiles"
PROFILE = "/xrpc/app.bsky.actor.getProfile"


class FakeBluesky(FakePlatform):
    platform = "bluesky"

    def settings(self) -> PlatformConfig:
        return SETTINGS["bluesky"](base_url=self.url)

    def new_id(self) -> str:
        return f"did:plc:fake{int(super().new_id()):020d}"

    def stored_handle(self, name: str) -> str:
        return f"{name}.bsky.social"

    def budget_headers(self, remaining: int, reset_at: datetime) -> dict[str, str]:
        return {
            "ratelimit-limit": str(self.limit),
            "ratelimit-remaining": str(remaining),
            "ratelimit-reset": str(max(0, int((reset_at - self.clock.now()).total_seconds()))),
            "ratelimit-policy": f"{self.limit};w={int(self.window.total_seconds())}",
        }

    def rate_limited(self) -> web.Response:
        headers = self.budget_headers(0, self.clock.now() + self.rate_limit_wait)
        return self.json({"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, 429, headers)

    def unauthorized(self) -> web.Response:
        return self.json({"error": "AuthMissing", "message": "Authentication Required"}, 401)

    def lookup(self, actor: str) -> FakeAccount | None:
        return self.by_id(actor) if actor.startswith("did:") else self.find(actor)

    async def answer(self, request: web.Request, extra: bool) -> web.Response:
        if request.path == PROFILES:
            actors = request.query.getall("actors", [])
            if len(actors) > 25:
                return self.json(
                    {"error": "InvalidRequest", "message": "actors must not have more than 25"}, 400
                )
            found = [self.lookup(actor) for actor in actors]
            profiles = [_profile(a) for a in found if a is not None and not a.suspended]
            if extra:
                profiles.append(_profile(self.intruder()))
            return self.json({"profiles": profiles})
        if request.path == PROFILE:
            account = self.lookup(request.query.get("actor", ""))
            if account is None:
                return self.json({"error": "InvalidRequest", "message": "Profile not found"}, 400)
            if account.suspended:
                return self.json({"error": "AccountTakedown", "message": "Account has been suspended"}, 400)
            return self.json(_profile(account))
        return self.json({"error": "MethodNotImplemented"}, 501)


def _profile(account: FakeAccount) -> dict[str, Any]:
    body: dict[str, Any] = {
        "did": account.id,
        "handle": account.handle,
        "displayName": account.handle.split(".")[0].title(),
        "followsCount": account.following,
        "postsCount": account.posts,
        "indexedAt": "2026-01-01T00:00:00.000Z",
    }
    if account.followers is not None:
        body["followersCount"] = account.followers
    return body
