"""The detection engine: streaming detectors that turn follower-count samples into explained verdicts.

Its hot modules are compiled with mypyc when installed (setup.py), and a compiled module is imported in
place of its source. Compiled modules must never run silently in place of edited sources: setup.py records
the digest of every source it compiled (``_compiled_sources.py``), and when a source no longer matches
(edited since the build) this package loads every module of the engine from its sources instead, with a
warning on stderr. ``FLOCKWATCH_PURE_PYTHON=1`` at run time does the same on purpose, without a warning:
an edit is testable at once, interpreted, without the minute-long rebuild.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def edited_since_build() -> list[str]:
    """The compiled modules whose sources changed since they were compiled (paths under this package)."""
    try:
        digests: dict[str, str] = importlib.import_module(__name__ + "._compiled_sources").DIGESTS
    except ImportError:  # installed uncompiled, or never built: nothing compiled can be stale
        return []
    return sorted(
        name
        for name, digest in digests.items()
        if not (HERE / name).exists() or hashlib.sha256((HERE / name).read_bytes()).hexdigest() != digest
    )


class SourcesFirst(importlib.abc.MetaPathFinder):
    """Finds the engine's modules as sources, never as compiled extensions."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(__name__ + "."):
            return None
        relative = Path(*fullname.split(".")[2:])
        package = HERE / relative / "__init__.py"
        if package.exists():
            return importlib.util.spec_from_file_location(
                fullname, package, submodule_search_locations=[str(package.parent)]
            )
        module = (HERE / relative).with_suffix(".py")
        return importlib.util.spec_from_file_location(fullname, module) if module.exists() else None


def _load_sources_when_needed() -> None:
    if os.environ.get("FLOCKWATCH_PURE_PYTHON", "") not in ("", "0"):
        sys.meta_path.insert(0, SourcesFirst())
    elif edited := edited_since_build():
        logging.getLogger(__name__).warning(
            "the compiled detection modules are older than their sources (%s): running the sources "
            "interpreted (same results, slower); reinstall (`make install`) to compile them again",
            ", ".join(edited),
        )
        sys.meta_path.insert(0, SourcesFirst())


_load_sources_when_needed()
