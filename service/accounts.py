"""Accounts are written ``platform:handle`` everywhere: config, CLI, metrics, CSV."""

from __future__ import annotations

import re
from dataclasses import dataclass

PLATFORMS = ("x", "mastodon", "bluesky", "youtube", "twitch", "github")

_HANDLE = re.compile(r"^[A-Za-z0-9@._\-]{1,253}$")
# A GitHub repository: owner/name (owner as a GitHub login, name as GitHub allows it, not "." or "..").
_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/(?!\.\.?$)[A-Za-z0-9._-]{1,100}$")


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
        if platform == "github" and "/" in handle:
            if not _REPOSITORY.match(handle):
                raise AccountError(f"{text!r}: a GitHub repository is owner/name, e.g. github:octo-org/hello")
            return cls(platform, handle)
        if not _HANDLE.match(handle):
            raise AccountError(f"{text!r}: the handle may hold only letters, digits and @ . _ -")
        if platform == "mastodon" and not _is_mastodon_handle(handle):
            raise AccountError(
                f"{text!r}: a Mastodon handle is user@instance, e.g. mastodon:Gargron@mastodon.social"
            )
        return cls(platform, handle)


def is_repository(ref: AccountRef) -> bool:
    """A GitHub repository (``github:owner/name``): its count is stars, not followers."""
    return ref.platform == "github" and "/" in ref.handle


def count_noun(ref: AccountRef) -> str:
    """What the subject's count is called in everything a user reads: "stars" or "followers"."""
    return "stars" if is_repository(ref) else "followers"


def _is_mastodon_handle(handle: str) -> bool:
    user, sep, host = handle.lstrip("@").partition("@")
    return bool(sep and user and "." in host and "@" not in host)
