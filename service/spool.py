"""The write-ahead spool: what was polled is on local disk before it counts as taken.

A past follower count can never be fetched again, so a poll's samples, account updates and detections are
appended here (an embedded SQLite file, fsynced per batch) before anything else happens to them; the
writer copies them to the database in bounded chunks and trims them once written. After SIGKILL, a
database outage or both, start-up replays what is left: writes are idempotent, so nothing is lost and
nothing is stored twice. A record the database refuses is moved to the quarantine table with the reason,
where ``flockwatch spool`` shows it and can put it back.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.accounts import AccountRef
from service.samples import AccountState, Sample
from service.store.repository import AccountUpdate, DetectionRow

DEFAULT_MAX_BYTES = 1 << 30
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS pending ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, samples INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quarantine ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL,"
    " reason TEXT NOT NULL, body TEXT NOT NULL)",
)


@dataclass
class Batch:
    """What one poll (or part of one) took: samples with their account ids, account updates, detections."""

    samples: list[tuple[int, Sample]] = field(default_factory=list)
    updates: list[AccountUpdate] = field(default_factory=list)
    detections: list[DetectionRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples) + len(self.updates) + len(self.detections)

    def extend(self, other: Batch) -> None:
        self.samples += other.samples
        self.updates += other.updates
        self.detections += other.detections

    def records(self) -> list[Batch]:
        """One batch per record: the unit the writer isolates a refused record down to."""
        return [
            *(Batch(samples=[s]) for s in self.samples),
            *(Batch(updates=[u]) for u in self.updates),
            *(Batch(detections=[d]) for d in self.detections),
        ]

    def kind(self) -> str:
        return "sample" if self.samples else "update" if self.updates else "detection"


@dataclass(frozen=True)
class Quarantined:
    id: int
    at: datetime
    kind: str
    reason: str
    body: str


class SpoolBusy(Exception):
    """Another process (a second daemon) is using this spool."""


class UnreadableBatch(ValueError):
    """A pending batch that cannot be read back (damaged, or written by a release with another format)."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq


class Spool:
    """An append-only log of batches on local disk (``path=None``: in memory, for tests and tools)."""

    def __init__(self, path: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._owner: int | None = None  # the file descriptor of the lock a daemon holds while it runs
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # every commit reaches the disk before append returns
            for statement in SCHEMA:
                self._db.execute(statement)
            self._db.commit()
            self.pending_samples = int(
                self._db.execute("SELECT coalesce(sum(samples), 0) FROM pending").fetchone()[0]
            )
        self.size = (
            self._live_bytes()
        )  # kept up to date by whoever changes the spool: reading it takes no lock

    def claim(self) -> None:
        """Hold the spool for this process: two daemons sharing a spool (or a SQLite database beside it) would
        poll every account twice. Raises ``SpoolBusy`` when another process holds it."""
        if self.path is None or self._owner is not None:
            return
        lock = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            raise SpoolBusy(f"another flockwatch process is using the spool {self.path}") from None
        self._owner = lock

    def append(self, batch: Batch) -> None:
        """Durably add ``batch``; when this returns, the batch survives SIGKILL and power loss."""
        body = encode(batch)
        with self._lock:
            self._db.execute("INSERT INTO pending (samples, body) VALUES (?, ?)", (len(batch.samples), body))
            self._db.commit()
            self.pending_samples += len(batch.samples)
            self.size += len(body)

    def oldest(self, records: int) -> list[tuple[int, Batch]]:
        """The oldest pending batches, about ``records`` records in all (at least one batch)."""
        taken: list[tuple[int, Batch]] = []
        count = 0
        with self._lock:
            for seq, body in self._db.execute("SELECT seq, body FROM pending ORDER BY seq"):
                try:
                    batch = decode(body)
                except (ValueError, TypeError, KeyError, IndexError) as exc:
                    if taken:
                        break  # write what comes before it first
                    raise UnreadableBatch(seq, f"{type(exc).__name__}: {exc}") from exc
                if taken and count + len(batch) > records:
                    break
                taken.append((seq, batch))
                count += len(batch)
        return taken

    def remove(self, seqs: Sequence[int]) -> None:
        """Forget batches that are now in the database."""
        with self._lock:
            removed = self._db.execute(
                f"SELECT coalesce(sum(samples), 0) FROM pending WHERE seq IN ({_marks(seqs)})", list(seqs)
            ).fetchone()[0]
            self._db.execute(f"DELETE FROM pending WHERE seq IN ({_marks(seqs)})", list(seqs))
            self._db.commit()
            self.pending_samples -= int(removed)
            self.size = self._live_bytes_locked()

    def set_aside(self, seq: int, reason: str, at: datetime) -> None:
        """Move a pending batch that cannot be read back to the quarantine, as the text it is."""
        with self._lock:
            row = self._db.execute("SELECT samples, body FROM pending WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                return
            self._db.execute(
                "INSERT INTO quarantine (at, kind, reason, body) VALUES (?, 'unreadable', ?, ?)",
                (at.isoformat(), reason, row[1]),
            )
            self._db.execute("DELETE FROM pending WHERE seq = ?", (seq,))
            self._db.commit()
            self.pending_samples -= int(row[0])

    def quarantine(self, record: Batch, reason: str, at: datetime) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO quarantine (at, kind, reason, body) VALUES (?, ?, ?, ?)",
                (at.isoformat(), record.kind(), reason, encode(record)),
            )
            self._db.commit()

    def quarantined(self) -> list[Quarantined]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, kind, reason, body FROM quarantine ORDER BY id"
            ).fetchall()
        return [
            Quarantined(i, datetime.fromisoformat(at), kind, reason, body)
            for i, at, kind, reason, body in rows
        ]

    def requeue(self) -> int:
        """Put every quarantined record back in line for the database (after fixing what refused it); a body
        that cannot be read back stays in quarantine."""
        with self._lock:
            rows = self._db.execute("SELECT id, body FROM quarantine ORDER BY id").fetchall()
            moved = []
            for row_id, body in rows:
                try:
                    samples = len(decode(body).samples)
                except (ValueError, TypeError, KeyError, IndexError):
                    continue
                self._db.execute("INSERT INTO pending (samples, body) VALUES (?, ?)", (samples, body))
                self._db.execute("DELETE FROM quarantine WHERE id = ?", (row_id,))
                self.pending_samples += samples
                moved.append(row_id)
            self._db.commit()
        return len(moved)

    @property
    def pending_batches(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])

    @property
    def live_bytes(self) -> int:
        """Bytes the spool's content takes (free pages left by trimming are reused, not counted)."""
        return self._live_bytes()

    def _live_bytes(self) -> int:
        with self._lock:
            return self._live_bytes_locked()

    def _live_bytes_locked(self) -> int:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    @property
    def full(self) -> bool:
        return self.size >= self.max_bytes

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._owner is not None:
            os.close(self._owner)  # closing the descriptor releases the lock
            self._owner = None


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


