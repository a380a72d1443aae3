from datetime import timedelta
from pathlib import Path

import pytest

from service.accounts import AccountRef
from service.cli import main
from service.config import ConfigError, load

TESTDATA = Path(__file__).parent / "testdata" / "config"
INVALID = sorted(TESTDATA.glob("invalid-*.yml"))


def test_the_documented_example_is_valid() -> None:
    config = load(TESTDATA / "valid-example.yml", environ={})
    assert config.poll.interval == timedelta(minutes=15)
    assert config.poll.jitter == timedelta(seconds=30)
    assert [entry.account for entry in config.watchlist] == [
        AccountRef("mastodon", "Gargron@mastodon.social"),
        AccountRef("mastodon", "someone@example.social"),
    ]
    assert config.interval_for(config.watchlist[1].account, config.watchlist[1].interval) == timedelta(
        hours=1
    )
    assert config.interval_for(config.watchlist[0].account) == timedelta(minutes=15)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_each_invalid_file_names_the_key_and_what_is_wrong(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("poll: {interval: soon, colour: red}\nwatchlist: [torvalds, 'myspace:tom']\n")
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    assert len(caught.value.problems) == 4


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("database: {url: 'sqlite:///a.db'}\n")
    config = load(
        path, environ={"FLOCKWATCH_DATABASE__URL": "sqlite:///b.db", "FLOCKWATCH_POLL__INTERVAL": "1h"}
    )
    assert config.database.url == "sqlite:///b.db"
    assert config.poll.interval == timedelta(hours=1)


def test_an_unknown_environment_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"pol: unknown key \(set by FLOCKWATCH_POL__INTERVAL\)"):
        load(None, environ={"FLOCKWATCH_POL__INTERVAL": "1h"})


def test_secrets_come_from_files_and_are_never_printed(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-from-file\n")
    config = load(None, environ={"FLOCKWATCH_PLATFORMS__X__BEARER_TOKEN_FILE": str(token_file)})
    secret = config.platforms.x.secret("bearer_token")
    assert secret is not None and secret.get_secret_value() == "s3cr3t-from-file"
    env_config = load(None, environ={"FLOCKWATCH_PLATFORMS__X__BEARER_TOKEN": "s3cr3t-from-env"})
    assert "s3cr3t" not in repr(env_config) and "s3cr3t" not in str(env_config)


def test_check_config_exits_0_on_a_good_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(TESTDATA / "valid-example.yml")]) == 0
    assert "valid: 2 accounts" in capsys.readouterr().out


def test_check_config_prints_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("poll: {interval: soon}\nwatchlist: [torvalds]\n")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "poll.interval" in err and "watchlist.0.account" in err and "2 problems" in err


def test_check_config_on_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(tmp_path / "nope.yml")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
