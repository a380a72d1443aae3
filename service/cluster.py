"""Several daemons on one PostgreSQL database share the watchlist: each account is polled by one of them.

The watchlist is cut into ``cluster.shards`` shards (an account's shard is its id modulo the count). A
replica holds a shard by holding a PostgreSQL session advisory lock on a connection of its own, so the
database itself guarantees one holder at a time, and a replica that dies (SIGKILL, a lost node) loses its
locks as soon as its session ends. Each replica also holds a shared "member" lock on that session, so the
live replicas are counted from the locks themselves (no clocks, no ghosts after a crash). Every
``cluster.heartbeat`` each replica notes itself in the ``replicas`` table (for people to read), counts the
live replicas, takes free shards up to its fair share and gives back the shards above it (after its polls of them finished and their states were saved), so shards spread evenly
and a dead replica's shards are taken over within a few heartbeats. A replica that cannot reach its lock
connection stops polling at once: it may no longer hold its shards. On SQLite there is one replica,
holding every shard, with no locks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.pool import NullPool

from service.config import ClusterConfig
from service.store.database import lock_space

log = logging.getLogger(__name__)

DETACHED_GRACE = 30.0  # seconds of polling on after the last good heartbeat, with others around
KEEPALIVE_FLOOR = 45.0  # PostgreSQL ends a silent lock session no sooner than this (keepalives set below)
KEEPALIVES = {"tcp_keepalives_idle": "25", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "4"}
# The lock session's own side: a silent network fails its queries within about 15 s.
CLIENT_TIMEOUTS = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
    "connect_timeout": 5,
}
MEMBER = 2**31 - 1  # second key of the shared lock every replica holds while it lives (never a shard number)
GONE_AFTER = timedelta(minutes=10)  # rows of replicas not seen this long are deleted

Change = Callable[[set[int]], Awaitable[None]]
HandOver = Callable[[set[int]], Awaitable[bool]]


class BeatFailed(Exception):
    """A heartbeat's statement failed, the session and its locks are fine."""


