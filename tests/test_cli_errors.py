"""Every expected failure exits 2 with a short message and no traceback; an unexpected one is a bug: exit 1,
a short message and the way to the traceback (``--debug``). Secrets never appear, even in a YAML error."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.accounts import AccountRef
from service.cli import main
from service.samples import Sample
from service.spool import Batch, Spool

SECRET = "s3cr3t-bearer-token-value"


def _fails_cleanly(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err and len(err) < 1_000, err
    return err


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOCKWATCH_CONFIG", "FLOCKWATCH_DATABASE__URL", "FLOCKWATCH_DEBUG"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"poll: {interval: 15m}\n\xff\xfe\n", "not UTF-8 text"),
        (b"a: " + b"[" * 5_000 + b"]" * 5_000 + b"\n", "nested too deeply"),
        (b"- database\n- poll\n", "the top level must be a mapping"),
    ],
    ids=["not UTF-8", "deeply nested", "a list"],
)
def test_a_broken_configuration_file(
    no_env: None, tmp_path: Path, content: bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "flockwatch.yml"
    config.write_bytes(content)
    _fails_cleanly(capsys, ["check-config", "--config", str(config)], message)


def test_a_yaml_syntax_error_names_line_and_column_and_never_the_secret(
    no_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "flockwatch.yml"
    config.write_text(f"platforms:\n  x: {{bearer_token: {SECRET}\nwatchlist: [x:abc]\n")

    err = _fails_cleanly(
        capsys, ["check-config", "--config", str(config)], "not valid YAML at line 3, column"
    )
    assert SECRET not in err and "bearer" not in err


def test_a_secret_file_that_is_not_text(
    no_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "x-token"
    secret.write_bytes(b"\xff\xfe\x00token")
    config = tmp_path / "flockwatch.yml"
    config.write_text(f"platforms:\n  x: {{bearer_token_file: {secret}}}\nwatchlist: [x:abc]\n")

    _fails_cleanly(capsys, ["check-config", "--config", str(config)], "bearer_token_file: not UTF-8 text")


def test_a_database_flockwatch_cannot_use(no_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails_cleanly(
        capsys, ["status", "--db", "mysql://user:hunter2@db/x"], "cannot use: mysql://user:***@db"
    )
    assert "hunter2" not in err


@pytest.mark.parametrize("command", ["backtest", "import"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "Is a directory"),
        (b"", "the file is empty"),
        (b'timestamp,account,followers\n2026-01-01,x:a,"' + b"1" * 200_000 + b'"\n', "field larger than"),
    ],
    ids=["a directory", "empty", "a huge field"],
)
def test_a_history_file_that_cannot_be_read(
    no_env: None,
    tmp_path: Path,
    command: str,
    content: bytes | None,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "history.csv"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    extra = ["--db", f"sqlite:///{tmp_path / 'f.db'}"] if command == "import" else []
    code = main([command, str(path), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


def test_a_spool_path_that_cannot_be_created(
    no_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "flockwatch.yml"
    config.write_text(
        "spool: {path: /proc/no/such/folder/spool.db}\n"
        f"database: {{url: 'sqlite:///{tmp_path / 'f.db'}'}}\nhttp: {{listen: '127.0.0.1:0'}}\n"
    )
    _fails_cleanly(capsys, ["run", "--config", str(config)], "/proc/no")


def test_an_unexpected_error_is_a_bug_exit_1_and_debug_shows_the_traceback(
    no_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.store.repository import Store

    def broken(*_: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(Store, "status_page", broken)
    url = f"sqlite:///{tmp_path / 'f.db'}"

    assert main(["status", "--db", url]) == 1
    err = capsys.readouterr().err
    assert "unexpected error: ZeroDivisionError: division by zero" in err and "--debug" in err
    assert "Traceback" not in err

    assert main(["--debug", "status", "--db", url]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_spool_shows_pending_and_quarantined_and_requeues(
    no_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spool.db"
    config = tmp_path / "flockwatch.yml"
    config.write_text(f"spool: {{path: {path}}}\n")
    assert main(["spool", "--config", str(config)]) == 0
    assert "none yet" in capsys.readouterr().out and not path.exists()  # looking creates nothing

    ref = AccountRef("x", "alice")
    spool = Spool(path)
    sample = Sample(ref, datetime(2026, 5, 1, tzinfo=UTC), 10)
    spool.append(Batch(samples=[(1, sample), (1, sample)]))
    spool.quarantine(Batch(samples=[(2, sample)]), "value out of range for bigint", datetime.now(UTC))
    spool.close()

    assert main(["spool", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "pending:     2 samples in 1 batches" in out
    assert "quarantined: 1 records" in out and "value out of range for bigint" in out

    assert main(["spool", "--config", str(config), "--requeue"]) == 0
    out = capsys.readouterr().out
    assert "requeued 1 quarantined records" in out and "pending:     3 samples in 2 batches" in out
