"""Prometheus view of the engine's current state, built at scrape time from memory (no database reads).

The daemon renders /metrics in a worker thread while the event loop feeds the engine: what is iterated is copied
first (``snapshot``), and an account the engine forgets meanwhile is left out of that page.

Labels follow the daemon's ``flockwatch_followers{platform,account}``: ``account`` is the handle alone, and
``*`` for a platform-wide event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from service.accounts import AccountRef
from service.deflate import Piece, plain
from service.detection.base import Detection, Severity
from service.detection.engine import DetectionEngine
from service.exposition import DeflatedLines, escape_label, sample_line, snapshot

_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class DetectionCollector(Collector):
    def __init__(self, engine: DetectionEngine, registry: CollectorRegistry | None = None) -> None:
        self._engine = engine
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        active = _one_per_account_kind(snapshot(self._engine.active))
        info = GaugeMetricFamily(
            "flockwatch_detection_info",
            "An active detection, with its verdict in labels (always 1)",
            labels=["platform", "account", "kind", "detector", "severity", "summary"],
        )
        started = GaugeMetricFamily(
            "flockwatch_detection_started_timestamp_seconds",
            "When the active anomaly began, as estimated",
            labels=["platform", "account", "kind"],
        )
        counts: Counter[tuple[str, str, str]] = Counter()
        for d in active:
            handle = _handle(d)
            info.add_metric([d.platform, handle, d.kind, d.detector, str(d.severity), d.summary], 1.0)
            started.add_metric([d.platform, handle, d.kind], d.started_at.timestamp())
            counts[(d.platform, d.kind, str(d.severity))] += 1
        totals = GaugeMetricFamily(
            "flockwatch_detections_active",
            "Active detections",
            labels=["platform", "kind", "severity"],
        )
        for (platform, kind, severity), n in sorted(counts.items()):
            totals.add_metric([platform, kind, severity], n)
        yield from (info, totals, started)


def _one_per_account_kind(detections: Iterable[Detection]) -> list[Detection]:
    """Bounded label sets: the most severe (then highest scoring) active detection per account and kind."""
    best: dict[tuple[str, str], Detection] = {}
    for d in detections:
        key = (d.account, d.kind)
        current = best.get(key)
        if current is None or (_RANK[d.severity], d.score) > (_RANK[current.severity], current.score):
            best[key] = d
    return list(best.values())


def _handle(detection: Detection) -> str:
    return detection.account.partition(":")[2]


SCORE_NAME = "flockwatch_anomaly_score"
SCORE_HELP = "Latest anomaly score of each detector, 0 (normal) to 1"


class ScoreCollector(Collector):
    """The readable definition of ``flockwatch_anomaly_score``: one family built from ``engine.scores()``.

    The daemon serves the same page through ``ScoreExposition``; tests and the benchmark compare the two.
    """

    def __init__(self, engine: DetectionEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(SCORE_NAME, SCORE_HELP, labels=["platform", "account", "detector"])
        for ref, detector, score in snapshot(self._engine.scores):
            family.add_metric([ref.platform, ref.handle, detector], score)
        yield family


class ScoreExposition:
    """``flockwatch_anomaly_score`` as exposition text, one series per account and detector.

    Six series per watched account are too many to format anew on every scrape (10,000 accounts take over a
    second through ``generate_latest``), so an account's lines are formatted again only when one of its
    scores changed. Accounts the engine forgot leave the page and the cache.
    """

    def __init__(self, engine: DetectionEngine) -> None:
        self._engine = engine
        self._lines: DeflatedLines[AccountRef] = DeflatedLines(1, self._account_lines)

    def render(self) -> bytes:
        return b"".join([plain(piece) for piece in self.chunks()])

    def chunks(self) -> Iterator[Piece]:
        """The family as encoded pieces of a block of accounts each, made as they are asked for."""
        refs, tokens = _columns(snapshot(self._engine.score_tokens))
        self._lines.update(refs, [tokens])
        yield f"# HELP {SCORE_NAME} {SCORE_HELP}\n# TYPE {SCORE_NAME} gauge\n".encode()
        yield from self._lines.family(0)

    def _account_lines(self, ref: AccountRef) -> tuple[str]:
        try:
            return (_score_lines(ref, self._engine.scores_of(ref)),)
        except KeyError:  # forgotten by the engine since the snapshot: it leaves the next page's keys too
            return ("",)


def _columns(pairs: list[tuple[AccountRef, object]]) -> tuple[list[AccountRef], list[object]]:
    return [ref for ref, _ in pairs], [token for _, token in pairs]


def _score_lines(ref: AccountRef, scores: tuple[tuple[str, float], ...]) -> str:
    account, platform = escape_label(ref.handle), escape_label(ref.platform)
    return "".join(
        sample_line(SCORE_NAME, f'account="{account}",detector="{name}",platform="{platform}"', score)
        for name, score in scores
    )
