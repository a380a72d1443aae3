from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.catalog import FAKES
from tests.sources.world import World, open_world


@pytest.fixture(params=sorted(FAKES))
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    async with open_world(request.param) as opened:
        yield opened
