import pytest

from service.accounts import AccountError, AccountRef


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
    from service.accounts import count_noun

    assert count_noun(AccountRef.parse(text)) == noun


@pytest.mark.parametrize("text", ["github:octo-org/..", "github:-bad/repo", "github:a/b/c", "x:a/b"])
def test_malformed_repositories_are_refused(text: str) -> None:
    with pytest.raises(AccountError):
        AccountRef.parse(text)
