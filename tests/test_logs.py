import json
import logging
import re
import sys

from service.logs import JsonFormatter, LogfmtFormatter


def _record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "service.poller", logging.WARNING, __file__, 1, "account poll failed", None, None
    )
    record.__dict__.update(fields)
    return record


def test_logfmt_is_one_line_with_the_event_fields_quoted_where_needed() -> None:
    line = LogfmtFormatter().format(_record(account="mastodon:a@b.social", reason='HTTP 503 "busy"\nretry'))
    assert "\n" not in line
    assert 'msg="account poll failed"' in line and "account=mastodon:a@b.social" in line
    assert 'reason="HTTP 503 \\"busy\\"\\nretry"' in line


def test_json_lines_carry_the_same_fields() -> None:
    entry = json.loads(JsonFormatter().format(_record(account="github:torvalds", state="erroring")))
    assert entry["msg"] == "account poll failed" and entry["level"] == "warning"
    assert (entry["account"], entry["state"]) == ("github:torvalds", "erroring")


def _failing_record() -> logging.LogRecord:
    def parse_answer() -> None:
        raise ValueError("bad count 'x'")

    def poll() -> None:
        try:
            parse_answer()
        except ValueError as exc:
            raise RuntimeError("poll of mastodon:a@b.social failed") from exc

    try:
        poll()
    except RuntimeError:
        return logging.makeLogRecord(
            {"name": "service.poller", "levelno": logging.ERROR, "levelname": "ERROR", "msg": "poll failed"}
            | {"exc_info": sys.exc_info()}
        )
    raise AssertionError("poll() did not raise")


def _logfmt_value(line: str, key: str) -> str:
    match = re.search(rf'(?:^| ){key}=("(?:[^"\\]|\\.)*"|\S+)', line)
    assert match, f"no {key}= in {line}"
    raw = match.group(1)
    return str(json.loads(raw)) if raw.startswith('"') else raw


def test_logfmt_keeps_the_whole_traceback_in_one_field_on_one_line() -> None:
    line = LogfmtFormatter().format(_failing_record())
    assert "\n" not in line
    traceback = _logfmt_value(line, "traceback")
    for frame in ("in poll", "in parse_answer", "ValueError: bad count 'x'", "direct cause"):
        assert frame in traceback, traceback
    assert traceback.endswith("RuntimeError: poll of mastodon:a@b.social failed")
    assert _logfmt_value(line, "error") == "RuntimeError: poll of mastodon:a@b.social failed"


def test_json_keeps_the_whole_traceback_as_one_string() -> None:
    line = JsonFormatter().format(_failing_record())
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["traceback"].count("\n") > 5 and "in parse_answer" in entry["traceback"]
    assert entry["error"] == "RuntimeError: poll of mastodon:a@b.social failed"


def test_a_stack_logged_with_stack_info_is_one_field_too() -> None:
    logger = logging.getLogger("tests.logs")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        logger.warning("slow poll", stack_info=True)
    finally:
        logger.removeHandler(handler)
    entry = json.loads(JsonFormatter().format(records[0]))
    assert entry["stack"].startswith("Stack (most recent call last):") and "test_logs.py" in entry["stack"]
