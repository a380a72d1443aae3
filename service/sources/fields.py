"""Strict reading of the fields of one answer: counts, text, objects. Anything off the documented shape
raises ``ValueError`` naming the field; ``per_account`` turns whatever a parser raises into that
account's problem, so one strange answer never costs the others theirs."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec

from service.samples import AccountState
from service.sources.base import AccountProblem, FetchResult

MAX_COUNT = 10**10  # more followers than people on Earth: a broken answer
MAX_TEXT = 500  # the longest message kept (the database holds this much)

P = ParamSpec("P")


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


def text(data: Mapping[str, Any], key: str) -> str:
    """A required non-empty string field."""
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is missing or not text")
    return value


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} is not a list")
    return value


def malformed(reason: str, platform_id: str | None = None) -> AccountProblem:
    return AccountProblem(
        AccountState.ERRORING, f"malformed answer: {reason}", kind="invalid_response", platform_id=platform_id
    )


def per_account(parse: Callable[P, FetchResult]) -> Callable[P, FetchResult]:
    """A parser of one account's part of an answer, whose every failure is that account's problem."""

    @functools.wraps(parse)
    def parsed(*args: P.args, **kwargs: P.kwargs) -> FetchResult:
        try:
            return parse(*args, **kwargs)
        except ValueError as exc:
            return malformed(str(exc))
        except Exception as exc:  # deep nesting, odd types: whatever one answer raises stays its own
            return malformed(f"unreadable ({type(exc).__name__})")

    return parsed


def clean(message: str) -> str:
    """Text fit to store and show: no control characters or NUL, no lone surrogates, at most 500 characters."""
    printable = "".join(c if c.isprintable() else " " for c in message[: MAX_TEXT * 2])
    encodable = printable.encode("utf-8", "replace").decode("utf-8")
    return encodable[:MAX_TEXT]


def storable(value: str, limit: int) -> bool:
    """Whether ``value`` can be stored as it is: printable, encodable, within ``limit`` characters."""
    if not value or len(value) > limit or not value.isprintable():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
