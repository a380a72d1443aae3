"""Steps 2 and 3 of ``import`` beside step 1: a process of its own reads the file too and runs the
detectors over its rows and folds them into hourly and daily rollup buckets while this one stores the
samples, so the work uses both cores instead of one step after the other, and nothing is read back.
The buckets are folded where there is time to spare: on PostgreSQL by the loading process (the database
server does most of the load's work there, and the detectors here are the slower side), else here.

What it makes is exactly what rolling up and reading back the stored samples would make only when those
samples are the file's rows in time order, so the importer uses it only when

- every account the file names was added by this import (no stored history to read first or merge),
- the rows are in time order (the time never goes back from one row to the next, whatever the account),
- the process ran to the end (a fork is available; the child did not fail).

Otherwise the importer rolls up and reads back as before. Of two rows of one account and time the
engine and the buckets keep the first, as the database does. Rows of one time are read in file order,
where reading back takes them by account id: only the platform watch sees several accounts at once, and
what it counts does not depend on that order. tests/test_import_beside.py holds both ways to each other.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import shutil
import signal
import stat
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Final, TextIO

from service.accounts import AccountRef
from service.detection.base import Detection
from service.detection.csvinput import Row, RowStream
from service.detection.engine import DetectionEngine
from service.detection.folding import Buckets, OutOfOrder, Reading
from service.memory import fewer_collections

log = logging.getLogger(__name__)

STATES_PER_MESSAGE: Final = 2_000  # engine states sent back at a time
PR_SET_PDEATHSIG: Final = 1  # prctl(2)
SPILL_PREFIX: Final = "flockwatch-import-"  # then the importing process's id


@dataclass
class Findings:
    """What the child made of the whole file: the latest version of each detection and when each was
    first detected, each account's final state (epoch seconds of its newest sample, snapshot bytes), the
    keys still open and how many rows it read (its hourly and daily buckets are in ``Analyst.spills``)."""

    detections: list[Detection]
    first_detected: dict[str, datetime]
    states: dict[AccountRef, tuple[float, bytes]]
    active: set[str]
    rows: int
    accounts: int  # accounts_digest of the file's accounts as the child numbered them


class Analyst:
    """The child process, which reads the file on its own (the same rows as the load: the same checks
    with the same limits), and the pipe from it. ``findings`` waits for what it made; ``stop`` ends it
    and removes its spill files in every case. A failure in the child only makes ``findings`` None."""

    def __init__(self, stream: RowStream, folds: bool = True) -> None:
        self._stream = stream
        self.folds = folds  # whether the child folds the rows into buckets (else the loading process does)
        self._context = multiprocessing.get_context("fork")
        self._read = self._context.Value("q", 0, lock=False)  # bytes of the file the child has read
        self._folder: Path | None = None
        self._process: BaseProcess | None = None
        self._from_child: Connection | None = None

    @staticmethod
    def available(path: Path) -> bool:
        """Only on Linux (where the child forks cleanly and dies with its parent), and only for a regular
        file: two processes reading a pipe or a device would each get part of it."""
        try:
            return sys.platform == "linux" and stat.S_ISREG(path.stat().st_mode)
        except OSError:
            return False  # the load names the problem

    def start(self) -> bool:
        """Start the child; False (and nothing left behind) when the system cannot fork now."""
        _remove_left_over(Path(tempfile.gettempdir()))
        self._folder = Path(tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-"))
        self._from_child, outbox = self._context.Pipe(duplex=False)
        spills = self.spills if self.folds else None
        child = (self._stream, spills, self._read, outbox, self._from_child, os.getpid())
        self._process = self._context.Process(target=_analyse, args=child, name="import-analyst", daemon=True)
        # The child is born with Ctrl-C blocked, so one pressed before it ignores it cannot interrupt it
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self._process.start()
        except OSError as exc:  # no memory or no process left for a fork: the import reads back
            log.warning("the import's analysis cannot run beside the load (%s); reading back instead", exc)
            outbox.close()
            self.stop()
            return False
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        outbox.close()  # the child's end: closed here, so a child that dies shows as EOF
        return True

    def position(self) -> int:
        """Bytes of the file the child has read and analysed (for a progress bar)."""
        return int(self._read.value)

    @property
    def spills(self) -> tuple[Path, Path]:
        """The files the child writes its closed hourly and daily buckets to, a line each (buckets.py),
        readable while it writes them."""
        assert self._folder is not None, "the analyst has not started"
        return self._folder / "hourly", self._folder / "daily"

    def folding(self) -> Folding | None:
        """Where the loading process folds the buckets into the spills, when the child does not."""
        return None if self.folds else Folding(self._stream, self.spills)

    def findings(self, waiting: Callable[[], bool] | None = None) -> Findings | None:
        """Wait for the child to finish the file, calling ``waiting`` meanwhile (again at once when it
        says it did some work, else after half a second); None when what it made cannot be used."""
        inbox = self._from_child
        if inbox is None or self._process is None or self._process.pid is None:
            return None
        busy = False
        while True:
            try:
                if inbox.poll(0.0 if busy else 0.5):  # a child that died makes it readable (EOF) too
                    return self._checked(_receive(inbox))
            except (EOFError, OSError) as exc:
                log.warning(
                    "the import's analysis beside the load ended early (%s); reading back instead", exc
                )
                return None
            busy = waiting() if waiting is not None else False  # (what it raises is the caller's)

    def _checked(self, findings: Findings | None) -> Findings | None:
        """The findings, if the child numbered the same accounts alike (a file changed meanwhile could
        give it others, under the same keys)."""
        if findings is None or findings.accounts != accounts_digest(self._stream):
            return None
        return findings

    def stop(self) -> None:
        """End the child (if it runs) and remove the spill; safe to call at any point, more than once."""
        if self._process is not None and self._process.pid is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
        if self._from_child is not None:
            self._from_child.close()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def _remove_left_over(folder: Path) -> None:
    """Spill folders of imports that were killed (a SIGKILL lets nothing clean up): their process is gone."""
    for spill in folder.glob(f"{SPILL_PREFIX}*-*"):
        pid = spill.name[len(SPILL_PREFIX) :].partition("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(spill, ignore_errors=True)


class Folding:
    """The buckets folded by the loading process (when the child does not fold them), into the spills
    the child would have written: ``fold`` each chunk in file order, in a ``with`` block. Rows that go back
    in time, a spill that cannot be written (a full disk) or ``abandon`` stop the folding: the spills are
    then not ``whole``, and the import reads back."""

    def __init__(self, stream: RowStream, spills: tuple[Path, Path]) -> None:
        self._files = contextlib.ExitStack()
        hourly, daily = self._files.enter_context(open_spills(spills))
        self._buckets: Buckets | None = Buckets(hourly.write, daily.write, key_of(stream))
        self.whole = True

    def fold(self, rows: list[Row]) -> None:
        buckets = self._buckets
        if buckets is None:
            return
        try:
            buckets.fold(rows)
        except (OutOfOrder, OSError) as exc:
            log.debug("the import stopped folding its rollup buckets: %s", exc)
            self.abandon()

    def unique(self) -> bool:
        """Whether every row folded so far named a time its account had not had, and folding goes on."""
        buckets = self._buckets
        return buckets is not None and buckets.repeats == 0

    def abandon(self) -> None:
        """Fold no more (what is spilled will not be used: e.g. the file names an account already stored)."""
        self._buckets, self.whole = None, False

    def __enter__(self) -> Folding:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        """The buckets still open handed over (unless an error is on its way out): the spills are whole."""
        try:
            with self._files:
                if kind is None and self._buckets is not None:
                    self._buckets.close()
        except OSError as exc:  # a full disk: the import reads back
            log.debug("the import could not finish its rollup buckets: %s", exc)
            self.abandon()


def accounts_digest(stream: RowStream) -> int:
    """The file's accounts in the order of their keys, as one number (both processes compare theirs)."""
    return zlib.crc32("\n".join(stream.keys).encode("utf-8", "surrogateescape"))


