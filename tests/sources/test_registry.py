"""Building sources from configuration, and naming the credentials a watched platform lacks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from service.clock import ManualClock
from service.config import Config, ConfigError, load, missing_credentials
from service.sources.registry import MissingCredential, UnsupportedPlatform, build_source
from tests.sources.world import START


def _config(**platforms: object) -> Config:
    watchlist = [
        "x:SocialMediopols",
        "bluesky:bsky.app",
        "youtube:@tseries",
        "twitch:shroud",
        "github:torvalds",
        "mastodon:Gargron@mastodon.social",
    ]
    return Config.model_validate({"platforms": platforms, "watchlist": watchlist})


def test_every_missing_credential_is_named_with_the_ways_to_set_it() -> None:
    problems = missing_credentials(_config())
    assert problems == [
        "platforms.twitch.client_id: Twitch needs the app's client id (set it or FLOCKWATCH_PLATFORMS__TWITCH__CLIENT_ID)",
        "platforms.twitch.token: Twitch needs a user access token (set it, token_file, or FLOCKWATCH_PLATFORMS__TWITCH__TOKEN)",
        "platforms.x.bearer_token: X needs an app bearer token (set it, bearer_token_file, or FLOCKWATCH_PLATFORMS__X__BEARER_TOKEN)",
        "platforms.youtube.api_key: YouTube needs a Data API v3 key (set it, api_key_file, or FLOCKWATCH_PLATFORMS__YOUTUBE__API_KEY)",
    ]


def test_credentials_from_values_files_and_environment_satisfy_it(tmp_path: Path) -> None:
    key_file = tmp_path / "youtube.key"
    key_file.write_text("AIza-secret\n")
    config_file = tmp_path / "flockwatch.yml"
    config_file.write_text(
        f"platforms:\n  youtube: {{api_key_file: {key_file}}}\n  twitch: {{client_id: abc, token: t}}\n"
        "watchlist: ['x:jack', 'youtube:@tseries', 'twitch:shroud']\n"
    )
    config = load(config_file, environ={"FLOCKWATCH_PLATFORMS__X__BEARER_TOKEN": "AAAA"})
    assert missing_credentials(config) == []


def test_platforms_without_watched_accounts_or_needing_no_credential_pass() -> None:
    config = Config.model_validate(
        {"watchlist": ["bluesky:bsky.app", "github:torvalds", "mastodon:a@b.social"]}
    )
    assert missing_credentials(config) == []


@pytest.mark.parametrize("platform", ["x", "mastodon", "bluesky", "youtube", "twitch", "github"])
async def test_every_platform_has_a_source(platform: str) -> None:
    config = _config(
        x={"bearer_token": "t"}, youtube={"api_key": "k"}, twitch={"client_id": "c", "token": "t"}
    )
    async with httpx.AsyncClient() as client:
        source = build_source(platform, config.platforms.of(platform), client, ManualClock(START))
        assert source.platform == platform
        assert source.batch_size >= 1


async def test_an_unknown_platform_is_refused() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(UnsupportedPlatform):
            build_source("myspace", Config().platforms.x, client, ManualClock(START))


def test_loading_a_config_names_every_missing_credential(tmp_path: Path) -> None:
    config_file = tmp_path / "flockwatch.yml"
    config_file.write_text("watchlist: ['x:jack', 'github:torvalds']\n")
    with pytest.raises(ConfigError) as error:
        load(config_file, environ={})
    assert error.value.problems == [
        "platforms.x.bearer_token: X needs an app bearer token "
        "(set it, bearer_token_file, or FLOCKWATCH_PLATFORMS__X__BEARER_TOKEN)"
    ]


async def test_a_source_without_its_credential_is_not_built() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(MissingCredential, match=r"platforms\.youtube\.api_key"):
            build_source("youtube", Config().platforms.youtube, client, ManualClock(START))
