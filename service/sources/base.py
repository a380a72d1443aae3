"""The one interface every platform implements: a batched fetch of many accounts.

A source turns one call of ``fetch`` into a result for each account asked about: either an
``Observation`` (the counts, with the platform's stable id) or an ``AccountProblem`` (not found,
suspended, hidden, or an error for that account alone). A failure of the whole request (network,
5xx, 429, bad credential) is raised as ``SourceError`` instead, and no account gets a result. Nothing
else ever leaves ``fetch``: ``service.sources.edge`` sees to it for every source the registry builds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Protocol

from service.samples import AccountState

if TYPE_CHECKING:
    from service.sources.api import Api
    from service.sources.platform import Platform


@dataclass(frozen=True)
class Target:
    """An account to fetch: the handle the user wrote and, once known, the platform's stable id."""

    handle: str
    platform_id: str | None = None


@dataclass(frozen=True)
class Observation:
    platform_id: str
    handle: str  # the handle as the platform spells it now (differs from the target's after a rename)
    followers: int
    following: int | None = None
    posts: int | None = None
    followers_step: int = 1


@dataclass(frozen=True)
class AccountProblem:
    state: AccountState  # NOT_FOUND, SUSPENDED, PROTECTED or ERRORING
    message: str
    permanent: bool = False  # True: retrying soon will not help (unknown account, suspended)
    platform_id: str | None = None
    kind: str = "account"  # a short word for the failure counter, as in SourceError.kind
    deferred: bool = False  # the rate gate held the request back: nothing new is known of the account
    retry_at: datetime | None = None  # the earliest time asking again about this account can help


FetchResult = Observation | AccountProblem


class SourceError(Exception):
    """The whole request failed: no account in it gets a sample, each gets the error as its state.

    ``kind`` is a short word for metrics: timeout, connection, http_5xx, rate_limited, backoff, auth,
    invalid_response. ``retry_at``, when given, is the earliest time the platform allows another request.
    ``deferred`` means no request was sent at all: the rate gate held it back until ``retry_at`` (a spent
    budget, a Retry-After, a backoff after another batch failed), so the accounts' states stay as they were.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        permanent: bool = False,
        retry_at: datetime | None = None,
        deferred: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.permanent = permanent
        self.retry_at = retry_at
        self.deferred = deferred


class Source(Protocol):
    @property
    def platform(self) -> str: ...

    @property
    def batch_size(self) -> int:
        """The most accounts one ``fetch`` call takes."""
        ...

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        """Results keyed by the targets asked for; a target missing from the map had no answer."""
        ...

    async def aclose(self) -> None: ...


class ApiSource:
    """What a source speaking to one endpoint shares: its declaration's name and batch size, and closing."""

    declared: ClassVar[Platform]

    def __init__(self, api: Api) -> None:
        self._api = api

    @property
    def platform(self) -> str:
        return self.declared.name

    @property
    def batch_size(self) -> int:
        return self.declared.batch_size

    async def aclose(self) -> None:
        await self._api.aclose()
