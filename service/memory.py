"""Giving freed memory back to the operating system.

CPython frees objects into glibc's heaps, which keep the pages: after a start-up that restored 100,000 accounts,
or a /metrics render that built 100 MB of text in a worker thread (whose allocations live in an arena of their
own), the process would stay that large although the memory is free. ``malloc_trim(0)`` hands the free pages of
every arena back. Elsewhere than glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


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
