"""Pieces deflated once and spliced into a gzip page: any gzip reader gets back exactly the text."""

from __future__ import annotations

import gzip
import random
import zlib

import pytest

from service.deflate import crc32_combine, deflated, gzipped, plain


@pytest.mark.parametrize("seed", range(5))
def test_the_combined_crc_is_the_crc_of_the_joined_texts(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        first = rng.randbytes(rng.randrange(0, 2_000))
        second = rng.randbytes(rng.choice([0, 1, 7, rng.randrange(0, 300_000)]))
        assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)


def _lines(rng: random.Random) -> bytes:
    return "".join(
        f'flockwatch_followers{{account="a{rng.randrange(10**6)}",platform="x"}} {rng.random()}\n'
        for _ in range(rng.choice([0, 1, rng.randrange(0, 2_000)]))
    ).encode()


@pytest.mark.parametrize("seed", range(5))
def test_a_page_of_text_and_spliced_pieces_reads_back_whole(seed: int) -> None:
    rng = random.Random(seed)
    texts = [_lines(rng) for _ in range(rng.randrange(1, 40))]
    pieces = [deflated(text) if rng.random() < 0.6 else text for text in texts]
    page = gzipped(pieces)
    assert gzip.decompress(page) == b"".join(texts)
    reader = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one member, ended: what HTTP clients read
    assert reader.decompress(page) == b"".join(texts) and reader.eof and not reader.unused_data
    assert [plain(piece) for piece in pieces] == texts