# -- encoding: plain JSON, readable with any SQLite client; times as integer microseconds (exact) --------


FORMAT = 1  # of a spooled batch's body; a body of another format is set aside, never guessed at


def encode(batch: Batch) -> str:
    return json.dumps(
        {
            "v": FORMAT,
            "s": [_sample_fields(account_id, sample) for account_id, sample in batch.samples],
            "u": [_update_fields(update) for update in batch.updates],
            "d": [_detection_fields(detection) for detection in batch.detections],
        },
        separators=(",", ":"),
    )


def decode(body: str) -> Batch:
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("v") != FORMAT:
        raise ValueError(f"not a spooled batch of format {FORMAT}")
    return Batch(
        samples=[_sample_of(fields) for fields in data.get("s", [])],
        updates=[_update_of(fields) for fields in data.get("u", [])],
        detections=[_detection_of(fields) for fields in data.get("d", [])],
    )


def _us(when: datetime | None) -> int | None:
    if when is None:
        return None
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _time(us: int | None) -> datetime | None:
    return (
        None
        if us is None
        else datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
    )


def _at(us: int) -> datetime:
    when = _time(us)
    assert when is not None
    return when


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _sample_fields(account_id: int, s: Sample) -> list[Any]:
    return [
        account_id,
        str(s.account),
        _us(s.observed_at),
        s.followers,
        s.following,
        s.posts,
        s.followers_step,
    ]


def _sample_of(f: list[Any]) -> tuple[int, Sample]:
    platform, _, handle = f[1].partition(":")
    return f[0], Sample(AccountRef(platform, handle), _at(f[2]), f[3], f[4], f[5], f[6])


def _update_fields(u: AccountUpdate) -> list[Any]:
    return [
        u.account_id,
        _us(u.polled_at),
        u.state.value,
        u.error,
        u.platform_id,
        u.platform_handle,
        _us(u.next_poll_at),
        u.backoff_step,
    ]


def _update_of(f: list[Any]) -> AccountUpdate:
    return AccountUpdate(f[0], _at(f[1]), AccountState(f[2]), f[3], f[4], f[5], _time(f[6]), f[7])


_DETECTION_TIMES = {"started_at", "detected_at", "ended_at", "updated_at"}
_DETECTION_ORDER = tuple(DetectionRow.__dataclass_fields__)


def _detection_fields(d: DetectionRow) -> list[Any]:
    return [
        _us(getattr(d, name)) if name in _DETECTION_TIMES else getattr(d, name) for name in _DETECTION_ORDER
    ]


def _detection_of(f: list[Any]) -> DetectionRow:
    values: dict[str, Any] = {
        name: _time(v) if name in _DETECTION_TIMES else v for name, v in zip(_DETECTION_ORDER, f, strict=True)
    }
    return DetectionRow(**values)