class Cluster:
    def __init__(self, engine: Engine, config: ClusterConfig, name: str) -> None:
        self.shards = config.shards
        self.heartbeat = config.heartbeat
        self.name = name
        self.shared = engine.dialect.name == "postgresql"
        # The lock session gets an engine of its own whose connections give up within seconds when the network
        # goes silent, instead of waiting for TCP to time out (about 15 minutes).
        self.engine = open_lock_engine(engine) if self.shared else engine
        self.held: set[int] = set() if self.shared else set(range(self.shards))
        self.leaving: set[int] = set()  # held shards being handed over: no new polls of them
        self._conn: Connection | None = None
        # the first key of every shard lock (this database and schema); the shard is the second
        self._space = 0
        self._last_beat = time.monotonic()  # when the locks were last known to be ours
        self._alone = True  # whether this replica was the only one at the last good heartbeat
        self._detached = False
        self._beating: asyncio.Task[tuple[int, list[int]]] | None = None
        self._settle_until = 0.0
        self._lock = threading.Lock()  # the lock connection is used from one thread at a time

    def owns(self, account_id: int) -> bool:
        shard = account_id % self.shards
        return shard in self.held and shard not in self.leaving

    @property
    def fraction(self) -> float:
        """The share of the watchlist (and of each platform's rate budget) this replica has."""
        return len(self.held) / self.shards

    async def beat(self, acquire: Change, hand_over: HandOver, stop: Change) -> None:
        """One heartbeat: stay alive, then even out the shards. ``acquire`` runs after shards are taken,
        ``hand_over`` before they are given back (False: not now), ``stop`` when polling them must stop at
        once (the locks may be gone)."""
        if not self.shared:
            return
        if self._beating is None:
            self._beating = asyncio.create_task(asyncio.to_thread(self._beat))
        done, _ = await asyncio.wait({self._beating}, timeout=self.heartbeat.total_seconds() * 2)
        if not done:  # the database went silent: the beat hangs until the connection's timeouts end it
            await self._cut_off(stop, TimeoutError("no answer to the heartbeat"))
            return
        beating, self._beating = self._beating, None
        try:
            live, free = beating.result()
        except BeatFailed as exc:  # a statement failed; the session (and its locks) is fine
            log.warning("a cluster heartbeat failed; the next one tries again", extra={"reason": str(exc)})
            return
        except Exception as exc:  # the lock connection failed: our locks may be gone with it
            await asyncio.to_thread(self._drop_connection)
            await self._cut_off(stop, exc)
            return
        self._last_beat, self._alone = time.monotonic(), live <= 1
        if self._detached:
            await self._reattach(stop)
        else:
            await self._even_out(live, free, acquire, hand_over)

    async def _even_out(self, live: int, free: list[int], acquire: Change, hand_over: HandOver) -> None:
        fair = math.ceil(self.shards / max(live, 1))
        if len(self.held) > fair:
            extra = set(sorted(self.held)[fair:])
            self.leaving |= extra
            if not await hand_over(extra):
                self.leaving -= extra
                return
            await asyncio.to_thread(self._unlock, extra)
            self.held -= extra
            self.leaving -= extra
            log.info(
                "shards given back", extra={"shards": len(extra), "held": len(self.held), "replicas": live}
            )
        elif len(self.held) < fair and free and time.monotonic() >= self._settle_until:
            taken = await asyncio.to_thread(self._try_lock, free, fair - len(self.held))
            if taken:
                await self._take(taken, acquire, live)

    async def _take(self, taken: set[int], acquire: Change, live: int) -> None:
        self.held |= taken
        try:
            await acquire(taken)
        except Exception:  # unlocked again, so that this replica or another takes them at the next heartbeat
            self.held -= taken
            await asyncio.to_thread(self._unlock, taken)
            raise
        log.info("shards taken", extra={"shards": len(taken), "held": len(self.held), "replicas": live})

    async def leave(self, hand_over: HandOver) -> None:
        """Give every shard back (the caller saved what it needs) and say goodbye."""
        if not self.shared:
            return
        await hand_over(set(self.held))
        try:
            await asyncio.to_thread(self._close)
        finally:
            self.held = set()

    async def _cut_off(self, stop: Change, exc: BaseException) -> None:
        """The lock connection failed or went silent. Alone at the last good heartbeat, this replica polls on
        into its spool (nobody else can take its shards). With others, it polls on for ``DETACHED_GRACE``
        from the last good heartbeat, well before PostgreSQL ends a silent lock session and frees its locks
        (the session's keepalives take at least ``KEEPALIVE_FLOOR``), then stops polling."""
        if not self._detached:
            self._detached = True
            log.error(
                "lost the cluster's lock connection; polling the held shards goes on while it reconnects",
                extra={"reason": _first_line(exc), "held": len(self.held), "alone": self._alone},
            )
        if not self.held or self._alone or time.monotonic() - self._last_beat < DETACHED_GRACE:
            return
        log.error("still cut off from the database: polling stops until shards are held again")
        lost, self.held = set(self.held), set()
        await stop(lost)

    async def _reattach(self, stop: Change) -> None:
        """Connected again: take back the shards held before; any another replica took meanwhile is given up."""
        kept = await asyncio.to_thread(self._try_lock, sorted(self.held), len(self.held))
        gone = self.held - kept
        if gone:
            await stop(gone)
        self.held = kept
        self._detached = False
        # Let every replica take its own shards back before anyone takes free ones.
        self._settle_until = time.monotonic() + 2 * self.heartbeat.total_seconds()
        log.info("the cluster's lock connection is back", extra={"held": len(kept), "lost": len(gone)})

    # -- in a worker thread ------------------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
            # the locks live on this session; it must not sit inside a transaction or time out idle
            self._conn.execute(
                text("SELECT set_config('application_name', :name, false)"),
                {"name": f"flockwatch {self.name}"[:63]},
            )
            for setting, value in KEEPALIVES.items():
                self._conn.execute(text("SELECT set_config(:s, :v, false)"), {"s": setting, "v": value})
            self._space = lock_space(self._conn)
            self._conn.execute(
                text("SELECT pg_advisory_lock_shared(:c, :m)"), {"c": self._space, "m": MEMBER}
            )
            self._conn.commit()
        return self._conn

    def _beat(self) -> tuple[int, list[int]]:
        with self._lock:
            conn = self._connection()
            try:
                return self._beat_on(conn)
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:
                if conn.invalidated:
                    raise
                conn.rollback()
                raise BeatFailed(_first_line(exc)) from exc

    def _beat_on(self, conn: Connection) -> tuple[int, list[int]]:
        now = conn.scalar(text("SELECT now()"))
        assert isinstance(now, datetime)
        conn.execute(
            text(
                "INSERT INTO replicas (name, started_at, seen_at, shards) VALUES (:name, :now, :now, :held) "
                "ON CONFLICT (name) DO UPDATE SET seen_at = :now, shards = :held"
            ),
            {"name": self.name, "now": now, "held": len(self.held)},
        )
        conn.execute(text("DELETE FROM replicas WHERE seen_at < :gone"), {"gone": now - GONE_AFTER})
        locks = conn.execute(
            text(
                "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND classid = :c AND objsubid = 2 "
                "AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"c": self._space},
        ).all()
        live = sum(1 for (objid,) in locks if objid == MEMBER)
        held_anywhere = {int(objid) for (objid,) in locks if objid != MEMBER}
        conn.commit()
        return live, [s for s in range(self.shards) if s not in held_anywhere]

    def _try_lock(self, free: list[int], wanted: int) -> set[int]:
        taken: set[int] = set()
        with self._lock:
            conn = self._connection()
            for shard in free:
                if len(taken) >= wanted:
                    break
                got = conn.scalar(text("SELECT pg_try_advisory_lock(:c, :s)"), {"c": self._space, "s": shard})
                if got:
                    taken.add(shard)
            conn.commit()
        return taken

    def _unlock(self, shards: set[int]) -> None:
        with self._lock:
            conn = self._connection()
            for shard in sorted(shards):
                conn.execute(text("SELECT pg_advisory_unlock(:c, :s)"), {"c": self._space, "s": shard})
            conn.commit()

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
                    self._conn.execute(text("DELETE FROM replicas WHERE name = :name"), {"name": self.name})
                    self._conn.commit()
                finally:
                    self._conn.close()
            self._conn = None

    def _drop_connection(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.invalidate()
                    self._conn.close()
                except Exception as exc:  # already broken: nothing more to do with it
                    log.debug("closing the lost lock connection failed", extra={"reason": str(exc)})
            self._conn = None


def open_lock_engine(engine: Engine) -> Engine:
    """An engine for the lock session: same database, no pool, short client-side timeouts."""
    return create_engine(engine.url, poolclass=NullPool, connect_args=CLIENT_TIMEOUTS)


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__
