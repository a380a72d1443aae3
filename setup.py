"""Build step: compile the detection engine's hot modules to C with mypyc.

``flockwatch backtest`` replays hundreds of thousands of samples per second through these modules; compiled,
the same code (and the same results) runs several times faster than interpreted. Everything else in the
project stays plain Python. ``FLOCKWATCH_PURE_PYTHON=1`` skips the compiler, and so does a machine without
a C compiler or the Python headers (with a warning): the modules then run interpreted, with the same
results, at about a third of the speed. All other project metadata lives in pyproject.toml.
"""

import hashlib
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup

COMPILED = [
    "service/detection/base.py",
    "service/detection/evidence.py",
    "service/detection/snapshot.py",
    "service/detection/stats.py",
    "service/detection/history.py",
    "service/detection/platform.py",
    "service/detection/engine.py",
    "service/detection/replay.py",
    "service/detection/csvinput.py",
    "service/detection/folding.py",
    "service/detection/detectors/__init__.py",
    "service/detection/detectors/burst.py",
    "service/detection/detectors/churn.py",
    "service/detection/detectors/drop.py",
    "service/detection/detectors/rate_change.py",
    "service/detection/detectors/regular_growth.py",
]


def missing_toolchain() -> str | None:
    """What this machine lacks to compile C extensions, or None."""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers (Python.h)"
    return None


def record_sources() -> None:
    """Write the digest of every source compiled: the package loads the sources instead of compiled modules
    that no longer match them (service/detection/__init__.py)."""
    package = Path("service/detection")
    digests = {
        str(Path(path).relative_to(package)): hashlib.sha256(Path(path).read_bytes()).hexdigest()
        for path in COMPILED
    }
    lines = [f"    {name!r}: {digest!r}," for name, digest in sorted(digests.items())]
    (package / "_compiled_sources.py").write_text(
        '"""Written by setup.py: the digests of the sources compiled with mypyc."""\n\n'
        "DIGESTS: dict[str, str] = {\n" + "\n".join(lines) + "\n}\n"
    )


def compiled_modules() -> list[Extension]:
    Path("service/detection/_compiled_sources.py").unlink(missing_ok=True)  # written again if compiled
    if os.environ.get("FLOCKWATCH_PURE_PYTHON", "") not in ("", "0"):
        return []
    lacking = missing_toolchain()
    if lacking is not None:
        print(
            f"flockwatch: {lacking}: the detection engine is installed uncompiled (same results, about a "
            "third of the speed); install gcc and the Python headers and reinstall to compile it",
            file=sys.stderr,
        )
        return []
    from mypyc.build import mypycify

    # The project's mypy settings name a plugin the isolated build environment does not have, and the
    # build environment holds none of the runtime dependencies (httpx, pydantic, ...) that modules the
    # compiled ones import may use: mypyc type-checks with no config file, reads those imports as Any and
    # reports errors only in the modules it compiles (`make typecheck` checks everything strictly).
    options = [f"--config-file={os.devnull}", "--ignore-missing-imports", "--follow-imports=silent"]
    extensions = mypycify([*options, *COMPILED], opt_level="3", group_name="flockwatch_native")
    record_sources()
    return extensions


setup(ext_modules=compiled_modules())
