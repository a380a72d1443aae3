"""What a platform declares about itself, and where the declarations are found.

Each platform is one module in ``service/sources/platforms/`` whose ``PLATFORM`` is a ``Platform``: its
kinds of subject (what their handles look like, their stable ids, the names of their counts, how they
are batched), its credentials and how they become headers, its published budgets, its rate-limit header
dialect, its default base URL, and ``build``, which makes its source. The module is found by its file
name: adding a platform is adding a module. This module and the declarations are cheap to import
(no HTTP, database or validation libraries), because ``AccountRef.parse`` reads them on the backtest path.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.samples import AccountState
    from service.sources.base import Source
    from service.sources.registry import Wiring

PACKAGE = "service.sources.platforms"
DIRECTORY = Path(__file__).parent / "platforms"
HANDLE_LIMIT = 255  # what the database holds for a handle or a platform id
# The handle rule most platforms share: synthetic backtest names (x:viral-spike-3) must parse too.
NAME = re.compile(r"[A-Za-z0-9@._-]{1,253}")
NAME_HELP = "the handle may hold only letters, digits and @ . _ -"
NUMERIC_ID = re.compile(r"[0-9]{1,20}")


class UnknownPlatform(LookupError):
    """No module in ``service/sources/platforms`` declares this platform."""


@dataclass(frozen=True)
class RateBudget:
    """A published request (or point) budget: ``requests`` per ``window``."""

    requests: int
    window: timedelta


@dataclass(frozen=True)
class Counts:
    """What a kind of subject's three counts are called; None: the platform does not give that count."""

    followers: str = "followers"
    following: str | None = "following"
    posts: str | None = "posts"


@dataclass(frozen=True)
class Batching:
    """How subjects of one kind are fetched: how many one request covers, from which budget."""

    per_request: int = 1
    budget: str = ""  # a key of ``Platform.budgets``; "" is the platform's main budget
    lookups: int = 0  # one more request per this many subjects (a name lookup before per-subject calls)

    def requests(self, subjects: int) -> int:
        if subjects <= 0:
            return 0
        extra = math.ceil(subjects / self.lookups) if self.lookups else 0
        return math.ceil(subjects / self.per_request) + extra


def _every_handle(handle: str) -> bool:
    return True


@dataclass(frozen=True)
class Subject:
    """One kind of subject on a platform: an account (the default), or a repository."""

    platform_id: re.Pattern[str]  # the form of the platform's stable id, matched whole
    states: frozenset[AccountState]  # what the platform's answers can make of it besides active/erroring
    kind: str = "account"
    handle: re.Pattern[str] = NAME  # what a handle of this kind looks like, matched whole
    help: str = NAME_HELP  # what a good handle looks like, for the message about a bad one
    counts: Counts = Counts()
    batching: Batching = Batching()
    anonymous: Batching | None = None  # batching without a credential, when it differs
    claims: Callable[[str], bool] = _every_handle  # whether a handle is of this kind

    def batched(self, credentialed: bool) -> Batching:
        return self.batching if credentialed or self.anonymous is None else self.anonymous


@dataclass(frozen=True)
class Credential:
    field: str  # the settings key (``platforms.<name>.<field>``)
    what: str  # what it is, for the message when it is missing
    required: bool = True
    secret: bool = True  # a secret also comes from ``<field>_file``, and is never printed


def _no_headers(credentials: Mapping[str, str]) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Platform:
    name: str
    title: str  # as the platform spells itself, for messages
    base_url: str  # the public API; ``platforms.<name>.base_url`` replaces it
    subjects: tuple[Subject, ...]  # the first one that claims a handle is its kind
    budgets: Mapping[str, RateBudget]  # published budgets with the credential, by name ("" the main one)
    build: Callable[[Wiring], Source]
    batch_size: int  # the most subjects one ``fetch`` takes
    credentials: tuple[Credential, ...] = ()
    headers: Callable[[Mapping[str, str]], dict[str, str]] = _no_headers  # credentials by field → headers
    anonymous_budgets: Mapping[str, RateBudget] | None = None  # without the credential, when they differ
    rate_headers: tuple[str, ...] = ()  # header prefixes announcing the budget, main window first
    instance: Callable[[str], str] | None = None  # the server a handle lives on, when budgets are per server

    def subject(self, handle: str) -> Subject:
        return next(s for s in self.subjects if s.claims(handle))

    def budget(self, name: str, credentialed: bool) -> RateBudget:
        budgets = self.budgets if credentialed or self.anonymous_budgets is None else self.anonymous_budgets
        return budgets.get(name) or budgets[""]


@cache
def names() -> tuple[str, ...]:
    """Every platform, found as the modules of ``service/sources/platforms``, in alphabetical order."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules([str(DIRECTORY)]) if not m.name.startswith("_")))


@cache
def declaration(name: str) -> Platform:
    """The platform's declaration (importing only its module); ``UnknownPlatform`` if there is none."""
    if name not in names():
        raise UnknownPlatform(name)
    declared: Platform = importlib.import_module(f"{PACKAGE}.{name}").PLATFORM
    return declared


def declarations() -> list[Platform]:
    return [declaration(name) for name in names()]
