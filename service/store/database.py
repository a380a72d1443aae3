"""Opening the database and bringing its schema to the newest migration."""

from __future__ import annotations

import logging
import zlib
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

# Alembic is imported where it is used: it pulls in Mako and Pygments, a third of a second that every
# command would pay at start-up (``flockwatch backtest`` never touches a database).

log = logging.getLogger(__name__)


class DatabaseError(Exception):
    """The database cannot be used; the message says why, without credentials."""


def safe_url(url: str) -> str:
    """The URL with any password masked, fit for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def open_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"database.url is not a database URL: {safe_url(url)}") from exc
    if parsed.get_backend_name() == "sqlite":
        _ensure_sqlite_folder(parsed.database)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True, connect_args=_connect_args(parsed.get_backend_name()))


def _connect_args(backend: str) -> dict[str, object]:
    return {"connect_timeout": 5} if backend == "postgresql" else {}


def _ensure_sqlite_folder(database: str | None) -> None:
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().resolve().parent
        if not folder.is_dir():
            raise DatabaseError(f"the folder for the SQLite database does not exist: {folder}")


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def check_reachable(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot reach the database at {safe_url(str(engine.url))}: {reason_of(exc)}"
        ) from exc


def reason_of(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(files("migrations")))
    cfg.attributes["engine"] = engine
    return cfg


MIGRATION_LOCK = "migrations"  # replicas starting together migrate one after the other


def lock_space(conn: Connection) -> int:
    """A 31-bit number naming this database and schema: advisory locks are per database, and several
    flockwatch installations (or test schemas) may share one; each gets its own keys."""
    where = conn.scalar(text("SELECT current_database() || '/' || current_schema()"))
    return zlib.crc32(str(where).encode()) & 0x7FFFFFFF


def lock_key(conn: Connection, purpose: str) -> int:
    """A 63-bit advisory lock key for one purpose in this database and schema."""
    return (lock_space(conn) << 31) | (zlib.crc32(purpose.encode()) & 0x7FFFFFFF)


def upgrade(engine: Engine) -> None:
    """Apply every migration not yet applied (a no-op on an up-to-date database). On PostgreSQL an
    advisory lock makes replicas that start at the same moment migrate one at a time."""
    from alembic import command

    check_reachable(engine)
    try:
        with engine.connect() as lock:
            key = lock_key(lock, MIGRATION_LOCK) if engine.dialect.name == "postgresql" else None
            if key is not None:
                lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                lock.commit()
            try:
                command.upgrade(alembic_config(engine), "head")
            finally:
                if key is not None:
                    lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    lock.commit()
    except SQLAlchemyError as exc:
        raise DatabaseError(f"migrating {safe_url(str(engine.url))} failed: {reason_of(exc)}") from exc


def is_current(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads()) == set(script.get_heads())


def revision_of(engine: Engine) -> str:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return ", ".join(MigrationContext.configure(conn).get_current_heads()) or "none"
