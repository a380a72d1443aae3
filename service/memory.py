"""Giving freed memory back to the operating system, and keeping the cyclic collector out of bulk work.

CPython frees objects into glibc's heaps, which keep the pages: after a start-up that restored 100,000 accounts,
or a /metrics render that built 100 MB of text in a worker thread (whose allocations live in an arena of their
own), the process would stay that large although the memory is free. ``malloc_trim(0)`` hands the free pages of
every arena back. Elsewhere than glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _find_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _find_trim()


def give_back() -> bool:
    """Return the free pages of every malloc arena to the system; False where the C library cannot."""
    if _TRIM is None:
        return False
    return bool(_TRIM(0))


@contextmanager
def fewer_collections() -> Iterator[None]:
    """While the block runs, the objects made before it stay out of the cyclic collector's scans, and a
    scan comes every 100,000 allocations instead of 700. A replay or an import makes millions of objects
    that form no cycles (rows, detector states); scanning them over and over was a fifth of their time
    (an import of 10,000 accounts x 7 days: the analysing process 57 CPU-s down to 44)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
