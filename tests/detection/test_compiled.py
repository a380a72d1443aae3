"""The detection engine ships compiled (setup.py): the tests must run the compiled modules, not a fallback."""

from __future__ import annotations

import os

import pytest

import service.detection.detectors.burst
import service.detection.engine
import service.detection.history


@pytest.mark.skipif(
    os.environ.get("FLOCKWATCH_PURE_PYTHON", "") not in ("", "0"), reason="built without the compiler"
)
def test_the_engine_runs_compiled() -> None:
    modules = (service.detection.engine, service.detection.history, service.detection.detectors.burst)
    assert all(str(module.__file__).endswith(".so") for module in modules)
