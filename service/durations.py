"""Durations as people write them in config and on the command line: 90s, 15m, 1h30m, 2d, 500ms."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | float) -> timedelta:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 90s, 15m, 1h, 2d")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    text = value.strip().replace(" ", "")
    if not text or _PART.sub("", text) or not _PART.findall(text):
        raise ValueError(f"{value!r} is not a duration: write e.g. 90s, 15m, 1h30m, 2d")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text)))


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{delta.total_seconds():g}s"
