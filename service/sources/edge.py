"""The edge between what a platform answers and what flockwatch keeps.

Every source the registry builds is wrapped in an ``Edge``. Going out, a stored id that is not of the
platform's form (``"123\\n"``) is not used: the lookup goes by handle, and the answer heals the id. Coming
back, every result is checked and normalised: an observation must carry an id of the platform's form, a
handle the database can hold (at most 255 printable characters, no NUL, no lone surrogate) and sane
counts, else it is that account's ``invalid_response``; a problem's message is cut to 500 printable
characters and an id of the wrong form dropped. ``fetch`` raises nothing but ``SourceError``: anything else
a source raises becomes every asked account's problem of kind ``internal``, logged with its traceback.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

from service.samples import AccountState
from service.sources.base import AccountProblem, FetchResult, Observation, Source, SourceError, Target
from service.sources.fields import MAX_COUNT, clean, malformed, storable
from service.sources.platform import HANDLE_LIMIT, Platform

log = logging.getLogger(__name__)


class Edge:
    """A source whose results are all fit to store, and whose ``fetch`` raises only ``SourceError``."""

    def __init__(self, inner: Source, declared: Platform) -> None:
        self._inner = inner
        self._declared = declared

    @property
    def platform(self) -> str:
        return self._inner.platform

    @property
    def batch_size(self) -> int:
        return self._inner.batch_size

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        asked = {target: self._outgoing(target) for target in targets}
        try:
            answers = await self._inner.fetch(list(dict.fromkeys(asked.values())))
        except SourceError as exc:
            raise cleaned(exc) from None
        except (
            Exception
        ):  # a source's bug or an answer nobody foresaw: these accounts' problem, not the poll's
            log.exception("source failed unexpectedly", extra={"platform": self.platform})
            return {target: self._internal() for target in targets}
        return {
            target: self._incoming(target, answers[ask]) for target, ask in asked.items() if ask in answers
        }

    def _outgoing(self, target: Target) -> Target:
        known = target.platform_id
        if known is None or self._valid_id(target.handle, known):
            return target
        return Target(target.handle)

    def _incoming(self, target: Target, result: FetchResult) -> FetchResult:
        if isinstance(result, Observation):
            reason = self._flaw(target, result)
            return result if reason is None else malformed(reason)
        if isinstance(result, AccountProblem):
            known = result.platform_id
            platform_id = known if known is not None and self._valid_id(target.handle, known) else None
            return dataclasses.replace(result, message=clean(result.message), platform_id=platform_id)
        return malformed(f"the source gave {type(result).__name__}")

    def _flaw(self, target: Target, seen: Observation) -> str | None:
        """What makes an observation unfit to store, if anything."""
        if not isinstance(seen.platform_id, str) or not self._valid_id(target.handle, seen.platform_id):
            return f"the id {seen.platform_id!r:.40} is not a {self._declared.title} id"
        if not isinstance(seen.handle, str) or not storable(seen.handle, HANDLE_LIMIT):
            return f"the handle {seen.handle!r:.40} cannot be stored"
        counts = (seen.followers, seen.following, seen.posts)
        if not all(_count(c) for c in counts) or seen.followers is None:
            return "a count is not a number of accounts"
        if not _count(seen.followers_step) or seen.followers_step < 1:
            return "followers_step is not a positive integer"
        return None

    def _valid_id(self, handle: str, platform_id: str) -> bool:
        subject = self._declared.subject(handle)
        return storable(platform_id, HANDLE_LIMIT) and subject.platform_id.fullmatch(platform_id) is not None

    def _internal(self) -> AccountProblem:
        message = f"{self._declared.title}: flockwatch could not read the answer (see the log)"
        return AccountProblem(AccountState.ERRORING, message, kind="internal")


def cleaned(error: SourceError) -> SourceError:
    """The same failure with a message fit to store."""
    return SourceError(
        clean(error.message),
        kind=error.kind,
        permanent=error.permanent,
        retry_at=error.retry_at,
        deferred=error.deferred,
    )


def _count(value: object) -> bool:
    if value is None:
        return True
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_COUNT
