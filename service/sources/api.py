"""``Api``: one platform endpoint behind one credential, every request through its rate gate and counted."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from service.sources.base import SourceError
from service.sources.http import Params, deadline_of, decode_json, get_body
from service.sources.metrics import SourceMetrics
from service.sources.ratelimit import RateGate

CREDENTIAL_HEADERS = frozenset({"authorization", "x-goog-api-key"})
REDACTED = "[redacted]"


class Api:
    """One platform endpoint behind one credential.

    Every request first asks the rate gate (a closed gate raises ``SourceError`` of kind ``rate_limited``
    or ``backoff`` and sends nothing), is counted, must finish within ``deadline`` seconds, and feeds its
    rate-limit headers back to the gate. Any credential the server echoes is redacted before the body is
    read. 429 and 5xx answers, timeouts, connection failures and undecodable bodies raise ``SourceError``
    with ``retry_at``; other statuses are returned for the source to interpret.
    """

    def __init__(
        self,
        platform: str,
        client: httpx.AsyncClient,
        base_url: str,
        gate: RateGate,
        *,
        headers: Mapping[str, str] | None = None,
        metrics: SourceMetrics | None = None,
        deadline: float | None = None,
    ) -> None:
        self.platform = platform
        self.base_url = base_url.rstrip("/")
        self.gate = gate
        self._client = client
        self._headers = dict(headers or {})
        self._metrics = metrics
        self._secrets = _secrets_in(self._headers)
        self._deadline = deadline_of(client) if deadline is None else deadline

    async def get(
        self, path: str, params: Params | None = None, *, batch: int | None = None
    ) -> tuple[httpx.Response, Any]:
        """One request; ``batch`` (from ``next_batch``) marks requests of one ``fetch``."""
        return await self._send(path, params=params, batch=batch)

    async def post(self, path: str, payload: Any, *, batch: int | None = None) -> tuple[httpx.Response, Any]:
        """One JSON POST (a GraphQL query), with everything ``get`` does."""
        return await self._send(path, payload=payload, batch=batch)

    def path_of(self, location: str, answered: httpx.Response) -> str | None:
        """The path under ``base_url`` a redirect points to; None when it leads anywhere else."""
        try:
            target = str(answered.url.join(location))
        except (httpx.InvalidURL, ValueError):
            return None
        path = target.removeprefix(self.base_url)
        return path if path != target and path.startswith("/") else None

    async def _send(
        self, path: str, *, params: Params | None = None, payload: Any = None, batch: int | None = None
    ) -> tuple[httpx.Response, Any]:
        self.gate.check(batch)
        if self._metrics is not None:
            self._metrics.request(self.platform)
        try:
            response, raw = await get_body(
                self._client,
                self.base_url + path,
                params=params,
                headers=self._headers,
                deadline=self._deadline,
                payload=payload,
            )
        except SourceError as exc:
            raise self.failed(exc.message, kind=exc.kind, batch=batch) from None
        raw = self._redact(raw)  # a server that echoes our credential must not get it into messages
        self.gate.observe(response)
        if response.status_code == 429:
            raise self.failed(f"{self.platform} is rate limiting us (HTTP 429)", kind="rate_limited")
        if response.status_code >= 500:
            message = f"{self.platform} failed with HTTP {response.status_code}"
            raise self.failed(message, kind="http_5xx", batch=batch)
        try:
            body = decode_json(response, raw)
        except SourceError as exc:
            raise self.failed(exc.message, kind=exc.kind, batch=batch) from None
        if response.status_code < 400:
            self.succeeded(batch)
        return response, body

    async def aclose(self) -> None:
        """The source owns its client (the daemon makes one per platform)."""
        await self._client.aclose()

    def succeeded(self, batch: int | None = None) -> None:
        """The platform answered sensibly (2xx, or a 4xx about one account): healthy, backoff starts over."""
        self.gate.succeeded(batch)
        if self._metrics is not None:
            self._metrics.success(self.platform)

    def failed(
        self,
        message: str,
        *,
        kind: str,
        permanent: bool = False,
        retry_at: datetime | None = None,
        batch: int | None = None,
    ) -> SourceError:
        """Count a failed request, close the gate for as long as the failure calls for, and describe it.

        Rate limits and quotas wait for the platform's reset (``retry_at`` or what the headers said);
        everything else backs off exponentially, so a bad credential is not retried in a tight loop either.
        """
        if self._metrics is not None:
            self._metrics.failure(self.platform, kind)
        if retry_at is not None:
            until = self.gate.block(retry_at)
        elif kind == "rate_limited" and self.gate.blocked_until and self.gate.blocked_until > self.gate.now():
            until = self.gate.blocked_until
        else:
            until = self.gate.back_off(batch)
        message = self._redact(message.encode()).decode()
        return SourceError(message, kind=kind, permanent=permanent, retry_at=until)

    def _redact(self, data: bytes) -> bytes:
        for secret in self._secrets:
            data = data.replace(secret, REDACTED.encode())
        return data


def _secrets_in(headers: Mapping[str, str]) -> list[bytes]:
    """The credential values in ``headers`` (a bearer token without its scheme), longest first."""
    values = {
        value.removeprefix("Bearer ").strip()
        for name, value in headers.items()
        if name.lower() in CREDENTIAL_HEADERS
    }
    return sorted((v.encode() for v in values if len(v) >= 4), key=len, reverse=True)
