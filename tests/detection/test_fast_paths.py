"""The backtest's fast paths give exactly what the strict reader and the Sample-by-Sample replay give."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from service.detection.csvinput import BadRow, read_records, read_samples
from service.detection.detectors.regular_growth import (
    _SURELY_ABOVE,
    EXACT_ALPHA,
    EXACT_WINDOWS,
    GAP_ONSET_ALPHA,
    SHORT_ALPHA,
)
from service.detection.engine import DetectionEngine
from service.detection.replay import replay, replay_records
from service.detection.stats import chi2_lower_tail

from .helpers import organic_gains, series

REAL = Path(__file__).resolve().parents[1] / "data" / "real"  # a copy of shared/data/real

ODD_ROWS = [
    "2026-04-01T00:00:00Z,x:a,5",
    "2026-04-01T06:30:15Z,X:a,6",  # another spelling of the same account
    "2026-04-02T00:00:00+02:00,x:a,7",
    "2026-04-02T03:00:00.250Z,x:a,8",
    "2026-04-03,x:a, 9",
    "1775260800,x:b,+10",
    "1775260800.5,x:b,1e2",
    "2026-04-04T00:00:00z,x:b,11.0",
    "",
    " , ,",
    "2026-04-05T00:00:00Z,x:b,12,",
    "2026-04-06T00:00:00Z,x:a,13,07",
    "2026-04-06T00:00:00Z,x:a,14",  # duplicate time: the first in the file wins
    "١٧٧٥٦٠٠٠٠٠,x:c,5",  # float() reads other scripts' digits: the strict parser decides
]
BAD_ROWS = [
    "yesterday,x:a,10",
    "2026-04-01T10:00:00,x:a,10",
    "2026-02-30T00:00:00Z,x:a,10",
    "2026-04-01T24:00:00Z,x:a,10",
    "2026-04-01,nowhere:a,10",
    "2026-04-01,x:a,ten",
    "2026-04-01,x:a,-5",
    "2026-04-01,x:a,",
    "2026-04-01,x:a,5,-1",
    "2026-04-01,x:a",
    "99999999999999999999,x:a,5",
]


def _as_tuples(path: Path, skip: bool) -> tuple[list[tuple[object, ...]], list[str]]:
    samples = read_samples(path, skip)
    return [(s.observed_at.timestamp(), s.account, s.followers, s.following) for s in samples.samples], [
        str(b) for b in samples.skipped
    ]


def _records(path: Path, skip: bool) -> tuple[list[tuple[object, ...]], list[str]]:
    read = read_records(path, skip)
    return [(r[0], r[3], r[4], r[5]) for r in read.records], [str(b) for b in read.skipped]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize(
    "header",
    [
        "timestamp,account,followers",
        "timestamp,account,followers,following",
        "account,Followers,timestamp,following,posts",
    ],
)
def test_records_match_samples_row_for_row(tmp_path: Path, newline: str, header: str) -> None:
    order = [h.strip().lower() for h in header.split(",")]
    rows = []
    for row in [*ODD_ROWS, *BAD_ROWS]:
        cells = row.split(",") if row else []
        if len(cells) >= 3:
            named = dict(
                zip(["timestamp", "account", "followers", "following", "posts"], cells, strict=False)
            )
            cells = [named.get(name, "") for name in order]
        rows.append(",".join(cells))
    path = tmp_path / "odd.csv"
    path.write_bytes((header + newline + newline.join(rows) + newline).encode())

    assert _records(path, True) == _as_tuples(path, True)
    assert (
        len(_records(path, True)[1]) >= len(BAD_ROWS) - 1
    )  # a negative following is dropped with its column
    with pytest.raises(BadRow) as strict:
        read_samples(path)
    with pytest.raises(BadRow) as fast:
        read_records(path)
    assert str(fast.value) == str(strict.value)


@pytest.mark.parametrize(
    "text", ["", "\n", "when,who\n", 'timestamp,account,followers\n"2026-04-01",x:a,5\n']
)
def test_headers_and_quoted_files_match(tmp_path: Path, text: str) -> None:
    path = tmp_path / "h.csv"
    path.write_text(text)
    try:
        expected: object = _as_tuples(path, False)
    except BadRow as exc:
        expected = str(exc)
    try:
        got: object = _records(path, False)
    except BadRow as exc:
        got = str(exc)
    assert got == expected


def _interleaved_csv(path: Path) -> Path:
    """Daily and 15-minute accounts with drips, bursts and falls, interleaved: every detector fires."""
    rng = random.Random(11)
    samples = []
    for i in range(6):
        gains = organic_gains(60, 40 + 30 * i, seed=i)
        gains[30 : 30 + 15] = (
            [300 + 100 * i] * 15 if i % 2 else [g + rng.randint(0, 900) for g in gains[30:45]]
        )
        gains[45:50] = [-400 - 50 * i] * 5
        samples += series(f"x:daily{i}", gains, first=5_000 * (i + 1))
    for i in range(3):
        quarter = [max(0, round(rng.gauss(2, 2))) for _ in range(96 * 20)]
        quarter[96 * 12 + 10] += 4_000 * (i + 1)
        samples += series(f"bluesky:quarter{i}", quarter, every=timedelta(minutes=15), first=20_000)
    rng.shuffle(samples)
    path.write_text(
        "timestamp,account,followers\n"
        + "".join(f"{s.observed_at:%Y-%m-%dT%H:%M:%SZ},{s.account},{s.followers}\n" for s in samples)
    )
    return path


@pytest.mark.parametrize("source", ["interleaved", *sorted(p.name for p in REAL.glob("*.csv"))])
def test_replay_of_records_gives_the_same_detections_as_replay_of_samples(
    tmp_path: Path, source: str
) -> None:
    path = _interleaved_csv(tmp_path / "h.csv") if source == "interleaved" else REAL / source
    slow = [d.public() for d in replay(read_samples(path).samples, DetectionEngine())]
    fast = [d.public() for d in replay_records(read_records(path).records, DetectionEngine())]

    assert fast == slow
    if source == "interleaved":
        assert {d["kind"] for d in fast} >= {"regular_growth", "burst", "drop"}


def test_the_chi_squared_shortcut_never_changes_a_verdict() -> None:
    alphas = [EXACT_ALPHA, GAP_ONSET_ALPHA, *SHORT_ALPHA.values()]
    assert set(_SURELY_ABOVE) == {n - 1 for n in EXACT_WINDOWS}
    for dof, statistic in _SURELY_ABOVE.items():
        assert chi2_lower_tail(statistic, dof) > max(alphas)
