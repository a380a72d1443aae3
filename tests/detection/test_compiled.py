"""The detection engine ships compiled (setup.py): the tests must run the compiled modules, not a fallback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import service.detection.detectors.burst
import service.detection.engine
import service.detection.history
from bench.scenarios import Sizes, generate

ROOT = Path(__file__).resolve().parents[2]


def _built_uncompiled() -> bool:
    """setup.py installs the engine uncompiled when asked to, or when the machine has no C compiler."""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return os.environ.get("FLOCKWATCH_PURE_PYTHON", "") not in ("", "0") or shutil.which(compiler) is None


@pytest.mark.skipif(
    _built_uncompiled(), reason="installed uncompiled (FLOCKWATCH_PURE_PYTHON or no C compiler)"
)
def test_the_engine_runs_compiled() -> None:
    modules = (service.detection.engine, service.detection.history, service.detection.detectors.burst)
    assert all(str(module.__file__).endswith(".so") for module in modules)


def test_the_interpreted_engine_finds_exactly_what_the_compiled_one_finds(
    tmp_path: Path, interpreted_service: Path
) -> None:
    # FLOCKWATCH_PURE_PYTHON=1 installs the same modules uncompiled: same detections, byte for byte.
    history = tmp_path / "history.csv"
    with history.open("w") as out:
        out.write("timestamp,account,followers\n")
        for s in generate(7, Sizes(20, 6, 2, 8, 4, 8, 6, 6, 3, 3, 3, 3, 3, 3, 5, 3, 2)):
            out.writelines(f"{int(t)},{s.account},{f}\n" for t, f in zip(s.times, s.followers, strict=True))
    interpreted = interpreted_service

    def backtest(python_path: Path) -> str:
        command = [sys.executable, "-m", "service", "backtest", str(history)]
        environment = {**os.environ, "PYTHONPATH": str(python_path)}
        done = subprocess.run(
            command, capture_output=True, text=True, check=True, env=environment, cwd=tmp_path
        )
        return done.stdout

    probe = "import service.detection.engine as e; print(e.__file__)"
    where = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(interpreted)},
        cwd=tmp_path,
    )
    assert where.stdout.strip().endswith(".py")  # the copy runs interpreted
    found = backtest(ROOT)
    assert found.count("\n") > 50 and '"regular_growth"' in found and '"burst"' in found
    assert backtest(interpreted) == found


def _engine_file(python_path: Path, cwd: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    probe = "import service.detection.engine as e, service.detection.detectors.burst as b; print(e.__file__, b.__file__)"
    return subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(python_path), **environment},
        cwd=cwd,
    )


@pytest.mark.skipif(
    _built_uncompiled(), reason="installed uncompiled (FLOCKWATCH_PURE_PYTHON or no C compiler)"
)
def test_a_source_edited_after_the_build_runs_interpreted_with_a_warning(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "service", copy / "service", ignore=shutil.ignore_patterns("__pycache__"))
    assert _engine_file(copy, tmp_path).stdout.split()[0].endswith(".so")  # as built: compiled, quietly

    burst = copy / "service" / "detection" / "detectors" / "burst.py"
    burst.write_text(burst.read_text() + "\nEDITED = True\n")
    edited = _engine_file(copy, tmp_path)

    assert all(path.endswith(".py") for path in edited.stdout.split())  # the whole engine from sources
    assert "older than their sources (detectors/burst.py)" in edited.stderr
    assert "make install" in edited.stderr


def test_pure_python_at_run_time_loads_the_sources_without_a_rebuild(tmp_path: Path) -> None:
    loaded = _engine_file(ROOT, tmp_path, FLOCKWATCH_PURE_PYTHON="1")

    assert all(path.endswith(".py") for path in loaded.stdout.split())
    assert loaded.stderr == ""
