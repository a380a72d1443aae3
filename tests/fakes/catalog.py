"""Every fake platform by the case it plays (``FakePlatform.case``), found in the modules of this package:
one per platform, and GitHub's repositories twice (through GraphQL with a token, through REST without)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

from tests.fakes.server import FakePlatform


def _fakes() -> dict[str, type[FakePlatform]]:
    found: dict[str, type[FakePlatform]] = {}
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        for _, fake in inspect.getmembers(
            importlib.import_module(f"tests.fakes.{module.name}"), inspect.isclass
        ):
            if issubclass(fake, FakePlatform) and not inspect.isabstract(fake):
                found[fake.case or fake.platform] = fake
    return dict(sorted(found.items()))


FAKES = _fakes()
