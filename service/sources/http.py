"""What every HTTP source shares: one request within one overall deadline, its failures turned into
``SourceError``, and strict JSON. ``service.sources.api.Api`` adds the rate gate and metrics on top."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from service.sources.base import SourceError

MAX_BODY_BYTES = 2_000_000  # a profile answer is a few kB; more is a broken or hostile server

Params = Mapping[str, str | Sequence[str]]


def deadline_of(client: httpx.AsyncClient) -> float | None:
    """The overall deadline of one request: the client's longest timeout (``poll.timeout`` in the daemon).

    httpx's own timeouts bound each connect and each read; a server sending one byte a second meets
    none of them. The deadline bounds the whole request, connection, headers and body together.
    """
    timeout = client.timeout
    limits = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t is not None]
    return max(limits) if limits else None


async def get_body(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Params | None = None,
    headers: Mapping[str, str] | None = None,
    deadline: float | None = None,
    payload: Any = None,
) -> tuple[httpx.Response, bytes]:
    """GET ``url`` (POST ``payload`` as JSON when given) and read its body within ``deadline`` seconds.

    Network failures, a deadline passed and an oversized body raise ``SourceError``; HTTP error statuses
    do not (the caller knows what each status means on its platform).
    """
    method = "GET" if payload is None else "POST"
    # Causes are dropped (``from None``): httpx errors can carry the request, and its URL may hold a key.
    try:
        async with asyncio.timeout(deadline):
            async with client.stream(method, url, params=params, headers=headers, json=payload) as response:
                body = await _read_capped(response)
    except (httpx.TimeoutException, TimeoutError):
        raise SourceError(f"{_where(url)} did not answer in time", kind="timeout") from None
    except httpx.DecodingError:
        raise SourceError(
            f"{_where(url)} sent a body that does not decode", kind="invalid_response"
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
        raise SourceError(
            f"{_where(url)} could not be reached: {type(exc).__name__}", kind="connection"
        ) from None
    return response, body


def decode_json(response: httpx.Response, body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python's stack
        raise SourceError(
            f"{_where(str(response.url))} answered HTTP {response.status_code} with a body that is not JSON",
            kind="invalid_response",
        ) from None


async def _read_capped(response: httpx.Response) -> bytes:
    chunks = bytearray()
    async for chunk in response.aiter_bytes():
        chunks.extend(chunk)
        if len(chunks) > MAX_BODY_BYTES:
            raise SourceError(
                f"{_where(str(response.url))} sent more than {MAX_BODY_BYTES:,} bytes",
                kind="invalid_response",
            )
    return bytes(chunks)


def _where(url: str) -> str:
    """Scheme, host and path only: query strings may carry keys."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "the platform"
    return f"{parsed.scheme}://{parsed.host}{f':{parsed.port}' if parsed.port else ''}{parsed.path}"
