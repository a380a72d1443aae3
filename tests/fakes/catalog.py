"""Every fake platform by the case it plays: one per platform, and GitHub's repositories twice (through
GraphQL with a token, through REST without one)."""

from __future__ import annotations

from tests.fakes.bluesky import FakeBluesky
from tests.fakes.github import FakeGithub, FakeGithubRepositories, FakeGithubRepositoriesRest
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FakePlatform
from tests.fakes.twitch import FakeTwitch
from tests.fakes.x import FakeX
from tests.fakes.youtube import FakeYoutube

FAKES: dict[str, type[FakePlatform]] = {
    **{
        fake.platform: fake
        for fake in (FakeX, FakeMastodon, FakeBluesky, FakeYoutube, FakeTwitch, FakeGithub)
    },
    "github-repositories": FakeGithubRepositories,
    "github-repositories-rest": FakeGithubRepositoriesRest,
}
