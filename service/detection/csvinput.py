"""Reading follower histories exported from elsewhere: ``timestamp,account,followers[,following][,posts]``.

Columns may come in any order; rows of many accounts may be interleaved and unsorted. A timestamp is
ISO 8601 (``Z`` or an offset; a bare date means 00:00 UTC) or Unix seconds.
"""

from __future__ import annotations

import csv
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Final, TextIO

from service.accounts import AccountError, AccountRef
from service.samples import Sample

REQUIRED: Final = ("timestamp", "account", "followers")
OPTIONAL: Final = ("following", "posts")


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
    # The caller's ``with`` closes the file even when a bad row stops the reading half-way.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for item in _rows(path, handle):
            if isinstance(item, BadRow):
                if not skip_bad_rows:
                    raise item
                skipped.append(item)
            else:
                keyed.append((item.observed_at.timestamp(), str(item.account), item))
    # Plain floats and strings sort far faster than datetimes and dataclasses.
    keyed.sort(key=lambda k: (k[0], k[1]))
    return ReadResult([k[2] for k in keyed], skipped)


# One row as the backtest replays it: (epoch seconds, account name, line, account, followers, following).
# The line makes every key unique, so sorting keeps the file's order for equal (time, account).
Record = tuple[float, str, int, AccountRef, int, int | None]


@dataclass
class ReadRecords:
    records: list[Record]  # sorted by time, then account, then line
    skipped: list[BadRow] = field(default_factory=list)

    @property
    def accounts(self) -> int:
        return len({r[1] for r in self.records})


def read_records(path: Path, skip_bad_rows: bool = False) -> ReadRecords:
    """The file as ``read_samples`` reads it (same rows, order, errors and messages), as plain tuples.

    Files without quotes, NULs or bare carriage returns (what exporters write) are split by hand, and
    the common cells — Unix seconds, ``YYYY-MM-DDTHH:MM:SSZ``, plain non-negative integers, accounts
    seen before — are converted without building datetimes or samples; any other cell goes through the
    strict parser, which gives the same value or the same error. Other files go through the csv module.
    """
    # The rows hold no reference cycles: the cyclic collector would only re-scan a growing list of them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _read_records(path, skip_bad_rows)
    finally:
        if collecting:
            gc.enable()


def _read_records(path: Path, skip_bad_rows: bool) -> ReadRecords:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _records_of(read_samples(path, skip_bad_rows))
    if '"' in text or "\x00" in text or text.count("\r") != text.count("\r\n"):
        return _records_of(read_samples(path, skip_bad_rows))
    lines = text.split("\n")
    if not text:
        raise BadRow(path, 1, "the file is empty; expected a header timestamp,account,followers")
    columns = _columns(path, [h.strip().lower() for h in lines[0].removesuffix("\r").split(",")])
    parse = _RowParser(columns)
    ti, ai, fi = columns["timestamp"], columns["account"], columns["followers"]
    gi, pi = columns.get("following"), columns.get("posts")
    plain = gi is None and pi is None  # timestamp, account and followers only: the common export
    width = parse.width
    accounts: dict[str, tuple[AccountRef, str]] = {}
    midnights: dict[str, float] = {}
    records: list[Record] = []
    skipped: list[BadRow] = []
    # One check for the whole file: then a cell that isdigit() is plain ASCII digits, as int() reads them.
    ascii_only = text.isascii()
    for index in range(1, len(lines)):  # an index loop: compiled, enumerate() is a generic iterator
        number = index + 1
        line = lines[index]
        if line.endswith("\r"):
            line = line[:-1]
        first = line[:1]
        if (not first or first == "," or first.isspace()) and not line.replace(",", "").strip():
            continue  # a blank row, as the csv module skips it
        cells = line.split(",")
        try:
            if len(cells) >= width:
                known = accounts.get(cells[ai])
                when = cells[ti]
                followers = cells[fi]
                # Unix seconds of up to 11 digits are exact as a float; int() then float() is float().
                plain_seconds = len(when) <= 11 and when.isdigit() and (ascii_only or when.isascii())
                at = float(int(when)) if plain_seconds else _fast_time(when, midnights)
                if (
                    known is not None
                    and at is not None
                    and followers.isdigit()
                    and (ascii_only or followers.isascii())
                ):
                    if plain:
                        records.append((at, known[1], number, known[0], int(followers), None))
                        continue
                    following = cells[gi] if gi is not None else ""
                    posts = cells[pi] if pi is not None else ""
                    if (not following or (following.isdigit() and (ascii_only or following.isascii()))) and (
                        not posts or (posts.isdigit() and (ascii_only or posts.isascii()))
                    ):
                        records.append(
                            (
                                at,
                                known[1],
                                number,
                                known[0],
                                int(followers),
                                int(following) if following else None,
                            )
                        )
                        continue
            sample = parse(cells)
        except ValueError as exc:
            if not skip_bad_rows:
                raise BadRow(path, number, str(exc)) from None
            skipped.append(BadRow(path, number, str(exc)))
            continue
        ref = sample.account
        accounts.setdefault(cells[ai], (ref, str(ref)))
        records.append(
            (sample.observed_at.timestamp(), str(ref), number, ref, sample.followers, sample.following)
        )
    # By (time, account, line), as two stable sorts on one plain key each: rows are already in line
    # order, and sorting floats or strings alone is several times faster than comparing tuples.
    records.sort(key=itemgetter(1))
    records.sort(key=itemgetter(0))
    return ReadRecords(records, skipped)


def _fast_time(text: str, midnights: dict[str, float]) -> float | None:
    """Epoch seconds of Unix seconds or ``YYYY-MM-DDTHH:MM:SSZ`` in range; None for anything else."""
    if text.isdigit() and text.isascii() and len(text) <= 11:
        return float(text)
    if len(text) != 20 or text[19] != "Z" or text[10] != "T" or text[13] != ":" or text[16] != ":":
        return None
    clock = text[11:13] + text[14:16] + text[17:19]
    if not (clock.isdigit() and clock.isascii()):
        return None
    hours, minutes, seconds = int(clock[:2]), int(clock[2:4]), int(clock[4:])
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    day = text[:10]
    midnight = midnights.get(day)
    if midnight is None:
        try:
            midnight = midnights[day] = parse_timestamp(day + "T00:00:00Z").timestamp()
        except ValueError:
            return None
    return midnight + (hours * 3600 + minutes * 60 + seconds)


def _records_of(result: ReadResult) -> ReadRecords:
    records: list[Record] = [
        (s.observed_at.timestamp(), str(s.account), i, s.account, s.followers, s.following)
        for i, s in enumerate(result.samples)
    ]
    return ReadRecords(records, result.skipped)


def _rows(path: Path, handle: TextIO) -> Iterator[Sample | BadRow]:
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
        self.width = max(columns.values()) + 1
        self._accounts: dict[str, AccountRef | str] = {}  # spelling -> account, or why it is not one

    def __call__(self, row: list[str]) -> Sample:
        if len(row) < self.width:
            raise ValueError(f"expected at least {self.width} columns, got {len(row)}")
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
