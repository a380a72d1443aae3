import json
import logging

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
