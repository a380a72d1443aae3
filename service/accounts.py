"""Accounts are written ``platform:handle`` everywhere: config, CLI, metrics, CSV."""

from __future__ import annotations

import re
from dataclasses import dataclass

PLATFORMS = ("x", "mastodon", "bluesky", "youtube", "twitch", "github")

_HANDLE = re.compile(r"^[A-Za-z0-9@._\-]{1,253}$")


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
        if not _HANDLE.match(handle):
            raise AccountError(f"{text!r}: the handle may hold only letters, digits and @ . _ -")
        if platform == "mastodon" and not _is_mastodon_handle(handle):
            raise AccountError(
                f"{text!r}: a Mastodon handle is user@instance, e.g. mastodon:Gargron@mastodon.social"
            )
        return cls(platform, handle)


def _is_mastodon_handle(handle: str) -> bool:
    user, sep, host = handle.lstrip("@").partition("@")
    return bool(sep and user and "." in host and "@" not in host)
