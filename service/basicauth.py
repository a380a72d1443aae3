"""HTTP basic authentication against bcrypt hashes, as Prometheus exporters check ``basic_auth_users``.

bcrypt is slow on purpose (about 60 ms at cost 10), so a verdict is remembered: a scraper that sends the same
credentials every 15 s pays for bcrypt once, like the exporter-toolkit's cache. What is remembered is a digest
keyed with a secret drawn at start, never a password; a known good password is recognised with a constant-time
comparison. bcrypt runs in a worker thread (it releases the GIL), one check at a time, so it never holds up the
event loop, and concurrent requests with the same credentials share one check. An unknown user is checked against
a fixed hash, so that the time taken does not tell which users exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import bcrypt
from pydantic import SecretStr

# bcrypt (cost 10) of a random password nobody knows: the hash an unknown user is checked against.
_NOBODY = b"$2b$10$CnHSs3C5LCNnaX2Ce9V2.uAV8qlhCqyRxIoGUfX3nA3bcK7Qe2vhK"
_MAX_PASSWORD = 72  # bytes bcrypt reads; bcrypt 5 refuses longer passwords rather than cut them
_REMEMBERED = 100  # verdicts kept, as the toolkit keeps


@dataclass(frozen=True)
class _Attempt:
    user: str
    good: bytes
    bad: bytes
    known: bool


class BasicAuth:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._good: dict[str, bytes] = {}  # user -> keyed digest of (hash, password) last found right
        self._bad: OrderedDict[bytes, None] = (
            OrderedDict()
        )  # keyed digests of (user, hash, password) found wrong
        self._checking: dict[bytes, asyncio.Future[bool]] = {}
        self._bcrypt = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flockwatch-bcrypt")

    async def allows(self, users: Mapping[str, SecretStr], authorization: str | None) -> bool:
        """Whether the ``Authorization`` header names a user of ``users`` with that user's password."""
        credentials = parse_basic(authorization)
        if credentials is None:
            return False
        user, password = credentials
        known = users.get(user)
        hashed = known.get_secret_value().encode() if known is not None else _NOBODY
        good = self._digest(b"good", hashed, password)
        if hmac.compare_digest(self._good.get(user, b""), good):
            return known is not None
        bad = self._digest(b"bad", user.encode(), hashed, password)
        if bad in self._bad:
            return False
        right = await self._check(_Attempt(user, good, bad, known is not None), password, hashed)
        return right and known is not None

    def close(self) -> None:
        self._bcrypt.shutdown(wait=False, cancel_futures=True)

    def _digest(self, *parts: bytes) -> bytes:
        return hashlib.blake2b(b"\0".join(parts), key=self._key, digest_size=32).digest()

    async def _check(self, attempt: _Attempt, password: bytes, hashed: bytes) -> bool:
        pending = self._checking.get(attempt.bad)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(self._bcrypt, _bcrypt_matches, password, hashed)
            self._checking[attempt.bad] = pending
            pending.add_done_callback(lambda done: self._settled(attempt, done))
        return await asyncio.shield(pending)

    def _settled(self, attempt: _Attempt, done: asyncio.Future[bool]) -> None:
        # In the same step as leaving _checking, so that no request comes between and checks again.
        self._checking.pop(attempt.bad, None)
        if not done.cancelled() and done.exception() is None:
            self._remember(attempt.user, attempt.good, attempt.bad, done.result() and attempt.known)

    def _remember(self, user: str, good: bytes, bad: bytes, right: bool) -> None:
        if right:
            if len(self._good) >= _REMEMBERED and user not in self._good:
                self._good.pop(next(iter(self._good)))
            self._good[user] = good
            return
        self._bad[bad] = None
        while len(self._bad) > _REMEMBERED:
            self._bad.popitem(last=False)


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    if len(password) > _MAX_PASSWORD:
        return False
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a hash bcrypt cannot read: the file was checked, so this is not a match
        return False


def parse_basic(authorization: str | None) -> tuple[str, bytes] | None:
    """(user, password) from ``Basic base64(user:password)``, None for anything else."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user, sep, password = decoded.partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None