def _receive(inbox: Connection) -> Findings | None:
    header = inbox.recv()
    if header is None:
        return None
    detections, first_detected, active, rows, accounts = header
    states: dict[AccountRef, tuple[float, bytes]] = {}
    while part := inbox.recv():
        states.update(part)
    return Findings(detections, first_detected, states, active, rows, accounts)


def _analyse(
    stream: RowStream,
    spills: tuple[Path, Path] | None,
    read: Synchronized[int],
    outbox: Connection,
    parent_end: Connection,
    parent: int,
) -> None:
    """The child: the file's rows into a fresh engine and the buckets, in order; then what it made."""
    parent_end.close()  # else a parent that dies would leave this end open here
    if not _follow_parent(parent):
        return
    # (fewer_collections also keeps what the parent held out of the scans, which would copy its pages here)
    with fewer_collections():
        _analyse_file(stream, spills, read, outbox)


def _analyse_file(
    stream: RowStream, spills: tuple[Path, Path] | None, read: Synchronized[int], outbox: Connection
) -> None:
    try:
        if spills is None:
            reading = _read_all(stream, None, read)
        else:
            with open_spills(spills) as (hourly, daily):
                reading = _read_all(stream, Buckets(hourly.write, daily.write, key_of(stream)), read)
        if not reading.in_order:
            outbox.send(None)
            return
        active = {d.key for d in reading.engine.active()}
        header = (list(reading.changed.values()), reading.first_detected, active, reading.rows)
        outbox.send((*header, accounts_digest(stream)))
        _send_states(reading.engine, list(stream.accounts.values()), outbox)
    except BrokenPipeError:
        return  # the parent stopped listening (it failed, or was interrupted): nothing to say
    except Exception as exc:  # a bad row (the load stops on it too), a full disk, a fault: read back
        log.debug("the import's analysis beside the load stopped: %s", exc)
        with contextlib.suppress(OSError):
            outbox.send(None)


