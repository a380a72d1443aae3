"""What a source observes and what the store keeps: one count reading of one account at one time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from service.accounts import AccountRef


class AccountState(StrEnum):
    PENDING = "pending"  # watched, not polled yet
    ACTIVE = "active"
    NOT_FOUND = "not_found"
    SUSPENDED = "suspended"  # suspended or taken down by the platform
    PROTECTED = "protected"  # the account or its count is hidden
    ERRORING = "erroring"  # polls fail for a reason that may pass


@dataclass(frozen=True)
class Sample:
    """Counts of one account at ``observed_at`` (UTC). None means the platform does not say, never zero.

    ``followers_step`` is the precision of ``followers``: 1 for exact counts, 10,000 for a YouTube count
    shown as 1.23M. A detector must not read a move of one step as a burst.
    """

    account: AccountRef
    observed_at: datetime
    followers: int
    following: int | None = None
    posts: int | None = None
    followers_step: int = 1
