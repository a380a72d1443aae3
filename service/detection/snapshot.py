"""Detector state as data: the compact, versioned bytes ``DetectionEngine.snapshot`` writes.

A snapshot is a flat record, not a pickle: every component writes its fields in a fixed order through a
``StateWriter`` and reads them back in the same order through a ``StateReader``. The bytes are

    magic "FWDS", format version (1 byte), then a zlib stream (with its Adler-32 check) of:
    counts of floats, ints and text bytes (3 x uint32), the floats (float64), the ints (int64),
    the texts (UTF-8)

all little-endian. Floats are stored bit for bit, so a restored engine computes exactly what the original
would have; zlib takes a typical account's 1-2 KB of fields to a third of that (most ints are small, and
the times of one account share their leading bytes). Another version, a failed check, or fields that do
not line up raise ``SnapshotError``: the caller then rebuilds the state from samples. Change SNAPSHOT_VERSION whenever a component's layout changes
(tests/detection/test_snapshot.py pins the layout of a known history).
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from datetime import UTC, datetime, timedelta
from typing import Final, final

MAGIC: Final = b"FWDS"
SNAPSHOT_VERSION: Final = 4
_HEADER: Final = struct.Struct("<4sB")
_COUNTS: Final = struct.Struct("<III")
_MAX_BYTES: Final = 1 << 28  # far above any real state: a bigger payload is not one this engine wrote
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_NONE: Final = -(2**63)  # an optional int that is absent


class SnapshotError(ValueError):
    """Bytes that are not a snapshot this release can read: another format version, or corrupt."""


@final
class StateWriter:
    __slots__ = ("_floats", "_ints", "_texts")

    def __init__(self) -> None:
        self._floats: array[float] = array("d")
        self._ints: array[int] = array("q")
        self._texts: list[bytes] = []

    def number(self, value: float) -> None:
        self._floats.append(value)

    def integer(self, value: int) -> None:
        self._ints.append(value)

    def flag(self, value: bool) -> None:
        self._ints.append(1 if value else 0)

    def optional_integer(self, value: int | None) -> None:
        self._ints.append(_NONE if value is None else value)

    def optional_number(self, value: float | None) -> None:
        self.flag(value is not None)
        if value is not None:
            self._floats.append(value)

    def numbers(self, values: array[float]) -> None:
        self._ints.append(len(values))
        self._floats.extend(values)

    def integers(self, values: array[int]) -> None:
        self._ints.append(len(values))
        self._ints.extend(values)

    def text(self, value: str) -> None:
        encoded = value.encode()
        self._ints.append(len(encoded))
        self._texts.append(encoded)

    def optional_text(self, value: str | None) -> None:
        self.flag(value is not None)
        if value is not None:
            self.text(value)

    def time(self, value: datetime) -> None:
        """A datetime, exactly: whole microseconds since the epoch."""
        self._ints.append((value - _EPOCH) // _MICROSECOND)

    def optional_time(self, value: datetime | None) -> None:
        self.optional_integer(None if value is None else (value - _EPOCH) // _MICROSECOND)

    def finish(self, level: int = 6) -> bytes:
        """The snapshot, compressed at zlib ``level`` (1 is about twice as fast and 5% larger)."""
        texts = b"".join(self._texts)
        floats, ints = self._floats, self._ints
        if sys.byteorder != "little":  # the format is little-endian everywhere
            floats, ints = array("d", floats), array("q", ints)
            floats.byteswap()
            ints.byteswap()
        counts = _COUNTS.pack(len(floats), len(ints), len(texts))
        payload = counts + floats.tobytes() + ints.tobytes() + texts
        return _HEADER.pack(MAGIC, SNAPSHOT_VERSION) + zlib.compress(payload, level)


@final
class StateReader:
    """Reads a snapshot's fields back in the order they were written; any mismatch is a SnapshotError."""

    __slots__ = ("_float_at", "_floats", "_int_at", "_ints", "_text_at", "_texts")

    def __init__(self, data: bytes) -> None:
        if len(data) <= _HEADER.size or data[:4] != MAGIC:
            raise SnapshotError("not a flockwatch detection snapshot")
        version = _HEADER.unpack_from(data)[1]
        if version != SNAPSHOT_VERSION:
            raise SnapshotError(f"snapshot format {version}, this release reads format {SNAPSHOT_VERSION}")
        payload = _inflate(data[_HEADER.size :])
        if len(payload) < _COUNTS.size:
            raise SnapshotError("snapshot is truncated")
        floats, ints, texts = _COUNTS.unpack_from(payload)
        end = _COUNTS.size + 8 * floats + 8 * ints + texts
        if len(payload) != end:
            raise SnapshotError("snapshot is truncated or corrupt (sizes do not add up)")
        self._floats: array[float] = array("d")
        self._floats.frombytes(payload[_COUNTS.size : _COUNTS.size + 8 * floats])
        self._ints: array[int] = array("q")
        self._ints.frombytes(payload[_COUNTS.size + 8 * floats : end - texts])
        if sys.byteorder != "little":
            self._floats.byteswap()
            self._ints.byteswap()
        self._texts = payload[end - texts : end]
        self._float_at = 0
        self._int_at = 0
        self._text_at = 0

    def number(self) -> float:
        at = self._float_at
        if at >= len(self._floats):
            raise SnapshotError("snapshot ends early (floats)")
        self._float_at = at + 1
        return self._floats[at]

    def integer(self) -> int:
        at = self._int_at
        if at >= len(self._ints):
            raise SnapshotError("snapshot ends early (ints)")
        self._int_at = at + 1
        return self._ints[at]

    def flag(self) -> bool:
        value = self.integer()
        if value not in (0, 1):
            raise SnapshotError(f"snapshot field out of place (flag {value})")
        return value == 1

    def count(self, limit: int) -> int:
        """A length written before a sequence, checked against what the reader can hold."""
        value = self.integer()
        if not 0 <= value <= limit:
            raise SnapshotError(f"snapshot field out of place (length {value})")
        return value

    def optional_integer(self) -> int | None:
        value = self.integer()
        return None if value == _NONE else value

    def optional_number(self) -> float | None:
        return self.number() if self.flag() else None

    def numbers(self, limit: int) -> array[float]:
        n = self.count(limit)
        at = self._float_at
        if at + n > len(self._floats):
            raise SnapshotError("snapshot ends early (floats)")
        self._float_at = at + n
        return self._floats[at : at + n]

    def integers(self, limit: int) -> array[int]:
        n = self.count(limit)
        at = self._int_at
        if at + n > len(self._ints):
            raise SnapshotError("snapshot ends early (ints)")
        self._int_at = at + n
        return self._ints[at : at + n]

    def text(self) -> str:
        n = self.count(len(self._texts))
        at = self._text_at
        if at + n > len(self._texts):
            raise SnapshotError("snapshot ends early (texts)")
        self._text_at = at + n
        try:
            return self._texts[at : at + n].decode()
        except UnicodeDecodeError as exc:
            raise SnapshotError("snapshot text is not UTF-8") from exc

    def optional_text(self) -> str | None:
        return self.text() if self.flag() else None

    def time(self) -> datetime:
        try:
            return _EPOCH + self.integer() * _MICROSECOND
        except OverflowError as exc:
            raise SnapshotError("snapshot time out of range") from exc

    def optional_time(self) -> datetime | None:
        value = self.optional_integer()
        if value is None:
            return None
        try:
            return _EPOCH + value * _MICROSECOND
        except OverflowError as exc:
            raise SnapshotError("snapshot time out of range") from exc

    def done(self) -> None:
        """Every field read: anything left over means the layout was not the one written."""
        if (self._float_at, self._int_at, self._text_at) != (
            len(self._floats),
            len(self._ints),
            len(self._texts),
        ):
            raise SnapshotError("snapshot has fields this release does not read")


def _inflate(compressed: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        payload = inflater.decompress(compressed, _MAX_BYTES)
    except zlib.error as exc:
        raise SnapshotError(f"snapshot is truncated or corrupt ({exc})") from exc
    if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise SnapshotError("snapshot is truncated or corrupt (incomplete or trailing data)")
    return payload