def _follow_parent(parent: int) -> bool:
    """Ctrl-C is the parent's to handle (it stops this process); a parent that dies, even by SIGKILL,
    takes this process with it (Linux's parent-death signal) instead of leaving it reading the file.
    False when the parent is already gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent around the fork
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent  # it may have died before the signal was asked for


def _read_all(stream: RowStream, buckets: Buckets | None, read: Synchronized[int]) -> Reading:
    """Every row of the file through one engine and the buckets, unless the rows go back in time."""
    reading = Reading(DetectionEngine(), buckets, stream.accounts)
    chunks = stream.chunks()
    try:
        for rows in chunks:
            reading.read(rows)
            read.value = stream.position()
            if not reading.in_order:
                break
        if buckets is not None:
            buckets.close()
    finally:
        chunks.close()
    return reading


@contextlib.contextmanager
def open_spills(spills: tuple[Path, Path]) -> Iterator[tuple[TextIO, TextIO]]:
    """The hourly and daily spill files, open for writing (closed, so whole, on leaving)."""
    with spills[0].open("w", encoding="utf-8") as hourly, spills[1].open("w", encoding="utf-8") as daily:
        yield hourly, daily


def key_of(stream: RowStream) -> Callable[[str], str]:
    """An account's first field of a spilled line: its key in the file."""
    return lambda name: str(stream.keys[name])


def _send_states(engine: DetectionEngine, refs: list[AccountRef], outbox: Connection) -> None:
    part: dict[AccountRef, tuple[float, bytes]] = {}
    for ref in refs:
        last, blob = engine.last_at(ref), engine.snapshot(ref)
        if last is not None and blob is not None:
            part[ref] = (last, blob)
        if len(part) >= STATES_PER_MESSAGE:
            outbox.send(part)
            part = {}
    if part:
        outbox.send(part)
    outbox.send({})
