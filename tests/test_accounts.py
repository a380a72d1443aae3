import subprocess
import sys

import pytest

from service.accounts import PLATFORMS, AccountError, AccountRef, count_names, count_noun, is_repository
from service.sources.platform import declaration


@pytest.mark.parametrize(
    ("text", "platform", "handle"),
    [
        ("mastodon:Gargron@mastodon.social", "mastodon", "Gargron@mastodon.social"),
        ("X:SocialMediopols", "x", "SocialMediopols"),
        ("youtube:@tseries", "youtube", "@tseries"),
        ("bluesky:bsky.app", "bluesky", "bsky.app"),
        (" github:torvalds ", "github", "torvalds"),
    ],
)
def test_accounts_are_written_platform_colon_handle(text: str, platform: str, handle: str) -> None:
    ref = AccountRef.parse(text)
    assert (ref.platform, ref.handle) == (platform, handle)
    assert str(ref) == f"{platform}:{handle}"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("torvalds", "platform:handle"),
        ("github:", "platform:handle"),
        ("myspace:tom", "unknown platform 'myspace'"),
        ("mastodon:Gargron", "user@instance"),
        ("mastodon:a@b@c.social", "user@instance"),
        ("x:bad handle", "letters, digits"),
        ("x:" + "a" * 300, "letters, digits"),
        ("x:ali\x00ce", "letters, digits"),
        ("github:octo-org/a b", "owner/name"),
        ("mastodon:user@" + "a" * 260 + ".social", "user@instance"),
    ],
)
def test_malformed_accounts_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(AccountError, match=reason):
        AccountRef.parse(text)


@pytest.mark.parametrize(
    ("text", "noun"),
    [("github:octo-org/hello", "stars"), ("github:torvalds", "followers"), ("x:jack", "followers")],
)
def test_repositories_parse_and_count_stars(text: str, noun: str) -> None:
    assert count_noun(AccountRef.parse(text)) == noun


@pytest.mark.parametrize("text", ["github:octo-org/..", "github:-bad/repo", "github:a/b/c", "x:a/b"])
def test_malformed_repositories_are_refused(text: str) -> None:
    with pytest.raises(AccountError):
        AccountRef.parse(text)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("github:octo-org/hello", ("stars", "watchers", "forks")),
        ("github:torvalds", ("followers", "following", "public repositories")),
        ("youtube:@tseries", ("followers", None, "videos")),
        ("twitch:shroud", ("followers", None, None)),
        ("x:jack", ("followers", "following", "posts")),
    ],
)
def test_each_kind_of_subject_names_its_counts(text: str, names: tuple[str | None, ...]) -> None:
    counts = count_names(AccountRef.parse(text))
    assert (counts.followers, counts.following, counts.posts) == names


def test_the_platforms_are_the_modules_that_declare_them() -> None:
    assert PLATFORMS == ("bluesky", "github", "mastodon", "twitch", "x", "youtube")
    assert [declaration(name).name for name in PLATFORMS] == list(PLATFORMS)


def test_a_repository_is_a_repository_and_a_user_is_not() -> None:
    assert is_repository(AccountRef.parse("github:octo-org/hello"))
    assert not is_repository(AccountRef.parse("github:octo-org"))


def test_parsing_accounts_imports_no_http_validation_or_database_library() -> None:
    every = "; ".join(
        f"AccountRef.parse({f'{p}:a/b' if p == 'github' else f'{p}:a@b.example'!r})" for p in PLATFORMS
    )
    code = (
        f"import sys; from service.accounts import AccountRef; {every}; print(' '.join(sorted(sys.modules)))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    assert not {m.split(".")[0] for m in loaded} & {
        "httpx",
        "httpcore",
        "pydantic",
        "sqlalchemy",
        "aiohttp",
        "asyncio",
    }
