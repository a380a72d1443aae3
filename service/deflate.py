"""Pieces of a /metrics page deflated once and spliced into every gzipped page that carries them unchanged.

At 100,000 accounts the page is over 100 MB of text, and gzipping it again for every scrape costs most of a CPU
second even when no account changed. A deflate stream is a sequence of blocks, so a piece compressed on its own
and ended on a byte boundary without the final-block flag (``Z_SYNC_FLUSH``) can be copied as it is into any
stream whose compressor was flushed the same way and forgot what came before (``Z_FULL_FLUSH``); the piece's
back-references then point inside the piece only. The gzip trailer's CRC-32 of the whole text is combined from
the pieces' own CRCs (polynomial arithmetic, as zlib's ``crc32_combine``, which Python's ``zlib`` does not expose),
so a scrape where nothing changed costs a splice, not a compression.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from typing import NamedTuple

LEVEL = 1  # zlib's fastest: the page is regular text, and level 1 already shrinks it about fifteen times
_RAW = -zlib.MAX_WBITS  # raw deflate: the gzip header and trailer are written around the spliced pieces
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, no time, unknown OS
_POLY = 0xEDB88320  # CRC-32 (gzip's), bit-reflected
_ONE = 1 << 31  # the polynomial 1 in that reflected form


class Deflated(NamedTuple):
    """Text deflated on its own into blocks that can be spliced into a gzip stream."""

    data: bytes  # raw deflate blocks, none final, ending on a byte boundary
    size: int  # bytes of text
    crc: int  # CRC-32 of the text

    def text(self) -> bytes:
        return zlib.decompressobj(_RAW).decompress(self.data)


Piece = bytes | Deflated  # a piece of a page: text, or text deflated already


def deflated(text: bytes) -> Deflated:
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, _RAW)
    return Deflated(
        compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH), len(text), zlib.crc32(text)
    )


def plain(piece: Piece) -> bytes:
    return piece.text() if isinstance(piece, Deflated) else piece


class GzipPage:
    """A gzip stream written from pieces: text is compressed, deflated pieces are spliced in as they are."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, _RAW)
        self._out: list[bytes] = [_HEADER]
        self._crc = self._size = 0
        self._open = False  # text went into the compressor since it was last flushed

    def add(self, piece: Piece) -> None:
        if isinstance(piece, Deflated):
            self._splice(piece)
            return
        self._out.append(self._compressor.compress(piece))
        self._crc, self._size = zlib.crc32(piece, self._crc), self._size + len(piece)
        self._open = True

    def finish(self) -> bytes:
        self._out.append(self._compressor.flush(zlib.Z_FINISH))
        self._out.append(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        return b"".join(self._out)

    def _splice(self, piece: Deflated) -> None:
        if self._open:  # byte-aligned, and nothing after the piece refers back past it
            self._out.append(self._compressor.flush(zlib.Z_FULL_FLUSH))
            self._open = False
        self._out.append(piece.data)
        self._crc = crc32_combine(self._crc, piece.crc, piece.size)
        self._size += piece.size


def gzipped(pieces: Iterable[Piece]) -> bytes:
    page = GzipPage()
    for piece in pieces:
        page.add(piece)
    return page.finish()


def crc32_combine(first: int, second: int, second_size: int) -> int:
    """The CRC-32 of two texts one after the other, from their CRCs and the second's length."""
    return _times(_x_to_8_times(second_size), first) ^ second


def _times(a: int, b: int) -> int:
    """a times b modulo the CRC polynomial (a must not be zero)."""
    bit, product = _ONE, 0
    while True:
        if a & bit:
            product ^= b
            if not a & (bit - 1):
                return product
        bit >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _squares() -> list[int]:
    """x to the power 2**n modulo the polynomial, for n from 0 to 31."""
    table = [_ONE >> 1]  # x
    for _ in range(31):
        table.append(_times(table[-1], table[-1]))
    return table


_X_TO_2_TO = _squares()


def _x_to_8_times(size: int) -> int:
    """x to the power 8 * size (shifting a CRC past ``size`` zero bytes) modulo the polynomial."""
    power, index = _ONE, 3  # 8 * size = size << 3
    while size:
        if size & 1:
            power = _times(_X_TO_2_TO[index & 31], power)
        size >>= 1
        index += 1
    return power
