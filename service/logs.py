"""One line per event, ``logfmt`` or JSON, with the event's fields. Callers pass fields via ``extra``.

An exception's whole traceback travels in one field, ``traceback`` (logfmt: one quoted value with its newlines
escaped as ``\\n``; JSON: one string), beside ``error``, its last line; a ``stack_info`` stack goes in ``stack``.
Either way an event stays one line, so a log shipper never splits a traceback into unrelated events.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD}


def _entry(formatter: logging.Formatter, record: logging.LogRecord) -> dict[str, Any]:
    entry = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
        **fields_of(record),
    }
    if record.exc_info:
        text = formatter.formatException(record.exc_info)
        entry["error"] = text.splitlines()[-1]
        entry["traceback"] = text
    if record.stack_info:
        entry["stack"] = formatter.formatStack(record.stack_info)
    return entry


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_quote(value)}" for key, value in _entry(self, record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_entry(self, record), default=str)


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(ch in text for ch in ' "=\n\t'):
        return text
    return json.dumps(text)


def configure(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "httpx", "httpcore", "aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
