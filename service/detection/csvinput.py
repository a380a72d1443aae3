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
    samples: list[Sample] = []
    skipped: list[BadRow] = []
    for item in iter_rows(path):
        if isinstance(item, BadRow):
            if not skip_bad_rows:
                raise item
            skipped.append(item)
        else:
            samples.append(item)
    samples.sort(key=lambda s: (s.observed_at, s.account))
    return ReadResult(samples, skipped)


def iter_rows(path: Path) -> Iterator[Sample | BadRow]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise BadRow(path, 1, "the file is empty; expected a header timestamp,account,followers")
        columns = _columns(path, [h.strip().lower() for h in header])
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            try:
                yield _sample(row, columns)
            except ValueError as exc:
                yield BadRow(path, line, str(exc))


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise BadRow(path, 1, f"the header lacks {', '.join(missing)} (need timestamp,account,followers)")
    return {name: header.index(name) for name in (*REQUIRED, *OPTIONAL) if name in header}


def _sample(row: list[str], columns: dict[str, int]) -> Sample:
    if len(row) <= max(columns.values()):
        raise ValueError(f"expected at least {max(columns.values()) + 1} columns, got {len(row)}")
    try:
        account = AccountRef.parse(row[columns["account"]])
    except AccountError as exc:
        raise ValueError(str(exc)) from exc
    return Sample(
        account=account,
        observed_at=parse_timestamp(row[columns["timestamp"]]),
        followers=_count(row[columns["followers"]], "followers", required=True) or 0,
        following=_count(row[columns["following"]], "following") if "following" in columns else None,
        posts=_count(row[columns["posts"]], "posts") if "posts" in columns else None,
    )


def parse_timestamp(text: str) -> datetime:
    text = text.strip()
    if not text:
        raise ValueError("the timestamp is empty")
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    except (OverflowError, OSError) as exc:
        raise ValueError(f"timestamp {text!r} is out of range") from exc
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
