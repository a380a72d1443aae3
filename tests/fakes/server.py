"""What every fake platform shares: a real HTTP server on 127.0.0.1, scripted accounts, a queue of faults,
a rate-limit budget announced in the platform's own header dialect, and a log of every request with the
(injected) time it arrived, so tests can prove no request came before a reset."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from aiohttp import web

from service.clock import ManualClock
from service.config import PlatformConfig
from service.samples import AccountState
from service.sources.base import Target


class Fault(StrEnum):
    RATE_LIMIT = "rate_limit"  # 429 (or the platform's equivalent) with its reset header
    QUOTA = "quota"  # the platform's quota or usage-cap answer
    SERVER_ERROR = "server_error"  # 503 with an HTML body
    SLOW = "slow"  # answers after the client has given up
    TRUNCATED = "truncated"  # promises more bytes than it sends, then hangs up
    INVALID_JSON = "invalid_json"
    HUGE_BODY = "huge_body"  # several MB of valid JSON
    UNAUTHORIZED = "unauthorized"  # the platform's bad-credential answer
    EXTRA_ACCOUNT = "extra_account"  # the answer carries an account nobody asked for
    ECHO_CREDENTIAL = "echo_credential"  # a broken server that repeats the credential it got in its error
    # hostile answers (issue 11): each must stay the problem of the request or account it came with
    NESTED_JSON = "nested_json"  # JSON nested deeper than Python's recursion limit
    ODD_HEADERS = "odd_headers"  # the normal answer, its rate-limit headers and Retry-After saying "²"
    TRICKLE = "trickle"  # the headers, then one byte every TRICKLE_SECONDS, never ending
    GZIP_BOMB = "gzip_bomb"  # 50 kB on the wire, 50 MB once decoded
    ENDLESS = "endless"  # 50 MB of valid JSON, streamed
    REDIRECT = "redirect"  # 302 to the cloud metadata address
    NUL_ERROR = "nul_error"  # an error answer whose every text field holds NUL and a lone surrogate


GENERIC_FAULTS = {
    Fault.SERVER_ERROR,
    Fault.SLOW,
    Fault.TRUNCATED,
    Fault.INVALID_JSON,
    Fault.HUGE_BODY,
    Fault.ECHO_CREDENTIAL,
    Fault.NESTED_JSON,
    Fault.TRICKLE,
    Fault.GZIP_BOMB,
    Fault.ENDLESS,
    Fault.REDIRECT,
    Fault.NUL_ERROR,
}
TRICKLE_SECONDS = 0.1
METADATA_URL = "http://169.254.169.254/latest/meta-data/"


@dataclass
class FakeAccount:
    id: str
    handle: str  # as the platform answers it; tests set hostile ones (300 characters, NUL) here
    followers: Any  # an int normally; None (left out), negative or absurd values to test strict parsing
    following: int | None = 10
    posts: int | None = 20
    suspended: bool = False
    hidden: bool = False  # YouTube's hiddenSubscriberCount


@dataclass(frozen=True)
class Seen:
    at: datetime
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str] = field(repr=False)
    body: Any = None  # a POSTed JSON body (a GraphQL query)


class FakePlatform(ABC):
    """Subclasses answer ``/...`` requests in their platform's format (``answer``) and name its headers."""

    platform: ClassVar[str]
    case: ClassVar[str] = (
        ""  # the name tests know this fake by, when a platform has several (else the platform)
    )
    suspended_state: ClassVar[AccountState] = AccountState.SUSPENDED  # what a suspension looks like there
    per_account: ClassVar[bool] = False  # one request per account: an extra account replaces the asked one
    string_ids: ClassVar[bool] = True  # ids are JSON strings (an id can end in a newline); else numbers
    limit: ClassVar[int] = 300
    window: ClassVar[timedelta] = timedelta(minutes=15)
    rate_limit_wait: ClassVar[timedelta] = timedelta(seconds=90)
    slow_seconds: ClassVar[float] = 2.0

    def __init__(self, clock: ManualClock, secret: str = "") -> None:
        self.clock = clock
        self.secret = secret
        self.accounts: list[FakeAccount] = []
        self.faults: list[Fault] = []
        self.requests: list[Seen] = []
        self.remaining = self.limit
        self.window_reset = clock.now() + self.window
        self.url = ""
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- scripting ---------------------------------------------------------------------------------------
    def new_id(self) -> str:
        return str(next(self._ids) * 1000 + 7)

    def add(self, name: str, followers: Any, **fields: Any) -> FakeAccount:
        account = FakeAccount(
            id=self.new_id(), handle=self.stored_handle(name), followers=followers, **fields
        )
        self.accounts.append(account)
        return account

    def find(self, handle: str) -> FakeAccount | None:
        return next((a for a in self.accounts if a.handle.lower() == handle.lower()), None)

    def by_id(self, account_id: str) -> FakeAccount | None:
        return next((a for a in self.accounts if a.id == account_id), None)

    def rename(self, account: FakeAccount, new_name: str) -> None:
        account.handle = self.stored_handle(new_name)

    def fail_next(self, *faults: Fault) -> None:
        if Fault.GZIP_BOMB in faults:
            _bomb()  # made now, not while the client's deadline runs
        self.faults.extend(faults)

    def intruder(self) -> FakeAccount:
        """An account nobody asked for, slipped into an answer."""
        return FakeAccount(id=self.new_id(), handle=self.stored_handle("intruder"), followers=666_000)

    def target(self, account: FakeAccount | str, *, known_id: bool = False) -> Target:
        """The target as the user writes it (``handle``), optionally with the stable id already learnt."""
        handle = account if isinstance(account, str) else account.handle
        platform_id = account.id if known_id and isinstance(account, FakeAccount) else None
        return Target(self.written(handle), platform_id)

    def stored_handle(self, name: str) -> str:
        """The handle as the platform keeps it, for a short name like ``alice``."""
        return name

    def written(self, handle: str) -> str:
        """The stored handle as a user writes it in the watchlist."""
        return handle

    def requests_since(self, index: int) -> list[Seen]:
        return self.requests[index:]

    # --- what subclasses provide ------------------------------------------------------------------------
    @abstractmethod
    def settings(self) -> PlatformConfig: ...

    @abstractmethod
    async def answer(self, request: web.Request, extra: bool) -> web.Response: ...

    @abstractmethod
    def budget_headers(self, remaining: int, reset_at: datetime) -> dict[str, str]: ...

    def rate_limited(self) -> web.Response:
        reset_at = self.clock.now() + self.rate_limit_wait
        return self.json({"error": "Too Many Requests"}, status=429, headers=self.budget_headers(0, reset_at))

    def quota(self) -> web.Response:
        return self.rate_limited()

    def unauthorized(self) -> web.Response:
        return self.json({"error": "unauthorized"}, status=401)

    def authorized(self, request: web.Request) -> bool:
        return True

    def expected_followers(self, account: FakeAccount) -> int:
        return int(account.followers)

    def expected_handle(self, account: FakeAccount) -> str:
        return self.written(account.handle)

    # --- machinery ---------------------------------------------------------------------------------------
    @staticmethod
    def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            text=json.dumps(body), status=status, headers=headers, content_type="application/json"
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.method == "POST" and request.can_read_body else None
        self.requests.append(
            Seen(self.clock.now(), request.path, list(request.query.items()), dict(request.headers), body)
        )
        fault = self.faults.pop(0) if self.faults else None
        if fault in GENERIC_FAULTS:
            return await self._generic(fault, request)
        if fault is Fault.RATE_LIMIT:
            return self.rate_limited()
        if fault is Fault.QUOTA:
            return self.quota()
        if fault is Fault.UNAUTHORIZED or not self.authorized(request):
            return self.unauthorized()
        response = await self.answer(request, extra=fault is Fault.EXTRA_ACCOUNT)
        response.headers.update(self._spend())
        if fault is Fault.ODD_HEADERS:
            response.headers.update({name: "²" for name in self.budget_headers(1, self.clock.now())})
            response.headers["Retry-After"] = "²"
        return response

    def _spend(self) -> dict[str, str]:
        if self.clock.now() >= self.window_reset:
            self.remaining, self.window_reset = self.limit, self.clock.now() + self.window
        self.remaining = max(0, self.remaining - 1)
        return self.budget_headers(self.remaining, self.window_reset)

    async def _generic(self, fault: Fault | None, request: web.Request) -> web.StreamResponse:
        if fault is Fault.SERVER_ERROR:
            return web.Response(status=503, text="<html>upstream busy</html>", content_type="text/html")
        if fault is Fault.INVALID_JSON:
            return web.Response(text='{"data": [{"id": ', content_type="application/json")
        if fault is Fault.HUGE_BODY:
            return self.json({"padding": "x" * 5_000_000})
        if fault is Fault.ECHO_CREDENTIAL:
            echo = " ".join(
                v for k, v in request.headers.items() if k.lower() in ("authorization", "x-goog-api-key")
            )
            fields = ("error", "message", "detail", "title")
            return self.json({**{f: f"bad credential {echo}" for f in fields}, "status": 400}, 400)
        if fault is Fault.SLOW:
            await asyncio.sleep(self.slow_seconds)
            return await self.answer(request, extra=False)
        if fault is Fault.NESTED_JSON:
            return web.Response(
                text='{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", content_type="application/json"
            )
        if fault is Fault.REDIRECT:
            return web.Response(status=302, headers={"Location": METADATA_URL})
        if fault is Fault.NUL_ERROR:
            text = "bad\x00 request \ud800"
            fields = ("error", "message", "detail", "title")
            return self.json({**{f: text for f in fields}, "status": 400}, 400)
        if fault is Fault.GZIP_BOMB:
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            return web.Response(body=_bomb(), headers=headers)
        if fault in (Fault.TRICKLE, Fault.ENDLESS):
            return await self._stream(request, fault)
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "5000"})
        await response.prepare(request)
        await response.write(b'{"data": [{"id": "1"')
        assert request.transport is not None
        request.transport.close()
        return response

    async def _stream(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            await response.write(b'{"padding": "')
            for _ in range(50 if fault is Fault.ENDLESS else 10**9):
                if fault is Fault.TRICKLE:
                    await asyncio.sleep(TRICKLE_SECONDS)
                await response.write(b"x" * (1 if fault is Fault.TRICKLE else 1_000_000))
            await response.write(b'"}')
        except (ConnectionError, RuntimeError):  # the client hung up: what it was meant to do
            pass
        return response


@functools.cache
def _bomb() -> bytes:
    """Valid JSON of 50 MB, gzipped to 200 kB (a gzip stream, level 1: fast enough to make on demand)."""
    gzipped = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = b"0" * 1_000_000
    parts = [gzipped.compress(b'{"padding": "'), *(gzipped.compress(zeros) for _ in range(50))]
    return b"".join([*parts, gzipped.compress(b'"}'), gzipped.flush()])
