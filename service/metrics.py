"""Prometheus metrics: per-account series rebuilt from the board on every scrape, and the service's own counters.

Follower counts are a cache of what the platform showed at the last poll (HELP says so); no timestamps are
attached. The registry is always injected, never the global one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter
from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from service import __version__
from service.board import CHANGE_WINDOWS, AccountView, Board
from service.samples import AccountState

ACCOUNT_LABELS = ["platform", "account"]


class AccountCollector(Collector):
    """Yields the per-account families from the board as it is now.

    This is the readable definition of the per-account series. The daemon serves the same page through
    ``service.exposition.AccountExposition``, which re-renders only accounts that changed (formatting
    10,000 accounts' series anew takes about 2 s); a test holds the two pages equal byte for byte.
    """

    def __init__(self, board: Board) -> None:
        self._board = board

    def collect(self) -> Iterator[Metric]:
        views = self._board.views()
        yield from _count_families(views)
        yield _last_sample(views)
        yield _last_poll(views)
        yield _changes(views)
        yield _account_states(views)
        yield _accounts_per_state(views)

    def describe(self) -> Iterable[Metric]:
        return []


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=ACCOUNT_LABELS if labels is None else labels)


def _labels(view: AccountView) -> list[str]:
    return [view.ref.platform, view.ref.handle]


def _count_families(views: list[AccountView]) -> Iterator[Metric]:
    fields = (
        ("followers", "Followers the platform showed at the last successful poll (a cached value)."),
        (
            "following",
            "Accounts followed, as the platform showed at the last successful poll (a cached value).",
        ),
        ("posts", "Posts, as the platform showed at the last successful poll (a cached value)."),
    )
    for field, doc in fields:
        family = _gauge(f"flockwatch_{field}", doc)
        for view in views:
            value = getattr(view.latest, field) if view.latest else None
            if value is not None:
                family.add_metric(_labels(view), value)
        yield family


def _last_sample(views: list[AccountView]) -> Metric:
    family = _gauge("flockwatch_last_sample_timestamp_seconds", "When the latest stored sample was observed.")
    for view in views:
        if view.latest:
            family.add_metric(_labels(view), view.latest.observed_at.timestamp())
    return family


def _last_poll(views: list[AccountView]) -> Metric:
    family = _gauge(
        "flockwatch_last_poll_timestamp_seconds", "When the account was last polled, successfully or not."
    )
    for view in views:
        if view.last_polled_at:
            family.add_metric(_labels(view), view.last_polled_at.timestamp())
    return family


def _changes(views: list[AccountView]) -> Metric:
    family = _gauge(
        "flockwatch_followers_change",
        "Followers gained (negative: lost) over the window before the latest sample.",
        [*ACCOUNT_LABELS, "window"],
    )
    for view in views:
        for window, length in CHANGE_WINDOWS.items():
            change = view.change(length)
            if change is not None:
                family.add_metric([*_labels(view), window], change)
    return family


def _account_states(views: list[AccountView]) -> Metric:
    family = _gauge(
        "flockwatch_account_state", "1 for the account's current state.", [*ACCOUNT_LABELS, "state"]
    )
    for view in views:
        family.add_metric([*_labels(view), view.state.value], 1)
    return family


def _accounts_per_state(views: list[AccountView]) -> Metric:
    family = _gauge("flockwatch_accounts", "Watched accounts per platform and state.", ["platform", "state"])
    counts = Counter((view.ref.platform, view.state.value) for view in views)
    for platform in sorted({view.ref.platform for view in views}):
        for state in AccountState:
            family.add_metric([platform, state.value], counts[(platform, state.value)])
    return family


class ServiceMetrics:
    """The daemon's own instrumentation: polls, errors, database writes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.polls = PromCounter(
            "flockwatch_polls", "Batch polls sent to a platform.", ["platform"], registry=registry
        )
        self.poll_errors = PromCounter(
            "flockwatch_poll_errors",
            "Accounts whose poll failed, by kind of failure.",
            ["platform", "kind"],
            registry=registry,
        )
        self.poll_duration = Histogram(
            "flockwatch_poll_duration_seconds",
            "Time one batch poll took.",
            ["platform"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.samples_written = PromCounter(
            "flockwatch_samples_written", "Samples stored in the database.", registry=registry
        )
        self.samples_buffered = Gauge(
            "flockwatch_samples_buffered",
            "Samples waiting for the database to accept them.",
            registry=registry,
        )
        self.database_errors = PromCounter(
            "flockwatch_database_errors", "Failed attempts to write to the database.", registry=registry
        )
        self.database_up = Gauge(
            "flockwatch_database_up", "1 when the last database write succeeded.", registry=registry
        )
        self.detection_lag = Gauge(
            "flockwatch_detection_engine_lag_seconds",
            "Seconds the detection engine took, after the latest poll's answer, to judge and record its samples.",
            registry=registry,
        )
        self.database_write_duration = Histogram(
            "flockwatch_database_write_duration_seconds",
            "Time one database write of buffered samples took.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=registry,
        )
        self.quarantined = PromCounter(
            "flockwatch_quarantined_records",
            "Records the database refused (kept in the spool's quarantine with the reason), by kind.",
            ["kind"],
            registry=registry,
        )
        self.spool_bytes = Gauge(
            "flockwatch_spool_bytes",
            "Bytes of polled data on local disk not yet in the database.",
            registry=registry,
        )
        self.spool_limit_bytes = Gauge(
            "flockwatch_spool_limit_bytes",
            "The spool's size cap: at it, polling pauses until the database takes the backlog.",
            registry=registry,
        )
        self.polls_skipped = PromCounter(
            "flockwatch_polls_skipped",
            "Accounts whose due poll was not sent, by reason (spool_full, overrun, stopping).",
            ["platform", "reason"],
            registry=registry,
        )
        self.samples_refused = PromCounter(
            "flockwatch_samples_refused",
            "Samples not taken, by reason (future: dated after the clock's now plus a tolerance).",
            ["reason"],
            registry=registry,
        )
        self.task_restarts = PromCounter(
            "flockwatch_task_restarts",
            "Background tasks of the daemon that died and were restarted.",
            ["task"],
            registry=registry,
        )
        build = InfoMetricFamily("flockwatch_build", "Version of the running flockwatch.")
        build.add_metric([], {"version": __version__})
        registry.register(_Static([build]))
        self.database_up.set(1)


class _Static(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
