"""The lead's poller, a real SQLite store and the writer, driving a source against its fake platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from service.accounts import AccountRef
from service.board import Board
from service.metrics import ServiceMetrics
from service.poller import Poller
from service.samples import AccountState, Sample
from service.store.database import open_engine, upgrade
from service.store.repository import Store, WatchedAccount
from service.writer import SampleWriter
from tests.fakes.server import FakeAccount
from tests.sources.world import SECRET, World, open_world


@dataclass
class Deployment:
    world: World
    store: Store
    poller: Poller
    writer: SampleWriter

    def watch(self, account: FakeAccount | str) -> AccountRef:
        ref = AccountRef(self.world.platform, self.world.fake.target(account).handle)
        self.store.watch(ref, self.world.clock.now())
        return ref

    async def poll(self, after: timedelta = timedelta(minutes=15)) -> None:
        """One poll of every watched account, ``after`` the previous one; the writer flushes at once."""
        self.world.clock.advance(after)
        await self.poller.poll(self.store.watched())
        assert await self.writer.flush()

    def account(self, ref: AccountRef) -> WatchedAccount:
        return next(a for a in self.store.watched() if a.ref == ref)

    def samples(self, ref: AccountRef) -> list[Sample]:
        return self.store.history(ref)

    def dump(self) -> str:
        """Every row of every table, as text, to search for things that must not be stored."""
        with self.store.engine.connect() as conn:
            tables = [
                row[0] for row in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
            ]
            return "\n".join(
                str(row) for table in tables for row in conn.execute(text(f'SELECT * FROM "{table}"'))
            )

    def platform_handle(self, ref: AccountRef) -> str:
        with self.store.engine.connect() as conn:
            query = text("SELECT platform_handle FROM accounts WHERE platform = :p AND handle = :h")
            return str(conn.execute(query, {"p": ref.platform, "h": ref.handle}).scalar_one())

    def state(self, ref: AccountRef) -> AccountState:
        return self.account(ref).state


@asynccontextmanager
async def deployed(
    case: str, tmp_path: Path, secret: str = SECRET, db_url: str | None = None
) -> AsyncIterator[Deployment]:
    """``case`` names the fake (``FAKES``); the database is SQLite in ``tmp_path`` unless ``db_url`` says."""
    engine = open_engine(db_url or f"sqlite:///{tmp_path / 'flockwatch.db'}")
    upgrade(engine)
    store = Store(engine)
    try:
        async with open_world(case, secret) as world:
            metrics = ServiceMetrics(world.registry)
            writer = SampleWriter(store, metrics)
            poller = Poller(world.source, writer, Board(), metrics, world.clock)
            yield Deployment(world, store, poller, writer)
    finally:
        engine.dispose()
