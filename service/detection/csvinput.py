"""Reading follower histories exported from elsewhere: ``timestamp,account,followers[,following][,posts]``.

Columns may come in any order; rows of many accounts may be interleaved and unsorted. A timestamp is
ISO 8601 (``Z`` or an offset; a bare date means 00:00 UTC) or Unix seconds.
"""

from __future__ import annotations

import csv
import gc
import io
import itertools
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, Final, TextIO

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
        # The same positions as plain ints (-1: no such column), for the streaming reader's fast path.
        self.time_column = self._time
        self.account_column = self._account
        self.followers_column = self._followers
        self.following_column = columns.get("following", -1)
        self.posts_column = columns.get("posts", -1)
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


# -- streaming: ``import`` reads a file of any size in bounded memory ------------------------------------

# One row as ``import`` streams it: (account as platform:handle, epoch microseconds, followers, following,
# posts). Integer microseconds are exact, as the database stores times.
Row = tuple[str, int, int, int | None, int | None]
MAX_COUNT: Final = 2**63 - 1  # what the database's BIGINT columns hold
LINE_LIMIT: Final = 1_000_000  # characters; a longer line is a bad row, never held whole
REASON_LIMIT: Final = 200  # characters of a cell quoted in a message
CHUNK_ROWS: Final = 20_000
TIMES_KEPT: Final = 100_000  # distinct time cells remembered by a RowStream (then forgotten at once)
KEPT_PROBLEMS: Final = 5
FUTURE: Final = "dated in the future"
FUTURE_TOLERANCE: Final = timedelta(minutes=5)  # a row dated later than now + this is refused


class FutureRow(ValueError):
    """A row dated after now + the tolerance: a clock error upstream, never stored."""


class Skipped:
    """The bad rows ``--skip-bad-rows`` passed over: counted, those dated in the future apart, the first
    few kept to show (a file of bad rows must not fill memory)."""

    def __init__(self) -> None:
        self.count = 0
        self.future = 0
        self.first: list[BadRow] = []

    def add(self, row: BadRow, future: bool) -> None:
        self.count += 1
        self.future += 1 if future else 0
        if len(self.first) < KEPT_PROBLEMS:
            self.first.append(row)


