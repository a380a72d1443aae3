"""What every HTTP source shares: one request with its failures turned into ``SourceError``, strict JSON
and strict counts. ``service.sources.api.Api`` adds the rate gate and metrics on top."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from service.sources.base import SourceError

MAX_BODY_BYTES = 2_000_000  # a profile answer is a few kB; more is a broken or hostile server
MAX_COUNT = 10**10  # more followers than people on Earth: a broken answer

Params = Mapping[str, str | Sequence[str]]


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Params | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[httpx.Response, Any]:
    """GET ``url`` and decode its JSON body; the response is returned for its status and headers.

    Network failures and undecodable bodies raise ``SourceError``; HTTP error statuses do not (the caller
    knows what each status means on its platform).
    """
    response, body = await get_body(client, url, params=params, headers=headers)
    return response, decode_json(response, body)


async def get_body(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Params | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[httpx.Response, bytes]:
    # Causes are dropped (``from None``): httpx errors can carry the request, and its URL may hold a key.
    try:
        async with client.stream("GET", url, params=params, headers=headers) as response:
            body = await _read_capped(response)
    except httpx.TimeoutException:
        raise SourceError(f"{_where(url)} did not answer in time", kind="timeout") from None
    except httpx.HTTPError as exc:
        raise SourceError(
            f"{_where(url)} could not be reached: {type(exc).__name__}", kind="connection"
        ) from None
    return response, body


def decode_json(response: httpx.Response, body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
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
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}{f':{parsed.port}' if parsed.port else ''}{parsed.path}"


def count(data: Mapping[str, Any], key: str, *, required: bool) -> int | None:
    """A count field: a non-negative integer below 10^10, else ``ValueError`` naming the field."""
    value = data.get(key)
    if value is None:
        if required:
            raise ValueError(f"{key} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is not an integer: {value!r:.40}")
    return in_range(key, value)


def required_count(data: Mapping[str, Any], key: str) -> int:
    value = count(data, key, required=True)
    assert value is not None  # count() raises for a missing required field
    return value


def in_range(key: str, value: int) -> int:
    if not 0 <= value < MAX_COUNT:
        raise ValueError(f"{key} is out of range: {value}")
    return value
