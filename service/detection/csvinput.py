"""Reading follower histories exported from elsewhere: ``timestamp,account,followers[,following][,posts]``.

Columns may come in any order; rows of many accounts may be interleaved and unsorted. A timestamp is
ISO 8601 (``Z`` or an offset; a bare date means 00:00 UTC) or Unix seconds.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from service.accounts import AccountError, AccountRef
from service.samples import Sample

REQUIRED = ("timestamp", "account", "followers")
OPTIONAL = ("following", "posts")


class BadRow(ValueError):
    """A row that cannot be read; the message names the file, line and reason."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass
class ReadResult:
    samples: list[Sample]
    skipped: list[BadRow]


def read_samples(path: Path, skip_bad_rows: bool = False) -> ReadResult:
    """All samples of the file, sorted by time (then account), so a replay sees them in order."""
    keyed: list[tuple[float, str, Sample]] = []
    skipped: list[BadRow] = []
    for item in iter_rows(path):
        if isinstance(item, BadRow):
            if not skip_bad_rows:
                raise item
            skipped.append(item)
        else:
            keyed.append((item.observed_at.timestamp(), str(item.account), item))
    # Plain floats and strings sort far faster than datetimes and dataclasses.
    keyed.sort(key=lambda k: (k[0], k[1]))
    return ReadResult([k[2] for k in keyed], skipped)


def iter_rows(path: Path) -> Iterator[Sample | BadRow]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise BadRow(path, 1, "the file is empty; expected a header timestamp,account,followers")
        parse = _RowParser(_columns(path, [h.strip().lower() for h in header]))
        for row in reader:
            if not row or (not row[0].strip() and all(not cell.strip() for cell in row)):
                continue
            try:
                yield parse(row)
            except ValueError as exc:
                yield BadRow(path, reader.line_num, str(exc))


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise BadRow(path, 1, f"the header lacks {', '.join(missing)} (need timestamp,account,followers)")
    return {name: header.index(name) for name in (*REQUIRED, *OPTIONAL) if name in header}


class _RowParser:
    """Turns rows into samples; accounts are parsed once per distinct spelling (files repeat them)."""

    def __init__(self, columns: dict[str, int]) -> None:
        self._time = columns["timestamp"]
        self._account = columns["account"]
        self._followers = columns["followers"]
        self._following = columns.get("following")
        self._posts = columns.get("posts")
        self._width = max(columns.values()) + 1
        self._accounts: dict[str, AccountRef | str] = {}  # spelling -> account, or why it is not one

    def __call__(self, row: list[str]) -> Sample:
        if len(row) < self._width:
            raise ValueError(f"expected at least {self._width} columns, got {len(row)}")
        return Sample(
            account=self._account_of(row[self._account]),
            observed_at=parse_timestamp(row[self._time]),
            followers=_count(row[self._followers], "followers", required=True) or 0,
            following=_count(row[self._following], "following") if self._following is not None else None,
            posts=_count(row[self._posts], "posts") if self._posts is not None else None,
        )

    def _account_of(self, text: str) -> AccountRef:
        known = self._accounts.get(text)
        if known is None:
            try:
                known = AccountRef.parse(text)
            except AccountError as exc:
                known = str(exc)
            self._accounts[text] = known
        if isinstance(known, str):
            raise ValueError(known)
        return known


def parse_timestamp(text: str) -> datetime:
    text = text.strip()
    if not text:
        raise ValueError("the timestamp is empty")
    if len(text) >= 10 and text[4] == "-":  # ISO 8601 (Unix seconds never have a dash there)
        return _iso(text)
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError as exc:
        raise ValueError(f"timestamp {text!r} is neither ISO 8601 nor Unix seconds") from exc
    except (OverflowError, OSError) as exc:
        raise ValueError(f"timestamp {text!r} is out of range") from exc


def _iso(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"timestamp {text!r} is neither ISO 8601 nor Unix seconds") from exc
    if when.tzinfo is None:
        if "T" in text or " " in text:
            raise ValueError(f"timestamp {text!r} has a time but no zone; add Z or an offset")
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _count(text: str, name: str, required: bool = False) -> int | None:
    text = text.strip()
    if not text:
        if required:
            raise ValueError(f"{name} is empty")
        return None
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError as exc:
            raise ValueError(f"{name} {text!r} is not a number") from exc
        if not number.is_integer():
            raise ValueError(f"{name} {text!r} is not a whole number") from None
        value = int(number)
    if value < 0:
        raise ValueError(f"{name} {value} is negative")
    return value