class RowStream:
    """The rows of a CSV history in file order, a chunk at a time, with the checks of ``read_samples``
    plus two of its own: counts the database can hold, and no row dated after ``not_after_us``.

    Lines without quotes are split by hand and their common cells converted directly; a line with a quote
    goes through the csv module (a quoted cell may span lines). Bytes that are not UTF-8 make their line a
    bad row. Memory holds one chunk and one entry per distinct account spelling, whatever the file's size.
    """

    def __init__(self, path: Path, skip_bad_rows: bool = False, not_after_us: int | None = None) -> None:
        self.path = path
        self.skip_bad_rows = skip_bad_rows
        self.not_after_us = not_after_us
        self.skipped = Skipped()
        self.accounts: dict[str, AccountRef] = {}  # platform:handle -> account
        # platform:handle -> the account's place among the file's accounts, in the order they first appear:
        # the same in every reader of the file, so two processes name an account alike without its id
        self.keys: dict[str, int] = {}
        self.rows = 0  # good rows read so far
        self._names: dict[str, str] = {}  # spelling in the file -> platform:handle
        self._midnights: dict[str, int] = {}
        # a time cell -> its epoch microseconds: an export in time order names each time once per account
        self._times: dict[str, int] = {}
        self._raw: BinaryIO | None = None

    def position(self) -> int:
        """Bytes of the file read so far (for a progress bar)."""
        raw = self._raw
        return raw.tell() if raw is not None and not raw.closed else 0

    def chunks(self, size: int = CHUNK_ROWS) -> Generator[list[Row], None, None]:
        raw = self.path.open("rb")
        self._raw = raw
        # Closing the text layer closes the file, also when a bad row stops the reading half-way.
        with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
            lines = _bounded_lines(text)
            header = next(lines, None)
            if header is None:
                raise BadRow(self.path, 1, "the file is empty; expected a header timestamp,account,followers")
            cells = next(csv.reader([header]), [])
            parser = _RowParser(_columns(self.path, [h.strip().lower() for h in cells]))
            yield from self._read(lines, parser, size)

    def _read(self, lines: Iterator[str], parser: _RowParser, size: int) -> Iterator[list[Row]]:
        rows: list[Row] = []
        number = 1
        for line in lines:
            number += 1
            try:
                if len(line) >= LINE_LIMIT and not line.endswith(("\n", "\r")):
                    raise ValueError(f"the line is longer than {LINE_LIMIT:,} characters")
                if '"' in line:
                    reader = csv.reader(itertools.chain([line], lines))
                    try:
                        cells = next(reader, [])
                    finally:
                        number += max(reader.line_num - 1, 0)  # a quoted cell may span lines
                    row = self._cells(cells, parser)
                else:
                    row = self._line(line, parser)
            except (ValueError, csv.Error) as exc:
                self._bad(number, exc)
                continue
            if row is not None:
                rows.append(row)
                if len(rows) >= size:
                    self.rows += len(rows)
                    yield rows
                    rows = []
        self.rows += len(rows)
        if rows:
            yield rows

    def _line(self, line: str, parser: _RowParser) -> Row | None:
        if not line.isascii() and _undecodable(line):
            raise ValueError("the line is not UTF-8 text")
        line = line.rstrip("\r\n")
        first = line[:1]
        if (not first or first == "," or first.isspace()) and not line.replace(",", "").strip():
            return None  # a blank row, as the csv module skips it
        return self._cells(line.split(","), parser)

    def _cells(self, cells: list[str], parser: _RowParser) -> Row | None:
        if not cells or all(not cell.strip() for cell in cells):
            return None
        row = self._fast(cells, parser)
        if row is None:
            row = self._strict(cells, parser)
        if self.not_after_us is not None and row[1] > self.not_after_us:
            when = datetime.fromtimestamp(row[1] / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise FutureRow(f"{FUTURE}: {when} is after now + {FUTURE_TOLERANCE.seconds // 60} minutes")
        return row

    def _fast(self, cells: list[str], parser: _RowParser) -> Row | None:
        """The common cells (known account, Unix seconds or ``...T...Z``, plain digits) without parsing."""
        if len(cells) < parser.width:
            return None
        name = self._names.get(cells[parser.account_column])
        if name is None:
            return None
        at = self._micros(cells[parser.time_column])
        followers = _plain_count(cells[parser.followers_column])
        if at < 0 or followers < 0:
            return None
        following = _optional(cells, parser.following_column)
        posts = _optional(cells, parser.posts_column)
        if following == -2 or posts == -2:
            return None
        return (name, at, followers, None if following < 0 else following, None if posts < 0 else posts)

    def _micros(self, cell: str) -> int:
        at = self._times.get(cell)
        if at is None:
            at = _fast_micros(cell, self._midnights)
            if at >= 0:  # (a cell it cannot read may be long, and is read by the strict path anyway)
                if len(self._times) >= TIMES_KEPT:
                    self._times.clear()
                self._times[cell] = at
        return at

    def _strict(self, cells: list[str], parser: _RowParser) -> Row:
        sample = parser(cells)
        for value, what in (
            (sample.followers, "followers"),
            (sample.following, "following"),
            (sample.posts, "posts"),
        ):
            if value is not None and value > MAX_COUNT:
                raise ValueError(f"{what} {_shorten(str(value))} is too large")
        name = str(sample.account)
        if name not in self.accounts:
            self.keys[name] = len(self.accounts)
            self.accounts[name] = sample.account
        self._names.setdefault(cells[parser.account_column], name)
        return (name, micros(sample.observed_at), sample.followers, sample.following, sample.posts)

    def _bad(self, number: int, exc: Exception) -> None:
        problem = BadRow(self.path, number, _shorten(str(exc)))
        if not self.skip_bad_rows:
            raise problem
        self.skipped.add(problem, isinstance(exc, FutureRow))


EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def micros(when: datetime) -> int:
    """Epoch microseconds of an aware datetime, exactly."""
    delta = when - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _bounded_lines(text: TextIO) -> Iterator[str]:
    """The file's lines (ends kept), none longer than LINE_LIMIT: the rest of a longer line is dropped,
    and what is returned of it has no line end, which marks it as too long."""
    while True:
        line = text.readline(LINE_LIMIT)
        if not line:
            return
        if len(line) >= LINE_LIMIT and not line.endswith(("\n", "\r")):
            rest = line
            while rest and not rest.endswith(("\n", "\r")):
                rest = text.readline(LINE_LIMIT)
        yield line


def _undecodable(line: str) -> bool:
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _fast_micros(text: str, midnights: dict[str, int]) -> int:
    """Epoch microseconds of Unix seconds or ``YYYY-MM-DDTHH:MM:SSZ``; -1 for anything else."""
    if 0 < len(text) <= 11 and text.isdigit() and text.isascii():
        return int(text) * 1_000_000
    if len(text) != 20 or text[19] != "Z" or text[10] != "T" or text[13] != ":" or text[16] != ":":
        return -1
    clock = text[11:13] + text[14:16] + text[17:19]
    if not (clock.isdigit() and clock.isascii()):
        return -1
    hours, minutes, seconds = int(clock[:2]), int(clock[2:4]), int(clock[4:])
    if hours > 23 or minutes > 59 or seconds > 59:
        return -1
    day = text[:10]
    midnight = midnights.get(day)
    if midnight is None:
        try:
            midnight = micros(parse_timestamp(day + "T00:00:00Z")) // 1_000_000
        except ValueError:
            return -1
        if midnight < 0:
            return -1
        midnights[day] = midnight
    return (midnight + hours * 3600 + minutes * 60 + seconds) * 1_000_000


def _plain_count(text: str) -> int:
    """A count written as up to 18 plain digits (always below MAX_COUNT); -1 for anything else."""
    if 0 < len(text) <= 18 and text.isdigit() and text.isascii():
        return int(text)
    return -1


def _optional(cells: list[str], column: int) -> int:
    """An optional count: its value, -1 when the column is absent or empty, -2 when it needs parsing."""
    if column < 0 or not cells[column]:
        return -1
    value = _plain_count(cells[column])
    return value if value >= 0 else -2


def _shorten(text: str) -> str:
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"
