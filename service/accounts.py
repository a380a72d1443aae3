"""Accounts are written ``platform:handle`` everywhere: config, CLI, metrics, CSV.

What a handle may look like, and what its counts are called, is each platform's own declaration
(``service/sources/platforms/<name>.py``); this module only reads them, and stays cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.sources.platform import Counts, Subject, UnknownPlatform, declaration, names

PLATFORMS = names()


class AccountError(ValueError):
    """A string that does not name an account."""


@dataclass(frozen=True, order=True)
class AccountRef:
    platform: str
    handle: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.handle}"

    @classmethod
    def parse(cls, text: str) -> AccountRef:
        platform, sep, handle = text.strip().partition(":")
        if not sep or not platform or not handle:
            raise AccountError(
                f"{text!r} is not an account: write it as platform:handle, e.g. mastodon:user@host"
            )
        platform = platform.lower()
        if platform not in PLATFORMS:
            raise AccountError(f"{text!r}: unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
        subject = declaration(platform).subject(handle)
        if not subject.handle.fullmatch(handle):
            raise AccountError(f"{text!r}: {subject.help}")
        return cls(platform, handle)


def subject_of(ref: AccountRef) -> Subject:
    """The kind of subject ``ref`` names (an account, a repository), as its platform declares it."""
    try:
        return declaration(ref.platform).subject(ref.handle)
    except UnknownPlatform:
        raise AccountError(f"{ref}: unknown platform {ref.platform!r}") from None


def is_repository(ref: AccountRef) -> bool:
    """A GitHub repository (``github:owner/name``): its count is stars, not followers."""
    return subject_of(ref).kind == "repository"


def count_names(ref: AccountRef) -> Counts:
    """What the subject's counts are called: ("stars", "watchers", "forks") for a repository."""
    return subject_of(ref).counts


def count_noun(ref: AccountRef) -> str:
    """What the subject's count is called in everything a user reads: "stars" or "followers"."""
    return count_names(ref).followers
