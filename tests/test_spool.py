"""The spool: what is appended survives the process, comes back in order, and leaves once written."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from service.accounts import AccountRef
from service.samples import AccountState, Sample
from service.spool import Batch, Spool, decode, encode
from service.store.repository import AccountUpdate, DetectionRow
from tests.conftest import T0

ALICE = AccountRef("x", "alice")


def _batch(n: int, start: int = 0) -> Batch:
    return Batch(
        samples=[(1, Sample(ALICE, T0 + timedelta(minutes=15 * (start + i)), 100 + i)) for i in range(n)]
    )


def test_appended_batches_survive_a_reopen_and_come_back_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    spool.append(_batch(3))
    spool.append(_batch(2, start=3))
    spool.close()  # as after SIGKILL: only what append committed exists

    again = Spool(path)
    taken = again.oldest(100)
    assert [len(batch.samples) for _, batch in taken] == [3, 2]
    assert [s.followers for _, b in taken for _, s in b.samples] == [100, 101, 102, 100, 101]
    assert again.pending_samples == 5


def test_oldest_stops_near_the_asked_number_of_records_but_always_gives_one_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for i in range(5):
        spool.append(_batch(40, start=40 * i))
    assert len(spool.oldest(100)) == 2
    assert len(spool.oldest(10)) == 1


def test_removed_batches_are_gone_and_the_count_follows(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.append(_batch(3))
    spool.append(_batch(2, start=3))
    first, _ = spool.oldest(100)
    spool.remove([first[0]])
    assert spool.pending_samples == 2
    assert [len(b.samples) for _, b in spool.oldest(100)] == [2]


def test_every_record_kind_round_trips_exactly_even_with_hostile_text() -> None:
    hostile = "a\x00b\udc80c" + "é" * 300
    batch = Batch(
        samples=[(7, Sample(ALICE, T0 + timedelta(microseconds=123_457), 10**9, None, 5, 10_000))],
        updates=[
            AccountUpdate(7, T0, AccountState.NOT_FOUND, hostile, "42", hostile, T0 + timedelta(hours=1), 2)
        ],
        detections=[
            DetectionRow(
                "x:alice|burst|burst|1",
                7,
                "x",
                "x:alice",
                "burst",
                "burst",
                T0,
                T0,
                None,
                T0,
                0.5,
                "info",
                hostile,
            )
        ],
    )
    assert decode(encode(batch)) == batch


def test_quarantined_records_are_kept_with_their_reason_and_can_be_put_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    record = _batch(1)
    spool.quarantine(record, "DataError: NUL", T0)
    (kept,) = spool.quarantined()
    assert (kept.kind, kept.reason) == ("sample", "DataError: NUL")
    assert decode(kept.body) == record
    assert spool.requeue() == 1
    assert spool.quarantined() == [] and spool.pending_samples == 1


def test_the_spool_knows_when_it_is_over_its_cap(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024)
    assert not spool.full
    for i in range(40):
        spool.append(_batch(50, start=50 * i))
    assert spool.full
    spool.remove([seq for seq, _ in spool.oldest(10_000)])
    assert not spool.full


def test_a_second_process_cannot_take_a_spool_in_use(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "spool.db"
    Spool(path).claim()
    code = f"from pathlib import Path; from service.spool import Spool; Spool(Path({str(path)!r})).claim()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "another flockwatch process is using the spool" in result.stderr
